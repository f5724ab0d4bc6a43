import type { Clock } from '../core/clock.js'
import type { ByteSize, Duration } from '../core/duration.js'
import type { Random } from '../core/random.js'

/** Eviction policy names. See docs/ARCHITECTURE.md for how the default was chosen. */
export type PolicyName = 'lru' | 'tinylfu'

/**
 * Why an entry event fired (kz_cache's callback reasons plus eviction):
 * - `store`  an entry was stored (new key or overwrite)
 * - `expire` an entry passed its TTL or idle deadline and was reclaimed
 * - `evict`  an entry was pushed out by `maxEntries` / `maxBytes`
 * - `erase`  an entry was deleted (`delete`, `filterErase`, its AbortSignal aborted)
 * - `flush`  an entry was removed by `clear()`
 * - `timeout` a `waitFor` on the key gave up (value is `undefined`)
 *
 * Every entry that leaves the cache is reported exactly once, with `expire` whenever its
 * deadline had already passed, whatever removed it. Overwriting a key reports only `store`.
 */
export type CacheEventType = 'store' | 'expire' | 'evict' | 'erase' | 'flush' | 'timeout'

export interface CacheEvent<K, V> {
  readonly type: CacheEventType
  readonly key: K
  /** The entry's value; `undefined` for `timeout`. */
  readonly value: V | undefined
}

export type CacheListener<K, V> = (event: CacheEvent<K, V>) => void

export interface MemoryCacheOptions<K, V> {
  /**
   * Most entries held at once. At least one of `maxEntries` and `maxBytes` is required:
   * an unbounded cache is a memory leak and is refused.
   * @default undefined
   */
  maxEntries?: number
  /**
   * Most bytes held at once, summed over entry sizes (per-entry `size`, else `sizeOf`).
   * Numbers are bytes; strings take binary units: `'64kb'`, `'64mb'`, `'1gb'`.
   * @default undefined
   */
  maxBytes?: ByteSize
  /**
   * Size of an entry in bytes, used when `set` gives no `size`. Only consulted when
   * `maxBytes` is set. The default estimates: strings 2 B/char, Buffers and typed arrays
   * their byteLength, numbers 8 B, objects a bounded walk of their properties.
   * @default estimateSize
   */
  sizeOf?: (value: V, key: K) => number
  /**
   * Largest single entry accepted; a larger one is not stored (`set` returns false) and
   * an older value under that key is erased.
   * Needs `maxBytes` (sizes are counted only then). @default maxBytes (no limit beyond the cache's own)
   */
  maxEntrySize?: ByteSize
  /** Eviction policy. @default 'tinylfu' */
  policy?: PolicyName
  /** Default time-to-live of entries. @default Infinity */
  ttl?: Duration
  /** Default time-to-idle: an entry not read (by `get`) for this long expires. @default Infinity */
  tti?: Duration
  /**
   * Random shortening of each entry's TTL, as a fraction in [0, 1]: the TTL used is
   * `ttl * (1 - ttlJitter * r)` for a random r in [0, 1). Spreads out expiry of entries
   * written together; never lengthens a TTL.
   * @default 0
   */
  ttlJitter?: number
  /**
   * How often expired entries are reclaimed in the background. Reads never return an
   * expired entry whatever this is; it bounds how long an expired entry's memory is
   * held (at most about twice this interval). The sweep timer runs only while entries
   * with a deadline exist, and never keeps the process alive.
   * @default '1s'
   */
  sweepInterval?: Duration
  /** Default timeout of `waitFor`. @default '5s' */
  waitTimeout?: Duration
  /** Source of time. @default systemClock */
  clock?: Clock
  /** Source of randomness (TTL jitter, TinyLFU admission). @default mathRandom */
  random?: Random
}

export interface SetOptions<K, V> {
  /** Time-to-live of this entry; `Infinity` for none. @default the cache's `ttl` */
  ttl?: Duration
  /** Time-to-idle of this entry. @default the cache's `tti` */
  tti?: Duration
  /** Size in bytes of this entry (for `maxBytes`). @default sizeOf(value, key) */
  size?: number
  /** The entry lives as long as this signal: when it aborts, the entry is erased. */
  signal?: AbortSignal
  /** Called for this entry's own events (`store`, then one of expire/evict/erase/flush). */
  onEvent?: CacheListener<K, V>
}

export interface WaitForOptions {
  /** How long to wait for the key to be stored. @default the cache's `waitTimeout` (5 s) */
  timeout?: Duration
  /** Aborting rejects the wait with `ERR_ABORTED`. */
  signal?: AbortSignal
}

/** A read-only snapshot of one entry, as `dump()` returns it. */
export interface EntrySnapshot<K, V> {
  readonly key: K
  readonly value: V
  /** Bytes charged against `maxBytes` (0 when the cache has no byte bound). */
  readonly size: number
  /** Milliseconds until the entry expires (TTL or idle, whichever is sooner); `Infinity` if never. */
  readonly remainingTtl: number
}

export interface MemoryCacheStats {
  readonly size: number
  readonly bytes: number
  readonly hits: number
  readonly misses: number
  readonly stores: number
  /** Sets refused because the entry was larger than `maxEntrySize`. */
  readonly rejected: number
  readonly expired: number
  readonly evicted: number
  readonly erased: number
  readonly flushed: number
  readonly waitTimeouts: number
  /** Exceptions thrown by event listeners (caught; the first one is also a process warning). */
  readonly listenerErrors: number
}
