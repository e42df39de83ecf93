/** A deadline for one awaited step: a hung Postgres or Redis call counts as failed instead of holding the caller. */

/** The step did not answer within its deadline. */
export class DeadlineError extends Error {
  override readonly name = "DeadlineError";
}

/**
 * Settles like `pending`, or rejects with DeadlineError after `ms`. The step itself keeps running
 * (neither postgres.js nor ioredis can take a sent command back); its late failure is dropped here
 * because the timeout already reported it.
 */
export async function withDeadline<T>(pending: Promise<T>, ms: number, what: string): Promise<T> {
  pending.catch(() => undefined);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      pending,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DeadlineError(`${what} did not answer within ${Math.round(ms)} ms`)), Math.max(0, ms));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
