/**
 * Is a source file still what the scan saw? A copy is only reported once every file read matches
 * its scanned entry afterwards: a file that changed while it was read could be torn, and a move
 * must never delete a source that changed after it was copied.
 */
import type { Entry } from "./endpoints/endpoint.ts";
import { TransferError } from "./errors.ts";

/** SOURCE_CHANGED (retryable): the file no longer matches what the scan saw, so a copy could be torn. */
export function sourceChanged(path: string, why: string): TransferError {
  return new TransferError("SOURCE_CHANGED", `source file ${JSON.stringify(path)} changed while being copied (${why}); the transfer was stopped so no torn copy is reported — retry when the file is stable`, {
    details: { path },
  });
}

/**
 * Why `now` differs from the scanned `e`, or null when it does not: type, size, modification time,
 * and the change stamp (inode and ctime) when both sides have one.
 */
export function differsFromScan(e: Entry, now: Pick<Entry, "size" | "mtimeMs" | "change"> & { type?: Entry["type"] }): string | null {
  if (now.type !== undefined && now.type !== e.type) return `now a ${now.type}, scanned a ${e.type}`;
  if (now.size !== e.size) return `size ${e.size} → ${now.size}`;
  if (now.mtimeMs !== e.mtimeMs) return "modification time changed";
  if (e.change !== undefined && now.change !== undefined && now.change !== e.change) return "rewritten (inode or status-change time changed)";
  return null;
}

/** Throws SOURCE_CHANGED when `now` (null: gone) differs from the scanned `e`. */
export function assertUnchanged(path: string, e: Entry, now: Parameters<typeof differsFromScan>[1] | null): void {
  const why = now === null ? "it was removed" : differsFromScan(e, now);
  if (why !== null) throw sourceChanged(path, why);
}
