/** Worker check: live heartbeats in Redis, queue depth, and how long the oldest waiting job has waited. */
import { connectDb } from "../db/client.ts";
import { JobQueue, type QueueDepth, type WorkerInfo } from "../queue/queue.ts";
import { CheckFailure, errorMessage, type CheckOutcome } from "./check.ts";
import { closeRedis, connectRedisOnce, describeRedisUrl } from "./redis.ts";

/** A job waiting longer than this while workers are live suggests they are stuck or overloaded. */
export const WAIT_WARN_MS = 10 * 60_000;

/** The oldest job waiting for a worker (status QUEUED), or null when none waits. */
export interface OldestWaiting {
  jobId: string;
  ageMs: number;
}

/** Reads the oldest QUEUED job from Postgres, the source of truth for job state. */
export async function oldestWaitingJob(databaseUrl: string): Promise<OldestWaiting | null> {
  const sql = connectDb(databaseUrl, { max: 1, applicationName: "ketter-dku" });
  try {
    // A retried job waits from the moment its backoff ended, not from its creation.
    const [row] = await sql<{ id: string; age_ms: number }[]>`
      select id, (extract(epoch from now() - greatest(created_at, coalesce(next_attempt_at, created_at))) * 1000)::float8 as age_ms
      from jobs where status = 'QUEUED'
      order by greatest(created_at, coalesce(next_attempt_at, created_at)) limit 1`;
    return row ? { jobId: row.id, ageMs: Math.max(0, Math.round(row.age_ms)) } : null;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** Formats a duration in ms as "42 s", "3.5 min" or "2.1 h". */
export function formatAge(ms: number): string {
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** The facts the verdict is based on; `oldest` is an error message when Postgres could not say. */
export interface WorkerFacts {
  workers: WorkerInfo[];
  depth: QueueDepth;
  oldest: OldestWaiting | null | { error: string };
}

/** fail without a live worker; warn when a job has waited longer than WAIT_WARN_MS. */
export function judgeWorkers(f: WorkerFacts): CheckOutcome {
  const oldestText =
    f.oldest === null ? "none waiting" : "error" in f.oldest ? `oldest waiting unknown (${f.oldest.error})` : `oldest waiting ${formatAge(f.oldest.ageMs)}`;
  const value = `${f.workers.length} live, depth ${f.depth.pending} pending / ${f.depth.processing} processing / ${f.depth.delayed} delayed, ${oldestText}`;
  const details = { live: f.workers.length, workers: f.workers, depth: f.depth, oldestWaiting: f.oldest };
  if (f.workers.length === 0) {
    return { status: "fail", value, hint: "no worker heartbeat: start one (bun run worker, or mvp_core/infra/dev_up.sh) with the same REDIS_URL and REDIS_KEY_PREFIX", details };
  }
  if (f.oldest && !("error" in f.oldest) && f.oldest.ageMs > WAIT_WARN_MS) {
    return { status: "warn", value, hint: `job ${f.oldest.jobId} waits for longer than ${formatAge(WAIT_WARN_MS)}: check the worker logs, raise WORKER_CONCURRENCY or start more workers`, details };
  }
  return { status: "ok", value, details };
}

/** Reads heartbeats and depth through the queue module, and the oldest waiting job from Postgres. */
export async function checkWorkers(redisUrl: string, prefix: string, databaseUrl: string): Promise<CheckOutcome> {
  const redis = connectRedisOnce(redisUrl);
  let lastError: unknown;
  redis.on("error", (err: unknown) => (lastError = err));
  try {
    const queue = new JobQueue({ redis, prefix });
    let workers: WorkerInfo[];
    let depth: QueueDepth;
    try {
      await redis.connect();
      [workers, depth] = await Promise.all([queue.liveWorkers(), queue.depth()]);
    } catch (err) {
      throw new CheckFailure(
        `cannot read worker heartbeats from ${describeRedisUrl(redisUrl)}: ${errorMessage(lastError ?? err)}`,
        "heartbeats live in Redis: fix the redis check first",
      );
    }
    const oldest = await oldestWaitingJob(databaseUrl).catch((err: unknown) => ({ error: errorMessage(err) }));
    return judgeWorkers({ workers, depth, oldest });
  } finally {
    closeRedis(redis);
  }
}
