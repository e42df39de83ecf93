import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import Redis from "ioredis";
import { connectDb } from "../db/client.ts";
import { migrateUp } from "../db/migrate.ts";
import { JobQueue } from "../queue/queue.ts";
import { createEmptyDatabase, testRedisPrefix, testRedisUrl } from "../testing/services.ts";
import { CheckFailure } from "./check.ts";
import { startRedisServer } from "../testing/redis_server.ts";
import { WAIT_WARN_MS, checkWorkers, judgeWorkers, oldestWaitingJob } from "./worker.ts";

// Real servers start on demand; bun 1.4.5 ignores bunfig's [test] timeout.
setDefaultTimeout(60_000);

const clients: Redis[] = [];
afterAll(() => clients.forEach((c) => c.disconnect()));

async function freshDatabase(): Promise<string> {
  const url = await createEmptyDatabase();
  await migrateUp(url);
  return url;
}

async function queueOn(prefix: string): Promise<JobQueue> {
  const redis = new Redis(await testRedisUrl());
  clients.push(redis);
  return new JobQueue({ redis, prefix });
}

const SITE = "lab-01";
const beat = { site: SITE, host: "lab-01", pid: 1, startedAt: new Date().toISOString(), running: 0, concurrency: 2 };

describe("worker check", () => {
  test("no heartbeat: fail, telling how to start a worker", async () => {
    const r = await checkWorkers(await testRedisUrl(), testRedisPrefix(), await freshDatabase(), SITE);
    expect(r.status).toBe("fail");
    expect(r.value).toStartWith("0 live, depth 0 pending / 0 processing / 0 delayed, none waiting");
    expect(r.hint).toContain("bun run worker");
    expect(r.hint).toContain(`KETTER_SITE=${SITE}`);
  });

  test("live heartbeats are counted per site; queue depth is the queue module's", async () => {
    const prefix = testRedisPrefix();
    const queue = await queueOn(prefix);
    await queue.heartbeat({ ...beat, id: "w1" }, 30_000);
    await queue.heartbeat({ ...beat, id: "w2" }, 30_000);
    await queue.enqueue(crypto.randomUUID(), SITE);
    const r = await checkWorkers(await testRedisUrl(), prefix, await freshDatabase(), SITE);
    expect(r.status).toBe("ok");
    expect(r.value).toStartWith(`2 live (${SITE}: 2 live, 1 pending), depth 1 pending`);
    expect(r.details).toMatchObject({ live: 2, depth: { pending: 1, processing: 0, delayed: 0 }, ownSiteLive: 2 });
  });

  test("a site whose jobs wait with none of its workers live is a warning naming it; the own site's liveness is reported for the smoke test", async () => {
    const prefix = testRedisPrefix();
    const queue = await queueOn(prefix);
    await queue.heartbeat({ ...beat, id: "w1" }, 30_000);
    await queue.enqueue(crypto.randomUUID(), "srvtrf");
    await queue.enqueue(crypto.randomUUID(), "srvtrf");
    const r = await checkWorkers(await testRedisUrl(), prefix, await freshDatabase(), "srvtrf");
    expect(r.status).toBe("warn");
    expect(r.value).toContain("srvtrf: 0 live, 2 pending");
    expect(r.hint).toContain("srvtrf (2 waiting)");
    expect(r.hint).toContain("KETTER_SITE");
    expect(r.details).toMatchObject({ ownSite: "srvtrf", ownSiteLive: 0 });
  });

  test("the oldest QUEUED job's age comes from Postgres; a long wait is a warning", async () => {
    const url = await freshDatabase();
    const sql = connectDb(url, { max: 1 });
    try {
      const [portal] = await sql<{ id: string }[]>`insert into portals (name, kind, root_path) values ('p', 'local', '/tmp') returning id`;
      const [old] = await sql<{ id: string }[]>`
        insert into jobs (type, source_portal_id, source_path, target_portal_id, target_path, created_at)
        values ('copy', ${portal!.id}, 'a', ${portal!.id}, 'b', now() - interval '20 minutes') returning id`;
      await sql`insert into jobs (type, source_portal_id, source_path, target_portal_id, target_path) values ('copy', ${portal!.id}, 'c', ${portal!.id}, 'd')`;
      const oldest = await oldestWaitingJob(url);
      expect(oldest?.jobId).toBe(old!.id);
      expect(oldest!.ageMs).toBeGreaterThanOrEqual(20 * 60_000 - 1_000);
    } finally {
      await sql.end();
    }
    const workers = [{ ...beat, id: "w1", lastBeatAt: new Date().toISOString() }];
    const depth = { pending: 1, processing: 0, delayed: 0 };
    const facts = { workers, depth, sites: [{ site: SITE, ...depth }], ownSite: SITE };
    const waitLong = judgeWorkers({ ...facts, oldest: { jobId: "j1", ageMs: WAIT_WARN_MS + 1, site: SITE } });
    expect(waitLong).toMatchObject({ status: "warn", hint: expect.stringContaining("j1") });
    expect(waitLong.value).toContain("oldest waiting 10.0 min");
    expect(judgeWorkers({ ...facts, oldest: { error: "ECONNREFUSED" } })).toMatchObject({ status: "ok", value: expect.stringContaining("unknown (ECONNREFUSED)") });
  });

  test("Redis down: CheckFailure pointing at the redis check", async () => {
    const own = await startRedisServer();
    await own.stop();
    const err = await checkWorkers(own.url, testRedisPrefix(), await freshDatabase(), SITE).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(CheckFailure);
    expect((err as CheckFailure).message).toContain("ECONNREFUSED");
    expect((err as CheckFailure).hint).toContain("redis check");
  });
});
