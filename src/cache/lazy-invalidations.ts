/**
 * The near cache's record of recent tag invalidations and prefix clears, checked lazily
 * (src/cache/near-cache.ts). Applying each one by walking every entry cost ~1.7 ms with
 * 10,000 entries and ~60 ms with 100,000, per event, in every client process (decision
 * 0408). Here an event costs a `Map.set` or two; a read asks whether an entry is covered.
 *
 * Every event bumps `epoch` (never goes back, resets included); an entry remembers the
 * epoch at which it was last known good. An entry stamped `since` is covered when:
 * - a clear recorded after `since` has a prefix of its key (`cleared`): one `Map` lookup
 *   per distinct prefix length held, as `PrefixTombstones` (a clear covering `key` is keyed
 *   by one of `key`'s prefixes);
 * - a tag invalidation recorded after `since` names one of its tags or an ancestor of one
 *   (`tagged`): `org:1` covers `org:1:user:42`, not `org:10`, the rule of the stream
 *   (the tag or one below it). One lookup per tag and per separator in it.
 *
 * Each map keeps the latest epoch of its key: a later event of the same tag or prefix
 * replaces the earlier one (it covers everything the earlier one did, and more). Both are
 * bounded by `max` distinct keys; `tags` and `prefix` return false past it, and the near
 * cache then flushes and `reset`s (forgetting is safe for a cache; serving what an
 * invalidation covers is not).
 */
import { TAG_SEPARATOR } from '../tags/validate-tag.js'

/** Most distinct tags, and most distinct prefixes, remembered; past either, the near cache flushes. */
export const MAX_LAZY_INVALIDATIONS = 4096

export class LazyInvalidations {
  /** Events recorded so far: an entry stamped with it is covered by none of them. */
  epoch = 0
  readonly #max: number
  /** Tag → epoch of its latest invalidation. */
  readonly #tags = new Map<string, number>()
  /** Prefix ('' excluded) → epoch of its latest clear. */
  readonly #prefixes = new Map<string, number>()
  /** The distinct lengths of the prefixes held, ascending. */
  #lengths: number[] = []

  constructor(max = MAX_LAZY_INVALIDATIONS) {
    this.#max = max
  }

  /** True when nothing is remembered (then no entry can be covered). */
  get empty(): boolean {
    return this.#tags.size === 0 && this.#prefixes.size === 0
  }

  /** Records an invalidation of `tags` (each covers itself and the tags below it); false past the bound. */
  tags(tags: readonly string[]): boolean {
    const e = ++this.epoch
    for (const t of tags) this.#tags.set(t, e)
    return this.#tags.size <= this.#max
  }

  /** Records a clear of `prefix` (not ''); false past the bound. */
  prefix(prefix: string): boolean {
    const e = ++this.epoch
    if (!this.#prefixes.has(prefix)) {
      const n = prefix.length
      const lengths = this.#lengths
      let i = lengths.length
      while (i > 0 && lengths[i - 1]! > n) i--
      if (lengths[i - 1] !== n) lengths.splice(i, 0, n)
    }
    this.#prefixes.set(prefix, e)
    return this.#prefixes.size <= this.#max
  }

  /** Whether a clear recorded after epoch `since` covers `key`. */
  cleared(key: string, since: number): boolean {
    const lengths = this.#lengths
    for (let i = 0; i < lengths.length; i++) {
      const n = lengths[i]!
      if (n > key.length) return false
      const e = this.#prefixes.get(n === key.length ? key : key.slice(0, n))
      if (e !== undefined && e > since) return true
    }
    return false
  }

  /** Whether a tag invalidation recorded after epoch `since` covers one of `tags`. */
  tagged(tags: readonly string[], since: number): boolean {
    if (this.#tags.size === 0) return false
    for (const t of tags) {
      let e = this.#tags.get(t)
      if (e !== undefined && e > since) return true
      for (let i = t.indexOf(TAG_SEPARATOR); i !== -1; i = t.indexOf(TAG_SEPARATOR, i + 1)) {
        e = this.#tags.get(t.slice(0, i))
        if (e !== undefined && e > since) return true
      }
    }
    return false
  }

  /** Forgets everything (the near cache dropped every entry and claim); `epoch` goes on. */
  reset(): void {
    this.#tags.clear()
    this.#prefixes.clear()
    this.#lengths = []
  }
}
