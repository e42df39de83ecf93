/**
 * The queue's Redis Lua scripts, one per verb that must touch several keys atomically. Named by what
 * they do and how many keys they take (BullMQ style); each header lists KEYS and ARGV.
 *
 * Times come from the Redis clock (TIME), never from the caller, so workers on hosts whose clocks
 * disagree still agree on when a lease expired. A few scripts build per-worker and per-route key
 * names from a prefix passed in KEYS: fine on a single Redis server, which is what Ketter runs (not
 * a cluster).
 *
 * Routing: each job's route (its site, or '@any') is kept in the routes hash from enqueue until it
 * is forgotten. Every script that puts a job back into a pending list reads it there, so a job
 * always returns to its own site's list. When Redis lost the route (flushed while the job ran), the
 * script forgets the job instead of guessing, and the reconciler re-enqueues it from Postgres.
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

/**
 * Adds a job to its route's pending list unless Redis already holds it; a job waiting for a retry
 * is moved forward to pending. Forced (the reconciler, after Postgres said the job must be pending
 * there), it is pushed even when Redis holds it elsewhere — a stale copy elsewhere is refused by the
 * claim — unless that list already has it.
 */
export const enqueueJob = new RedisScript("enqueueJob-5", 5, `
--[[
  KEYS[1] members set
  KEYS[2] delayed zset
  KEYS[3] routes hash
  KEYS[4] sites set
  KEYS[5] pending list of the job's route
  ARGV[1] job id
  ARGV[2] route (site name or '@any')
  ARGV[3] "1" to push even when Redis already holds the job
  Returns 1 when the job was pushed to pending, 0 when it was already there or being processed.
]]
local added = redis.call('SADD', KEYS[1], ARGV[1]) == 1
local promoted = redis.call('ZREM', KEYS[2], ARGV[1]) == 1
local force = ARGV[3] == '1'
if not (added or promoted or force) then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[2])
if force and redis.call('LPOS', KEYS[5], ARGV[1]) then return 0 end
redis.call('LPUSH', KEYS[5], ARGV[1])
return 1
`);

/**
 * Adds a job to the delayed zset (due after a delay) unless Redis already holds it, or — forced, by
 * the reconciler — even then (a stale entry elsewhere is refused by the claim).
 */
export const enqueueDelayed = new RedisScript("enqueueDelayed-4", 4, `
--[[
  KEYS[1] members set
  KEYS[2] delayed zset
  KEYS[3] routes hash
  KEYS[4] sites set
  ARGV[1] job id
  ARGV[2] delay in ms from now (Redis clock)
  ARGV[3] route
  ARGV[4] "1" to add it even when Redis already holds it
  Returns 1 when added, 0 when the job was already held.
]]
${NOW_MS}
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 and ARGV[4] ~= '1' then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('SADD', KEYS[4], ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
return 1
`);

/** Records that a worker holds the lease of a job it just reserved and claimed. */
export const startLease = new RedisScript("startLease-4", 4, `
--[[
  KEYS[1] leases zset
  KEYS[2] owners hash
  KEYS[3] members set
  KEYS[4] routes hash
  ARGV[1] job id
  ARGV[2] worker id
  ARGV[3] lease duration (ms)
  ARGV[4] route (from the claimed row: Postgres is the truth)
  Returns the lease expiry (ms, Redis clock).
]]
${NOW_MS}
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[4])
return now + tonumber(ARGV[3])
`);

/**
 * Extends a lease. Also restores the job's entries when Redis lost them (flushed or restarted while
 * the job ran), so the reaper and the reconciler keep seeing it and know its route.
 */
export const renewLease = new RedisScript("renewLease-5", 5, `
--[[
  KEYS[1] leases zset
  KEYS[2] owners hash
  KEYS[3] members set
  KEYS[4] this worker's processing list
  KEYS[5] routes hash
  ARGV[1] job id
  ARGV[2] worker id
  ARGV[3] lease duration (ms)
  ARGV[4] route
  Returns 1 when renewed, 0 when another worker holds the job now.
]]
local owner = redis.call('HGET', KEYS[2], ARGV[1])
if owner and owner ~= ARGV[2] then return 0 end
${NOW_MS}
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[4])
if not redis.call('LPOS', KEYS[4], ARGV[1]) then redis.call('LPUSH', KEYS[4], ARGV[1]) end
return 1
`);

/** Forgets a finished job (done, failed or cancelled): its work is over. */
export const ackJob = new RedisScript("ackJob-5", 5, `
--[[
  KEYS[1] this worker's processing list
  KEYS[2] leases zset
  KEYS[3] owners hash
  KEYS[4] members set
  KEYS[5] routes hash
  ARGV[1] job id
]]
redis.call('LREM', KEYS[1], 0, ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
return 1
`);

/** Moves a job from a worker to the delayed zset, due after the retry backoff (its route stays recorded). */
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

/**
 * Hands a job back to its route's pending list, at the consuming end so it is picked next (worker
 * shutdown, or a delivery reserved when every slot had just filled).
 */
export const releaseJob = new RedisScript("releaseJob-6", 6, `
--[[
  KEYS[1] this worker's processing list
  KEYS[2] leases zset
  KEYS[3] owners hash
  KEYS[4] pending list of the job's route
  KEYS[5] members set
  KEYS[6] routes hash
  ARGV[1] job id
  ARGV[2] route (recorded only when Redis lost it: a claim already recorded the one Postgres says)
]]
redis.call('LREM', KEYS[1], 0, ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('RPUSH', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
redis.call('HSETNX', KEYS[6], ARGV[1], ARGV[2])
return 1
`);

/**
 * Drops one delivery the database refused to claim (a duplicate, or a job cancelled or finished
 * meanwhile). With `forget`, the job is finished, so Redis stops holding it at all.
 */
export const dropDelivery = new RedisScript("dropDelivery-5", 5, `
--[[
  KEYS[1] this worker's processing list
  KEYS[2] leases zset
  KEYS[3] owners hash
  KEYS[4] members set
  KEYS[5] routes hash
  ARGV[1] job id
  ARGV[2] worker id
  ARGV[3] "1" to forget the job entirely, "0" to drop only this delivery
]]
redis.call('LREM', KEYS[1], 1, ARGV[1])
if ARGV[3] == '1' then
  redis.call('SREM', KEYS[4], ARGV[1])
  redis.call('HDEL', KEYS[5], ARGV[1])
  local owner = redis.call('HGET', KEYS[3], ARGV[1])
  if (not owner) or owner == ARGV[2] then
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('HDEL', KEYS[3], ARGV[1])
  end
end
return 1
`);

// Puts job `id` back on its route's list at the consuming end; a job whose route Redis lost is
// forgotten instead (the reconciler re-enqueues it from Postgres onto the right list). Expects
// ROUTES, MEMBERS and PENDING_PREFIX to be locals naming those keys.
const RETURN_TO_ROUTE = `
local function return_to_route(id)
  local route = redis.call('HGET', ROUTES, id)
  if route then
    -- Already back there (the reconciler was quicker): one entry per job keeps depths true.
    if not redis.call('LPOS', PENDING_PREFIX .. route, id) then redis.call('RPUSH', PENDING_PREFIX .. route, id) end
    return route
  end
  redis.call('SREM', MEMBERS, id)
  return ''
end
`;

/** Returns jobs whose lease expired (their worker stopped renewing) to their route's pending list. */
export const reapExpiredLeases = new RedisScript("reapExpiredLeases-6", 6, `
--[[
  KEYS[1] leases zset
  KEYS[2] owners hash
  KEYS[3] routes hash
  KEYS[4] members set
  KEYS[5] processing list prefix (owner's list = prefix .. worker id)
  KEYS[6] pending list prefix (route's list = prefix .. route)
  ARGV[1] maximum number of jobs to reap in this call
  Returns a flat list: job id, previous owner ("" when unknown), route ("" when lost), ...
]]
local ROUTES, MEMBERS, PENDING_PREFIX = KEYS[3], KEYS[4], KEYS[6]
${RETURN_TO_ROUTE}
${NOW_MS}
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(expired) do
  local owner = redis.call('HGET', KEYS[2], id)
  if owner then redis.call('LREM', KEYS[5] .. owner, 0, id) end
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  local route = return_to_route(id)
  table.insert(out, id)
  table.insert(out, owner or '')
  table.insert(out, route)
end
return out
`);

/**
 * Forgets workers whose heartbeat expired and returns everything in their processing lists to
 * their routes' lists, including a job reserved a moment before the worker died (before its lease
 * was written). A worker is dead when its hash is gone: each worker sets that TTL from its own
 * lease length, so workers configured differently never judge each other by the wrong clock.
 */
export const reapDeadWorkers = new RedisScript("reapDeadWorkers-8", 8, `
--[[
  KEYS[1] workers zset (worker id → last beat)
  KEYS[2] leases zset
  KEYS[3] owners hash
  KEYS[4] routes hash
  KEYS[5] members set
  KEYS[6] processing list prefix
  KEYS[7] worker hash prefix
  KEYS[8] pending list prefix
  ARGV[1] only look at workers silent for at least this many ms (most are beating)
  ARGV[2] maximum number of workers to look at in this call
  Returns a flat list: job id, dead worker id, route ("" when lost), ...
]]
local ROUTES, MEMBERS, PENDING_PREFIX = KEYS[4], KEYS[5], KEYS[8]
${RETURN_TO_ROUTE}
${NOW_MS}
local silent = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]), 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, wid in ipairs(silent) do
  if redis.call('EXISTS', KEYS[7] .. wid) == 0 then
    local list = KEYS[6] .. wid
    while true do
      local id = redis.call('LPOP', list)
      if not id then break end
      if redis.call('HGET', KEYS[3], id) == wid then
        redis.call('ZREM', KEYS[2], id)
        redis.call('HDEL', KEYS[3], id)
      end
      local route = return_to_route(id)
      table.insert(out, id)
      table.insert(out, wid)
      table.insert(out, route)
    end
    redis.call('ZREM', KEYS[1], wid)
  end
end
return out
`);

/** Moves retries whose backoff elapsed from the delayed zset to their route's pending list. */
export const promoteDelayed = new RedisScript("promoteDelayed-4", 4, `
--[[
  KEYS[1] delayed zset
  KEYS[2] routes hash
  KEYS[3] members set
  KEYS[4] pending list prefix
  ARGV[1] maximum number of jobs to move in this call
  Returns the number of jobs moved (or forgotten for the reconciler, when their route was lost).
]]
local ROUTES, MEMBERS, PENDING_PREFIX = KEYS[2], KEYS[3], KEYS[4]
${RETURN_TO_ROUTE}
${NOW_MS}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  return_to_route(id)
end
return #due
`);

/** Records a worker's heartbeat and description (read by /health and the DKU), and its site. */
export const workerHeartbeat = new RedisScript("workerHeartbeat-3", 3, `
--[[
  KEYS[1] workers zset
  KEYS[2] this worker's hash
  KEYS[3] sites set
  ARGV[1] worker id
  ARGV[2] time to live of the hash (ms)
  ARGV[3] the worker's site
  ARGV[4..] field, value, field, value, ... (host, pid, site, startedAt, running, concurrency)
  Returns the beat time (ms, Redis clock).
]]
${NOW_MS}
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[2], 'lastBeatMs', now)
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[3])
return now
`);

/** Removes a worker that stopped cleanly, handing back anything left in its processing list to its route. */
export const removeWorker = new RedisScript("removeWorker-6", 6, `
--[[
  KEYS[1] workers zset
  KEYS[2] this worker's hash
  KEYS[3] this worker's processing list
  KEYS[4] routes hash
  KEYS[5] members set
  KEYS[6] pending list prefix
  ARGV[1] worker id
  Returns the number of jobs handed back.
]]
local ROUTES, MEMBERS, PENDING_PREFIX = KEYS[4], KEYS[5], KEYS[6]
${RETURN_TO_ROUTE}
local n = 0
while true do
  local id = redis.call('LPOP', KEYS[3])
  if not id then break end
  return_to_route(id)
  n = n + 1
end
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
 * Of the given jobs, those Redis marks as held but that sit nowhere a worker of their site would
 * find them (not in the pending list of the route Postgres says, not delayed, not leased): the
 * reconciler's check against a stale members set or a job on the wrong site's list.
 */
export const findUnlisted = new RedisScript("findUnlisted-3", 3, `
--[[
  KEYS[1] delayed zset
  KEYS[2] owners hash
  KEYS[3] pending list prefix
  ARGV[1..] job id, expected route, job id, expected route, ...
  Returns the ids found in none of them.
]]
local out = {}
for i = 1, #ARGV, 2 do
  local id, route = ARGV[i], ARGV[i + 1]
  if not redis.call('ZSCORE', KEYS[1], id) and redis.call('HEXISTS', KEYS[2], id) == 0
     and not redis.call('LPOS', KEYS[3] .. route, id) then
    table.insert(out, id)
  end
end
return out
`);

/**
 * Queue sizes per route: pending (its list), processing (leased) and delayed jobs, for /health and
 * the DKU. Walks the leases and the delayed zset (bounded by running jobs and waiting retries).
 */
export const depthBySite = new RedisScript("depthBySite-5", 5, `
--[[
  KEYS[1] sites set
  KEYS[2] leases zset
  KEYS[3] delayed zset
  KEYS[4] routes hash
  KEYS[5] pending list prefix
  Returns a list of { route, pending, processing, delayed }; route "" counts jobs whose route was lost.
]]
local counts, order = {}, {}
local function slot(route)
  if not counts[route] then
    counts[route] = { 0, 0, 0 }
    table.insert(order, route)
  end
  return counts[route]
end
for _, route in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  slot(route)[1] = redis.call('LLEN', KEYS[5] .. route)
end
for i, key in ipairs({ KEYS[2], KEYS[3] }) do
  for _, id in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    local c = slot(redis.call('HGET', KEYS[4], id) or '')
    c[i + 1] = c[i + 1] + 1
  end
end
local out = {}
for _, route in ipairs(order) do
  table.insert(out, { route, counts[route][1], counts[route][2], counts[route][3] })
end
return out
`);

/**
 * Forgets a retired site: its name in the sites set and its pending list. Called once Postgres
 * confirmed no unfinished job must run there, so whatever the list still holds is stale copies of
 * finished or cancelled jobs.
 */
export const forgetSite = new RedisScript("forgetSite-2", 2, `
--[[
  KEYS[1] sites set
  KEYS[2] the site's pending list
  ARGV[1] site name
  Returns the number of stale entries dropped from its list.
]]
local n = redis.call('LLEN', KEYS[2])
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[1], ARGV[1])
return n
`);
