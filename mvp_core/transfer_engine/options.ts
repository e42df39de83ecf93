/** Engine tuning knobs, with every default in one place (see docs/engine.md for the measurements). */
import { TransferError } from "./errors.ts";

/** Thresholds and limits; pass a Partial to transfer() to override (tests lower the zip limits). */
export interface EngineOptions {
  /** `auto` picks zip for a folder holding at least this many files smaller than zipSmallFileBytes. */
  zipMinSmallFiles: number;
  /**
   * The same, toward a target that unpacks a stream as it arrives (unzipStream): measured with a
   * sync re-run of 10 changed files at 20 ms, zip 1.15 s against 1.33 s direct (bench:sync).
   */
  zipMinSmallFilesStreaming: number;
  zipSmallFileBytes: number;
  /** Entries per archive: plain zip (no Zip64) stops at 65,535. */
  zipMaxEntries: number;
  /** Bytes per archive: plain zip offsets are 32-bit; staying well below also bounds staging space. */
  zipMaxArchiveBytes: number;
  /**
   * Files this large or larger never go into an archive. An archive saves per-file overhead, which
   * is negligible next to a file of a few MiB, while archiving it costs a write and a read more at
   * the destination and fflate's JavaScript CRC-32 (~460 MiB/s measured); plain zip caps at 4 GiB − 1.
   */
  zipMaxEntryBytes: number;
  /** Archive streams sent at once to a destination that unpacks as bytes arrive (one unpacker each). */
  zipStreams: number;
  /** fflate emits tiny chunks; they are gathered into writes of this size. */
  zipWriteBufferBytes: number;
  /** Files copied at once through the generic (endpoint streams) path. */
  concurrency: number;
  /**
   * Files under zipSmallFileBytes copied at once through that path, beside the `concurrency`
   * larger ones: each costs a few round trips (open, close, attributes) and almost no memory, so
   * over a WAN many in flight is what makes them fast (the brief: 10,000 tiny files over SFTP, one
   * at a time 7 s, 16 in flight 1.9 s).
   */
  smallFileConcurrency: number;
  /** Files up to this size are read in one call where the source offers it (readWhole, copyFilesFrom). */
  wholeFileBytes: number;
  /** Read-rate limit of the whole transfer, in bytes per second, whatever reads (0: none). */
  maxBytesPerSec: number;
  /** Extra free space required at the destination beyond the data itself. */
  spaceMarginBytes: number;
  /** Minimum interval between onProgress calls within a phase (0 = every update). */
  progressIntervalMs: number;
  /**
   * Files this large or larger travel as ranges (steps/copy_ranged.ts): over several streams where
   * an endpoint carries them (streamCapacity), and resumable range by range after a fault.
   */
  rangeMinFileBytes: number;
  /** The largest range; a smaller file is cut into one range per stream. */
  rangeMaxBytes: number;
  /** Streams per transfer at most, whatever the endpoints could carry (1: one at a time). */
  maxStreams: number;
  /** The progress journal is written at most this often (steps/journal.ts). */
  journalIntervalMs: number;
  /**
   * A resumed transfer re-checks, block by block, up to this many bytes past each point the
   * journal confirmed: bytes written but not yet reported when the fault came (steps/resume.ts).
   */
  resumeProbeBytes: number;
}

/** The defaults; chosen by measurement, see docs/engine.md. */
export const DEFAULT_ENGINE_OPTIONS: Readonly<EngineOptions> = Object.freeze({
  zipMinSmallFiles: 1000,
  zipMinSmallFilesStreaming: 4,
  zipSmallFileBytes: 256 * 1024,
  zipMaxEntries: 65_535,
  zipMaxArchiveBytes: 2 * 1024 ** 3,
  zipMaxEntryBytes: 4 << 20,
  zipWriteBufferBytes: 1 << 20,
  zipStreams: 2,
  concurrency: 4,
  smallFileConcurrency: 32,
  wholeFileBytes: 1 << 20,
  maxBytesPerSec: 0,
  spaceMarginBytes: 16 << 20,
  progressIntervalMs: 100,
  rangeMinFileBytes: 64 << 20,
  rangeMaxBytes: 64 << 20,
  maxStreams: 8,
  journalIntervalMs: 1000,
  resumeProbeBytes: 64 << 20,
});

/** Defaults overridden by `partial`; numbers must be positive (INVALID_SPEC otherwise). */
export function resolveOptions(partial: Partial<EngineOptions> | undefined): EngineOptions {
  const out = { ...DEFAULT_ENGINE_OPTIONS, ...partial };
  for (const [k, v] of Object.entries(out)) {
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new TransferError("INVALID_SPEC", `engine option ${k} must be a non-negative number, got ${String(v)}`);
  }
  out.zipMaxEntries = Math.min(out.zipMaxEntries, 65_535);
  out.zipMaxEntryBytes = Math.min(out.zipMaxEntryBytes, 4 * 1024 ** 3 - 1);
  out.zipMaxArchiveBytes = Math.min(out.zipMaxArchiveBytes, 4 * 1024 ** 3 - 1);
  out.concurrency = Math.max(1, Math.floor(out.concurrency));
  out.smallFileConcurrency = Math.max(1, Math.floor(out.smallFileConcurrency));
  out.zipStreams = Math.max(1, Math.floor(out.zipStreams));
  out.maxStreams = Math.max(1, Math.floor(out.maxStreams));
  out.rangeMaxBytes = Math.max(1 << 20, out.rangeMaxBytes);
  return out;
}
