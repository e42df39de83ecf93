/**
 * Per-file truth for one transfer: every file's outcome (skipped, verified, failed), reported to the
 * caller in batches (the worker writes them to Postgres a batch per statement, not a row per file),
 * with counts and the first failures for the summary. skipFileErrors decides here which failures
 * stay a file's own instead of stopping the transfer.
 */
import type { Entry, HashAlgorithm } from "./endpoints/endpoint.ts";
import { isTransferError } from "./errors.ts";
import type { FileCounts, FileOutcome } from "./spec.ts";

/** Outcomes reported per callback. */
const BATCH = 1000;
/** Failures kept in full for the result (all are reported through onFiles). */
const KEPT_FAILURES = 50;
/** What can go wrong with one file without saying anything about the others. */
const FILE_CODES = new Set(["SOURCE_CHANGED", "SOURCE_NOT_FOUND", "PERMISSION_DENIED", "VERIFY_FAILED", "IO_ERROR", "UNSUPPORTED", "MHL_MISMATCH"]);

export class FileLedger {
  readonly counts: FileCounts = { skipped: 0, verified: 0, failed: 0 };
  readonly failures: { path: string; code: string; message: string }[] = [];
  /** Paths (relative to the source) of the files that failed. */
  readonly failed = new Set<string>();
  private pending: FileOutcome[] = [];

  constructor(
    private readonly onFiles: ((batch: FileOutcome[]) => void) | undefined,
    private readonly skipFileErrors: boolean,
  ) {}

  skipped(files: readonly Entry[]): void {
    for (const f of files) this.add({ path: f.path, size: f.size, state: "skipped" });
    this.counts.skipped += files.length;
  }

  verified(files: readonly Entry[], algorithm: HashAlgorithm | null, hashes: ReadonlyMap<string, string>): void {
    for (const f of files) {
      const value = hashes.get(f.path);
      this.add({ path: f.path, size: f.size, state: "verified", ...(algorithm !== null && value !== undefined ? { hash: { algorithm, value } } : {}) });
    }
    this.counts.verified += files.length;
  }

  /**
   * Records `err` as `e`'s own failure and returns true when skipFileErrors allows it (a failure of
   * that file alone); false means the transfer must stop.
   */
  fail(e: Entry, err: unknown): boolean {
    if (!this.skipFileErrors || !isTransferError(err) || !FILE_CODES.has(err.code) || this.failed.has(e.path)) return false;
    this.failed.add(e.path);
    this.counts.failed++;
    const error = { code: err.code, message: err.message };
    if (this.failures.length < KEPT_FAILURES) this.failures.push({ path: e.path, ...error });
    this.add({ path: e.path, size: e.size, state: "failed", error });
    return true;
  }

  /** Hands the outcomes not reported yet to the caller. */
  flush(): void {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.onFiles?.(batch);
  }

  private add(o: FileOutcome): void {
    if (this.onFiles === undefined) return;
    this.pending.push(o);
    if (this.pending.length >= BATCH) this.flush();
  }
}
