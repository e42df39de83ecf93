/**
 * Worker check: live heartbeats in Redis per site, queue depths per site, and how long the oldest
 * waiting job has waited. A site whose jobs wait while none of its workers is live is what an
 * operator must hear about: those jobs run only on that site's machine.
 */
import { connectDb } from "../db/client.ts";
import { JobQueue, type QueueDepth, type SiteDepth, type WorkerInfo } from "../queue/queue.ts";
import { CheckFailure, errorMessage, type CheckOutcome } from "./check.ts";
import { closeRedis, connectRedisOnce, describeRedisUrl } from "./redis.ts";

/** A job waiting longer than this while workers are live suggests they are stuck or overloaded. */
export const WAIT_WARN_MS = 10 * 60_000;

/** The oldest job waiting for a worker (status QUEUED), or null when none waits; `site` null: any site. */
export interface OldestWaiting {
  jobId: string;
  ageMs: number;
  site: string | null;
}

/** Reads the oldest QUEUED job from Postgres, the source of truth for job state. */
export async function oldestWaitingJob(databaseUrl: string): Promise<OldestWaiting | null> {
  const sql = connectDb(databaseUrl, { max: 1, applicationName: "ketter-dku" });
  try {
    // A retried job waits from the moment its backoff ended, not from its creation.
    const [row] = await sql<{ id: string; age_ms: number; site: string | null }[]>`
      select id, site, (extract(epoch from now() - greatest(created_at, coalesce(next_attempt_at, created_at))) * 1000)::float8 as age_ms
      from jobs where status = 'QUEUED'
      order by greatest(created_at, coalesce(next_attempt_at, created_at)) limit 1`;
    return row ? { jobId: row.id, ageMs: Math.max(0, Math.round(row.age_ms)), site: row.site } : null;
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
  /** Queue sizes per site (site null: the any-site queue). */
  sites: SiteDepth[];
  /** This machine's site (KETTER_SITE): the smoke transfer needs a live worker of it. */
  ownSite: string;
  oldest: OldestWaiting | null | { error: string };
}

/** One site's line in the report: its live workers and what waits for it. */
interface SiteLine {
  site: string;
  live: number;
  pending: number;
  processing: number;
  delayed: number;
}

function siteLines(f: WorkerFacts): SiteLine[] {
  const lines = new Map<string, SiteLine>();
  const line = (site: string) => {
    let l = lines.get(site);
    if (!l) lines.set(site, (l = { site, live: 0, pending: 0, processing: 0, delayed: 0 }));
    return l;
  };
  for (const w of f.workers) line(w.site).live++;
  for (const d of f.sites) if (d.site !== null) Object.assign(line(d.site), { pending: d.pending, processing: d.processing, delayed: d.delayed });
  return [...lines.values()].sort((a, b) => a.site.localeCompare(b.site));
}

/**
 * fail without a live worker; warn when a site's jobs wait with no live worker of that site, or a
 * job has waited longer than WAIT_WARN_MS.
 */
export function judgeWorkers(f: WorkerFacts): CheckOutcome {
  const oldestText =
    f.oldest === null ? "none waiting" : "error" in f.oldest ? `oldest waiting unknown (${f.oldest.error})` : `oldest waiting ${formatAge(f.oldest.ageMs)}`;
  const lines = siteLines(f);
  const perSite = lines.length > 0 ? ` (${lines.map((l) => `${l.site}: ${l.live} live, ${l.pending} pending`).join("; ")})` : "";
  const value = `${f.workers.length} live${perSite}, depth ${f.depth.pending} pending / ${f.depth.processing} processing / ${f.depth.delayed} delayed, ${oldestText}`;
  const ownSiteLive = lines.find((l) => l.site === f.ownSite)?.live ?? 0;
  const details = { live: f.workers.length, workers: f.workers, depth: f.depth, sites: lines, anySite: f.sites.find((d) => d.site === null) ?? null, ownSite: f.ownSite, ownSiteLive, oldestWaiting: f.oldest };
  if (f.workers.length === 0) {
    return { status: "fail", value, hint: `no worker heartbeat: start one (bun run worker, or mvp_core/infra/dev_up.sh) with the same REDIS_URL and REDIS_KEY_PREFIX, and KETTER_SITE=${f.ownSite} on this machine`, details };
  }
  const stranded = lines.filter((l) => l.live === 0 && l.pending + l.delayed > 0);
  if (stranded.length > 0) {
    const list = stranded.map((l) => `${l.site} (${l.pending + l.delayed} waiting)`).join(", ");
    return { status: "warn", value, hint: `jobs wait for site(s) with no live worker: ${list}; start a worker on each of those machines with its KETTER_SITE (they run nowhere else)`, details };
  }
  if (f.oldest && !("error" in f.oldest) && f.oldest.ageMs > WAIT_WARN_MS) {
    return { status: "warn", value, hint: `job ${f.oldest.jobId} waits for longer than ${formatAge(WAIT_WARN_MS)}: check the worker logs${f.oldest.site ? ` of site ${f.oldest.site}` : ""}, raise WORKER_CONCURRENCY or start more workers`, details };
  }
  return { status: "ok", value, details };
}

/** Reads heartbeats and depths through the queue module, and the oldest waiting job from Postgres. */
export async function checkWorkers(redisUrl: string, prefix: string, databaseUrl: string, ownSite: string): Promise<CheckOutcome> {
  const redis = connectRedisOnce(redisUrl);
  let lastError: unknown;
  redis.on("error", (err: unknown) => (lastError = err));
  try {
    const queue = new JobQueue({ redis, prefix });
    let workers: WorkerInfo[];
    let sites: SiteDepth[];
    try {
      await redis.connect();
      [workers, sites] = await Promise.all([queue.liveWorkers(), queue.siteDepths()]);
    } catch (err) {
      throw new CheckFailure(
        `cannot read worker heartbeats from ${describeRedisUrl(redisUrl)}: ${errorMessage(lastError ?? err)}`,
        "heartbeats live in Redis: fix the redis check first",
      );
    }
    const depth = { pending: 0, processing: 0, delayed: 0 };
    for (const d of sites) for (const k of ["pending", "processing", "delayed"] as const) depth[k] += d[k];
    const oldest = await oldestWaitingJob(databaseUrl).catch((err: unknown) => ({ error: errorMessage(err) }));
    return judgeWorkers({ workers, depth, sites, ownSite, oldest });
  } finally {
    closeRedis(redis);
  }
}
