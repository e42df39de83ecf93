/**
 * Background repairs every worker runs. Any number of workers may run them at once: the Redis side
 * is atomic Lua, the Postgres side conditional updates, so each repair is recorded exactly once.
 *
 * - reap: jobs whose Redis lease expired, or whose worker stopped beating, go back to pending and
 *   their Postgres row from RUNNING to QUEUED with a `reclaimed` event.
 * - promote: retries whose backoff elapsed move from the delayed zset to pending.
 * - reconcile: Postgres is the truth; unfinished jobs Redis does not hold (enqueue failed, Redis
 *   restarted or was flushed) are put back, and RUNNING jobs whose lease expired are reclaimed.
 */
import type { Sql } from "postgres";
import { jobsToReconcile, reclaimJob } from "../jobs/lifecycle.ts";
import type { Logger } from "../log/log.ts";
import type { JobQueue } from "../queue/queue.ts";

/** Takes back jobs from dead workers and expired leases; returns how many Postgres rows changed. */
export async function reapOnce(sql: Sql, queue: JobQueue, workerId: string, log: Logger): Promise<number> {
  const reaped = [...(await queue.reapExpiredLeases()), ...(await queue.reapDeadWorkers())];
  let changed = 0;
  for (const { jobId, workerId: previous } of reaped) {
    // Still valid in Postgres (its worker renewed there but not yet in Redis): the delivery the reaper
    // just made is refused by the claim and the worker's next renewal restores its Redis entries.
    const outcome = await reclaimJob(sql, jobId, workerId);
    if (outcome) changed++;
    log.warn("reaped a job from an expired lease", { jobId, previousWorker: previous, outcome: outcome ?? "lease still valid in Postgres" });
  }
  return changed;
}

/** Moves due retries to pending. */
export async function promoteOnce(queue: JobQueue): Promise<number> {
  return queue.promoteDelayed();
}

/** Puts back every unfinished job Redis lost; returns how many were restored or reclaimed. */
export async function reconcileOnce(sql: Sql, queue: JobQueue, workerId: string, log: Logger, limit = 1000): Promise<number> {
  const { queued, retryWait, leaseExpired } = await jobsToReconcile(sql, limit);
  let restored = 0;

  // A QUEUED job must be pending (or leased, in the instant between a reserve and its claim).
  for (const jobId of await queue.unlisted(queued)) {
    await queue.requeue(jobId);
    restored++;
    log.warn("reconciler re-enqueued a QUEUED job missing from Redis", { jobId });
  }

  const waitingHeld = await queue.held(retryWait.map((j) => j.id));
  for (const [i, { id: jobId, dueInMs }] of retryWait.entries()) {
    if (waitingHeld[i]) continue;
    if (await queue.enqueueDelayed(jobId, dueInMs)) {
      restored++;
      log.warn("reconciler re-scheduled a RETRY_WAIT job missing from Redis", { jobId, dueInMs: Math.round(dueInMs) });
    }
  }

  for (const jobId of leaseExpired) {
    const outcome = await reclaimJob(sql, jobId, workerId);
    if (outcome === null) continue;
    // Its Redis entries may still sit with the dead worker; a second copy in pending is harmless.
    if (outcome === "reclaimed") await queue.requeue(jobId);
    restored++;
    log.warn("reconciler took back a job whose lease expired", { jobId, outcome });
  }
  return restored;
}
