/**
 * Lua scripts of the Redis store, registered with ioredis `defineCommand` (EVALSHA, with a
 * fallback to EVAL when the server does not know the script yet).
 *
 * Cluster safety: every script touches only keys of one cache key (its lock key and fence
 * key, sometimes its data key), which share a hash slot by construction (see the key mapping
 * in redis-store.ts), and declares them all in KEYS. PUBLISH takes a channel, not a key,
 * and Redis Cluster forwards it to every node.
 *
 * The fence key is a hash with two fields:
 * - `seq`: the last fence granted on the key,
 * - `hwm`: the high-water mark, the highest fence `setFenced` has written with, or the mark
 *   `setAbove` / `deleteAbove` raised above every grant.
 * A grant is max(seq, hwm) + 1, so a grant is always above any fence already written, even
 * one a caller made up. The hash expires `retentionMs` after its last use (it would
 * otherwise live forever for every key ever locked); fencing thus protects against holders
 * that pause for less than that.
 */

/** Script names on the client; prefixed so they cannot clash with a user's own commands. */
export const SCRIPT_NAMES = {
  acquire: 'stratacacheAcquire',
  extend: 'stratacacheExtend',
  release: 'stratacacheRelease',
  drawFence: 'stratacacheDrawFence',
  setFenced: 'stratacacheSetFenced',
  setAbove: 'stratacacheSetAbove',
  deleteAbove: 'stratacacheDeleteAbove',
  touchPersist: 'stratacacheTouchPersist',
  lockState: 'stratacacheLockState',
} as const

export interface ScriptDefinition {
  readonly numberOfKeys: number
  readonly lua: string
}

/**
 * KEYS: lock, fence. ARGV: token, leaseMs, retentionMs.
 * Returns the fence of the grant, or nil when the lock is held.
 */
const acquire = `
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local h = redis.call('HMGET', KEYS[2], 'seq', 'hwm')
local fence = math.max(tonumber(h[1]) or 0, tonumber(h[2]) or 0) + 1
redis.call('HSET', KEYS[2], 'seq', string.format('%d', fence))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return fence
`

/**
 * KEYS: fence. ARGV: retentionMs. A fence as `acquire` grants it, without the lease (for a
 * writer that stopped waiting): above every grant and written fence so far, and counted in
 * `seq`, so every later grant is above it.
 */
const drawFence = `
local h = redis.call('HMGET', KEYS[1], 'seq', 'hwm')
local fence = math.max(tonumber(h[1]) or 0, tonumber(h[2]) or 0) + 1
redis.call('HSET', KEYS[1], 'seq', string.format('%d', fence))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return fence
`

/** KEYS: lock. ARGV: token, leaseMs. Returns 1 when extended. */
const extend = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
`

/** KEYS: lock. ARGV: token, channel, message. Returns 1 when released (and waiters notified). */
const release = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
`

/**
 * KEYS: data, fence. ARGV: value, ttlMs ('' = no expiry), fence, retentionMs, channel, message.
 * Returns 0 when `fence` is below the high-water mark (nothing written), else writes the
 * value, raises the mark, notifies waiters and returns 1.
 */
const setFenced = `
local fence = tonumber(ARGV[3])
local hwm = tonumber(redis.call('HGET', KEYS[2], 'hwm')) or 0
if fence < hwm then return 0 end
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
redis.call('HSET', KEYS[2], 'hwm', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
`

/**
 * Raises an existing fence hash's mark above every grant and written fence (`seq` and
 * `hwm`), so every holder or drawer so far is refused; 1 when the key had one. A key
 * without the hash had no grant or draw within the retention: nothing to refuse, and none
 * is created (keys only ever written explicitly cost no fencing state).
 */
const raiseMark = `
local function raise(fence, retention)
  local h = redis.call('HMGET', fence, 'seq', 'hwm')
  if not h[1] and not h[2] then return 0 end
  local mark = math.max(tonumber(h[1]) or 0, tonumber(h[2]) or 0) + 1
  redis.call('HSET', fence, 'hwm', string.format('%d', mark))
  redis.call('PEXPIRE', fence, retention)
  return 1
end
`

/**
 * KEYS: data, fence. ARGV: value, ttlMs ('' = no expiry), retentionMs, channel, message.
 * An explicit write ordered after every holder so far: writes the value and raises the
 * mark in one step; notifies waiters when the key has fencing state (so has had a lock).
 */
const setAbove = `${raiseMark}
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
if raise(KEYS[2], ARGV[3]) == 1 then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return 1
`

/** KEYS: data, fence. ARGV: retentionMs. Deletes and raises the mark in one step; returns 1 when the key existed. */
const deleteAbove = `${raiseMark}
local existed = redis.call('UNLINK', KEYS[1])
raise(KEYS[2], ARGV[1])
return existed
`

/**
 * KEYS: data. Makes an existing entry permanent. PERSIST alone cannot say whether the key
 * exists (it answers 0 both for a missing key and for one with no expiry), hence EXISTS.
 */
const touchPersist = `
if redis.call('PERSIST', KEYS[1]) == 1 then return 1 end
return redis.call('EXISTS', KEYS[1])
`

/**
 * KEYS: lock, fence. Returns { held (1/0), token or '', high-water mark or '', ms left of
 * the lease (PTTL) }: what waitForRelease compares before and after subscribing, to see a
 * release or a fenced write that happened in between, and when it looks again: a lease
 * that runs out sends no message.
 */
const lockState = `
local token = redis.call('GET', KEYS[1])
local hwm = redis.call('HGET', KEYS[2], 'hwm')
return { token and 1 or 0, token or '', hwm or '', redis.call('PTTL', KEYS[1]) }
`

export const SCRIPTS: { readonly [K in keyof typeof SCRIPT_NAMES]: ScriptDefinition } = {
  acquire: { numberOfKeys: 2, lua: acquire },
  extend: { numberOfKeys: 1, lua: extend },
  release: { numberOfKeys: 1, lua: release },
  drawFence: { numberOfKeys: 1, lua: drawFence },
  setFenced: { numberOfKeys: 2, lua: setFenced },
  setAbove: { numberOfKeys: 2, lua: setAbove },
  deleteAbove: { numberOfKeys: 2, lua: deleteAbove },
  touchPersist: { numberOfKeys: 1, lua: touchPersist },
  lockState: { numberOfKeys: 2, lua: lockState },
}
