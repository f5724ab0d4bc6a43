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
import type { Duration } from '../core/duration.js'
import { ClosedError, InvalidKeyError, InvalidOptionsError, InvalidValueError, isCacheError, StoreUnavailableError } from '../core/errors.js'
import type { Store } from '../store/types.js'
import { mathRandom } from '../core/random.js'
import { noTickerClock, systemClock } from '../core/system-clock.js'
import { MemoryCache } from '../memory/memory-cache.js'
import type { CacheEventType, WaitForOptions } from '../memory/types.js'
import { SingleFlight } from '../singleflight/single-flight.js'
import { TagTrie } from '../tags/tag-trie.js'
import type { TagSnapshot } from '../tags/tag-snapshot.js'
import type { CacheErrorEvent, CacheEventPayload, CacheOptions, CacheStats, EntryOptions, Factory, FactoryContext, TagsOption } from './types.js'
import { Envelope } from '../tier/envelope.js'
import type { L2Tier } from '../tier/l2-tier.js'
import { Bus } from '../bus/bus.js'
import { BusLink } from './bus-link.js'
import { Computation } from './computation.js'
import { EntryWriter, type FacadeCounts, type StoreOptions } from './entry-writer.js'
import { ErrorChannel } from './error-channel.js'
import { createSecondTier } from './second-tier.js'
import type { LockProtocol } from './lock-protocol.js'
import { type BatchResult, MissingBatch } from './missing-batch.js'
import { OriginLink } from './origin-link.js'
import { releaseStore, retainStore } from './store-users.js'
import { checkCacheOptionNames, checkEntryOptionNames, ENTRY_OPTIONS } from './option-names.js'
import { type Resolved, resolveOptions, type Signed, TAG_SIG, tagSignature } from './resolve-options.js'
import { OptionsMemo } from './options-memo.js'
import type { AttachFeedOptions } from '../feeds/feed-attachment.js'
import type { ChangeFeed } from '../feeds/types.js'
import { getOrSetChannel, type GetOrSetTrace, isTraced, traceAsync } from '../core/tracing.js'

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
  /** Origins and change feeds (origin-link.ts). */
  readonly #origins: OriginLink<V>
  /** Writes to L1 and L2, adoption of L2 reads, tag checks of L1 entries (entry-writer.ts). */
  readonly #writer: EntryWriter<V>
  /** Misses and refreshes: strategies, L2 first, the lock, the factory (computation.ts). */
  readonly #computation: Computation<V>
  /** Counters moved by the writer and the computation as well. */
  readonly #counts: FacadeCounts = { staleHits: 0, factoryCalls: 0, factoryErrors: 0, factoryTimeouts: 0, refreshes: 0 }
  #closed = false
  /** No second tier and no bus: an explicit `set` is complete once L1 holds the value. */
  readonly #l1Alone: boolean
  /** The last per-call `ttl` of each type that differed from the defaults, and what it resolved to (see #resolve). */
  #lastTtlString = ''
  #lastStringResolved: Resolved<V> | undefined
  #lastTtlNumber = NaN
  #lastNumberResolved: Resolved<V> | undefined
  /** More such TTLs (an application uses a handful): resolved once each, up to TTL_MEMO. */
  readonly #ttlMemo = new Map<unknown, Resolved<V>>()
  /** Other per-call option shapes (`{ ttl, tags }`, `{ ttl, grace }`...), resolved once each (options-memo.ts). */
  readonly #optionsMemo: OptionsMemo<V>
  /** `options.defaults` as given, to recognise per-call fields that repeat them. */
  readonly #given: Omit<EntryOptions, 'signal'>
  /** `options.namespace` (default 'cache'), named in trace contexts (core/tracing.ts). */
  readonly #namespace: string

  #hits = 0
  #misses = 0
  #tagInvalidations = 0

  constructor(options: CacheOptions = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object')
    checkCacheOptionNames(options)
    if (options.ticker !== undefined && typeof options.ticker !== 'boolean') throw new InvalidOptionsError('ticker', `expected a boolean, got ${typeof options.ticker}`)
    if (options.ticker !== undefined && options.clock !== undefined) throw new InvalidOptionsError('ticker', 'applies to the default clock: pass createSystemClock({ ticker }) as clock instead')
    this.#clock = options.clock ?? (options.ticker === false ? noTickerClock() : systemClock)
    // Nested option groups of another shape were ignored (flight: 5) or spread as nothing (tags: 5).
    for (const group of ['memory', 'flight', 'tags', 'l2'] as const) {
      const value: unknown = options[group]
      if (value !== undefined && (value === null || typeof value !== 'object' || Array.isArray(value))) throw new InvalidOptionsError(group, `expected an object, got ${JSON.stringify(value)}`)
    }
    const memory = options.memory ?? { maxEntries: 10_000 }
    // These belong elsewhere (defaults.ttl / .tti, the top-level clock and random); given here they were ignored.
    const where = { ttl: 'defaults.ttl', tti: 'defaults.tti', clock: 'clock', random: 'random' } as const
    for (const field of ['ttl', 'tti', 'clock', 'random'] as const) {
      if ((memory as Record<string, unknown>)[field] !== undefined) throw new InvalidOptionsError(`memory.${field}`, `not an option of the in-process tier here: use ${where[field]}`)
    }
    this.#l1 = nested('memory.', () => new MemoryCache<string, V | Envelope<V>>({ ...memory, clock: this.#clock, random: options.random ?? mathRandom }))
    this.#flight = nested('flight.', () => new SingleFlight<string, V>({ clock: this.#clock, timeout: options.flight?.timeout ?? '60s', detectRecursion: options.flight?.detectRecursion ?? true }))
    this.#tags = nested('tags.', () => new TagTrie({ clock: this.#clock, ...options.tags }))
    this.#defaults = resolveOptions<V>(options.defaults ?? {}, undefined, 'defaults.')
    // Fixed default tags are checked now, so a malformed one fails here and not every call.
    const defaultTags = options.defaults?.tags
    if (Array.isArray(defaultTags)) {
      for (const tag of defaultTags) {
        try {
          this.#tags.validate(tag)
        } catch (err) {
          throw new InvalidOptionsError('defaults.tags', err instanceof Error ? err.message : String(err), { cause: err })
        }
      }
    }
    this.#given = { ...options.defaults }
    this.#optionsMemo = new OptionsMemo<V>(this.#defaults)
    // The last string TTL starts as a real one, resolved: left '', it matched a call's
    // `ttl: ''` with nothing resolved for it (a TypeError instead of ERR_INVALID_OPTIONS).
    this.#ttlResolved('5m')
    const namespace = options.namespace ?? 'cache'
    // Checked with or without a second tier or a bus: a bad one is refused before it is used.
    if (typeof namespace !== 'string' || namespace.length === 0 || /[:#]/.test(namespace)) throw new InvalidOptionsError('namespace', 'expected a non-empty string without ":" or "#"')
    this.#namespace = namespace
    const maxKeyLength = options.maxKeyLength ?? 1024
    if (!Number.isSafeInteger(maxKeyLength) || maxKeyLength < 1) throw new InvalidOptionsError('maxKeyLength', `expected a positive integer, got ${String(maxKeyLength)}`)
    this.#maxKeyLength = maxKeyLength
    const tier = createSecondTier<V>(options, { clock: this.#clock, tags: this.#tags, defaults: this.#defaults, errors: this.#errors })
    this.#l2 = tier.l2
    this.#lock = tier.lock
    if (options.bus !== undefined) {
      if (!(options.bus instanceof Bus)) throw new InvalidOptionsError('bus', 'expected a Bus (memoryBus(), redisBus({ url }), createBus({ transport }))')
      const required = options.bus.requiredStore()
      if (required !== undefined && required !== options.store) throw new InvalidOptionsError('bus', "this bus hears changes through its store's own watch (etcdBus): the cache's store must be that store, or no write of this cache would reach the others")
      this.#bus = new BusLink(options.bus, this.#namespace, {
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
    this.#l1Alone = this.#l2 === undefined && this.#bus === undefined
    // With L2 or a bus, origins also become tags, so notices reach other tiers (origin-tags.ts).
    const originTags = this.#l2 !== undefined || this.#bus !== undefined
    const isClosed = (): boolean => this.#closed
    const base = { clock: this.#clock, l2: this.#l2, bus: this.#bus, counts: this.#counts }
    this.#origins = new OriginLink<V>({ l1: this.#l1, l2: this.#l2, bus: this.#bus, errors: this.#errors, originTags, invalidateTags: (tags, mode) => this.#invalidate(tags, mode), isClosed })
    this.#writer = new EntryWriter<V>({ ...base, l1: this.#l1, tags: this.#tags, errors: this.#errors, origins: this.#origins, originTags, originTtl: tier.originTtl, l1MaxAge: tier.l1MaxAge })
    this.#computation = new Computation<V>({ ...base, flight: this.#flight, tags: this.#tags, lock: this.#lock, writer: this.#writer, isClosed, namespace: this.#namespace })
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
   *
   * Types: on an untyped cache (`createCache()`, a `Cache<unknown>`) the value type is
   * inferred per call from the factory, so `await cache.getOrSet('a', async () => 42)` is a
   * `number` (like any cache keyed by strings, it trusts that one key holds one type). On a
   * typed cache (`createCache<User>()`) the factory must return a `V` and the result is a
   * `V`. The factory's `ctx.stale` is typed with the cache's `V`.
   */
  getOrSet<T extends V = V>(key: string, factory: (ctx: FactoryContext<V>) => T | PromiseLike<T>, options?: EntryOptions<T>): Promise<unknown extends V ? T : V> {
    if (isTraced(getOrSetChannel)) return this.#tracedGetOrSet(key, factory, options as EntryOptions<V> | undefined) as Promise<unknown extends V ? T : V>
    return this.#getOrSetPublic(key, factory, options as EntryOptions<V> | undefined) as Promise<unknown extends V ? T : V>
  }

  /** `getOrSet` while someone subscribes to `stratacache:cache:getOrSet` (core/tracing.ts). */
  #tracedGetOrSet(key: string, factory: Factory<V>, options: EntryOptions<V> | undefined): Promise<V> {
    const context: GetOrSetTrace = { key: typeof key === 'string' ? key : String(key), namespace: this.#namespace, outcome: undefined }
    return traceAsync(getOrSetChannel, context, () => {
      // The L1 outcome is decided synchronously: read off the counters it moved.
      const hits = this.#hits
      const misses = this.#misses
      const stale = this.#counts.staleHits
      const answer = this.#getOrSetPublic(key, factory, options)
      context.outcome = this.#hits !== hits ? 'hit' : this.#misses !== misses ? 'miss' : this.#counts.staleHits !== stale ? 'stale' : undefined
      return answer
    })
  }

  #getOrSetPublic(key: string, factory: Factory<V>, options: EntryOptions<V> | undefined): Promise<V> {
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
    // The common shapes in little bytecode, so that V8 inlines this into the hit path (its
    // budget is in bytecode): other fields absent; fields present (even repeating the
    // defaults) go out of line to #resolveFields.
    if (
      options !== null &&
      typeof options === 'object' &&
      options.tti === undefined &&
      options.tags === undefined &&
      options.origins === undefined &&
      options.grace === undefined &&
      options.graceBackoff === undefined &&
      options.timeout === undefined &&
      options.refreshAhead === undefined &&
      options.strategy === undefined &&
      options.lock === undefined &&
      options.signal === undefined
    ) {
      const ttl = options.ttl
      if (ttl === undefined) return this.#defaults
      // Compared per type: each comparison stays monomorphic (string to string is one pointer
      // compare for literals), where one against `unknown` went through the generic builtin.
      if (typeof ttl === 'string') {
        if (ttl === this.#lastTtlString) return this.#lastStringResolved as Resolved<V>
      } else if (ttl === this.#lastTtlNumber) return this.#lastNumberResolved as Resolved<V>
      return this.#ttlResolved(ttl)
    }
    return this.#resolveFields(options)
  }

  /** #resolve of options with fields present: those that repeat the defaults are the defaults. */
  #resolveFields(options: EntryOptions<V>): Resolved<V> {
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
      // Off the hit path: straight to the memo (#resolve checks the last TTL first).
      const ttl = options.ttl
      return ttl === undefined ? this.#defaults : this.#ttlResolved(ttl)
    }
    return this.#optionsMemo.resolve(options)
  }

  /** A TTL other than the last one of its type: the defaults' own, or resolved once and kept. */
  #ttlResolved(ttl: Duration): Resolved<V> {
    let resolved = ttl === this.#given.ttl ? this.#defaults : this.#ttlMemo.get(ttl)
    if (resolved === undefined) {
      // Validates the TTL (a bad one throws, and is not kept).
      resolved = resolveOptions<V>({ ttl } as EntryOptions<V>, this.#defaults, '')
      if (this.#ttlMemo.size >= TTL_MEMO) this.#ttlMemo.clear()
      this.#ttlMemo.set(ttl, resolved)
    }
    if (typeof ttl === 'string') {
      this.#lastTtlString = ttl
      this.#lastStringResolved = resolved
    } else {
      this.#lastTtlNumber = ttl
      this.#lastNumberResolved = resolved
    }
    return resolved
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
        const state = env.tagSig === o.tagSig ? this.#writer.state(key, env) : 'invalid'
        if (state === 'valid' && now < env.freshUntil) {
          this.#hits++
          if (env.tti !== Infinity && this.#l2 !== undefined) this.#l2.touched(key, env, now)
          // A failed refresh set retryAt (graceBackoff, doubling): no new one before it, or every hit would run the failing factory again.
          if (o.refreshAhead !== 0 && now >= env.createdAt + o.refreshAhead * env.ttl && now >= env.retryAt) this.#computation.refresh(key, factory, o, env)
          return Promise.resolve(env.value)
        }
        if (state !== 'invalid') {
          if (now < env.retryAt) {
            // A recent factory failure: serve the fallback instead of hammering the source.
            this.#counts.staleHits++
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
      return this.#computation.compute(key, factory, o, stale)
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
        if (!this.#writer.unchanged(key, mark)) continue
        if (found !== undefined && this.#writer.adopt(key, found, undefined)) {
          this.#hits++
          return found.value
        }
        break
      }
    }
    this.#misses++
    return undefined
  }

  /**
   * The fresh value of `key` in this process's L1, without counting a use (no recency or
   * idle-time change). Unlike `get`, it never reads L2: undefined when only L2 holds it.
   */
  async peek(key: string): Promise<V | undefined> {
    this.#checkKey(key)
    const hit = this.#bypassL1 ? undefined : this.#l1.peek(key)
    if (!(hit instanceof Envelope)) return hit as V | undefined
    const env = hit as Envelope<V>
    return this.#isFresh(key, env) ? env.value : undefined
  }

  /** Whether `peek` finds a fresh value: this process's L1 only, L2 is not read. */
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
      // The writer skips undefined (a factory's "absent": not cached); an explicit set of it is a mistake.
      if (value === undefined) throw new InvalidValueError(`Cannot store undefined under ${JSON.stringify(key)}: it means "absent" (store null, or delete the key)`)
      const o = options === undefined ? this.#defaults : this.#resolve(options)
      // L1 alone, and nothing beyond the engine's TTL and TTI: the writer's short path.
      // `=== true`: V8 types a boolean field only as a heap object, so a bare truth test of
      // one that holds true is a full ToBoolean (~12 instructions), a compare is one (0401).
      if (o.bare === true && this.#l1Alone === true) {
        this.#writer.storeBare(key, value, o)
        return DONE
      }
      const written = this.#writer.store(key, value, o, EXPLICIT_SET)
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

  /** Deletes `key` from both tiers; true when L1 held it. After `close()`: `ERR_CLOSED`. */
  async delete(key: string): Promise<boolean> {
    this.#checkOpen()
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

  /** Empties L1 and this cache's namespace in L2 (tag versions are kept). After `close()`: `ERR_CLOSED`. */
  async clear(): Promise<void> {
    this.#checkOpen()
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
   * still usable as fail-safe fallbacks. After `close()`: `ERR_CLOSED`.
   */
  async invalidateTags(tags: readonly string[], options?: { mode?: 'hard' | 'soft' }): Promise<void> {
    this.#checkOpen()
    if (options !== undefined && (options === null || typeof options !== 'object')) throw new InvalidOptionsError('options', 'expected an object ({ mode? })')
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
    checkEntryOptionNames(options, '', WRAP_OPTIONS)
    const { key, tags, ...rest } = options
    // One options object for every call when the tags are fixed; with a tags function, per
    // call a copy of one template with that call's tags closure set in place (same fields,
    // same hidden class). A per-call spread that added fields (`{ ...rest }` then `.tags =`)
    // gave each call's object a hidden class of its own in V8 11 (Node 20): every option
    // read then missed its inline cache, ~3 µs a call (decision 0398).
    const template: EntryOptions<V> & Signed = {
      ...(rest as EntryOptions<V>),
      tags: typeof tags === 'function' ? undefined : (tags as TagsOption<V> | undefined),
      [TAG_SIG]: typeof tags === 'function' ? tagSignature(tags) : undefined,
    }
    // A key function that throws is a rejection, never a synchronous throw (as a bad key is).
    // `fn` gets the `this` the wrapper was called on, so a wrapped method works as one.
    const call = (self: unknown, args: A, entry: EntryOptions<V>): Promise<R> => {
      let k: string
      try {
        k = key(...args)
      } catch (err) {
        return Promise.reject(err)
      }
      return this.getOrSet(k, () => fn.apply(self, args), entry) as Promise<R>
    }
    if (typeof tags !== 'function') {
      return function (this: unknown, ...args: A) {
        return call(this, args, template)
      }
    }
    return function (this: unknown, ...args: A) {
      const entry = { ...template }
      entry.tags = (result: V) => tags(...args, result as R)
      return call(this, args, entry)
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
    if (typeof factory !== 'function') throw new InvalidOptionsError('factory', 'expected a function (missing keys) => values')
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
          if (env !== undefined && this.#writer.unchanged(key, mark) && this.#writer.adopt(key, env, o)) {
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
    return this.#origins.attach(feed, options)
  }

  stats(): CacheStats {
    const l1 = this.#l1.stats()
    return {
      size: l1.size,
      hits: this.#hits,
      misses: this.#misses,
      ...this.#counts,
      flightJoins: this.#flight.stats().joins,
      tagInvalidations: this.#tagInvalidations,
      tagNodes: this.#tags.stats().nodes,
      evictions: { expire: l1.expired, evict: l1.evicted, erase: l1.erased, flush: l1.flushed },
      origins: this.#origins.stats(),
      l2: this.#l2Stats(),
      ...(this.#bus === undefined ? {} : { bus: this.#bus.stats() }),
    }
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed
  }

  /**
   * Empties the cache and refuses further writes (`ERR_CLOSED`). Closes the bus and the
   * store with the last cache using them (the store unless `closeStore: false`). Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#plainHits = false
    this.#errors.close()
    await this.#origins.close()
    this.#l1.close()
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
    return this.#writer.state(key, env) === 'valid' && this.#clock.now() < env.freshUntil
  }

  #l2Stats(): CacheStats['l2'] {
    if (this.#l2 === undefined) return undefined
    const tier = this.#l2.stats()
    const store = this.#l2.store.stats()
    return { ...tier, ...store, lock: { waits: this.#lock?.waits ?? 0, degraded: this.#lock?.degraded ?? 0 } }
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

/**
 * Builds a part from a nested group of options (`memory`, `flight`, `tags`), naming an
 * invalid one by its path (`memory.maxEntries`, not `maxEntries`). `clock` and `random`
 * are the cache's own top-level options, passed down: named as they are.
 */
/** `wrap`'s options: a call's, and the key function. */
const WRAP_OPTIONS = [...ENTRY_OPTIONS, 'key']

function nested<T>(prefix: string, build: () => T): T {
  try {
    return build()
  } catch (err) {
    if (!(err instanceof InvalidOptionsError) || err.option === 'clock' || err.option === 'random') throw err
    const detail = err.message.startsWith(`Invalid option "${err.option}": `) ? err.message.slice(`Invalid option "${err.option}": `.length) : err.message
    throw new InvalidOptionsError(prefix + err.option, detail, { cause: err.cause })
  }
}

function unwrap<V>(stored: V | Envelope<V>): V {
  return stored instanceof Envelope ? (stored as Envelope<V>).value : stored
}

/** Creates a cache with the embedded defaults, overridden by `options`. */
export function createCache<V = unknown>(options: CacheOptions = {}): Cache<V> {
  return new Cache<V>(options)
}
