import type { Clock } from '../core/clock.js'
import type { Duration } from '../core/duration.js'
import type { Random } from '../core/random.js'
import type { CacheEventType, MemoryCacheOptions } from '../memory/types.js'
import type { CacheError } from '../core/errors.js'
import type { CodecOptions } from '../tier/resolve-codec.js'
import type { GuardedStoreOptions, GuardedStoreStats } from '../resilience/guarded-store.js'
import type { Store } from '../store/types.js'
import type { L2TierStats, ValueCodec } from '../tier/l2-tier.js'
import type { Bus } from '../bus/bus.js'
import type { CacheBusStats } from './bus-link.js'
import type { OriginsOption } from '../feeds/types.js'
import type { OriginOptions } from '../tags/origin-lifetime.js'

/**
 * How a miss is computed (kz_cache's strategies):
 * - `none`: every caller runs the factory; the store is awaited;
 * - `async`: every caller runs the factory; the store happens in the background;
 * - `stampede`: concurrent callers share one factory run; the store is awaited;
 * - `stampede-async`: shared run; the winner stores in the background, the others never store.
 */
export type Strategy = 'none' | 'async' | 'stampede' | 'stampede-async'

/** Tags of an entry: fixed, or computed from the factory's result. */
export type TagsOption<V> = readonly string[] | ((value: V) => readonly string[])

export interface EntryOptions<V = unknown> {
  /** Time-to-live: how long the value is fresh. @default '5m' */
  ttl?: Duration
  /** Time-to-idle: an entry not read for this long expires. @default Infinity */
  tti?: Duration
  /** Dependency tags (`org:1:user:42`); see `invalidateTags`. @default none */
  tags?: TagsOption<V>
  /**
   * Where the value came from (`{ db: 'accounts', id: '42' }`, several, or computed from
   * the value): an attached change feed erases the entry when its origin changes. See
   * `attachFeed` and src/feeds/types.ts for the matching rules. @default none
   */
  origins?: OriginsOption<V>
  /**
   * Fail-safe window: for this long past its TTL a value is kept as a fallback, served when
   * the factory throws or passes its soft timeout. @default 0 (no fallback)
   */
  grace?: Duration
  /**
   * While a stale fallback is being served after a factory failure, the factory is retried
   * no more often than this (doubling per consecutive failure, up to 32x). @default '1s'
   */
  graceBackoff?: Duration
  /**
   * `soft`: with a fallback available, answer with it once the factory has run this long
   * (the factory goes on and stores its result). `hard`: fail with `ERR_FACTORY_TIMEOUT`
   * (and abort the factory's signal) once it has run this long. @default none
   */
  timeout?: { soft?: Duration; hard?: Duration }
  /**
   * A hit after this fraction of the TTL starts one background refresh, so hot keys never
   * expire under their readers. In (0, 1). @default off
   */
  refreshAhead?: number
  /** How misses are computed. @default 'stampede' */
  strategy?: Strategy
  /** Aborting detaches this caller from a shared computation (`ERR_ABORTED`). */
  signal?: AbortSignal
  /** Distributed-lock timings for this call (see `CacheOptions.lock`). */
  lock?: LockTimings
}

export interface LockTimings {
  /** How long a lock grant lasts; extended every third of it while the factory runs. @default '10s' */
  lease?: Duration
  /** How long a process waits for another's lock before computing without it (the degrade path). @default '5s' */
  wait?: Duration
}

export interface FactoryContext<V> {
  readonly key: string
  /** The stale value kept for fail-safe, if any. */
  readonly stale: V | undefined
  /** Aborted when the hard timeout passes (the result of a factory is stored even if its callers left). */
  readonly signal: AbortSignal
  /** Changes this entry's TTL. */
  setTtl(ttl: Duration): void
  /** Changes this entry's tags. */
  setTags(tags: readonly string[]): void
  /** Returns the value without caching it. */
  skip(): void
}

export type Factory<V> = (ctx: FactoryContext<V>) => V | PromiseLike<V>

export interface CacheOptions {
  /** The in-process tier. @default { maxEntries: 10_000, policy: 'tinylfu' } */
  memory?: Omit<MemoryCacheOptions<string, unknown>, 'clock' | 'random' | 'ttl' | 'tti'>
  /** Defaults for every call; per-call options override them. */
  defaults?: Omit<EntryOptions, 'signal'>
  /**
   * Single-flight. `timeout`: how long a follower waits for the leader. `detectRecursion`:
   * refuse a factory that waits for its own key, directly or through a cycle
   * (`ERR_RECURSIVE_FLIGHT`), instead of letting it wait for itself until `timeout`.
   * `true`: a call that joins a flight reads the chain of promises awaiting it from V8's
   * async stack trace (a few microseconds per join, nothing on hits or elsewhere); sees
   * cycles through `await`, `then` and `Promise.all`-like combinators, not through timer or
   * event callbacks. `'context'`: AsyncLocalStorage, which follows timers and callbacks
   * too, but on Node 20 enables promise hooks and slows every `await` of the process for
   * good (see docs/guide/cache.md, `flight.detectRecursion`). `false`: off.
   * @default { timeout: '60s', detectRecursion: true }
   */
  flight?: { timeout?: Duration; detectRecursion?: boolean | 'context' }
  /** Dependency-tag trie: idle-node pruning. @default { pruneAge: '1h', pruneInterval: '10m' } */
  tags?: { pruneAge?: Duration; pruneInterval?: Duration }
  /** Longest key accepted. @default 1024 */
  maxKeyLength?: number
  /** The shared second tier (L2): `memoryStore()`, `lmdbStore({ path })`, `redisStore({ url })`. @default none (L1 only) */
  store?: Store
  /**
   * How values are encoded for L2: serializer, compression, encryption (see docs/guide/tiers-and-stores.md,
   * Codec, and docs/reference/options.md), or a ready codec. @default msgpack, deflate above 1 KB, no encryption
   */
  codec?: CodecOptions | ValueCodec
  /**
   * `local` (or `false`): concurrent misses of one process share one factory run.
   * `distributed`: one process in the whole cluster runs the factory (needs a store with
   * locks). An object sets the lock's timings, and its `mode` (default as below).
   * @default 'distributed' when `store` has locks that reach other processes (Redis, LMDB,
   * etcd: not `memoryStore`), 'local' otherwise. A miss then costs one lock round trip
   * more (see docs/decisions/0231).
   */
  lock?: false | 'local' | 'distributed' | (LockTimings & { mode?: 'local' | 'distributed' })
  /**
   * Whether `close()` closes `store`: it does once no other open cache of this process uses
   * it (several caches may share one store). `false`: the store is shared with code outside
   * the caches, which closes it; no cache ever closes a store it was given with `false`.
   * @default true
   */
  closeStore?: boolean
  /** Prefix of this cache's keys in L2 (`<namespace>:<key>`). @default 'cache' */
  namespace?: string
  /** L2 resilience and time-to-idle de-bouncing. */
  l2?: GuardedStoreOptions & {
    /** At most one L2 touch per key per this interval (and per half its TTI). @default '30s' */
    touchInterval?: Duration
    /** Touches waiting to be written; a full queue drops them (counted). @default 10_000 */
    touchQueue?: number
    /**
     * The longest L1 serves an entry before reading it from L2 again: the bound on how long
     * a process serves a value that another process replaced, deleted or tag-invalidated
     * when no bus tells it. Costs at most one L2 read per key used per this interval.
     * `Infinity`: until the entry's own TTL. @default '5s' without a bus, Infinity with one
     */
    l1MaxAge?: Duration
  }
  /** The clock of TTLs, timeouts and tags. @default systemClock (see `ticker`) */
  clock?: Clock
  /**
   * With the default clock: read the time from the process's ticker thread (one memory load
   * per read, about 1 ms resolution; the thread parks about 100 ms after the last read) instead
   * of `Date.now()` on every read. `false` never starts the thread: no idle wake-ups, and
   * every read of an entry with a TTL pays a `Date.now()` (tens of ns). Not with `clock`.
   * See docs/decisions/0230. @default true
   */
  ticker?: boolean
  /** @default mathRandom */
  random?: Random
  /**
   * The invalidation bus that keeps the L1 of every process coherent: `memoryBus()`,
   * `redisBus({ url })`, `createBus({ transport })`. Several caches may share one; it
   * closes with the last of them. See docs/guide/bus.md. @default none
   */
  bus?: Bus
  /**
   * Change-notice bookkeeping in L2. `versionTtl`: how long an origin tag's version stays
   * in L2, and the longest an entry with origins lives (see docs/guide/feeds.md). @default { versionTtl: '1d' }
   */
  origins?: OriginOptions
}

export interface CacheEventPayload<V = unknown> {
  readonly type: CacheEventType
  readonly key: string
  readonly value: V | undefined
}

export interface CacheStats {
  readonly size: number
  readonly hits: number
  readonly misses: number
  /** Stale values served by fail-safe (factory failure, soft timeout, retry backoff). */
  readonly staleHits: number
  readonly factoryCalls: number
  readonly factoryErrors: number
  readonly factoryTimeouts: number
  readonly refreshes: number
  /** Calls that joined a computation already in flight. */
  readonly flightJoins: number
  readonly tagInvalidations: number
  /** Nodes in the dependency-tag trie. */
  readonly tagNodes: number
  readonly evictions: { readonly expire: number; readonly evict: number; readonly erase: number; readonly flush: number }
  /** The origin index (keys held with origins, distinct descriptors), once origins are used. */
  readonly origins: { readonly keys: number; readonly descriptors: number } | undefined
  /** The second tier, when configured. */
  readonly l2: (L2TierStats & GuardedStoreStats & { readonly lock: { readonly waits: number; readonly degraded: number } }) | undefined
  /** The invalidation bus, when configured. */
  readonly bus?: CacheBusStats
}

/** A failure the cache handled without failing a call. */
export interface CacheErrorEvent {
  readonly type: 'error'
  readonly error: CacheError
  /** The key concerned, when there is one. */
  readonly key: string | undefined
}
