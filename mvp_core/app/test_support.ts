/** Test fixture for the API: real Postgres and Redis, its own key prefix, folders and rows, all cleaned up. */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import type { Sql } from "postgres";
import { createLogger, type Logger } from "../log/log.ts";
import { JobQueue } from "../queue/queue.ts";
import { connectRedis, type Redis } from "../queue/redis.ts";
import { waitFor } from "../testing/ports.ts";
import { testDatabaseUrl, testRedisPrefix, testRedisUrl, testSql } from "../testing/services.ts";
import { createApp, type App } from "./app.ts";
import type { AppDeps } from "./deps.ts";
import type { ErrorBody } from "./errors.ts";

type RawBody = string | Uint8Array | Blob;
/** A decoded answer: error bodies always fit; tests name the success type they expect. */
export type ApiJson = Record<string, unknown> & Partial<ErrorBody>;

/** A running API under test and what it was built from. */
export interface ApiFixture {
  app: App;
  deps: AppDeps;
  sql: Sql;
  redis: Redis;
  queue: JobQueue;
  prefix: string;
  /** Every log line the app wrote. */
  logs: string[];
  /** A fresh temporary folder (removed by close()). */
  tempDir(): Promise<string>;
  /** Sends a request through app.handle; `body` objects are sent as JSON. */
  call<T = ApiJson>(method: string, path: string, opts?: { body?: unknown; headers?: Record<string, string>; raw?: RawBody }): Promise<{ status: number; json: T & Partial<ErrorBody>; headers: Headers }>;
  /** Removes the rows, keys and folders this fixture created. */
  close(): Promise<void>;
}

/**
 * Builds an API on the shared test servers; `overrides` replace deps (e.g. a token, a broken queue,
 * a database of the test's own). Its site is the host name, as KETTER_SITE defaults to.
 */
export async function apiFixture(overrides: Partial<AppDeps> = {}): Promise<ApiFixture> {
  const sql = overrides.sql ?? (await testSql(8));
  const redis = connectRedis(await testRedisUrl(), { name: "ketter-api-test" });
  redis.on("error", () => undefined); // a test that stops Redis expects errors; assertions look at answers
  const prefix = testRedisPrefix();
  const queue = new JobQueue({ redis, prefix });
  const logs: string[] = [];
  const log: Logger = createLogger("api", "debug", {}, (line) => logs.push(line));
  const deps: AppDeps = {
    sql, queue, pingRedis: () => redis.ping(), secretKey: randomBytes(32), apiToken: undefined, jobMaxAttempts: 3, site: hostname(), log, version: "test",
    ...overrides,
  };
  const app = createApp(deps);
  const dirs: string[] = [];
  // Portals created through this fixture; close() removes them and every job that used them.
  const portalIds: string[] = [];
  return {
    app, deps, sql, redis, queue, prefix, logs,
    async tempDir() {
      const d = await mkdtemp(join(tmpdir(), "ketter-api-"));
      dirs.push(d);
      return d;
    },
    async call<T = ApiJson>(method: string, path: string, opts: { body?: unknown; headers?: Record<string, string>; raw?: RawBody } = {}) {
      const headers: Record<string, string> = { ...opts.headers };
      let body: RawBody | undefined = opts.raw;
      if (opts.body !== undefined) {
        body = JSON.stringify(opts.body);
        headers["content-type"] ??= "application/json";
      }
      const res = await app.handle(new Request(`http://localhost${path}`, { method, headers, ...(body === undefined ? {} : { body }) }));
      const text = await res.text();
      let json: unknown = null;
      if (text) json = res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text;
      if (method === "POST" && path === "/portals" && res.status === 201) portalIds.push((json as { id: string }).id);
      return { status: res.status, json: json as T & Partial<ErrorBody>, headers: res.headers };
    },
    async close() {
      const ids = [...portalIds, ...(await sql<{ id: string }[]>`select id from portals where root_path = any(${dirs})`).map((r) => r.id)];
      await sql`delete from jobs where source_portal_id = any(${ids}) or target_portal_id = any(${ids})`;
      await sql`delete from portals where id = any(${ids})`;
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
        if (keys.length) await redis.del(...keys);
        cursor = next;
      } while (cursor !== "0");
      redis.disconnect();
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    },
  };
}

/** A real worker process (`bun mvp_core/worker/main.ts`) serving an ApiFixture's jobs. */
export interface WorkerProcess {
  /** Everything it printed so far. */
  output(): string;
  /** SIGTERM, and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * Starts the worker process on the fixture's database, Redis and key prefix (`env` adds or
 * overrides variables) and waits until the API sees its heartbeat.
 */
export async function startWorkerProcess(f: ApiFixture, env: Record<string, string> = {}): Promise<WorkerProcess> {
  const chunks: string[] = [];
  const proc = Bun.spawn(["bun", "mvp_core/worker/main.ts"], {
    cwd: join(import.meta.dir, "../.."),
    env: {
      ...process.env,
      NODE_ENV: "test",
      DATABASE_URL: await testDatabaseUrl(),
      DATABASE_POOL_MAX: "4",
      REDIS_URL: await testRedisUrl(),
      REDIS_KEY_PREFIX: f.prefix,
      KETTER_SECRET_KEY: f.deps.secretKey.toString("hex"),
      LOG_LEVEL: "warn",
      WORKER_CONCURRENCY: "2",
      WORKER_RECONCILE_MS: "300",
      WORKER_SHUTDOWN_GRACE_MS: "2000",
      ...env,
    },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const drain = async (stream: ReadableStream<Uint8Array>): Promise<void> => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) chunks.push(decoder.decode(chunk));
  };
  void drain(proc.stdout);
  void drain(proc.stderr);
  const output = (): string => chunks.join("");
  await waitFor(async () => ((await f.call<{ workers: { live: number } }>("GET", "/health")).json.workers?.live ?? 0) >= 1, { what: `the worker to send a heartbeat (output: ${output()})`, timeoutMs: 30_000 });
  return {
    output,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}
