/**
 * Incremental content hashes, all computed in this process while the bytes stream: CRC-32
 * (Bun.hash.crc32, chainable through its seed), XXH3-64, XXH64 and XXH3-128 (mvp_core/hashing:
 * the system libxxhash through bun:ffi, else @node-rs/xxhash), and Bun's CryptoHasher for the rest.
 *
 * Default: xxh3. Measured on a verified 1 GiB local copy (docs/mhl.md, `bun run bench:hash`), XXH3
 * with libxxhash costs ~1.05× the CPU of the CRC-32 path for 64 bits instead of 32, is an ASC MHL
 * format every MHL tool reads, and `xxhsum -H3` computes it next to the data on a remote. Where an
 * end cannot compute it (an SSH host without xxhsum), CRC-32 comes next: a perl host computes it at
 * memory speed, and while it writes what we stream.
 */
import { createXxhHasherSync } from "../hashing/index.ts";
import type { HashAlgorithm } from "./endpoints/endpoint.ts";
import { TransferError } from "./errors.ts";

/** The order `hash: auto` picks from (the first both ends compute next to the data). */
export const HASH_PREFERENCE: readonly HashAlgorithm[] = ["xxh3", "crc32", "xxh128", "xxh64", "sha1", "sha256", "blake2b512", "md5"];

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

/** Algorithms this process computes incrementally (xxh128 needs libxxhash: createHasher says so otherwise). */
export const LOCAL_HASHES: readonly HashAlgorithm[] = ["xxh3", "xxh64", "xxh128", "crc32", "sha1", "sha256", "blake2b512", "md5"];

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
export function pickHash(a: readonly HashAlgorithm[], b: readonly HashAlgorithm[], preference: readonly HashAlgorithm[] = HASH_PREFERENCE): HashAlgorithm | null {
  return preference.find((h) => a.includes(h) && b.includes(h)) ?? null;
}
