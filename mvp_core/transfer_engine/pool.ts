/**
 * Runs `fn` over `items` with at most `limit` in flight; `fn` learns which lane (0…limit-1) runs it,
 * so a lane can own a resource (a copy thread, a channel). The first failure stops new work and is
 * rethrown once every lane has stopped.
 */
export async function runPool<T>(items: readonly T[], limit: number, fn: (item: T, lane: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const lane = async (index: number): Promise<void> => {
    while (!failed && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item, index);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const lanes = Array.from({ length: Math.min(limit, items.length) }, (_, i) => lane(i));
  // allSettled first so no lane is still writing when the caller starts cleaning up.
  const results = await Promise.allSettled(lanes);
  const bad = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (bad) throw bad.reason;
}
