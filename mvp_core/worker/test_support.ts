/**
 * Helpers for the worker's tests: portals on temporary folders, jobs through the API's repository,
 * in-process workers and real worker processes (`bun mvp_core/worker/main.ts`) on the test
 * Postgres and Redis, each with its own key prefix.
 */
import { afterEach } from "bun:test";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import path from "node:path";
import type Redis from "ioredis";
import type { Sql } from "postgres";
import { appendEvent } from "../jobs/events.ts";
import { createJob } from "../jobs/repository.ts";
import type { JobEventRow, JobOptions, JobRow, JobStatus } from "../jobs/types.ts";
import { connectDb } from "../db/client.ts";
import { createLogger, type Logger } from "../log/log.ts";
import { openPortalEndpoint } from "../portals/endpoints.ts";
import { createPortal, type PortalRow } from "../portals/repository.ts";
import { JobQueue } from "../queue/queue.ts";
import { connectRedis } from "../queue/redis.ts";
import { waitFor } from "../testing/ports.ts";
import type { TestSshd } from "../testing/sshd.ts";
import { testDatabaseUrl, testRedisPrefix, testRedisUrl, testSql, uniqueId } from "../testing/services.ts";
import { transfer } from "../transfer_engine/index.ts";
import type { OpenEndpoint } from "./endpoints.ts";
import { Worker, type WorkerDeps, type WorkerSettings } from "./worker.ts";

const SECRET = Buffer.alloc(32, 7);
let sharedSql: Promise<Sql> | undefined;

/** Short timings so a test sees leases expire and retries come due within seconds. */
export const FAST: WorkerSettings = {
  concurrency: 2,
  leaseMs: 1000,
  shutdownGraceMs: 500,
  retryBaseMs: 200,
  retryMaxMs: 1000,
  reconcileMs: 300,
  maxBytesPerSec: 0,
  pollMs: 200,
  progressWriteMs: 100,
};

/** Where a scenario's world lives; each defaults to the run's shared one. */
export interface ScenarioOptions {
  /** A Redis of the test's own (e.g. one it restarts). */
  redisUrl?: string;
  /** A database of the test's own (e.g. one whose `sites` it controls). */
  databaseUrl?: string;
  /**
   * The site of the scenario's portals and workers. Default: the host name, as every process's
   * KETTER_SITE defaults to, so tests sharing the run's database all see one site.
   */
  site?: string;
}

/** One test's world: its database rows, Redis prefix, folders and workers; clean() removes them. */
export class Scenario {
  readonly prefix = testRedisPrefix();
  readonly logLines: string[] = [];
  readonly log: Logger;
  queue!: JobQueue;
  sql!: Sql;
  redis!: Redis;
  dir!: string;
  source!: PortalRow;
  target!: PortalRow;
  private workers: Worker[] = [];
  private procs: Bun.Subprocess[] = [];
  private extraPortals: string[] = [];
  readonly site: string;

  constructor(
    readonly name: string,
    private readonly opts: ScenarioOptions = {},
  ) {
    this.site = opts.site ?? hostname();
    this.log = createLogger("worker-test", "debug", { test: name }, (line) => this.logLines.push(line));
  }

  private get redisUrl(): string | undefined {
    return this.opts.redisUrl;
  }

  /** Connects, creates `src/` and `dst/` folders and a local portal (at the scenario's site) on each. */
  async setup(): Promise<this> {
    this.sql = this.opts.databaseUrl ? connectDb(this.opts.databaseUrl, { max: 16, applicationName: "ketter-test" }) : await (sharedSql ??= testSql(16));
    this.redis = connectRedis(await this.redisURL(), { name: "worker-test" });
    this.redis.on("error", (err: Error) => this.log.warn("test redis connection error", { err }));
    this.queue = new JobQueue({ redis: this.redis, prefix: this.prefix });
    this.dir = await mkdtemp(path.join(tmpdir(), "ketter-worker-test-"));
    await mkdir(this.path("src"));
    await mkdir(this.path("dst"));
    this.source = await createPortal(this.sql, { name: `src-${uniqueId()}`, kind: "local", rootPath: this.path("src"), site: this.site }, SECRET);
    this.target = await createPortal(this.sql, { name: `dst-${uniqueId()}`, kind: "local", rootPath: this.path("dst"), site: this.site }, SECRET);
    return this;
  }

  /** A local portal on a new folder `rel` of this test's folder at `site`; deleted by clean(). */
  async localPortal(rel: string, site: string): Promise<PortalRow> {
    await mkdir(this.path(rel), { recursive: true });
    const portal = await createPortal(this.sql, { name: `${rel.replaceAll("/", "-")}-${uniqueId()}`, kind: "local", rootPath: this.path(rel), site }, SECRET);
    this.extraPortals.push(portal.id);
    return portal;
  }

  private async redisURL(): Promise<string> {
    return this.redisUrl ?? (await testRedisUrl());
  }

  /** Absolute path inside this test's folder. */
  path(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }

  /** Writes `bytes` pseudo-random bytes to src/`rel`. */
  async writeSource(rel: string, bytes: number): Promise<Uint8Array> {
    const data = new Uint8Array(bytes);
    for (let off = 0; off < bytes; off += 65_536) crypto.getRandomValues(data.subarray(off, Math.min(bytes, off + 65_536)));
    await mkdir(path.dirname(this.path("src", rel)), { recursive: true });
    await Bun.write(this.path("src", rel), data);
    return data;
  }

  /** Creates a QUEUED job through the API's repository (routed to its site); enqueues it unless told not to. */
  async job(
    sourcePath: string,
    targetPath: string,
    opts: { type?: "copy" | "move"; options?: JobOptions; maxAttempts?: number; enqueue?: boolean; source?: PortalRow; target?: PortalRow } = {},
  ): Promise<JobRow> {
    const { job } = await createJob(this.sql, {
      type: opts.type ?? "copy",
      sourcePortalId: (opts.source ?? this.source).id,
      sourcePath,
      targetPortalId: (opts.target ?? this.target).id,
      targetPath,
      options: opts.options ?? {},
      maxAttempts: opts.maxAttempts ?? 3,
    });
    if (opts.enqueue ?? true) await this.queue.enqueue(job.id, job.site);
    return job;
  }

  /** An sftp portal on a test sshd (key login, pinned host key); deleted by clean(). */
  async sftpPortal(sshd: TestSshd): Promise<PortalRow> {
    const portal = await createPortal(
      this.sql,
      {
        name: `sftp-${uniqueId()}`,
        kind: "sftp",
        rootPath: sshd.root,
        host: sshd.host,
        port: sshd.port,
        username: sshd.username,
        auth: { method: "key", privateKey: sshd.privateKey },
        hostKeyFingerprint: sshd.hostKeyFingerprint,
      },
      SECRET,
    );
    this.extraPortals.push(portal.id);
    return portal;
  }

  /** Starts an in-process worker on this scenario's prefix, for its site unless `deps.site` says another. */
  async startWorker(overrides: Partial<WorkerSettings> = {}, deps: Partial<Pick<WorkerDeps, "openEndpoint" | "transfer" | "engineOptions" | "site">> = {}): Promise<Worker> {
    const w = new Worker({
      sql: this.sql,
      redis: this.redis,
      redisUrl: await this.redisURL(),
      prefix: this.prefix,
      site: deps.site ?? this.site,
      log: this.log,
      settings: { ...FAST, ...overrides },
      openEndpoint: deps.openEndpoint ?? openTestEndpoint,
      transfer: deps.transfer ?? transfer,
      ...(deps.engineOptions ? { engineOptions: deps.engineOptions } : {}),
    });
    this.workers.push(w);
    await w.start();
    return w;
  }

  /**
   * Spawns the real worker process on this scenario's database, Redis, prefix and site (`env`
   * overrides, e.g. KETTER_SITE; `entry`: e.g. the fault-injection entry).
   */
  async spawnWorker(
    env: Record<string, string> = {},
    entry = "mvp_core/worker/main.ts",
  ): Promise<{ proc: Bun.Subprocess<"ignore", "pipe", "pipe">; output: () => string }> {
    const chunks: string[] = [];
    const proc = Bun.spawn(["bun", entry], {
      cwd: path.resolve(import.meta.dir, "../.."),
      env: {
        ...process.env,
        NODE_ENV: "test",
        DATABASE_URL: this.opts.databaseUrl ?? (await testDatabaseUrl()),
        DATABASE_POOL_MAX: "4",
        REDIS_URL: await this.redisURL(),
        REDIS_KEY_PREFIX: this.prefix,
        KETTER_SITE: this.site,
        LOG_LEVEL: "debug",
        KETTER_SECRET_KEY: SECRET.toString("hex"),
        WORKER_CONCURRENCY: "2",
        WORKER_LEASE_MS: String(FAST.leaseMs),
        WORKER_SHUTDOWN_GRACE_MS: String(FAST.shutdownGraceMs),
        WORKER_RETRY_BASE_MS: String(FAST.retryBaseMs),
        WORKER_RETRY_MAX_MS: String(FAST.retryMaxMs),
        WORKER_RECONCILE_MS: String(FAST.reconcileMs),
        ...env,
      },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    this.procs.push(proc);
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) chunks.push(decoder.decode(chunk, { stream: true }));
    };
    void collect(proc.stdout);
    void collect(proc.stderr);
    return { proc, output: () => chunks.join("") };
  }

  /** The job row now. */
  async row(jobId: string): Promise<JobRow> {
    const [row] = await this.sql<JobRow[]>`select * from jobs where id = ${jobId}`;
    if (!row) throw new Error(`job ${jobId} not found`);
    return row;
  }

  /** The job's events, oldest first. */
  async events(jobId: string): Promise<JobEventRow[]> {
    return this.sql<JobEventRow[]>`select * from job_events where job_id = ${jobId} order by id`;
  }

  /** Kinds of the job's events, oldest first. */
  async kinds(jobId: string): Promise<string[]> {
    return (await this.events(jobId)).map((e) => e.kind);
  }

  /** Waits until the job satisfies `check`; the error names the last state and the recent logs. */
  async waitForJob(jobId: string, what: string, check: (row: JobRow) => boolean, timeoutMs = 20_000, extraLog: () => string = () => ""): Promise<JobRow> {
    let last: JobRow | undefined;
    try {
      await waitFor(async () => check((last = await this.row(jobId))), { what, timeoutMs, intervalMs: 25 });
    } catch (err) {
      const recent = [...this.logLines.slice(-30), extraLog().slice(-4000)].join("\n");
      throw new Error(`${(err as Error).message}; last status ${last?.status} (${last?.error_code ?? "-"}: ${last?.error_message ?? "-"}), events ${(await this.kinds(jobId)).join(",")}\n${recent}`);
    }
    return last!;
  }

  /** Waits for `status`. */
  waitForStatus(jobId: string, status: JobStatus, timeoutMs = 20_000, extraLog?: () => string): Promise<JobRow> {
    return this.waitForJob(jobId, `job ${jobId} to be ${status}`, (r) => r.status === status, timeoutMs, extraLog);
  }

  /** Records a note in the job's log, e.g. to mark where a test intervened. */
  async note(jobId: string, message: string): Promise<void> {
    await appendEvent(this.sql, jobId, "progress", message, { level: "debug" });
  }

  /** Stops workers and processes, deletes the prefix's keys, the folder and the portals' jobs. */
  async clean(): Promise<void> {
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    await Promise.all(this.procs.map((p) => p.exited));
    await Promise.all(this.workers.map((w) => w.close()));
    const k = this.queue.keys;
    const workerIds = await this.redis.zrange(k.workers, 0, -1);
    const routes = await this.redis.smembers(k.sites);
    await this.redis.del(
      k.routes, k.sites, k.leases, k.owners, k.delayed, k.members, k.workers,
      ...routes.map((r) => `${k.pendingPrefix}${r}`),
      ...workerIds.flatMap((w) => [this.queue.processingKey(w), `${k.workerPrefix}${w}`]),
    );
    const portals = [this.source.id, this.target.id, ...this.extraPortals];
    await this.sql`delete from jobs where source_portal_id in ${this.sql(portals)} or target_portal_id in ${this.sql(portals)}`;
    await this.sql`delete from portals where id in ${this.sql(portals)}`;
    this.redis.disconnect();
    if (this.opts.databaseUrl) await this.sql.end({ timeout: 1 });
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * For a test file whose tests each use one Scenario: returns `setup(name)`, which builds it, and
 * registers the cleanup of the current one after each test.
 */
export function scenarioPerTest(): (name: string) => Promise<Scenario> {
  let current: Scenario | undefined;
  afterEach(async () => {
    await current?.clean();
    current = undefined;
  });
  return async (name) => (current = await new Scenario(name).setup());
}

/** Opens a portal's endpoint with the test key, as the worker does: what a test's own openEndpoint wraps. */
export const openTestEndpoint: OpenEndpoint = (portal, signal) => openPortalEndpoint(portal, SECRET, { signal });

/** True when both files hold the same bytes. */
export async function sameBytes(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([Bun.file(a).bytes(), Bun.file(b).bytes()]);
  return Buffer.from(x).equals(Buffer.from(y));
}
