/**
 * The worker's side of the job state machine in Postgres. Every transition is one conditional
 * `update … where status … returning`, committed together with the event that records it, so a
 * job delivered twice, a worker that lost its lease, or a cancel racing a failure can never move a
 * job twice. The API's side (create, cancel request, retry) lives in repository.ts.
 *
 *   QUEUED ──claim──▶ RUNNING ──▶ DONE | DONE_WITH_ERRORS (some files failed, skipFileErrors) | FAILED
 *   RUNNING ──retryable error──▶ RETRY_WAIT ──due, claim──▶ RUNNING
 *   RUNNING ──cancel requested (API)──▶ CANCELLING ──engine stopped──▶ CANCELLED
 *   RUNNING ──worker shutting down──▶ QUEUED (released; the attempt is not counted)
 *   RUNNING ──lease expired (worker died)──▶ QUEUED (reclaimed) | FAILED (no attempts left)
 *
 * Fencing: the attempt number is a token. Every statement that records something for a running
 * attempt names its Fence (job, worker, attempt) in its WHERE, so the writes of an attempt whose
 * job was reclaimed (and perhaps claimed again, even by the same worker) change nothing.
 *
 * Once `committed_at` is set the data arrived, and the job can only end DONE (DONE_WITH_ERRORS
 * when job_files holds failed files; "DONE" below means either): a failure is recorded as DONE with
 * the error kept as a warning, a lost worker's job is queued again (with an extra attempt when it
 * had none left) so that a later attempt finishes what follows the commit, and a cancel no longer
 * stops it. `phase` non-null (the commit fence was passed) means the data
 * may have arrived: a lost worker's job is then also queued again rather than failed, and the
 * engine's commit marker tells the next attempt which it was.
 *
 * A worker claims only jobs its site may run (the claim itself checks the job's site and its
 * portals' placement), and every event it writes carries its id and site.
 */
import type { Sql } from "postgres";
import { appendEvent } from "./events.ts";
import { anyFileFailed, countFiles, describeTally, filesFailedError, settleFiles } from "./files.ts";
import type { EventKind, EventLevel, JobRow, JobStatus } from "./types.ts";


/**
 * An attempt that stops before its commit has verified nothing: its progress counters go back to 0
 * (a cancelled copy once showed 100 % with no file done). After the commit they stay.
 */
const NOTHING_VERIFIED_SQL = "files_done = case when committed_at is null then 0 else files_done end, bytes_done = case when committed_at is null then 0 else bytes_done end, bytes_resumed = case when committed_at is null then 0 else bytes_resumed end";
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

/** Who may write for a running attempt: the job, the worker running it and the attempt number (the fencing token). */
export interface Fence {
  jobId: string;
  worker: WorkerRef;
  attempt: number;
}

/**
 * What claimJob decided. When refused, `job` (null: no such job) says why; `misplaced`: this
 * worker's site may not run it (it belongs to `site`, or one of its portals is not reachable here).
 */
export type Claim =
  | { claimed: true; job: JobRow }
  | { claimed: false; job: { status: JobStatus; leaseExpired: boolean; dueInMs: number | null; site: string | null; misplaced: boolean } | null };

/** A guarded step of the engine (transfer_engine's GuardedStep), as recorded in `phase`. */
export type GuardedStepName = "commit" | "remove_source";

/** recordStep's verdict: the step may go ahead, the job is being cancelled, or the lease is not provably this attempt's. */
export type StepVerdict = "granted" | "cancelling" | "lost";

/** Most attempts a job may have (jobs.max_attempts check); a job whose data may have arrived gets extra ones up to it. */
export const ATTEMPTS_CEILING = 100;

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
 * job delivered twice runs once; a worker of the wrong site never wins it. The returned row's
 * `attempts` is the new attempt's fencing token.
 */
export async function claimJob(sql: Sql, jobId: string, worker: WorkerRef, leaseMs: number): Promise<Claim> {
  return inTransaction(sql, async (tx) => {
    const [job] = await tx<JobRow[]>`
      update jobs j set status = 'RUNNING', attempts = attempts + 1, worker_id = ${worker.id},
        lease_expires_at = now() + ${ms(leaseMs)}::interval, heartbeat_at = now(), next_attempt_at = null,
        started_at = coalesce(started_at, now()), files_done = 0, bytes_done = 0, bytes_resumed = 0
      where j.id = ${jobId} and j.attempts < j.max_attempts
        and (j.status = 'QUEUED' or (j.status = 'RETRY_WAIT' and j.next_attempt_at <= now()))
        and not ${misplacedAt(tx, worker.site)}
      returning *`;
    if (job) {
      const resume = job.committed_at !== null ? "; its data already arrived, it only finishes what follows the commit" : "";
      await appendEvent(tx, jobId, "started", `attempt ${job.attempts} of ${job.max_attempts} started on worker ${worker.id} (site ${worker.site})${resume}`, {
        data: by(worker, { attempt: job.attempts, maxAttempts: job.max_attempts, ...(resume ? { resume: true } : {}) }),
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
 * Extends the lease of a job this attempt runs. Returns its status (CANCELLING means: stop it), or
 * null when the job is no longer this attempt's (reclaimed elsewhere, or finished). An expired
 * lease not yet reclaimed may still be renewed: reclaiming takes the row lock this update takes,
 * so exactly one of the two wins, and a reclaimed job fails this fence.
 */
export async function renewJobLease(sql: Sql, fence: Fence, leaseMs: number): Promise<JobStatus | null> {
  const [row] = await sql<{ status: JobStatus }[]>`
    update jobs set lease_expires_at = now() + ${ms(leaseMs)}::interval, heartbeat_at = now()
    where id = ${fence.jobId} and worker_id = ${fence.worker.id} and attempts = ${fence.attempt} and status in ('RUNNING', 'CANCELLING')
    returning status`;
  return row?.status ?? null;
}

/**
 * The fence before a guarded step: one statement that proves this attempt still holds an unexpired
 * lease (checked against the clock when the row is locked, not when the statement was sent),
 * records the step in `phase`, and extends the lease so the step has a whole lease ahead of it.
 * The commit needs RUNNING (a cancel requested before it wins); a move's source removal follows a
 * commit, so CANCELLING does not stop it.
 */
export async function recordStep(sql: Sql, fence: Fence, step: GuardedStepName, leaseMs: number): Promise<StepVerdict> {
  const statuses = step === "commit" ? ["RUNNING"] : ["RUNNING", "CANCELLING"];
  const [row] = await sql<{ status: JobStatus }[]>`
    update jobs set phase = ${step}, lease_expires_at = now() + ${ms(leaseMs)}::interval, heartbeat_at = now()
    where id = ${fence.jobId} and worker_id = ${fence.worker.id} and attempts = ${fence.attempt}
      and status = any(${statuses}) and lease_expires_at > clock_timestamp()
    returning status`;
  if (row) return "granted";
  const [now] = await sql<{ status: JobStatus; ours: boolean }[]>`
    select status, (worker_id = ${fence.worker.id} and attempts = ${fence.attempt} and lease_expires_at > clock_timestamp()) as ours
    from jobs where id = ${fence.jobId}`;
  return now?.ours && now.status === "CANCELLING" ? "cancelling" : "lost";
}

/**
 * Records, durably, that this attempt's data arrived (`committed_at`). The fact stays true after
 * the lease is gone, so the attempt number alone fences it: it lands while the job is still this
 * attempt's, or was reclaimed from it and not yet claimed again. False when a later attempt exists.
 */
export async function recordCommitted(sql: Sql, fence: Fence): Promise<boolean> {
  const rows = await sql`
    update jobs set committed_at = coalesce(committed_at, now()), phase = 'committed'
    where id = ${fence.jobId} and attempts = ${fence.attempt}
      and ((worker_id = ${fence.worker.id} and status in ('RUNNING', 'CANCELLING')) or (worker_id is null and status = 'QUEUED'))
    returning id`;
  return rows.length === 1;
}

/** Stores progress counters of a job this attempt runs (callers throttle). False when refused. */
export async function recordProgress(
  sql: Sql,
  fence: Fence,
  p: { filesDone: number; filesTotal: number; bytesDone: number; bytesTotal: number; bytesResumed?: number },
): Promise<boolean> {
  const rows = await sql`
    update jobs set files_done = ${p.filesDone}, files_total = ${p.filesTotal}, bytes_done = ${p.bytesDone}, bytes_total = ${p.bytesTotal},
      bytes_resumed = ${p.bytesResumed ?? 0}
    where id = ${fence.jobId} and worker_id = ${fence.worker.id} and attempts = ${fence.attempt} and status in ('RUNNING', 'CANCELLING')
    returning id`;
  return rows.length === 1;
}

/**
 * Appends an event of a running attempt, and stores the strategy when the engine announces it.
 * False (nothing written) when the job is no longer this attempt's. The job row is locked FOR KEY
 * SHARE, so a reclaim cannot slip between the check and the insert.
 */
export async function recordRunEvent(
  sql: Sql,
  fence: Fence,
  kind: EventKind,
  message: string,
  opts: { level?: EventLevel; data?: Record<string, unknown>; strategy?: string } = {},
): Promise<boolean> {
  return inTransaction(sql, async (tx) => {
    const ours = opts.strategy
      ? await tx`
          update jobs set strategy = ${opts.strategy}
          where id = ${fence.jobId} and worker_id = ${fence.worker.id} and attempts = ${fence.attempt} and status in ('RUNNING', 'CANCELLING')
          returning id`
      : await tx`
          select id from jobs
          where id = ${fence.jobId} and worker_id = ${fence.worker.id} and attempts = ${fence.attempt} and status in ('RUNNING', 'CANCELLING')
          for key share`;
    if (ours.length === 0) return false;
    await appendEvent(tx, fence.jobId, kind, message, { level: opts.level ?? "info", data: by(fence.worker, opts.data) });
    return true;
  });
}

/**
 * RUNNING (or CANCELLING: the cancel came after the data was committed) → DONE, with the final
 * counters and a `done` event — or DONE_WITH_ERRORS when job_files holds failed files, with the
 * error FILES_FAILED naming the first ones. `outcomes`: this attempt reported its files under that
 * token (every run but a `resumed` one), so the rows it did not touch are settled first
 * (files.ts settleFiles). A `resumed` result (an earlier attempt moved the data; this one only
 * finished the move) keeps the totals and the strategy the job already had. False when the job is
 * no longer this attempt's.
 */
export async function completeJob(
  sql: Sql,
  fence: Fence,
  /** strategy null: a verify job (migration 0008), which moved no data. */
  result: { strategy: string | null; files: number; bytes: number; data: Record<string, unknown>; outcomes?: { token: string } },
): Promise<boolean> {
  return inTransaction(sql, async (tx) => {
    const resumed = result.strategy === "resumed";
    const [job] = await tx<JobRow[]>`
      update jobs set status = 'DONE', finished_at = now(), lease_expires_at = null, next_attempt_at = null,
        strategy = ${resumed ? tx`coalesce(strategy, ${result.strategy})` : tx`${result.strategy}`},
        files_total = ${resumed ? tx`coalesce(files_total, ${result.files})` : tx`${result.files}`},
        bytes_total = ${resumed ? tx`coalesce(bytes_total, ${result.bytes})` : tx`${result.bytes}`},
        files_done = ${resumed ? tx`coalesce(files_total, ${result.files})` : tx`${result.files}`},
        bytes_done = ${resumed ? tx`coalesce(bytes_total, ${result.bytes})` : tx`${result.bytes}`},
        error_code = null, error_message = null
      where id = ${fence.jobId} and worker_id = ${fence.worker.id} and attempts = ${fence.attempt} and status in ('RUNNING', 'CANCELLING')
      returning *`;
    if (!job) return false;
    if (result.outcomes) await settleFiles(tx, fence.jobId, result.outcomes.token, job.scope);
    const files = await countFiles(tx, fence.jobId);
    const failed = files.failed > 0 ? await filesFailedError(tx, fence.jobId, files) : null;
    if (failed) await tx`update jobs set status = 'DONE_WITH_ERRORS', error_code = ${failed.code}, error_message = ${failed.message} where id = ${fence.jobId}`;
    const what = resumed
      ? `finished a transfer an earlier attempt had committed (${job.files_total ?? 0} files, ${job.bytes_total ?? 0} bytes, ${job.strategy})`
      : result.strategy === null ? `${result.files} files verified against their ASC MHL history`
      : `${result.files} files, ${result.bytes} bytes transferred (${result.strategy})`;
    const message = files.total > 0 ? `${what}; ${describeTally(files)}${failed ? `: ${failed.message}` : ""}` : what;
    await appendEvent(tx, fence.jobId, "done", message, { level: failed ? "warn" : "info", data: by(fence.worker, { ...result.data, ...(files.total > 0 ? { outcomes: files } : {}) }) });
    return true;
  });
}

/** CANCELLING → CANCELLED by the attempt that stopped the engine; never once the data arrived. */
async function cancelIfRequested(tx: Sql, fence: Fence, why: string): Promise<boolean> {
  const [job] = await tx<JobRow[]>`
    update jobs set status = 'CANCELLED', finished_at = now(), lease_expires_at = null, next_attempt_at = null, ${tx.unsafe(NOTHING_VERIFIED_SQL)}
    where id = ${fence.jobId} and worker_id = ${fence.worker.id} and attempts = ${fence.attempt} and status = 'CANCELLING'
      and committed_at is null
    returning *`;
  if (!job) return false;
  await appendEvent(tx, fence.jobId, "cancelled", why, { data: by(fence.worker) });
  return true;
}

/** CANCELLING → CANCELLED once the engine stopped and cleaned its staging. False when not this attempt's. */
export async function markCancelled(sql: Sql, fence: Fence): Promise<boolean> {
  return inTransaction(sql, (tx) => cancelIfRequested(tx, fence, "cancelled; the transfer stopped and its staging was removed"));
}

/**
 * RUNNING → RETRY_WAIT, due in `delayMs`, keeping the error visible, with a `retry_scheduled` event.
 * `extraAttempt`: the attempt budget is spent but the data may have arrived, so one more attempt is
 * granted to finish (max_attempts grows by one, up to 100). A job whose cancel was requested
 * meanwhile is CANCELLED instead. null: not this attempt's.
 */
export async function scheduleRetry(
  sql: Sql,
  fence: Fence,
  failure: JobFailure,
  delayMs: number,
  opts: { extraAttempt?: boolean } = {},
): Promise<"retry" | "cancelled" | null> {
  return inTransaction(sql, async (tx) => {
    const [job] = await tx<JobRow[]>`
      update jobs set status = 'RETRY_WAIT', next_attempt_at = now() + ${ms(delayMs)}::interval, ${tx.unsafe(NOTHING_VERIFIED_SQL)},
        error_code = ${failure.code}, error_message = ${failure.message}, worker_id = null, lease_expires_at = null,
        max_attempts = ${opts.extraAttempt ? tx`greatest(max_attempts, least(attempts + 1, ${ATTEMPTS_CEILING}))` : tx`max_attempts`}
      where id = ${fence.jobId} and worker_id = ${fence.worker.id} and attempts = ${fence.attempt} and status = 'RUNNING'
      returning *`;
    if (job) {
      await appendEvent(tx, fence.jobId, "retry_scheduled", `attempt ${job.attempts} of ${job.max_attempts} failed (${failure.code}); retrying in ${(delayMs / 1000).toFixed(1)} s`, {
        level: "warn",
        data: by(fence.worker, {
          code: failure.code, message: failure.message, attempt: job.attempts, maxAttempts: job.max_attempts, delayMs: Math.round(delayMs), nextAttemptAt: job.next_attempt_at,
          ...(opts.extraAttempt ? { extraAttempt: true } : {}),
        }),
      });
      return "retry";
    }
    return (await cancelIfRequested(tx, fence, "cancelled while the failed attempt was stopping")) ? "cancelled" : null;
  });
}

/**
 * RUNNING → FAILED with the error code and a `failed` event (or CANCELLED when a cancel was
 * requested). A job whose data arrived never fails: it becomes DONE with the error kept as a
 * warning (what followed the commit, e.g. removing a move's source, did not finish).
 */
export async function failJob(sql: Sql, fence: Fence, failure: JobFailure): Promise<"failed" | "done" | "cancelled" | null> {
  return inTransaction(sql, async (tx) => {
    const [job] = await tx<JobRow[]>`
      update jobs set status = case when committed_at is null then 'FAILED' when ${anyFileFailed(tx)} then 'DONE_WITH_ERRORS' else 'DONE' end,
        finished_at = now(), ${tx.unsafe(NOTHING_VERIFIED_SQL)},
        error_code = ${failure.code}, error_message = ${failure.message}, lease_expires_at = null, next_attempt_at = null
      where id = ${fence.jobId} and worker_id = ${fence.worker.id} and attempts = ${fence.attempt} and status = 'RUNNING'
      returning *`;
    if (job) {
      const data = by(fence.worker, { code: failure.code, message: failure.message, retryable: failure.retryable, attempt: job.attempts, maxAttempts: job.max_attempts });
      if (job.status !== "FAILED") {
        await appendEvent(tx, fence.jobId, "done", `the data arrived, but what follows the commit did not finish: ${failure.code}: ${failure.message}`, { level: "warn", data: { ...data, dataArrived: true } });
        return "done";
      }
      const why = failure.retryable ? `no attempts left (${job.attempts} of ${job.max_attempts})` : "not retryable";
      await appendEvent(tx, fence.jobId, "failed", `${failure.code}: ${failure.message} (${why})`, { level: "error", data });
      return "failed";
    }
    return (await cancelIfRequested(tx, fence, "cancelled while the attempt was failing")) ? "cancelled" : null;
  });
}

/**
 * RUNNING → QUEUED when the worker shuts down before the job finished: the attempt is given back
 * (it was interrupted, not failed) and a `released` event recorded. A job whose cancel was requested
 * is CANCELLED instead. null: not this attempt's.
 */
export async function releaseJob(sql: Sql, fence: Fence): Promise<"released" | "cancelled" | null> {
  return inTransaction(sql, async (tx) => {
    const [job] = await tx<JobRow[]>`
      update jobs set status = 'QUEUED', attempts = greatest(attempts - 1, 0), worker_id = null, ${tx.unsafe(NOTHING_VERIFIED_SQL)},
        lease_expires_at = null, heartbeat_at = null
      where id = ${fence.jobId} and worker_id = ${fence.worker.id} and attempts = ${fence.attempt} and status = 'RUNNING'
      returning *`;
    if (job) {
      await appendEvent(tx, fence.jobId, "released", `worker ${fence.worker.id} (site ${fence.worker.site}) is shutting down; job returned to the queue`, { level: "warn", data: by(fence.worker) });
      return "released";
    }
    return (await cancelIfRequested(tx, fence, "cancelled while the worker was shutting down")) ? "cancelled" : null;
  });
}

/**
 * Takes back a job whose lease expired (its worker died or lost Postgres): RUNNING → QUEUED with a
 * `reclaimed` event, or FAILED (WORKER_LOST) when that was its last attempt; CANCELLING →
 * CANCELLED. A job whose data arrived, or may have (the commit fence was passed), is queued again
 * instead, with an extra attempt when it had none left, so the next attempt finishes it. Does
 * nothing (null) while the lease is still valid, so reaper and reconciler may both call it: exactly
 * one of them records the transition.
 */
export async function reclaimJob(sql: Sql, jobId: string, reaper: WorkerRef): Promise<"reclaimed" | "failed" | "cancelled" | "done" | null> {
  return inTransaction(sql, async (tx) => {
    const [prev] = await tx<{ status: JobStatus; worker_id: string | null; attempts: number; max_attempts: number; committed: boolean; past_commit_fence: boolean }[]>`
      select status, worker_id, attempts, max_attempts, committed_at is not null as committed, phase is not null as past_commit_fence from jobs
      where id = ${jobId} and status in ('RUNNING', 'CANCELLING') and coalesce(lease_expires_at < now(), true)
      for update`;
    if (!prev) return null;
    const lost = `worker ${prev.worker_id ?? "(unknown)"} stopped renewing its lease`;
    // workerId/site name the worker that noticed (any site's reaper may), previousWorker the lost one.
    const data = by(reaper, { previousWorker: prev.worker_id, attempt: prev.attempts, maxAttempts: prev.max_attempts });
    if (prev.status === "CANCELLING" && !prev.committed) {
      await tx`update jobs set status = 'CANCELLED', finished_at = now(), lease_expires_at = null where id = ${jobId}`;
      // The engine names staging after the job id; a retry of this job cleans what is left.
      await appendEvent(tx, jobId, "cancelled", `${lost} while cancelling; cancelled (a retry removes any staging left behind)`, { level: "warn", data });
      return "cancelled";
    }
    const finishing = prev.committed || prev.past_commit_fence;
    if (prev.attempts >= prev.max_attempts && !(finishing && prev.attempts < ATTEMPTS_CEILING)) {
      const message = `${lost} during the last attempt (${prev.attempts} of ${prev.max_attempts})`;
      if (prev.committed) {
        // Only at the attempts ceiling: the data arrived, so it ends DONE, honestly labelled.
        await tx`update jobs set status = case when ${anyFileFailed(tx)} then 'DONE_WITH_ERRORS' else 'DONE' end, finished_at = now(), error_code = 'WORKER_LOST', error_message = ${message}, lease_expires_at = null where id = ${jobId}`;
        await appendEvent(tx, jobId, "done", `the data arrived, but ${message}`, { level: "warn", data: { ...data, code: "WORKER_LOST", dataArrived: true } });
        return "done";
      }
      await tx`
        update jobs set status = 'FAILED', finished_at = now(), error_code = 'WORKER_LOST', error_message = ${message}, lease_expires_at = null
        where id = ${jobId}`;
      await appendEvent(tx, jobId, "failed", `WORKER_LOST: ${message}`, { level: "error", data: { ...data, code: "WORKER_LOST", retryable: false } });
      return "failed";
    }
    const extra = prev.attempts >= prev.max_attempts;
    await tx`
      update jobs set status = 'QUEUED', worker_id = null, lease_expires_at = null, heartbeat_at = null,
        max_attempts = ${extra ? prev.attempts + 1 : prev.max_attempts}
      where id = ${jobId}`;
    const why = prev.committed ? "; its data already arrived, the next attempt finishes it" : finishing ? "; it had reached its commit, the next attempt finds out whether the data arrived" : "";
    await appendEvent(tx, jobId, "reclaimed", `${lost}${why}; job returned to the queue${extra ? " with one extra attempt" : ""}`, {
      level: "warn",
      data: { ...data, ...(finishing ? { finishing: true } : {}), ...(extra ? { extraAttempt: true } : {}) },
    });
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
