import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Endpoint } from "../transfer_engine/index.ts";
import { TransferError } from "../transfer_engine/index.ts";
import { withOverrides } from "../transfer_engine/endpoints/testing.ts";
import { waitFor } from "../testing/ports.ts";
import { startRedisServer } from "../testing/redis_server.ts";
import { Scenario, sameBytes } from "./test_support.ts";

// Waiting for real processes and leases; each test bounds its own waits well below this.
const T = 60_000;

let scenario: Scenario | undefined;
afterEach(async () => {
  await scenario?.clean();
  scenario = undefined;
});

async function setup(name: string): Promise<Scenario> {
  scenario = await new Scenario(name).setup();
  return scenario;
}

/** Entries the engine stages next to a target (`.ketter-<id>.*`) left in `dir`. */
function stagingLeft(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith(".ketter-")) : [];
}

describe("worker: job lifecycle local → local", () => {
  test("a copy job reaches DONE with identical bytes, its events in order, and Redis forgets it", async () => {
    const s = await setup("copy");
    await s.writeSource("shoot_01/a.mov", 3 * 1024 * 1024 + 17);
    await s.writeSource("shoot_01/sub/b.wav", 70_000);
    await mkdir(s.path("dst/incoming"));
    const worker = await s.startWorker();
    const job = await s.job("shoot_01", "incoming/shoot_01");

    const done = await s.waitForStatus(job.id, "DONE");
    expect(await sameBytes(s.path("src/shoot_01/a.mov"), s.path("dst/incoming/shoot_01/a.mov"))).toBe(true);
    expect(await sameBytes(s.path("src/shoot_01/sub/b.wav"), s.path("dst/incoming/shoot_01/sub/b.wav"))).toBe(true);
    expect(done).toMatchObject({ attempts: 1, files_done: 2, files_total: 2, bytes_done: 3 * 1024 * 1024 + 17 + 70_000, worker_id: worker.id, error_code: null });
    expect(done.finished_at).not.toBeNull();
    const kinds = await s.kinds(job.id);
    expect(kinds.slice(0, 4)).toEqual(["created", "queued", "started", "strategy_chosen"]);
    expect(kinds.slice(-3)).toEqual(["verified", "committed", "done"]);
    expect(kinds.filter((k) => k === "done")).toHaveLength(1);
    expect(existsSync(s.path("src/shoot_01/a.mov"))).toBe(true);
    expect(stagingLeft(s.path("dst/incoming"))).toEqual([]);
    expect(await s.queue.depth()).toEqual({ pending: 0, processing: 0, delayed: 0 });
    expect(await s.queue.held([job.id])).toEqual([false]);
    expect((await s.queue.liveWorkers()).map((w) => w.id)).toContain(worker.id);
  }, T);

  test("a move removes the source only after the copy is verified and committed; a failed move keeps it", async () => {
    const s = await setup("move");
    const data = await s.writeSource("clip.mxf", 2 * 1024 * 1024);
    // The direct strategy copies and deletes (as across machines) instead of renaming within one
    // local file system; the rate limit (an engine option) paces the copy.
    await s.startWorker({ maxBytesPerSec: 1024 ** 3 });
    const job = await s.job("clip.mxf", "clip.mxf", { type: "move", options: { strategy: "direct" } });
    await s.waitForStatus(job.id, "DONE");
    expect(Buffer.from(await Bun.file(s.path("dst/clip.mxf")).bytes()).equals(Buffer.from(data))).toBe(true);
    expect(existsSync(s.path("src/clip.mxf"))).toBe(false);
    const kinds = (await s.kinds(job.id)).filter((k) => ["verified", "committed", "source_removed", "done"].includes(k));
    expect(kinds).toEqual(["verified", "committed", "source_removed", "done"]);

    // The target exists now: a second move must fail and leave its source alone.
    await s.writeSource("clip.mxf", 1000);
    const again = await s.job("clip.mxf", "clip.mxf", { type: "move" });
    const failed = await s.waitForStatus(again.id, "FAILED");
    expect(failed).toMatchObject({ error_code: "TARGET_EXISTS", attempts: 1 });
    expect(existsSync(s.path("src/clip.mxf"))).toBe(true);
    expect(await s.kinds(again.id)).not.toContain("source_removed");
  }, T);

  test("a local move within one file system is a rename and reaches DONE", async () => {
    const s = await setup("move-rename");
    await s.writeSource("folder/a.bin", 50_000);
    await s.startWorker();
    const job = await s.job("folder", "folder", { type: "move" });
    const done = await s.waitForStatus(job.id, "DONE");
    expect(done.strategy).toBe("rename");
    expect(existsSync(s.path("src/folder"))).toBe(false);
    expect((await Bun.file(s.path("dst/folder/a.bin")).bytes()).length).toBe(50_000);
  }, T);

  test("a job delivered several times, to two workers, runs once", async () => {
    const s = await setup("duplicate");
    await s.writeSource("reel.mov", 1024 * 1024);
    const job = await s.job("reel.mov", "reel.mov");
    // Extra raw copies in pending, as a reaper racing a slow worker or a replayed enqueue would leave.
    await s.redis.lpush(s.queue.pendingKey(s.site), job.id, job.id, job.id);
    await Promise.all([s.startWorker({ concurrency: 2 }), s.startWorker({ concurrency: 2 })]);

    await s.waitForStatus(job.id, "DONE");
    // The extra copies drain as each worker finds the job already DONE.
    await waitFor(async () => { const d = await s.queue.depth(); return d.pending + d.processing === 0; }, { what: "the duplicate deliveries to drain", timeoutMs: 45_000 });
    const kinds = await s.kinds(job.id);
    expect(kinds.filter((k) => k === "started")).toHaveLength(1);
    expect(kinds.filter((k) => k === "done")).toHaveLength(1);
    expect((await s.row(job.id)).attempts).toBe(1);
    expect(await s.queue.depth()).toEqual({ pending: 0, processing: 0, delayed: 0 });
  }, T);

  test("jobs queued when Redis is flushed are restored by the reconciler and complete", async () => {
    const s = await setup("flush");
    await s.writeSource("a.mov", 100_000);
    await s.writeSource("b.mov", 100_000);
    await s.writeSource("c.mov", 100_000);
    const a = await s.job("a.mov", "a.mov");
    const b = await s.job("b.mov", "b.mov");
    expect((await s.queue.depth()).pending).toBe(2);
    // The test Redis is this run's own server and bun runs test files one at a time.
    await s.redis.flushdb();
    expect(await s.queue.depth()).toEqual({ pending: 0, processing: 0, delayed: 0 });

    await s.startWorker();
    await s.waitForStatus(a.id, "DONE");
    await s.waitForStatus(b.id, "DONE");
    // An enqueue that never happened (Redis down when the API committed): the periodic pass finds it.
    const c = await s.job("c.mov", "c.mov", { enqueue: false });
    await s.waitForStatus(c.id, "DONE");
    expect(s.logLines.some((l) => l.includes("reconciler re-enqueued"))).toBe(true);
    for (const id of [a.id, b.id, c.id]) expect((await s.kinds(id)).filter((k) => k === "done")).toHaveLength(1);
  }, T);
});

describe("worker: Redis restarts and several workers", () => {
  test("after a Redis restart the worker reconnects and jobs committed during the outage complete", async () => {
    // A Redis of this test's own, so killing it disturbs no other test.
    const server = await startRedisServer();
    try {
      const s = (scenario = new Scenario("redis-restart", { redisUrl: server.url }));
      await s.setup();
      await s.writeSource("a.mov", 50_000);
      await s.writeSource("b.mov", 50_000);
      await s.writeSource("c.mov", 50_000);
      await s.startWorker();
      const a = await s.job("a.mov", "a.mov");
      await s.waitForStatus(a.id, "DONE");

      await server.kill();
      // The API cannot enqueue now; the job is committed in Postgres all the same.
      const b = await s.job("b.mov", "b.mov", { enqueue: false });
      await Bun.sleep(300);
      await server.restart();

      await s.waitForStatus(b.id, "DONE");
      // And a normal enqueue reaches the worker's reconnected blocking connection.
      const c = await s.job("c.mov", "c.mov");
      await s.waitForStatus(c.id, "DONE");
      expect((await s.kinds(b.id)).filter((k) => k === "done")).toHaveLength(1);
      await s.clean();
      scenario = undefined;
    } finally {
      await server.stop();
    }
  }, T);

  test("two workers share a batch of jobs and run each exactly once", async () => {
    const s = await setup("two-workers");
    const jobs = [];
    for (let i = 0; i < 8; i++) {
      await s.writeSource(`clip${i}.mov`, 64_000 + i);
      jobs.push(await s.job(`clip${i}.mov`, `clip${i}.mov`));
    }
    const [w1, w2] = await Promise.all([s.startWorker({ concurrency: 2 }), s.startWorker({ concurrency: 3 })]);
    const ran = new Set<string>();
    for (const job of jobs) {
      const done = await s.waitForStatus(job.id, "DONE");
      ran.add(done.worker_id!);
      expect((await s.kinds(job.id)).filter((k) => k === "started" || k === "done")).toEqual(["started", "done"]);
      expect(await sameBytes(s.path(`src/${job.source_path}`), s.path(`dst/${job.target_path}`))).toBe(true);
    }
    expect([...ran].every((id) => id === w1.id || id === w2.id)).toBe(true);
    expect((await s.queue.liveWorkers()).map((w) => w.id).sort()).toEqual([w1.id, w2.id].sort());
  }, T);
});

describe("worker: cancel and retry", () => {
  test("cancelling a running job stops the engine and removes its staging", async () => {
    const s = await setup("cancel");
    await s.writeSource("big.mov", 48 * 1024 * 1024);
    // 1 MiB/s: the copy would take 48 s, so the job is surely still running when the cancel lands,
    // however loaded the machine (load only makes it slower). The states prove it stopped early.
    await s.startWorker({ maxBytesPerSec: 1024 * 1024 });
    const job = await s.job("big.mov", "big.mov");
    await s.waitForJob(job.id, "bytes to flow", (r) => r.status === "RUNNING" && r.bytes_done > 0, 40_000);

    const { requestCancel } = await import("../jobs/repository.ts");
    const { notifyWorker } = await requestCancel(s.sql, job.id);
    expect(notifyWorker).toBe(true);
    await s.queue.notifyCancel(job.id);

    const cancelled = await s.waitForStatus(job.id, "CANCELLED", 40_000);
    expect(cancelled.finished_at).not.toBeNull();
    // Nothing was verified: the job shows no progress (it once showed 100 % with no file done).
    expect([cancelled.files_done, cancelled.bytes_done]).toEqual([0, 0]);
    expect((await s.kinds(job.id)).slice(-2)).toEqual(["cancel_requested", "cancelled"]);
    expect(existsSync(s.path("dst/big.mov"))).toBe(false);
    expect(stagingLeft(s.path("dst"))).toEqual([]);
    expect(existsSync(s.path("src/big.mov"))).toBe(true);
    expect(await s.queue.depth()).toEqual({ pending: 0, processing: 0, delayed: 0 });
  }, 2 * T);

  test("a transient fault is retried with backoff and the job completes; a fatal one fails at once", async () => {
    const s = await setup("retry");
    await s.writeSource("take.mov", 200_000);
    await s.writeSource("take2.mov", 200_000);
    let faults = 1;
    // The source's connection drops once mid-read, as an SSH link would (retryable CONNECTION_LOST).
    const flaky = (ep: Endpoint): Endpoint => withOverrides(ep, {
      openRead: (p, o) => {
        if (faults-- > 0) throw new TransferError("CONNECTION_LOST", "connection reset by peer (injected)");
        return ep.openRead(p, o);
      },
    });
    const { openPortalEndpoint } = await import("../portals/endpoints.ts");
    await s.startWorker({ retryBaseMs: 300 }, {
      openEndpoint: async (portal, signal) => {
        const ep = await openPortalEndpoint(portal, Buffer.alloc(32, 7), { signal });
        return portal.id === s.source.id ? flaky(ep) : ep;
      },
    });
    const job = await s.job("take.mov", "take.mov");
    const waiting = await s.waitForStatus(job.id, "RETRY_WAIT");
    expect(waiting).toMatchObject({ attempts: 1, error_code: "CONNECTION_LOST" });
    const scheduled = (await s.events(job.id)).find((e) => e.kind === "retry_scheduled")!;
    expect(scheduled.data).toMatchObject({ code: "CONNECTION_LOST", attempt: 1, maxAttempts: 3 });
    expect(scheduled.data.delayMs as number).toBeGreaterThanOrEqual(150);

    const done = await s.waitForStatus(job.id, "DONE");
    expect(done).toMatchObject({ attempts: 2, error_code: null });
    expect(await sameBytes(s.path("src/take.mov"), s.path("dst/take.mov"))).toBe(true);
    const kinds = await s.kinds(job.id);
    expect(kinds.filter((k) => k === "started")).toHaveLength(2);
    expect(kinds.indexOf("retry_scheduled")).toBeLessThan(kinds.lastIndexOf("started"));
    // The second start came after the backoff, not at once.
    const events = await s.events(job.id);
    const restarted = events.filter((e) => e.kind === "started")[1]!;
    expect(restarted.at.getTime() - scheduled.at.getTime()).toBeGreaterThanOrEqual((scheduled.data.delayMs as number) - 50);

    // A source that does not exist is not worth retrying.
    const missing = await s.job("no-such-folder", "x");
    const failed = await s.waitForStatus(missing.id, "FAILED");
    expect(failed).toMatchObject({ attempts: 1, error_code: "SOURCE_NOT_FOUND" });
    expect((await s.events(missing.id)).at(-1)).toMatchObject({ kind: "failed", level: "error" });
  }, T);

  test("a job failing on every attempt stops at max attempts", async () => {
    const s = await setup("exhausted");
    await s.writeSource("take.mov", 1000);
    const { openPortalEndpoint } = await import("../portals/endpoints.ts");
    await s.startWorker({ retryBaseMs: 50, retryMaxMs: 100 }, {
      openEndpoint: async (portal, signal) => {
        if (portal.id === s.target.id) throw new TransferError("CONNECTION_FAILED", "no route to host (injected)");
        return openPortalEndpoint(portal, Buffer.alloc(32, 7), { signal });
      },
    });
    const job = await s.job("take.mov", "take.mov", { maxAttempts: 2 });
    const failed = await s.waitForStatus(job.id, "FAILED");
    expect(failed).toMatchObject({ attempts: 2, error_code: "CONNECTION_FAILED" });
    expect((await s.kinds(job.id)).filter((k) => ["started", "retry_scheduled", "failed"].includes(k))).toEqual(["started", "retry_scheduled", "started", "failed"]);
  }, T);
});

describe("worker: process crashes and shutdown", () => {
  test("a worker killed with SIGKILL mid-job: the job is reclaimed and completed exactly once", async () => {
    const s = await setup("kill9");
    await s.writeSource("big.mov", 48 * 1024 * 1024);
    // 1 MiB/s in the doomed process: 48 s of copying, so it is surely mid-copy when killed, however
    // long a loaded machine takes to start it and to notice the first bytes.
    const doomed = await s.spawnWorker({ WORKER_MAX_BYTES_PER_SEC: String(1024 * 1024) });
    const job = await s.job("big.mov", "big.mov");
    const running = await s.waitForJob(job.id, "bytes to flow in the spawned worker", (r) => r.status === "RUNNING" && r.bytes_done > 0, 45_000, doomed.output);
    doomed.proc.kill("SIGKILL");
    await doomed.proc.exited;

    const survivor = await s.startWorker();
    const done = await s.waitForStatus(job.id, "DONE");
    expect(done.worker_id).toBe(survivor.id);
    expect(done.attempts).toBe(2);
    expect(await sameBytes(s.path("src/big.mov"), s.path("dst/big.mov"))).toBe(true);
    const events = await s.events(job.id);
    const kinds = events.map((e) => e.kind);
    expect(kinds.filter((k) => k === "done")).toHaveLength(1);
    expect(kinds.filter((k) => k === "reclaimed")).toHaveLength(1);
    expect(events.find((e) => e.kind === "reclaimed")!.data).toMatchObject({ previousWorker: running.worker_id });
    expect(kinds.indexOf("reclaimed")).toBeLessThan(kinds.lastIndexOf("started"));
    expect(stagingLeft(s.path("dst"))).toEqual([]);
    // The dead worker leaves the heartbeat list once its heartbeat expires.
    await waitFor(async () => !(await s.queue.liveWorkers()).some((w) => w.id === running.worker_id), { what: "the dead worker to leave the heartbeat list", timeoutMs: 30_000 });
  }, 2 * T);

  test("SIGTERM: the worker stops taking work and releases a running job after the grace period", async () => {
    const s = await setup("sigterm");
    await s.writeSource("big.mov", 48 * 1024 * 1024);
    // 48 s of copying at 1 MiB/s against a 300 ms grace: the job cannot finish first, whatever the
    // load. A long lease: this test is about the release, not about a starved renewal.
    const proc = await s.spawnWorker({ WORKER_MAX_BYTES_PER_SEC: String(1024 * 1024), WORKER_SHUTDOWN_GRACE_MS: "300", WORKER_LEASE_MS: "20000" });
    const job = await s.job("big.mov", "big.mov");
    await s.waitForJob(job.id, "bytes to flow in the spawned worker", (r) => r.status === "RUNNING" && r.bytes_done > 0, 45_000, proc.output);

    proc.proc.kill("SIGTERM");
    expect(await proc.proc.exited).toBe(143);
    const released = await s.row(job.id);
    expect(released).toMatchObject({ status: "QUEUED", attempts: 0, worker_id: null });
    expect((await s.kinds(job.id)).at(-1)).toBe("released");
    expect(await s.queue.depth()).toEqual({ pending: 1, processing: 0, delayed: 0 });
    expect(await s.queue.liveWorkers()).toEqual([]);
    expect(stagingLeft(s.path("dst"))).toEqual([]);
    const lines = proc.output().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { msg: string; jobId?: string });
    expect(lines.some((l) => l.msg.startsWith("job released") && l.jobId === job.id)).toBe(true);
    expect(lines.at(-1)?.msg).toBe("worker stopped");

    // Another worker picks it up from where it was handed back.
    await s.startWorker();
    const done = await s.waitForStatus(job.id, "DONE", 45_000);
    expect(done.attempts).toBe(1);
    expect(await sameBytes(s.path("src/big.mov"), s.path("dst/big.mov"))).toBe(true);
  }, 2 * T);
});

describe("worker: graceful shutdown", () => {
  test("SIGTERM lets a running job finish within the grace period and takes no new work", async () => {
    const s = await setup("sigterm-finish");
    await s.writeSource("clip.mov", 10 * 1024 * 1024);
    await s.writeSource("next.mov", 1000);
    // 10 s of copying at 1 MiB/s: long enough to be seen running under load, far inside the 90 s grace.
    const proc = await s.spawnWorker({ WORKER_MAX_BYTES_PER_SEC: String(1024 * 1024), WORKER_SHUTDOWN_GRACE_MS: "90000", WORKER_CONCURRENCY: "1", WORKER_LEASE_MS: "20000" });
    const job = await s.job("clip.mov", "clip.mov");
    await s.waitForJob(job.id, "bytes to flow in the spawned worker", (r) => r.status === "RUNNING" && r.bytes_done > 0, 45_000, proc.output);

    proc.proc.kill("SIGTERM");
    // Queued after the signal: the stopping worker must leave it for another.
    const next = await s.job("next.mov", "next.mov");
    expect(await proc.proc.exited).toBe(143);
    const done = await s.row(job.id);
    expect(done).toMatchObject({ status: "DONE", attempts: 1 });
    expect(await s.kinds(job.id)).not.toContain("released");
    expect(await sameBytes(s.path("src/clip.mov"), s.path("dst/clip.mov"))).toBe(true);
    expect((await s.row(next.id)).status).toBe("QUEUED");
    expect(await s.queue.depth()).toEqual({ pending: 1, processing: 0, delayed: 0 });
  }, 3 * T);
});

/** The endpoint's methods bound to it, so a spread copy can override one of them. */
