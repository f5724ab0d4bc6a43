/**
 * The cache's second tier from its options (moved out of the Cache constructor): the lock
 * mode, `origins`, the store wrapped in a GuardedStore, the L2Tier over it, the lock
 * protocol and `l2.l1MaxAge`. Validated in the order the constructor always did.
 */
import type { Clock } from '../core/clock.js'
import { toMs } from '../core/duration.js'
import { InvalidOptionsError } from '../core/errors.js'
import { mathRandom } from '../core/random.js'
import { GuardedStore } from '../resilience/guarded-store.js'
import { resolveOriginOptions } from '../tags/origin-lifetime.js'
import type { TagTrie } from '../tags/tag-trie.js'
import { L2Tier } from '../tier/l2-tier.js'
import { resolveCodec } from '../tier/resolve-codec.js'
import type { ErrorChannel } from './error-channel.js'
import { LockProtocol } from './lock-protocol.js'
import { positive, type Resolved } from './resolve-options.js'
import type { CacheOptions } from './types.js'

/** `l2.l1MaxAge` without a bus: see docs/decisions/0110-l1-max-age-without-a-bus.md. */
const DEFAULT_L1_MAX_AGE = 5_000

export interface SecondTier<V> {
  readonly distributedLock: boolean
  /** `origins.versionTtl` in ms. */
  readonly originTtl: number
  readonly l2: L2Tier<V> | undefined
  readonly lock: LockProtocol | undefined
  readonly l1MaxAge: number
}

/** What the tier shares with the cache. `defaults` gets `lock.lease` and `lock.wait`. */
export interface SecondTierContext<V> {
  readonly clock: Clock
  readonly tags: TagTrie
  readonly defaults: Resolved<V>
  readonly errors: ErrorChannel
}

export function createSecondTier<V>(options: CacheOptions, c: SecondTierContext<V>): SecondTier<V> {
  const lockOptions = options.lock === false ? { mode: 'local' as const } : typeof options.lock === 'string' ? { mode: options.lock } : (options.lock ?? {})
  if (lockOptions === null || typeof lockOptions !== 'object') throw new InvalidOptionsError('lock', `expected 'local', 'distributed', false or an object, got ${String(options.lock)}`)
  if (lockOptions.mode !== undefined && lockOptions.mode !== 'local' && lockOptions.mode !== 'distributed') throw new InvalidOptionsError('lock', `expected 'local' or 'distributed', got ${JSON.stringify(lockOptions.mode)}`)
  // No mode given: distributed when the store's locks reach other processes (decision 0231).
  const distributedLock = lockOptions.mode === 'distributed' || (lockOptions.mode === undefined && locksAcrossProcesses(options.store))
  const originTtl = resolveOriginOptions(options.origins)
  if (lockOptions.lease !== undefined) c.defaults.lockLease = positive(toMs(lockOptions.lease, 'lock.lease'), 'lock.lease')
  if (lockOptions.wait !== undefined) c.defaults.lockWait = toMs(lockOptions.wait, 'lock.wait')
  if (options.store !== undefined) {
    const store = options.store
    if (store === null || typeof store !== 'object' || typeof store.get !== 'function') throw new InvalidOptionsError('store', 'expected a Store (memoryStore(), lmdbStore(...), redisStore(...))')
    if (distributedLock && store.locks === undefined) throw new InvalidOptionsError('lock', `store ${store.name} has no locks; 'distributed' needs one that has`)
    // A store written against an older StoreLocks: without these, a waiter that gives up, an
    // explicit set or a delete could only write unfenced (a paused holder would overwrite them).
    const missing = distributedLock ? (['drawFence', 'setAbove', 'deleteAbove'] as const).filter((m) => typeof store.locks?.[m] !== 'function') : []
    if (missing.length > 0) throw new InvalidOptionsError('lock', `store ${store.name}'s locks have no ${missing.map((m) => `${m}()`).join(', ')}; 'distributed' needs them (see StoreLocks)`)
    if (options.closeStore !== undefined && typeof options.closeStore !== 'boolean') throw new InvalidOptionsError('closeStore', `expected a boolean, got ${typeof options.closeStore}`)
    const l2 = options.l2 ?? {}
    const guarded = new GuardedStore(store, c.clock, options.random ?? mathRandom, l2)
    guarded.onError = (error, _operation, key) => c.errors.emit(error, key)
    const namespace = options.namespace ?? 'cache'
    if (typeof namespace !== 'string' || namespace.length === 0 || /[:#]/.test(namespace)) throw new InvalidOptionsError('namespace', 'expected a non-empty string without ":" or "#"')
    const l1MaxAge = l2.l1MaxAge === undefined ? (options.bus === undefined ? DEFAULT_L1_MAX_AGE : Infinity) : positive(toMs(l2.l1MaxAge, 'l2.l1MaxAge'), 'l2.l1MaxAge')
    const touchQueue = l2.touchQueue ?? 10_000
    if (!Number.isSafeInteger(touchQueue) || touchQueue < 0) throw new InvalidOptionsError('l2.touchQueue', `expected an integer >= 0, got ${String(touchQueue)}`)
    const l2Tier = new L2Tier<V>(guarded, {
      namespace,
      clock: c.clock,
      codec: resolveCodec(options.codec),
      tags: c.tags,
      touchInterval: positive(toMs(l2.touchInterval ?? '30s', 'l2.touchInterval'), 'l2.touchInterval'),
      touchQueueSize: touchQueue,
      originVersionTtl: originTtl,
      ordered: distributedLock,
      onError: (error, key) => c.errors.emit(error, key),
    })
    const lock = distributedLock ? new LockProtocol(c.clock, guarded, (error, key) => c.errors.emit(error, key)) : undefined
    return { distributedLock, originTtl, l2: l2Tier, lock, l1MaxAge }
  }
  if (distributedLock) throw new InvalidOptionsError('lock', "'distributed' needs a store with locks")
  if (options.codec !== undefined) throw new InvalidOptionsError('codec', 'a codec applies to an L2 store; pass `store` too')
  if (options.l2 !== undefined) throw new InvalidOptionsError('l2', 'l2 settings apply to an L2 store; pass `store` too')
  return { distributedLock, originTtl, l2: undefined, lock: undefined, l1MaxAge: Infinity }
}

/**
 * Whether `store` has the full lock protocol (StoreLocks with fences and ordered writes) and
 * its locks are seen by other processes: every store but the in-process `memoryStore`,
 * whose locks only the caches of this process share (single-flight already dedupes there).
 */
function locksAcrossProcesses(store: CacheOptions['store']): boolean {
  if (store === undefined || store === null || typeof store !== 'object' || store.name === 'memory') return false
  const locks = store.locks
  return locks !== undefined && (['acquire', 'drawFence', 'setAbove', 'deleteAbove'] as const).every((m) => typeof locks[m] === 'function')
}
