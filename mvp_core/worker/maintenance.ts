/**
 * Background repairs every worker runs. Any number of workers may run them at once: the Redis side
 * is atomic Lua, the Postgres side conditional updates, so each repair is recorded exactly once.
 *
 * - reap: jobs whose Redis lease expired, or whose worker stopped beating, go back to their own
 *   site's pending list and their Postgres row from RUNNING to QUEUED with a `reclaimed` event.
 * - promote: retries whose backoff elapsed move from the delayed zset to their site's list.
 * - reconcile: Postgres is the truth; unfinished jobs Redis does not hold where a worker of their
 *   site would look (enqueue failed, Redis restarted or was flushed, a job on the wrong list) are
 *   put back on the list of the site Postgres names, and RUNNING jobs whose lease expired are
 *   reclaimed.
 *
 * Every worker repairs every site's jobs: a site whose workers are all down still has its jobs
 * reaped and restored onto its own list, where they wait (visibly) until one of its workers returns.
 */
import type { Sql } from "postgres";
import { jobsToReconcile, reclaimJob, type WorkerRef } from "../jobs/lifecycle.ts";
import type { Logger } from "../log/log.ts";
import type { JobQueue } from "../queue/queue.ts";

/** Takes back jobs from dead workers and expired leases; returns how many Postgres rows changed. */
export async function reapOnce(sql: Sql, queue: JobQueue, worker: WorkerRef, log: Logger): Promise<number> {
  const reaped = [...(await queue.reapExpiredLeases()), ...(await queue.reapDeadWorkers())];
  let changed = 0;
  for (const { jobId, workerId: previous, routeLost } of reaped) {
    // Still valid in Postgres (its worker renewed there but not yet in Redis): the delivery the reaper
    // just made is refused by the claim and the worker's next renewal restores its Redis entries.
    const outcome = await reclaimJob(sql, jobId, worker);
    if (outcome) changed++;
    log.warn("reaped a job from an expired lease", {
      jobId, previousWorker: previous, outcome: outcome ?? "lease still valid in Postgres",
      ...(routeLost ? { note: "Redis had lost its site; the reconciler re-enqueues it from Postgres" } : {}),
    });
  }
  return changed;
}

/** Moves due retries to pending. */
export async function promoteOnce(queue: JobQueue): Promise<number> {
  return queue.promoteDelayed();
}

/** Puts back every unfinished job Redis lost, on its own site's list; returns how many were restored or reclaimed. */
export async function reconcileOnce(sql: Sql, queue: JobQueue, worker: WorkerRef, log: Logger, limit = 1000): Promise<number> {
  const { queued, retryWait, leaseExpired } = await jobsToReconcile(sql, limit);
  let restored = 0;

  // A QUEUED job must be pending on its site's list (or leased, in the instant between a reserve and its claim).
  const siteOf = new Map(queued.map((j) => [j.id, j.site]));
  for (const jobId of await queue.unlisted(queued)) {
    const site = siteOf.get(jobId) ?? null;
    await queue.requeue(jobId, site);
    restored++;
    log.warn("reconciler re-enqueued a QUEUED job missing from its site's list", { jobId, site: site ?? "any" });
  }

  // A RETRY_WAIT job must be delayed (or already promoted to its site's list, or leased).
  const lost = new Set(await queue.unlisted(retryWait));
  for (const { id: jobId, site, dueInMs } of retryWait) {
    if (!lost.has(jobId)) continue;
    if (await queue.enqueueDelayed(jobId, dueInMs, site, true)) {
      restored++;
      log.warn("reconciler re-scheduled a RETRY_WAIT job missing from Redis", { jobId, site: site ?? "any", dueInMs: Math.round(dueInMs) });
    }
  }

  for (const { id: jobId, site } of leaseExpired) {
    const outcome = await reclaimJob(sql, jobId, worker);
    if (outcome === null) continue;
    // Its Redis entries may still sit with the dead worker; a second copy in pending is harmless.
    if (outcome === "reclaimed") await queue.requeue(jobId, site);
    restored++;
    log.warn("reconciler took back a job whose lease expired", { jobId, outcome, site: site ?? "any" });
  }
  return restored;
}
