import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Sql } from "postgres";
import { testSql, uniqueId } from "../testing/services.ts";
import {
  claimJob,
  completeJob,
  type Fence,
  failJob,
  markCancelled,
  reclaimJob,
  recordCommitted,
  recordProgress,
  recordRunEvent,
  recordStep,
  releaseJob,
  renewJobLease,
  scheduleRetry,
} from "./lifecycle.ts";
import type { JobRow } from "./types.ts";

let sql: Sql;
let portalId: string;
const SITE = "lab";
/** A worker of the test's site. */
const w = (id: string) => ({ id, site: SITE });

beforeAll(async () => {
  sql = await testSql(4);
  const [p] = await sql<{ id: string }[]>`insert into portals (name, kind, root_path, site) values (${`lifecycle-${uniqueId()}`}, 'local', '/tmp', ${SITE}) returning id`;
  portalId = p!.id;
}, 60_000); // the first test to ask for Postgres waits for initdb

afterAll(async () => {
  await sql`delete from jobs where source_portal_id = ${portalId}`;
  await sql`delete from portals where id = ${portalId}`;
});

async function newJob(maxAttempts = 3): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    insert into jobs (type, source_portal_id, source_path, target_portal_id, target_path, max_attempts)
    values ('copy', ${portalId}, 'a', ${portalId}, ${`b-${uniqueId()}`}, ${maxAttempts}) returning id`;
  return row!.id;
}

async function row(id: string): Promise<JobRow> {
  const [r] = await sql<JobRow[]>`select * from jobs where id = ${id}`;
  return r!;
}

async function kinds(id: string): Promise<string[]> {
  return (await sql<{ kind: string }[]>`select kind from job_events where job_id = ${id} order by id`).map((r) => r.kind);
}

/** Claims `id` for `worker`; the fence of the attempt it started. */
async function claim(id: string, worker: string, leaseMs = 10_000): Promise<Fence> {
  const c = await claimJob(sql, id, w(worker), leaseMs);
  if (!c.claimed) throw new Error(`claim of ${id} by ${worker} refused`);
  return { jobId: id, worker: w(worker), attempt: c.job.attempts };
}

const fenceOf = (id: string, worker: string, attempt: number): Fence => ({ jobId: id, worker: w(worker), attempt });

/** Makes the job's lease look expired, as after its worker died. */
async function expireLease(id: string): Promise<void> {
  await sql`update jobs set lease_expires_at = now() - interval '1 second' where id = ${id}`;
}

describe("job lifecycle in Postgres", () => {
  test("only one of two concurrent claims wins", async () => {
    const id = await newJob();
    const [a, b] = await Promise.all([claimJob(sql, id, w("w1"), 10_000), claimJob(sql, id, w("w2"), 10_000)]);
    expect([a.claimed, b.claimed].filter(Boolean)).toHaveLength(1);
    const loser = a.claimed ? b : a;
    expect(loser).toEqual({ claimed: false, job: { status: "RUNNING", leaseExpired: false, dueInMs: null, site: null, misplaced: false } });
    expect(await kinds(id)).toEqual(["started"]);
    expect((await row(id)).attempts).toBe(1);
  });

  test("a finished job is not claimed again, and a retry is claimable only once due", async () => {
    const id = await newJob();
    const w1 = await claim(id, "w1");
    expect(await scheduleRetry(sql, w1, { code: "IO_ERROR", message: "x", retryable: true }, 60_000)).toBe("retry");
    const early = await claimJob(sql, id, w("w1"), 10_000);
    expect(early.claimed).toBe(false);
    expect(early.claimed ? 0 : early.job!.dueInMs!).toBeGreaterThan(50_000);
    await sql`update jobs set next_attempt_at = now() where id = ${id}`;
    const w2 = await claim(id, "w2");
    expect(await completeJob(sql, w1, { strategy: "direct", files: 1, bytes: 1, data: {} })).toBe(false);
    expect(await completeJob(sql, w2, { strategy: "direct", files: 1, bytes: 1, data: {} })).toBe(true);
    expect((await claimJob(sql, id, w("w3"), 10_000)).claimed).toBe(false);
    expect(await kinds(id)).toEqual(["started", "retry_scheduled", "started", "done"]);
  });

  test("renewal tells the worker about a cancel request and about losing the job", async () => {
    const id = await newJob();
    const w1 = await claim(id, "w1");
    expect(await renewJobLease(sql, w1, 10_000)).toBe("RUNNING");
    await sql`update jobs set status = 'CANCELLING' where id = ${id}`;
    expect(await renewJobLease(sql, w1, 10_000)).toBe("CANCELLING");
    expect(await renewJobLease(sql, fenceOf(id, "w2", 1), 10_000)).toBeNull();
    // The cancel wins over a failure recorded at the same time.
    expect(await failJob(sql, w1, { code: "IO_ERROR", message: "x", retryable: false })).toBe("cancelled");
    expect((await row(id)).status).toBe("CANCELLED");
  });

  test("reclaim: nothing while the lease is valid, then QUEUED once, FAILED on the last attempt", async () => {
    const id = await newJob(2);
    const w1 = await claim(id, "w1");
    expect(await reclaimJob(sql, id, w("reaper"))).toBeNull();
    await expireLease(id);
    const both = await Promise.all([reclaimJob(sql, id, w("r1")), reclaimJob(sql, id, w("r2"))]);
    expect(both.filter((o) => o === "reclaimed")).toHaveLength(1);
    expect(await row(id)).toMatchObject({ status: "QUEUED", worker_id: null, attempts: 1 });
    // The dead worker's late writes change nothing.
    expect(await completeJob(sql, w1, { strategy: "direct", files: 1, bytes: 1, data: {} })).toBe(false);

    await claim(id, "w2");
    await expireLease(id);
    expect(await reclaimJob(sql, id, w("r1"))).toBe("failed");
    expect(await row(id)).toMatchObject({ status: "FAILED", error_code: "WORKER_LOST", attempts: 2 });
    expect(await kinds(id)).toEqual(["started", "reclaimed", "started", "failed"]);
  });

  test("a job whose worker died while cancelling ends CANCELLED", async () => {
    const id = await newJob();
    await claimJob(sql, id, w("w1"), 10_000);
    await sql`update jobs set status = 'CANCELLING' where id = ${id}`;
    await expireLease(id);
    expect(await reclaimJob(sql, id, w("r1"))).toBe("cancelled");
    expect((await row(id)).status).toBe("CANCELLED");
  });

  test("release gives the attempt back", async () => {
    const id = await newJob();
    const w1 = await claim(id, "w1");
    expect(await releaseJob(sql, fenceOf(id, "w2", 1))).toBeNull();
    expect(await releaseJob(sql, w1)).toBe("released");
    expect(await row(id)).toMatchObject({ status: "QUEUED", attempts: 0, worker_id: null, lease_expires_at: null });
    expect(await kinds(id)).toEqual(["started", "released"]);
  });

  test("a worker claims only jobs its site may run; its events name it and its site", async () => {
    const id = await newJob();
    await sql`update jobs set site = ${SITE} where id = ${id}`;
    const away = await claimJob(sql, id, { id: "w-away", site: "elsewhere" }, 10_000);
    expect(away).toEqual({ claimed: false, job: { status: "QUEUED", leaseExpired: true, dueInMs: null, site: SITE, misplaced: true } });
    expect(await kinds(id)).toEqual([]);
    const home = await claim(id, "w-home");
    expect(await completeJob(sql, home, { strategy: "direct", files: 1, bytes: 1, data: { files: 1 } })).toBe(true);
    const events = await sql<{ kind: string; data: Record<string, unknown> }[]>`select kind, data from job_events where job_id = ${id} order by id`;
    expect(events.map(({ kind, data }) => ({ kind, data }))).toEqual([
      { kind: "started", data: { attempt: 1, maxAttempts: 3, workerId: "w-home", site: SITE } },
      { kind: "done", data: { files: 1, workerId: "w-home", site: SITE } },
    ]);
  });

  test("the claim checks the portals too: another site's folder, or an sftp portal that does not allow the site, is refused", async () => {
    // site null on the job (any site), as a job from before sites existed would be: the portal still decides.
    const legacy = await newJob();
    expect(await claimJob(sql, legacy, { id: "w-away", site: "elsewhere" }, 10_000)).toMatchObject({ claimed: false, job: { misplaced: true, site: null } });
    const [sftp] = await sql<{ id: string }[]>`
      insert into portals (name, kind, root_path, host, port, username, auth_method, secret_encrypted, allowed_sites)
      values (${`lifecycle-sftp-${uniqueId()}`}, 'sftp', '/srv', 'h', 22, 'u', 'password', '\\x00', ${["srvtrf"]}) returning id`;
    const [row] = await sql<{ id: string }[]>`
      insert into jobs (type, source_portal_id, source_path, target_portal_id, target_path)
      values ('copy', ${sftp!.id}, 'a', ${sftp!.id}, ${`b-${uniqueId()}`}) returning id`;
    expect(await claimJob(sql, row!.id, w("w-lab"), 10_000)).toMatchObject({ claimed: false, job: { misplaced: true } });
    expect((await claimJob(sql, row!.id, { id: "w-srv", site: "srvtrf" }, 10_000)).claimed).toBe(true);
    await sql`delete from jobs where source_portal_id = ${sftp!.id}`;
    await sql`delete from portals where id = ${sftp!.id}`;
  });
});

describe("fencing: the attempt number is a token", () => {
  test("a stale attempt's writes are refused, even when the same worker runs the next attempt", async () => {
    const id = await newJob();
    const stale = await claim(id, "w1");
    await expireLease(id);
    expect(await reclaimJob(sql, id, w("reaper"))).toBe("reclaimed");
    const fresh = await claim(id, "w1");
    expect(fresh.attempt).toBe(stale.attempt + 1);
    const before = await kinds(id);
    const progress = { filesDone: 1, filesTotal: 2, bytesDone: 10, bytesTotal: 20 };
    const failure = { code: "IO_ERROR", message: "x", retryable: true };

    expect(await renewJobLease(sql, stale, 10_000)).toBeNull();
    expect(await recordProgress(sql, stale, progress)).toBe(false);
    expect(await recordRunEvent(sql, stale, "verified", "stale", { strategy: "zip" })).toBe(false);
    expect(await recordRunEvent(sql, stale, "verified", "stale")).toBe(false);
    expect(await recordStep(sql, stale, "commit", 10_000)).toBe("lost");
    expect(await recordCommitted(sql, stale)).toBe(false);
    expect(await completeJob(sql, stale, { strategy: "direct", files: 1, bytes: 1, data: {} })).toBe(false);
    expect(await scheduleRetry(sql, stale, failure, 1000)).toBeNull();
    expect(await failJob(sql, stale, failure)).toBeNull();
    expect(await releaseJob(sql, stale)).toBeNull();
    await sql`update jobs set status = 'CANCELLING' where id = ${id}`;
    expect(await markCancelled(sql, stale)).toBe(false);
    expect(await kinds(id)).toEqual(before);
    expect(await row(id)).toMatchObject({ status: "CANCELLING", strategy: null, files_done: 0, phase: null, committed_at: null, attempts: fresh.attempt });

    // The current attempt's writes land.
    expect(await recordProgress(sql, fresh, progress)).toBe(true);
    expect(await recordRunEvent(sql, fresh, "verified", "fresh", { strategy: "zip" })).toBe(true);
    expect(await markCancelled(sql, fresh)).toBe(true);
    // Cancelled before its commit: nothing was verified, so its progress goes back to 0 (totals stay).
    expect(await row(id)).toMatchObject({ status: "CANCELLED", strategy: "zip", files_done: 0, bytes_total: 20 });
  });

  test("the step fence needs this attempt, RUNNING and an unexpired lease, records the step and extends the lease", async () => {
    const id = await newJob();
    const w1 = await claim(id, "w1", 5_000);
    await sql`update jobs set lease_expires_at = now() + interval '100 milliseconds' where id = ${id}`;
    expect(await recordStep(sql, w1, "commit", 60_000)).toBe("granted");
    const granted = await sql<{ left_ms: number; phase: string }[]>`select (extract(epoch from lease_expires_at - now()) * 1000)::float8 as left_ms, phase from jobs where id = ${id}`;
    expect(granted[0]!.phase).toBe("commit");
    expect(granted[0]!.left_ms).toBeGreaterThan(30_000);

    // Expired but not yet reclaimed: no guarded step, though a renewal may still take it back.
    await expireLease(id);
    expect(await recordStep(sql, w1, "remove_source", 60_000)).toBe("lost");
    expect((await row(id)).phase).toBe("commit");
    expect(await renewJobLease(sql, w1, 60_000)).toBe("RUNNING");
    expect(await recordStep(sql, w1, "remove_source", 60_000)).toBe("granted");

    // A cancel requested before the commit stops it; a move's source removal follows a commit, so it goes on.
    await sql`update jobs set status = 'CANCELLING' where id = ${id}`;
    expect(await recordStep(sql, w1, "commit", 60_000)).toBe("cancelling");
    expect(await recordStep(sql, w1, "remove_source", 60_000)).toBe("granted");
    expect(await recordStep(sql, fenceOf(id, "w2", w1.attempt), "remove_source", 60_000)).toBe("lost");
  });
});

describe("a job whose data arrived never ends FAILED", () => {
  test("a failure after the commit is recorded as DONE with the error kept as a warning", async () => {
    const id = await newJob();
    const w1 = await claim(id, "w1");
    expect(await recordStep(sql, w1, "commit", 10_000)).toBe("granted");
    expect(await recordCommitted(sql, w1)).toBe(true);
    expect(await failJob(sql, w1, { code: "PERMISSION_DENIED", message: "cannot remove the source", retryable: false })).toBe("done");
    expect(await row(id)).toMatchObject({ status: "DONE", error_code: "PERMISSION_DENIED", phase: "committed" });
    expect((await row(id)).committed_at).not.toBeNull();
    const events = await sql<{ kind: string; level: string; data: Record<string, unknown> }[]>`select kind, level, data from job_events where job_id = ${id} order by id`;
    expect(events.map((e) => e.kind)).toEqual(["started", "done"]);
    expect(events[1]).toMatchObject({ level: "warn", data: { dataArrived: true, code: "PERMISSION_DENIED" } });
  });

  test("reclaimed on its last attempt after the commit: queued again with one more attempt, which resumes and keeps the totals", async () => {
    const id = await newJob(1);
    const w1 = await claim(id, "w1");
    expect(await recordRunEvent(sql, w1, "strategy_chosen", "direct", { strategy: "direct" })).toBe(true);
    expect(await recordProgress(sql, w1, { filesDone: 3, filesTotal: 3, bytesDone: 300, bytesTotal: 300 })).toBe(true);
    expect(await recordStep(sql, w1, "commit", 10_000)).toBe("granted");
    await expireLease(id);
    // The data arrived while the lease lapsed (a Postgres outage); the reaper got there first.
    expect(await reclaimJob(sql, id, w("reaper"))).toBe("reclaimed");
    expect(await row(id)).toMatchObject({ status: "QUEUED", attempts: 1, max_attempts: 2 });
    expect(await recordCommitted(sql, w1)).toBe(true);

    const w2 = await claim(id, "w2");
    expect(await recordCommitted(sql, w1)).toBe(false);
    expect(await completeJob(sql, w2, { strategy: "resumed", files: 0, bytes: 0, data: {} })).toBe(true);
    expect(await row(id)).toMatchObject({ status: "DONE", strategy: "direct", files_done: 3, files_total: 3, bytes_done: 300, bytes_total: 300, attempts: 2 });
    const started = await sql<{ data: Record<string, unknown> }[]>`select data from job_events where job_id = ${id} and kind = 'started' order by id`;
    expect(started[1]!.data).toMatchObject({ resume: true });
  });

  test("past the commit fence without a recorded commit the job is queued again; before it, WORKER_LOST", async () => {
    const fenced = await newJob(1);
    const w1 = await claim(fenced, "w1");
    expect(await recordStep(sql, w1, "commit", 10_000)).toBe("granted");
    await expireLease(fenced);
    expect(await reclaimJob(sql, fenced, w("reaper"))).toBe("reclaimed");
    expect(await row(fenced)).toMatchObject({ status: "QUEUED", max_attempts: 2 });
    expect((await sql<{ data: Record<string, unknown> }[]>`select data from job_events where job_id = ${fenced} and kind = 'reclaimed'`)[0]!.data).toMatchObject({ finishing: true, extraAttempt: true });

    const plain = await newJob(1);
    await claim(plain, "w1");
    await expireLease(plain);
    expect(await reclaimJob(sql, plain, w("reaper"))).toBe("failed");
    expect(await row(plain)).toMatchObject({ status: "FAILED", error_code: "WORKER_LOST" });
  });

  test("a cancel cannot end a committed job: the attempt finishes, and a lost one is queued again", async () => {
    const id = await newJob();
    const w1 = await claim(id, "w1");
    expect(await recordStep(sql, w1, "commit", 10_000)).toBe("granted");
    expect(await recordCommitted(sql, w1)).toBe(true);
    await sql`update jobs set status = 'CANCELLING' where id = ${id}`;
    expect(await markCancelled(sql, w1)).toBe(false);
    expect(await failJob(sql, w1, { code: "IO_ERROR", message: "x", retryable: true })).toBeNull();
    await expireLease(id);
    expect(await reclaimJob(sql, id, w("reaper"))).toBe("reclaimed");
    expect((await row(id)).status).toBe("QUEUED");
  });

  test("a retry with the budget spent but the data possibly arrived gets one more attempt", async () => {
    const id = await newJob(1);
    const w1 = await claim(id, "w1");
    expect(await recordStep(sql, w1, "commit", 10_000)).toBe("granted");
    expect(await scheduleRetry(sql, w1, { code: "CONNECTION_LOST", message: "x", retryable: true }, 0, { extraAttempt: true })).toBe("retry");
    expect(await row(id)).toMatchObject({ status: "RETRY_WAIT", max_attempts: 2, attempts: 1 });
    expect((await claimJob(sql, id, w("w2"), 10_000)).claimed).toBe(true);
  });
});
