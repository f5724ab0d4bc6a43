/**
 * The cache facade: `getOrSet`, `wrap`, fail-safe, refresh-ahead, strategies and tags on
 * top of the L1 engine and single-flight.
 *
 * An L1 entry holds an `Envelope`: the value plus its logical freshness (`freshUntil`),
 * its tag snapshot and fail-safe state. The engine's own deadline is `ttl + grace`, so a
 * value stays available as a fallback for `grace` after it stops being fresh, and the
 * engine reclaims it after that. Freshness is decided here; physical lifetime there.
 *
 * Invariants:
 * - a value is served as fresh only before `freshUntil` and while its tags are valid;
 * - a stale value (past `freshUntil`, or soft-invalidated) is served only as a fail-safe
 *   fallback: factory failure, soft timeout, or during the retry backoff after a failure;
 * - a hard-invalidated value is never served;
 * - every promise the facade creates is either returned or has a rejection handler.
 */
import type { Clock } from '../core/clock.js'
import { toMs } from '../core/duration.js'
import { neverAbortedSignal } from '../core/never-aborted-signal.js'
import { ClosedError, InvalidKeyError, InvalidOptionsError, InvalidValueError, isCacheError, LockLostError, StoreUnavailableError } from '../core/errors.js'
import type { Store } from '../store/types.js'
import { mathRandom } from '../core/random.js'
import { noTickerClock, systemClock } from '../core/system-clock.js'
import { MemoryCache } from '../memory/memory-cache.js'
import type { CacheEventType, WaitForOptions } from '../memory/types.js'
import { SingleFlight } from '../singleflight/single-flight.js'
import { TagTrie } from '../tags/tag-trie.js'
import type { TagSnapshot } from '../tags/tag-snapshot.js'
import type { TagState } from './tag-index.js'
import type { CacheErrorEvent, CacheEventPayload, CacheOptions, CacheStats, EntryOptions, Factory, FactoryContext } from './types.js'
import { Envelope } from '../tier/envelope.js'
import { L2Tier } from '../tier/l2-tier.js'
import { Bus } from '../bus/bus.js'
import { BusLink } from './bus-link.js'
import { ErrorChannel } from './error-channel.js'
import { createSecondTier } from './second-tier.js'
import { failSafeTimers } from './fail-safe-timers.js'
import { LockProtocol } from './lock-protocol.js'
import { type BatchResult, MissingBatch } from './missing-batch.js'
import { releaseStore, retainStore } from './store-users.js'
import { positive, type Resolved, resolveOptions, type Signed, TAG_SIG, tagSignature } from './resolve-options.js'
import { descriptorList, OriginIndex } from '../feeds/origin-index.js'
import { checkFeed, FeedAttachment, type AttachFeedOptions } from '../feeds/feed-attachment.js'
import type { ChangeFeed, ChangeNotice, OriginDescriptor } from '../feeds/types.js'
import { noticeTags, withOriginTags } from '../feeds/origin-tags.js'
import { capLifetime } from '../tags/origin-lifetime.js'

/** How #run (and #load before it) computes: the fallback, in the background or not, the fence. */
interface RunOptions<V> {
  /** The fail-safe fallback: a stale entry served if the factory fails or is slow. */
  readonly stale: Envelope<V> | undefined
  /** Store the result after returning it (strategies `async`, `stampede-async`). */
  readonly background: boolean
  /** Write L2 under this fence (lock protocol); `false`: not ordered after a holder's write, so no L2 write. */
  readonly fence?: number | false
}

/** What #store writes besides the value and the call's options. */
interface StoreOptions {
  /** The fresh lifetime in ms (the factory may have set it). @default the options' ttl */
  readonly ttl?: number
  /** Tags set by the factory (`ctx.setTags`), instead of the options'. */
  readonly tags?: readonly string[]
  /** The tag version taken before the factory ran (its snapshot's version). */
  readonly tagVersion?: number
  /** See RunOptions.fence. */
  readonly fence?: number | false
  /** An explicit `set`: an unencodable value, or a strict L2 write that failed, rejects. */
  readonly strict?: boolean
  /** When the computation started: entries with origins are capped from then. */
  readonly since?: number
}

const MAX_BACKOFF_FACTOR = 32
/** Distinct per-call TTLs resolved and kept (see Cache#resolve); past this the memo starts over. */
const TTL_MEMO = 64
/** An explicit `set`: strict (see StoreOptions), the options' TTL. */
const EXPLICIT_SET: StoreOptions = { strict: true }
/** The answer of a `set` that is complete when it returns. */
const DONE: Promise<void> = Promise.resolve()

export class Cache<V = unknown> {
  readonly #clock: Clock
  /** Bare values where nothing more is needed, envelopes otherwise (see tier/envelope.ts). */
  readonly #l1: MemoryCache<string, V | Envelope<V>>
  readonly #flight: SingleFlight<string, V>
  readonly #tags: TagTrie
  readonly #defaults: Resolved<V>
  readonly #maxKeyLength: number
  /** The second tier, when a store is configured. */
  readonly #l2: L2Tier<V> | undefined
  readonly #distributedLock: boolean
  /** The lock protocol, with `lock: 'distributed'` (and so a store with locks). */
  readonly #lock: LockProtocol | undefined
  /** The 'error' listeners, or a process warning per kind of failure when there are none. */
  readonly #errors = new ErrorChannel()
  /** The invalidation bus, when configured (see bus-link.ts). */
  readonly #bus: BusLink | undefined
  /** True while the bus cannot be trusted: L1 is not read. */
  #bypassL1 = false
  /**
   * True while a `getOrSet` without options may answer a bare L1 value at once: the cache
   * is open, L1 is trusted, and the defaults have no tag definition (so a bare value is a
   * plain hit for them, as in #lookedUp).
   */
  #plainHits: boolean
  /** Origins -> keys, created when origins or a feed are first used (see src/feeds). */
  #origins: OriginIndex | undefined
  readonly #feeds = new Set<FeedAttachment>()
  /** With L2 or a bus, origins also become tags, so notices reach other tiers (origin-tags.ts). */
  readonly #originTags: boolean
  /** `origins.versionTtl`: origin-tag versions live this long in L2, entries with origins no longer (origin-lifetime.ts). */
  readonly #originTtl: number
  /**
   * `l2.l1MaxAge`: the longest an L1 entry lives before L2 is read again (Infinity without
   * L2, and by default with a bus): without a bus, the stale bound across processes.
   */
  readonly #l1MaxAge: number
  #closed = false
  /** L1's eviction count when last looked at (see #afterWrite). */
  #evictionsSeen = 0
  /** The last per-call `ttl` that differed from the defaults, and what it resolved to (see #resolve). */
  #lastTtl: unknown = undefined
  #lastTtlResolved: Resolved<V> | undefined
  /** More such TTLs (an application uses a handful): resolved once each, up to TTL_MEMO. */
  readonly #ttlMemo = new Map<unknown, Resolved<V>>()
  /** `options.defaults` as given, to recognise per-call fields that repeat them. */
  readonly #given: Omit<EntryOptions, 'signal'>

  #hits = 0
  #misses = 0
  #staleHits = 0
  #factoryCalls = 0
  #factoryErrors = 0
  #factoryTimeouts = 0
  #refreshes = 0
  #tagInvalidations = 0

  constructor(options: CacheOptions = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object')
    if (options.ticker !== undefined && typeof options.ticker !== 'boolean') throw new InvalidOptionsError('ticker', `expected a boolean, got ${typeof options.ticker}`)
    if (options.ticker !== undefined && options.clock !== undefined) throw new InvalidOptionsError('ticker', 'applies to the default clock: pass createSystemClock({ ticker }) as clock instead')
    this.#clock = options.clock ?? (options.ticker === false ? noTickerClock() : systemClock)
    const memory = options.memory ?? { maxEntries: 10_000 }
    this.#l1 = new MemoryCache<string, V | Envelope<V>>({ ...memory, clock: this.#clock, random: options.random ?? mathRandom })
    this.#flight = new SingleFlight<string, V>({ clock: this.#clock, timeout: options.flight?.timeout ?? '60s', detectRecursion: options.flight?.detectRecursion ?? true })
    this.#tags = new TagTrie({ clock: this.#clock, ...options.tags })
    this.#defaults = resolveOptions<V>(options.defaults ?? {}, undefined, 'defaults.')
    this.#given = { ...options.defaults }
    const maxKeyLength = options.maxKeyLength ?? 1024
    if (!Number.isSafeInteger(maxKeyLength) || maxKeyLength < 1) throw new InvalidOptionsError('maxKeyLength', `expected a positive integer, got ${String(maxKeyLength)}`)
    this.#maxKeyLength = maxKeyLength
    const tier = createSecondTier<V>(options, { clock: this.#clock, tags: this.#tags, defaults: this.#defaults, errors: this.#errors })
    this.#distributedLock = tier.distributedLock
    this.#originTtl = tier.originTtl
    this.#l2 = tier.l2
    this.#lock = tier.lock
    this.#l1MaxAge = tier.l1MaxAge
    if (options.bus !== undefined) {
      if (!(options.bus instanceof Bus)) throw new InvalidOptionsError('bus', 'expected a Bus (memoryBus(), redisBus({ url }), createBus({ transport }))')
      const namespace = options.namespace ?? 'cache'
      if (typeof namespace !== 'string' || namespace.length === 0 || /[:#]/.test(namespace)) throw new InvalidOptionsError('namespace', 'expected a non-empty string without ":" or "#"')
      this.#bus = new BusLink(options.bus, namespace, {
        deleteKeys: (keys) => {
          for (const k of keys) this.#l1.delete(k)
        },
        clearL1: () => this.#l1.clear(),
        observeTag: (tag, version, mode) => {
          // Ratchet past the sender's version, then invalidate with a local one: every entry
          // held now predates the message, whatever the two clocks say (see bus-link.ts).
          this.#tags.observe(tag, version, mode)
          this.#tags.invalidate(tag, mode)
        },
        bypass: (bypass) => {
          this.#bypassL1 = bypass
          this.#plainHits = this.#plainHitsNow()
        },
      })
    } else this.#bus = undefined
    this.#originTags = this.#l2 !== undefined || this.#bus !== undefined
    this.#plainHits = this.#plainHitsNow()
    // Last, once nothing above can throw: a cache that failed to construct holds no store.
    if (options.store !== undefined) {
      retainStore(options.store, options.closeStore)
    }
  }

  #plainHitsNow(): boolean {
    return !this.#closed && !this.#bypassL1 && this.#defaults.tagSig === ''
  }

  /**
   * The fresh value of `key`, or the factory's result (stored per the options). Concurrent
   * misses share one factory run (strategy `stampede`, the default).
   */
  getOrSet(key: string, factory: Factory<V>, options?: EntryOptions<V>): Promise<V> {
    // The hit path of a call with the default options (or options that repeat them, or change
    // only the TTL: see #resolve), when those store bare values (see #store): the same checks
    // as below, one engine lookup, a counter and a resolved promise.
    try {
      if (this.#plainHits && typeof key === 'string' && typeof factory === 'function') {
        const length = key.length
        if (length !== 0 && length <= this.#maxKeyLength) {
          const o = options === undefined ? this.#defaults : this.#resolve(options)
          const hit = this.#l1.get(key)
          if (hit !== undefined && o.tagSig === '' && !(hit instanceof Envelope)) {
            this.#hits++
            return Promise.resolve(hit as V)
          }
          return this.#lookedUp(key, factory, o, hit)
        }
      }
      this.#checkOpen()
      this.#checkKey(key)
      if (typeof factory !== 'function') throw new InvalidOptionsError('factory', 'expected a function')
      return this.#getOrSet(key, factory, options === undefined ? this.#defaults : this.#resolve(options))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * Per-call options merged over the defaults. Options whose fields are absent or the very
   * values of `defaults` (identical: a shared array or function, an equal number or string)
   * are the defaults, resolved once at construction; those that change only `ttl` are
   * resolved once per distinct TTL value and kept (the last one checked first, then a
   * memo of up to TTL_MEMO): a call shaped `{ ttl }` allocates nothing and resolves nothing.
   * Anything else is resolved and validated per call.
   */
  #resolve(options: EntryOptions<V>): Resolved<V> {
    if (options === null || typeof options !== 'object') return resolveOptions(options, this.#defaults, '')
    const d = this.#given
    if (
      (options.tti === undefined || options.tti === d.tti) &&
      (options.tags === undefined || options.tags === d.tags) &&
      (options.origins === undefined || options.origins === d.origins) &&
      (options.grace === undefined || options.grace === d.grace) &&
      (options.graceBackoff === undefined || options.graceBackoff === d.graceBackoff) &&
      (options.timeout === undefined || options.timeout === d.timeout) &&
      (options.refreshAhead === undefined || options.refreshAhead === d.refreshAhead) &&
      (options.strategy === undefined || options.strategy === d.strategy) &&
      (options.lock === undefined || options.lock === d.lock) &&
      options.signal === undefined
    ) {
      const ttl = options.ttl
      if (ttl === undefined || ttl === d.ttl) return this.#defaults
      if (ttl === this.#lastTtl) return this.#lastTtlResolved as Resolved<V>
      let resolved = this.#ttlMemo.get(ttl)
      if (resolved === undefined) {
        // Validates the TTL (a bad one throws, and is not kept).
        resolved = resolveOptions<V>({ ttl } as EntryOptions<V>, this.#defaults, '')
        if (this.#ttlMemo.size >= TTL_MEMO) this.#ttlMemo.clear()
        this.#ttlMemo.set(ttl, resolved)
      }
      this.#lastTtl = ttl
      this.#lastTtlResolved = resolved
      return resolved
    }
    return resolveOptions(options, this.#defaults, '')
  }

  #getOrSet(key: string, factory: Factory<V>, o: Resolved<V>): Promise<V> {
    return this.#lookedUp(key, factory, o, this.#bypassL1 ? undefined : this.#l1.get(key))
  }

  /** The rest of `getOrSet` once L1 was read (`hit`: what it held; undefined when not read). */
  #lookedUp(key: string, factory: Factory<V>, o: Resolved<V>, hit: V | Envelope<V> | undefined): Promise<V> {
    try {
      let stale: Envelope<V> | undefined
      if (hit instanceof Envelope) {
        const env = hit as Envelope<V>
        const now = this.#clock.now()
        // An entry written under another tag definition (a deploy changed the tags) is a
        // miss: otherwise it could never be invalidated through the new tags.
        const state = env.tagSig === o.tagSig ? this.#state(key, env) : 'invalid'
        if (state === 'valid' && now < env.freshUntil) {
          this.#hits++
          if (env.tti !== Infinity && this.#l2 !== undefined) this.#l2.touched(key, env, now)
          if (o.refreshAhead !== 0 && now >= env.createdAt + o.refreshAhead * env.ttl) this.#refresh(key, factory, o, env)
          return Promise.resolve(env.value)
        }
        if (state !== 'invalid') {
          if (now < env.retryAt) {
            // A recent factory failure: serve the fallback instead of hammering the source.
            this.#staleHits++
            return Promise.resolve(env.value)
          }
          stale = env
        }
      } else if (hit !== undefined && o.tagSig === '') {
        // A bare value: fresh while the engine holds it. (Asked for with tags, it was written
        // under another tag definition: a miss.)
        this.#hits++
        return Promise.resolve(hit as V)
      }
      this.#misses++
      return this.#compute(key, factory, o, stale)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** The fresh value of `key` (from L1, else L2), or undefined. */
  async get(key: string): Promise<V | undefined> {
    this.#checkKey(key)
    const hit = this.#bypassL1 ? undefined : this.#l1.get(key)
    if (hit !== undefined) {
      if (!(hit instanceof Envelope)) {
        this.#hits++
        return hit as V
      }
      const env = hit as Envelope<V>
      if (this.#isFresh(key, env)) {
        this.#hits++
        if (env.tti !== Infinity && this.#l2 !== undefined) this.#l2.touched(key, env, this.#clock.now())
        return env.value
      }
    }
    if (this.#l2 !== undefined) {
      // An invalidation that arrives during the read may concern what was read: read again
      // (once) rather than keep or return it (see bus-link.ts).
      for (let attempt = 0; attempt < 2; attempt++) {
        const mark = this.#bus?.mark()
        const found = await this.#l2.read(key)
        if (!this.#unchanged(key, mark)) continue
        if (found !== undefined && this.#adopt(key, found, undefined)) {
          this.#hits++
          return found.value
        }
        break
      }
    }
    this.#misses++
    return undefined
  }

  /** Like `get`, without counting a use (no recency or idle-time change). */
  async peek(key: string): Promise<V | undefined> {
    this.#checkKey(key)
    const hit = this.#bypassL1 ? undefined : this.#l1.peek(key)
    if (!(hit instanceof Envelope)) return hit as V | undefined
    const env = hit as Envelope<V>
    return this.#isFresh(key, env) ? env.value : undefined
  }

  async has(key: string): Promise<boolean> {
    return (await this.peek(key)) !== undefined
  }

  /**
   * Stores `value` under `key` in L1 (and L2), and tells the other processes on the bus to
   * drop their copy. Resolves once written (with `l2.strictWrites`, rejects if L2 refused it).
   */
  set(key: string, value: V, options?: EntryOptions<V>): Promise<void> {
    try {
      this.#checkOpen()
      this.#checkKey(key)
      const written = this.#store(key, value, options === undefined ? this.#defaults : this.#resolve(options), EXPLICIT_SET)
      // L1 only, no bus: done now (one shared settled promise, nothing allocated).
      if (written === undefined && this.#bus === undefined) return DONE
      return this.#announceSet(key, written)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  async #announceSet(key: string, written: Promise<unknown> | undefined): Promise<void> {
    await written
    await this.#bus?.deleted([key])
  }

  /** Deletes `key` from both tiers; true when L1 held it. */
  async delete(key: string): Promise<boolean> {
    this.#checkKey(key)
    const had = this.#l1.delete(key)
    try {
      if (this.#l2 !== undefined) await this.#l2.delete(key)
    } finally {
      // Announced even when L2 failed (l2.strictWrites): other L1s must drop the key anyway.
      await this.#bus?.deleted([key])
    }
    return had
  }

  /** Empties L1 and this cache's namespace in L2 (tag versions are kept). */
  async clear(): Promise<void> {
    this.#l1.clear()
    try {
      if (this.#l2 !== undefined) await this.#l2.clear()
    } finally {
      await this.#bus?.cleared()
    }
  }

  /**
   * Invalidates every entry that depends on one of `tags` or on a tag below it.
   * `hard` (default): those entries are never served again. `soft`: they become stale,
   * still usable as fail-safe fallbacks.
   */
  async invalidateTags(tags: readonly string[], options?: { mode?: 'hard' | 'soft' }): Promise<void> {
    const mode = options?.mode ?? 'hard'
    if (mode !== 'hard' && mode !== 'soft') throw new InvalidOptionsError('mode', `expected 'hard' or 'soft', got ${JSON.stringify(mode)}`)
    if (!Array.isArray(tags)) throw new InvalidOptionsError('tags', 'expected an array of tags')
    for (const tag of tags) this.#tags.validate(tag)
    return this.#invalidate(tags, mode)
  }

  /** Invalidates validated tags here, in L2 and on the bus (origin tags included). */
  async #invalidate(tags: readonly string[], mode: 'hard' | 'soft'): Promise<void> {
    const index = this.#tags
    const versions = tags.map((tag) => index.invalidate(tag, mode))
    this.#tagInvalidations += tags.length
    try {
      if (this.#l2 !== undefined) {
        const l2 = this.#l2
        await Promise.all(tags.map((tag, i) => l2.publishInvalidation(tag, mode, versions[i] as number)))
      }
    } finally {
      await this.#bus?.invalidated(tags.map((tag, i) => ({ tag, version: versions[i] as number, mode })))
    }
  }

  /**
   * Resolves with the value of `key` once L1 holds one that `get` would return (at once if
   * it does now): a stale, grace-kept or tag-invalidated entry does not answer, a fresh one
   * stored later does. While the bus is unhealthy L1 is not trusted, so nothing answers.
   */
  async waitFor(key: string, options?: WaitForOptions): Promise<V> {
    this.#checkKey(key)
    return unwrap(await this.#l1.waitFor(key, options, (stored) => this.#servable(stored)))
  }

  /** Whether `get` would answer with this L1 entry (changes nothing, unlike #state). */
  #servable(stored: V | Envelope<V>): boolean {
    if (this.#bypassL1) return false
    if (!(stored instanceof Envelope)) return true
    const env = stored as Envelope<V>
    return (env.tags === undefined || this.#tags.check(env.tags as TagSnapshot) === 'valid') && this.#clock.now() < env.freshUntil
  }

  /**
   * Subscribes to L1 entry events (the payload carries the cached value), or to `error`:
   * failures the cache handled without failing a call (L2 down or slow, a record that did
   * not decode or decrypt, a lock lost). Returns `off`.
   */
  on(type: 'error', listener: (event: CacheErrorEvent) => void): () => void
  on(type: CacheEventType, listener: (event: CacheEventPayload<V>) => void): () => void
  on(type: CacheEventType | 'error', listener: ((event: CacheEventPayload<V>) => void) | ((event: CacheErrorEvent) => void)): () => void {
    if (typeof listener !== 'function') throw new InvalidOptionsError('listener', 'expected a function')
    if (type === 'error') {
      return this.#errors.listen(listener as (event: CacheErrorEvent) => void)
    }
    const fn = listener as (event: CacheEventPayload<V>) => void
    return this.#l1.on(type, (e) => fn({ type: e.type, key: e.key, value: e.value === undefined ? undefined : unwrap(e.value) }))
  }

  /**
   * A cached version of `fn`: the key comes from `options.key(...args)`, tags may be
   * computed from the arguments and the result.
   */
  wrap<A extends unknown[], R extends V>(
    fn: (...args: A) => R | PromiseLike<R>,
    options: Omit<EntryOptions<R>, 'tags'> & { key: (...args: A) => string; tags?: readonly string[] | ((...argsAndResult: [...A, R]) => readonly string[]) },
  ): (...args: A) => Promise<R> {
    if (typeof fn !== 'function') throw new InvalidOptionsError('fn', 'expected a function')
    if (typeof options?.key !== 'function') throw new InvalidOptionsError('key', 'expected a function (...args) => string')
    const { key, tags, ...rest } = options
    const signature = tagSignature(tags)
    return (...args: A) => {
      const entry: EntryOptions<V> & Signed = { ...(rest as EntryOptions<V>) }
      if (typeof tags === 'function') {
        entry.tags = (result: V) => tags(...args, result as R)
        entry[TAG_SIG] = signature
      } else if (tags !== undefined) entry.tags = tags
      return this.getOrSet(key(...args), () => fn(...args), entry) as Promise<R>
    }
  }

  /**
   * Like `getOrSet` for many keys: keys already cached or in flight are not recomputed;
   * `factory` is called once with the keys still missing and returns their values as a
   * Map, a plain object, or an array in the order of the keys it was given. A key it
   * leaves out resolves to `undefined` and is not cached.
   */
  async getOrSetMany(
    keys: readonly string[],
    factory: (missing: string[]) => PromiseLike<BatchResult<V>> | BatchResult<V>,
    options?: EntryOptions<V>,
  ): Promise<Array<V | undefined>> {
    if (!Array.isArray(keys)) throw new InvalidOptionsError('keys', 'expected an array of keys')
    for (const key of keys) this.#checkKey(key)
    this.#checkOpen()
    let o = options === undefined ? this.#defaults : this.#resolve(options)
    // Keys answered up front, from L1 or by the batch read from L2 (not through L1 afterwards:
    // it may be too small to keep them all).
    const answered = new Map<string, V>()
    if (this.#l2 !== undefined) {
      // One L2 round trip for every key L1 cannot answer; the misses then skip their own read.
      const l2 = this.#l2
      const unknown: string[] = []
      for (const k of new Set(keys)) {
        const hit = this.#freshInL1(k, o) ? this.#l1.get(k) : undefined
        if (hit !== undefined) {
          answered.set(k, unwrap(hit))
          this.#hits++
        } else if (!this.#flight.inFlight(k)) unknown.push(k)
      }
      if (unknown.length > 0) {
        const mark = this.#bus?.mark()
        const found = await l2.readMany(unknown)
        found.forEach((env, i) => {
          const key = unknown[i] as string
          if (env !== undefined && this.#unchanged(key, mark) && this.#adopt(key, env, o)) {
            answered.set(key, env.value)
            this.#hits++
          }
        })
        o = { ...o, l2Checked: new Set(unknown) }
      }
    }
    const unique = [...new Set(keys)].filter((k) => !answered.has(k))
    const batch = new MissingBatch<V>(unique.length)
    const results = new Map<string, Promise<V | undefined>>()
    for (const key of unique) {
      let asked = false
      const result = this.#getOrSet(
        key,
        async (ctx) => {
          asked = true
          const values = await batch.ask(key)
          const v = values.get(key)
          // Not returned by the batch: answer undefined, cache nothing.
          if (v === undefined) ctx.skip()
          return v as V
        },
        o,
      )
      const settled = (): void => {
        if (!asked) batch.arrive()
      }
      result.then(settled, settled)
      results.set(key, result)
    }
    await batch.run(factory)
    return Promise.all(keys.map((k) => (answered.has(k) ? answered.get(k) : results.get(k))))
  }

  /**
   * Starts `feed` and erases the entries whose `origins` its change notices name (and the
   * feed's scope when its connection is lost and back, unless `flushOnReconnect: false`).
   * Resolves once the feed listens; rejects (`ERR_FEED_UNAVAILABLE`) if it cannot, with
   * nothing left running. The cache owns the feed: the returned `detach()` and `close()`
   * close it.
   */
  async attachFeed(feed: ChangeFeed, options?: AttachFeedOptions): Promise<() => Promise<void>> {
    this.#checkOpen()
    const attachment = new FeedAttachment(feed, { index: () => this.#originIndex(), erase: (keys) => this.#eraseKeys(keys), invalidate: (notice) => this.#invalidateNotice(notice) }, checkFeed(feed, options))
    this.#feeds.add(attachment)
    try {
      await feed.start(attachment)
    } catch (err) {
      this.#feeds.delete(attachment)
      throw err
    }
    if (this.#closed) await feed.close()
    return async () => {
      if (this.#feeds.delete(attachment)) await feed.close()
    }
  }

  stats(): CacheStats {
    const l1 = this.#l1.stats()
    return {
      size: l1.size,
      hits: this.#hits,
      misses: this.#misses,
      staleHits: this.#staleHits,
      factoryCalls: this.#factoryCalls,
      factoryErrors: this.#factoryErrors,
      factoryTimeouts: this.#factoryTimeouts,
      refreshes: this.#refreshes,
      flightJoins: this.#flight.stats().joins,
      tagInvalidations: this.#tagInvalidations,
      tagNodes: this.#tags.stats().nodes,
      evictions: { expire: l1.expired, evict: l1.evicted, erase: l1.erased, flush: l1.flushed },
      origins: this.#origins === undefined ? undefined : { keys: this.#origins.keys, descriptors: this.#origins.descriptors },
      l2: this.#l2Stats(),
      ...(this.#bus === undefined ? {} : { bus: this.#bus.stats() }),
    }
  }

  /**
   * Empties the cache and refuses further writes (`ERR_CLOSED`). Closes the bus and the
   * store with the last cache using them (the store unless `closeStore: false`). Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#plainHits = false
    const feeds = [...this.#feeds]
    this.#feeds.clear()
    await Promise.all(feeds.map((a) => a.feed.close().catch(() => {})))
    this.#l1.close()
    this.#origins?.clear()
    this.#tags.close()
    // Lock releases still on their way: answered before the store may close.
    await this.#lock?.settled()
    this.#l2?.close()
    // The bus closes with the last cache attached to it.
    await this.#bus?.close()
    if (this.#l2 !== undefined) await this.#releaseStore(this.#l2.store.store)
  }

  /** Closes `store` if this was the last open cache using it and nobody kept it (closeStore). */
  async #releaseStore(store: Store): Promise<void> {
    if (!releaseStore(store)) return
    try {
      await store.close()
    } catch (err) {
      // close() of the cache never fails for its store: the failure is reported.
      this.#errors.emit(isCacheError(err) ? err : new StoreUnavailableError(`Store ${store.name} failed to close: ${err instanceof Error ? err.message : String(err)}`, { cause: err }), undefined)
    }
  }

  // ---- internals ---------------------------------------------------------------------

  /** The origin index, created on first use with the L1 listeners that keep it in step. */
  #originIndex(): OriginIndex {
    if (this.#origins === undefined) {
      const index = new OriginIndex()
      // Every way an entry leaves L1 takes it out of the index (overwrites: see #store).
      const drop = (e: { key: string }): void => index.remove(e.key)
      for (const type of ['expire', 'evict', 'erase', 'flush'] as const) this.#l1.on(type, drop)
      this.#origins = index
    }
    return this.#origins
  }

  /** Indexes a stored key under its origins (none: out of the index), if L1 kept it. */
  #indexOrigins(key: string, origins: readonly OriginDescriptor[] | undefined): void {
    if (origins === undefined) this.#origins?.remove(key)
    else if (this.#l1.has(key)) this.#originIndex().assign(key, origins)
  }

  /**
   * A feed's erasure: from L1 now; then from L2 and, with a bus, announced to the other
   * processes (which may hold the entry without origins, read from L2), in the background.
   */
  #eraseKeys(keys: readonly string[]): void {
    for (const key of keys) this.#l1.delete(key)
    const l2 = this.#l2
    const bus = this.#bus
    if (l2 === undefined && bus === undefined) return
    void (async () => {
      if (l2 !== undefined) {
        await Promise.all(
          keys.map((key) =>
            l2.delete(key).catch((err: unknown) => {
              if (isCacheError(err)) this.#errors.emit(err, key)
            }),
          ),
        )
      }
      // After L2: a process that re-reads on the message must not find the old value.
      await bus?.deleted(keys)
    })().catch(() => {
      // Only a closed bus rejects; the erasure in L1 and L2 stands.
    })
  }

  /**
   * A notice's origin tags, invalidated hard here, in L2 and on the bus (in the background),
   * so that entries with matching origins that this L1 does not hold are never served.
   */
  #invalidateNotice(notice: ChangeNotice): void {
    if (!this.#originTags || this.#closed) return
    this.#invalidate(noticeTags(notice), 'hard').catch(() => {
      // Only a closed bus rejects; the versions are recorded here and in L2.
    })
  }

  /** Whether a getOrSet with these options would be an L1 hit (counts nothing, changes nothing). */
  #freshInL1(key: string, o: Resolved<V>): boolean {
    if (this.#bypassL1) return false
    const hit = this.#l1.peek(key)
    if (hit === undefined) return false
    if (!(hit instanceof Envelope)) return o.tagSig === ''
    const env = hit as Envelope<V>
    return env.tagSig === o.tagSig && (env.tags === undefined || this.#tags.check(env.tags as TagSnapshot) === 'valid') && this.#clock.now() < env.freshUntil
  }

  #isFresh(key: string, env: Envelope<V>): boolean {
    return this.#state(key, env) === 'valid' && this.#clock.now() < env.freshUntil
  }

  #state(key: string, env: Envelope<V>): TagState {
    if (env.tags === undefined) return 'valid'
    const state = this.#tags.check(env.tags as TagSnapshot)
    if (state === 'invalid') this.#l1.delete(key)
    return state
  }

  #compute(key: string, factory: Factory<V>, o: Resolved<V>, stale: Envelope<V> | undefined): Promise<V> {
    const run = this.#l2 === undefined ? this.#run : this.#load
    switch (o.strategy) {
      case 'none':
        return run.call(this, key, factory, o, { stale, background: false })
      case 'async':
        return run.call(this, key, factory, o, { stale, background: true })
      case 'stampede':
      case 'stampede-async':
        // keepAlive: callers who leave never cancel the factory; its result is stored for
        // the others and the next readers (so the flight's own signal never aborts).
        return this.#flight.run(key, () => run.call(this, key, factory, o, { stale, background: o.strategy === 'stampede-async' }), {
          signal: o.signal,
          keepAlive: true,
        })
    }
  }

  /**
   * A miss in L1 with a second tier: read L2 first (one read per key across concurrent
   * callers under `stampede`); compute only if L2 has no fresh, valid value, under the
   * distributed lock when configured. An L2 value past its freshness but within grace
   * becomes the fail-safe fallback.
   */
  async #load(key: string, factory: Factory<V>, o: Resolved<V>, run: RunOptions<V>): Promise<V> {
    let stale = run.stale
    const l2 = this.#l2 as L2Tier<V>
    // getOrSetMany has just read this key in its batch.
    const mark = this.#bus?.mark()
    const found = o.l2Checked?.has(key) === true ? undefined : await l2.read(key)
    if (found !== undefined) {
      if (this.#unchanged(key, mark) && this.#adopt(key, found, o)) return found.value
      if (stale === undefined && found.tagSig === o.tagSig && this.#state(key, found) !== 'invalid') stale = found
    }
    if (this.#distributedLock) return this.#runLocked(key, factory, o, stale)
    return this.#run(key, factory, o, { stale, background: run.background })
  }

  /** A miss (or refresh) under the distributed lock protocol (lock-protocol.ts). */
  #runLocked(key: string, factory: Factory<V>, o: Resolved<V>, stale: Envelope<V> | undefined): Promise<V> {
    const l2 = this.#l2 as L2Tier<V>
    return (this.#lock as LockProtocol).run<V>({
      key,
      lockKey: l2.lockKey(key),
      lease: o.lockLease,
      wait: o.lockWait,
      reread: async () => {
        const mark = this.#bus?.mark()
        const found = await l2.read(key)
        return found !== undefined && this.#unchanged(key, mark) && this.#adopt(key, found, o) ? found : undefined
      },
      compute: (fence) => this.#run(key, factory, o, { stale, background: false, fence }),
    })
  }

  /**
   * Puts an envelope read from L2 into L1 if it is fresh and valid for these options (or for
   * any options when `o` is undefined, as `get` has none). Never outlives L2: same absolute
   * deadline, and an idle deadline shortened by the touch debounce (see L2Tier.l1Tti).
   */
  #adopt(key: string, env: Envelope<V>, o: Resolved<V> | undefined): boolean {
    const now = this.#clock.now()
    if ((o !== undefined && env.tagSig !== o.tagSig) || now >= env.freshUntil || env.keepUntil <= now) return false
    if (env.tags !== undefined && this.#tags.check(env.tags as TagSnapshot) !== 'valid') return false
    const l2 = this.#l2 as L2Tier<V>
    if (env.tags === undefined && env.tagSig === '' && env.keepUntil === env.freshUntil && env.tti === Infinity && (o === undefined || o.refreshAhead === 0)) {
      this.#l1.set(key, env.value, { ttl: Math.min(this.#l1MaxAge, env.freshUntil === Infinity ? Infinity : Math.max(1, env.freshUntil - now)) })
      this.#afterWrite()
      return true
    }
    this.#l1.set(key, env, { ttl: Math.min(this.#l1MaxAge, env.keepUntil === Infinity ? Infinity : Math.max(1, env.keepUntil - now)), tti: l2.l1Tti(env.tti) })
    this.#afterWrite()
    if (env.tti !== Infinity) {
      env.touchedAt = -Infinity
      l2.touched(key, env, now)
    }
    return true
  }

  /** False when a bus message invalidated `key` after `mark` was taken (see bus-link.ts). */
  #unchanged(key: string, mark: number | undefined): boolean {
    return mark === undefined || (this.#bus as BusLink).unchanged(key, mark)
  }

  #l2Stats(): CacheStats['l2'] {
    if (this.#l2 === undefined) return undefined
    const tier = this.#l2.stats()
    const store = this.#l2.store.stats()
    return { ...tier, ...store, lock: { waits: this.#lock?.waits ?? 0, degraded: this.#lock?.degraded ?? 0 } }
  }

  /**
   * Runs the factory once with timeouts and fail-safe; stores its result. `fence`: write L2
   * under it (lock protocol); `false`: the write could not be ordered after a lock holder's,
   * so L2 is not written.
   */
  #run(key: string, factory: Factory<V>, o: Resolved<V>, run: RunOptions<V>): Promise<V> {
    const { stale, background, fence } = run
    // Only a hard timeout can abort a factory; creating a controller costs microseconds.
    const controller = o.hard === Infinity ? undefined : new AbortController()
    let ttl = o.ttl
    let tags: readonly string[] | undefined
    let skipped = false
    const ctx: FactoryContext<V> = {
      key,
      stale: stale?.value,
      signal: controller?.signal ?? neverAbortedSignal(),
      setTtl: (d) => {
        ttl = positive(toMs(d, 'ttl'), 'ttl')
      },
      setTags: (t) => {
        if (!Array.isArray(t)) throw new InvalidOptionsError('tags', 'expected an array of tags')
        for (const tag of t) this.#tags.validate(tag)
        tags = t
      },
      skip: () => {
        skipped = true
      },
    }
    this.#factoryCalls++
    // Taken before the factory reads its source: an invalidation that lands while it runs
    // must invalidate what it returns.
    // (No later than the tag version: entries with origins are capped from here.)
    const startedAt = this.#clock.now()
    const tagVersion = this.#tags.currentVersion()
    const busMark = this.#bus?.mark()
    let produced: Promise<V>
    try {
      produced = Promise.resolve(factory(ctx))
    } catch (err) {
      produced = Promise.reject(err)
    }
    const stored = produced.then(
      (value) => {
        if (!skipped && !this.#closed && this.#unchanged(key, busMark)) {
          if (background) queueMicrotask(() => this.#storeQuietly(key, value, o, { ttl, tags, tagVersion, since: startedAt }))
          else {
            // With L2 the store is awaited (it never rejects: L2 failures are queued).
            const written = this.#store(key, value, o, { ttl, tags, tagVersion, fence, since: startedAt })
            if (written !== undefined) return written.then(() => value)
          }
        }
        return value
      },
      (err: unknown) => {
        this.#factoryErrors++
        throw err
      },
    )
    if (o.soft === Infinity && o.hard === Infinity) {
      return stale === undefined ? stored : stored.catch(() => this.#fallBack(key, stale, o))
    }
    return failSafeTimers(stored, {
      clock: this.#clock,
      key,
      stale,
      soft: o.soft,
      hard: o.hard,
      controller,
      fallBack: (stale) => this.#fallBack(key, stale, o),
      onSoft: () => this.#staleHits++,
      onHard: () => this.#factoryTimeouts++,
    })
  }

  /** Serves the stale value after a failure and schedules the next retry (backoff). */
  #fallBack(key: string, stale: Envelope<V>, o: Resolved<V>): V {
    const now = this.#clock.now()
    stale.failures++
    stale.retryAt = now + o.graceBackoff * Math.min(MAX_BACKOFF_FACTOR, 2 ** (stale.failures - 1))
    this.#staleHits++
    // Put the fallback back if it was displaced, for the rest of its grace.
    if (this.#l1.peek(key) !== stale && stale.keepUntil > now) this.#l1.set(key, stale, { ttl: Math.min(this.#l1MaxAge, stale.keepUntil - now) })
    return stale.value
  }

  #refresh(key: string, factory: Factory<V>, o: Resolved<V>, env: Envelope<V>): void {
    if (this.#flight.inFlight(key)) return
    this.#refreshes++
    // Under the lock protocol like a miss: one refresh in the cluster, written fenced, so a
    // holder granted earlier cannot overwrite the refreshed value (nor it a newer one).
    const refresh = this.#distributedLock ? () => this.#runLocked(key, factory, o, env) : () => this.#run(key, factory, o, { stale: env, background: false })
    this.#flight.run(key, refresh, { keepAlive: true }).catch(() => {
      // Counted as a factory error; the current value stays until it expires.
    })
  }

  /**
   * Stores in L1 and, with a second tier, in L2 (the returned promise; it never rejects,
   * except for an explicit `set` under `l2.strictWrites` whose L2 write did not land).
   * A value the codec refuses (too large, not representable) is stored in L1 only and
   * reported on the error channel — or, when `strict` (an explicit `set`), refused with a
   * typed error before anything is written. `since`: when the value's computation started
   * (its tag version was taken); an entry with origins in L2 lives at most `origins.versionTtl` from then.
   * `fence` (see #run): a fenced write that L2 does not confirm leaves no trace here: the L1
   * copy is dropped (if still ours), and a refusal is reported as `ERR_LOCK_LOST`.
   */
  #store(key: string, value: V, o: Resolved<V>, w: StoreOptions): Promise<unknown> | undefined {
    if (value === undefined) return undefined
    const { tagVersion, fence, strict = false, since } = w
    let ttl = w.ttl ?? o.ttl
    // Computed before anything is written: a bad origins function fails the store whole.
    const origins = o.origins === undefined ? undefined : typeof o.origins === 'function' ? descriptorList(o.origins(value), 'origins') : o.origins
    const now = this.#clock.now()
    let tags: readonly string[] | undefined = w.tags
    if (tags === undefined && o.tags !== undefined) tags = typeof o.tags === 'function' ? o.tags(value) : o.tags
    const derived = origins !== undefined && this.#originTags
    if (derived) tags = withOriginTags(tags, origins)
    const snapshot = tags === undefined || tags.length === 0 ? undefined : this.#tags.snapshot(tags, tagVersion, derived)
    let freshUntil = now + ttl
    let keepUntil = freshUntil + o.grace
    const l2 = this.#l2
    if (derived && l2 !== undefined && this.#originTtl !== Infinity) {
      // Never outlive the origin-tag versions that may invalidate it (origin-lifetime.ts).
      ;({ freshUntil, keepUntil } = capLifetime(freshUntil, keepUntil, since ?? now, this.#originTtl))
      // Computed for longer than that: returned to the caller, not cached.
      if (keepUntil <= now) return undefined
      ttl = freshUntil - now
    }
    // Nothing beyond the engine's TTL and TTI: the value is stored bare (no envelope to read on a hit).
    const bare = snapshot === undefined && o.tagSig === '' && o.grace === 0 && o.refreshAhead === 0 && (l2 === undefined || o.tti === Infinity)
    if (l2 === undefined) {
      if (bare) this.#l1.setMs(key, value, ttl, o.tti)
      else this.#l1.setMs(key, new Envelope(value, now, freshUntil, ttl, keepUntil, o.tti, snapshot, o.tagSig), keepUntil === Infinity ? Infinity : Math.max(1, keepUntil - now), o.tti)
      this.#afterWrite()
      if (origins !== undefined || this.#origins !== undefined) this.#indexOrigins(key, origins)
      return undefined
    }
    const env = new Envelope(value, now, freshUntil, ttl, keepUntil, o.tti, snapshot, o.tagSig)
    let bytes: Uint8Array | undefined
    try {
      bytes = l2.encode(key, env)
    } catch (err) {
      const error = isCacheError(err) ? err : new InvalidValueError(`The value for key ${JSON.stringify(key)} cannot be encoded for L2: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
      if (strict) throw error
      this.#errors.emit(error, key)
    }
    // Without a bus, L1 trusts what it holds for l1MaxAge at most, then reads L2 again.
    if (bare) this.#l1.setMs(key, value, Math.min(this.#l1MaxAge, ttl), o.tti)
    else this.#l1.setMs(key, env, Math.min(this.#l1MaxAge, keepUntil === Infinity ? Infinity : Math.max(1, keepUntil - now)), l2.l1Tti(o.tti))
    this.#afterWrite()
    if (origins !== undefined || this.#origins !== undefined) this.#indexOrigins(key, origins)
    if (bytes === undefined || fence === false) return undefined
    if (fence !== undefined) {
      return l2.writeFenced(key, env, bytes, fence).then((outcome) => {
        if (outcome === 'written') return
        // Refused: a newer value is in L2, so ours must not be served here either. Failed: it
        // may have been refused, so the same. Only our own copy goes (a later set stays).
        if (this.#l1.peek(key) === (bare ? value : env)) this.#l1.delete(key)
        if (outcome === 'refused') this.#errors.emit(new LockLostError(key, 'was taken over: a newer value was written first, so this fenced write was refused'), key)
      })
    }
    const written = l2.write(key, env, bytes)
    if (!l2.store.strictWrites) return written
    // strictWrites: the write rejects when it did not land. An explicit `set` reports it and
    // drops the L1 copy (the caller was told the value is not stored: reads go back to
    // whatever L2 holds); a cache fill keeps its L1 copy, and the error went to 'error'.
    return written.catch((err: unknown) => {
      if (!strict) return
      if (this.#l1.peek(key) === (bare ? value : env)) this.#l1.delete(key)
      throw err
    })
  }

  /**
   * After a write to L1: an eviction means memory pressure, so the tag trie may shed idle
   * nodes too (it throttles itself). Polled here rather than by an 'evict' listener, which
   * would make the engine build an event per eviction and give up recycling slots.
   */
  #afterWrite(): void {
    const evictions = this.#l1.evictions
    if (evictions !== this.#evictionsSeen) {
      this.#evictionsSeen = evictions
      this.#tags.pruneUnderPressure()
    }
  }

  #storeQuietly(key: string, value: V, o: Resolved<V>, w: StoreOptions): void {
    try {
      void this.#store(key, value, o, w)
    } catch {
      // A background store that fails (closed cache, bad tags) loses only a cache fill.
      this.#factoryErrors++
    }
  }

  #checkKey(key: unknown): asserts key is string {
    if (typeof key !== 'string') throw new InvalidKeyError(`Keys must be strings, got ${typeof key}`)
    if (key.length === 0) throw new InvalidKeyError('Keys must not be empty')
    if (key.length > this.#maxKeyLength) throw new InvalidKeyError(`Key of ${key.length} characters exceeds maxKeyLength ${this.#maxKeyLength}`)
  }

  #checkOpen(): void {
    if (this.#closed) throw new ClosedError()
  }
}

function unwrap<V>(stored: V | Envelope<V>): V {
  return stored instanceof Envelope ? (stored as Envelope<V>).value : stored
}

/** Creates a cache with the embedded defaults, overridden by `options`. */
export function createCache<V = unknown>(options: CacheOptions = {}): Cache<V> {
  return new Cache<V>(options)
}
