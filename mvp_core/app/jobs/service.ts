/**
 * Job operations the routes call: Postgres first (the source of truth), then Redis. A Redis
 * failure after the commit is logged and answered anyway: the job stays QUEUED in Postgres and the
 * worker's reconciler enqueues it.
 */
import { createJob, JobError, getJob, requestCancel, retryJob } from "../../jobs/repository.ts";
import type { JobRow } from "../../jobs/types.ts";
import type { AppDeps } from "../deps.ts";
import type { JobCreate } from "./schemas.ts";

const DEFAULT_REDIS_TIMEOUT_MS = 1_000;

/** Runs a Redis step with a deadline; a failure is logged, never thrown (Postgres already holds the truth). */
async function bestEffort(deps: AppDeps, what: string, jobId: string, step: () => Promise<unknown>): Promise<boolean> {
  const ms = deps.redisTimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const pending = step();
  // After the deadline the outcome no longer matters: the timeout was already reported.
  pending.catch(() => undefined);
  try {
    await Promise.race([
      pending,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from Redis within ${ms} ms`)), ms);
      }),
    ]);
    return true;
  } catch (err) {
    deps.log.warn(`${what} failed; the reconciler will repair it`, { jobId, error: err });
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** Creates (or, for a repeated Idempotency-Key, finds) the job and hands it to the workers. */
export async function submitJob(deps: AppDeps, input: JobCreate, idempotencyKey: string | undefined): Promise<{ job: JobRow; created: boolean }> {
  const { maxAttempts, ...options } = input.options;
  const result = await createJob(deps.sql, {
    type: input.type,
    sourcePortalId: input.source.portal,
    sourcePath: input.source.path,
    targetPortalId: input.target.portal,
    targetPath: input.target.path,
    options,
    maxAttempts: maxAttempts ?? deps.jobMaxAttempts,
    ...(idempotencyKey ? { idempotencyKey } : {}),
  });
  // A replay re-enqueues too: if the first attempt's enqueue was lost, this repairs it (enqueue is idempotent).
  if (result.job.status === "QUEUED") await bestEffort(deps, "enqueue", result.job.id, () => deps.queue.enqueue(result.job.id));
  if (result.created) deps.log.info("job created", { jobId: result.job.id, type: result.job.type });
  return result;
}

/** The job, or JobError NOT_FOUND. */
export async function findJob(deps: AppDeps, id: string): Promise<JobRow> {
  const job = await getJob(deps.sql, id);
  if (!job) throw new JobError("NOT_FOUND", `no job with id ${id}`, { id });
  return job;
}

/** Cancels; a running job's worker is told through Redis (it also sees CANCELLING at its next heartbeat). */
export async function cancelJob(deps: AppDeps, id: string): Promise<JobRow> {
  const { job, notifyWorker } = await requestCancel(deps.sql, id);
  if (notifyWorker) await bestEffort(deps, "cancel notification", id, () => deps.queue.notifyCancel(id));
  deps.log.info("job cancel requested", { jobId: id, status: job.status });
  return job;
}

/** Retries a FAILED or CANCELLED job. */
export async function retry(deps: AppDeps, id: string): Promise<JobRow> {
  const job = await retryJob(deps.sql, id);
  await bestEffort(deps, "enqueue", id, () => deps.queue.enqueue(id));
  deps.log.info("job retried", { jobId: id });
  return job;
}
