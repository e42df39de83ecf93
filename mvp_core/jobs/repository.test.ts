import { afterAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import type { Sql } from "postgres";
import { createPortal, deletePortal, type PortalRow, updatePortal } from "../portals/repository.ts";
import { testSql, uniqueId } from "../testing/services.ts";
import { createJob, getJob, type JobError, listEvents, listJobs, type NewJob, requestCancel, retryJob } from "./repository.ts";

const key = randomBytes(32);
let sqlP: Promise<Sql> | undefined;
const db = () => (sqlP ??= testSql(4));
const portals: string[] = [];
afterAll(async () => {
  const sql = await db();
  await sql`delete from jobs where source_portal_id = any(${portals}) or target_portal_id = any(${portals})`;
  await sql`delete from portals where id = any(${portals})`;
});

async function portal(root = "/data/in", site = "lab"): Promise<PortalRow> {
  const p = await createPortal(await db(), { name: `p_${uniqueId()}`, kind: "local", rootPath: root, site }, key);
  portals.push(p.id);
  return p;
}

function spec(a: PortalRow, b: PortalRow, extra: Partial<NewJob> = {}): NewJob {
  return { type: "copy", sourcePortalId: a.id, sourcePath: "shoot_01", targetPortalId: b.id, targetPath: "in/shoot_01", options: { verify: "size" }, maxAttempts: 3, ...extra };
}

async function code(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(() => undefined, (e: unknown) => (e as JobError).code);
}

describe("jobs repository", () => {
  test("createJob commits the job with created + queued events; absolute paths inside the root become relative", async () => {
    const sql = await db();
    const a = await portal("/data/in");
    const b = await portal("/data/out");
    const { job, created } = await createJob(sql, spec(a, b, { sourcePath: "/data/in/shoot_01/" }));
    expect(created).toBe(true);
    expect(job).toMatchObject({ status: "QUEUED", source_path: "shoot_01", target_path: "in/shoot_01", attempts: 0, max_attempts: 3 });
    const events = await listEvents(sql, job.id, { limit: 10 });
    expect(events.map((e) => e.kind)).toEqual(["created", "queued"]);
    expect(events[0]!.data).toMatchObject({ source: { portal: a.name, path: "shoot_01" } });
    expect((await getJob(sql, job.id))?.id).toBe(job.id);
    expect(await getJob(sql, crypto.randomUUID())).toBeNull();
  });

  test("the same Idempotency-Key returns the same job; a different request with it is refused", async () => {
    const sql = await db();
    const [a, b] = [await portal(), await portal()];
    const k = `key-${uniqueId()}`;
    const first = await createJob(sql, spec(a, b, { idempotencyKey: k }));
    const again = await Promise.all([createJob(sql, spec(a, b, { idempotencyKey: k })), createJob(sql, spec(a, b, { idempotencyKey: k }))]);
    expect(again.map((r) => [r.job.id, r.created])).toEqual([[first.job.id, false], [first.job.id, false]]);
    expect(await code(createJob(sql, spec(a, b, { idempotencyKey: k, targetPath: "other" })))).toBe("IDEMPOTENCY_CONFLICT");
    expect((await listEvents(sql, first.job.id, { limit: 10 })).length).toBe(2);
  });

  test("bad paths, unknown portals and same/inside targets are refused", async () => {
    const sql = await db();
    const a = await portal();
    expect(await code(createJob(sql, spec(a, a, { sourcePath: "../x" })))).toBe("INVALID_PATH");
    expect(await code(createJob(sql, spec(a, a, { targetPath: "/etc" })))).toBe("INVALID_PATH");
    expect(await code(createJob(sql, spec(a, a, { targetPath: "shoot_01" })))).toBe("SAME_PATH");
    expect(await code(createJob(sql, spec(a, a, { targetPath: "shoot_01/sub" })))).toBe("TARGET_INSIDE_SOURCE");
    expect(await code(createJob(sql, { ...spec(a, a), targetPortalId: crypto.randomUUID() }))).toBe("UNKNOWN_PORTAL");
    const gone = await portal();
    await deletePortal(sql, gone.id);
    expect(await code(createJob(sql, spec(gone, a)))).toBe("UNKNOWN_PORTAL");
  });

  test("listJobs: pages within one millisecond keep their microseconds (no row skipped on a reused statement)", async () => {
    const sql = await db();
    const [a, b] = [await portal(), await portal()];
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { job } = await createJob(sql, spec(a, b, { targetPath: `u${i}` }));
      // Five jobs inside one millisecond, 100 µs apart: a cursor rounded to milliseconds loses some.
      await sql`update jobs set created_at = '2026-01-01T00:00:00.000100Z'::timestamptz + ${i * 100} * interval '1 microsecond' where id = ${job.id}`;
      ids.push(job.id);
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await listJobs(sql, { portalId: a.id, limit: 1, ...(cursor ? { cursor } : {}) });
      seen.push(...page.jobs.map((j) => j.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
  });

  test("listJobs: newest first, filters by status and portal, cursor pages without gaps or repeats", async () => {
    const sql = await db();
    const [a, b] = [await portal(), await portal()];
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await createJob(sql, spec(a, b, { targetPath: `t${i}` }))).job.id);
    await requestCancel(sql, ids[6]!);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await listJobs(sql, { portalId: a.id, limit: 3, ...(cursor ? { cursor } : {}) });
      seen.push(...page.jobs.map((j) => j.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
    const cancelled = await listJobs(sql, { portalId: b.id, statuses: ["CANCELLED"], limit: 10 });
    expect(cancelled.jobs.map((j) => j.id)).toEqual([ids[6]!]);
    expect(await code(listJobs(sql, { limit: 3, cursor: "garbage" }))).toBe("BAD_CURSOR");
    expect(await code(listJobs(sql, { limit: 3, cursor: Buffer.from('["x","y"]').toString("base64url") }))).toBe("BAD_CURSOR");
  });

  test("cancel: QUEUED → CANCELLED at once, RUNNING → CANCELLING (worker notified), DONE refused; retry only after FAILED/CANCELLED", async () => {
    const sql = await db();
    const [a, b] = [await portal(), await portal()];
    const q = (await createJob(sql, spec(a, b))).job;
    expect(await code(retryJob(sql, q.id))).toBe("INVALID_STATE");
    const c = await requestCancel(sql, q.id);
    expect([c.job.status, c.notifyWorker]).toEqual(["CANCELLED", false]);
    expect((await requestCancel(sql, q.id)).job.status).toBe("CANCELLED");
    const r = await retryJob(sql, q.id);
    expect(r).toMatchObject({ status: "QUEUED", attempts: 0, finished_at: null });
    expect((await listEvents(sql, q.id, { limit: 20 })).map((e) => e.kind)).toEqual(["created", "queued", "cancel_requested", "cancelled", "retried", "queued"]);

    await sql`update jobs set status = 'RUNNING', attempts = 1, started_at = now() where id = ${q.id}`;
    const running = await requestCancel(sql, q.id);
    expect([running.job.status, running.notifyWorker]).toEqual(["CANCELLING", true]);
    await sql`update jobs set status = 'DONE', finished_at = now() where id = ${q.id}`;
    expect(await code(requestCancel(sql, q.id))).toBe("INVALID_STATE");
    expect(await code(requestCancel(sql, crypto.randomUUID()))).toBe("NOT_FOUND");
    expect(await code(listEvents(sql, crypto.randomUUID(), { limit: 1 }))).toBe("NOT_FOUND");
  });

  test("listJobs: a portal that is both source and target lists its job once; several statuses merge in order across pages", async () => {
    const sql = await db();
    const [a, b] = [await portal(), await portal()];
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await createJob(sql, spec(a, i % 2 === 0 ? a : b, { targetPath: `t${i}` }))).job.id);
    for (const i of [1, 4]) await requestCancel(sql, ids[i]!);
    const pages = async (opts: { statuses?: ("QUEUED" | "CANCELLED")[] }) => {
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await listJobs(sql, { portalId: a.id, limit: 2, ...opts, ...(cursor ? { cursor } : {}) });
        seen.push(...page.jobs.map((j) => j.id));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      return seen;
    };
    expect(await pages({})).toEqual([...ids].reverse());
    expect(await pages({ statuses: ["QUEUED", "CANCELLED", "QUEUED"] })).toEqual([...ids].reverse());
    expect(await pages({ statuses: ["CANCELLED"] })).toEqual([ids[4]!, ids[1]!]);
  });

  test("a cursor whose date is not on the calendar is refused as BAD_CURSOR, never a server error", async () => {
    const sql = await db();
    const id = crypto.randomUUID();
    const cursor = (at: string) => Buffer.from(JSON.stringify([at, id])).toString("base64url");
    for (const at of ["0000-01-01T00:00:00.000000Z", "2026-02-30T00:00:00.000000Z", "2026-04-31T12:00:00.000000Z", "2025-02-29T00:00:00.000000Z", "1900-02-29T00:00:00.000000Z", "2026-13-01T00:00:00.000000Z", "2026-00-10T00:00:00.000000Z", "2026-01-00T00:00:00.000000Z", "2026-01-01T24:00:00.000000Z", "2026-01-01T23:60:00.000000Z", "2026-01-01T23:59:60.000000Z"]) {
      expect(`${at}: ${await code(listJobs(sql, { limit: 1, cursor: cursor(at) }))}`).toBe(`${at}: BAD_CURSOR`);
    }
    for (const at of ["2024-02-29T00:00:00.000000Z", "2000-02-29T23:59:59.999999Z", "0001-01-01T00:00:00.000000Z", "2026-04-30T00:00:00.000000Z"]) {
      expect((await listJobs(sql, { limit: 1, cursor: cursor(at) })).jobs).toBeArray();
    }
  });

  test("a job whose data arrived cannot be cancelled; a retry forgets its commit", async () => {
    const sql = await db();
    const [a, b] = [await portal(), await portal()];
    const job = (await createJob(sql, spec(a, b))).job;
    await sql`update jobs set status = 'RUNNING', attempts = 1, phase = 'committed', committed_at = now() where id = ${job.id}`;
    expect(await code(requestCancel(sql, job.id))).toBe("INVALID_STATE");
    await sql`update jobs set status = 'CANCELLED', finished_at = now() where id = ${job.id}`;
    expect(await retryJob(sql, job.id)).toMatchObject({ status: "QUEUED", phase: null, committed_at: null });
  });

  test("sites: a job runs at its local end's site; across two sites it is refused; a retry routes it afresh", async () => {
    const sql = await db();
    const [lab, lab2, srv] = [await portal("/data/in", "lab"), await portal("/data/out", "lab"), await portal("/srv/in", "srvtrf")];
    const { job } = await createJob(sql, spec(lab, lab2));
    expect(job.site).toBe("lab");
    const events = await listEvents(sql, job.id, { limit: 10 });
    expect(events.map((e) => [e.kind, e.data.site])).toEqual([["created", "lab"], ["queued", "lab"]]);
    expect(events[1]!.message).toBe("waiting for a worker of site lab");

    const refused = await createJob(sql, spec(lab, srv)).catch((e: unknown) => e as JobError);
    expect(refused).toMatchObject({ code: "CROSS_SITE", details: { field: "target.portal" } });

    // Cancelled, its source moved to srvtrf (allowed: no active job), retried: it now runs there.
    const { job: moved } = await createJob(sql, spec(srv, srv, { sourcePath: "a", targetPath: "b" }));
    expect(moved.site).toBe("srvtrf");
    const mover = await portal("/data/mover", "lab");
    const { job: later } = await createJob(sql, spec(mover, mover, { sourcePath: "a", targetPath: "b" }));
    await requestCancel(sql, later.id);
    await updatePortal(sql, mover.id, { site: "srvtrf" }, key);
    expect((await retryJob(sql, later.id)).site).toBe("srvtrf");
    // While that job is active, the portal may not move again.
    expect(await updatePortal(sql, mover.id, { site: "lab" }, key).catch((e: unknown) => (e as { code: string }).code)).toBe("IN_USE");
  });

  test("sites: a portal changed since createJob last read it is read afresh: the new site and root apply", async () => {
    const sql = await db();
    const p = await portal("/data/before", "lab");
    const { job: first } = await createJob(sql, spec(p, p, { sourcePath: "a", targetPath: "b" }));
    expect(first.site).toBe("lab");
    await requestCancel(sql, first.id);
    await updatePortal(sql, p.id, { site: "srvtrf", rootPath: "/data/after" }, key);
    const { job: second } = await createJob(sql, spec(p, p, { sourcePath: "/data/after/a", targetPath: "c" }));
    expect([second.site, second.source_path]).toEqual(["srvtrf", "a"]);
    await requestCancel(sql, second.id);
    await deletePortal(sql, p.id);
    expect(await code(createJob(sql, spec(p, p, { sourcePath: "a", targetPath: "d" })))).toBe("UNKNOWN_PORTAL");
  });
});
