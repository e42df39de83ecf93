/**
 * What the API does to jobs in Postgres: create (with its `created` and `queued` events in the same
 * statement, and the site it must run at), read, list, cancel and retry. Postgres is the source of
 * truth; the caller enqueues in Redis (on the job's site's list) only after these commit.
 */
import type { Sql } from "postgres";
import { isSameOrInside, PortalPathError, resolvePortalPath } from "../portals/paths.ts";
import type { PortalRow } from "../portals/repository.ts";
import { adoptUnsited } from "../sites/repository.ts";
import { type Placement, type RouteProblem, routeJob } from "../sites/routing.ts";
import { type EventKind, type JobEventRow, type JobOptions, type JobRow, type JobScope, type JobStatus, type JobType, RETRYABLE_STATUSES, TERMINAL_STATUSES } from "./types.ts";

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
  | "BAD_CURSOR"
  | RouteProblem
  | "PORTAL_CHANGED";

/** A refused job operation; `details.field` names the request field to fix when there is one. */
export class JobError extends Error {
  override readonly name = "JobError";
  constructor(readonly code: JobErrorCode, message: string, readonly details: Record<string, unknown> = {}) {
    super(message);
  }
}

type Side = "source" | "target";
type JsonValue = Parameters<Sql["json"]>[0];

function resolveSide(root: string, side: Side, path: string): string {
  try {
    return resolvePortalPath(root, path);
  } catch (err) {
    if (err instanceof PortalPathError) throw new JobError("INVALID_PATH", `${side}.path: ${err.message}`, { field: `${side}.path`, path });
    throw err;
  }
}

function unknownPortal(side: Side, id: string): JobError {
  return new JobError("UNKNOWN_PORTAL", `${side}.portal: no portal with id ${id}; list them with GET /portals`, { field: `${side}.portal`, id });
}

/** What a job needs to know of a portal, with `version` (its updated_at as text) to detect a change before the insert. */
type PortalFacts = Placement & Pick<PortalRow, "root_path"> & { version: string };

/**
 * Portal facts per connection pool. A stale entry is harmless: the insert itself checks every
 * portal's version and refuses the job when one changed, and createJob then reads afresh. Caching
 * keeps POST /jobs (the API's hot path) at one statement, as it was before jobs had sites.
 */
const factsCache = new WeakMap<Sql, Map<string, PortalFacts>>();
const FACTS_CACHE_MAX = 10_000;

/**
 * The job's live portals by id, from the cache unless `fresh`; a local portal from before sites
 * existed is adopted when only one site was ever seen.
 */
async function portalsFor(sql: Sql, ids: readonly string[], fresh: boolean): Promise<Map<string, PortalFacts>> {
  let cache = factsCache.get(sql);
  if (!cache || cache.size > FACTS_CACHE_MAX) factsCache.set(sql, (cache = new Map()));
  const known = cache;
  const missing = fresh ? ids : ids.filter((id) => !known.has(id));
  if (missing.length > 0) {
    const read = () => sql<PortalFacts[]>`
      select id, name, kind, site, allowed_sites, root_path, updated_at::text as version
      from portals where id in ${sql(missing)} and deleted_at is null`;
    let rows = await read();
    if (rows.some((p) => p.kind === "local" && p.site === null) && (await adoptUnsited(sql)).site !== null) rows = await read();
    for (const id of missing) known.delete(id);
    for (const r of rows) known.set(r.id, r);
  }
  return new Map(ids.flatMap((id) => (known.has(id) ? [[id, known.get(id)!] as const] : [])));
}

/** Forgets cached facts (a portal changed or went away). */
function forgetFacts(sql: Sql, ids: readonly string[]): void {
  const cache = factsCache.get(sql);
  for (const id of ids) cache?.delete(id);
}

/** The `queued` event's message: whose worker the job waits for. */
function queuedMessage(site: string | null): string {
  return site === null ? "waiting for a worker of any site" : `waiting for a worker of site ${site}`;
}

/** Where the job runs (its site, null: any), or the 422 that says how to make it possible. */
function siteOf(source: Placement, target: Placement): string | null {
  const route = routeJob(source, target);
  if (!route.ok) throw new JobError(route.code, route.message, { field: route.field });
  return route.site;
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

/** The job's paths relative to its portals' roots and its site, or the JobError that refuses it. */
function decide(input: NewJob, portals: Map<string, PortalFacts>): { sourcePath: string; targetPath: string; site: string | null } {
  const [s, t] = [input.sourcePortalId, input.targetPortalId];
  const src = portals.get(s);
  const dst = portals.get(t);
  if (!src) throw unknownPortal("source", s);
  if (!dst) throw unknownPortal("target", t);
  const sourcePath = resolveSide(src.root_path, "source", input.sourcePath);
  const targetPath = resolveSide(dst.root_path, "target", input.targetPath);
  // A verify job checks one folder in place: it is stored as its own source and target (migration 0008).
  if (input.type === "verify") return { sourcePath, targetPath, site: siteOf(src, dst) };
  if (s === t && sourcePath === targetPath) {
    throw new JobError("SAME_PATH", `source and target are the same (${sourcePath} on one portal); choose another target path`, { field: "target.path" });
  }
  if (s === t && isSameOrInside(sourcePath, targetPath)) {
    throw new JobError("TARGET_INSIDE_SOURCE", `target ${targetPath} lies inside the source ${sourcePath}; choose a target outside it`, { field: "target.path" });
  }
  return { sourcePath, targetPath, site: siteOf(src, dst) };
}

/**
 * Creates a QUEUED job with its `created` and `queued` events and the site it must run at, or —
 * when `idempotencyKey` was seen before with the same request — returns that job with `created: false`.
 *
 * The paths and the site are decided from the portals' facts (root, site), read once and cached;
 * then one statement (it is the API's hot path) locks the live portals FOR SHARE (so deletePortal,
 * which takes FOR UPDATE, cannot slip in between), checks they did not change since they were read
 * (`updated_at`), inserts the job only then, and appends both events; being one statement, it
 * commits or fails as a whole. A portal changed meanwhile: read afresh and decide again, once.
 */
export async function createJob(sql: Sql, input: NewJob, fresh = false): Promise<{ job: JobRow; created: boolean }> {
  const s = input.sourcePortalId;
  const t = input.targetPortalId;
  const ids = s === t ? [s] : [s, t];
  const portals = await portalsFor(sql, ids, fresh);
  let decided: ReturnType<typeof decide>;
  try {
    decided = decide(input, portals);
  } catch (err) {
    // Refused on cached facts: make sure they were not stale before saying so.
    if (!fresh && err instanceof JobError) return createJob(sql, input, true);
    throw err;
  }
  const { sourcePath, targetPath, site } = decided;
  const versions = [...portals.values()].map((p) => p.version);
  const options = sql.json(input.options as unknown as JsonValue);
  const [row] = await sql<(Omit<JobRow, "id"> & { id: string | null; live: string[]; changed: boolean })[]>`
    with p as (
      select id, name, updated_at::text as version from portals where id in (${s}::uuid, ${t}::uuid) and deleted_at is null for share
    ), j as (
      insert into jobs (type, source_portal_id, source_path, target_portal_id, target_path, options, max_attempts, idempotency_key, site)
      select ${input.type}, ${s}::uuid, ${sourcePath}, ${t}::uuid, ${targetPath}, ${options}, ${input.maxAttempts}, ${input.idempotencyKey ?? null}, ${site}
      where (select count(*) from p where version = any(${versions}::text[])) = ${s === t ? 1 : 2}
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
                            'options', ${options}::jsonb, 'maxAttempts', ${input.maxAttempts}::int, 'site', ${site}::text)),
        (2, 'queued', ${queuedMessage(site)}::text, jsonb_build_object('site', ${site}::text))) as e(ord, kind, message, data)
      order by e.ord
    )
    select j.*, array(select id::text from p) as live,
      exists (select 1 from p where version <> all(${versions}::text[])) as changed
    from (values (1)) as one left join j on true`;
  const { live, changed } = row!;
  if (row!.id !== null) {
    const { live: _, changed: __, ...job } = row!;
    return { job: job as JobRow, created: true };
  }
  if (!live.includes(s) || !live.includes(t) || changed) forgetFacts(sql, ids);
  if (!live.includes(s)) throw unknownPortal("source", s);
  if (!live.includes(t)) throw unknownPortal("target", t);
  if (changed) {
    // A PATCH landed since the facts were read: decide the paths and the site again.
    if (!fresh) return createJob(sql, input, true);
    throw new JobError("PORTAL_CHANGED", "a portal of this job changed while the job was being created; send the request again", {});
  }
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
 * a DONE, DONE_WITH_ERRORS or FAILED job is refused.
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
      case "DONE_WITH_ERRORS":
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
 * Puts a FAILED, CANCELLED or DONE_WITH_ERRORS job back to QUEUED with a fresh attempt budget and
 * progress; the caller enqueues it after this commits. A DONE_WITH_ERRORS job is retried with scope
 * `failed`: its run sends only the files job_files holds as failed, into the existing target (and
 * a job retried that way keeps that scope when it is retried again after FAILED or CANCELLED).
 * Refused when a portal it uses was deleted meanwhile.
 */
export async function retryJob(sql: Sql, id: string): Promise<JobRow> {
  return sql.begin(async (txn) => {
    const tx = txn as unknown as Sql;
    const job = await lockJob(tx, id);
    if (!RETRYABLE_STATUSES.includes(job.status)) {
      throw new JobError("INVALID_STATE", `job ${id} is ${job.status}; only ${RETRYABLE_STATUSES.join(", ")} jobs can be retried`, { status: job.status });
    }
    const live = await tx<Placement[]>`
      select id, name, kind, site, allowed_sites from portals where id in (${job.source_portal_id}, ${job.target_portal_id}) and deleted_at is null for share`;
    const src = live.find((p) => p.id === job.source_portal_id);
    const dst = live.find((p) => p.id === job.target_portal_id);
    if (!src || !dst) {
      throw new JobError("INVALID_STATE", `a portal job ${id} uses was deleted; create a new job instead`, { status: job.status });
    }
    // Its portals may have moved to another site since (allowed while no job was active): route it afresh.
    const site = siteOf(src, dst);
    const scope: JobScope = job.status === "DONE_WITH_ERRORS" ? "failed" : job.scope;
    const [row] = await tx<JobRow[]>`
      update jobs set status = 'QUEUED', attempts = 0, site = ${site}, scope = ${scope}, strategy = null, phase = null, committed_at = null, files_done = 0, files_total = null,
        bytes_done = 0, bytes_resumed = 0, bytes_total = null, error_code = null, error_message = null, worker_id = null,
        lease_expires_at = null, heartbeat_at = null, next_attempt_at = null, started_at = null, finished_at = null
      where id = ${id} returning *`;
    const [failed] = await tx<{ n: number }[]>`select count(*)::int as n from job_files where job_id = ${id} and state = 'failed'`;
    const only = scope === "failed" ? `; only the ${failed!.n} files that failed are sent, into the existing target` : "";
    await addEvents(tx, id, [
      {
        kind: "retried",
        message: `retried through the API after ${job.status}${only}`,
        data: { previousStatus: job.status, previousAttempts: job.attempts, previousError: job.error_code, scope, ...(scope === "failed" ? { failedFiles: failed!.n } : {}) },
      },
      { kind: "queued", message: queuedMessage(site), data: { site } },
    ]);
    return row!;
  });
}
