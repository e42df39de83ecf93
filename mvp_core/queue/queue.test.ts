import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type Redis from "ioredis";
import { waitFor } from "../testing/ports.ts";
import { testRedisPrefix, testRedisUrl } from "../testing/services.ts";
import { JobQueue } from "./queue.ts";
import { connectRedis } from "./redis.ts";

let redis: Redis;
let blocking: Redis;

beforeAll(async () => {
  const url = await testRedisUrl();
  redis = connectRedis(url, { name: "queue-test" });
  blocking = connectRedis(url, { name: "queue-test-blocking", blocking: true });
}, 30_000); // the first test to ask for Redis waits for redis-server to start

afterAll(async () => {
  redis.disconnect();
  blocking.disconnect();
});

/** A queue on its own prefix; its keys are deleted after the test. */
function newQueue(): JobQueue {
  return new JobQueue({ redis, prefix: testRedisPrefix() });
}

const LAB = "lab";

async function cleanup(q: JobQueue, workerIds: string[]): Promise<void> {
  const k = q.keys;
  const sites = await redis.smembers(k.sites);
  const keys = [k.routes, k.sites, k.leases, k.owners, k.delayed, k.members, k.workers, ...sites.map((r) => `${k.pendingPrefix}${r}`), ...workerIds.flatMap((w) => [q.processingKey(w), `${k.workerPrefix}${w}`])];
  await redis.del(...keys);
}

describe("JobQueue", () => {
  test("enqueue is idempotent and reserve moves the oldest job into the worker's processing list", async () => {
    const q = newQueue();
    await q.enqueue("job-a", LAB);
    await q.enqueue("job-b", LAB);
    await q.enqueue("job-a", LAB);
    expect(await q.depth()).toEqual({ pending: 2, processing: 0, delayed: 0 });

    expect(await q.reserve(blocking, "w1", LAB, 100)).toBe("job-a");
    await q.startLease("job-a", "w1", 10_000, LAB);
    expect(await redis.lrange(q.processingKey("w1"), 0, -1)).toEqual(["job-a"]);
    expect(await q.depth()).toEqual({ pending: 1, processing: 1, delayed: 0 });

    await q.ack("job-a", "w1");
    expect(await q.held(["job-a", "job-b"])).toEqual([false, true]);
    expect(await q.reserve(blocking, "w1", LAB, 100)).toBe("job-b");
    expect(await q.reserve(blocking, "w1", LAB, 100)).toBeNull();
    await cleanup(q, ["w1"]);
  });

  test("an expired lease is reaped back to pending and another worker reserves it", async () => {
    const q = newQueue();
    await q.enqueue("job-x", LAB);
    expect(await q.reserve(blocking, "dead", LAB, 100)).toBe("job-x");
    await q.startLease("job-x", "dead", 1, LAB);
    await Bun.sleep(10);
    expect(await q.reapExpiredLeases()).toEqual([{ jobId: "job-x", workerId: "dead", routeLost: false }]);
    expect(await redis.llen(q.processingKey("dead"))).toBe(0);
    expect(await q.reserve(blocking, "alive", LAB, 100)).toBe("job-x");
    await cleanup(q, ["dead", "alive"]);
  });

  test("a worker that stops beating loses its reserved jobs, even one without a lease yet", async () => {
    const q = newQueue();
    await q.heartbeat({ id: "w-dead", site: LAB, host: "h", pid: 1, startedAt: new Date().toISOString(), running: 1, concurrency: 2 }, 1);
    await q.enqueue("job-y", LAB);
    expect(await q.reserve(blocking, "w-dead", LAB, 100)).toBe("job-y");
    await Bun.sleep(10);
    expect(await q.liveWorkers()).toEqual([]);
    expect(await q.reapDeadWorkers(5)).toEqual([{ jobId: "job-y", workerId: "w-dead", routeLost: false }]);
    expect(await q.reapDeadWorkers(5)).toEqual([]);
    expect(await q.depth()).toEqual({ pending: 1, processing: 0, delayed: 0 });
    expect(await redis.zcard(q.keys.workers)).toBe(0);
    await cleanup(q, ["w-dead"]);
  });

  test("a silent worker whose heartbeat has not expired yet keeps its jobs", async () => {
    const q = newQueue();
    await q.heartbeat({ id: "w-slow", site: LAB, host: "h", pid: 1, startedAt: new Date().toISOString(), running: 1, concurrency: 1 }, 60_000);
    await q.enqueue("job-s", LAB);
    expect(await q.reserve(blocking, "w-slow", LAB, 100)).toBe("job-s");
    await Bun.sleep(10);
    expect(await q.reapDeadWorkers(5)).toEqual([]);
    expect(await redis.lrange(q.processingKey("w-slow"), 0, -1)).toEqual(["job-s"]);
    await cleanup(q, ["w-slow"]);
  });

  test("renewal refuses a job another worker holds and restores a lease Redis lost", async () => {
    const q = newQueue();
    await q.enqueue("job-r", LAB);
    await q.reserve(blocking, "w1", LAB, 100);
    await q.startLease("job-r", "w1", 10_000, LAB);
    expect(await q.renewLease("job-r", "w2", 10_000, LAB)).toBe(false);
    await redis.del(q.keys.leases, q.keys.owners, q.keys.members, q.keys.routes, q.processingKey("w1"));
    expect(await q.renewLease("job-r", "w1", 10_000, LAB)).toBe(true);
    expect(await q.held(["job-r"])).toEqual([true]);
    expect(await redis.hget(q.keys.routes, "job-r")).toBe(LAB);
    expect(await redis.lrange(q.processingKey("w1"), 0, -1)).toEqual(["job-r"]);
    expect(await q.depth()).toEqual({ pending: 0, processing: 1, delayed: 0 });
    await cleanup(q, ["w1"]);
  });

  test("retryLater parks a job until its delay passes; enqueue brings it forward", async () => {
    const q = newQueue();
    await q.enqueue("job-d", LAB);
    await q.reserve(blocking, "w1", LAB, 100);
    await q.retryLater("job-d", "w1", 60_000);
    expect(await q.depth()).toEqual({ pending: 0, processing: 0, delayed: 1 });
    expect(await q.promoteDelayed()).toBe(0);
    await q.enqueue("job-d", LAB);
    expect(await q.depth()).toEqual({ pending: 1, processing: 0, delayed: 0 });

    await q.reserve(blocking, "w1", LAB, 100);
    await q.retryLater("job-d", "w1", 1);
    await Bun.sleep(10);
    expect(await q.promoteDelayed()).toBe(1);
    expect(await q.reserve(blocking, "w1", LAB, 100)).toBe("job-d");
    await cleanup(q, ["w1"]);
  });

  test("release puts a job at the consuming end; removeWorker hands back leftovers", async () => {
    const q = newQueue();
    await q.enqueue("first", LAB);
    await q.enqueue("second", LAB);
    expect(await q.reserve(blocking, "w1", LAB, 100)).toBe("first");
    await q.release("first", "w1", LAB);
    expect(await q.reserve(blocking, "w1", LAB, 100)).toBe("first");
    expect(await q.reserve(blocking, "w1", LAB, 100)).toBe("second");
    expect(await q.removeWorker("w1")).toBe(2);
    expect(await q.depth()).toEqual({ pending: 2, processing: 0, delayed: 0 });
    await cleanup(q, ["w1"]);
  });

  test("liveWorkers reads heartbeats and notifyCancel reaches subscribers", async () => {
    const q = newQueue();
    const startedAt = new Date().toISOString();
    await q.heartbeat({ id: "w1", site: LAB, host: "lab", pid: 42, startedAt, running: 1, concurrency: 2 }, 60_000);
    const [w] = await q.liveWorkers();
    expect(w).toMatchObject({ id: "w1", site: LAB, host: "lab", pid: 42, startedAt, running: 1, concurrency: 2 });
    expect(Number.isNaN(Date.parse(w!.lastBeatAt))).toBe(false);

    const sub = connectRedis(await testRedisUrl(), { name: "queue-test-sub" });
    const got: string[] = [];
    const unsubscribe = await q.subscribeCancels(sub, (id) => got.push(id));
    await q.notifyCancel("job-c");
    await waitFor(() => got.length > 0, { what: "the cancel notice", timeoutMs: 30_000, intervalMs: 10 });
    expect(got).toEqual(["job-c"]);
    await unsubscribe();
    sub.disconnect();
    await cleanup(q, ["w1"]);
  });

  test("unlisted names jobs Redis lost or holds nowhere a worker looks", async () => {
    const q = newQueue();
    await q.enqueue("pending-job", LAB);
    await q.enqueue("leased-job", LAB);
    await q.enqueue("delayed-job", LAB);
    await q.enqueue("stale-job", LAB);
    // Oldest first: leased-job is reserved (after pending-job), stale-job dropped without forgetting.
    await redis.lrem(q.pendingKey(LAB), 1, "leased-job");
    await q.startLease("leased-job", "w1", 10_000, LAB);
    await redis.lrem(q.pendingKey(LAB), 1, "delayed-job");
    await redis.zadd(q.keys.delayed, Date.now() + 60_000, "delayed-job");
    await redis.lrem(q.pendingKey(LAB), 1, "stale-job");
    const onLab = (ids: string[]) => ids.map((id) => ({ id, site: LAB }));
    expect(await q.unlisted(onLab(["pending-job", "leased-job", "delayed-job", "stale-job", "lost-job"]))).toEqual(["lost-job", "stale-job"]);
    await q.requeue("stale-job", LAB);
    expect(await q.unlisted(onLab(["stale-job"]))).toEqual([]);
    // Pending, but on another site's list than Postgres says: a worker of its site would never find it.
    expect(await q.unlisted([{ id: "pending-job", site: "elsewhere" }])).toEqual(["pending-job"]);
    await cleanup(q, ["w1"]);
  });

  test("sites: a worker reserves its own site's jobs and any-site jobs, never another site's", async () => {
    const q = newQueue();
    await q.enqueue("a-1", "site-a");
    await q.enqueue("b-1", "site-b");
    await q.enqueue("any-1", null);
    expect(await q.reserve(blocking, "wa", "site-a", 100)).toBe("a-1");
    expect(await q.reserve(blocking, "wa", "site-a", 100)).toBeNull();
    expect(await q.reserve(blocking, "wa", null, 100)).toBe("any-1");
    expect(await q.reserve(blocking, "wa", null, 100)).toBeNull();
    expect(await redis.lrange(q.pendingKey("site-b"), 0, -1)).toEqual(["b-1"]);
    await q.startLease("a-1", "wa", 60_000, "site-a");
    await q.startLease("any-1", "wa", 60_000, null);
    await q.heartbeat({ id: "wb", site: "site-c", host: "h", pid: 1, startedAt: new Date().toISOString(), running: 0, concurrency: 1 }, 60_000);
    expect(await q.siteDepths()).toEqual([
      { site: "site-a", pending: 0, processing: 1, delayed: 0 },
      { site: "site-b", pending: 1, processing: 0, delayed: 0 },
      { site: "site-c", pending: 0, processing: 0, delayed: 0 },
      { site: null, pending: 0, processing: 1, delayed: 0 },
    ]);
    expect(await q.depth()).toEqual({ pending: 1, processing: 2, delayed: 0 });
    await cleanup(q, ["wa", "wb"]);
  });

  test("sites: reaper, dead-worker reaper, retry promotion, release and removeWorker hand a job back to its own site's list", async () => {
    const q = newQueue();
    const onB = async (jobId: string) => expect(await redis.lrange(q.pendingKey("site-b"), 0, -1)).toContain(jobId);
    // Expired lease.
    await q.enqueue("expired", "site-b");
    await q.reserve(blocking, "w1", "site-b", 100);
    await q.startLease("expired", "w1", 1, "site-b");
    await Bun.sleep(10);
    expect(await q.reapExpiredLeases()).toEqual([{ jobId: "expired", workerId: "w1", routeLost: false }]);
    await onB("expired");
    // Dead worker, with a job reserved but never leased.
    await q.heartbeat({ id: "w-dead", site: "site-b", host: "h", pid: 1, startedAt: new Date().toISOString(), running: 1, concurrency: 1 }, 1);
    await q.enqueue("orphan", "site-b");
    await redis.lrem(q.pendingKey("site-b"), 0, "expired");
    expect(await q.reserve(blocking, "w-dead", "site-b", 100)).toBe("orphan");
    await Bun.sleep(10);
    expect(await q.reapDeadWorkers(5)).toEqual([{ jobId: "orphan", workerId: "w-dead", routeLost: false }]);
    await onB("orphan");
    // Retry due.
    await redis.lrem(q.pendingKey("site-b"), 0, "orphan");
    await q.reserve(blocking, "w1", "site-b", 100);
    await q.retryLater("orphan", "w1", 1);
    await Bun.sleep(10);
    expect(await q.promoteDelayed()).toBe(1);
    await onB("orphan");
    // Release and removeWorker.
    await q.enqueue("leftover", "site-b");
    expect(await q.reserve(blocking, "w2", "site-b", 100)).toBe("orphan");
    expect(await q.reserve(blocking, "w2", "site-b", 100)).toBe("leftover");
    await q.release("orphan", "w2", "site-b");
    expect(await q.removeWorker("w2")).toBe(1);
    expect((await redis.lrange(q.pendingKey("site-b"), 0, -1)).sort()).toEqual(["leftover", "orphan"]);
    // Nothing ever reached another site's list or the any-site list.
    expect(await redis.llen(q.pendingKey("site-a"))).toBe(0);
    expect(await redis.llen(q.pendingKey(null))).toBe(0);
    await cleanup(q, ["w1", "w2", "w-dead"]);
  });

  test("sites: a job whose route Redis lost is forgotten by the reaper rather than guessed, and the reconciler sees it missing", async () => {
    const q = newQueue();
    await q.enqueue("lost-route", "site-b");
    await q.reserve(blocking, "w1", "site-b", 100);
    await q.startLease("lost-route", "w1", 1, "site-b");
    await redis.hdel(q.keys.routes, "lost-route");
    await Bun.sleep(10);
    expect(await q.reapExpiredLeases()).toEqual([{ jobId: "lost-route", workerId: "w1", routeLost: true }]);
    expect(await q.depth()).toEqual({ pending: 0, processing: 0, delayed: 0 });
    expect(await q.unlisted([{ id: "lost-route", site: "site-b" }])).toEqual(["lost-route"]);
    await q.requeue("lost-route", "site-b");
    expect(await q.unlisted([{ id: "lost-route", site: "site-b" }])).toEqual([]);
    expect(await redis.lrange(q.pendingKey("site-b"), 0, -1)).toEqual(["lost-route"]);
    await cleanup(q, ["w1"]);
  });

  test("sites: a retired site's name and stale list entries are forgotten", async () => {
    const q = newQueue();
    await q.enqueue("cancelled-long-ago", "old-site");
    await q.enqueue("elsewhere", "new-site");
    expect(await q.forgetSite("old-site")).toBe(1);
    expect((await q.siteDepths()).map((d) => d.site)).toEqual(["new-site"]);
    expect(await redis.exists(q.pendingKey("old-site"))).toBe(0);
    await cleanup(q, []);
  });

  test("scripts reload after SCRIPT FLUSH", async () => {
    const q = newQueue();
    await q.enqueue("job-f", LAB);
    await redis.script("FLUSH");
    await q.enqueue("job-g", LAB);
    expect((await q.depth()).pending).toBe(2);
    await cleanup(q, []);
  });
});
