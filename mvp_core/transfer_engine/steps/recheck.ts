/**
 * Step 3b: the source re-checked after its files were read, where the source can tell many files'
 * state in one call (Endpoint.statMany: a remote shell's stat). Files read over SFTP are checked
 * one by one against size and mtime only — SFTP shows no inode or ctime, and mtimes in whole
 * seconds — so an in-place rewrite that restores size and mtime (`touch -r`) would pass. This
 * compares every copied file's inode and ctime (Entry.change) with the scan: a rewrite since the
 * scan fails the transfer (or, with skipFileErrors, that file) before anything is committed.
 */
import type { Entry } from "../endpoints/endpoint.ts";
import { joinRel } from "../paths.ts";
import type { Run } from "../run.ts";
import { differsFromScan, sourceChanged } from "../source_check.ts";

const BATCH = 1000;

/** Throws SOURCE_CHANGED for the first copied file that changed since the scan (or records it, skipFileErrors). */
export async function recheckSource(run: Run, files: readonly Entry[], sourcePath: string): Promise<void> {
  const statMany = run.source.statMany?.bind(run.source);
  if (statMany === undefined) return;
  const scanned = files.filter((f) => f.change !== undefined && !run.ledger.failed.has(f.path));
  for (let i = 0; i < scanned.length; i += BATCH) {
    const batch = scanned.slice(i, i + BATCH);
    const now = await statMany(batch.map((f) => joinRel(sourcePath, f.path)), { signal: run.signal });
    for (const f of batch) {
      const p = joinRel(sourcePath, f.path);
      const seen = now.get(p) ?? null;
      const why = seen === null ? "it was removed" : differsFromScan(f, seen);
      if (why === null) continue;
      const err = sourceChanged(p, why);
      if (!run.ledger.fail(f, err)) throw err;
    }
  }
}
