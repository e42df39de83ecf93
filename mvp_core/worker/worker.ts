/**
 * The worker process's engine room: reserves jobs from the queue (BLMOVE on dedicated connections,
 * with a timeout so shutdown is noticed) — from its site's list and from the any-site list — runs up
 * to `concurrency` of them, listens for cancels, publishes a heartbeat, and runs the reaper, the
 * retry promoter and the reconciler.
 */
import { hostname } from "node:os";
import type Redis from "ioredis";
import type { Sql } from "postgres";
import type { WorkerConfig } from "../config/config.ts";
import type { WorkerRef } from "../jobs/lifecycle.ts";
import type { Logger } from "../log/log.ts";
import { JobQueue } from "../queue/queue.ts";
import { connectRedis } from "../queue/redis.ts";
import { registerSite } from "../sites/repository.ts";
import type { EngineOptions } from "../transfer_engine/index.ts";
import type { OpenEndpoint } from "./endpoints.ts";
import { runAttributed } from "./escape_guard.ts";
import { JobRun, type JobRunDeps, type TransferFn } from "./job_run.ts";
import { promoteOnce, reapOnce, reconcileOnce } from "./maintenance.ts";
import { type Ticker, every } from "./ticker.ts";

/** The worker's part of the configuration (config.worker), plus test-only knobs with defaults. */
export interface WorkerSettings extends WorkerConfig {
  /** BLMOVE timeout: how long a reserve waits before the loop checks for shutdown again. */
  pollMs?: number;
  /** Minimum interval between progress writes per job. */
  progressWriteMs?: number;
}

/** What a Worker is built from; main.ts passes the real ones. */
export interface WorkerDeps {
  sql: Sql;
  /** Shared connection for non-blocking commands. */
  redis: Redis;
  /** For the worker's own blocking and subscriber connections. */
  redisUrl: string;
  prefix: string;
  /** The site this worker runs for (KETTER_SITE): it takes that site's jobs and any-site jobs. */
  site: string;
  log: Logger;
  settings: WorkerSettings;
  openEndpoint: OpenEndpoint;
  transfer: TransferFn;
  engineOptions?: Partial<EngineOptions>;
}

/** A worker: start() it, close() it (one shared promise; SIGTERM calls it). */
export class Worker {
  /** Unique per process start: host, pid and a random suffix. */
  readonly id: string;
  readonly site: string;
  readonly queue: JobQueue;
  private readonly log: Logger;
  private readonly startedAt = new Date().toISOString();
  private readonly runs = new Map<string, { run: JobRun; done: Promise<void> }>();
  private readonly slotWaiters: Array<() => void> = [];
  /** One BLMOVE connection per list this worker reads: its site's and the any-site list. */
  private blocking: Redis[] = [];
  private subscriber: Redis | undefined;
  private unsubscribe: (() => Promise<void>) | undefined;
  private tickers: Ticker[] = [];
  private heartbeat: Ticker | undefined;
  private loopDone: Promise<void> = Promise.resolve();
  private stopping = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly deps: WorkerDeps) {
    this.id = `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
    this.site = deps.site;
    this.queue = new JobQueue({ redis: deps.redis, prefix: deps.prefix });
    this.log = deps.log.child({ workerId: this.id, site: this.site });
  }

  /** Who this worker is, as job events record it. */
  get ref(): WorkerRef {
    return { id: this.id, site: this.site };
  }

  /** Number of jobs running now. */
  get running(): number {
    return this.runs.size;
  }

  /** Registers the heartbeat, subscribes to cancels, starts maintenance and the reserve loop. */
  async start(): Promise<void> {
    const { settings, sql, redisUrl } = this.deps;
    // The lists it reads: its site's, and (null) the any-site list.
    const lists: Array<string | null> = [this.site, null];
    this.blocking = lists.map((site) => connectRedis(redisUrl, { name: `ketter-worker-blocking-${site ?? "any"}`, blocking: true }));
    this.subscriber = connectRedis(redisUrl, { name: `ketter-worker-cancels` });
    for (const conn of [...this.blocking, this.subscriber]) conn.on("error", (err: Error) => this.log.warn("redis connection error", { err }));

    // Postgres learns the site (and, if it is the only one ever seen, hands it the portals from
    // before sites existed) before this worker takes any job.
    const adopted = await registerSite(sql, this.site);
    if (adopted.portals + adopted.jobs > 0) this.log.info("adopted portals and jobs registered before sites existed", { portals: adopted.portals, jobs: adopted.jobs });
    // Fails fast (a few retries) when Redis is unreachable, before anything waits on it.
    await this.beat();
    // SUBSCRIBE sent before ioredis's ready check (INFO) finished makes that check fail: wait for it.
    if (this.subscriber.status !== "ready") await new Promise((resolve) => this.subscriber!.once("ready", resolve));
    this.unsubscribe = await this.queue.subscribeCancels(this.subscriber, (jobId) => this.runs.get(jobId)?.run.stop("cancel"));

    // Reconcile once at start: jobs may have been waiting in Postgres while no worker ran.
    await reconcileOnce(sql, this.queue, this.ref, this.log);
    // close() was called while starting: it already ran its steps, so start nothing more.
    if (this.stopping) return;

    const beatMs = Math.max(100, Math.floor(settings.leaseMs / 3));
    this.heartbeat = every("heartbeat", beatMs, () => this.beat(), this.log);
    const reapMs = Math.max(100, Math.min(1000, Math.floor(settings.leaseMs / 2)));
    this.tickers.push(
      every("reaper", reapMs, async () => {
        await reapOnce(sql, this.queue, this.ref, this.log);
        await promoteOnce(this.queue);
      }, this.log),
      every("reconciler", settings.reconcileMs, async () => {
        const n = await reconcileOnce(sql, this.queue, this.ref, this.log);
        if (n > 0) this.log.info("reconciler restored jobs", { count: n });
      }, this.log),
      this.watchEventLoop(),
    );
    this.loopDone = Promise.all(lists.map((site, i) => this.loop(site, this.blocking[i]!))).then(() => undefined);
    this.log.info("worker started", { concurrency: settings.concurrency, leaseMs: settings.leaseMs, prefix: this.deps.prefix });
  }

  /**
   * Warns when something held the event loop long enough to endanger lease renewals (they run every
   * third of a lease): the engine is meant to yield, and this says when it did not.
   */
  private watchEventLoop(): Ticker {
    const everyMs = 250;
    let last = performance.now();
    return every("event loop watch", everyMs, async () => {
      const now = performance.now();
      const lagMs = now - last - everyMs;
      last = now;
      if (lagMs > this.deps.settings.leaseMs / 4) this.log.warn("event loop was blocked; lease renewals ran late", { lagMs: Math.round(lagMs) });
    }, this.log);
  }

  /**
   * Stops taking work, lets running jobs finish within the grace period, then stops the rest and
   * releases them back to the queue. Safe to call more than once: every caller gets the same promise.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const { settings } = this.deps;
    this.stopping = true;
    this.log.info("worker stopping", { running: this.runs.size, graceMs: settings.shutdownGraceMs });
    this.wakeSlotWaiters();
    // Ends the BLMOVEs in flight now; a job one moved at this instant stays in our processing list
    // and removeWorker below hands it back.
    for (const conn of this.blocking) conn.disconnect();
    await this.loopDone;
    await Promise.all(this.tickers.map((t) => t.stop()));

    const allDone = () => Promise.all([...this.runs.values()].map((r) => r.done));
    if (this.runs.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const graceOver = new Promise<"grace">((resolve) => (timer = setTimeout(() => resolve("grace"), settings.shutdownGraceMs)));
      const first = await Promise.race([allDone().then(() => "done" as const), graceOver]);
      clearTimeout(timer);
      if (first === "grace") {
        this.log.warn("grace period over; releasing running jobs", { running: this.runs.size });
        for (const { run } of this.runs.values()) run.stop("shutdown");
        await allDone();
      }
    }

    await this.heartbeat?.stop();
    await this.unsubscribe?.();
    this.subscriber?.disconnect();
    const handedBack = await this.queue.removeWorker(this.id);
    this.log.info("worker stopped", { handedBack });
  }

  private async beat(): Promise<void> {
    const { settings } = this.deps;
    await this.queue.heartbeat(
      { id: this.id, site: this.site, host: hostname(), pid: process.pid, startedAt: this.startedAt, running: this.runs.size, concurrency: settings.concurrency },
      settings.leaseMs,
    );
  }

  /**
   * Reserves from one list (`site`: this worker's, or null for the any-site list). Both loops wait
   * while every slot is busy; when both deliver for the last free slot, the later job goes straight
   * back to the front of its list for whoever is free next.
   */
  private async loop(site: string | null, blocking: Redis): Promise<void> {
    const { settings } = this.deps;
    const pollMs = settings.pollMs ?? 1000;
    while (!this.stopping) {
      if (this.runs.size >= settings.concurrency) {
        await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
        continue;
      }
      let jobId: string | null;
      try {
        jobId = await this.queue.reserve(blocking, this.id, site, pollMs);
      } catch (err) {
        if (this.stopping) break;
        this.log.warn("reserving a job failed; retrying", { err, list: site ?? "any site" });
        await Bun.sleep(1000);
        continue;
      }
      // A job reserved as shutdown began stays in our processing list; removeWorker hands it back.
      if (jobId === null || this.stopping) continue;
      if (this.runs.size >= settings.concurrency && !this.runs.has(jobId)) {
        await this.queue.release(jobId, this.id, site).catch((err: unknown) => this.log.warn("handing back a delivery with no free slot failed; the reaper returns it", { jobId, err }));
        continue;
      }
      this.launch(jobId);
    }
  }

  private launch(jobId: string): void {
    if (this.runs.has(jobId)) {
      // A second delivery of a job this worker is running: the running one acks it when done.
      this.queue.drop(jobId, this.id, false).catch((err: unknown) => this.log.warn("dropping a duplicate delivery failed", { jobId, err }));
      return;
    }
    const deps: JobRunDeps = {
      sql: this.deps.sql,
      queue: this.queue,
      worker: this.ref,
      log: this.log,
      settings: {
        leaseMs: this.deps.settings.leaseMs,
        retryBaseMs: this.deps.settings.retryBaseMs,
        retryMaxMs: this.deps.settings.retryMaxMs,
        maxBytesPerSec: this.deps.settings.maxBytesPerSec,
        progressWriteMs: this.deps.settings.progressWriteMs ?? 1000,
      },
      openEndpoint: this.deps.openEndpoint,
      transfer: this.deps.transfer,
      ...(this.deps.engineOptions ? { engineOptions: this.deps.engineOptions } : {}),
    };
    const run = new JobRun(jobId, deps);
    // Everything the job starts runs in its context, so an error escaping it is charged to it (escape_guard.ts).
    const done = runAttributed(run, () => run.run()).finally(() => {
      this.runs.delete(jobId);
      this.wakeSlotWaiters();
    });
    this.runs.set(jobId, { run, done });
  }

  private wakeSlotWaiters(): void {
    for (const wake of this.slotWaiters.splice(0)) wake();
  }
}
