/**
 * crc32_combine (zlib's, as GF(2) matrices): the CRC-32 of A‖B from CRC(A), CRC(B) and B's length.
 * A file sent as ranges over several streams gets its whole-file CRC-32 from the ranges' CRCs
 * without reading the file again; a couple of microseconds per combination (zlib does the same in
 * C; 32 squarings of a 32×32 bit matrix per doubling of the length).
 */

function gf2Times(mat: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i]!;
  return sum >>> 0;
}

function gf2Square(square: Uint32Array, mat: Uint32Array): void {
  for (let n = 0; n < 32; n++) square[n] = gf2Times(mat, mat[n]!);
}

/** CRC-32 of the concatenation of A (CRC `crc1`) and B (CRC `crc2`, `len2` bytes); unsigned. */
export function crc32Combine(crc1: number, crc2: number, len2: number): number {
  if (len2 <= 0) return crc1 >>> 0;
  const even = new Uint32Array(32);
  const odd = new Uint32Array(32);
  // The operator for one zero bit, then two, then four.
  odd[0] = 0xedb88320;
  for (let n = 1, row = 1; n < 32; n++, row <<= 1) odd[n] = row >>> 0;
  gf2Square(even, odd);
  gf2Square(odd, even);
  let crc = crc1 >>> 0;
  // Apply len2 zero bytes to crc1 (the first squaring gives the operator for one zero byte). Not
  // bit operations on len2: ranges and files may be longer than 2^32 bytes.
  let len = len2;
  for (;;) {
    gf2Square(even, odd);
    if (len % 2 === 1) crc = gf2Times(even, crc);
    len = Math.floor(len / 2);
    if (len === 0) break;
    gf2Square(odd, even);
    if (len % 2 === 1) crc = gf2Times(odd, crc);
    len = Math.floor(len / 2);
    if (len === 0) break;
  }
  return (crc ^ crc2) >>> 0;
}
