/**
 * Streaming xxHash (seed 0) as the ASC MHL and `xxhsum` print it: lowercase, big-endian hex.
 *
 * Three implementations, fastest first (docs/mhl.md, `bun run bench:hash`):
 * - "system": the system's libxxhash through bun:ffi (xxhash_system.ts), SIMD dispatched at run
 *   time: XXH3 and XXH128 faster than Bun's CRC-32. Needs Debian's libxxhash0.
 * - "native": `@node-rs/xxhash` (N-API, pinned): XXH64 and XXH3-64 incremental, built for baseline
 *   x86-64; its XXH128 is one-shot only. A per-platform optional package.
 * - "wasm": `hash-wasm` (WebAssembly, pinned): all three incremental, the slowest; always loads.
 * Each algorithm uses the first that loads; `xxhashBackend()` says which, and why not the others.
 */
import { createRequire } from "node:module";
import { loadSystemXxhash } from "./xxhash_system.ts";

/** The xxHash variants the ASC MHL names (xxh3 is XXH3-64, xxh128 is XXH3-128). */
export type XxhAlgorithm = "xxh64" | "xxh3" | "xxh128";

/** Every XxhAlgorithm, for validation and listings. */
export const XXH_ALGORITHMS: readonly XxhAlgorithm[] = ["xxh64", "xxh3", "xxh128"];

/** A running hash fed chunk by chunk; digest() returns lowercase hex (the engine's Hasher shape). */
export interface Hasher {
  update(chunk: Uint8Array): void;
  digest(): string;
}

/** An implementation of xxHash (see the file comment). */
export type XxhBackend = "system" | "native" | "wasm";

type NativeModule = typeof import("@node-rs/xxhash");
type WasmModule = typeof import("hash-wasm");

let wasmModule: Promise<WasmModule> | null = null;

// hash-wasm carries every algorithm it offers (argon2, bcrypt…) and decodes them when imported,
// ~50 ms: load it only when a fallback needs it, not at every process start.
function loadWasm(): Promise<WasmModule> {
  wasmModule ??= import("hash-wasm");
  return wasmModule;
}

let native: Promise<NativeModule | null> | null = null;
let nativeLoaded: NativeModule | null = null;
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

/**
 * The native module, loaded synchronously when nothing loaded it yet (Bun's require of an N-API
 * module is synchronous, ~25 ms once): the engine's hashers are created synchronously, on helper
 * threads too, where no earlier await could have loaded it. Null when it cannot load.
 */
function nativeSync(): NativeModule | null {
  if (nativeLoaded !== null || nativeError !== null) return nativeLoaded;
  try {
    nativeLoaded = createRequire(import.meta.url)("@node-rs/xxhash") as NativeModule;
  } catch (e) {
    nativeError = e instanceof Error ? e.message : String(e);
  }
  return nativeLoaded;
}

function systemFor(algorithm: XxhAlgorithm) {
  const { lib } = loadSystemXxhash();
  return lib !== null && (algorithm !== "xxh128" || lib.hasXxh128()) ? lib : null;
}

/** Which backend each algorithm uses in this process, and why the faster ones are not in use. */
export async function xxhashBackend(): Promise<{ xxh64: XxhBackend; xxh3: XxhBackend; xxh128: XxhBackend; unavailable: Partial<Record<XxhBackend, string>> }> {
  const sys = loadSystemXxhash();
  const m = await loadNative();
  const pick = (a: XxhAlgorithm): XxhBackend => (systemFor(a) !== null ? "system" : a !== "xxh128" && m !== null ? "native" : "wasm");
  const unavailable: Partial<Record<XxhBackend, string>> = {};
  if (sys.lib === null) unavailable.system = sys.reason ?? "unknown";
  else if (!sys.lib.hasXxh128()) unavailable.system = "XXH128 digest shim did not compile (XXH64/XXH3 still use the system library)";
  if (m === null) unavailable.native = nativeError ?? "unknown";
  return { xxh64: pick("xxh64"), xxh3: pick("xxh3"), xxh128: pick("xxh128"), unavailable };
}

function hex64(v: bigint): string {
  return v.toString(16).padStart(16, "0");
}

/**
 * A streaming hasher created synchronously, for the engine's synchronous `createHasher`: the system
 * library's, else the native module's (XXH64/XXH3, loaded synchronously if need be); throws when
 * neither is there (XXH128 without libxxhash: its streaming fallback, WebAssembly, is async only).
 */
export function createXxhHasherSync(algorithm: XxhAlgorithm): Hasher {
  const sys = systemFor(algorithm);
  if (sys !== null) return sys.create(algorithm);
  const m = algorithm === "xxh128" ? null : nativeSync();
  if (m === null) throw new Error(`no synchronous ${algorithm} here (neither ${loadSystemXxhash().reason ?? "libxxhash"} nor the native module): use createXxhHasher`);
  const h = algorithm === "xxh64" ? new m.Xxh64() : m.xxh3.Xxh3.withSeed();
  return { update: (chunk) => void h.update(chunk), digest: () => hex64(h.digest()) };
}

/**
 * A streaming xxHash hasher from the fastest backend that loads, or from `backend` when given
 * (tests compare all of them with `xxhsum`; throws when that one is not available here).
 */
export async function createXxhHasher(algorithm: XxhAlgorithm, backend?: XxhBackend): Promise<Hasher> {
  if (backend === undefined || backend === "system") {
    const sys = systemFor(algorithm);
    if (sys !== null) return sys.create(algorithm);
    if (backend === "system") throw new Error(`the system libxxhash cannot compute ${algorithm}: ${loadSystemXxhash().reason ?? "no XXH128 digest shim"}`);
  }
  if (algorithm !== "xxh128" && backend !== "wasm") {
    const m = await loadNative();
    if (m !== null) {
      const h = algorithm === "xxh64" ? new m.Xxh64() : m.xxh3.Xxh3.withSeed();
      return { update: (chunk) => void h.update(chunk), digest: () => hex64(h.digest()) };
    }
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
 * comes from the system library, else the native one-shot, else one WebAssembly instance
 * re-initialised per call.
 */
export async function xxhOneShot(algorithm: XxhAlgorithm): Promise<(data: Uint8Array) => string> {
  if (algorithm === "xxh64") return (data) => hex64(Bun.hash.xxHash64(data));
  if (algorithm === "xxh3") return (data) => hex64(Bun.hash.xxHash3(data));
  const sys = systemFor("xxh128");
  if (sys !== null) {
    return (data) => {
      const h = sys.create("xxh128");
      h.update(data);
      return h.digest();
    };
  }
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
