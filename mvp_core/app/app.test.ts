import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { JobQueue } from "../queue/queue.ts";
import { connectRedis } from "../queue/redis.ts";
import { freePort } from "../testing/ports.ts";
import { uniqueId } from "../testing/services.ts";
import type { PortalView } from "./portals/schemas.ts";
import type { JobView } from "./jobs/schemas.ts";
import type { HealthView } from "./health/module.ts";
import { apiFixture, type ApiFixture } from "./test_support.ts";

let f: ApiFixture;
beforeAll(async () => {
  f = await apiFixture();
});
afterAll(() => f.close());

async function localPortal(fx = f): Promise<PortalView> {
  const r = await fx.call<PortalView>("POST", "/portals", { body: { kind: "local", name: `l_${uniqueId()}`, rootPath: await fx.tempDir() } });
  expect(r.status).toBe(201);
  return r.json;
}

function jobBody(a: PortalView, b: PortalView, extra: Record<string, unknown> = {}) {
  return { type: "copy", source: { portal: a.id, path: "shoot" }, target: { portal: b.id, path: "in/shoot" }, ...extra };
}

describe("API through app.handle", () => {
  test("portals: create, get, list, update, check, delete (refused while an active job uses it)", async () => {
    const a = await localPortal();
    const b = await localPortal();
    expect((await f.call<PortalView>("GET", `/portals/${a.id}`)).json.name).toBe(a.name);
    expect((await f.call<{ portals: PortalView[] }>("GET", "/portals")).json.portals.map((p) => p.id)).toContain(a.id);
    const renamed = await f.call<PortalView>("PATCH", `/portals/${a.id}`, { body: { name: `${a.name}_x` } });
    expect([renamed.status, renamed.json.name]).toEqual([200, `${a.name}_x`]);
    const check = await f.call<{ reachable: boolean; freeBytes: number }>("POST", `/portals/${a.id}/check`);
    expect(check.json.reachable).toBe(true);
    expect(check.json.freeBytes).toBeGreaterThan(0);

    const job = await f.call<JobView>("POST", "/jobs", { body: jobBody(a, b) });
    expect(job.status).toBe(201);
    const refused = await f.call("DELETE", `/portals/${b.id}`);
    expect([refused.status, refused.json.error?.code]).toEqual([409, "PORTAL_IN_USE"]);
    expect((await f.call("POST", `/jobs/${job.json.id}/cancel`)).status).toBe(200);
    expect((await f.call("DELETE", `/portals/${b.id}`)).status).toBe(204);
    expect((await f.call("GET", `/portals/${b.id}`)).status).toBe(404);
    // History survives the delete.
    expect((await f.call<JobView>("GET", `/jobs/${job.json.id}`)).json.target.portal).toBe(b.id);
  });

  test("jobs: 201 with created + queued events, committed in Postgres and handed to Redis", async () => {
    const [a, b] = [await localPortal(), await localPortal()];
    const before = (await f.queue.depth()).pending;
    const r = await f.call<JobView>("POST", "/jobs", { body: jobBody(a, b, { options: { verify: "size", maxAttempts: 5 } }) });
    expect(r.status).toBe(201);
    expect(r.headers.get("location")).toBe(`/jobs/${r.json.id}`);
    expect(r.json).toMatchObject({ status: "QUEUED", attempts: 0, maxAttempts: 5, options: { verify: "size", strategy: "auto", overwrite: false } });
    expect(r.json.progress).toMatchObject({ filesDone: 0, bytesDone: 0, percent: null, etaSeconds: null });
    expect((await f.queue.depth()).pending).toBe(before + 1);
    const ev = await f.call<{ events: { id: number; kind: string }[] }>("GET", `/jobs/${r.json.id}/events`);
    expect(ev.json.events.map((e) => e.kind)).toEqual(["created", "queued"]);
    const after = await f.call<{ events: unknown[] }>("GET", `/jobs/${r.json.id}/events?after=${ev.json.events[0]!.id}`);
    expect(after.json.events.length).toBe(1);
    expect((await f.call<JobView>("GET", `/jobs/${r.json.id}`)).json.status).toBe("QUEUED");
  });

  test("Idempotency-Key: a repeated POST returns the same job (201, Idempotent-Replayed), a different body 409", async () => {
    const [a, b] = [await localPortal(), await localPortal()];
    const headers = { "idempotency-key": `k-${uniqueId()}` };
    const first = await f.call<JobView>("POST", "/jobs", { body: jobBody(a, b), headers });
    const replies = await Promise.all([1, 2, 3].map(() => f.call<JobView>("POST", "/jobs", { body: jobBody(a, b), headers })));
    expect(replies.map((r) => [r.status, r.json.id, r.headers.get("idempotent-replayed")])).toEqual(replies.map(() => [201, first.json.id, "true"]));
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    const [{ n }] = await f.sql<[{ n: number }]>`select count(*)::int as n from jobs where idempotency_key = ${headers["idempotency-key"]}`;
    expect(n).toBe(1);
    const other = await f.call("POST", "/jobs", { body: jobBody(a, b, { type: "move" }), headers });
    expect([other.status, other.json.error?.code]).toEqual([409, "IDEMPOTENCY_CONFLICT"]);
  });

  test("list: newest first, status and portal filters, cursor pagination", async () => {
    const [a, b] = [await localPortal(), await localPortal()];
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await f.call<JobView>("POST", "/jobs", { body: jobBody(a, b, { target: { portal: b.id, path: `t${i}` } }) })).json.id);
    await f.call("POST", `/jobs/${ids[0]}/cancel`);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { json: { jobs: JobView[]; nextCursor: string | null } } = await f.call("GET", `/jobs?portal=${a.id}&limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      seen.push(...page.json.jobs.map((j) => j.id));
      cursor = page.json.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
    const cancelled = await f.call<{ jobs: JobView[] }>("GET", `/jobs?portal=${b.id}&status=CANCELLED,FAILED`);
    expect(cancelled.json.error).toBeUndefined();
    expect(cancelled.json.jobs.map((j) => j.id)).toEqual([ids[0]!]);
  });

  test("cancel and retry", async () => {
    const [a, b] = [await localPortal(), await localPortal()];
    const job = (await f.call<JobView>("POST", "/jobs", { body: jobBody(a, b) })).json;
    const notRetryable = await f.call("POST", `/jobs/${job.id}/retry`);
    expect([notRetryable.status, notRetryable.json.error?.code]).toEqual([409, "JOB_STATE_CONFLICT"]);
    expect((await f.call<JobView>("POST", `/jobs/${job.id}/cancel`)).json.status).toBe("CANCELLED");
    expect((await f.call<JobView>("POST", `/jobs/${job.id}/cancel`)).status).toBe(200);
    const retried = await f.call<JobView>("POST", `/jobs/${job.id}/retry`);
    expect([retried.status, retried.json.status]).toEqual([200, "QUEUED"]);
    await f.sql`update jobs set status = 'DONE', finished_at = now() where id = ${job.id}`;
    expect((await f.call("POST", `/jobs/${job.id}/cancel`)).status).toBe(409);
  });

  test("secrets are write-only: never in a response, an event or a log line", async () => {
    const password = `pw-${uniqueId()}-never-shown`;
    const privateKey = `-----BEGIN OPENSSH PRIVATE KEY-----\nkey-${uniqueId()}-never-shown\n-----END OPENSSH PRIVATE KEY-----`;
    const bodies: string[] = [];
    const call = async (...args: Parameters<ApiFixture["call"]>) => {
      const r = await f.call(...args);
      bodies.push(JSON.stringify(r.json), JSON.stringify([...r.headers]));
      return r;
    };
    const s = await call("POST", "/portals", { body: { kind: "sftp", name: `s_${uniqueId()}`, rootPath: "/srv/in", host: "127.0.0.1", port: 1, username: "u", auth: { method: "password", password } } });
    expect(s.status).toBe(201);
    const id = s.json.id as string;
    await call("PATCH", `/portals/${id}`, { body: { auth: { method: "key", privateKey, passphrase: password } } });
    await call("PATCH", `/portals/${id}`, { body: { auth: { method: "key", privateKey, passphrase: password }, port: "x" } });
    await call("POST", "/portals", { body: { kind: "sftp", name: `s_${uniqueId()}`, rootPath: "/srv", host: "h", username: "u", auth: { method: "password", password, extra: 1 } } });
    await call("GET", `/portals/${id}`);
    await call("GET", "/portals");
    await call("POST", `/portals/${id}/check`);
    const local = await localPortal();
    const job = await call("POST", "/jobs", { body: jobBody(local, { id } as PortalView) });
    await call("GET", `/jobs/${job.json.id}/events`);
    const events = await f.sql`select message, data::text from job_events where job_id = ${job.json.id as string}`;
    const everything = [...bodies, JSON.stringify(events), ...f.logs].join("\n");
    expect(everything).not.toContain(password);
    expect(everything).not.toContain("never-shown");
    expect(f.logs.length).toBeGreaterThan(5);
  });

  test("when Redis is down, POST /jobs still answers 201 and the job waits QUEUED in Postgres; /health is 503", async () => {
    const deadRedis = connectRedis(`redis://127.0.0.1:${await freePort()}/0`, { name: "dead" });
    deadRedis.on("error", () => undefined); // the point of this test: nothing listens there
    const down = await apiFixture({ queue: new JobQueue({ redis: deadRedis, prefix: f.prefix }), pingRedis: () => deadRedis.ping(), redisTimeoutMs: 300 });
    try {
      const [a, b] = [await localPortal(down), await localPortal(down)];
      const r = await down.call<JobView>("POST", "/jobs", { body: jobBody(a, b) });
      expect([r.status, r.json.status]).toEqual([201, "QUEUED"]);
      const [row] = await f.sql<{ status: string }[]>`select status from jobs where id = ${r.json.id}`;
      expect(row?.status).toBe("QUEUED");
      expect(down.logs.some((l) => l.includes("enqueue failed"))).toBe(true);
      const h = await down.call<HealthView>("GET", "/health");
      expect(h.status).toBe(503);
      expect(h.json).toMatchObject({ status: "degraded", database: { ok: true }, redis: { ok: false } });
    } finally {
      deadRedis.disconnect();
      await down.close();
    }
  });

  test("GET /health: 200 with database, redis, queue depth and live workers, per site", async () => {
    await f.queue.heartbeat({ id: "test-worker-1", site: "health-site", host: "h", pid: 1, startedAt: new Date().toISOString(), running: 0, concurrency: 2 }, 10_000);
    const h = await f.call<HealthView>("GET", "/health");
    expect(h.status).toBe(200);
    expect(h.json).toMatchObject({ status: "ok", database: { ok: true }, redis: { ok: true }, workers: { live: 1, ids: ["test-worker-1"] }, version: "test" });
    expect(typeof h.json.queue.pending).toBe("number");
    expect(h.json.sites.find((s) => s.name === "health-site")).toMatchObject({ live: 1, workers: [{ id: "test-worker-1", concurrency: 2 }], queue: { pending: 0, processing: 0, delayed: 0 } });
    await f.queue.removeWorker("test-worker-1");
  });

  test("local files: a job's absolute source path inside the portal root is accepted and stored relative", async () => {
    const a = await localPortal();
    const b = await localPortal();
    await writeFile(join(a.rootPath, "clip.mov"), "x");
    const r = await f.call<JobView>("POST", "/jobs", { body: { type: "move", source: { portal: a.id, path: join(a.rootPath, "clip.mov") }, target: { portal: b.id, path: "clip.mov" } } });
    expect([r.status, r.json.source.path]).toEqual([201, "clip.mov"]);
  });
});
