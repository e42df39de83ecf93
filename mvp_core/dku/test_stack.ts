/**
 * Test helper: the whole Ketter stack as real processes — a fresh migrated database, a Redis of its
 * own (append-only, noeviction, so a healthy stack has no warnings), the API and a worker started
 * as `bun mvp_core/app/main.ts` / `bun mvp_core/worker/main.ts` — and the DKU run as a child, the
 * way an operator runs it. Each piece can be stopped on its own to break the stack on purpose.
 */
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import Redis from "ioredis";
import { migrateUp } from "../db/migrate.ts";
import { JobQueue } from "../queue/queue.ts";
import { freePort, waitFor } from "../testing/ports.ts";
import { createEmptyDatabase, testRedisPrefix } from "../testing/services.ts";
import { startRedisServer, type RedisServer } from "../testing/redis_server.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** A child process and the tail of its output (for failure messages). */
interface Child {
  proc: ReturnType<typeof Bun.spawn>;
  output: string[];
}

/** A running stack; `env` is what every process (and the DKU) gets. */
export interface TestStack {
  env: Record<string, string>;
  redis: RedisServer;
  /** Output of the API and worker, for assertions' messages. */
  logs(): string;
  stopApi(): Promise<void>;
  stopWorker(): Promise<void>;
  stop(): Promise<void>;
}

function spawn(entry: string, env: Record<string, string>): Child {
  const proc = Bun.spawn(["bun", entry], { cwd: ROOT, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env }, stdout: "pipe", stderr: "pipe" });
  const output: string[] = [];
  for (const stream of [proc.stdout, proc.stderr]) {
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream as ReadableStream<Uint8Array>) {
        output.push(decoder.decode(chunk));
        if (output.length > 200) output.shift();
      }
    })();
  }
  return { proc, output };
}

async function stopChild(child: Child | null): Promise<void> {
  if (!child || child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  child.proc.kill("SIGTERM");
  const exited = await Promise.race([child.proc.exited.then(() => true), Bun.sleep(10_000).then(() => false)]);
  if (!exited) {
    child.proc.kill("SIGKILL");
    await child.proc.exited;
  }
}

/** Starts Redis, a fresh database, the API and a worker; resolves once /health answers and a heartbeat is live. */
export async function startStack(): Promise<TestStack> {
  const redis = await startRedisServer(["--appendonly", "yes", "--maxmemory-policy", "noeviction"]);
  const databaseUrl = await createEmptyDatabase();
  await migrateUp(databaseUrl);
  const port = await freePort();
  const env: Record<string, string> = {
    NODE_ENV: "test",
    DATABASE_URL: databaseUrl,
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: testRedisPrefix(),
    API_HOST: "127.0.0.1",
    API_PORT: String(port),
    KETTER_API_URL: `http://127.0.0.1:${port}`,
    KETTER_SECRET_KEY: randomBytes(32).toString("hex"),
    LOG_LEVEL: "warn",
    WORKER_RECONCILE_MS: "1000",
    // Stopping a worker whose Redis is gone must not wait out the default 30 s grace.
    WORKER_SHUTDOWN_GRACE_MS: "1000",
    KETTER_API_TOKEN: `dku-test-token-${randomBytes(8).toString("hex")}`,
  };
  let api: Child | null = null;
  let worker: Child | null = null;
  const logs = () => [`--- api ---`, ...(api?.output ?? []), `--- worker ---`, ...(worker?.output ?? [])].join("");
  const stop = async () => {
    await Promise.all([stopChild(api), stopChild(worker)]);
    await redis.stop();
  };
  try {
    api = spawn("mvp_core/app/main.ts", env);
    worker = spawn("mvp_core/worker/main.ts", env);
    await waitFor(async () => (await fetch(`${env.KETTER_API_URL}/health`)).ok, { what: "the API's /health", timeoutMs: 30_000 });
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      const queue = new JobQueue({ redis: client, prefix: env.REDIS_KEY_PREFIX! });
      await waitFor(async () => (await queue.liveWorkers()).length > 0, { what: "a worker heartbeat", timeoutMs: 30_000 });
    } finally {
      client.disconnect();
    }
  } catch (err) {
    const out = logs();
    await stop();
    throw new Error(`${(err as Error).message}\n${out}`);
  }
  return { env, redis, logs, stopApi: () => stopChild(api), stopWorker: () => stopChild(worker), stop };
}

/** What one DKU run printed and returned. */
export interface DkuRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Starts `bun mvp_core/dku/main.ts ...args` with `env`, as an operator would; `done` resolves when it exits. */
export function spawnDku(env: Record<string, string>, args: readonly string[]): { proc: ReturnType<typeof Bun.spawn>; done: Promise<DkuRun> } {
  const proc = Bun.spawn(["bun", "mvp_core/dku/main.ts", ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env }, stdout: "pipe", stderr: "pipe" });
  const done = Promise.all([proc.exited, new Response(proc.stdout as ReadableStream).text(), new Response(proc.stderr as ReadableStream).text()]).then(([code, stdout, stderr]) => ({ code, stdout, stderr }));
  return { proc, done };
}

/** Runs the DKU to the end. */
export function runDkuProcess(env: Record<string, string>, args: readonly string[]): Promise<DkuRun> {
  return spawnDku(env, args).done;
}
