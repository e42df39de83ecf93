/**
 * A second thread for local small-file copies (copy_files.ts). Creating thousands of small files is
 * kernel work that runs in parallel on separate files: on these 2 cores, one thread copied
 * 10,000 × 4 KiB (open, read, create, write, set mtime, close) in 320-380 ms and `cp -r` in
 * 310-370 ms, two threads in 175-205 ms (same scratch ext4, one run, interleaved). Both threads
 * take files from one shared counter, so neither waits for the other's share; either one's failure
 * (or a cancel) raises the shared stop flag. Root handles are process-wide, so this thread opens
 * below the same handles, with the same no-link guarantees, as the engine's thread.
 */
import type { Entry, HashAlgorithm } from "../endpoint.ts";
import { isTransferError, TransferError } from "../../errors.ts";
import { joinRel } from "../../paths.ts";
import { copySmall } from "./local_copy.ts";
import { RootedFs } from "./rooted_fs.ts";

/** What the engine's thread sends: the roots, the files, and the counters both threads share. */
export interface SmallCopyJob {
  source: { rootFd: number; root: string; base: string };
  target: { rootFd: number; root: string; base: string };
  files: readonly Entry[];
  alg: HashAlgorithm | null;
  /** Int32Array over it: [0] next file index to claim, [1] stop flag (1: stop claiming). */
  shared: SharedArrayBuffer;
}

/** What the helper thread answers: progress now and then, then one final report. */
export type SmallCopyReport =
  | { kind: "progress"; files: number; bytes: number }
  | { kind: "done"; hashes: [string, string][] }
  | { kind: "failed"; error: { code: string; message: string; retryable: boolean; details: Record<string, unknown> } };

/** The next file index for whichever thread asks, or -1 once all are claimed or a stop was raised. */
export function claimNext(shared: Int32Array, total: number): number {
  if (Atomics.load(shared, 1) !== 0) return -1;
  const i = Atomics.add(shared, 0, 1);
  return i < total ? i : -1;
}

function run(job: SmallCopyJob, post: (r: SmallCopyReport) => void): void {
  const shared = new Int32Array(job.shared);
  const src = RootedFs.adopt(job.source.rootFd, job.source.root);
  const dst = RootedFs.adopt(job.target.rootFd, job.target.root);
  const hashes: [string, string][] = [];
  let files = 0;
  let bytes = 0;
  let last = performance.now();
  try {
    for (let i = claimNext(shared, job.files.length); i >= 0; i = claimNext(shared, job.files.length)) {
      const e = job.files[i] as Entry;
      const digest = copySmall(src, joinRel(job.source.base, e.path), dst, joinRel(job.target.base, e.path), e, job.alg);
      if (digest !== undefined) hashes.push([e.path, digest]);
      files++;
      bytes += e.size;
      if (performance.now() - last > 50) {
        post({ kind: "progress", files, bytes });
        files = bytes = 0;
        last = performance.now();
      }
    }
    post({ kind: "progress", files, bytes });
    post({ kind: "done", hashes });
  } catch (err) {
    Atomics.store(shared, 1, 1);
    const e = isTransferError(err) ? err : new TransferError("IO_ERROR", `local copy failed: ${(err as Error)?.message ?? String(err)}`);
    post({ kind: "failed", error: e.toJSON() });
  }
}

// Runs only as a Worker's entry point (importing it for its helpers starts nothing).
declare const self: Worker | undefined;
if (typeof self !== "undefined" && typeof Bun !== "undefined" && !Bun.isMainThread) {
  self.onmessage = (m: MessageEvent<SmallCopyJob>) => run(m.data, (r) => self.postMessage(r));
}
