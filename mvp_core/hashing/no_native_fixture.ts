/**
 * Run as a child process by xxhash.test.ts: makes @node-rs/xxhash fail to load as it does on a
 * platform without its prebuilt binary, then prints the backend and a digest of each algorithm.
 */
import { plugin } from "bun";

plugin({
  name: "no-native-xxhash",
  setup(build) {
    build.onLoad({ filter: /@node-rs[\\/]xxhash[\\/]index\.js$/ }, () => ({
      contents: "throw new Error('Cannot find native binding (simulated: no prebuilt binary for this platform)');",
      loader: "js",
    }));
  },
});

const { createXxhHasher, createXxhHasherSync, xxhOf, xxhashBackend } = await import("./xxhash.ts");
const data = new TextEncoder().encode("ketter");
const out: Record<string, string> = { ...(await xxhashBackend()) } as Record<string, string>;
for (const alg of ["xxh64", "xxh3", "xxh128"] as const) {
  const h = await createXxhHasher(alg);
  h.update(data);
  out[alg] = h.digest();
  out[`${alg}_oneshot`] = await xxhOf(alg, data);
}
try {
  createXxhHasherSync("xxh64");
  out.sync = "created";
} catch (e) {
  out.sync = (e as Error).message;
}
console.log(JSON.stringify(out));
