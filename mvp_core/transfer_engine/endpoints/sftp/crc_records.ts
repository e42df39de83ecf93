/**
 * CRC-32s the remote computed while writing files (writer lanes, the perl writer, the perl
 * unpackers), kept so a CRC-32 verification need not read those files again. A record follows its
 * file through a rename and is dropped when the file is rewritten or removed.
 */

/** One file's CRC-32 (8 hex digits) and size, as the remote computed them while writing it. */
export interface CrcRecord {
  crc32: string;
  size: number;
}

/** The records of one endpoint, keyed by absolute remote path. */
export class CrcRecords {
  private byPath = new Map<string, CrcRecord>();

  get(abs: string): CrcRecord | undefined {
    return this.byPath.get(abs);
  }

  set(abs: string, r: CrcRecord): void {
    this.byPath.set(abs, r);
  }

  /** Drops the record of `abs` (about to be rewritten). */
  drop(abs: string): void {
    this.byPath.delete(abs);
  }

  /** Moves (to !== null) or drops the records at or below `from`. */
  move(from: string, to: string | null): void {
    for (const [p, v] of [...this.byPath]) {
      if (p !== from && !p.startsWith(`${from}/`)) continue;
      this.byPath.delete(p);
      if (to !== null) this.byPath.set(to + p.slice(from.length), v);
    }
  }
}
