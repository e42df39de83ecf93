/** How long a job waits before its next attempt after a retryable failure. */

/**
 * Exponential backoff with "equal jitter": half of base·2^(attempt-1) (capped at maxMs) is fixed,
 * the other half random. The fixed half guarantees the wait grows; the random half spreads out jobs
 * that failed together (a server that went away for everyone) so they do not retry in lockstep.
 * `attempt` is the attempt that just failed, from 1.
 */
export function retryDelayMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + random() * (exp / 2));
}
