/**
 * Step 3 (direct strategy): files copied one by one into the staging tree, hashing the source bytes
 * as they are read. Where the target can copy from the source faster than the streams can (the
 * optional Endpoint.copyFilesFrom: the local adapter's kernel copies and two threads), it does;
 * otherwise the files stream through the endpoints with bounded concurrency. Either way each file
 * is checked against the scan (size, mtime, inode and ctime where seen) after it is read: a file
 * that changed meanwhile fails the transfer with SOURCE_CHANGED instead of producing a torn copy.
 */
import type { Entry, HashAlgorithm } from "../endpoints/endpoint.ts";
import { throwIfCancelled } from "../cancel.ts";
import { fromSystemError } from "../errors.ts";
import { crc32Hex, createHasher } from "../hash.ts";
import { joinRel } from "../paths.ts";
import { runPool } from "../pool.ts";
import type { Run } from "../run.ts";
import { assertUnchanged, sourceChanged } from "../source_check.ts";
import { copyRanged } from "./copy_ranged.ts";
import type { Extent } from "./extents.ts";
import type { Journal } from "./journal.ts";

/** Where a step reads from and writes to, relative to each endpoint's root. */
export interface Locations {
  sourcePath: string;
  stagingPath: string;
}

/** How the streamed files travel: big ones as ranges over `streams` streams, each finished file in the journal. */
export interface StreamPlan {
  streams: number;
  journal: Journal;
  /** What a resume kept of partly sent big files, by entry path. */
  kept: ReadonlyMap<string, readonly Extent[]>;
}

/**
 * Copies `files` into the staging tree; records each source hash into `hashes` (keyed by entry
 * path). Where the target's fast path declines, files of at least rangeMinFileBytes travel as
 * ranges (copy_ranged.ts) beside the others.
 */
export async function copyFiles(run: Run, files: readonly Entry[], loc: Locations, alg: HashAlgorithm | null, hashes: Map<string, string>, streams: StreamPlan): Promise<void> {
  const { source, target } = run;
  const fast = target.copyFilesFrom?.(source, files, {
    sourcePath: loc.sourcePath,
    targetPath: loc.stagingPath,
    hash: alg,
    wholeFileBytes: run.opts.wholeFileBytes,
    onProgress: (f, b) => run.progress.add(f, b),
    ...(run.spec.skipFileErrors ? { onFileError: (e: Entry, err: unknown) => !run.signal?.aborted && run.ledger.fail(e, err) } : {}),
    ...(run.signal ? { signal: run.signal } : {}),
    ...(run.throttle ? { throttle: run.throttle } : {}),
  });
  if (fast) {
    for (const [p, h] of await fast) hashes.set(p, h);
    return;
  }
  // Small files many at once, large ones a few at once (see EngineOptions); the first failure in
  // either stops both from starting more, and is the one reported.
  let failure: { err: unknown } | null = null;
  const copy = async (e: Entry): Promise<void> => {
    if (failure) throw failure.err;
    try {
      const digest = await copyStream(run, e, joinRel(loc.sourcePath, e.path), joinRel(loc.stagingPath, e.path), alg, streams.journal);
      if (digest !== undefined) hashes.set(e.path, digest);
    } catch (caught) {
      const err = fromSystemError(caught, joinRel(loc.sourcePath, e.path), "copy");
      // skipFileErrors: this file's own failure is recorded and the others go on (its partial copy
      // is removed with the other failed files' before the verification).
      if (!run.signal?.aborted && run.ledger.fail(e, err)) return;
      failure ??= { err };
      throw err;
    }
  };
  const ranged = files.filter((f) => f.size >= run.opts.rangeMinFileBytes);
  const small = files.filter((f) => f.size < run.opts.zipSmallFileBytes);
  const large = files.filter((f) => f.size >= run.opts.zipSmallFileBytes && f.size < run.opts.rangeMinFileBytes);
  const rangedFiles = ranged.map((e) => ({ entry: e, src: joinRel(loc.sourcePath, e.path), dst: joinRel(loc.stagingPath, e.path), kept: streams.kept.get(e.path) ?? [] }));
  const sendRanges = async (): Promise<void> => {
    try {
      await copyRanged(run, rangedFiles, streams.streams, alg, hashes, streams.journal, () => failure?.err);
    } catch (err) {
      failure ??= { err };
      throw err;
    }
  };
  await Promise.allSettled([sendRanges(), runPool(small, run.opts.smallFileConcurrency, copy), runPool(large, run.opts.concurrency, copy)]);
  if (failure) throw (failure as { err: unknown }).err;
}

/** Copies one file through the endpoints' streams (any endpoint pair); the journal learns it arrived. */
async function copyStream(run: Run, e: Entry, src: string, dst: string, alg: HashAlgorithm | null, journal: Journal): Promise<string | undefined> {
  const { source, target, signal } = run;
  throwIfCancelled(signal);
  // The journal keeps a CRC-32 of every file whatever the verification hashes (~11 GB/s here).
  const h = alg === null || alg === "crc32" ? null : createHasher(alg);
  let crc = 0;
  const w = await target.openWrite(dst, { signal, mode: e.mode, size: e.size });
  let n = 0;
  try {
    // Each chunk is hashed and written (the writer copies what it keeps) before the next is read.
    for await (const chunk of source.openRead(src, { signal, reuseBuffer: true })) {
      crc = Bun.hash.crc32(chunk, crc);
      h?.update(chunk);
      n += chunk.length;
      if (n > e.size) throw sourceChanged(src, `grew beyond the scanned ${e.size} bytes`);
      await w.write(chunk);
      run.progress.add(0, chunk.length);
      // Paced after the chunk: the budget holds back the next read (a stream reads ahead by one chunk).
      await run.throttle?.(chunk.length);
    }
    await w.close();
  } catch (err) {
    await w.abort();
    throw err;
  }
  if (n !== e.size) throw sourceChanged(src, `read ${n} bytes, scanned ${e.size}`);
  assertUnchanged(src, e, await source.stat(src, { signal }));
  await target.setAttributes(dst, { mtimeMs: e.mtimeMs, mode: e.mode }, { signal });
  run.progress.add(1, 0);
  journal.fileDone(e, crc >>> 0);
  return alg === "crc32" ? crc32Hex(crc) : h?.digest();
}
