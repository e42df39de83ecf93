/**
 * Streaming xxHash (seed 0) as the ASC MHL and `xxhsum` print it: lowercase, big-endian hex.
 *
 * Two implementations, both pinned in package.json:
 * - `@node-rs/xxhash` (native, N-API): XXH64 and XXH3-64 incremental, the fastest measured here
 *   (docs/mhl.md, `bun run bench:hash`). Its XXH128 is one-shot only.
 * - `hash-wasm` (WebAssembly): XXH64, XXH3 and XXH128 incremental; the only streaming XXH128 found.
 *
 * The native module ships as a per-platform optional package; where it is missing (another CPU or
 * libc, an install without optional dependencies) the WebAssembly one computes the same digests,
 * slower. `xxhashBackend()` says which one this process uses so the DKU can report it.
 */

/** The xxHash variants the ASC MHL names (xxh3 is XXH3-64, xxh128 is XXH3-128). */
export type XxhAlgorithm = "xxh64" | "xxh3" | "xxh128";

/** Every XxhAlgorithm, for validation and listings. */
export const XXH_ALGORITHMS: readonly XxhAlgorithm[] = ["xxh64", "xxh3", "xxh128"];

/** A running hash fed chunk by chunk; digest() returns lowercase hex (the engine's Hasher shape). */
export interface Hasher {
  update(chunk: Uint8Array): void;
  digest(): string;
}

/** Which implementation computes XXH64/XXH3: the native module, or WebAssembly where it cannot load. */
export type XxhBackend = "native" | "wasm";

type NativeModule = typeof import("@node-rs/xxhash");
type WasmModule = typeof import("hash-wasm");

let wasmModule: Promise<WasmModule> | null = null;

// hash-wasm carries every algorithm it offers (argon2, bcrypt…) and decodes them when imported,
// ~50 ms: load it only when XXH128 or the fallback is asked for, not at every process start.
function loadWasm(): Promise<WasmModule> {
  wasmModule ??= import("hash-wasm");
  return wasmModule;
}

let native: Promise<NativeModule | null> | null = null;
let nativeError: string | null = null;

/** Loads the native module once; null (with the reason kept for xxhashBackend) when it cannot load. */
function loadNative(): Promise<NativeModule | null> {
  native ??= import("@node-rs/xxhash").then(
    (m) => (nativeLoaded = m),
    (e: unknown) => {
      nativeError = e instanceof Error ? e.message : String(e);
      return null;
    },
  );
  return native;
}

/** The backend in use for XXH64/XXH3 and, for "wasm", why the native module did not load. */
export async function xxhashBackend(): Promise<{ backend: XxhBackend; reason?: string }> {
  const m = await loadNative();
  return m === null ? { backend: "wasm", reason: nativeError ?? "unknown" } : { backend: "native" };
}

function hex64(v: bigint): string {
  return v.toString(16).padStart(16, "0");
}

let nativeLoaded: NativeModule | null = null;

/**
 * A streaming XXH64/XXH3 hasher created synchronously, for the engine's synchronous
 * `createHasher`: available once `xxhashBackend()` (or any async call here) found the native
 * module; throws otherwise, so the caller offers these algorithms only when the backend is native.
 */
export function createXxhHasherSync(algorithm: "xxh64" | "xxh3"): Hasher {
  const m = nativeLoaded;
  if (m === null) throw new Error("the native xxHash module is not loaded: await xxhashBackend() first, or use createXxhHasher");
  const h = algorithm === "xxh64" ? new m.Xxh64() : m.xxh3.Xxh3.withSeed();
  return { update: (chunk) => void h.update(chunk), digest: () => hex64(h.digest()) };
}

/**
 * A streaming xxHash hasher. `backend` forces one implementation (tests compare both with
 * `xxhsum`); by default XXH64/XXH3 use the native module when it loads, XXH128 always WebAssembly.
 */
export async function createXxhHasher(algorithm: XxhAlgorithm, backend?: XxhBackend): Promise<Hasher> {
  if (algorithm !== "xxh128" && backend !== "wasm") {
    if ((await loadNative()) !== null) return createXxhHasherSync(algorithm);
    if (backend === "native") throw new Error(`the native xxHash module did not load: ${nativeError ?? "unknown"}`);
  }
  if (algorithm === "xxh128" && backend === "native") throw new Error("the native xxHash module has no streaming XXH128");
  const w = await loadWasm();
  const h = await (algorithm === "xxh64" ? w.createXXHash64() : algorithm === "xxh3" ? w.createXXHash3() : w.createXXHash128());
  h.init();
  return { update: (chunk) => void h.update(chunk), digest: () => h.digest("hex") };
}

/**
 * A synchronous one-shot xxHash for many small inputs (directory hashes hash a name and a hash per
 * file). Bun's one-shot XXH64/XXH3 are exact here (only chaining through the seed is not); XXH128
 * is the native one-shot when it loads, else one WebAssembly instance re-initialised per call.
 */
export async function xxhOneShot(algorithm: XxhAlgorithm): Promise<(data: Uint8Array) => string> {
  if (algorithm === "xxh64") return (data) => hex64(Bun.hash.xxHash64(data));
  if (algorithm === "xxh3") return (data) => hex64(Bun.hash.xxHash3(data));
  const m = await loadNative();
  if (m !== null) return (data) => m.xxh3.xxh128(data).toString(16).padStart(32, "0");
  const h = await (await loadWasm()).createXXHash128();
  return (data) => {
    h.init();
    h.update(data);
    return h.digest("hex");
  };
}

/** The xxHash of bytes in memory. */
export async function xxhOf(algorithm: XxhAlgorithm, data: Uint8Array): Promise<string> {
  return (await xxhOneShot(algorithm))(data);
}
