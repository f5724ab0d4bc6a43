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
import type { Clock, TimerHandle } from '../core/clock.js'
import { toMs } from '../core/duration.js'
import { neverAbortedSignal } from '../core/never-aborted-signal.js'
import { ClosedError, FactoryTimeoutError, InvalidKeyError, InvalidOptionsError } from '../core/errors.js'
import { mathRandom } from '../core/random.js'
import { systemClock } from '../core/system-clock.js'
import { MemoryCache } from '../memory/memory-cache.js'
import type { CacheEventType, WaitForOptions } from '../memory/types.js'
import { SingleFlight } from '../singleflight/single-flight.js'
import { TagTrie } from '../tags/tag-trie.js'
import type { TagIndex, TagState } from './tag-index.js'
import type { CacheEventPayload, CacheOptions, CacheStats, EntryOptions, Factory, FactoryContext, Strategy, TagsOption } from './types.js'

interface Envelope<V> {
  readonly value: V
  readonly createdAt: number
  readonly freshUntil: number
  readonly ttl: number
  /** When the engine drops the entry (freshUntil + grace). */
  readonly keepUntil: number
  readonly tags: unknown
  /** Signature of the tag definition the entry was written under (see `tagSignature`). */
  readonly tagSig: string
  /** Earliest time the factory may run again after a failure (fail-safe backoff). */
  retryAt: number
  failures: number
}

/** Options merged with the defaults, validated and converted once. */
interface Resolved<V> {
  ttl: number
  tti: number
  tags: TagsOption<V> | undefined
  tagSig: string
  grace: number
  graceBackoff: number
  soft: number
  hard: number
  refreshAhead: number
  strategy: Strategy
  signal: AbortSignal | undefined
}

const STRATEGIES: readonly Strategy[] = ['none', 'async', 'stampede', 'stampede-async']
const DEFAULT_TTL = 300_000
const MAX_BACKOFF_FACTOR = 32

export class Cache<V = unknown> {
  readonly #clock: Clock
  readonly #l1: MemoryCache<string, Envelope<V>>
  readonly #flight: SingleFlight<string, V>
  readonly #tags: TagIndex
  readonly #defaults: Resolved<V>
  readonly #maxKeyLength: number
  #closed = false

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
    this.#clock = options.clock ?? systemClock
    const memory = options.memory ?? { maxEntries: 10_000 }
    this.#l1 = new MemoryCache<string, Envelope<V>>({ ...memory, clock: this.#clock, random: options.random ?? mathRandom })
    this.#flight = new SingleFlight<string, V>({ clock: this.#clock, timeout: options.flight?.timeout ?? '60s', detectRecursion: options.flight?.detectRecursion ?? true })
    this.#tags = new TagTrie({ clock: this.#clock, ...options.tags })
    // Eviction means memory pressure: let the trie shed idle nodes too (it throttles).
    this.#l1.on('evict', () => this.#tags.pruneUnderPressure())
    this.#defaults = resolve<V>(options.defaults ?? {}, undefined, 'defaults.')
    const maxKeyLength = options.maxKeyLength ?? 1024
    if (!Number.isSafeInteger(maxKeyLength) || maxKeyLength < 1) throw new InvalidOptionsError('maxKeyLength', `expected a positive integer, got ${String(maxKeyLength)}`)
    this.#maxKeyLength = maxKeyLength
  }

  /**
   * The fresh value of `key`, or the factory's result (stored per the options). Concurrent
   * misses share one factory run (strategy `stampede`, the default).
   */
  getOrSet(key: string, factory: Factory<V>, options?: EntryOptions<V>): Promise<V> {
    try {
      this.#checkOpen()
      this.#checkKey(key)
      if (typeof factory !== 'function') throw new InvalidOptionsError('factory', 'expected a function')
      const o = options === undefined ? this.#defaults : resolve(options, this.#defaults, '')
      const env = this.#l1.get(key)
      let stale: Envelope<V> | undefined
      if (env !== undefined) {
        const now = this.#clock.now()
        // An entry written under another tag definition (a deploy changed the tags) is a
        // miss: otherwise it could never be invalidated through the new tags.
        const state = env.tagSig === o.tagSig ? this.#state(key, env) : 'invalid'
        if (state === 'valid' && now < env.freshUntil) {
          this.#hits++
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
      }
      this.#misses++
      return this.#compute(key, factory, o, stale)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** The fresh value of `key`, or undefined. */
  async get(key: string): Promise<V | undefined> {
    this.#checkKey(key)
    const env = this.#l1.get(key)
    if (env === undefined) {
      this.#misses++
      return undefined
    }
    if (!this.#isFresh(key, env)) {
      this.#misses++
      return undefined
    }
    this.#hits++
    return env.value
  }

  /** Like `get`, without counting a use (no recency or idle-time change). */
  async peek(key: string): Promise<V | undefined> {
    this.#checkKey(key)
    const env = this.#l1.peek(key)
    return env !== undefined && this.#isFresh(key, env) ? env.value : undefined
  }

  async has(key: string): Promise<boolean> {
    return (await this.peek(key)) !== undefined
  }

  async set(key: string, value: V, options?: EntryOptions<V>): Promise<void> {
    this.#checkOpen()
    this.#checkKey(key)
    const o = options === undefined ? this.#defaults : resolve(options, this.#defaults, '')
    this.#store(key, value, o, o.ttl, undefined)
  }

  async delete(key: string): Promise<boolean> {
    this.#checkKey(key)
    return this.#l1.delete(key)
  }

  async clear(): Promise<void> {
    this.#l1.clear()
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
    const index = this.#tags
    for (const tag of tags) index.validate(tag)
    for (const tag of tags) index.invalidate(tag, mode)
    this.#tagInvalidations += tags.length
  }

  /** Resolves with the value of `key` once it is stored (at once if fresh now). */
  async waitFor(key: string, options?: WaitForOptions): Promise<V> {
    this.#checkKey(key)
    const env = await this.#l1.waitFor(key, options)
    return env.value
  }

  /** Subscribes to entry events; the payload carries the cached value. Returns `off`. */
  on(type: CacheEventType, listener: (event: CacheEventPayload<V>) => void): () => void {
    if (typeof listener !== 'function') throw new InvalidOptionsError('listener', 'expected a function')
    return this.#l1.on(type, (e) => listener({ type: e.type, key: e.key, value: e.value?.value }))
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
    factory: (missing: string[]) => PromiseLike<ReadonlyMap<string, V> | Readonly<Record<string, V>> | readonly V[]> | ReadonlyMap<string, V> | Readonly<Record<string, V>> | readonly V[],
    options?: EntryOptions<V>,
  ): Promise<Array<V | undefined>> {
    if (!Array.isArray(keys)) throw new InvalidOptionsError('keys', 'expected an array of keys')
    for (const key of keys) this.#checkKey(key)
    const missing: string[] = []
    let release!: (values: Map<string, V | undefined>) => void
    let fail!: (err: unknown) => void
    const batch = new Promise<Map<string, V | undefined>>((resolve, reject) => {
      release = resolve
      fail = reject
    })
    batch.catch(() => {})
    const results: Array<Promise<V | undefined>> = keys.map((key) =>
      this.getOrSet(
        key,
        async (ctx) => {
          missing.push(key)
          const values = await batch
          const v = values.get(key)
          // Not returned by the batch: answer undefined, cache nothing.
          if (v === undefined) ctx.skip()
          return v as V
        },
        options,
      ),
    )
    // Each key that needs computing has pushed itself by now: a leader's factory is called
    // synchronously; hits and followers of flights already running never call it.
    if (missing.length > 0) {
      try {
        const out = await factory([...missing])
        const values = new Map<string, V | undefined>()
        if (out instanceof Map) for (const k of missing) values.set(k, out.get(k))
        else if (Array.isArray(out)) missing.forEach((k, i) => values.set(k, out[i] as V | undefined))
        else if (out !== null && typeof out === 'object') for (const k of missing) values.set(k, (out as Record<string, V>)[k])
        else throw new InvalidOptionsError('factory', 'getOrSetMany factory must return a Map, an object or an array')
        release(values)
      } catch (err) {
        fail(err)
      }
    } else {
      release(new Map())
    }
    return Promise.all(results)
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
    }
  }

  /** Empties the cache and refuses further writes (`ERR_CLOSED`). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#l1.close()
    this.#tags.close()
  }

  // ---- internals ---------------------------------------------------------------------

  #isFresh(key: string, env: Envelope<V>): boolean {
    return this.#state(key, env) === 'valid' && this.#clock.now() < env.freshUntil
  }

  #state(key: string, env: Envelope<V>): TagState {
    if (env.tags === undefined) return 'valid'
    const state = this.#tags.check(env.tags)
    if (state === 'invalid') this.#l1.delete(key)
    return state
  }

  #compute(key: string, factory: Factory<V>, o: Resolved<V>, stale: Envelope<V> | undefined): Promise<V> {
    switch (o.strategy) {
      case 'none':
        return this.#run(key, factory, o, stale, false)
      case 'async':
        return this.#run(key, factory, o, stale, true)
      case 'stampede':
      case 'stampede-async':
        // keepAlive: callers who leave never cancel the factory; its result is stored for
        // the others and the next readers (so the flight's own signal never aborts).
        return this.#flight.run(key, () => this.#run(key, factory, o, stale, o.strategy === 'stampede-async'), {
          signal: o.signal,
          keepAlive: true,
        })
    }
  }

  /** Runs the factory once with timeouts and fail-safe; stores its result. */
  #run(key: string, factory: Factory<V>, o: Resolved<V>, stale: Envelope<V> | undefined, background: boolean): Promise<V> {
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
    const tagVersion = this.#tags.currentVersion()
    let produced: Promise<V>
    try {
      produced = Promise.resolve(factory(ctx))
    } catch (err) {
      produced = Promise.reject(err)
    }
    const stored = produced.then(
      (value) => {
        if (!skipped && !this.#closed) {
          if (background) queueMicrotask(() => this.#storeQuietly(key, value, o, ttl, tags, tagVersion))
          else this.#store(key, value, o, ttl, tags, tagVersion)
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
    return new Promise<V>((resolve, reject) => {
      let done = false
      const timers: TimerHandle[] = []
      const finish = (): boolean => {
        if (done) return false
        done = true
        for (const t of timers) this.#clock.clearTimeout(t)
        return true
      }
      stored.then(
        (v) => finish() && resolve(v),
        (err: unknown) => {
          if (!finish()) return
          if (stale === undefined) reject(err)
          else resolve(this.#fallBack(key, stale, o))
        },
      )
      if (stale !== undefined && o.soft !== Infinity) {
        timers.push(
          this.#clock.setTimeout(() => {
            if (!finish()) return
            // The factory goes on and stores its result; callers get the fallback now.
            this.#staleHits++
            resolve(stale.value)
          }, o.soft),
        )
      }
      if (o.hard !== Infinity) {
        timers.push(
          this.#clock.setTimeout(() => {
            if (!finish()) return
            this.#factoryTimeouts++
            const err = new FactoryTimeoutError(key, o.hard)
            controller?.abort(err)
            if (stale === undefined) reject(err)
            else resolve(this.#fallBack(key, stale, o))
          }, o.hard),
        )
      }
    })
  }

  /** Serves the stale value after a failure and schedules the next retry (backoff). */
  #fallBack(key: string, stale: Envelope<V>, o: Resolved<V>): V {
    const now = this.#clock.now()
    stale.failures++
    stale.retryAt = now + o.graceBackoff * Math.min(MAX_BACKOFF_FACTOR, 2 ** (stale.failures - 1))
    this.#staleHits++
    // Put the fallback back if it was displaced, for the rest of its grace.
    if (this.#l1.peek(key) !== stale && stale.keepUntil > now) this.#l1.set(key, stale, { ttl: stale.keepUntil - now })
    return stale.value
  }

  #refresh(key: string, factory: Factory<V>, o: Resolved<V>, env: Envelope<V>): void {
    if (this.#flight.inFlight(key)) return
    this.#refreshes++
    this.#flight.run(key, () => this.#run(key, factory, o, env, false), { keepAlive: true }).catch(() => {
      // Counted as a factory error; the current value stays until it expires.
    })
  }

  #store(key: string, value: V, o: Resolved<V>, ttl: number, tagsOverride: readonly string[] | undefined, tagVersion?: number): void {
    if (value === undefined) return
    const now = this.#clock.now()
    let tags: readonly string[] | undefined = tagsOverride
    if (tags === undefined && o.tags !== undefined) tags = typeof o.tags === 'function' ? o.tags(value) : o.tags
    const snapshot = tags === undefined || tags.length === 0 ? undefined : this.#tags.snapshot(tags, tagVersion)
    const freshUntil = now + ttl
    const keepUntil = freshUntil + o.grace
    const env: Envelope<V> = { value, createdAt: now, freshUntil, ttl, keepUntil, tags: snapshot, tagSig: o.tagSig, retryAt: 0, failures: 0 }
    this.#l1.set(key, env, { ttl: keepUntil === Infinity ? Infinity : Math.max(1, keepUntil - now), tti: o.tti })
  }

  #storeQuietly(key: string, value: V, o: Resolved<V>, ttl: number, tags: readonly string[] | undefined, tagVersion: number): void {
    try {
      this.#store(key, value, o, ttl, tags, tagVersion)
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

function positive(ms: number, option: string): number {
  if (ms <= 0) throw new InvalidOptionsError(option, 'expected a duration > 0')
  return ms
}

/** Merges per-call options over the defaults and validates them (once per call). */
function resolve<V>(options: EntryOptions<V>, defaults: Resolved<V> | undefined, prefix: string): Resolved<V> {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError(`${prefix}options`, 'expected an object')
  const d = defaults
  const strategy = options.strategy ?? d?.strategy ?? 'stampede'
  if (!STRATEGIES.includes(strategy)) throw new InvalidOptionsError(`${prefix}strategy`, `expected one of ${STRATEGIES.join(', ')}, got ${JSON.stringify(strategy)}`)
  const refreshAhead = options.refreshAhead ?? d?.refreshAhead ?? 0
  if (typeof refreshAhead !== 'number' || !(refreshAhead === 0 || (refreshAhead > 0 && refreshAhead < 1))) {
    throw new InvalidOptionsError(`${prefix}refreshAhead`, `expected a fraction in (0, 1), got ${String(refreshAhead)}`)
  }
  const tags = options.tags ?? d?.tags
  if (tags !== undefined && typeof tags !== 'function' && !Array.isArray(tags)) throw new InvalidOptionsError(`${prefix}tags`, 'expected an array of tags or a function')
  const timeout = options.timeout
  const soft = timeout?.soft === undefined ? (d?.soft ?? Infinity) : positive(toMs(timeout.soft, `${prefix}timeout.soft`), `${prefix}timeout.soft`)
  const hard = timeout?.hard === undefined ? (d?.hard ?? Infinity) : positive(toMs(timeout.hard, `${prefix}timeout.hard`), `${prefix}timeout.hard`)
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new InvalidOptionsError(`${prefix}signal`, 'expected an AbortSignal')
  const signed = (options as Signed)[TAG_SIG]
  return {
    tagSig: signed ?? (options.tags === undefined && d !== undefined ? d.tagSig : tagSignature(tags)),
    ttl: options.ttl === undefined ? (d?.ttl ?? DEFAULT_TTL) : positive(toMs(options.ttl, `${prefix}ttl`), `${prefix}ttl`),
    tti: options.tti === undefined ? (d?.tti ?? Infinity) : positive(toMs(options.tti, `${prefix}tti`), `${prefix}tti`),
    tags,
    grace: options.grace === undefined ? (d?.grace ?? 0) : toMs(options.grace, `${prefix}grace`),
    graceBackoff: options.graceBackoff === undefined ? (d?.graceBackoff ?? 1000) : positive(toMs(options.graceBackoff, `${prefix}graceBackoff`), `${prefix}graceBackoff`),
    soft,
    hard,
    refreshAhead,
    strategy,
    signal: options.signal,
  }
}

/** Creates a cache with the embedded defaults, overridden by `options`. */
export function createCache<V = unknown>(options: CacheOptions = {}): Cache<V> {
  return new Cache<V>(options)
}

/** Lets `wrap` pass the signature of the user's tag function through a per-call closure. */
const TAG_SIG = Symbol('stratacache.tagSig')
interface Signed {
  [TAG_SIG]?: string
}

const signatures = new WeakMap<object, string>()

/**
 * A string identifying a tag definition: the tags themselves for a fixed list, the source
 * text of a tag function. Cached per array or function, so a definition reused across
 * calls costs one lookup, however many tags it has.
 */
function tagSignature(tags: unknown): string {
  if (tags === undefined) return ''
  let sig = signatures.get(tags as object)
  if (sig === undefined) {
    sig = typeof tags === 'function' ? `fn:${String(tags)}` : (tags as readonly string[]).join(',')
    signatures.set(tags as object, sig)
  }
  return sig
}
