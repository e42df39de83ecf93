/**
 * CRC-32s the remote computed while writing files (writer lanes, the perl writer, the perl
 * unpackers), kept so a CRC-32 verification need not read those files again. A record follows its
 * file through a rename and is dropped when the file is rewritten or removed. A file written as
 * ranges (several streams, or a resumed transfer re-checking what an earlier attempt wrote) has a
 * record per range; once the ranges cover it from offset 0 without a gap, their CRC-32s combine
 * into the file's (crc32_combine: no second read).
 */
import { crc32Combine } from "../../crc32_combine.ts";
import { crc32Hex } from "../../hash.ts";

/** One file's CRC-32 (8 hex digits) and size, as the remote computed them while writing it. */
export interface CrcRecord {
  crc32: string;
  size: number;
}

/** The records of one endpoint, keyed by absolute remote path. */
export class CrcRecords {
  private byPath = new Map<string, CrcRecord>();
  /** Ranges of files, by offset. */
  private ranges = new Map<string, Map<number, CrcRecord>>();

  /** The file's record: written whole, or combined from ranges covering it from offset 0. */
  get(abs: string): CrcRecord | undefined {
    return this.byPath.get(abs) ?? this.combined(abs);
  }

  set(abs: string, r: CrcRecord): void {
    this.ranges.delete(abs);
    this.byPath.set(abs, r);
  }

  /** Records the range of `abs` at `offset` (replacing one recorded at the same offset). */
  setRange(abs: string, offset: number, r: CrcRecord): void {
    this.byPath.delete(abs);
    let m = this.ranges.get(abs);
    if (m === undefined) this.ranges.set(abs, (m = new Map()));
    m.set(offset, r);
  }

  /** Drops the record of `abs` (about to be rewritten). */
  drop(abs: string): void {
    this.byPath.delete(abs);
    this.ranges.delete(abs);
  }

  /** Moves (to !== null) or drops the records at or below `from`. */
  move(from: string, to: string | null): void {
    for (const map of [this.byPath, this.ranges] as Map<string, unknown>[]) {
      for (const [p, v] of [...map]) {
        if (p !== from && !p.startsWith(`${from}/`)) continue;
        map.delete(p);
        if (to !== null) map.set(to + p.slice(from.length), v);
      }
    }
  }

  /**
   * The ranges of `abs` chained from offset 0 as far as they go without a gap. The verification
   * compares sizes before hashes, so a file longer than the chain fails on its size first.
   */
  private combined(abs: string): CrcRecord | undefined {
    const m = this.ranges.get(abs);
    if (m === undefined) return undefined;
    let crc = 0;
    let pos = 0;
    for (let r = m.get(0); r !== undefined && r.size > 0; r = m.get(pos)) {
      crc = crc32Combine(crc, parseInt(r.crc32, 16), r.size);
      pos += r.size;
    }
    return pos === 0 ? undefined : { crc32: crc32Hex(crc), size: pos };
  }
}
