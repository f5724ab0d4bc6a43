/**
 * Prefix tombstones by prefix: the replica store's and the node keyspace's record of
 * cleared prefixes, kept for the tombstone grace (24 h by default).
 *
 * Every write asks whether a kept tombstone covers its key (`covers`). Scanning them all
 * made that cost grow with every clear of the last 24 h: 20,000 kept clears took a
 * keyspace write from 35 µs to 1.1 ms. Here it costs one `Map` lookup per distinct prefix
 * length held (a tombstone covering `key` is keyed by one of `key`'s own prefixes: a
 * `PrefixMap`, core/prefix-map.ts), so
 * clears of `user:<id>:` keep writes cheap however many there are. Clears themselves still
 * walk the tombstones once (`under`), to fold the older ones a new clear covers.
 *
 * Iteration is in insertion order, as a `Map`'s (replacing a prefix's version keeps its
 * place).
 */
import { compareVersions, msOfVersion, type Version } from '../../core/hlc.js'
import { PrefixMap } from '../../core/prefix-map.js'

export class PrefixTombstones extends PrefixMap<Version> {
  /** No tombstone held is older than this physical time, ms (a lower bound; exact after a `dropUntil` that scanned). */
  #oldestMs = Infinity

  /** Sets (or replaces) the tombstone of `prefix`. */
  override set(prefix: string, version: Version): void {
    super.set(prefix, version)
    const ms = msOfVersion(version.hlc)
    if (ms < this.#oldestMs) this.#oldestMs = ms
  }

  /**
   * True when a tombstone at a prefix of `key` (`key` itself and '' included) has a version
   * >= `version` and a physical time after `keptAfterMs` (one at or before it is past its
   * grace and covers nothing; `-Infinity` counts every one held).
   */
  covers(key: string, version: Version, keptAfterMs: number): boolean {
    const lengths = this.lengths
    for (let i = 0; i < lengths.length; i++) {
      const n = lengths[i]!
      if (n > key.length) return false
      const pv = this.get(n === key.length ? key : key.slice(0, n))
      if (pv !== undefined && compareVersions(pv, version) >= 0 && msOfVersion(pv.hlc) > keptAfterMs) return true
    }
    return false
  }

  /** The prefixes held that extend `prefix` (start with it and are longer), with their versions. */
  under(prefix: string): Array<[string, Version]> {
    const out: Array<[string, Version]> = []
    const lengths = this.lengths
    if (lengths.length === 0 || lengths[lengths.length - 1]! <= prefix.length) return out
    for (const entry of this) if (entry[0].length > prefix.length && entry[0].startsWith(prefix)) out.push(entry)
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
    for (const entry of this) {
      const ms = msOfVersion(entry[1].hlc)
      if (ms <= cutoffMs) {
        this.delete(entry[0])
        dropped.push(entry)
      } else if (ms < oldest) oldest = ms
    }
    this.#oldestMs = oldest
    return dropped
  }
}
