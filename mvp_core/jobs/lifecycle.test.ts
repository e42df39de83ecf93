import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Sql } from "postgres";
import { testSql, uniqueId } from "../testing/services.ts";
import { claimJob, completeJob, failJob, reclaimJob, releaseJob, renewJobLease, scheduleRetry } from "./lifecycle.ts";
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
    await claimJob(sql, id, w("w1"), 10_000);
    expect(await scheduleRetry(sql, id, w("w1"), { code: "IO_ERROR", message: "x", retryable: true }, 60_000)).toBe("retry");
    const early = await claimJob(sql, id, w("w1"), 10_000);
    expect(early.claimed).toBe(false);
    expect(early.claimed ? 0 : early.job!.dueInMs!).toBeGreaterThan(50_000);
    await sql`update jobs set next_attempt_at = now() where id = ${id}`;
    expect((await claimJob(sql, id, w("w2"), 10_000)).claimed).toBe(true);
    expect(await completeJob(sql, id, w("w1"), { strategy: "direct", files: 1, bytes: 1, data: {} })).toBe(false);
    expect(await completeJob(sql, id, w("w2"), { strategy: "direct", files: 1, bytes: 1, data: {} })).toBe(true);
    expect((await claimJob(sql, id, w("w3"), 10_000)).claimed).toBe(false);
    expect(await kinds(id)).toEqual(["started", "retry_scheduled", "started", "done"]);
  });

  test("renewal tells the worker about a cancel request and about losing the job", async () => {
    const id = await newJob();
    await claimJob(sql, id, w("w1"), 10_000);
    expect(await renewJobLease(sql, id, "w1", 10_000)).toBe("RUNNING");
    await sql`update jobs set status = 'CANCELLING' where id = ${id}`;
    expect(await renewJobLease(sql, id, "w1", 10_000)).toBe("CANCELLING");
    expect(await renewJobLease(sql, id, "w2", 10_000)).toBeNull();
    // The cancel wins over a failure recorded at the same time.
    expect(await failJob(sql, id, w("w1"), { code: "IO_ERROR", message: "x", retryable: false })).toBe("cancelled");
    expect((await row(id)).status).toBe("CANCELLED");
  });

  test("reclaim: nothing while the lease is valid, then QUEUED once, FAILED on the last attempt", async () => {
    const id = await newJob(2);
    await claimJob(sql, id, w("w1"), 10_000);
    expect(await reclaimJob(sql, id, w("reaper"))).toBeNull();
    await expireLease(id);
    const both = await Promise.all([reclaimJob(sql, id, w("r1")), reclaimJob(sql, id, w("r2"))]);
    expect(both.filter((o) => o === "reclaimed")).toHaveLength(1);
    expect(await row(id)).toMatchObject({ status: "QUEUED", worker_id: null, attempts: 1 });
    // The dead worker's late writes change nothing.
    expect(await completeJob(sql, id, w("w1"), { strategy: "direct", files: 1, bytes: 1, data: {} })).toBe(false);

    await claimJob(sql, id, w("w2"), 10_000);
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
    await claimJob(sql, id, w("w1"), 10_000);
    expect(await releaseJob(sql, id, w("w2"))).toBeNull();
    expect(await releaseJob(sql, id, w("w1"))).toBe("released");
    expect(await row(id)).toMatchObject({ status: "QUEUED", attempts: 0, worker_id: null, lease_expires_at: null });
    expect(await kinds(id)).toEqual(["started", "released"]);
  });

  test("a worker claims only jobs its site may run; its events name it and its site", async () => {
    const id = await newJob();
    await sql`update jobs set site = ${SITE} where id = ${id}`;
    const away = await claimJob(sql, id, { id: "w-away", site: "elsewhere" }, 10_000);
    expect(away).toEqual({ claimed: false, job: { status: "QUEUED", leaseExpired: true, dueInMs: null, site: SITE, misplaced: true } });
    expect(await kinds(id)).toEqual([]);
    expect((await claimJob(sql, id, w("w-home"), 10_000)).claimed).toBe(true);
    expect(await completeJob(sql, id, w("w-home"), { strategy: "direct", files: 1, bytes: 1, data: { files: 1 } })).toBe(true);
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
