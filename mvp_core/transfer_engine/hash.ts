/**
 * Incremental content hashes, all computed in this process while the bytes stream: CRC-32
 * (Bun.hash.crc32, chainable through its seed), XXH3-64, XXH64 and XXH3-128 (mvp_core/hashing:
 * the system libxxhash through bun:ffi, else @node-rs/xxhash), and Bun's CryptoHasher for the rest.
 *
 * `hash: auto` takes the first algorithm in the target's own list (capabilities().hashes, cheapest
 * there first) that the source side computes too. In this process that is xxh3: measured on the
 * engine's verified 1 GiB local copy (docs/mhl.md) it costs ~0.9-1.0× the CRC-32 path's wall time
 * and ~1.1× its CPU, for 64 bits instead of 32, and it is an ASC MHL format every MHL tool reads.
 * An SSH target lists CRC-32 first: its writers compute it while writing what we stream, so it
 * costs nothing, where xxh3 (xxhsum) re-reads every file (+35-60 % on 10,000 small files pushed).
 */
import { createXxhHasherSync } from "../hashing/index.ts";
import type { HashAlgorithm } from "./endpoints/endpoint.ts";
import { TransferError } from "./errors.ts";


/**
 * With an ASC MHL, the verification hash is also what the manifest records, so it must be an MHL
 * format: xxh3 first (as above), md5/sha1 last (10-20× the cost of any xxHash; a remote without
 * xxhsum computes them next to the data with perl or coreutils instead of reading every file back).
 */
export const MHL_HASH_PREFERENCE: readonly HashAlgorithm[] = ["xxh3", "xxh128", "xxh64", "sha1", "md5"];

/** The hashes an ASC MHL manifest can record (its formats besides c4). */
export function isMhlHash(a: HashAlgorithm): boolean {
  return MHL_HASH_PREFERENCE.includes(a);
}

/**
 * Algorithms this process computes incrementally, cheapest first as measured (xxh128 needs
 * libxxhash to stream: createHasher says so otherwise; without it, it falls behind sha1).
 */
export const LOCAL_HASHES: readonly HashAlgorithm[] = ["xxh3", "crc32", "xxh128", "xxh64", "sha1", "sha256", "blake2b512", "md5"];

/** A running hash fed chunk by chunk; digest() returns lowercase hex. */
export interface Hasher {
  update(chunk: Uint8Array): void;
  digest(): string;
}

class Crc32Hasher implements Hasher {
  private crc = 0;
  update(chunk: Uint8Array): void {
    this.crc = Bun.hash.crc32(chunk, this.crc);
  }
  digest(): string {
    return crc32Hex(this.crc);
  }
}

/** A CRC-32 as the hex digest every hasher of it prints (8 lowercase digits). */
export function crc32Hex(crc: number): string {
  return (crc >>> 0).toString(16).padStart(8, "0");
}

/** A hasher for `algorithm`; UNSUPPORTED when this process cannot stream it (XXH128 without libxxhash0). */
export function createHasher(algorithm: HashAlgorithm): Hasher {
  if (algorithm === "crc32") return new Crc32Hasher();
  if (algorithm === "xxh3" || algorithm === "xxh64" || algorithm === "xxh128") {
    try {
      return createXxhHasherSync(algorithm);
    } catch (err) {
      throw new TransferError("UNSUPPORTED", `${algorithm} cannot be computed while streaming here (${(err as Error).message}); install libxxhash0 or choose another hash`, { cause: err });
    }
  }
  const h = new Bun.CryptoHasher(algorithm);
  return { update: (chunk) => void h.update(chunk), digest: () => h.digest("hex") };
}

/** The first algorithm of `preference` that both lists contain, or null. */
export function pickHash(a: readonly HashAlgorithm[], b: readonly HashAlgorithm[], preference: readonly HashAlgorithm[]): HashAlgorithm | null {
  return preference.find((h) => a.includes(h) && b.includes(h)) ?? null;
}
