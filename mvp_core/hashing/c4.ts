/**
 * C4 ids (SMPTE ST 2114), the ASC MHL's hash of manifests in chain files and references: the
 * SHA-512 digest as a base-58 number (alphabet without 0, O, I, l), left-padded with "1" (zero)
 * to 88 digits, prefixed "c4" — 90 characters.
 */
import type { Hasher } from "./xxhash.ts";

const ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const DIGITS = 88;
const C4_RE = /^c4[1-9A-HJ-NP-Za-km-z]{88}$/;

/** The C4 id of a 64-byte SHA-512 digest. */
export function c4FromDigest(digest: Uint8Array): string {
  if (digest.length !== 64) throw new Error(`a C4 id encodes a 64-byte SHA-512 digest, got ${digest.length} bytes`);
  let n = 0n;
  for (const b of digest) n = (n << 8n) | BigInt(b);
  let s = "";
  while (n > 0n) {
    s = ALPHABET[Number(n % 58n)] + s;
    n /= 58n;
  }
  return `c4${s.padStart(DIGITS, "1")}`;
}

/** The 64-byte SHA-512 digest a C4 id encodes (directory hashes hash these bytes); throws on a malformed id. */
export function c4ToDigest(id: string): Uint8Array {
  if (!isC4(id)) throw new Error(`${JSON.stringify(id)} is not a C4 id ("c4" and 88 base-58 digits)`);
  let n = 0n;
  for (let i = 2; i < id.length; i++) n = n * 58n + BigInt(ALPHABET.indexOf(id[i] as string));
  const out = new Uint8Array(64);
  for (let i = 63; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  if (n !== 0n) throw new Error(`${JSON.stringify(id)} encodes more than 512 bits`);
  return out;
}

/** Whether `s` has the form of a C4 id. */
export function isC4(s: string): boolean {
  return C4_RE.test(s);
}

/** A streaming C4 hasher (SHA-512 underneath); digest() returns the C4 id. */
export function createC4Hasher(): Hasher {
  const h = new Bun.CryptoHasher("sha512");
  return { update: (chunk) => void h.update(chunk), digest: () => c4FromDigest(new Uint8Array(h.digest())) };
}

/** The C4 id of bytes in memory (a manifest file). */
export function c4Of(data: Uint8Array): string {
  return c4FromDigest(new Uint8Array(new Bun.CryptoHasher("sha512").update(data).digest()));
}
