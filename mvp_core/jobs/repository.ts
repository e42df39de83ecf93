/**
 * What the API does to jobs in Postgres: create (with its `created` and `queued` events in the same
 * statement), read, list, cancel and retry. Postgres is the source of truth; the caller enqueues in
 * Redis only after these commit.
 */
import type { Sql } from "postgres";
import { isSameOrInside, PortalPathError, resolvePortalPath } from "../portals/paths.ts";
import type { PortalRow } from "../portals/repository.ts";
import { type EventKind, type JobEventRow, type JobOptions, type JobRow, type JobStatus, type JobType, TERMINAL_STATUSES } from "./types.ts";

/** What creating a job takes; paths as the person gave them (relative, or absolute inside the root). */
export interface NewJob {
  type: JobType;
  sourcePortalId: string;
  sourcePath: string;
  targetPortalId: string;
  targetPath: string;
  options: JobOptions;
  maxAttempts: number;
  idempotencyKey?: string;
}

/** Why a job operation was refused (the API maps each to an HTTP status). */
export type JobErrorCode =
  | "NOT_FOUND"
  | "UNKNOWN_PORTAL"
  | "INVALID_PATH"
  | "SAME_PATH"
  | "TARGET_INSIDE_SOURCE"
  | "IDEMPOTENCY_CONFLICT"
  | "INVALID_STATE"
  | "BAD_CURSOR";

/** A refused job operation; `details.field` names the request field to fix when there is one. */
export class JobError extends Error {
  override readonly name = "JobError";
  constructor(readonly code: JobErrorCode, message: string, readonly details: Record<string, unknown> = {}) {
    super(message);
  }
}

type Side = "source" | "target";
type JsonValue = Parameters<Sql["json"]>[0];

function resolveSide(root: string | undefined, side: Side, portalId: string, path: string): string {
  // A relative path never needs the root; an absolute one is made relative to it.
  if (root === undefined && path.startsWith("/")) throw unknownPortal(side, portalId);
  try {
    return resolvePortalPath(root ?? "/", path);
  } catch (err) {
    if (err instanceof PortalPathError) throw new JobError("INVALID_PATH", `${side}.path: ${err.message}`, { field: `${side}.path`, path });
    throw err;
  }
}

function unknownPortal(side: Side, id: string): JobError {
  return new JobError("UNKNOWN_PORTAL", `${side}.portal: no portal with id ${id}; list them with GET /portals`, { field: `${side}.portal`, id });
}

/** Roots of the job's portals, looked up only when a path is absolute. */
async function rootsFor(sql: Sql, input: NewJob): Promise<Map<string, string>> {
  if (!input.sourcePath.startsWith("/") && !input.targetPath.startsWith("/")) return new Map();
  const rows = await sql<Pick<PortalRow, "id" | "root_path">[]>`
    select id, root_path from portals where id in (${input.sourcePortalId}, ${input.targetPortalId}) and deleted_at is null`;
  return new Map(rows.map((r) => [r.id, r.root_path]));
}

function sameRequest(job: JobRow, input: NewJob, sourcePath: string, targetPath: string): boolean {
  return (
    job.type === input.type &&
    job.source_portal_id === input.sourcePortalId &&
    job.target_portal_id === input.targetPortalId &&
    job.source_path === sourcePath &&
    job.target_path === targetPath &&
    job.max_attempts === input.maxAttempts &&
    JSON.stringify(sortKeys(job.options)) === JSON.stringify(sortKeys(input.options))
  );
}

function sortKeys(o: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined).sort(([a], [b]) => a.localeCompare(b)));
}

/**
 * Creates a QUEUED job with its `created` and `queued` events, or — when `idempotencyKey` was seen
 * before with the same request — returns that job with `created: false`.
 *
 * One statement does it all (it is the API's hot path): it locks the live portals FOR SHARE (so
 * deletePortal, which takes FOR UPDATE, cannot slip in between), inserts the job only when both
 * exist, and appends both events; being one statement, it commits or fails as a whole.
 */
export async function createJob(sql: Sql, input: NewJob): Promise<{ job: JobRow; created: boolean }> {
  const roots = await rootsFor(sql, input);
  const s = input.sourcePortalId;
  const t = input.targetPortalId;
  const sourcePath = resolveSide(roots.get(s), "source", s, input.sourcePath);
  const targetPath = resolveSide(roots.get(t), "target", t, input.targetPath);
  if (s === t && sourcePath === targetPath) {
    throw new JobError("SAME_PATH", `source and target are the same (${sourcePath} on one portal); choose another target path`, { field: "target.path" });
  }
  if (s === t && isSameOrInside(sourcePath, targetPath)) {
    throw new JobError("TARGET_INSIDE_SOURCE", `target ${targetPath} lies inside the source ${sourcePath}; choose a target outside it`, { field: "target.path" });
  }
  const options = sql.json(input.options as unknown as JsonValue);
  const [row] = await sql<(Omit<JobRow, "id"> & { id: string | null; live: string[] })[]>`
    with p as (
      select id, name from portals where id in (${s}::uuid, ${t}::uuid) and deleted_at is null for share
    ), j as (
      insert into jobs (type, source_portal_id, source_path, target_portal_id, target_path, options, max_attempts, idempotency_key)
      select ${input.type}, ${s}::uuid, ${sourcePath}, ${t}::uuid, ${targetPath}, ${options}, ${input.maxAttempts}, ${input.idempotencyKey ?? null}
      where (select count(*) from p) = ${s === t ? 1 : 2}
      on conflict (idempotency_key) do nothing
      returning *
    ), ev as (
      insert into job_events (job_id, kind, message, data)
      select j.id, e.kind, e.message, e.data
      from j
      cross join (select name from p where id = ${s}::uuid) src
      cross join (select name from p where id = ${t}::uuid) dst
      cross join lateral (values
        (1, 'created', ${input.type}::text || ' ' || src.name || ':' || ${sourcePath}::text || ' → ' || dst.name || ':' || ${targetPath}::text,
         jsonb_build_object('type', ${input.type}::text, 'source', jsonb_build_object('portal', src.name, 'path', ${sourcePath}::text),
                            'target', jsonb_build_object('portal', dst.name, 'path', ${targetPath}::text),
                            'options', ${options}::jsonb, 'maxAttempts', ${input.maxAttempts}::int)),
        (2, 'queued', 'waiting for a worker', '{}'::jsonb)) as e(ord, kind, message, data)
      order by e.ord
    )
    select j.*, array(select id::text from p) as live from (values (1)) as one left join j on true`;
  const live = row!.live;
  if (row!.id !== null) {
    const { live: _, ...job } = row!;
    return { job: job as JobRow, created: true };
  }
  if (!live.includes(s)) throw unknownPortal("source", s);
  if (!live.includes(t)) throw unknownPortal("target", t);
  // The key was used before: same request → same job; anything else is a client bug worth naming.
  const [prior] = await sql<JobRow[]>`select * from jobs where idempotency_key = ${input.idempotencyKey ?? null}`;
  if (!prior) throw new Error("idempotent insert returned nothing and no job holds the key");
  if (!sameRequest(prior, input, sourcePath, targetPath)) {
    throw new JobError("IDEMPOTENCY_CONFLICT", `Idempotency-Key was already used for job ${prior.id} with a different request; use a new key for a new job`, { jobId: prior.id });
  }
  return { job: prior, created: false };
}

/** The job `id`, or null. */
export async function getJob(sql: Sql, id: string): Promise<JobRow | null> {
  const [row] = await sql<JobRow[]>`select * from jobs where id = ${id}`;
  return row ?? null;
}

/** A page of jobs, newest first; pass `nextCursor` back as `cursor` for the next page. */
export interface JobPage {
  jobs: JobRow[];
  nextCursor: string | null;
}

// The cursor carries created_at to the microsecond (a JS Date would round it to milliseconds and
// skip or repeat rows) plus the id as tie-breaker, in an opaque base64url wrapper. It reaches SQL
// as text: a parameter postgres.js has seen described as timestamptz goes through its Date
// serializer on the next execution of the prepared statement, which drops the microseconds.
function encodeCursor(at: string, id: string): string {
  return Buffer.from(JSON.stringify([at, id])).toString("base64url");
}

const CURSOR_AT = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.\d{6}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * True when `at` (the cursor's UTC time) names a real instant Postgres accepts: year 1 or later
 * (there is no year 0), a month's real days (no 30 February, no 31 April), hours, minutes and
 * seconds in range. Date.parse is no help: it rolls 30 February over to 2 March.
 */
function isCalendarTime(at: string): boolean {
  const m = CURSOR_AT.exec(at);
  if (!m) return false;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1];
  return y >= 1 && days !== undefined && d >= 1 && d <= days && h <= 23 && mi <= 59 && s <= 59;
}

function decodeCursor(cursor: string): [string, string] {
  const bad = () => new JobError("BAD_CURSOR", "cursor is not one this API returned; omit it to start again from the newest job", { field: "cursor" });
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  if (
    !Array.isArray(parsed) || parsed.length !== 2 ||
    typeof parsed[0] !== "string" || !isCalendarTime(parsed[0]) ||
    typeof parsed[1] !== "string" || !UUID.test(parsed[1])
  ) {
    throw bad();
  }
  return [parsed[0], parsed[1]];
}

/** What GET /jobs filters by. */
export interface JobListOptions {
  statuses?: readonly JobStatus[];
  portalId?: string;
  limit: number;
  cursor?: string;
}

/**
 * The list statement (exported so a test can EXPLAIN exactly it). Each combination of filters is
 * one or more branches, each the first `limit + 1` rows of one index range in list order: per
 * status (an index over `status = any(…)` is not in created_at order across statuses) and per side
 * of `portal` (source OR target would otherwise scan one index and filter by the other column).
 * The branches are merged (UNION drops a job whose source and target are both the portal) and
 * only the page's rows are read from the table. Migration 0004 holds the indexes.
 *
 * A filter is written as a one-value range (`col >= v and col <= v`) with its column leading the
 * branch's ORDER BY, not as `col = v`: with an equality the planner may read a frequent portal or
 * status off the created_at index and filter the rest (cheaper by its model when the heap must be
 * visited), which for a portal or status whose jobs are all old walks the whole newer history —
 * the million rows removed by filter of issue 13. Written this way, only the filter's own index
 * yields the order without a sort, and btree still starts at the cursor inside the range
 * (EXPLAIN: the same buffers as with the equality).
 */
export function jobListStatement(sql: Sql, opts: JobListOptions) {
  const after = opts.cursor ? decodeCursor(opts.cursor) : null;
  const n = opts.limit + 1;
  const statuses: (JobStatus | null)[] = opts.statuses?.length ? [...new Set(opts.statuses)] : [null];
  const sides: ("source_portal_id" | "target_portal_id" | null)[] = opts.portalId ? ["source_portal_id", "target_portal_id"] : [null];
  const branches = sides.flatMap((side) =>
    statuses.map((status) => {
      const where = [
        side ? sql`${sql(side)} >= ${opts.portalId!}::uuid and ${sql(side)} <= ${opts.portalId!}::uuid` : null,
        status ? sql`status >= ${status} and status <= ${status}` : null,
        after ? sql`(created_at, id) < (${after[0]}::text::timestamptz, ${after[1]}::uuid)` : null,
      ].reduce((all, c) => (c ? sql`${all} and ${c}` : all), sql`true`);
      const bySide = side ? sql`${sql(side)}, ` : sql``;
      const byStatus = status ? sql`status, ` : sql``;
      return sql`(select id, created_at from jobs where ${where} order by ${bySide}${byStatus}created_at desc, id desc limit ${n})`;
    }),
  );
  const merged = branches.reduce((all, b) => sql`${all} union ${b}`);
  return sql<(JobRow & { cursor_at: string })[]>`
    with page as (
      select id, created_at from (${merged}) as b order by created_at desc, id desc limit ${n}
    )
    select jobs.*, to_char(jobs.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as cursor_at
    from page join jobs on jobs.id = page.id
    order by page.created_at desc, page.id desc`;
}

/** Jobs newest first, optionally only some statuses and/or those touching one portal (as source or target). */
export async function listJobs(sql: Sql, opts: JobListOptions): Promise<JobPage> {
  const rows = await jobListStatement(sql, opts);
  const more = rows.length > opts.limit;
  const page = rows.slice(0, opts.limit);
  const last = page[page.length - 1];
  const jobs = page.map(({ cursor_at: _, ...job }) => job as JobRow);
  return { jobs, nextCursor: more && last ? encodeCursor(last.cursor_at, last.id) : null };
}

/** A job's events in order; `afterId` continues from the last event seen (for polling). */
export async function listEvents(sql: Sql, jobId: string, opts: { afterId?: number; limit: number }): Promise<JobEventRow[]> {
  const [job] = await sql<{ id: string }[]>`select id from jobs where id = ${jobId}`;
  if (!job) throw new JobError("NOT_FOUND", `no job with id ${jobId}`, { id: jobId });
  return sql<JobEventRow[]>`
    select * from job_events where job_id = ${jobId} and id > ${opts.afterId ?? 0} order by id limit ${opts.limit}`;
}

async function lockJob(tx: Sql, id: string): Promise<JobRow> {
  const [job] = await tx<JobRow[]>`select * from jobs where id = ${id} for update`;
  if (!job) throw new JobError("NOT_FOUND", `no job with id ${id}`, { id });
  return job;
}

async function addEvents(tx: Sql, jobId: string, events: { kind: EventKind; message: string; data?: Record<string, unknown> }[]): Promise<void> {
  for (const e of events) {
    await tx`insert into job_events (job_id, kind, message, data) values (${jobId}, ${e.kind}, ${e.message}, ${tx.json((e.data ?? {}) as JsonValue)})`;
  }
}

/**
 * Cancels a job. One that has not started yet is CANCELLED at once; a running one becomes
 * CANCELLING and `notifyWorker` tells the caller to signal the worker. Repeating is harmless;
 * a DONE or FAILED job is refused.
 */
export async function requestCancel(sql: Sql, id: string): Promise<{ job: JobRow; notifyWorker: boolean }> {
  return sql.begin(async (txn) => {
    const tx = txn as unknown as Sql;
    const job = await lockJob(tx, id);
    if (job.committed_at !== null && !TERMINAL_STATUSES.includes(job.status)) {
      // The data arrived; what is left (a move's source removal) must finish, or the job would end half-moved.
      throw new JobError("INVALID_STATE", `job ${id} has already delivered its data and is finishing; it cannot be cancelled`, { status: job.status, committed: true });
    }
    switch (job.status) {
      case "CANCELLING":
      case "CANCELLED":
        return { job, notifyWorker: job.status === "CANCELLING" };
      case "DONE":
      case "FAILED":
        throw new JobError("INVALID_STATE", `job ${id} is ${job.status}; a finished job cannot be cancelled`, { status: job.status });
      case "QUEUED":
      case "RETRY_WAIT": {
        const [row] = await tx<JobRow[]>`
          update jobs set status = 'CANCELLED', finished_at = now(), next_attempt_at = null where id = ${id} returning *`;
        await addEvents(tx, id, [
          { kind: "cancel_requested", message: "cancel requested through the API" },
          { kind: "cancelled", message: `cancelled before it ${job.status === "QUEUED" ? "started" : "was retried"}` },
        ]);
        return { job: row!, notifyWorker: false };
      }
      case "RUNNING": {
        const [row] = await tx<JobRow[]>`update jobs set status = 'CANCELLING' where id = ${id} returning *`;
        await addEvents(tx, id, [{ kind: "cancel_requested", message: "cancel requested through the API; stopping the running attempt" }]);
        return { job: row!, notifyWorker: true };
      }
    }
  });
}

/**
 * Puts a FAILED or CANCELLED job back to QUEUED with a fresh attempt budget and progress; the
 * caller enqueues it after this commits. Refused when a portal it uses was deleted meanwhile.
 */
export async function retryJob(sql: Sql, id: string): Promise<JobRow> {
  return sql.begin(async (txn) => {
    const tx = txn as unknown as Sql;
    const job = await lockJob(tx, id);
    if (job.status !== "FAILED" && job.status !== "CANCELLED") {
      throw new JobError("INVALID_STATE", `job ${id} is ${job.status}; only FAILED or CANCELLED jobs can be retried`, { status: job.status });
    }
    const live = await tx<{ id: string }[]>`
      select id from portals where id in (${job.source_portal_id}, ${job.target_portal_id}) and deleted_at is null for share`;
    if (live.length < (job.source_portal_id === job.target_portal_id ? 1 : 2)) {
      throw new JobError("INVALID_STATE", `a portal job ${id} uses was deleted; create a new job instead`, { status: job.status });
    }
    const [row] = await tx<JobRow[]>`
      update jobs set status = 'QUEUED', attempts = 0, strategy = null, phase = null, committed_at = null, files_done = 0, files_total = null,
        bytes_done = 0, bytes_total = null, error_code = null, error_message = null, worker_id = null,
        lease_expires_at = null, heartbeat_at = null, next_attempt_at = null, started_at = null, finished_at = null
      where id = ${id} returning *`;
    await addEvents(tx, id, [
      { kind: "retried", message: `retried through the API after ${job.status}`, data: { previousStatus: job.status, previousAttempts: job.attempts, previousError: job.error_code } },
      { kind: "queued", message: "waiting for a worker" },
    ]);
    return row!;
  });
}
