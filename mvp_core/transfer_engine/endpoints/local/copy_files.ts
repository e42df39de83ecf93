/**
 * The local adapter's copyFilesFrom: files from one local root to another without the Endpoint
 * streams. Small files in one read and one write each, taken in turns by this thread and (for many
 * of them) a helper thread; large ones copied by the kernel, two at a time, hashed meanwhile.
 */
import type { CopyFilesOptions, Entry } from "../endpoint.ts";
import { type ErrorCode, TransferError } from "../../errors.ts";
import { joinRel } from "../../paths.ts";
import { runPool } from "../../pool.ts";
import { throwIfCancelled } from "../../cancel.ts";
import { maybeYield } from "../../yield.ts";
import { copyLarge, copySmall } from "./local_copy.ts";
import { RangeCopier } from "./range_copier.ts";
import type { RootedFs } from "./rooted_fs.ts";
import { type SmallCopyJob, type SmallCopyReport, claimNext } from "./small_copy_worker.ts";

/** Below this many small files a helper thread's start (~5 ms, plus loading its modules) is not worth it. */
const HELPER_MIN_FILES = 500;
/** Large files copied at once. */
const LARGE_LANES = 2;

/** Copies `files` from below `src`'s opts.sourcePath to below `dst`'s opts.targetPath; returns the source hashes. */
export async function copyLocalFiles(src: RootedFs, dst: RootedFs, files: readonly Entry[], opts: CopyFilesOptions): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  const small = files.filter((f) => f.size <= opts.wholeFileBytes);
  const large = files.filter((f) => f.size > opts.wholeFileBytes);
  const { sourcePath, targetPath, hash, signal, throttle } = opts;
  // Small files: this thread and (for many of them, when no rate limit paces the reads) a helper
  // thread take turns from one counter.
  const shared = new Int32Array(new SharedArrayBuffer(8));
  // The helper thread stops at the first failure; with per-file failures allowed this thread copies alone.
  const helper = small.length >= HELPER_MIN_FILES && throttle === undefined && opts.onFileError === undefined
    ? startHelper({ source: { rootFd: src.rootFd, root: src.root, base: sourcePath }, target: { rootFd: dst.rootFd, root: dst.root, base: targetPath }, files: small, alg: hash, shared: shared.buffer as SharedArrayBuffer }, opts, hashes)
    : null;
  helper?.catch(() => undefined); // its failure is rethrown where the lane awaits it
  const smallLane = async (): Promise<void> => {
    try {
      for (let i = claimNext(shared, small.length); i >= 0; i = claimNext(shared, small.length)) {
        throwIfCancelled(signal);
        const e = small[i] as Entry;
        await throttle?.(e.size);
        try {
          const digest = copySmall(src, joinRel(sourcePath, e.path), dst, joinRel(targetPath, e.path), e, hash);
          if (digest !== undefined) hashes.set(e.path, digest);
        } catch (err) {
          if (!opts.onFileError?.(e, err)) throw err;
        }
        opts.onProgress(1, e.size);
        await maybeYield();
      }
    } catch (err) {
      Atomics.store(shared, 1, 1); // the helper stops claiming too
      await helper?.catch(() => undefined);
      throw err;
    }
    await helper;
  };
  const copiers = Array.from({ length: Math.min(LARGE_LANES, large.length) }, () => new RangeCopier());
  const largeLane = (): Promise<void> =>
    runPool(large, LARGE_LANES, async (e, lane) => {
      throwIfCancelled(signal);
      try {
        const digest = await copyLarge(src, joinRel(sourcePath, e.path), dst, joinRel(targetPath, e.path), e, hash, {
          copier: copiers[lane] as RangeCopier,
          onBytes: (n) => opts.onProgress(0, n),
          ...(signal ? { signal } : {}),
          ...(throttle ? { throttle } : {}),
        });
        if (digest !== undefined) hashes.set(e.path, digest);
      } catch (err) {
        if (signal?.aborted || !opts.onFileError?.(e, err)) throw err;
      }
      opts.onProgress(1, 0);
    });
  try {
    const results = await Promise.allSettled([smallLane(), largeLane()]);
    const bad = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (bad) throw bad.reason;
  } finally {
    for (const c of copiers) c.close();
  }
  return hashes;
}

/**
 * Runs `job` on a helper thread (small_copy_worker.ts); resolves once it has stopped, its hashes
 * recorded, or rejects with its copy failure. A helper that cannot start leaves every file to the
 * calling thread (the shared counter hands them all out there).
 */
function startHelper(job: SmallCopyJob, opts: CopyFilesOptions, hashes: Map<string, string>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let worker: Worker;
    try {
      worker = new Worker(new URL("./small_copy_worker.ts", import.meta.url).href);
    } catch {
      resolve();
      return;
    }
    const stop = (): void => void Atomics.store(new Int32Array(job.shared), 1, 1);
    opts.signal?.addEventListener("abort", stop, { once: true });
    const finish = (fn: () => void): void => {
      opts.signal?.removeEventListener("abort", stop);
      worker.terminate();
      fn();
    };
    let heard = false;
    worker.onmessage = (m: MessageEvent<SmallCopyReport>) => {
      heard = true;
      const r = m.data;
      if (r.kind === "progress") opts.onProgress(r.files, r.bytes);
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
