/**
 * Job operations the routes call: Postgres first (the source of truth), then Redis. A Redis
 * failure after the commit is logged and answered anyway: the job stays QUEUED in Postgres and the
 * worker's reconciler enqueues it.
 */
import { createJob, JobError, getJob, requestCancel, retryJob } from "../../jobs/repository.ts";
import type { JobRow } from "../../jobs/types.ts";
import type { AppDeps } from "../deps.ts";
import { liveness, type Liveness, waitingFor } from "../sites/service.ts";
import type { JobCreate } from "./schemas.ts";

const DEFAULT_REDIS_TIMEOUT_MS = 1_000;

/** A Redis call bounded by the request's Redis deadline. */
function withDeadline<T>(deps: AppDeps, pending: Promise<T>): Promise<T> {
  const ms = deps.redisTimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // After the deadline the outcome no longer matters: the timeout was already reported.
  pending.catch(() => undefined);
  const deadline = new Promise<T>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from Redis within ${ms} ms`)), ms);
  });
  return Promise.race([pending, deadline]).finally(() => clearTimeout(timer));
}

/** Runs a Redis step with a deadline; a failure is logged, never thrown (Postgres already holds the truth). */
async function bestEffort(deps: AppDeps, what: string, jobId: string, step: () => Promise<unknown>): Promise<boolean> {
  try {
    await withDeadline(deps, step());
    return true;
  } catch (err) {
    deps.log.warn(`${what} failed; the reconciler will repair it`, { jobId, error: err });
    return false;
  }
}

/** Creates (or, for a repeated Idempotency-Key, finds) the job and hands it to the workers. */
export async function submitJob(deps: AppDeps, input: JobCreate, idempotencyKey: string | undefined): Promise<{ job: JobRow; created: boolean }> {
  const { maxAttempts, ...options } = input.options;
  const result = await createJob(deps.sql, {
    type: input.type,
    sourcePortalId: input.source.portal,
    sourcePath: input.source.path,
    // A verify job has one folder, stored as its source and its target (migration 0008).
    targetPortalId: (input.target ?? input.source).portal,
    targetPath: (input.target ?? input.source).path,
    options,
    maxAttempts: maxAttempts ?? deps.jobMaxAttempts,
    ...(idempotencyKey ? { idempotencyKey } : {}),
  });
  // A replay re-enqueues too: if the first attempt's enqueue was lost, this repairs it (enqueue is idempotent).
  if (result.job.status === "QUEUED") await bestEffort(deps, "enqueue", result.job.id, () => deps.queue.enqueue(result.job.id, result.job.site));
  if (result.created) deps.log.info("job created", { jobId: result.job.id, type: result.job.type, site: result.job.site ?? "any" });
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

/** Retries a FAILED, CANCELLED or DONE_WITH_ERRORS job (that one: only its failed files). */
export async function retry(deps: AppDeps, id: string): Promise<JobRow> {
  const job = await retryJob(deps.sql, id);
  await bestEffort(deps, "enqueue", id, () => deps.queue.enqueue(id, job.site));
  deps.log.info("job retried", { jobId: id });
  return job;
}

/** How long a liveness reading is reused: waiting reasons may lag a worker's start by this much. */
const LIVENESS_TTL_MS = 500;
const livenessCache = new WeakMap<AppDeps, { at: number; value: Promise<Liveness | Error> }>();

/**
 * Live workers per site, read at most every LIVENESS_TTL_MS per app (POST /jobs and GET /jobs show
 * a reason for every waiting job, and must not cost a Redis round trip each); an Error when Redis
 * cannot be read within the request's Redis deadline.
 */
function currentLiveness(deps: AppDeps): Promise<Liveness | Error> {
  const cached = livenessCache.get(deps);
  if (cached && performance.now() - cached.at < LIVENESS_TTL_MS) return cached.value;
  const value = withDeadline(deps, deps.queue.liveWorkers()).then(liveness, (err: unknown) => (err instanceof Error ? err : new Error(String(err))));
  livenessCache.set(deps, { at: performance.now(), value });
  return value;
}

/** What each job waits for (null unless QUEUED or RETRY_WAIT), reading worker liveness only when one waits. */
export async function waitingReasons(deps: AppDeps, jobs: readonly JobRow[]): Promise<Array<string | null>> {
  if (!jobs.some((j) => j.status === "QUEUED" || j.status === "RETRY_WAIT")) return jobs.map(() => null);
  const live = await currentLiveness(deps);
  return jobs.map((j) => waitingFor(j, live));
}
