/**
 * The job queue: the reliable-queue pattern on Redis (BLMOVE from a pending list into each worker's
 * own processing list, leases renewed while a job runs, a reaper for expired leases and dead
 * workers). The API and the worker both use this class; it owns every key name and Lua script.
 *
 * Sites: there is one pending list per site, plus one for jobs any site may run (ANY_SITE). A
 * worker reserves from its own site's list and from the any-site list, never from another site's;
 * everything that hands a job back (reaper, release, retry promotion, removeWorker, reconciler)
 * puts it on the list of the job's own route (see scripts.ts).
 *
 * Postgres is the source of truth. Redis only hands work out: losing it loses no job (the worker's
 * reconciler re-enqueues from Postgres), and a job delivered twice runs once (the worker claims it
 * in Postgres with a conditional update before running it).
 */
import type Redis from "ioredis";
import { ANY_SITE, type QueueKeys, queueKeys, routeOf } from "./keys.ts";
import * as scripts from "./scripts.ts";

/** What a running worker publishes about itself (heartbeat), as /health and the DKU read it. */
export interface WorkerInfo {
  id: string;
  /** The site whose jobs it takes (KETTER_SITE), besides any-site jobs. */
  site: string;
  host: string;
  pid: number;
  startedAt: string;
  lastBeatAt: string;
  running: number;
  concurrency: number;
}

/** Queue sizes: waiting for a worker, reserved by a worker, waiting for a retry backoff. */
export interface QueueDepth {
  pending: number;
  processing: number;
  delayed: number;
}

/** Queue sizes of one route: a site's jobs, or (site null) the jobs any site may run. */
export interface SiteDepth extends QueueDepth {
  site: string | null;
}

/**
 * A job taken back from a worker that stopped renewing (`workerId` null when Redis no longer knew
 * the owner). `routeLost`: Redis no longer knew its site either, so it was forgotten and the
 * reconciler re-enqueues it from Postgres.
 */
export interface ReapedJob {
  jobId: string;
  workerId: string | null;
  routeLost: boolean;
}

/** Reliable job queue on Redis; see the module comment. */
export class JobQueue {
  /** Key names under this queue's prefix. */
  readonly keys: QueueKeys;
  private readonly redis: Redis;

  constructor(opts: { redis: Redis; prefix: string }) {
    this.redis = opts.redis;
    this.keys = queueKeys(opts.prefix);
  }

  // ---- producer side (API, reconciler) -------------------------------------------------------

  /** Hands a committed job to the workers of `site` (null: any site); a no-op when Redis already holds it (idempotent). */
  async enqueue(jobId: string, site: string | null): Promise<void> {
    const k = this.keys;
    await scripts.enqueueJob.run(this.redis, [k.members, k.delayed, k.routes, k.sites, this.pendingKey(site)], [jobId, routeOf(site), "0"]);
  }

  /**
   * Schedules a job of `site` to become pending after `delayMs` unless Redis already holds it (true
   * when added); `force` adds it regardless (the reconciler, for a job held in the wrong place).
   */
  async enqueueDelayed(jobId: string, delayMs: number, site: string | null, force = false): Promise<boolean> {
    const k = this.keys;
    return (await scripts.enqueueDelayed.run(this.redis, [k.members, k.delayed, k.routes, k.sites], [jobId, Math.max(0, Math.round(delayMs)), routeOf(site), force ? "1" : "0"])) === 1;
  }

  /**
   * Pushes a job to its site's pending list even if Redis already holds it elsewhere: the reconciler
   * uses it after taking a job back from a dead worker whose Redis entries may linger. A second copy
   * elsewhere is harmless (the database claim lets only one delivery run); the list itself gets
   * none, so depths count jobs.
   */
  async requeue(jobId: string, site: string | null): Promise<void> {
    const k = this.keys;
    await scripts.enqueueJob.run(this.redis, [k.members, k.delayed, k.routes, k.sites, this.pendingKey(site)], [jobId, routeOf(site), "1"]);
  }

  /** Tells the worker running `jobId` to stop it now (the API marked it CANCELLING in Postgres first). */
  async notifyCancel(jobId: string): Promise<void> {
    await this.redis.publish(this.keys.cancelChannel, jobId);
  }

  /** Numbers of pending, processing (leased) and delayed jobs, over every site. */
  async depth(): Promise<QueueDepth> {
    const rows = await this.depthByRoute();
    const total = { pending: 0, processing: 0, delayed: 0 };
    for (const r of rows) {
      total.pending += r.pending;
      total.processing += r.processing;
      total.delayed += r.delayed;
    }
    return total;
  }

  /** Queue sizes per site that ever had a job or a worker, by name, then the any-site route (site null). */
  async siteDepths(): Promise<SiteDepth[]> {
    const rows = (await this.depthByRoute()).filter((r) => r.route !== "");
    return rows
      .map(({ route, ...d }) => ({ site: route === ANY_SITE ? null : route, ...d }))
      .sort((a, b) => (a.site === null ? 1 : b.site === null ? -1 : a.site.localeCompare(b.site)));
  }

  private async depthByRoute(): Promise<Array<QueueDepth & { route: string }>> {
    const k = this.keys;
    const rows = (await scripts.depthBySite.run(this.redis, [k.sites, k.leases, k.delayed, k.routes, k.pendingPrefix])) as Array<[string, number, number, number]>;
    return rows.map(([route, pending, processing, delayed]) => ({ route, pending: Number(pending), processing: Number(processing), delayed: Number(delayed) }));
  }

  /** Workers whose heartbeat has not expired, oldest start first. */
  async liveWorkers(): Promise<WorkerInfo[]> {
    const k = this.keys;
    // The zset keeps dead workers until a reaper runs; the hash's TTL (set by each worker) decides liveness.
    const rows = (await scripts.listLiveWorkers.run(this.redis, [k.workers, k.workerPrefix], [24 * 3600 * 1000])) as Array<[string, string[]]>;
    const out: WorkerInfo[] = [];
    for (const [id, flat] of rows) {
      if (flat.length === 0) continue;
      const h: Record<string, string> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) h[flat[i]!] = flat[i + 1]!;
      out.push({
        id,
        site: h.site ?? "",
        host: h.host ?? "",
        pid: Number(h.pid ?? 0),
        startedAt: h.startedAt ?? "",
        lastBeatAt: new Date(Number(h.lastBeatMs ?? 0)).toISOString(),
        running: Number(h.running ?? 0),
        concurrency: Number(h.concurrency ?? 0),
      });
    }
    return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  }

  /** For each id, whether Redis holds it anywhere (pending, processing or delayed). */
  async held(jobIds: readonly string[]): Promise<boolean[]> {
    if (jobIds.length === 0) return [];
    const flags = await this.redis.smismember(this.keys.members, ...jobIds);
    return flags.map((f) => f === 1);
  }

  /**
   * Of `jobs` (with the site Postgres says each must run at), those Redis does not hold, or holds in
   * none of the places a worker of that site looks (its site's pending list, delayed, leased).
   * Scans pending lists, so the reconciler passes bounded batches.
   */
  async unlisted(jobs: ReadonlyArray<{ id: string; site: string | null }>): Promise<string[]> {
    if (jobs.length === 0) return [];
    const k = this.keys;
    const held = await this.held(jobs.map((j) => j.id));
    const missing = jobs.filter((_, i) => !held[i]).map((j) => j.id);
    const heldJobs = jobs.filter((_, i) => held[i]);
    const args = heldJobs.flatMap((j) => [j.id, routeOf(j.site)]);
    const stale = heldJobs.length === 0 ? [] : ((await scripts.findUnlisted.run(this.redis, [k.delayed, k.owners, k.pendingPrefix], args)) as string[]);
    return [...missing, ...stale];
  }

  // ---- worker side ---------------------------------------------------------------------------

  /** This worker's processing list. */
  processingKey(workerId: string): string {
    return `${this.keys.processingPrefix}${workerId}`;
  }

  /** The pending list of `site`'s jobs (null: the jobs any site may run). */
  pendingKey(site: string | null): string {
    return `${this.keys.pendingPrefix}${routeOf(site)}`;
  }

  /**
   * Moves the oldest pending job of `site` (null: of the any-site list) into the worker's processing
   * list, waiting up to `timeoutMs`; null when none came. `blocking` must be a connection used for
   * nothing else (BLMOVE holds it).
   */
  async reserve(blocking: Redis, workerId: string, site: string | null, timeoutMs: number): Promise<string | null> {
    const seconds = Math.max(0.01, timeoutMs / 1000).toFixed(3);
    return blocking.blmove(this.pendingKey(site), this.processingKey(workerId), "RIGHT", "LEFT", seconds);
  }

  /** Records the worker's lease on a job of `site` it reserved and claimed; returns the expiry (ms, Redis clock). */
  async startLease(jobId: string, workerId: string, leaseMs: number, site: string | null): Promise<number> {
    const k = this.keys;
    return Number(await scripts.startLease.run(this.redis, [k.leases, k.owners, k.members, k.routes], [jobId, workerId, leaseMs, routeOf(site)]));
  }

  /** Extends the lease; false when another worker holds the job now (this one must stop it). */
  async renewLease(jobId: string, workerId: string, leaseMs: number, site: string | null): Promise<boolean> {
    const k = this.keys;
    const r = await scripts.renewLease.run(this.redis, [k.leases, k.owners, k.members, this.processingKey(workerId), k.routes], [jobId, workerId, leaseMs, routeOf(site)]);
    return r === 1;
  }

  /** Removes a finished job (done, failed, cancelled) from Redis. */
  async ack(jobId: string, workerId: string): Promise<void> {
    const k = this.keys;
    await scripts.ackJob.run(this.redis, [this.processingKey(workerId), k.leases, k.owners, k.members, k.routes], [jobId]);
  }

  /** Parks a job in the delayed zset for `delayMs` (retry backoff); it returns to its own site's list. */
  async retryLater(jobId: string, workerId: string, delayMs: number): Promise<void> {
    const k = this.keys;
    await scripts.retryLater.run(this.redis, [this.processingKey(workerId), k.leases, k.owners, k.delayed, k.members], [jobId, Math.max(0, Math.round(delayMs))]);
  }

  /** Hands a job back to `site`'s pending list, to be picked next (worker shutting down, or no free slot for a delivery). */
  async release(jobId: string, workerId: string, site: string | null): Promise<void> {
    const k = this.keys;
    await scripts.releaseJob.run(this.redis, [this.processingKey(workerId), k.leases, k.owners, this.pendingKey(site), k.members, k.routes], [jobId, routeOf(site)]);
  }

  /** Drops a delivery the database refused to claim; `forget` when the job is finished, gone or misrouted. */
  async drop(jobId: string, workerId: string, forget: boolean): Promise<void> {
    const k = this.keys;
    await scripts.dropDelivery.run(this.redis, [this.processingKey(workerId), k.leases, k.owners, k.members, k.routes], [jobId, workerId, forget ? "1" : "0"]);
  }

  /** Returns jobs whose lease expired to their site's pending list. */
  async reapExpiredLeases(limit = 100): Promise<ReapedJob[]> {
    const k = this.keys;
    const flat = (await scripts.reapExpiredLeases.run(this.redis, [k.leases, k.owners, k.routes, k.members, k.processingPrefix, k.pendingPrefix], [limit])) as string[];
    return reaped(flat);
  }

  /**
   * Forgets workers whose heartbeat expired (each beat sets its own TTL) and returns their reserved
   * jobs to their sites' pending lists. Only workers silent for `silentMs` are examined.
   */
  async reapDeadWorkers(silentMs = 1000, limit = 100): Promise<ReapedJob[]> {
    const k = this.keys;
    const flat = (await scripts.reapDeadWorkers.run(
      this.redis,
      [k.workers, k.leases, k.owners, k.routes, k.members, k.processingPrefix, k.workerPrefix, k.pendingPrefix],
      [silentMs, limit],
    )) as string[];
    return reaped(flat);
  }

  /** Moves retries whose backoff elapsed to their site's pending list; returns how many. */
  async promoteDelayed(limit = 100): Promise<number> {
    const k = this.keys;
    return Number(await scripts.promoteDelayed.run(this.redis, [k.delayed, k.routes, k.members, k.pendingPrefix], [limit]));
  }

  /** Publishes the worker's heartbeat; it counts as dead once `ttlMs` passes without another. */
  async heartbeat(info: Omit<WorkerInfo, "lastBeatAt">, ttlMs: number): Promise<void> {
    const k = this.keys;
    await scripts.workerHeartbeat.run(this.redis, [k.workers, `${k.workerPrefix}${info.id}`, k.sites], [
      info.id, Math.max(1, Math.round(ttlMs)), info.site,
      "site", info.site, "host", info.host, "pid", info.pid, "startedAt", info.startedAt, "running", info.running, "concurrency", info.concurrency,
    ]);
  }

  /** Unregisters a worker that stopped cleanly; anything left in its processing list goes back to its site's pending list. */
  async removeWorker(workerId: string): Promise<number> {
    const k = this.keys;
    return Number(await scripts.removeWorker.run(this.redis, [k.workers, `${k.workerPrefix}${workerId}`, this.processingKey(workerId), k.routes, k.members, k.pendingPrefix], [workerId]));
  }

  /**
   * Forgets a retired site's Redis entries (its name in the sites set, its pending list) once
   * Postgres confirmed no unfinished job must run there; returns how many stale entries were dropped.
   */
  async forgetSite(site: string): Promise<number> {
    const k = this.keys;
    return Number(await scripts.forgetSite.run(this.redis, [k.sites, this.pendingKey(site)], [site]));
  }

  /**
   * Calls `onCancel(jobId)` for every cancel request. `subscriber` must be a connection of its own
   * (subscriber mode allows nothing else). Returns a function that unsubscribes.
   */
  async subscribeCancels(subscriber: Redis, onCancel: (jobId: string) => void): Promise<() => Promise<void>> {
    const channel = this.keys.cancelChannel;
    const listener = (ch: string, message: string) => {
      if (ch === channel) onCancel(message);
    };
    subscriber.on("message", listener);
    await subscriber.subscribe(channel);
    return async () => {
      subscriber.off("message", listener);
      await subscriber.unsubscribe(channel);
    };
  }
}

/** Parses the reapers' flat reply: job id, previous owner ("" unknown), route ("" lost), ... */
function reaped(flat: string[]): ReapedJob[] {
  const out: ReapedJob[] = [];
  for (let i = 0; i + 2 < flat.length; i += 3) out.push({ jobId: flat[i]!, workerId: flat[i + 1] === "" ? null : flat[i + 1]!, routeLost: flat[i + 2] === "" });
  return out;
}
