/**
 * Step 3 (direct strategy): files copied one by one into the staging tree, with bounded
 * concurrency, hashing the source bytes as they are read. Each file is checked against the scan
 * (size and mtime) before and after it is read: a file that changes meanwhile fails the transfer
 * with SOURCE_CHANGED instead of producing a torn copy.
 */
import path from "node:path";
import type { Entry, HashAlgorithm } from "../endpoints/endpoint.ts";
import { type ErrorCode, TransferError } from "../errors.ts";
import { createHasher } from "../hash.ts";
import { LocalEndpoint } from "../endpoints/local/local_endpoint.ts";
import { copyLarge, copySmall, sourceChanged } from "../endpoints/local/local_copy.ts";
import { joinRel } from "../paths.ts";
import { runPool } from "../pool.ts";
import { type SmallCopyJob, type SmallCopyReport, claimNext } from "../endpoints/local/small_copy_worker.ts";
import { type Run, checkCancelled } from "../run.ts";
import { maybeYield } from "../yield.ts";

/** Where a step reads from and writes to, relative to each endpoint's root. */
export interface Locations {
  sourcePath: string;
  stagingPath: string;
}

/** Copies `files` into the staging tree; records each source hash into `hashes` (keyed by entry path). */
export async function copyFiles(run: Run, files: readonly Entry[], loc: Locations, alg: HashAlgorithm | null, hashes: Map<string, string>): Promise<void> {
  const { source, target } = run;
  if (source instanceof LocalEndpoint && target instanceof LocalEndpoint) {
    await copyLocal(run, files, source.resolve(loc.sourcePath, true), target.resolve(loc.stagingPath, false), alg, hashes);
    return;
  }
  // Small files many at once, large ones a few at once (see EngineOptions); the first failure in
  // either stops both from starting more, and is the one reported.
  let failure: { err: unknown } | null = null;
  const copy = async (e: Entry): Promise<void> => {
    if (failure) throw failure.err;
    try {
      const digest = await copyStream(run, e, joinRel(loc.sourcePath, e.path), joinRel(loc.stagingPath, e.path), alg);
      if (digest !== undefined) hashes.set(e.path, digest);
    } catch (err) {
      failure ??= { err };
      throw err;
    }
  };
  const small = files.filter((f) => f.size < run.opts.zipSmallFileBytes);
  const large = files.filter((f) => f.size >= run.opts.zipSmallFileBytes);
  await Promise.allSettled([runPool(small, run.opts.smallFileConcurrency, copy), runPool(large, run.opts.concurrency, copy)]);
  if (failure) throw (failure as { err: unknown }).err;
}

async function copyLocal(run: Run, files: readonly Entry[], srcBase: string, dstBase: string, alg: HashAlgorithm | null, hashes: Map<string, string>): Promise<void> {
  const abs = (base: string, rel: string): string => (rel === "" ? base : path.join(base, rel));
  const small = files.filter((f) => f.size <= run.opts.localWholeFileBytes);
  const large = files.filter((f) => f.size > run.opts.localWholeFileBytes);
  // Small files: this thread and (for many of them) a helper thread take turns from one counter.
  const shared = new Int32Array(new SharedArrayBuffer(8));
  const helper = small.length >= HELPER_MIN_FILES ? startHelper(run, { srcBase, dstBase, files: small, alg, shared: shared.buffer as SharedArrayBuffer }, hashes) : null;
  helper?.catch(() => undefined); // its failure is rethrown where the lane awaits it
  const smallLane = async (): Promise<void> => {
    try {
      for (let i = claimNext(shared, small.length); i >= 0; i = claimNext(shared, small.length)) {
        checkCancelled(run.signal);
        const e = small[i] as Entry;
        const digest = copySmall(abs(srcBase, e.path), abs(dstBase, e.path), e, alg);
        if (digest !== undefined) hashes.set(e.path, digest);
        run.progress.add(1, e.size);
        await maybeYield();
      }
    } catch (err) {
      Atomics.store(shared, 1, 1); // the helper stops claiming too
      await helper?.catch(() => undefined);
      throw err;
    }
    await helper;
  };
  const largeLane = (): Promise<void> =>
    runPool(large, 2, async (e) => {
      checkCancelled(run.signal);
      const digest = await copyLarge(abs(srcBase, e.path), abs(dstBase, e.path), e, alg, (n) => run.progress.add(0, n), run.signal);
      if (digest !== undefined) hashes.set(e.path, digest);
      run.progress.add(1, 0);
    });
  const results = await Promise.allSettled([smallLane(), largeLane()]);
  const bad = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (bad) throw bad.reason;
}

/** Below this many small files a helper thread's start (~5 ms, plus loading its modules) is not worth it. */
const HELPER_MIN_FILES = 500;

/**
 * Runs `job` on a helper thread (small_copy_worker.ts); resolves once it has stopped, its hashes
 * recorded, or rejects with its copy failure. A helper that cannot start leaves every file to the
 * calling thread (the shared counter hands them all out there).
 */
function startHelper(run: Run, job: SmallCopyJob, hashes: Map<string, string>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let worker: Worker;
    try {
      worker = new Worker(new URL("../endpoints/local/small_copy_worker.ts", import.meta.url).href);
    } catch {
      resolve();
      return;
    }
    const stop = (): void => void Atomics.store(new Int32Array(job.shared), 1, 1);
    run.signal?.addEventListener("abort", stop, { once: true });
    const finish = (fn: () => void): void => {
      run.signal?.removeEventListener("abort", stop);
      worker.terminate();
      fn();
    };
    let heard = false;
    worker.onmessage = (m: MessageEvent<SmallCopyReport>) => {
      heard = true;
      const r = m.data;
      if (r.kind === "progress") run.progress.add(r.files, r.bytes);
      else if (r.kind === "done") {
        for (const [p, h] of r.hashes) hashes.set(p, h);
        finish(resolve);
      } else finish(() => reject(new TransferError(r.error.code as ErrorCode, r.error.message, { retryable: r.error.retryable, details: r.error.details })));
    };
    // Could not start: every file is left to the caller. Died midway: it may have claimed files it
    // never wrote, so the transfer fails (retryable) rather than leave that to verification.
    worker.onerror = (e: ErrorEvent) => {
      if (!heard) return finish(resolve);
      stop();
      finish(() => reject(new TransferError("IO_ERROR", `the local copy helper thread failed: ${e.message}`)));
    };
    worker.postMessage(job);
  });
}

/** Copies one file through the endpoints' streams (any endpoint pair). */
async function copyStream(run: Run, e: Entry, src: string, dst: string, alg: HashAlgorithm | null): Promise<string | undefined> {
  const { source, target, signal } = run;
  checkCancelled(signal);
  const h = alg === null ? null : createHasher(alg);
  const w = await target.openWrite(dst, { signal, mode: e.mode, size: e.size });
  let n = 0;
  try {
    // Each chunk is hashed and written (the writer copies what it keeps) before the next is read.
    for await (const chunk of source.openRead(src, { signal, reuseBuffer: true })) {
      h?.update(chunk);
      n += chunk.length;
      if (n > e.size) throw sourceChanged(src, `grew beyond the scanned ${e.size} bytes`);
      await w.write(chunk);
      run.progress.add(0, chunk.length);
    }
    await w.close();
  } catch (err) {
    await w.abort();
    throw err;
  }
  if (n !== e.size) throw sourceChanged(src, `read ${n} bytes, scanned ${e.size}`);
  const now = await source.stat(src, { signal });
  if (now === null || now.size !== e.size || now.mtimeMs !== e.mtimeMs) throw sourceChanged(src, "size or modification time changed");
  await target.setAttributes(dst, { mtimeMs: e.mtimeMs, mode: e.mode }, { signal });
  run.progress.add(1, 0);
  return h?.digest();
}

