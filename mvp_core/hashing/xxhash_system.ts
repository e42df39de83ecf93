/**
 * xxHash from the system's libxxhash (Debian: libxxhash0, which the `xxhash` package that provides
 * `xxhsum` depends on) through bun:ffi. Its `_dispatch` entry points pick AVX2/AVX-512 at run time:
 * measured here ~70 GB/s of CPU for XXH3 and XXH128 on cached 256 KiB chunks, against ~19 for
 * `@node-rs/xxhash` (built for baseline x86-64) and ~47 for `Bun.hash.crc32` — so with it, XXH3
 * verification costs less than CRC-32 (docs/mhl.md). Optional: null, with the reason, where the
 * library is missing, and the caller falls back to the npm packages.
 */
import { FFIType, type Pointer, cc, dlopen, ptr } from "bun:ffi";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import SHIM_SOURCE from "./xxh128_digest.c" with { type: "text" };
import type { Hasher, XxhAlgorithm } from "./xxhash.ts";

const SONAME = "libxxhash.so.0";

const BASE = {
  XXH64_createState: { args: [], returns: FFIType.ptr },
  XXH64_freeState: { args: [FFIType.ptr], returns: FFIType.i32 },
  XXH64_reset: { args: [FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  XXH64_update: { args: [FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  XXH64_digest: { args: [FFIType.ptr], returns: FFIType.u64 },
  XXH3_createState: { args: [], returns: FFIType.ptr },
  XXH3_freeState: { args: [FFIType.ptr], returns: FFIType.i32 },
  XXH3_64bits_reset: { args: [FFIType.ptr], returns: FFIType.i32 },
  XXH3_64bits_digest: { args: [FFIType.ptr], returns: FFIType.u64 },
  XXH3_128bits_reset: { args: [FFIType.ptr], returns: FFIType.i32 },
} as const;

const UPDATE = { args: [FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 } as const;

type Update = (state: Pointer, data: Pointer, length: number) => number;

/** The system library's hashers. */
export interface SystemXxhash {
  /** Whether the run-time dispatch (SIMD) entry points were found. */
  dispatch: boolean;
  /** Whether XXH128 works: its digest needs the shim, compiled (~5 ms) the first time this is asked. */
  hasXxh128(): boolean;
  create(algorithm: XxhAlgorithm): Hasher;
}

// A hasher dropped before digest() would leak its C state: free it when it is collected.
const orphans = new FinalizationRegistry<() => void>((free) => free());
let live = 0;

/** How many C states are allocated and not yet freed (for the leak test and diagnostics). */
export function liveSystemStates(): number {
  return live;
}

function stateHasher(state: Pointer, update: Update, digest: () => string, freeState: () => void): Hasher {
  live++;
  let freed = false;
  const free = () => {
    if (freed) return;
    freed = true;
    live--;
    freeState();
  };
  let done = false;
  const token = {};
  const h: Hasher = {
    update(chunk) {
      if (done) throw new Error("update() after digest()");
      // Hashing needs no pointer for no bytes, and bun:ffi gives none for an empty array.
      if (chunk.byteLength > 0) update(state, ptr(chunk), chunk.byteLength);
    },
    digest() {
      if (done) throw new Error("digest() called twice");
      done = true;
      try {
        return digest();
      } finally {
        orphans.unregister(token);
        free();
      }
    },
  };
  orphans.register(h, free, token);
  return h;
}

function hex64(v: number | bigint): string {
  return BigInt.asUintN(64, BigInt(v)).toString(16).padStart(16, "0");
}

/**
 * The shim's source as a file for cc, which compiles only files. Imported as text (Bun inlines it,
 * in the engine CLI's single-file bundle too, where no .c file sits beside the code) and written
 * once per content to the temporary folder, renamed into place so concurrent processes never
 * compile a half-written file.
 */
function shimFile(): string {
  const file = path.join(os.tmpdir(), `ketter-xxh128-${Bun.hash(SHIM_SOURCE).toString(16)}.c`);
  if (!fs.existsSync(file)) {
    const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`;
    fs.writeFileSync(tmp, SHIM_SOURCE);
    fs.renameSync(tmp, file);
  }
  return file;
}

type Symbols = Record<string, (...args: never[]) => unknown>;

function open(): SystemXxhash {
  let dispatch = true;
  let symbols: Symbols;
  try {
    symbols = dlopen(SONAME, { ...BASE, XXH3_64bits_update_dispatch: UPDATE, XXH3_128bits_update_dispatch: UPDATE }).symbols as unknown as Symbols;
  } catch {
    // A build without XXH_DISPATCH: the portable entry points (SSE2 on x86-64).
    dispatch = false;
    symbols = dlopen(SONAME, { ...BASE, XXH3_64bits_update: UPDATE, XXH3_128bits_update: UPDATE }).symbols as unknown as Symbols;
  }
  const call = <T>(name: string, ...a: unknown[]) => (symbols[name] as unknown as (...x: unknown[]) => T)(...a);
  const u3 = symbols[dispatch ? "XXH3_64bits_update_dispatch" : "XXH3_64bits_update"] as unknown as Update;
  const u128 = symbols[dispatch ? "XXH3_128bits_update_dispatch" : "XXH3_128bits_update"] as unknown as Update;
  // undefined: not compiled yet; null: the compile failed (XXH128 then comes from another backend).
  let digest128: ((state: Pointer, out: Pointer) => void) | null | undefined;
  const shim = () => {
    if (digest128 === undefined) {
      try {
        const lib = cc({ source: shimFile(), library: [`:${SONAME}`], symbols: { ketter_xxh128_digest: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.void } } });
        digest128 = lib.symbols.ketter_xxh128_digest as (state: Pointer, out: Pointer) => void;
      } catch {
        digest128 = null;
      }
    }
    return digest128;
  };
  return {
    dispatch,
    hasXxh128: () => shim() !== null,
    create(algorithm) {
      if (algorithm === "xxh64") {
        const st = call<Pointer>("XXH64_createState");
        call("XXH64_reset", st, 0);
        return stateHasher(st, symbols.XXH64_update as unknown as Update, () => hex64(call<bigint>("XXH64_digest", st)), () => void call("XXH64_freeState", st));
      }
      const st = call<Pointer>("XXH3_createState");
      const free = () => void call("XXH3_freeState", st);
      if (algorithm === "xxh3") {
        call("XXH3_64bits_reset", st);
        return stateHasher(st, u3, () => hex64(call<bigint>("XXH3_64bits_digest", st)), free);
      }
      const d128 = shim();
      if (d128 === null || d128 === undefined) {
        free();
        throw new Error("XXH128 needs the digest shim, which did not compile");
      }
      call("XXH3_128bits_reset", st);
      return stateHasher(st, u128, () => {
        const out = new Uint8Array(16);
        d128(st, ptr(out));
        return Buffer.from(out).toString("hex");
      }, free);
    },
  };
}

let loaded: { lib: SystemXxhash | null; reason?: string } | null = null;

/** The system libxxhash, opened once; lib null with the reason when it cannot be used. */
export function loadSystemXxhash(): { lib: SystemXxhash | null; reason?: string } {
  if (loaded === null) {
    try {
      loaded = { lib: open() };
    } catch (e) {
      loaded = { lib: null, reason: `${SONAME}: ${e instanceof Error ? e.message : String(e)}` };
    }
  }
  return loaded;
}
