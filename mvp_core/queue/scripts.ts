/**
 * The queue's Redis Lua scripts, one per verb that must touch several keys atomically. Named by what
 * they do and how many keys they take (BullMQ style); each header lists KEYS and ARGV.
 *
 * Times come from the Redis clock (TIME), never from the caller, so workers on hosts whose clocks
 * disagree still agree on when a lease expired. A few scripts build per-worker key names from a
 * prefix passed in KEYS: fine on a single Redis server, which is what Ketter runs (not a cluster).
 */
import type Redis from "ioredis";

const NOW_MS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/** A Lua script run by EVALSHA, loaded with EVAL on first use (or after SCRIPT FLUSH / a Redis restart). */
export class RedisScript {
  readonly sha: string;

  constructor(
    readonly name: string,
    readonly numberOfKeys: number,
    readonly lua: string,
  ) {
    this.sha = new Bun.CryptoHasher("sha1").update(lua).digest("hex");
  }

  /** Runs the script; `keys` must have exactly numberOfKeys entries. */
  async run(redis: Redis, keys: string[], args: Array<string | number> = []): Promise<unknown> {
    if (keys.length !== this.numberOfKeys) throw new Error(`script ${this.name} takes ${this.numberOfKeys} keys, got ${keys.length}`);
    try {
      return await redis.evalsha(this.sha, this.numberOfKeys, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith("NOSCRIPT")) throw err;
      return redis.eval(this.lua, this.numberOfKeys, ...keys, ...args);
    }
  }
}

/** Adds a job unless Redis already holds it; a job waiting for a retry is moved forward to pending. */
export const enqueueJob = new RedisScript("enqueueJob-3", 3, `
--[[
  KEYS[1] members set
  KEYS[2] pending list
  KEYS[3] delayed zset
  ARGV[1] job id
  Returns 1 when the job was pushed to pending, 0 when it was already there or being processed.
]]
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then
  if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then return 0 end
end
redis.call('LPUSH', KEYS[2], ARGV[1])
return 1
`);

/** Adds a job to the delayed zset (due after a delay) unless Redis already holds it. */
export const enqueueDelayed = new RedisScript("enqueueDelayed-2", 2, `
--[[
  KEYS[1] members set
  KEYS[2] delayed zset
  ARGV[1] job id
  ARGV[2] delay in ms from now (Redis clock)
  Returns 1 when added, 0 when the job was already held.
]]
${NOW_MS}
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
return 1
`);

/** Records that a worker holds the lease of a job it just reserved. */
export const startLease = new RedisScript("startLease-3", 3, `
--[[
  KEYS[1] leases zset
  KEYS[2] owners hash
  KEYS[3] members set
  ARGV[1] job id
  ARGV[2] worker id
  ARGV[3] lease duration (ms)
  Returns the lease expiry (ms, Redis clock).
]]
${NOW_MS}
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
return now + tonumber(ARGV[3])
`);

/**
 * Extends a lease. Also restores the job's entries when Redis lost them (flushed or restarted while
 * the job ran), so the reaper and the reconciler keep seeing it.
 */
export const renewLease = new RedisScript("renewLease-4", 4, `
--[[
  KEYS[1] leases zset
  KEYS[2] owners hash
  KEYS[3] members set
  KEYS[4] this worker's processing list
  ARGV[1] job id
  ARGV[2] worker id
  ARGV[3] lease duration (ms)
  Returns 1 when renewed, 0 when another worker holds the job now.
]]
local owner = redis.call('HGET', KEYS[2], ARGV[1])
if owner and owner ~= ARGV[2] then return 0 end
${NOW_MS}
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
if not redis.call('LPOS', KEYS[4], ARGV[1]) then redis.call('LPUSH', KEYS[4], ARGV[1]) end
return 1
`);

/** Forgets a finished job (done, failed or cancelled): its work is over. */
export const ackJob = new RedisScript("ackJob-4", 4, `
--[[
  KEYS[1] this worker's processing list
  KEYS[2] leases zset
  KEYS[3] owners hash
  KEYS[4] members set
  ARGV[1] job id
]]
redis.call('LREM', KEYS[1], 0, ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
return 1
`);

/** Moves a job from a worker to the delayed zset, due after the retry backoff. */
export const retryLater = new RedisScript("retryLater-5", 5, `
--[[
  KEYS[1] this worker's processing list
  KEYS[2] leases zset
  KEYS[3] owners hash
  KEYS[4] delayed zset
  KEYS[5] members set
  ARGV[1] job id
  ARGV[2] delay (ms)
]]
${NOW_MS}
redis.call('LREM', KEYS[1], 0, ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]), ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
return 1
`);

/** Hands a job back to pending, at the consuming end so it is picked next (worker shutdown). */
export const releaseJob = new RedisScript("releaseJob-5", 5, `
--[[
  KEYS[1] this worker's processing list
  KEYS[2] leases zset
  KEYS[3] owners hash
  KEYS[4] pending list
  KEYS[5] members set
  ARGV[1] job id
]]
redis.call('LREM', KEYS[1], 0, ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('RPUSH', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
return 1
`);

/**
 * Drops one delivery the database refused to claim (a duplicate, or a job cancelled or finished
 * meanwhile). With `forget`, the job is finished, so Redis stops holding it at all.
 */
export const dropDelivery = new RedisScript("dropDelivery-4", 4, `
--[[
  KEYS[1] this worker's processing list
  KEYS[2] leases zset
  KEYS[3] owners hash
  KEYS[4] members set
  ARGV[1] job id
  ARGV[2] worker id
  ARGV[3] "1" to forget the job entirely, "0" to drop only this delivery
]]
redis.call('LREM', KEYS[1], 1, ARGV[1])
if ARGV[3] == '1' then
  redis.call('SREM', KEYS[4], ARGV[1])
  local owner = redis.call('HGET', KEYS[3], ARGV[1])
  if (not owner) or owner == ARGV[2] then
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('HDEL', KEYS[3], ARGV[1])
  end
end
return 1
`);

/** Returns jobs whose lease expired (their worker stopped renewing) to pending. */
export const reapExpiredLeases = new RedisScript("reapExpiredLeases-4", 4, `
--[[
  KEYS[1] leases zset
  KEYS[2] owners hash
  KEYS[3] pending list
  KEYS[4] processing list prefix (owner's list = prefix .. worker id)
  ARGV[1] maximum number of jobs to reap in this call
  Returns a flat list: job id, previous owner ("" when unknown), job id, previous owner, ...
]]
${NOW_MS}
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(expired) do
  local owner = redis.call('HGET', KEYS[2], id)
  if owner then redis.call('LREM', KEYS[4] .. owner, 0, id) end
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('RPUSH', KEYS[3], id)
  table.insert(out, id)
  table.insert(out, owner or '')
end
return out
`);

/**
 * Forgets workers whose heartbeat expired and returns everything in their processing lists to
 * pending, including a job reserved a moment before the worker died (before its lease was written).
 * A worker is dead when its hash is gone: each worker sets that TTL from its own lease length, so
 * workers configured differently never judge each other by the wrong clock.
 */
export const reapDeadWorkers = new RedisScript("reapDeadWorkers-6", 6, `
--[[
  KEYS[1] workers zset (worker id → last beat)
  KEYS[2] leases zset
  KEYS[3] owners hash
  KEYS[4] pending list
  KEYS[5] processing list prefix
  KEYS[6] worker hash prefix
  ARGV[1] only look at workers silent for at least this many ms (most are beating)
  ARGV[2] maximum number of workers to look at in this call
  Returns a flat list: job id, dead worker id, ...
]]
${NOW_MS}
local silent = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]), 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, wid in ipairs(silent) do
  if redis.call('EXISTS', KEYS[6] .. wid) == 0 then
    local list = KEYS[5] .. wid
    while true do
      local id = redis.call('LMOVE', list, KEYS[4], 'LEFT', 'RIGHT')
      if not id then break end
      if redis.call('HGET', KEYS[3], id) == wid then
        redis.call('ZREM', KEYS[2], id)
        redis.call('HDEL', KEYS[3], id)
      end
      table.insert(out, id)
      table.insert(out, wid)
    end
    redis.call('ZREM', KEYS[1], wid)
  end
end
return out
`);

/** Moves retries whose backoff elapsed from the delayed zset to pending. */
export const promoteDelayed = new RedisScript("promoteDelayed-2", 2, `
--[[
  KEYS[1] delayed zset
  KEYS[2] pending list
  ARGV[1] maximum number of jobs to move in this call
  Returns the number of jobs moved.
]]
${NOW_MS}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('LPUSH', KEYS[2], id)
end
return #due
`);

/** Records a worker's heartbeat and description (read by /health and the DKU). */
export const workerHeartbeat = new RedisScript("workerHeartbeat-2", 2, `
--[[
  KEYS[1] workers zset
  KEYS[2] this worker's hash
  ARGV[1] worker id
  ARGV[2] time to live of the hash (ms)
  ARGV[3..] field, value, field, value, ... (host, pid, startedAt, running, concurrency)
  Returns the beat time (ms, Redis clock).
]]
${NOW_MS}
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[2], 'lastBeatMs', now)
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], now, ARGV[1])
return now
`);

/** Removes a worker that stopped cleanly, handing back anything left in its processing list. */
export const removeWorker = new RedisScript("removeWorker-4", 4, `
--[[
  KEYS[1] workers zset
  KEYS[2] this worker's hash
  KEYS[3] this worker's processing list
  KEYS[4] pending list
  ARGV[1] worker id
  Returns the number of jobs handed back.
]]
local n = 0
while redis.call('LMOVE', KEYS[3], KEYS[4], 'LEFT', 'RIGHT') do n = n + 1 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return n
`);

/** Lists workers that beat recently, with their descriptions. */
export const listLiveWorkers = new RedisScript("listLiveWorkers-2", 2, `
--[[
  KEYS[1] workers zset
  KEYS[2] worker hash prefix
  ARGV[1] a worker is alive when it beat within this many ms
  Returns a list of { worker id, { field, value, ... } }.
]]
${NOW_MS}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')
local out = {}
for _, wid in ipairs(ids) do
  table.insert(out, { wid, redis.call('HGETALL', KEYS[2] .. wid) })
end
return out
`);

/**
 * Of the given jobs, those Redis marks as held but that sit nowhere a worker would find them (not
 * pending, not delayed, not leased): the reconciler's check against a stale members set.
 */
export const findUnlisted = new RedisScript("findUnlisted-3", 3, `
--[[
  KEYS[1] pending list
  KEYS[2] delayed zset
  KEYS[3] owners hash
  ARGV[1..] job ids
  Returns the ids found in none of them.
]]
local out = {}
for i = 1, #ARGV do
  local id = ARGV[i]
  if not redis.call('ZSCORE', KEYS[2], id) and redis.call('HEXISTS', KEYS[3], id) == 0
     and not redis.call('LPOS', KEYS[1], id) then
    table.insert(out, id)
  end
end
return out
`);
