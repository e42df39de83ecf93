/**
 * The ASC MHL hash formats (Appendix D): how each is computed, written and turned back into the
 * bytes that directory hashes are built from (Appendix G).
 */
import { c4Of, c4ToDigest, createC4Hasher, isC4 } from "../hashing/c4.ts";
import { type Hasher, type XxhAlgorithm, createXxhHasher, xxhOneShot } from "../hashing/xxhash.ts";
import { MhlError } from "./errors.ts";

/** The six formats a manifest may carry, in the order the XSD's sequence requires them. */
export const MHL_HASH_FORMATS = ["c4", "md5", "sha1", "xxh128", "xxh3", "xxh64"] as const;

/** One of MHL_HASH_FORMATS. */
export type MhlHashFormat = (typeof MHL_HASH_FORMATS)[number];

const HEX_LENGTH: Record<Exclude<MhlHashFormat, "c4">, number> = { md5: 32, sha1: 40, xxh128: 32, xxh3: 16, xxh64: 16 };

/** Whether `s` names a format. */
export function isHashFormat(s: string): s is MhlHashFormat {
  return (MHL_HASH_FORMATS as readonly string[]).includes(s);
}

/** Whether `value` is a well-formed digest of `format` (lowercase hex of the right length, or a C4 id). */
export function isHashValue(format: MhlHashFormat, value: string): boolean {
  if (format === "c4") return isC4(value);
  return value.length === HEX_LENGTH[format] && /^[0-9a-f]+$/.test(value);
}

/** A digest as written in a manifest, normalised for comparison (hex is compared case-insensitively). */
export function normaliseHashValue(format: MhlHashFormat, value: string): string {
  return format === "c4" ? value.trim() : value.trim().toLowerCase();
}

/** A streaming hasher for `format`; digest() returns the manifest's text form. */
export async function createFormatHasher(format: MhlHashFormat): Promise<Hasher> {
  if (format === "c4") return createC4Hasher();
  if (format === "md5" || format === "sha1") {
    const h = new Bun.CryptoHasher(format);
    return { update: (chunk) => void h.update(chunk), digest: () => h.digest("hex") };
  }
  return createXxhHasher(format as XxhAlgorithm);
}

/** A synchronous digest function for `format` (prepared once, then called per small input). */
export async function digestFunction(format: MhlHashFormat): Promise<(data: Uint8Array) => string> {
  if (format === "c4") return c4Of;
  if (format === "md5" || format === "sha1") return (data) => new Bun.CryptoHasher(format).update(data).digest("hex");
  return xxhOneShot(format);
}

/** The bytes a digest stands for: hex decoded (big-endian as written), or the SHA-512 inside a C4 id. */
export function hashBytes(format: MhlHashFormat, value: string): Uint8Array {
  if (!isHashValue(format, value)) throw new MhlError("BAD_INPUT", `${JSON.stringify(value)} is not a ${format} digest`);
  if (format === "c4") return c4ToDigest(value);
  return hexToBytes(value);
}

// Directory hashes decode two digests per file: a table lookup, not parseInt on slices.
function nibble(c: number): number {
  return c <= 57 ? c - 48 : c - 87; // "0"-"9", "a"-"f" (isHashValue checked the alphabet)
}

function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = (nibble(hex.charCodeAt(2 * i)) << 4) | nibble(hex.charCodeAt(2 * i + 1));
  return out;
}

/**
 * Appendix G, the hash of a list of hashes: sorted as strings (the reference implementation sorts
 * the written form, which for C4 is not byte order), their bytes concatenated, hashed. An empty
 * list gives the digest of nothing (an empty folder).
 */
export function hashOfHashes(format: MhlHashFormat, digest: (data: Uint8Array) => string, values: readonly string[]): string {
  const sorted = [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const parts = sorted.map((v) => hashBytes(format, v));
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return digest(all);
}
