/**
 * Large local copies by the kernel (copy_file_range), in chunks: the bytes never pass through user
 * space, yet the copy reports progress as it goes, stops within a chunk when cancelled, and can be
 * paced by a rate limit. One copy at a time runs on a helper thread, so the engine's thread hashes
 * the source meanwhile (as `cp` plus a hash tool would, in parallel); a paced copy runs on the
 * engine's thread, one small chunk per budget grant.
 *
 * Measured on 1 GiB (journaled ext4, page cache warm): one whole-file copy_file_range 0.30 s;
 * 8 MiB chunks the same within noise (a chunk costs a system call, ~3 ms of copying each).
 */
import { copyRange } from "./libc.ts";
import { maybeYield } from "../../yield.ts";

/** Bytes per copy_file_range call: each reports its progress (128 reports per GiB). */
const CHUNK = 8 << 20;
/** Bytes per call when paced: small, so the budget is granted in steps of this size. */
const PACED_CHUNK = 1 << 20;

/** What a copy ends with: bytes copied, or why it stopped. */
export type RangeCopyOutcome = { copied: number } | { errno: number; copied: number };

/** The message the helper thread takes: one copy, and the stop flag the engine's thread raises. */
interface RangeCopyRequest {
  inFd: number;
  outFd: number;
  size: number;
  /** Int32Array over it: [0] stop flag. */
  stop: SharedArrayBuffer;
}

/** What the helper thread posts: the bytes of each chunk as it lands, then the outcome. */
type RangeCopyMessage = { kind: "chunk"; bytes: number } | { kind: "end"; outcome: RangeCopyOutcome };

/**
 * Copies `size` bytes from `inFd` to `outFd`, both from offset 0: errno ≠ 0 on failure (EXDEV,
 * ENOSYS, EINVAL and EOPNOTSUPP mean "copy_file_range cannot do this pair": the caller falls back),
 * fewer bytes than `size` when the source ended early or `stop()` said so.
 */
function copyLoop(inFd: number, outFd: number, size: number, chunk: number, shouldStop: () => boolean, onChunk: (bytes: number) => void): RangeCopyOutcome {
  const offsets = new BigInt64Array(2);
  let copied = 0;
  while (copied < size && !shouldStop()) {
    const n = copyRange(inFd, outFd, offsets, Math.min(chunk, size - copied));
    if (n < 0) return { errno: -n, copied };
    if (n === 0) break;
    copied += n;
    onChunk(n);
  }
  return { copied };
}

/** Copies on a helper thread (one copy at a time per RangeCopier); close() ends the thread. */
export class RangeCopier {
  private worker: Worker | null = null;
  private busy = false;

  /**
   * Copies `size` bytes from `inFd` to `outFd`; `onBytes` hears each chunk as it lands; `signal`
   * stops it within a chunk. Paced copies (`throttle`) run on this thread.
   */
  async copy(inFd: number, outFd: number, size: number, opts: { signal?: AbortSignal; onBytes: (n: number) => void; throttle?: (bytes: number) => Promise<void> }): Promise<RangeCopyOutcome> {
    if (opts.throttle) return await this.paced(inFd, outFd, size, opts.throttle, opts.onBytes, opts.signal);
    if (this.busy) throw new Error("RangeCopier: one copy at a time");
    this.busy = true;
    try {
      return await this.onThread(inFd, outFd, size, opts.onBytes, opts.signal);
    } finally {
      this.busy = false;
    }
  }

  close(): void {
    this.worker?.terminate();
    this.worker = null;
  }

  private async paced(inFd: number, outFd: number, size: number, throttle: (bytes: number) => Promise<void>, onBytes: (n: number) => void, signal?: AbortSignal): Promise<RangeCopyOutcome> {
    const offsets = new BigInt64Array(2);
    let copied = 0;
    while (copied < size && !signal?.aborted) {
      const want = Math.min(PACED_CHUNK, size - copied);
      await throttle(want);
      const n = copyRange(inFd, outFd, offsets, want);
      if (n < 0) return { errno: -n, copied };
      if (n === 0) break;
      copied += n;
      onBytes(n);
      await maybeYield();
    }
    return { copied };
  }

  private onThread(inFd: number, outFd: number, size: number, onBytes: (n: number) => void, signal?: AbortSignal): Promise<RangeCopyOutcome> {
    const stop = new SharedArrayBuffer(4);
    const onAbort = (): void => void Atomics.store(new Int32Array(stop), 0, 1);
    signal?.addEventListener("abort", onAbort, { once: true });
    return new Promise<RangeCopyOutcome>((resolve, reject) => {
      const w = this.thread();
      w.onmessage = (m: MessageEvent<RangeCopyMessage>) => {
        if (m.data.kind === "chunk") return onBytes(m.data.bytes);
        signal?.removeEventListener("abort", onAbort);
        resolve(m.data.outcome);
      };
      w.onerror = (e: ErrorEvent) => {
        signal?.removeEventListener("abort", onAbort);
        this.close();
        reject(new Error(`the copy thread failed: ${e.message}`));
      };
      w.postMessage({ inFd, outFd, size, stop } satisfies RangeCopyRequest);
    });
  }

  private thread(): Worker {
    this.worker ??= new Worker(new URL(import.meta.url).href);
    return this.worker;
  }
}

// As a Worker's entry point: serve copy requests one after another.
declare const self: Worker | undefined;
if (typeof self !== "undefined" && typeof Bun !== "undefined" && !Bun.isMainThread) {
  self.onmessage = (m: MessageEvent<RangeCopyRequest>) => {
    const { inFd, outFd, size, stop } = m.data;
    const flag = new Int32Array(stop);
    const post = (msg: RangeCopyMessage): void => self.postMessage(msg);
    const outcome = copyLoop(inFd, outFd, size, CHUNK, () => Atomics.load(flag, 0) !== 0, (bytes) => post({ kind: "chunk", bytes }));
    post({ kind: "end", outcome });
  };
}
