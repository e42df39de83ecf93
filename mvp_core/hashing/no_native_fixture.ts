/**
 * Run as a child process by xxhash.test.ts: makes the system libxxhash and @node-rs/xxhash fail to
 * load, as on a machine without libxxhash0 and a platform without the prebuilt binary, then prints
 * the backends and a digest of each algorithm.
 */
import { plugin } from "bun";

plugin({
  name: "no-fast-xxhash",
  setup(build) {
    build.onLoad({ filter: /@node-rs[\\/]xxhash[\\/]index\.js$/ }, () => ({
      contents: "throw new Error('Cannot find native binding (simulated: no prebuilt binary for this platform)');",
      loader: "js",
    }));
    build.onLoad({ filter: /hashing[\\/]xxhash_system\.ts$/ }, () => ({
      contents: "export function loadSystemXxhash() { return { lib: null, reason: 'libxxhash.so.0: simulated: not installed' }; }",
      loader: "ts",
    }));
  },
});

const { createXxhHasher, createXxhHasherSync, xxhOf, xxhashBackend } = await import("./xxhash.ts");
const data = new TextEncoder().encode("ketter");
const out: Record<string, unknown> = { backends: await xxhashBackend() };
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
