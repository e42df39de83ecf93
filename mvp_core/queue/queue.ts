/**
 * The job queue: the reliable-queue pattern on Redis (BLMOVE from a pending list into each worker's
 * own processing list, leases renewed while a job runs, a reaper for expired leases and dead
 * workers). The API and the worker both use this class; it owns every key name and Lua script.
 *
 * Postgres is the source of truth. Redis only hands work out: losing it loses no job (the worker's
 * reconciler re-enqueues from Postgres), and a job delivered twice runs once (the worker claims it
 * in Postgres with a conditional update before running it).
 */
import type Redis from "ioredis";
import { type QueueKeys, queueKeys } from "./keys.ts";
import * as scripts from "./scripts.ts";

/** What a running worker publishes about itself (heartbeat), as /health and the DKU read it. */
export interface WorkerInfo {
  id: string;
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

/** A job taken back from a worker that stopped renewing (`workerId` null when Redis no longer knew the owner). */
export interface ReapedJob {
  jobId: string;
  workerId: string | null;
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

  /** Hands a committed job to the workers; a no-op when Redis already holds it (idempotent). */
  async enqueue(jobId: string): Promise<void> {
    const k = this.keys;
    await scripts.enqueueJob.run(this.redis, [k.members, k.pending, k.delayed], [jobId]);
  }

  /** Schedules a job to become pending after `delayMs` unless Redis already holds it; true when added. */
  async enqueueDelayed(jobId: string, delayMs: number): Promise<boolean> {
    const k = this.keys;
    return (await scripts.enqueueDelayed.run(this.redis, [k.members, k.delayed], [jobId, Math.max(0, Math.round(delayMs))])) === 1;
  }

  /**
   * Pushes a job to pending even if Redis already holds it: the reconciler uses it after taking a
   * job back from a dead worker whose Redis entries may linger. A second copy is harmless (the
   * database claim lets only one delivery run).
   */
  async requeue(jobId: string): Promise<void> {
    const k = this.keys;
    const replies = await this.redis.multi().sadd(k.members, jobId).zrem(k.delayed, jobId).lpush(k.pending, jobId).exec();
    const failed = replies?.find(([err]) => err);
    if (failed) throw failed[0];
  }

  /** Tells the worker running `jobId` to stop it now (the API marked it CANCELLING in Postgres first). */
  async notifyCancel(jobId: string): Promise<void> {
    await this.redis.publish(this.keys.cancelChannel, jobId);
  }

  /** Numbers of pending, processing (leased) and delayed jobs. */
  async depth(): Promise<QueueDepth> {
    const k = this.keys;
    const replies = await this.redis.multi().llen(k.pending).zcard(k.leases).zcard(k.delayed).exec();
    const n = (i: number) => {
      const [err, value] = replies?.[i] ?? [new Error("no reply"), 0];
      if (err) throw err;
      return Number(value);
    };
    return { pending: n(0), processing: n(1), delayed: n(2) };
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
   * Of `jobIds`, those Redis does not hold, or holds in none of the places a worker looks (pending,
   * delayed, leased). Scans the pending list, so the reconciler passes bounded batches.
   */
  async unlisted(jobIds: readonly string[]): Promise<string[]> {
    if (jobIds.length === 0) return [];
    const k = this.keys;
    const held = await this.held(jobIds);
    const missing = jobIds.filter((_, i) => !held[i]);
    const heldIds = jobIds.filter((_, i) => held[i]);
    const stale = heldIds.length === 0 ? [] : ((await scripts.findUnlisted.run(this.redis, [k.pending, k.delayed, k.owners], heldIds)) as string[]);
    return [...missing, ...stale];
  }

  // ---- worker side ---------------------------------------------------------------------------

  /** This worker's processing list. */
  processingKey(workerId: string): string {
    return `${this.keys.processingPrefix}${workerId}`;
  }

  /**
   * Moves the oldest pending job into the worker's processing list, waiting up to `timeoutMs`;
   * null when none came. `blocking` must be a connection used for nothing else (BLMOVE holds it).
   */
  async reserve(blocking: Redis, workerId: string, timeoutMs: number): Promise<string | null> {
    const seconds = Math.max(0.01, timeoutMs / 1000).toFixed(3);
    return blocking.blmove(this.keys.pending, this.processingKey(workerId), "RIGHT", "LEFT", seconds);
  }

  /** Records the worker's lease on a job it reserved and claimed; returns the expiry (ms, Redis clock). */
  async startLease(jobId: string, workerId: string, leaseMs: number): Promise<number> {
    const k = this.keys;
    return Number(await scripts.startLease.run(this.redis, [k.leases, k.owners, k.members], [jobId, workerId, leaseMs]));
  }

  /** Extends the lease; false when another worker holds the job now (this one must stop it). */
  async renewLease(jobId: string, workerId: string, leaseMs: number): Promise<boolean> {
    const k = this.keys;
    const r = await scripts.renewLease.run(this.redis, [k.leases, k.owners, k.members, this.processingKey(workerId)], [jobId, workerId, leaseMs]);
    return r === 1;
  }

  /** Removes a finished job (done, failed, cancelled) from Redis. */
  async ack(jobId: string, workerId: string): Promise<void> {
    const k = this.keys;
    await scripts.ackJob.run(this.redis, [this.processingKey(workerId), k.leases, k.owners, k.members], [jobId]);
  }

  /** Parks a job in the delayed zset for `delayMs` (retry backoff). */
  async retryLater(jobId: string, workerId: string, delayMs: number): Promise<void> {
    const k = this.keys;
    await scripts.retryLater.run(this.redis, [this.processingKey(workerId), k.leases, k.owners, k.delayed, k.members], [jobId, Math.max(0, Math.round(delayMs))]);
  }

  /** Hands a job back to pending, to be picked next (worker shutting down). */
  async release(jobId: string, workerId: string): Promise<void> {
    const k = this.keys;
    await scripts.releaseJob.run(this.redis, [this.processingKey(workerId), k.leases, k.owners, k.pending, k.members], [jobId]);
  }

  /** Drops a delivery the database refused to claim; `forget` when the job is finished or gone. */
  async drop(jobId: string, workerId: string, forget: boolean): Promise<void> {
    const k = this.keys;
    await scripts.dropDelivery.run(this.redis, [this.processingKey(workerId), k.leases, k.owners, k.members], [jobId, workerId, forget ? "1" : "0"]);
  }

  /** Returns jobs whose lease expired to pending. */
  async reapExpiredLeases(limit = 100): Promise<ReapedJob[]> {
    const k = this.keys;
    const flat = (await scripts.reapExpiredLeases.run(this.redis, [k.leases, k.owners, k.pending, k.processingPrefix], [limit])) as string[];
    return pairs(flat).map(([jobId, owner]) => ({ jobId, workerId: owner === "" ? null : owner }));
  }

  /**
   * Forgets workers whose heartbeat expired (each beat sets its own TTL) and returns their reserved
   * jobs to pending. Only workers silent for `silentMs` are examined.
   */
  async reapDeadWorkers(silentMs = 1000, limit = 100): Promise<ReapedJob[]> {
    const k = this.keys;
    const flat = (await scripts.reapDeadWorkers.run(
      this.redis,
      [k.workers, k.leases, k.owners, k.pending, k.processingPrefix, k.workerPrefix],
      [silentMs, limit],
    )) as string[];
    return pairs(flat).map(([jobId, workerId]) => ({ jobId, workerId }));
  }

  /** Moves retries whose backoff elapsed to pending; returns how many. */
  async promoteDelayed(limit = 100): Promise<number> {
    return Number(await scripts.promoteDelayed.run(this.redis, [this.keys.delayed, this.keys.pending], [limit]));
  }

  /** Publishes the worker's heartbeat; it counts as dead once `ttlMs` passes without another. */
  async heartbeat(info: Omit<WorkerInfo, "lastBeatAt">, ttlMs: number): Promise<void> {
    const k = this.keys;
    await scripts.workerHeartbeat.run(this.redis, [k.workers, `${k.workerPrefix}${info.id}`], [
      info.id, Math.max(1, Math.round(ttlMs)),
      "host", info.host, "pid", info.pid, "startedAt", info.startedAt, "running", info.running, "concurrency", info.concurrency,
    ]);
  }

  /** Unregisters a worker that stopped cleanly; anything left in its processing list goes back to pending. */
  async removeWorker(workerId: string): Promise<number> {
    const k = this.keys;
    return Number(await scripts.removeWorker.run(this.redis, [k.workers, `${k.workerPrefix}${workerId}`, this.processingKey(workerId), k.pending], [workerId]));
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

function pairs(flat: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}
