/** The engine's one timeout race: wait for something, and act if it takes too long. */

/**
 * `p`'s outcome, unless `ms` pass first: then `onTimeout` runs (it may act — close a channel — and
 * return a value to use instead or throw) and `p` is left to settle unobserved. The timer never
 * outlives `p`, so a settled race keeps no process alive.
 */
export async function raceTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => T | Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), ms);
  });
  // Marked handled: after a timeout nobody awaits `p`, and its failure must not surface as unhandled.
  p.catch(() => undefined);
  try {
    const first = await Promise.race([p.then((v) => ({ v })), late]);
    return first === "late" ? await onTimeout() : first.v;
  } finally {
    clearTimeout(timer);
  }
}
