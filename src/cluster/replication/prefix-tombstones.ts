/**
 * Prefix tombstones by prefix: the replica store's and the node keyspace's record of
 * cleared prefixes, kept for the tombstone grace (24 h by default).
 *
 * Every write asks whether a kept tombstone covers its key (`covers`). Scanning them all
 * made that cost grow with every clear of the last 24 h: 20,000 kept clears took a
 * keyspace write from 35 µs to 1.1 ms. Here it costs one `Map` lookup per distinct prefix
 * length held (a tombstone covering `key` is keyed by one of `key`'s own prefixes), so
 * clears of `user:<id>:` keep writes cheap however many there are. Clears themselves still
 * walk the tombstones once (`under`), to fold the older ones a new clear covers.
 *
 * Iteration is in insertion order, as a `Map`'s (replacing a prefix's version keeps its
 * place).
 */
import { compareVersions, msOfVersion, type Version } from '../../core/hlc.js'

export class PrefixTombstones {
  readonly #byPrefix = new Map<string, Version>()
  /** How many prefixes of each length are held. */
  readonly #perLength = new Map<number, number>()
  /** The lengths with at least one prefix, ascending. */
  #lengths: number[] = []
  /** No tombstone held is older than this physical time, ms (a lower bound; exact after a `dropUntil` that scanned). */
  #oldestMs = Infinity

  get size(): number {
    return this.#byPrefix.size
  }

  get(prefix: string): Version | undefined {
    return this.#byPrefix.get(prefix)
  }

  /** Sets (or replaces) the tombstone of `prefix`. */
  set(prefix: string, version: Version): void {
    if (!this.#byPrefix.has(prefix)) {
      const n = prefix.length
      const count = this.#perLength.get(n) ?? 0
      this.#perLength.set(n, count + 1)
      if (count === 0) {
        let i = this.#lengths.length
        while (i > 0 && this.#lengths[i - 1]! > n) i--
        this.#lengths.splice(i, 0, n)
      }
    }
    this.#byPrefix.set(prefix, version)
    const ms = msOfVersion(version.hlc)
    if (ms < this.#oldestMs) this.#oldestMs = ms
  }

  delete(prefix: string): boolean {
    if (!this.#byPrefix.delete(prefix)) return false
    const n = prefix.length
    const count = this.#perLength.get(n)! - 1
    if (count > 0) this.#perLength.set(n, count)
    else {
      this.#perLength.delete(n)
      this.#lengths.splice(this.#lengths.indexOf(n), 1)
    }
    return true
  }

  /**
   * True when a tombstone at a prefix of `key` (`key` itself and '' included) has a version
   * >= `version` and a physical time after `keptAfterMs` (one at or before it is past its
   * grace and covers nothing; `-Infinity` counts every one held).
   */
  covers(key: string, version: Version, keptAfterMs: number): boolean {
    const lengths = this.#lengths
    for (let i = 0; i < lengths.length; i++) {
      const n = lengths[i]!
      if (n > key.length) return false
      const pv = this.#byPrefix.get(n === key.length ? key : key.slice(0, n))
      if (pv !== undefined && compareVersions(pv, version) >= 0 && msOfVersion(pv.hlc) > keptAfterMs) return true
    }
    return false
  }

  /** The prefixes held that extend `prefix` (start with it and are longer), with their versions. */
  under(prefix: string): Array<[string, Version]> {
    const out: Array<[string, Version]> = []
    if (this.#lengths.length === 0 || this.#lengths[this.#lengths.length - 1]! <= prefix.length) return out
    for (const entry of this.#byPrefix) if (entry[0].length > prefix.length && entry[0].startsWith(prefix)) out.push(entry)
    return out
  }

  /**
   * Deletes the tombstones whose version's physical time is at or before `cutoffMs` (past
   * their grace) and returns them. Costs nothing while none held is that old.
   */
  dropUntil(cutoffMs: number): Array<[string, Version]> {
    const dropped: Array<[string, Version]> = []
    if (cutoffMs < this.#oldestMs) return dropped
    let oldest = Infinity
    for (const entry of this.#byPrefix) {
      const ms = msOfVersion(entry[1].hlc)
      if (ms <= cutoffMs) {
        this.delete(entry[0])
        dropped.push(entry)
      } else if (ms < oldest) oldest = ms
    }
    this.#oldestMs = oldest
    return dropped
  }

  entries(): IterableIterator<[string, Version]> {
    return this.#byPrefix.entries()
  }

  [Symbol.iterator](): IterableIterator<[string, Version]> {
    return this.#byPrefix.entries()
  }
}
