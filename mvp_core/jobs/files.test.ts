import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Sql } from "postgres";
import { testSql, uniqueId } from "../testing/services.ts";
import { countFiles, failedPaths, type FileOutcome, listFiles, recordFiles } from "./files.ts";
import { claimJob, completeJob, type Fence, failJob, recordCommitted } from "./lifecycle.ts";
import { retryJob } from "./repository.ts";
import type { JobFileRow, JobRow } from "./types.ts";

let sql: Sql;
let portalId: string;
const SITE = "lab";

beforeAll(async () => {
  sql = await testSql(4);
  const [p] = await sql<{ id: string }[]>`insert into portals (name, kind, root_path, site) values (${`files-${uniqueId()}`}, 'local', '/tmp', ${SITE}) returning id`;
  portalId = p!.id;
}, 60_000);

afterAll(async () => {
  await sql`delete from jobs where source_portal_id = ${portalId}`;
  await sql`delete from portals where id = ${portalId}`;
});

/** A job claimed by worker `w1`: the fence of its attempt. */
async function running(): Promise<Fence> {
  const [row] = await sql<{ id: string }[]>`
    insert into jobs (type, source_portal_id, source_path, target_portal_id, target_path)
    values ('copy', ${portalId}, 'a', ${portalId}, ${`b-${uniqueId()}`}) returning id`;
  const worker = { id: "w1", site: SITE };
  const c = await claimJob(sql, row!.id, worker, 10_000);
  if (!c.claimed) throw new Error("claim refused");
  return { jobId: row!.id, worker, attempt: c.job.attempts };
}

const verified = (path: string, size = 4096): FileOutcome => ({ path, size, state: "verified", hash: { algorithm: "xxh64", value: `h-${path}` } });
const skipped = (path: string): FileOutcome => ({ path, size: 10, state: "skipped" });
const failed = (path: string, code = "PERMISSION_DENIED"): FileOutcome => ({ path, size: 7, state: "failed", error: { code, message: `cannot read ${path}` } });

async function rows(jobId: string): Promise<JobFileRow[]> {
  return sql<JobFileRow[]>`select * from job_files where job_id = ${jobId} order by path`;
}

async function job(jobId: string): Promise<JobRow> {
  const [r] = await sql<JobRow[]>`select * from jobs where id = ${jobId}`;
  return r!;
}

describe("job_files", () => {
  test("a batch of 1,000 outcomes lands whole; a batch written twice counts one attempt; a stale attempt writes nothing", async () => {
    const fence = await running();
    const batch = Array.from({ length: 1000 }, (_, i) => (i % 100 === 7 ? failed(`d${i % 10}/f${i}`) : verified(`d${i % 10}/f${i}`)));
    const token = crypto.randomUUID();
    expect(await recordFiles(sql, fence, token, batch)).toBe(true);
    expect(await recordFiles(sql, fence, token, batch.slice(0, 10))).toBe(true);
    expect(await countFiles(sql, fence.jobId)).toEqual({ total: 1000, skipped: 0, verified: 990, failed: 10 });
    const all = await rows(fence.jobId);
    expect(all.every((r) => r.attempts === 1)).toBe(true);
    expect(all.find((r) => r.path === "d7/f7")).toMatchObject({ state: "failed", error_code: "PERMISSION_DENIED", hash_value: null });
    expect(all.find((r) => r.path === "d0/f0")).toMatchObject({ state: "verified", hash_algorithm: "xxh64", hash_value: "h-d0/f0", error_code: null });

    // Another attempt's write (a stale fence) changes nothing.
    expect(await recordFiles(sql, { ...fence, attempt: fence.attempt + 1 }, crypto.randomUUID(), [verified("d7/f7")])).toBe(false);
    expect((await countFiles(sql, fence.jobId)).failed).toBe(10);
  });

  test("the state filter and the cursor page through every file once, in byte order", async () => {
    const fence = await running();
    const token = crypto.randomUUID();
    const names = ["b", "a/z", "a/é", "A", "a/b c", "Z9", "a/b", "c"];
    await recordFiles(sql, fence, token, names.map((n, i) => (i % 3 === 0 ? skipped(n) : i % 3 === 1 ? verified(n) : failed(n))));
    const walk = async (states?: ("skipped" | "verified" | "failed")[]) => {
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await listFiles(sql, fence.jobId, { limit: 3, ...(states ? { states } : {}), ...(cursor ? { cursor } : {}) });
        expect(page.files.length).toBeLessThanOrEqual(3);
        seen.push(...page.files.map((f) => f.path));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      return seen;
    };
    const bytewise = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect(await walk()).toEqual(bytewise);
    expect(await walk(["failed"])).toEqual(bytewise.filter((n) => names.indexOf(n) % 3 === 2));
    expect(await walk(["skipped", "failed"])).toEqual(bytewise.filter((n) => names.indexOf(n) % 3 !== 1));
    expect(await failedPaths(sql, fence.jobId)).toEqual(bytewise.filter((n) => names.indexOf(n) % 3 === 2));
    await expect(listFiles(sql, fence.jobId, { limit: 3, cursor: "not-a-cursor" })).rejects.toMatchObject({ code: "BAD_CURSOR" });
    await expect(listFiles(sql, crypto.randomUUID(), { limit: 3 })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  test("failed files make the job DONE_WITH_ERRORS; its retry has scope failed; the retry's outcomes settle the rest", async () => {
    const first = await running();
    const t1 = crypto.randomUUID();
    await recordFiles(sql, first, t1, [verified("a"), verified("b"), failed("c"), failed("gone", "SOURCE_NOT_FOUND"), skipped("d")]);
    expect(await completeJob(sql, first, { strategy: "direct", files: 2, bytes: 8192, data: {}, outcomes: { token: t1 } })).toBe(true);
    const partial = await job(first.jobId);
    expect(partial).toMatchObject({ status: "DONE_WITH_ERRORS", error_code: "FILES_FAILED", scope: "all" });
    expect(partial.error_message).toContain('"c" (PERMISSION_DENIED)');
    const [done] = await sql<{ level: string; data: { files: unknown } }[]>`select level, data from job_events where job_id = ${first.jobId} and kind = 'done'`;
    expect(done).toMatchObject({ level: "warn", data: { outcomes: { total: 5, skipped: 1, verified: 2, failed: 2 } } });

    const again = await retryJob(sql, first.jobId);
    expect(again).toMatchObject({ status: "QUEUED", scope: "failed", error_code: null });
    const c = await claimJob(sql, first.jobId, first.worker, 10_000);
    if (!c.claimed) throw new Error("claim refused");
    const second: Fence = { ...first, attempt: c.job.attempts };
    const t2 = crypto.randomUUID();
    // The retry sent c; "gone" was no longer in the source, so it reported nothing for it.
    await recordFiles(sql, second, t2, [verified("c")]);
    expect(await completeJob(sql, second, { strategy: "direct", files: 1, bytes: 7, data: {}, outcomes: { token: t2 } })).toBe(true);
    const after = await rows(first.jobId);
    expect(after.map((r) => [r.path, r.state, r.attempts])).toEqual([["a", "verified", 1], ["b", "verified", 1], ["c", "verified", 2], ["d", "skipped", 1], ["gone", "failed", 2]]);
    expect(after.find((r) => r.path === "gone")!.error_code).toBe("SOURCE_NOT_FOUND");
    expect((await job(first.jobId)).status).toBe("DONE_WITH_ERRORS");
  });

  test("a run of the whole source drops the rows of files it no longer has; a clean run ends DONE", async () => {
    const fence = await running();
    const t1 = crypto.randomUUID();
    await recordFiles(sql, fence, t1, [skipped("kept"), failed("old")]);
    // Attempt 1 died after writing its first batch; attempt 2 reports the whole source afresh.
    await sql`update jobs set lease_expires_at = now() - interval '1 second' where id = ${fence.jobId}`;
    await sql`update jobs set status = 'QUEUED', worker_id = null where id = ${fence.jobId}`;
    const c = await claimJob(sql, fence.jobId, fence.worker, 10_000);
    if (!c.claimed) throw new Error("claim refused");
    const second: Fence = { ...fence, attempt: c.job.attempts };
    const t2 = crypto.randomUUID();
    await recordFiles(sql, second, t2, [skipped("kept"), verified("new")]);
    expect(await completeJob(sql, second, { strategy: "direct", files: 1, bytes: 4096, data: {}, outcomes: { token: t2 } })).toBe(true);
    expect((await rows(fence.jobId)).map((r) => [r.path, r.state, r.attempts])).toEqual([["kept", "skipped", 2], ["new", "verified", 1]]);
    expect(await job(fence.jobId)).toMatchObject({ status: "DONE", error_code: null });
  });

  test("a failure after the commit of a run with failed files ends DONE_WITH_ERRORS, never FAILED", async () => {
    const fence = await running();
    await recordFiles(sql, fence, crypto.randomUUID(), [verified("a"), failed("b")]);
    expect(await recordCommitted(sql, fence)).toBe(true);
    expect(await failJob(sql, fence, { code: "IO_ERROR", message: "source removal failed", retryable: false })).toBe("done");
    expect(await job(fence.jobId)).toMatchObject({ status: "DONE_WITH_ERRORS", error_code: "IO_ERROR" });
  });
});
