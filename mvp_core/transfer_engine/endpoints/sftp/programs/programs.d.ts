// The remote programs are imported as text (`with { type: "text" }`): Bun inlines them, in the
// engine CLI's single-file bundle too.
declare module "*.pl" {
  const text: string;
  export default text;
}
declare module "*.sh" {
  const text: string;
  export default text;
}
