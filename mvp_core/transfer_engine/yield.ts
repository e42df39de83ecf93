/**
 * Cooperative yielding. Awaiting an already-settled promise only drains microtasks, so a loop of
 * fast (sync-backed) file operations can hold the event loop for seconds; the worker must renew its
 * lease meanwhile, so long loops call `maybeYield()`, which gives timers and I/O a turn every few ms.
 */

const SLICE_MS = 8;
let sliceStart = performance.now();

/** Yields to the macrotask queue when the current slice of synchronous work exceeded a few ms. */
export async function maybeYield(): Promise<void> {
  if (performance.now() - sliceStart < SLICE_MS) return;
  await new Promise<void>((resolve) => setImmediate(resolve));
  sliceStart = performance.now();
}
