import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Sql } from "postgres";
import { testSql, uniqueId } from "../testing/services.ts";
import { claimJob, completeJob, failJob, reclaimJob, releaseJob, renewJobLease, scheduleRetry } from "./lifecycle.ts";
import type { JobRow } from "./types.ts";

let sql: Sql;
let portalId: string;

beforeAll(async () => {
  sql = await testSql(4);
  const [p] = await sql<{ id: string }[]>`insert into portals (name, kind, root_path) values (${`lifecycle-${uniqueId()}`}, 'local', '/tmp') returning id`;
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
    const [a, b] = await Promise.all([claimJob(sql, id, "w1", 10_000), claimJob(sql, id, "w2", 10_000)]);
    expect([a.claimed, b.claimed].filter(Boolean)).toHaveLength(1);
    const loser = a.claimed ? b : a;
    expect(loser).toEqual({ claimed: false, job: { status: "RUNNING", leaseExpired: false, dueInMs: null } });
    expect(await kinds(id)).toEqual(["started"]);
    expect((await row(id)).attempts).toBe(1);
  });

  test("a finished job is not claimed again, and a retry is claimable only once due", async () => {
    const id = await newJob();
    await claimJob(sql, id, "w1", 10_000);
    expect(await scheduleRetry(sql, id, "w1", { code: "IO_ERROR", message: "x", retryable: true }, 60_000)).toBe("retry");
    const early = await claimJob(sql, id, "w1", 10_000);
    expect(early.claimed).toBe(false);
    expect(early.claimed ? 0 : early.job!.dueInMs!).toBeGreaterThan(50_000);
    await sql`update jobs set next_attempt_at = now() where id = ${id}`;
    expect((await claimJob(sql, id, "w2", 10_000)).claimed).toBe(true);
    expect(await completeJob(sql, id, "w1", { strategy: "direct", files: 1, bytes: 1, data: {} })).toBe(false);
    expect(await completeJob(sql, id, "w2", { strategy: "direct", files: 1, bytes: 1, data: {} })).toBe(true);
    expect((await claimJob(sql, id, "w3", 10_000)).claimed).toBe(false);
    expect(await kinds(id)).toEqual(["started", "retry_scheduled", "started", "done"]);
  });

  test("renewal tells the worker about a cancel request and about losing the job", async () => {
    const id = await newJob();
    await claimJob(sql, id, "w1", 10_000);
    expect(await renewJobLease(sql, id, "w1", 10_000)).toBe("RUNNING");
    await sql`update jobs set status = 'CANCELLING' where id = ${id}`;
    expect(await renewJobLease(sql, id, "w1", 10_000)).toBe("CANCELLING");
    expect(await renewJobLease(sql, id, "w2", 10_000)).toBeNull();
    // The cancel wins over a failure recorded at the same time.
    expect(await failJob(sql, id, "w1", { code: "IO_ERROR", message: "x", retryable: false })).toBe("cancelled");
    expect((await row(id)).status).toBe("CANCELLED");
  });

  test("reclaim: nothing while the lease is valid, then QUEUED once, FAILED on the last attempt", async () => {
    const id = await newJob(2);
    await claimJob(sql, id, "w1", 10_000);
    expect(await reclaimJob(sql, id, "reaper")).toBeNull();
    await expireLease(id);
    const both = await Promise.all([reclaimJob(sql, id, "r1"), reclaimJob(sql, id, "r2")]);
    expect(both.filter((o) => o === "reclaimed")).toHaveLength(1);
    expect(await row(id)).toMatchObject({ status: "QUEUED", worker_id: null, attempts: 1 });
    // The dead worker's late writes change nothing.
    expect(await completeJob(sql, id, "w1", { strategy: "direct", files: 1, bytes: 1, data: {} })).toBe(false);

    await claimJob(sql, id, "w2", 10_000);
    await expireLease(id);
    expect(await reclaimJob(sql, id, "r1")).toBe("failed");
    expect(await row(id)).toMatchObject({ status: "FAILED", error_code: "WORKER_LOST", attempts: 2 });
    expect(await kinds(id)).toEqual(["started", "reclaimed", "started", "failed"]);
  });

  test("a job whose worker died while cancelling ends CANCELLED", async () => {
    const id = await newJob();
    await claimJob(sql, id, "w1", 10_000);
    await sql`update jobs set status = 'CANCELLING' where id = ${id}`;
    await expireLease(id);
    expect(await reclaimJob(sql, id, "r1")).toBe("cancelled");
    expect((await row(id)).status).toBe("CANCELLED");
  });

  test("release gives the attempt back", async () => {
    const id = await newJob();
    await claimJob(sql, id, "w1", 10_000);
    expect(await releaseJob(sql, id, "w2")).toBeNull();
    expect(await releaseJob(sql, id, "w1")).toBe("released");
    expect(await row(id)).toMatchObject({ status: "QUEUED", attempts: 0, worker_id: null, lease_expires_at: null });
    expect(await kinds(id)).toEqual(["started", "released"]);
  });
});
