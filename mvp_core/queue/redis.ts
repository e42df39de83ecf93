/** Redis connections for the queue, built the same way by every process. */
import Redis from "ioredis";

/**
 * Opens a Redis client for `url`. Commands fail after a few retries instead of queueing forever:
 * Postgres holds every job, so a failed enqueue is repaired by the reconciler rather than waited on.
 * `blocking` makes a connection meant only for BLMOVE: ioredis then arms a client-side deadline on
 * blocking commands, so a zombie TCP connection after a network fault cannot hang the worker.
 */
export function connectRedis(url: string, opts: { name?: string; blocking?: boolean } = {}): Redis {
  return new Redis(url, {
    connectionName: opts.name ?? "ketter",
    maxRetriesPerRequest: opts.blocking ? 1 : 3,
    enableOfflineQueue: true,
    // Reconnect with a capped backoff; the processes keep running while Redis is away.
    retryStrategy: (times) => Math.min(times * 200, 2_000),
    ...(opts.blocking ? { blockingTimeout: 30_000, blockingTimeoutGrace: 1_000 } : {}),
  });
}

export type { Redis };
