/**
 * `NearCache`: a `MemoryCache` kept honest by an invalidation stream with sequences
 * (the client's near cache, P10; Hazelcast's near-cache repair and LoomCache's tracker as
 * models, our own code). The client (src/client/near-cache-link.ts) feeds it the stream;
 * this file has no I/O and runs on the injected Clock.
 *
 * States. `bypass` until a stream said `hello`, and again from the moment it is lost:
 * reads neither read nor fill the near cache (Redis client-side caching's rule: without
 * the stream, nothing cached can be trusted). `live` otherwise.
 *
 * Repair (InvalidationSequenceTracker decides, this acts):
 * - a key message drops that key; a gap in its partition marks the partition stale:
 *   `stale[p] = the sequence now known`, and every record of p stamped with an older
 *   sequence is dropped lazily when read (O(1) per gap, no walk);
 * - a clear hides the keys under its prefix, a tag invalidation the entries carrying a tag
 *   at or below it, lazily too (lazy-invalidations.ts): the event is remembered with an
 *   epoch, each entry with the epoch it was last known good at, and a read that finds an
 *   entry older than the latest event checks it (a lookup per tag and ancestor, and per
 *   distinct prefix length remembered) and drops it if covered. No walk of the entries: an
 *   event costs O(1), where the walk cost ~60 ms with 100,000 entries (decision 0408).
 *   An event older than the ttl is forgotten (every entry it could cover has expired);
 *   past `MAX_LAZY_INVALIDATIONS` distinct tags or prefixes younger than that, everything
 *   is flushed and forgotten; a clear of '' drops everything at once;
 * - a gap of the global sequence, or a new source, flushes everything;
 * - late and duplicate messages are discarded.
 *
 * A read racing an invalidation (Hazelcast's reservation): a miss `reserve`s the key,
 * stamped with the partition's sequence, the cache's generation and the epoch; the value
 * fetched is `publish`ed only if the reservation is still the key's (a key message deletes
 * it), no clear since covers the key (the remembered prefixes, as for entries; a claim
 * older than an event forgotten by age is refused), no gap of its partition came since
 * (its stamp is not below `stale[p]`), no flush or stream loss came since (the
 * generation), no tag invalidation since covers a tag the fetched entry carries (the tag
 * log), and the cache is live. So a value read before an invalidation and answered after
 * it is never cached; one that is cached is stamped with the epoch of its publication.
 *
 * Why a tag invalidation may spare the other claims: it changes only the entries that carry
 * a covered tag when it is applied. The fetched entry's tags are those it had when the node
 * read it; if it carried none of them, the invalidation did not touch that version, and a
 * write that gave the key a covered tag afterwards is a write of the key, whose own key
 * message cancels the claim. The log of tag invalidations is kept only while claims older
 * than them are pending, at most `MAX_TAG_LOG` of them; past that, every pending claim is
 * cancelled (the old rule).
 *
 * Staleness bound of a hit (with the node's `meta` interval I): a delivered invalidation
 * drops or hides the entry on arrival (no read returns it after); a lost one is found by
 * the next message of its partition or the next meta, within I + transit; a stream that
 * goes silent is declared lost after 3 I (the link's rule) and the cache bypassed. So a
 * hit is at most about 3 I + one network delay older than the node's truth, and never
 * older than the near cache's ttl.
 */
import type { Clock } from '../core/clock.js'
import { MemoryCache } from '../memory/memory-cache.js'
import { TAG_SEPARATOR } from '../tags/validate-tag.js'
import { InvalidationSequenceTracker, type SequenceRepair } from './invalidation-tracker.js'
import { LazyInvalidations } from './lazy-invalidations.js'

export { MAX_LAZY_INVALIDATIONS } from './lazy-invalidations.js'

export interface NearCacheOptions {
  /** Most entries held. */
  readonly maxEntries: number
  /** Longest an entry is kept, ms (`Infinity`: until invalidated or evicted). */
  readonly ttlMs: number
  /** Partitions of the stream. */
  readonly partitions: number
  /** The partition of a key, as the stream computes it. */
  readonly partitionOf: (key: string) => number
  readonly clock: Clock
  /**
   * Track sequences (gaps, sources, late messages). `false` applies every message as it
   * comes and trusts the stream blindly — only for showing what tracking buys (tests).
   * @default true
   */
  readonly trackSequences?: boolean
  /**
   * Most distinct tags, and most distinct prefixes, remembered for the lazy checks (those
   * younger than `ttlMs`); past either, the near cache flushes. Small values are for tests.
   * @default MAX_LAZY_INVALIDATIONS
   */
  readonly maxRemembered?: number
}

/** Counters of a near cache (client.nearCacheStats()). */
export interface NearCacheStats {
  readonly state: 'live' | 'bypass'
  /**
   * Entries held, including some no read may return any more: those of a partition found
   * stale by a gap, and those covered by a tag invalidation or clear (both are checked
   * lazily, and dropped when next read, evicted, expired, or flushed).
   */
  readonly size: number
  readonly hits: number
  readonly misses: number
  /** Reads that skipped the near cache because no stream was live. */
  readonly bypassed: number
  /** Invalidation messages applied (keys, clears, tag invalidations). */
  readonly invalidations: number
  /** Lost messages found (a partition dropped, or the global sequence moved). */
  readonly gaps: number
  /** Whole flushes (new source, global gap, more than `MAX_LAZY_INVALIDATIONS` tags or prefixes remembered). */
  readonly flushes: number
  /** Late or duplicate messages discarded. */
  readonly discarded: number
  /** Fetched values not cached because an invalidation, gap or loss raced them. */
  readonly refusedPublishes: number
  /** Milliseconds spent in `bypass` (the current spell included). */
  readonly bypassMs: number
}

/** A miss's claim on its key (see `reserve`). */
export interface NearReservation {
  readonly key: string
  readonly token: number
  readonly partition: number
  readonly seq: number
  readonly gen: number
  /** Tag invalidations and clears seen when it was made (the cache's epoch). */
  readonly epoch: number
}

/** Most tag invalidations remembered for pending claims; past it, every claim is cancelled. */
export const MAX_TAG_LOG = 256

/** Whether an entry carrying `tags` is covered by an invalidation of `invalidated` (a tag or one below it). */
function covered(tags: readonly string[], invalidated: readonly string[]): boolean {
  return tags.some((t) => invalidated.some((inv) => t === inv || t.startsWith(inv + TAG_SEPARATOR)))
}

interface NearRecord<V> {
  readonly value: V
  readonly tags: readonly string[]
  readonly p: number
  readonly seq: number
  /** The epoch it was last known good at (no tag invalidation or clear up to it covers it). */
  epoch: number
}

export class NearCache<V> {
  readonly #memory: MemoryCache<string, NearRecord<V>>
  readonly #tracker: InvalidationSequenceTracker
  readonly #stale: Float64Array
  readonly #partitionOf: (key: string) => number
  readonly #clock: Clock
  readonly #track: boolean
  readonly #ttlMs: number
  readonly #reservations = new Map<string, NearReservation>()
  /** Tag invalidations newer than some pending claim, oldest first (epoch: the cache's epoch after it). */
  #tagLog: Array<{ readonly epoch: number; readonly tags: readonly string[] }> = []
  /** Tag invalidations and clears not yet applied to every entry, and the epoch. */
  readonly #lazy: LazyInvalidations
  #live = false
  #closed = false
  #gen = 0
  #token = 0
  #bypassSince: number
  #bypassMs = 0
  #hits = 0
  #misses = 0
  #bypassed = 0
  #invalidations = 0
  #gaps = 0
  #flushes = 0
  #discarded = 0
  #refused = 0

  constructor(options: NearCacheOptions) {
    this.#clock = options.clock
    this.#memory = new MemoryCache<string, NearRecord<V>>({ maxEntries: options.maxEntries, ttl: options.ttlMs, clock: options.clock, policy: 'lru' })
    this.#tracker = new InvalidationSequenceTracker(options.partitions)
    this.#stale = new Float64Array(options.partitions)
    this.#partitionOf = options.partitionOf
    this.#track = options.trackSequences ?? true
    this.#ttlMs = options.ttlMs
    this.#lazy = new LazyInvalidations(options.clock, options.ttlMs, options.maxRemembered)
    this.#bypassSince = options.clock.now()
  }

  /** True while a stream is live (reads may use the near cache). */
  get live(): boolean {
    return this.#live
  }

  /** The cached value, or `undefined` (miss, or bypass: then the caller goes to the node). */
  get(key: string): V | undefined {
    if (!this.#live) {
      this.#bypassed++
      return undefined
    }
    const r = this.#memory.get(key)
    if (r === undefined) {
      this.#misses++
      return undefined
    }
    if (r.seq < this.#stale[r.p]! || (r.epoch !== this.#lazy.epoch && this.#covered(key, r))) {
      this.#memory.delete(key)
      this.#misses++
      return undefined
    }
    this.#hits++
    return r.value
  }

  /** Claims `key` before fetching it; `undefined` in bypass (nothing will be cached). */
  reserve(key: string): NearReservation | undefined {
    if (!this.#live) return undefined
    const partition = this.#partitionOf(key)
    const r = { key, token: ++this.#token, partition, seq: this.#tracker.seen(partition), gen: this.#gen, epoch: this.#lazy.epoch }
    this.#reservations.set(key, r)
    return r
  }

  /**
   * Caches `value` fetched under `r` if nothing invalidated it meanwhile (see the file
   * header); `value` undefined (absent on the node) just releases the claim. `ttlMs`: the
   * entry's own remaining life, capped by the near cache's ttl. Returns whether it cached.
   */
  publish(r: NearReservation, value: V | undefined, tags: readonly string[] = [], ttlMs = Infinity): boolean {
    const mine = this.#reservations.get(r.key)?.token === r.token
    const refused = value !== undefined && (!mine || !this.#live || r.gen !== this.#gen || r.seq < this.#stale[r.partition]! || this.#clearedSince(r) || this.#tagged(r, tags))
    if (mine) {
      this.#reservations.delete(r.key)
      if (this.#reservations.size === 0) this.#tagLog = []
    }
    if (value === undefined) return false
    if (refused) {
      this.#refused++
      return false
    }
    const ttl = Math.min(this.#ttlMs, ttlMs)
    if (!(ttl > 0)) return false
    return this.#memory.set(r.key, { value, tags, p: r.partition, seq: r.seq, epoch: this.#lazy.epoch }, { ttl })
  }

  /** Drops `key` and its claim (the client wrote or deleted it itself). */
  forget(key: string): void {
    this.#memory.delete(key)
    this.#reservations.delete(key)
  }

  /** Drops everything (the client cleared itself). */
  forgetAll(): void {
    this.#dropAll()
    this.#gen++
  }

  /** Drops the entries under `tags` and the claims they may affect (the client invalidated them itself). */
  forgetTags(tags: readonly string[]): void {
    this.#invalidateTags(tags)
  }

  // ── the stream's side ────────────────────────────────────────────────────────────

  /** A stream began (`hello`): repair or flush, then go live. */
  up(source: string, seqs: ArrayLike<number>): void {
    if (this.#closed) return
    if (this.#track) {
      const first = this.#tracker.source === undefined
      const fresh = source !== this.#tracker.source
      const repair = this.#tracker.hello(source, seqs)
      if (fresh) {
        // Another boot: its sequences restarted, so the stale marks of the old one mean nothing.
        this.#stale.fill(0)
        if (!first) this.#flush()
      } else this.#repair(repair)
    } else this.#tracker.hello(source, seqs)
    this.#gen++
    if (!this.#live) {
      this.#bypassMs += this.#clock.now() - this.#bypassSince
      this.#live = true
    }
  }

  /** The stream is lost: bypass until the next `up`. */
  down(): void {
    this.#gen++
    this.#cancelAll()
    if (this.#live) {
      this.#live = false
      this.#bypassSince = this.#clock.now()
    }
  }

  /** Key `key` (partition `p`) changed at sequence `q`. */
  key(source: string, p: number, q: number, key: string): void {
    const verdict = this.#track ? this.#tracker.message(source, p, q) : 'apply'
    if (verdict === 'discard') {
      this.#discarded++
      return
    }
    this.#invalidations++
    this.forget(key)
    if (verdict === 'gap') this.#dropPartition(p)
  }

  /** A clear of `prefix`, or an invalidation of `tags`, at global sequence `q`. */
  all(source: string, q: number, why: 'clear' | 'tags', prefix: string | undefined, tags: readonly string[] | undefined): void {
    const verdict = this.#track ? this.#tracker.message(source, this.#stale.length, q) : 'apply'
    if (verdict === 'discard') {
      this.#discarded++
      return
    }
    this.#invalidations++
    if (verdict === 'gap') {
      this.#gaps++
      this.#flush()
      return
    }
    if (why === 'clear') {
      const pre = prefix ?? ''
      if (pre === '') this.#dropAll()
      // Hidden lazily (see `get`), and the claims under it are refused at `publish`.
      else if (!this.#lazy.prefix(pre)) this.#flush()
    } else if (tags === undefined) {
      // No list (an older node): which entries it touched is unknown.
      this.#dropAll()
    } else this.#invalidateTags(tags)
  }

  /** The periodic sequences. */
  meta(source: string, seqs: ArrayLike<number>): void {
    if (this.#track) this.#repair(this.#tracker.meta(source, seqs))
  }

  stats(): NearCacheStats {
    return {
      state: this.#live ? 'live' : 'bypass',
      size: this.#memory.size,
      hits: this.#hits,
      misses: this.#misses,
      bypassed: this.#bypassed,
      invalidations: this.#invalidations,
      gaps: this.#gaps,
      flushes: this.#flushes,
      discarded: this.#discarded,
      refusedPublishes: this.#refused,
      bypassMs: this.#bypassMs + (this.#live ? 0 : this.#clock.now() - this.#bypassSince),
    }
  }

  close(): void {
    this.#closed = true
    this.#live = false
    this.#cancelAll()
    this.#memory.close()
  }

  #repair(repair: SequenceRepair): void {
    if (repair.flush) {
      // The global sequence moved: a clear or tag invalidation was lost.
      this.#gaps++
      this.#flush()
      return
    }
    for (const p of repair.partitions) this.#dropPartition(p)
  }

  #dropPartition(p: number): void {
    this.#gaps++
    this.#stale[p] = this.#tracker.seen(p)
  }

  #flush(): void {
    this.#flushes++
    this.#gen++
    this.#dropAll()
  }

  /** Every entry, claim and remembered invalidation goes. */
  #dropAll(): void {
    this.#cancelAll()
    this.#memory.clear()
    this.#lazy.reset()
  }

  /**
   * Whether a tag invalidation or clear remembered since `r` was last known good covers it
   * (then the caller drops it); if none does, `r` is good as of now.
   */
  #covered(key: string, r: NearRecord<V>): boolean {
    const lazy = this.#lazy
    if (lazy.cleared(key, r.epoch) || (r.tags.length > 0 && lazy.tagged(r.tags, r.epoch))) return true
    r.epoch = lazy.epoch
    return false
  }

  #cancelAll(): void {
    this.#reservations.clear()
    this.#tagLog = []
  }

  /** Hides the entries `tags` cover (lazily, see `get`) and logs the invalidation for the pending claims. */
  #invalidateTags(tags: readonly string[]): void {
    if (!this.#lazy.tags(tags)) {
      this.#flush()
      return
    }
    if (this.#reservations.size === 0) return
    this.#tagLog.push({ epoch: this.#lazy.epoch, tags })
    if (this.#tagLog.length <= MAX_TAG_LOG) return
    // Keep only what the oldest pending claim needs; if that is still too much, cancel them all.
    let oldest = Infinity
    for (const r of this.#reservations.values()) oldest = Math.min(oldest, r.epoch)
    this.#tagLog = this.#tagLog.filter((e) => e.epoch > oldest)
    if (this.#tagLog.length > MAX_TAG_LOG) this.#cancelAll()
  }

  /** Whether a clear since `r` was made covers its key (or was forgotten by age: then it may have). */
  #clearedSince(r: NearReservation): boolean {
    return r.epoch < this.#lazy.floor || this.#lazy.cleared(r.key, r.epoch)
  }

  /** Whether a tag invalidation since `r` was made covers one of the fetched entry's `tags`. */
  #tagged(r: NearReservation, tags: readonly string[]): boolean {
    if (r.epoch === this.#lazy.epoch) return false
    for (const e of this.#tagLog) if (e.epoch > r.epoch && covered(tags, e.tags)) return true
    return false
  }
}
