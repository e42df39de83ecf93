/**
 * Byte extents of a file with their CRC-32s: what a ranged copy has written, what a journal
 * remembers, what a resumed transfer keeps. Adjacent extents merge (crc32_combine), so a file
 * written in many ranges is described by a few extents, and a complete one by one.
 */
import { crc32Combine } from "../crc32_combine.ts";

/** Bytes [offset, offset + length) of a file, and their CRC-32 (unsigned). */
export interface Extent {
  offset: number;
  length: number;
  crc: number;
}

/** `extents` sorted, with touching ones merged; overlapping ones are kept apart (never expected). */
export function coalesce(extents: readonly Extent[]): Extent[] {
  const sorted = extents.filter((e) => e.length > 0).sort((a, b) => a.offset - b.offset);
  const out: Extent[] = [];
  for (const e of sorted) {
    const last = out.at(-1);
    if (last !== undefined && last.offset + last.length === e.offset) {
      out[out.length - 1] = { offset: last.offset, length: last.length + e.length, crc: crc32Combine(last.crc, e.crc, e.length) };
    } else out.push({ ...e });
  }
  return out;
}

/** The parts of [0, size) no extent covers, in order. */
export function gaps(extents: readonly Extent[], size: number): { offset: number; length: number }[] {
  const out: { offset: number; length: number }[] = [];
  let at = 0;
  for (const e of coalesce(extents)) {
    if (e.offset > at) out.push({ offset: at, length: Math.min(e.offset, size) - at });
    at = Math.max(at, e.offset + e.length);
  }
  if (at < size) out.push({ offset: at, length: size - at });
  return out.filter((g) => g.length > 0);
}

/** The CRC-32 of the whole file when `extents` cover [0, size) exactly, else null. */
export function wholeCrc(extents: readonly Extent[], size: number): number | null {
  const merged = coalesce(extents);
  if (size === 0) return merged.length === 0 ? 0 : null;
  const only = merged[0];
  return merged.length === 1 && only !== undefined && only.offset === 0 && only.length === size ? only.crc : null;
}

/** Bytes covered. */
export function coveredBytes(extents: readonly Extent[]): number {
  return coalesce(extents).reduce((n, e) => n + e.length, 0);
}
