/**
 * Window-TinyLFU eviction, as in Caffeine.
 *
 * Design (Einziger, Friedman & Manes, "TinyLFU: A Highly Efficient Cache Admission Policy",
 * ACM ToS 2017; Caffeine's BoundedLocalCache):
 * - A small "window" (1% of capacity) takes every new entry, so a burst of new keys gets a
 *   chance to prove itself.
 * - The rest is a segmented main space: "probation" (20%) and "protected" (80%). A hit in
 *   probation promotes the entry to protected; protected overflow demotes its least
 *   recently used entry back to probation.
 * - When the cache is over its bound and the window is over its share, the window's least
 *   recently used entry (the candidate) competes with probation's (the victim): the one the
 *   frequency sketch says is used less often is evicted. One-off keys (scans) thus pass
 *   through the window without flushing the frequently used entries in main.
 * - Hash-flooding defence (Caffeine): a candidate with a moderately high frequency that
 *   does not beat the victim is still admitted with probability 1/128, so an attacker
 *   cannot pin a victim by colliding with it in the sketch.
 * Not adopted from Caffeine: the hill-climbing adaptation of the window size (the fixed
 * 1% window is Caffeine's starting point and does well on the traces in bench/).
 *
 * How it stays cheaper per hit than an exact LRU (the hot path of a read-mostly cache):
 * - Recency inside the window and protected segments is kept as CLOCK (second chance)
 *   over each segment's list: a hit only sets the entry's "referenced" bit; when an entry
 *   reaches the cold end of its segment (as candidate, or by protected overflow) with the
 *   bit set, the bit is cleared and the entry goes back to the warm end instead. This is
 *   the classic approximation of LRU (what operating systems use for page caches); a
 *   probation hit still promotes at once, as in Caffeine.
 * - Each slot's flag byte keeps its key's sketch estimate as of the key's last count (its
 *   insert or a hit), and the slots' copies are halved whenever the sketch halves. Admission
 *   takes the candidate's estimate from there: the candidate was counted moments ago (the
 *   window holds the newest 1%), so its copy is what the sketch would say, without hashing
 *   its key or reading the sketch. The victim's estimate is looked up live: it was counted
 *   long ago, and colliding keys have raised the sketch since; comparing a fresh estimate
 *   with an old copy favours newcomers (on the loop-heavy trace in bench/ it cost up to 11
 *   points of hit ratio).
 * - A key whose estimate is at the cap (15) skips the sketch on its hits exactly (an
 *   increment would change nothing) until the next halving.
 * - The policy keeps no hashes: `hashOf(slot)` reads the one the engine's key index stores
 *   per slot (key-index.ts). Per slot the policy keeps 9 bytes (links and the flag byte)
 *   and about 2 bytes of sketch.
 */
import type { Random } from '../core/random.js'
import { type EvictionPolicy, growFloat64 } from './eviction-policy.js'
import { FrequencySketch, HALVED, MAX_FREQUENCY } from './frequency-sketch.js'

// Segment numbers (the low two bits of a slot's flag byte).
const WINDOW = 0
const PROBATION = 1
const PROTECTED = 2
const NONE = 3
const SEG = 3
/** Read since the entry last reached the warm end of its segment (CLOCK's reference bit). */
const REF = 4
/** The high nibble: the key's sketch estimate as of its last count (0..15). */
const FREQ_SHIFT = 4
const LOW = 15
/** A flag byte at or above this has its estimate at the cap: hits skip the sketch. */
const CAPPED = MAX_FREQUENCY << FREQ_SHIFT
// Links: two int32 per slot.
const NEXT = 0
const PREV = 1
const HASHDOS_THRESHOLD = 6

export class TinyLfuPolicy implements EvictionPolicy {
  readonly name = 'tinylfu'
  /** Per slot: next, prev. */
  #links: Int32Array
  /** Per slot: segment | REF | estimate << FREQ_SHIFT. */
  #flags: Uint8Array
  /** Per-slot weight, only when the policy counts bytes; every entry weighs 1 otherwise. */
  #weight: Float64Array | undefined
  #capacity: number
  // head (warm end) and tail (cold end) of the three segments
  #heads = new Int32Array([-1, -1, -1])
  #tails = new Int32Array([-1, -1, -1])
  #weights = new Float64Array(3)
  #windowMax: number
  #protectedMax: number
  #mainMax: number
  #sketch: FrequencySketch
  #random: Random
  #hashOf: (slot: number) => number
  /** The estimate of the key counted by victimBeforeInsert, for onReuse. */
  #pending = 0

  /**
   * @param capacity  slots to allocate now
   * @param maximum   the bound in weight units (entries, or bytes when only maxBytes is set)
   * @param hashOf    the 32-bit hash of the key in a slot (the engine owns the keys)
   */
  constructor(capacity: number, maximum: number, random: Random, sketchCapacity: number, weighted: boolean, hashOf: (slot: number) => number) {
    this.#links = emptyLinks(capacity)
    this.#flags = new Uint8Array(capacity).fill(NONE)
    this.#capacity = capacity
    this.#weight = weighted ? new Float64Array(capacity) : undefined
    this.#windowMax = Math.max(1, Math.floor(maximum * 0.01))
    this.#mainMax = Math.max(0, maximum - this.#windowMax)
    this.#protectedMax = Math.floor(this.#mainMax * 0.8)
    this.#sketch = new FrequencySketch(sketchCapacity)
    this.#random = random
    this.#hashOf = hashOf
  }

  grow(capacity: number): void {
    if (capacity <= this.#capacity) return
    const links = emptyLinks(capacity)
    links.set(this.#links)
    this.#links = links
    const flags = new Uint8Array(capacity).fill(NONE)
    flags.set(this.#flags)
    this.#flags = flags
    this.#capacity = capacity
    if (this.#weight !== undefined) this.#weight = growFloat64(this.#weight, capacity)
    // A resized sketch starts empty: so do the copies of its estimates.
    if (this.#sketch.ensureCapacity(capacity)) for (let i = 0; i < flags.length; i++) flags[i] &= LOW
  }

  onInsert(slot: number, hash: number, weight: number): void {
    if (this.#weight !== undefined) this.#weight[slot] = weight
    this.#flags[slot] = NONE | (this.#count(hash) << FREQ_SHIFT)
    this.#linkHead(WINDOW, slot)
    // While the main space has room, window overflow moves there without any eviction.
    while (this.#weights[WINDOW] > this.#windowMax) {
      // Counting entries, a full main space takes none: no need to look at the candidate
      // (victim() will, and #coldest gives the same answer twice).
      if (this.#weight === undefined && this.#weights[PROBATION] + this.#weights[PROTECTED] + 1 > this.#mainMax) break
      const cand = this.#coldest(WINDOW)
      if (cand === slot || this.#weights[PROBATION] + this.#weights[PROTECTED] + this.#weightOf(cand) > this.#mainMax) break
      this.#move(cand, PROBATION)
    }
  }

  onAccess(slot: number): void {
    // Most hits of a read-mostly cache: a key at the cap, outside probation. Kept small so
    // that V8 inlines it into the engine's get; everything else is #countHit.
    const f = this.#flags[slot]
    if (f >= CAPPED && (f & SEG) !== PROBATION) {
      if ((f & REF) === 0) this.#flags[slot] = f | REF
      return
    }
    this.#countHit(slot, f)
  }

  /** A hit that counts in the sketch (key below the cap) or promotes (probation). */
  #countHit(slot: number, before: number): void {
    const flags = this.#flags
    let f = before
    if (f < CAPPED) f = (f & LOW) | (this.#count(this.#hashOf(slot)) << FREQ_SHIFT)
    if ((f & SEG) === PROBATION) {
      flags[slot] = f
      this.#promote(slot)
    } else if ((f & REF) === 0 || f !== flags[slot]) {
      flags[slot] = f | REF
    }
  }

  onUpdate(slot: number, weight: number): void {
    if (this.#weight !== undefined) {
      this.#weights[this.#flags[slot] & SEG] += weight - this.#weight[slot]
      this.#weight[slot] = weight
    }
    this.onAccess(slot)
  }

  onRemove(slot: number): void {
    this.#unlink(slot)
    this.#flags[slot] = NONE
  }

  victim(): number {
    if (this.#weights[WINDOW] > this.#windowMax) {
      const cand = this.#coldest(WINDOW)
      const mainVictim = this.#tails[PROBATION] !== -1 ? this.#tails[PROBATION] : this.#coldest(PROTECTED)
      if (cand === -1) return mainVictim
      if (mainVictim === -1) return cand
      if (this.#admit(cand, mainVictim)) {
        this.#move(cand, PROBATION)
        return mainVictim
      }
      return cand
    }
    if (this.#tails[PROBATION] !== -1) return this.#tails[PROBATION]
    const protectedVictim = this.#coldest(PROTECTED)
    return protectedVictim !== -1 ? protectedVictim : this.#coldest(WINDOW)
  }

  victimBeforeInsert(hash: number): number {
    // The one case told cheaply, and the common one of a cache at its bound: a full window
    // (so the insert makes it overflow, and a full main space takes nothing) whose coldest
    // entry is unreferenced (so CLOCK moves nothing) and a non-empty probation. victim()
    // would then pit that entry against probation's coldest, after onInsert's count.
    if (this.#weight !== undefined || this.#weights[WINDOW] !== this.#windowMax) return -1
    const cand = this.#tails[WINDOW]
    const mainVictim = this.#tails[PROBATION]
    if (cand === -1 || mainVictim === -1 || (this.#flags[cand] & REF) !== 0) return -1
    this.#pending = this.#count(hash)
    if (this.#admit(cand, mainVictim)) {
      this.#move(cand, PROBATION)
      return mainVictim
    }
    return cand
  }

  onReuse(slot: number): void {
    this.#unlink(slot)
    this.#flags[slot] = NONE | (this.#pending << FREQ_SHIFT)
    this.#linkHead(WINDOW, slot)
  }

  forEach(fn: (slot: number) => void): void {
    // Most valuable first: protected, then window, then probation.
    for (const seg of [PROTECTED, WINDOW, PROBATION]) {
      for (let s = this.#heads[seg]; s !== -1; s = this.#links[s * 2 + NEXT]) fn(s)
    }
  }

  reset(): void {
    this.#links = emptyLinks(this.#capacity)
    this.#flags.fill(NONE)
    this.#heads.fill(-1)
    this.#tails.fill(-1)
    this.#weights.fill(0)
    // The sketch is kept: it records the workload, not the contents, and the engine's
    // clear() with listeners (which removes entries one by one) keeps it too.
  }

  /** The estimate kept for the key in `slot` (0..15): its sketch estimate as of its last count, halved with the sketch. */
  frequencyOf(slot: number): number {
    return this.#flags[slot] >>> FREQ_SHIFT
  }

  /** A probation hit: to the warm end of protected; protected overflow goes back to probation. */
  #promote(slot: number): void {
    this.#move(slot, PROTECTED)
    while (this.#weights[PROTECTED] > this.#protectedMax) {
      const demoted = this.#coldest(PROTECTED)
      if (demoted === slot) break
      this.#move(demoted, PROBATION)
    }
  }

  /**
   * The cold end of `seg` after CLOCK's second chance: referenced entries found there are
   * moved to the warm end with their bit cleared. Ends: every bit it meets is cleared.
   */
  #coldest(seg: number): number {
    const flags = this.#flags
    let s = this.#tails[seg]
    while (s !== -1 && (flags[s] & REF) !== 0 && this.#heads[seg] !== s) {
      this.#move(s, seg)
      s = this.#tails[seg]
    }
    if (s !== -1) flags[s] &= ~REF
    return s
  }

  #weightOf(slot: number): number {
    return this.#weight === undefined ? 1 : this.#weight[slot]
  }

  #admit(candidate: number, victim: number): boolean {
    const c = this.#flags[candidate] >>> FREQ_SHIFT
    const v = this.#sketch.frequency(this.#hashOf(victim))
    if (c > v) return true
    return c >= HASHDOS_THRESHOLD && this.#random.next() < 1 / 128
  }

  /** Moves `slot` to the warm end of `seg` (its own segment or another), clearing REF. */
  #move(slot: number, seg: number): void {
    this.#unlink(slot)
    this.#linkHead(seg, slot)
  }

  #linkHead(seg: number, slot: number): void {
    const links = this.#links
    const r = slot * 2
    const head = this.#heads[seg]
    this.#flags[slot] = (this.#flags[slot] & ~LOW) | seg
    links[r + PREV] = -1
    links[r + NEXT] = head
    if (head === -1) this.#tails[seg] = slot
    else links[head * 2 + PREV] = slot
    this.#heads[seg] = slot
    this.#weights[seg] += this.#weightOf(slot)
  }

  #unlink(slot: number): void {
    const seg = this.#flags[slot] & SEG
    if (seg === NONE) return
    const links = this.#links
    const r = slot * 2
    const p = links[r + PREV]
    const n = links[r + NEXT]
    if (p === -1) this.#heads[seg] = n
    else links[p * 2 + NEXT] = n
    if (n === -1) this.#tails[seg] = p
    else links[n * 2 + PREV] = p
    links[r + NEXT] = links[r + PREV] = -1
    this.#flags[slot] = (this.#flags[slot] & ~LOW) | NONE
    this.#weights[seg] -= this.#weightOf(slot)
  }

  /**
   * Counts one use of the key with `hash` in the sketch; returns its new estimate (0..15).
   * When the count halved the sketch's counters, the slots' copies of estimates are halved too.
   */
  #count(hash: number): number {
    const r = this.#sketch.increment(hash)
    if (r >= HALVED) halveNibbles(this.#flags)
    return r & LOW
  }
}


/**
 * Halves the estimate nibble of every flag byte, keeping the low bits. A function of its own
 * with nothing after the loop (see `halve` in frequency-sketch.ts: it runs rarely, so V8
 * compiles it on-stack mid-loop, and code after the loop would deoptimize it every time).
 */
function halveNibbles(flags: Uint8Array): void {
  for (let i = 0; i < flags.length; i++) flags[i] = ((flags[i] >>> 1) & 0x70) | (flags[i] & LOW)
}

function emptyLinks(capacity: number): Int32Array {
  return new Int32Array(capacity * 2).fill(-1)
}
