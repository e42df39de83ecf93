/**
 * xxHash digests equal `xxhsum`'s (apt package xxhash: -H1 XXH64, -H3 XXH3-64, -H2 XXH128) for
 * sizes around every internal block boundary, fed in random chunk sizes, with every backend.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type XxhAlgorithm, type XxhBackend, createXxhHasher, createXxhHasherSync, xxhOf, xxhashBackend } from "./xxhash.ts";
import { liveSystemStates, loadSystemXxhash } from "./xxhash_system.ts";

const FLAG: Record<XxhAlgorithm, string> = { xxh64: "-H1", xxh3: "-H3", xxh128: "-H2" };
const SIZES = [0, 1, 3, 4, 8, 16, 17, 32, 33, 128, 129, 240, 241, 255, 256, 1023, 1024, 1025, 65536 + 3, (1 << 20) + 7, 3_000_001];

let dir = "";
let data = new Uint8Array(0);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "ketter-xxh-"));
  data = new Uint8Array(3_000_001);
  crypto.getRandomValues(data.subarray(0, 65536));
  for (let o = 65536; o < data.length; o += 65536) crypto.getRandomValues(data.subarray(o, Math.min(o + 65536, data.length)));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function xxhsum(alg: XxhAlgorithm, file: string): Promise<string> {
  const p = Bun.spawn(["xxhsum", FLAG[alg], file], { stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  if (code !== 0) throw new Error(`xxhsum failed (${code}): ${err} — apt-get install xxhash`);
  // "XXH3 (file) = hex" for -H3, "hex  file" otherwise.
  const m = /([0-9a-f]{16,32})/.exec(out.includes(" = ") ? (out.split(" = ")[1] as string) : out);
  if (m === null) throw new Error(`unexpected xxhsum output ${out}`);
  return m[1] as string;
}

async function streamed(alg: XxhAlgorithm, backend: XxhBackend | undefined, bytes: Uint8Array): Promise<string> {
  const h = await createXxhHasher(alg, backend);
  let o = 0;
  while (o < bytes.length) {
    const n = 1 + Math.floor(Math.random() * 70_000);
    h.update(bytes.subarray(o, o + n));
    o += n;
  }
  return h.digest();
}

test("the system library (with SIMD dispatch and the XXH128 shim) and the native module load here", async () => {
  expect(await xxhashBackend()).toEqual({ xxh64: "system", xxh3: "system", xxh128: "system", unavailable: {} });
  expect(loadSystemXxhash().lib?.dispatch).toBe(true);
});

describe("digests equal xxhsum's", () => {
  for (const alg of ["xxh64", "xxh3", "xxh128"] as const) {
    test(alg, async () => {
      for (const size of SIZES) {
        const bytes = data.subarray(0, size);
        const file = path.join(dir, `d${size}`);
        await writeFile(file, bytes);
        const want = await xxhsum(alg, file);
        expect(want.length).toBe(alg === "xxh128" ? 32 : 16);
        const backends: (XxhBackend | undefined)[] = alg === "xxh128" ? [undefined, "system", "wasm"] : [undefined, "system", "native", "wasm"];
        for (const b of backends) expect({ size, b, got: await streamed(alg, b, bytes) }).toEqual({ size, b, got: want });
        expect({ size, oneShot: await xxhOf(alg, bytes) }).toEqual({ size, oneShot: want });
      }
    });
  }
});

test("hashers can be created synchronously (for the engine's createHasher), and refuse misuse", async () => {
  for (const alg of ["xxh64", "xxh3", "xxh128"] as const) {
    const h = createXxhHasherSync(alg);
    h.update(new Uint8Array(0));
    h.update(data.subarray(0, 1000));
    expect(h.digest()).toBe(await xxhOf(alg, data.subarray(0, 1000)));
    expect(() => h.digest()).toThrow("digest() called twice");
    expect(() => h.update(data.subarray(0, 1))).toThrow("update() after digest()");
  }
});

test("hashers dropped without digest() do not leak (their C state is freed when collected)", async () => {
  const before = liveSystemStates();
  for (let i = 0; i < 20_000; i++) createXxhHasherSync("xxh3").update(data.subarray(0, 64));
  expect(liveSystemStates() - before).toBe(20_000);
  // Finalizers run after a collection, on a later turn: collect and yield until they have.
  for (let i = 0; i < 200 && liveSystemStates() - before > 1_000; i++) {
    Bun.gc(true);
    await Bun.sleep(5);
  }
  expect(liveSystemStates() - before).toBeLessThan(1_000);
  const h = createXxhHasherSync("xxh64");
  h.digest();
  expect(liveSystemStates() - before).toBeLessThan(1_000);
});

test("the native backend has no streaming XXH128, and says so", async () => {
  await expect(createXxhHasher("xxh128", "native")).rejects.toThrow("no streaming XXH128");
});

test("without libxxhash and the native module the WebAssembly fallback gives the same digests", async () => {
  const file = path.join(dir, "ketter.txt");
  await writeFile(file, "ketter");
  const p = Bun.spawn(["bun", path.join(import.meta.dir, "no_native_fixture.ts")], { stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  expect({ code, err }).toEqual({ code: 0, err: "" });
  const got = JSON.parse(out) as Record<string, string> & { backends: { unavailable: Record<string, string> } };
  expect(got.backends).toMatchObject({ xxh64: "wasm", xxh3: "wasm", xxh128: "wasm" });
  expect(got.backends.unavailable.system).toContain("simulated: not installed");
  expect(got.backends.unavailable.native).toContain("simulated: no prebuilt binary");
  expect(got.sync).toContain("no synchronous xxh64 here");
  for (const alg of ["xxh64", "xxh3", "xxh128"] as const) {
    const want = await xxhsum(alg, file);
    expect([got[alg], got[`${alg}_oneshot`]]).toEqual([want, want]);
  }
});
