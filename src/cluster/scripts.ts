/**
 * The cluster's Lua scripts: each decision is one atomic script, so two nodes can never both take
 * the last slot or both send the probe. Keys: KEYS[1] slots (zset slot → lease end, Redis time),
 * KEYS[2] rate (zset slot → admission time, node clock), KEYS[3] trunk (hash); ARGV[1] the channel
 * trunk changes are published on. Every script answers the trunk as JSON (see reply()).
 */

/** Shared by every script: reading, changing and publishing the trunk. */
const COMMON = `
local slots, rate, trunkKey, channel = KEYS[1], KEYS[2], KEYS[3], ARGV[1]

local function redisNow()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A trunk Redis holds nothing of (a new cluster, or Redis restarted empty) is open from now on:
-- that moment is stored once, so every node tells the same since (the node's clock, like every since).
local function readTrunk(now)
  redis.call('HSETNX', trunkKey, 'since', now)
  local h = redis.call('HMGET', trunkKey, 'state', 'since', 'until', 'probe', 'node', 'reason', 'ver')
  return { state = h[1] or 'open', since = tonumber(h[2]) or 0, untilMs = tonumber(h[3]) or 0,
    probe = h[4] or '', node = h[5] or '', reason = h[6] or '', ver = tonumber(h[7]) or 0 }
end

local function reply(t, extra)
  local out = { state = t.state, since = t.since, cooldownUntil = t.untilMs, node = t.node, reason = t.reason,
    version = t.ver, active = redis.call('ZCARD', slots),
    probeInFlight = t.state == 'probing' and t.probe ~= '' and redis.call('ZSCORE', slots, t.probe) ~= false }
  for k, v in pairs(extra or {}) do out[k] = v end
  return cjson.encode(out)
end

-- A change every node must see: stored, versioned and published in the same script.
local function publish(t)
  t.ver = redis.call('HINCRBY', trunkKey, 'ver', 1)
  redis.call('HSET', trunkKey, 'state', t.state, 'since', t.since, 'until', t.untilMs, 'probe', t.probe,
    'node', t.node, 'reason', t.reason)
  redis.call('PUBLISH', channel, reply(t))
end

local function expireLeases()
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', redisNow())
end

local function cooledDown(t, now)
  if t.state == 'throttled' and now >= t.untilMs then
    t.state, t.since, t.probe = 'probing', now, ''
    return true
  end
  return false
end
`;

/** ARGV: channel, slot, now, maxConcurrent, maxPerSecond, leaseMs. */
export const ADMIT = `${COMMON}
local slot, now, maxConcurrent, maxPerSecond, leaseMs = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
expireLeases()
local t = readTrunk(now)
if cooledDown(t, now) then publish(t) end
if t.state == 'throttled' then return reply(t, { admitted = false, status = 'THROTTLED' }) end
if t.state == 'probing' and t.probe ~= '' and redis.call('ZSCORE', slots, t.probe) then
  return reply(t, { admitted = false, status = 'THROTTLED' })
end
local active = redis.call('ZCARD', slots)
if active >= maxConcurrent then return reply(t, { admitted = false, status = 'BUSY' }) end
redis.call('ZREMRANGEBYSCORE', rate, '-inf', now - 1000)
if redis.call('ZCARD', rate) >= maxPerSecond then return reply(t, { admitted = false, status = 'BUSY' }) end
redis.call('ZADD', slots, redisNow() + leaseMs, slot)
redis.call('ZADD', rate, now, slot)
redis.call('PEXPIRE', rate, 2000)
local probe = t.state == 'probing'
if probe then
  t.probe = slot
  publish(t)
elseif active + 1 == maxConcurrent then
  publish(t) -- the cluster is at capacity now: every PBX shows it
end
return reply(t, { admitted = true, probe = probe })
`;

/** ARGV: channel, slot, maxConcurrent, now. */
export const RELEASE = `${COMMON}
local slot, maxConcurrent, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
expireLeases()
local before = redis.call('ZCARD', slots)
local removed = redis.call('ZREM', slots, slot)
local t = readTrunk(now)
if t.probe == slot then
  t.probe = '' -- the probe ended without a verdict: the next call probes
  publish(t)
elseif removed == 1 and before == maxConcurrent then
  publish(t) -- below capacity again
end
return reply(t)
`;

/** ARGV: channel, slot, now. */
export const SUCCEED = `${COMMON}
local slot, now = ARGV[2], tonumber(ARGV[3])
local t = readTrunk(now)
if t.state == 'probing' and t.probe == slot then
  t.state, t.since, t.probe = 'open', now, ''
  publish(t)
end
return reply(t)
`;

/** ARGV: channel, slot, now, cooldownMs, node, reason. */
export const FAIL = `${COMMON}
local slot, now, cooldownMs, node, reason = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6]
local t = readTrunk(now)
if t.state == 'throttled' or (t.state == 'probing' and t.probe ~= slot) then return reply(t) end
t.state, t.since, t.untilMs, t.probe, t.node, t.reason = 'throttled', now, now + cooldownMs, '', node, reason
publish(t)
return reply(t)
`;

/** ARGV: channel, now. */
export const END_COOLDOWN = `${COMMON}
local now = tonumber(ARGV[2])
local t = readTrunk(now)
if cooledDown(t, now) then publish(t) end
return reply(t)
`;

/**
 * ARGV: channel, node prefix, leaseMs, now, count of live slots, live slots…, slots in flight….
 * This node's leases become exactly these: live slots are renewed or taken again (after an outage
 * or a Redis restart); a slot whose admission is still in flight is only renewed if Redis admitted
 * it, never taken, or a sync that crossed a refusal would push the cluster past its limit.
 */
export const SYNC = `${COMMON}
local prefix, leaseMs, now, liveCount = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
expireLeases()
local keep = {}
for i = 6, #ARGV do keep[ARGV[i]] = true end
for _, member in ipairs(redis.call('ZRANGE', slots, 0, -1)) do
  if string.sub(member, 1, #prefix) == prefix and not keep[member] then redis.call('ZREM', slots, member) end
end
local leaseEnd = redisNow() + leaseMs
for i = 6, 5 + liveCount do redis.call('ZADD', slots, leaseEnd, ARGV[i]) end
for i = 6 + liveCount, #ARGV do redis.call('ZADD', slots, 'XX', leaseEnd, ARGV[i]) end
return reply(readTrunk(now))
`;
