/**
 * The engine's read-rate limit (EngineOptions.maxBytesPerSec): one budget shared by every read of
 * a transfer, whichever strategy and endpoint does the reading. Footage transfers otherwise fill a
 * shared link. Readers await the returned function before taking `bytes` more from the source.
 */
import { cancelledError } from "./cancel.ts";

/** A pacing function for `bytesPerSec` (undefined when 0: no limit). */
export function createThrottle(bytesPerSec: number, signal: AbortSignal | undefined): ((bytes: number) => Promise<void>) | undefined {
  if (bytesPerSec <= 0) return undefined;
  const startedAt = performance.now();
  let granted = 0;
  return async (bytes: number): Promise<void> => {
    // The budget is granted before the read: a reader waits until the bytes already granted,
    // these included, fit in the time elapsed since the start.
    granted += bytes;
    const aheadMs = ((granted - bytes) / bytesPerSec) * 1000 - (performance.now() - startedAt);
    if (aheadMs > 0) await sleep(aheadMs, signal);
  };
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(cancelledError(signal.reason));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(cancelledError(signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
