/**
 * Incremental content hashes. CRC-32 comes first: measured on these machines at ~11,800 MiB/s
 * (Bun.hash.crc32, chainable through its seed) against sha1 ~2,000, sha256 ~1,400, blake2b512 ~800
 * and md5 ~730 MiB/s. Bun's xxHash64 cannot be fed in chunks (the seed does not continue a hash),
 * so the local endpoint does not offer it; a remote endpoint may.
 */
import type { HashAlgorithm } from "./endpoints/endpoint.ts";

/** Fastest first, as measured (see docs/engine.md); the engine picks the first both endpoints list. */
export const HASH_PREFERENCE: readonly HashAlgorithm[] = ["crc32", "xxh64", "sha1", "sha256", "blake2b512", "md5"];

/** Algorithms this process can compute incrementally. */
export const LOCAL_HASHES: readonly HashAlgorithm[] = ["crc32", "sha1", "sha256", "blake2b512", "md5"];

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

/** A hasher for `algorithm`; throws UNSUPPORTED-worthy errors to the caller for algorithms not in LOCAL_HASHES. */
export function createHasher(algorithm: HashAlgorithm): Hasher {
  if (algorithm === "crc32") return new Crc32Hasher();
  if (algorithm === "xxh64") throw new Error("xxh64 cannot be computed incrementally in this process");
  const h = new Bun.CryptoHasher(algorithm);
  return { update: (chunk) => void h.update(chunk), digest: () => h.digest("hex") };
}

/** The first algorithm in HASH_PREFERENCE that both lists contain, or null. */
export function pickHash(a: readonly HashAlgorithm[], b: readonly HashAlgorithm[]): HashAlgorithm | null {
  return HASH_PREFERENCE.find((h) => a.includes(h) && b.includes(h)) ?? null;
}
