/** Redis check: it answers, its version, and settings that keep a job queue safe. */
import Redis from "ioredis";
import { CheckFailure, errorMessage, type CheckOutcome } from "./check.ts";

/** Where a Redis URL points, without its password. */
export function describeRedisUrl(redisUrl: string): string {
  try {
    const u = new URL(redisUrl);
    return `${u.hostname}:${u.port || "6379"}${u.pathname}`;
  } catch {
    return "an unparsable REDIS_URL";
  }
}

/** A Redis client that fails fast instead of retrying forever (the DKU must report, not hang). */
export function connectRedisOnce(redisUrl: string): Redis {
  return new Redis(redisUrl, {
    lazyConnect: true,
    connectTimeout: 3_000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectionName: "ketter-dku",
  });
}

/** Closes a client from connectRedisOnce without the 2 s disconnect timer ioredis arms on an already-dead socket. */
export function closeRedis(redis: Redis): void {
  if (redis.status !== "end") redis.disconnect();
}

/** Parses `INFO` output into field → value. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i > 0 && !line.startsWith("#")) fields.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return fields;
}

/** The facts the verdict is based on. */
export interface RedisFacts {
  version: string;
  maxmemoryPolicy: string;
  aofEnabled: boolean;
  /** `save` as CONFIG GET returns it ("" = no snapshots), or null when CONFIG is not allowed. */
  savePolicy: string | null;
  latencyMs: number;
}

/** ok when nothing is evicted and something is persisted; warn otherwise, with the fix. */
export function judgeRedis(facts: RedisFacts, where: string): CheckOutcome {
  const persisted = facts.aofEnabled || (facts.savePolicy !== null && facts.savePolicy !== "");
  const persistence = facts.aofEnabled ? "aof" : facts.savePolicy ? `rdb "${facts.savePolicy}"` : facts.savePolicy === null ? "unknown" : "none";
  const value = `Redis ${facts.version} at ${where}, maxmemory-policy ${facts.maxmemoryPolicy}, persistence ${persistence}`;
  const problems: string[] = [];
  const fixes: string[] = [];
  if (facts.maxmemoryPolicy !== "noeviction") {
    problems.push(`eviction policy ${facts.maxmemoryPolicy} can drop queued jobs`);
    fixes.push("redis-cli CONFIG SET maxmemory-policy noeviction (and in redis.conf)");
  }
  if (!persisted) {
    problems.push(facts.savePolicy === null ? "persistence settings could not be read (CONFIG refused)" : "nothing is persisted: a restart empties the queue");
    fixes.push("enable persistence: redis-cli CONFIG SET appendonly yes (and appendonly yes in redis.conf)");
  }
  const details = { ...facts };
  if (problems.length === 0) return { status: "ok", value, details };
  return { status: "warn", value: `${value} — ${problems.join("; ")}`, hint: fixes.join("; "), details };
}

/** Connects to Redis and judges its version, eviction and persistence settings. */
export async function checkRedis(redisUrl: string): Promise<CheckOutcome> {
  const where = describeRedisUrl(redisUrl);
  const redis = connectRedisOnce(redisUrl);
  // ioredis rejects connect() with a vague "Connection is closed"; the 'error' event has the cause.
  let lastError: unknown;
  redis.on("error", (err: unknown) => (lastError = err));
  try {
    const started = performance.now();
    try {
      await redis.connect();
      await redis.ping();
    } catch (err) {
      throw new CheckFailure(
        `cannot connect to ${where}: ${errorMessage(lastError ?? err)}`,
        `start Redis (mvp_core/infra/dev_up.sh) or fix REDIS_URL; try: redis-cli -u "$REDIS_URL" ping`,
      );
    }
    const latencyMs = Math.round(performance.now() - started);
    const info = parseInfo(await redis.info());
    const savePolicy = await redis.config("GET", "save").then(
      (reply) => (Array.isArray(reply) && typeof reply[1] === "string" ? reply[1] : null),
      // Managed Redis often disables CONFIG; the verdict then says persistence is unknown.
      () => null,
    );
    return judgeRedis(
      {
        version: info.get("redis_version") ?? "unknown",
        maxmemoryPolicy: info.get("maxmemory_policy") ?? "unknown",
        aofEnabled: info.get("aof_enabled") === "1",
        savePolicy,
        latencyMs,
      },
      where,
    );
  } finally {
    closeRedis(redis);
  }
}
