/**
 * The worker's side of the job state machine in Postgres. Every transition is one conditional
 * `update … where status … returning`, committed together with the event that records it, so a
 * job delivered twice, a worker that lost its lease, or a cancel racing a failure can never move a
 * job twice. The API's side (create, cancel request, retry) lives in repository.ts.
 *
 *   QUEUED ──claim──▶ RUNNING ──▶ DONE | FAILED
 *   RUNNING ──retryable error──▶ RETRY_WAIT ──due, claim──▶ RUNNING
 *   RUNNING ──cancel requested (API)──▶ CANCELLING ──engine stopped──▶ CANCELLED
 *   RUNNING ──worker shutting down──▶ QUEUED (released; the attempt is not counted)
 *   RUNNING ──lease expired (worker died)──▶ QUEUED (reclaimed) | FAILED (no attempts left)
 *
 * A worker claims only jobs its site may run (the claim itself checks the job's site and its
 * portals' placement), and every event it writes carries its id and site.
 */
import type { Sql } from "postgres";
import { appendEvent } from "./events.ts";
import type { EventKind, EventLevel, JobRow, JobStatus } from "./types.ts";

/** A failure as the worker records it: a stable code, a message for people, and whether it may be retried. */
export interface JobFailure {
  code: string;
  message: string;
  retryable: boolean;
}

/** The worker a transition is recorded for: its id (the lease holder) and its site. */
export interface WorkerRef {
  id: string;
  site: string;
}

/**
 * What claimJob decided. When refused, `job` (null: no such job) says why; `misplaced`: this
 * worker's site may not run it (it belongs to `site`, or one of its portals is not reachable here).
 */
export type Claim =
  | { claimed: true; job: JobRow }
  | { claimed: false; job: { status: JobStatus; leaseExpired: boolean; dueInMs: number | null; site: string | null; misplaced: boolean } | null };

const ms = (n: number) => `${Math.max(0, Math.round(n))} milliseconds`;

/** Event data naming the worker that wrote it. */
const by = (worker: WorkerRef, data: Record<string, unknown> = {}) => ({ ...data, workerId: worker.id, site: worker.site });

function inTransaction<T>(sql: Sql, fn: (tx: Sql) => Promise<T>): Promise<T> {
  // postgres.js types the transaction handle separately, but it accepts every query Sql does.
  return sql.begin((txn) => fn(txn as unknown as Sql)) as Promise<T>;
}

/**
 * True for a job (alias `j`) that a worker of `site` may not run: it belongs to another site, or a
 * local portal of it is another site's folder (or has no site yet), or an sftp portal of it does
 * not allow `site`. The claim refuses such a job, so no routing slip can read the wrong disk.
 */
function misplacedAt(sql: Sql, site: string) {
  return sql`(
    (j.site is not null and j.site <> ${site})
    or exists (
      select 1 from portals p where p.id in (j.source_portal_id, j.target_portal_id)
        and ((p.kind = 'local' and p.site is distinct from ${site})
          or (p.kind = 'sftp' and p.allowed_sites is not null and not (${site} = any(p.allowed_sites))))))`;
}

/**
 * Takes a QUEUED job (or a RETRY_WAIT one whose backoff elapsed) for `worker`: RUNNING, one more
 * attempt, a lease of `leaseMs`, and a `started` event. Only one worker can win this update, so a
 * job delivered twice runs once; a worker of the wrong site never wins it.
 */
export async function claimJob(sql: Sql, jobId: string, worker: WorkerRef, leaseMs: number): Promise<Claim> {
  return inTransaction(sql, async (tx) => {
    const [job] = await tx<JobRow[]>`
      update jobs j set status = 'RUNNING', attempts = attempts + 1, worker_id = ${worker.id},
        lease_expires_at = now() + ${ms(leaseMs)}::interval, heartbeat_at = now(), next_attempt_at = null,
        started_at = coalesce(started_at, now()), files_done = 0, bytes_done = 0
      where j.id = ${jobId} and j.attempts < j.max_attempts
        and (j.status = 'QUEUED' or (j.status = 'RETRY_WAIT' and j.next_attempt_at <= now()))
        and not ${misplacedAt(tx, worker.site)}
      returning *`;
    if (job) {
      await appendEvent(tx, jobId, "started", `attempt ${job.attempts} of ${job.max_attempts} started on worker ${worker.id} (site ${worker.site})`, {
        data: by(worker, { attempt: job.attempts, maxAttempts: job.max_attempts }),
      });
      return { claimed: true, job };
    }
    const [row] = await tx<{ status: JobStatus; lease_expired: boolean; due_in_ms: number | null; site: string | null; misplaced: boolean }[]>`
      select j.status, coalesce(j.lease_expires_at < now(), true) as lease_expired,
        (extract(epoch from (j.next_attempt_at - now())) * 1000)::float8 as due_in_ms,
        j.site, ${misplacedAt(tx, worker.site)} as misplaced
      from jobs j where j.id = ${jobId}`;
    return { claimed: false, job: row ? { status: row.status, leaseExpired: row.lease_expired, dueInMs: row.due_in_ms, site: row.site, misplaced: row.misplaced } : null };
  });
}

/**
 * Extends the lease of a job this worker runs. Returns its status (CANCELLING means: stop it), or
 * null when the job is no longer this worker's (reclaimed elsewhere, or finished).
 */
export async function renewJobLease(sql: Sql, jobId: string, workerId: string, leaseMs: number): Promise<JobStatus | null> {
  const [row] = await sql<{ status: JobStatus }[]>`
    update jobs set lease_expires_at = now() + ${ms(leaseMs)}::interval, heartbeat_at = now()
    where id = ${jobId} and worker_id = ${workerId} and status in ('RUNNING', 'CANCELLING')
    returning status`;
  return row?.status ?? null;
}

/** Stores progress counters of a job this worker runs (callers throttle). */
export async function recordProgress(
  sql: Sql,
  jobId: string,
  workerId: string,
  p: { filesDone: number; filesTotal: number; bytesDone: number; bytesTotal: number },
): Promise<void> {
  await sql`
    update jobs set files_done = ${p.filesDone}, files_total = ${p.filesTotal}, bytes_done = ${p.bytesDone}, bytes_total = ${p.bytesTotal}
    where id = ${jobId} and worker_id = ${workerId} and status in ('RUNNING', 'CANCELLING')`;
}

/** Appends an event of a job `worker` runs, and stores the strategy when the engine announces it. */
export async function recordRunEvent(
  sql: Sql,
  jobId: string,
  worker: WorkerRef,
  kind: EventKind,
  message: string,
  opts: { level?: EventLevel; data?: Record<string, unknown>; strategy?: string } = {},
): Promise<void> {
  await inTransaction(sql, async (tx) => {
    if (opts.strategy) await tx`update jobs set strategy = ${opts.strategy} where id = ${jobId}`;
    await appendEvent(tx, jobId, kind, message, { level: opts.level ?? "info", data: by(worker, opts.data) });
  });
}

/**
 * RUNNING (or CANCELLING: the cancel came after the data was committed) → DONE, with the final
 * counters and a `done` event. False when the job is no longer this worker's.
 */
export async function completeJob(
  sql: Sql,
  jobId: string,
  worker: WorkerRef,
  result: { strategy: string; files: number; bytes: number; data: Record<string, unknown> },
): Promise<boolean> {
  return inTransaction(sql, async (tx) => {
    const [job] = await tx<JobRow[]>`
      update jobs set status = 'DONE', finished_at = now(), lease_expires_at = null, next_attempt_at = null,
        strategy = ${result.strategy}, files_done = ${result.files}, files_total = ${result.files},
        bytes_done = ${result.bytes}, bytes_total = ${result.bytes}, error_code = null, error_message = null
      where id = ${jobId} and worker_id = ${worker.id} and status in ('RUNNING', 'CANCELLING')
      returning *`;
    if (!job) return false;
    await appendEvent(tx, jobId, "done", `${result.files} files, ${result.bytes} bytes transferred (${result.strategy})`, { data: by(worker, result.data) });
    return true;
  });
}

/** CANCELLING → CANCELLED by the worker that stopped the engine. */
async function cancelIfRequested(tx: Sql, jobId: string, worker: WorkerRef, why: string): Promise<boolean> {
  const [job] = await tx<JobRow[]>`
    update jobs set status = 'CANCELLED', finished_at = now(), lease_expires_at = null, next_attempt_at = null
    where id = ${jobId} and worker_id = ${worker.id} and status = 'CANCELLING'
    returning *`;
  if (!job) return false;
  await appendEvent(tx, jobId, "cancelled", why, { data: by(worker) });
  return true;
}

/** CANCELLING → CANCELLED once the engine stopped and cleaned its staging. False when not this worker's. */
export async function markCancelled(sql: Sql, jobId: string, worker: WorkerRef): Promise<boolean> {
  return inTransaction(sql, (tx) => cancelIfRequested(tx, jobId, worker, "cancelled; the transfer stopped and its staging was removed"));
}

/**
 * RUNNING → RETRY_WAIT, due in `delayMs`, keeping the error visible, with a `retry_scheduled` event.
 * A job whose cancel was requested meanwhile is CANCELLED instead. null: not this worker's job.
 */
export async function scheduleRetry(sql: Sql, jobId: string, worker: WorkerRef, failure: JobFailure, delayMs: number): Promise<"retry" | "cancelled" | null> {
  return inTransaction(sql, async (tx) => {
    const [job] = await tx<JobRow[]>`
      update jobs set status = 'RETRY_WAIT', next_attempt_at = now() + ${ms(delayMs)}::interval,
        error_code = ${failure.code}, error_message = ${failure.message}, worker_id = null, lease_expires_at = null
      where id = ${jobId} and worker_id = ${worker.id} and status = 'RUNNING'
      returning *`;
    if (job) {
      await appendEvent(tx, jobId, "retry_scheduled", `attempt ${job.attempts} of ${job.max_attempts} failed (${failure.code}); retrying in ${(delayMs / 1000).toFixed(1)} s`, {
        level: "warn",
        data: by(worker, { code: failure.code, message: failure.message, attempt: job.attempts, maxAttempts: job.max_attempts, delayMs: Math.round(delayMs), nextAttemptAt: job.next_attempt_at }),
      });
      return "retry";
    }
    return (await cancelIfRequested(tx, jobId, worker, "cancelled while the failed attempt was stopping")) ? "cancelled" : null;
  });
}

/** RUNNING → FAILED with the error code and a `failed` event (or CANCELLED when a cancel was requested). */
export async function failJob(sql: Sql, jobId: string, worker: WorkerRef, failure: JobFailure): Promise<"failed" | "cancelled" | null> {
  return inTransaction(sql, async (tx) => {
    const [job] = await tx<JobRow[]>`
      update jobs set status = 'FAILED', finished_at = now(), error_code = ${failure.code}, error_message = ${failure.message},
        lease_expires_at = null, next_attempt_at = null
      where id = ${jobId} and worker_id = ${worker.id} and status = 'RUNNING'
      returning *`;
    if (job) {
      const why = failure.retryable ? `no attempts left (${job.attempts} of ${job.max_attempts})` : "not retryable";
      await appendEvent(tx, jobId, "failed", `${failure.code}: ${failure.message} (${why})`, {
        level: "error",
        data: by(worker, { code: failure.code, message: failure.message, retryable: failure.retryable, attempt: job.attempts, maxAttempts: job.max_attempts }),
      });
      return "failed";
    }
    return (await cancelIfRequested(tx, jobId, worker, "cancelled while the attempt was failing")) ? "cancelled" : null;
  });
}

/**
 * RUNNING → QUEUED when the worker shuts down before the job finished: the attempt is given back
 * (it was interrupted, not failed) and a `released` event recorded. A job whose cancel was requested
 * is CANCELLED instead. null: not this worker's job.
 */
export async function releaseJob(sql: Sql, jobId: string, worker: WorkerRef): Promise<"released" | "cancelled" | null> {
  return inTransaction(sql, async (tx) => {
    const [job] = await tx<JobRow[]>`
      update jobs set status = 'QUEUED', attempts = greatest(attempts - 1, 0), worker_id = null,
        lease_expires_at = null, heartbeat_at = null
      where id = ${jobId} and worker_id = ${worker.id} and status = 'RUNNING'
      returning *`;
    if (job) {
      await appendEvent(tx, jobId, "released", `worker ${worker.id} (site ${worker.site}) is shutting down; job returned to the queue`, { level: "warn", data: by(worker) });
      return "released";
    }
    return (await cancelIfRequested(tx, jobId, worker, "cancelled while the worker was shutting down")) ? "cancelled" : null;
  });
}

/**
 * Takes back a job whose lease expired (its worker died or lost Postgres): RUNNING → QUEUED with a
 * `reclaimed` event, or FAILED (WORKER_LOST) when that was its last attempt; CANCELLING →
 * CANCELLED. Does nothing (null) while the lease is still valid, so reaper and reconciler may both
 * call it: exactly one of them records the transition.
 */
export async function reclaimJob(sql: Sql, jobId: string, reaper: WorkerRef): Promise<"reclaimed" | "failed" | "cancelled" | null> {
  return inTransaction(sql, async (tx) => {
    const [prev] = await tx<{ status: JobStatus; worker_id: string | null; attempts: number; max_attempts: number }[]>`
      select status, worker_id, attempts, max_attempts from jobs
      where id = ${jobId} and status in ('RUNNING', 'CANCELLING') and coalesce(lease_expires_at < now(), true)
      for update`;
    if (!prev) return null;
    const lost = `worker ${prev.worker_id ?? "(unknown)"} stopped renewing its lease`;
    // workerId/site name the worker that noticed (any site's reaper may), previousWorker the lost one.
    const data = by(reaper, { previousWorker: prev.worker_id, attempt: prev.attempts, maxAttempts: prev.max_attempts });
    if (prev.status === "CANCELLING") {
      await tx`update jobs set status = 'CANCELLED', finished_at = now(), lease_expires_at = null where id = ${jobId}`;
      // The engine names staging after the job id; a retry of this job cleans what is left.
      await appendEvent(tx, jobId, "cancelled", `${lost} while cancelling; cancelled (a retry removes any staging left behind)`, { level: "warn", data });
      return "cancelled";
    }
    if (prev.attempts >= prev.max_attempts) {
      const message = `${lost} during the last attempt (${prev.attempts} of ${prev.max_attempts})`;
      await tx`
        update jobs set status = 'FAILED', finished_at = now(), error_code = 'WORKER_LOST', error_message = ${message}, lease_expires_at = null
        where id = ${jobId}`;
      await appendEvent(tx, jobId, "failed", `WORKER_LOST: ${message}`, { level: "error", data: { ...data, code: "WORKER_LOST", retryable: false } });
      return "failed";
    }
    await tx`update jobs set status = 'QUEUED', worker_id = null, lease_expires_at = null, heartbeat_at = null where id = ${jobId}`;
    await appendEvent(tx, jobId, "reclaimed", `${lost}; job returned to the queue`, { level: "warn", data });
    return "reclaimed";
  });
}

/** Unfinished jobs the reconciler compares with Redis, oldest first, at most `limit` of each kind, with the site each must run at (null: any). */
export async function jobsToReconcile(
  sql: Sql,
  limit: number,
): Promise<{ queued: Array<{ id: string; site: string | null }>; retryWait: Array<{ id: string; site: string | null; dueInMs: number }>; leaseExpired: Array<{ id: string; site: string | null }> }> {
  const queued = await sql<{ id: string; site: string | null }[]>`
    select id, site from jobs where status = 'QUEUED' order by created_at limit ${limit}`;
  const retryWait = await sql<{ id: string; site: string | null; due_in_ms: number }[]>`
    select id, site, greatest(0, extract(epoch from (next_attempt_at - now())) * 1000)::float8 as due_in_ms
    from jobs where status = 'RETRY_WAIT' order by next_attempt_at limit ${limit}`;
  const expired = await sql<{ id: string; site: string | null }[]>`
    select id, site from jobs where status in ('RUNNING', 'CANCELLING') and coalesce(lease_expires_at < now(), true)
    order by lease_expires_at nulls first limit ${limit}`;
  return {
    queued: queued.map((r) => ({ id: r.id, site: r.site })),
    retryWait: retryWait.map((r) => ({ id: r.id, site: r.site, dueInMs: r.due_in_ms })),
    leaseExpired: expired.map((r) => ({ id: r.id, site: r.site })),
  };
}
