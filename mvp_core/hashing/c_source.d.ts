// The XXH128 digest shim is imported as text (`with { type: "text" }`) so bundles carry it.
declare module "*.c" {
  const text: string;
  export default text;
}
