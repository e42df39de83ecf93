/**
 * Every Redis key and channel the job queue uses, derived from one prefix (REDIS_KEY_PREFIX). The
 * queue module is the only place that builds them, so the API, the worker and the DKU agree.
 */

/**
 * The route of a job any site may run (both ends sftp, unrestricted): every worker also reads its
 * list. '@' cannot occur in a site name, so it never collides with one.
 */
export const ANY_SITE = "@any";

/** Key names under `prefix`. */
export interface QueueKeys {
  /** Prefix of each route's list of job ids waiting for a worker: `${pendingPrefix}${site or ANY_SITE}` (LPUSH in, BLMOVE RIGHT out: FIFO). */
  pendingPrefix: string;
  /** Hash job id → route (site name or ANY_SITE) of every job Redis holds: where a reaped, released or promoted job goes back to. */
  routes: string;
  /** Set of every route that ever had a list or a worker (what depth reports walk; no KEYS/SCAN). */
  sites: string;
  /** Prefix of each worker's processing list: `${processingPrefix}${workerId}`. */
  processingPrefix: string;
  /** Zset job id → lease expiry (ms, Redis clock) of every reserved job. */
  leases: string;
  /** Hash job id → id of the worker holding its lease. */
  owners: string;
  /** Zset job id → due time (ms, Redis clock) of jobs waiting for a retry. */
  delayed: string;
  /** Set of every job id Redis currently holds anywhere (pending, processing or delayed); the reconciler's index. */
  members: string;
  /** Zset worker id → last heartbeat (ms, Redis clock). */
  workers: string;
  /** Prefix of each worker's description hash: `${workerPrefix}${workerId}`. */
  workerPrefix: string;
  /** Pub/sub channel carrying the ids of jobs whose cancel was requested. */
  cancelChannel: string;
}

/** Builds the key names for `prefix` (e.g. "ketter:"). */
export function queueKeys(prefix: string): QueueKeys {
  return {
    pendingPrefix: `${prefix}queue:pending:`,
    routes: `${prefix}queue:routes`,
    sites: `${prefix}queue:sites`,
    processingPrefix: `${prefix}queue:processing:`,
    leases: `${prefix}queue:leases`,
    owners: `${prefix}queue:owners`,
    delayed: `${prefix}queue:delayed`,
    members: `${prefix}queue:members`,
    workers: `${prefix}workers`,
    workerPrefix: `${prefix}worker:`,
    cancelChannel: `${prefix}cancel`,
  };
}

/** The route of a job whose site is `site` (null: any site). */
export function routeOf(site: string | null): string {
  return site ?? ANY_SITE;
}
