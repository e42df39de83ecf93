/** Content hashes beyond the engine's: streaming xxHash (XXH64, XXH3, XXH128) and C4 ids. */
export { createXxhHasher, createXxhHasherSync, xxhOneShot, xxhashBackend, XXH_ALGORITHMS } from "./xxhash.ts";
export type { Hasher, XxhAlgorithm, XxhBackend } from "./xxhash.ts";
export { c4Of, c4FromDigest, c4ToDigest, createC4Hasher, isC4 } from "./c4.ts";
