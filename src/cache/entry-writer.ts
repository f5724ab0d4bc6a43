/**
 * How the facade writes entries (moved out of cache.ts): a computed or explicit value into L1
 * (bare, or in an Envelope when it needs more than the engine's TTL and TTI) and L2 (encoded,
 * fenced under the lock protocol), an L2 read adopted into L1, a fail-safe fallback put back,
 * and the tag-validity check of an L1 entry. Invariants: an L1 copy never outlives L2's
 * (same deadlines, capped by `l2.l1MaxAge`); a fenced write L2 does not confirm leaves no L1
 * copy; an entry with origins is indexed only while L1 holds it.
 */
import type { Clock } from '../core/clock.js'
import { InvalidValueError, isCacheError, LockLostError } from '../core/errors.js'
import type { MemoryCache } from '../memory/memory-cache.js'
import type { TagTrie } from '../tags/tag-trie.js'
import type { TagSnapshot } from '../tags/tag-snapshot.js'
import { capLifetime } from '../tags/origin-lifetime.js'
import { Envelope } from '../tier/envelope.js'
import type { L2Tier } from '../tier/l2-tier.js'
import { descriptorList } from '../feeds/origin-index.js'
import { withOriginTags } from '../feeds/origin-tags.js'
import type { BusLink } from './bus-link.js'
import type { ErrorChannel } from './error-channel.js'
import type { OriginLink } from './origin-link.js'
import type { Resolved } from './resolve-options.js'
import type { TagState } from './tag-index.js'

const MAX_BACKOFF_FACTOR = 32

/** The facade's counters that the write and compute paths move (`stats()`). */
export interface FacadeCounts {
  staleHits: number
  factoryCalls: number
  factoryErrors: number
  factoryTimeouts: number
  refreshes: number
}

/** What #store writes besides the value and the call's options. */
export interface StoreOptions {
  /** The fresh lifetime in ms (the factory may have set it). @default the options' ttl */
  readonly ttl?: number
  /** Tags set by the factory (`ctx.setTags`), instead of the options'. */
  readonly tags?: readonly string[]
  /** The tag version taken before the factory ran (its snapshot's version). */
  readonly tagVersion?: number
  /** Write L2 under this fence (lock protocol); `false`: not ordered after a holder's write, so no L2 write. */
  readonly fence?: number | false
  /** An explicit `set`: an unencodable value, or a strict L2 write that failed, rejects. */
  readonly strict?: boolean
  /** When the computation started: entries with origins are capped from then. */
  readonly since?: number
}

/** What the writer shares with the cache. */
export interface EntryWriterContext<V> {
  readonly clock: Clock
  readonly l1: MemoryCache<string, V | Envelope<V>>
  readonly l2: L2Tier<V> | undefined
  readonly tags: TagTrie
  readonly bus: BusLink | undefined
  readonly errors: ErrorChannel
  readonly origins: OriginLink<V>
  /** With L2 or a bus, origins also become tags (origin-tags.ts). */
  readonly originTags: boolean
  /** `origins.versionTtl` in ms (origin-lifetime.ts). */
  readonly originTtl: number
  /** `l2.l1MaxAge` in ms. */
  readonly l1MaxAge: number
  readonly counts: FacadeCounts
}

export class EntryWriter<V> {
  readonly #clock: Clock
  readonly #l1: MemoryCache<string, V | Envelope<V>>
  readonly #l2: L2Tier<V> | undefined
  readonly #tags: TagTrie
  readonly #bus: BusLink | undefined
  readonly #errors: ErrorChannel
  readonly #origins: OriginLink<V>
  readonly #originTags: boolean
  readonly #originTtl: number
  readonly #l1MaxAge: number
  readonly #counts: FacadeCounts
  /** L1's eviction count when last looked at (see #afterWrite). */
  #evictionsSeen = 0

  constructor(c: EntryWriterContext<V>) {
    this.#clock = c.clock
    this.#l1 = c.l1
    this.#l2 = c.l2
    this.#tags = c.tags
    this.#bus = c.bus
    this.#errors = c.errors
    this.#origins = c.origins
    this.#originTags = c.originTags
    this.#originTtl = c.originTtl
    this.#l1MaxAge = c.l1MaxAge
    this.#counts = c.counts
  }

  state(key: string, env: Envelope<V>): TagState {
    if (env.tags === undefined) return 'valid'
    const state = this.#tags.check(env.tags as TagSnapshot)
    if (state === 'invalid') this.#l1.delete(key)
    return state
  }

  /**
   * Puts an envelope read from L2 into L1 if it is fresh and valid for these options (or for
   * any options when `o` is undefined, as `get` has none). Never outlives L2: same absolute
   * deadline, and an idle deadline shortened by the touch debounce (see L2Tier.l1Tti).
   */
  adopt(key: string, env: Envelope<V>, o: Resolved<V> | undefined): boolean {
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
  unchanged(key: string, mark: number | undefined): boolean {
    return mark === undefined || (this.#bus as BusLink).unchanged(key, mark)
  }

  /** Serves the stale value after a failure and schedules the next retry (backoff); `served`: a caller gets it (a stale hit). */
  fallBack(key: string, stale: Envelope<V>, o: Resolved<V>, served = true): V {
    const now = this.#clock.now()
    stale.failures++
    stale.retryAt = now + o.graceBackoff * Math.min(MAX_BACKOFF_FACTOR, 2 ** (stale.failures - 1))
    if (served) this.#counts.staleHits++
    // Put the fallback back if it was displaced, for the rest of its grace.
    if (this.#l1.peek(key) !== stale && stale.keepUntil > now) this.#l1.set(key, stale, { ttl: Math.min(this.#l1MaxAge, stale.keepUntil - now) })
    return stale.value
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
  store(key: string, value: V, o: Resolved<V>, w: StoreOptions): Promise<unknown> | undefined {
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
      if (origins !== undefined || this.#origins.used) this.#origins.assign(key, origins)
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
    if (origins !== undefined || this.#origins.used) this.#origins.assign(key, origins)
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
   * `store` of an explicit value whose options are `bare` into L1 alone (no second tier):
   * what `store` does then, without its general steps (no tags, origins, envelope or L2 to
   * consider), so the same effect: the bare value under the options' TTL and TTI, and the
   * key's old origins forgotten once origins are in use.
   */
  storeBare(key: string, value: V, o: Resolved<V>): void {
    this.#l1.setMs(key, value, o.ttl, o.tti)
    this.#afterWrite()
    if (this.#origins.used) this.#origins.assign(key, undefined)
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

  storeQuietly(key: string, value: V, o: Resolved<V>, w: StoreOptions): void {
    try {
      void this.store(key, value, o, w)
    } catch {
      // A background store that fails (closed cache, bad tags) loses only a cache fill.
      this.#counts.factoryErrors++
    }
  }
}
