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

async function cleanup(q: JobQueue, workerIds: string[]): Promise<void> {
  const k = q.keys;
  const keys = [k.pending, k.leases, k.owners, k.delayed, k.members, k.workers, ...workerIds.flatMap((w) => [q.processingKey(w), `${k.workerPrefix}${w}`])];
  await redis.del(...keys);
}

describe("JobQueue", () => {
  test("enqueue is idempotent and reserve moves the oldest job into the worker's processing list", async () => {
    const q = newQueue();
    await q.enqueue("job-a");
    await q.enqueue("job-b");
    await q.enqueue("job-a");
    expect(await q.depth()).toEqual({ pending: 2, processing: 0, delayed: 0 });

    expect(await q.reserve(blocking, "w1", 100)).toBe("job-a");
    await q.startLease("job-a", "w1", 10_000);
    expect(await redis.lrange(q.processingKey("w1"), 0, -1)).toEqual(["job-a"]);
    expect(await q.depth()).toEqual({ pending: 1, processing: 1, delayed: 0 });

    await q.ack("job-a", "w1");
    expect(await q.held(["job-a", "job-b"])).toEqual([false, true]);
    expect(await q.reserve(blocking, "w1", 100)).toBe("job-b");
    expect(await q.reserve(blocking, "w1", 100)).toBeNull();
    await cleanup(q, ["w1"]);
  });

  test("an expired lease is reaped back to pending and another worker reserves it", async () => {
    const q = newQueue();
    await q.enqueue("job-x");
    expect(await q.reserve(blocking, "dead", 100)).toBe("job-x");
    await q.startLease("job-x", "dead", 1);
    await Bun.sleep(10);
    expect(await q.reapExpiredLeases()).toEqual([{ jobId: "job-x", workerId: "dead" }]);
    expect(await redis.llen(q.processingKey("dead"))).toBe(0);
    expect(await q.reserve(blocking, "alive", 100)).toBe("job-x");
    await cleanup(q, ["dead", "alive"]);
  });

  test("a worker that stops beating loses its reserved jobs, even one without a lease yet", async () => {
    const q = newQueue();
    await q.heartbeat({ id: "w-dead", host: "h", pid: 1, startedAt: new Date().toISOString(), running: 1, concurrency: 2 }, 1);
    await q.enqueue("job-y");
    expect(await q.reserve(blocking, "w-dead", 100)).toBe("job-y");
    await Bun.sleep(10);
    expect(await q.liveWorkers()).toEqual([]);
    expect(await q.reapDeadWorkers(5)).toEqual([{ jobId: "job-y", workerId: "w-dead" }]);
    expect(await q.reapDeadWorkers(5)).toEqual([]);
    expect(await q.depth()).toEqual({ pending: 1, processing: 0, delayed: 0 });
    expect(await redis.zcard(q.keys.workers)).toBe(0);
    await cleanup(q, ["w-dead"]);
  });

  test("a silent worker whose heartbeat has not expired yet keeps its jobs", async () => {
    const q = newQueue();
    await q.heartbeat({ id: "w-slow", host: "h", pid: 1, startedAt: new Date().toISOString(), running: 1, concurrency: 1 }, 60_000);
    await q.enqueue("job-s");
    expect(await q.reserve(blocking, "w-slow", 100)).toBe("job-s");
    await Bun.sleep(10);
    expect(await q.reapDeadWorkers(5)).toEqual([]);
    expect(await redis.lrange(q.processingKey("w-slow"), 0, -1)).toEqual(["job-s"]);
    await cleanup(q, ["w-slow"]);
  });

  test("renewal refuses a job another worker holds and restores a lease Redis lost", async () => {
    const q = newQueue();
    await q.enqueue("job-r");
    await q.reserve(blocking, "w1", 100);
    await q.startLease("job-r", "w1", 10_000);
    expect(await q.renewLease("job-r", "w2", 10_000)).toBe(false);
    await redis.del(q.keys.leases, q.keys.owners, q.keys.members, q.processingKey("w1"));
    expect(await q.renewLease("job-r", "w1", 10_000)).toBe(true);
    expect(await q.held(["job-r"])).toEqual([true]);
    expect(await redis.lrange(q.processingKey("w1"), 0, -1)).toEqual(["job-r"]);
    expect(await q.depth()).toEqual({ pending: 0, processing: 1, delayed: 0 });
    await cleanup(q, ["w1"]);
  });

  test("retryLater parks a job until its delay passes; enqueue brings it forward", async () => {
    const q = newQueue();
    await q.enqueue("job-d");
    await q.reserve(blocking, "w1", 100);
    await q.retryLater("job-d", "w1", 60_000);
    expect(await q.depth()).toEqual({ pending: 0, processing: 0, delayed: 1 });
    expect(await q.promoteDelayed()).toBe(0);
    await q.enqueue("job-d");
    expect(await q.depth()).toEqual({ pending: 1, processing: 0, delayed: 0 });

    await q.reserve(blocking, "w1", 100);
    await q.retryLater("job-d", "w1", 1);
    await Bun.sleep(10);
    expect(await q.promoteDelayed()).toBe(1);
    expect(await q.reserve(blocking, "w1", 100)).toBe("job-d");
    await cleanup(q, ["w1"]);
  });

  test("release puts a job at the consuming end; removeWorker hands back leftovers", async () => {
    const q = newQueue();
    await q.enqueue("first");
    await q.enqueue("second");
    expect(await q.reserve(blocking, "w1", 100)).toBe("first");
    await q.release("first", "w1");
    expect(await q.reserve(blocking, "w1", 100)).toBe("first");
    expect(await q.reserve(blocking, "w1", 100)).toBe("second");
    expect(await q.removeWorker("w1")).toBe(2);
    expect(await q.depth()).toEqual({ pending: 2, processing: 0, delayed: 0 });
    await cleanup(q, ["w1"]);
  });

  test("liveWorkers reads heartbeats and notifyCancel reaches subscribers", async () => {
    const q = newQueue();
    const startedAt = new Date().toISOString();
    await q.heartbeat({ id: "w1", host: "lab", pid: 42, startedAt, running: 1, concurrency: 2 }, 60_000);
    const [w] = await q.liveWorkers();
    expect(w).toMatchObject({ id: "w1", host: "lab", pid: 42, startedAt, running: 1, concurrency: 2 });
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
    await q.enqueue("pending-job");
    await q.enqueue("leased-job");
    await q.enqueue("delayed-job");
    await q.enqueue("stale-job");
    // Oldest first: leased-job is reserved (after pending-job), stale-job dropped without forgetting.
    await redis.lrem(q.keys.pending, 1, "leased-job");
    await q.startLease("leased-job", "w1", 10_000);
    await redis.lrem(q.keys.pending, 1, "delayed-job");
    await redis.zadd(q.keys.delayed, Date.now() + 60_000, "delayed-job");
    await redis.lrem(q.keys.pending, 1, "stale-job");
    expect(await q.unlisted(["pending-job", "leased-job", "delayed-job", "stale-job", "lost-job"])).toEqual(["lost-job", "stale-job"]);
    await q.requeue("stale-job");
    expect(await q.unlisted(["stale-job"])).toEqual([]);
    await cleanup(q, ["w1"]);
  });

  test("scripts reload after SCRIPT FLUSH", async () => {
    const q = newQueue();
    await q.enqueue("job-f");
    await redis.script("FLUSH");
    await q.enqueue("job-g");
    expect((await q.depth()).pending).toBe(2);
    await cleanup(q, []);
  });
});
