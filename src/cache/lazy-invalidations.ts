/**
 * The near cache's record of recent tag invalidations and prefix clears, checked lazily
 * (src/cache/near-cache.ts). Applying each one by walking every entry cost ~1.7 ms with
 * 10,000 entries and ~60 ms with 100,000, per event, in every client process (decision
 * 0408). Here an event costs a `Map.set` or two; a read asks whether an entry is covered.
 *
 * Every event bumps `epoch` (never goes back, resets included); an entry remembers the
 * epoch at which it was last known good. An entry stamped `since` is covered when:
 * - a clear recorded after `since` has a prefix of its key (`cleared`): one `Map` lookup
 *   per distinct prefix length held (a `PrefixMap`, core/prefix-map.ts: a clear covering
 *   `key` is keyed by one of `key`'s prefixes);
 * - a tag invalidation recorded after `since` names one of its tags or an ancestor of one
 *   (`tagged`): `org:1` covers `org:1:user:42`, not `org:10`, the rule of the stream
 *   (the tag or one below it). One lookup per tag and per separator in it.
 *
 * Each map keeps the latest event of its key: a later event of the same tag or prefix
 * replaces the earlier one (it covers everything the earlier one did, and more), and moves
 * it to the end, so that a map's first key is the one whose latest event is oldest.
 *
 * Forgotten by age: with a finite ttl, an event older than the ttl covers nothing left,
 * since every entry stored before it has expired (an entry lives at most the ttl, on the
 * same clock, which never goes backwards: the `Clock` contract), so it is dropped when the
 * next event is recorded. A claim made
 * before an event forgotten this way cannot tell whether it covered its key: `floor` is
 * the newest epoch forgotten, and the near cache refuses claims older than it.
 *
 * Bounded: at most `max` distinct tags, and `max` distinct prefixes, younger than the ttl;
 * `tags` and `prefix` return false past it, and the near cache then flushes and `reset`s
 * (forgetting is safe for a cache; serving what an invalidation covers is not).
 */
import type { Clock } from '../core/clock.js'
import { PrefixMap } from '../core/prefix-map.js'
import { TAG_SEPARATOR } from '../tags/validate-tag.js'

/** Most distinct tags, and most distinct prefixes, remembered; past either, the near cache flushes. */
export const MAX_LAZY_INVALIDATIONS = 4096

/** An event: its epoch, and when it was recorded (ms of the near cache's clock). */
interface Stamp {
  readonly epoch: number
  readonly at: number
}

export class LazyInvalidations {
  /** Events recorded so far: an entry stamped with it is covered by none of them. */
  epoch = 0
  /** The newest epoch forgotten by age (claims older than it are refused). */
  floor = 0
  readonly #max: number
  readonly #ttlMs: number
  readonly #clock: Clock
  /** Tag → its latest invalidation; oldest first. */
  readonly #tags = new Map<string, Stamp>()
  /** Prefix ('' excluded) → its latest clear; oldest first. */
  readonly #prefixes = new PrefixMap<Stamp>()

  /** `ttlMs`: the longest an entry lives (`Infinity`: events are forgotten only by `reset`). */
  constructor(clock: Clock, ttlMs: number, max = MAX_LAZY_INVALIDATIONS) {
    this.#clock = clock
    this.#ttlMs = ttlMs
    this.#max = max
  }

  /** Records an invalidation of `tags` (each covers itself and the tags below it); false past the bound. */
  tags(tags: readonly string[]): boolean {
    const stamp = this.#next()
    for (const t of tags) {
      this.#tags.delete(t)
      this.#tags.set(t, stamp)
    }
    return this.#tags.size <= this.#max
  }

  /** Records a clear of `prefix` (not ''); false past the bound. */
  prefix(prefix: string): boolean {
    const stamp = this.#next()
    // Deleted first: the latest clear of a prefix moves to the end (oldest first).
    this.#prefixes.delete(prefix)
    this.#prefixes.set(prefix, stamp)
    return this.#prefixes.size <= this.#max
  }

  /** Whether a clear recorded after epoch `since` covers `key`. */
  cleared(key: string, since: number): boolean {
    const lengths = this.#prefixes.lengths
    for (let i = 0; i < lengths.length; i++) {
      const n = lengths[i]!
      if (n > key.length) return false
      const s = this.#prefixes.get(n === key.length ? key : key.slice(0, n))
      if (s !== undefined && s.epoch > since) return true
    }
    return false
  }

  /** Whether a tag invalidation recorded after epoch `since` covers one of `tags`. */
  tagged(tags: readonly string[], since: number): boolean {
    if (this.#tags.size === 0) return false
    for (const t of tags) {
      let s = this.#tags.get(t)
      if (s !== undefined && s.epoch > since) return true
      for (let i = t.indexOf(TAG_SEPARATOR); i !== -1; i = t.indexOf(TAG_SEPARATOR, i + 1)) {
        s = this.#tags.get(t.slice(0, i))
        if (s !== undefined && s.epoch > since) return true
      }
    }
    return false
  }

  /** Forgets everything (the near cache dropped every entry and claim); `epoch` goes on. */
  reset(): void {
    this.#tags.clear()
    this.#prefixes.clear()
  }

  /** The next event's stamp, after forgetting the events older than the ttl. */
  #next(): Stamp {
    const at = this.#clock.now()
    if (this.#ttlMs < Infinity) {
      // Strictly older: an entry stored at `s` expires at `s + ttl`, before `now` here.
      const cutoff = at - this.#ttlMs
      for (const [t, s] of this.#tags) {
        if (s.at >= cutoff) break
        this.#tags.delete(t)
        if (s.epoch > this.floor) this.floor = s.epoch
      }
      for (const [p, s] of this.#prefixes) {
        if (s.at >= cutoff) break
        this.#prefixes.delete(p)
        if (s.epoch > this.floor) this.floor = s.epoch
      }
    }
    return { epoch: ++this.epoch, at }
  }
}
