/**
 * Window-TinyLFU eviction, as in Caffeine.
 *
 * Design (Einziger, Friedman & Manes, "TinyLFU: A Highly Efficient Cache Admission Policy",
 * ACM ToS 2017; Caffeine's BoundedLocalCache):
 * - A small LRU "window" (1% of capacity) takes every new entry, so a burst of new keys
 *   gets a chance to prove itself.
 * - The rest is a segmented LRU "main" space: "probation" (20%) and "protected" (80%).
 *   A hit in probation promotes the entry to protected; protected overflow demotes its LRU
 *   entry back to probation.
 * - When the cache is over its bound and the window is over its share, the window's LRU
 *   entry (the candidate) competes with the main space's LRU entry (the victim): the one
 *   the frequency sketch says is used less often is evicted. One-off keys (scans) thus
 *   pass through the window without flushing the frequently used entries in main.
 * - Hash-flooding defence (Caffeine): a candidate with a moderately high frequency that
 *   does not beat the victim is still admitted with probability 1/128, so an attacker
 *   cannot pin a victim by colliding with it in the sketch.
 * Not adopted from Caffeine: the hill-climbing adaptation of the window size (the fixed
 * 1% window is Caffeine's starting point and does well on the traces in bench/).
 */
import type { Random } from '../core/random.js'
import { type EvictionPolicy, growFloat64, growInt32, growUint32 } from './eviction-policy.js'
import { FrequencySketch } from './frequency-sketch.js'

const WINDOW = 0
const PROBATION = 1
const PROTECTED = 2
const NONE = 255
const HASHDOS_THRESHOLD = 6
/** Segments shorter than this keep exact LRU order. */
const SKIP_MIN = 1024

export class TinyLfuPolicy implements EvictionPolicy {
  readonly name = 'tinylfu'
  #next: Int32Array
  #prev: Int32Array
  #hash: Int32Array
  #weight: Float64Array
  #segment: Uint8Array
  #ticket: Uint32Array
  #counter = 0
  #counts = new Int32Array(3)
  // head (most recent) and tail (victim end) of the three segments
  #heads = new Int32Array([-1, -1, -1])
  #tails = new Int32Array([-1, -1, -1])
  #weights = new Float64Array(3)
  #windowMax: number
  #protectedMax: number
  #mainMax: number
  #sketch: FrequencySketch
  #random: Random

  /**
   * @param capacity  slots to allocate now
   * @param maximum   the bound in weight units (entries, or bytes when only maxBytes is set)
   */
  constructor(capacity: number, maximum: number, random: Random, sketchCapacity: number) {
    this.#next = new Int32Array(capacity).fill(-1)
    this.#prev = new Int32Array(capacity).fill(-1)
    this.#hash = new Int32Array(capacity)
    this.#weight = new Float64Array(capacity)
    this.#segment = new Uint8Array(capacity).fill(NONE)
    this.#ticket = new Uint32Array(capacity)
    this.#windowMax = Math.max(1, Math.floor(maximum * 0.01))
    this.#mainMax = Math.max(0, maximum - this.#windowMax)
    this.#protectedMax = Math.floor(this.#mainMax * 0.8)
    this.#sketch = new FrequencySketch(sketchCapacity)
    this.#random = random
  }

  grow(capacity: number): void {
    const old = this.#segment.length
    if (capacity <= old) return
    this.#next = growInt32(this.#next, capacity)
    this.#prev = growInt32(this.#prev, capacity)
    this.#hash = growInt32(this.#hash, capacity, 0)
    this.#weight = growFloat64(this.#weight, capacity)
    const seg = new Uint8Array(capacity).fill(NONE)
    seg.set(this.#segment)
    this.#segment = seg
    this.#ticket = growUint32(this.#ticket, capacity)
    this.#sketch.ensureCapacity(capacity)
  }

  onInsert(slot: number, hash: number, weight: number): void {
    this.#hash[slot] = hash
    this.#weight[slot] = weight
    this.#sketch.increment(hash)
    this.#linkHead(WINDOW, slot)
    // While the main space has room, window overflow moves there without any eviction.
    while (this.#weights[WINDOW] > this.#windowMax) {
      const cand = this.#tails[WINDOW]
      if (cand === slot || this.#weights[PROBATION] + this.#weights[PROTECTED] + this.#weight[cand] > this.#mainMax) break
      this.#unlink(cand)
      this.#linkHead(PROBATION, cand)
    }
  }

  onAccess(slot: number): void {
    this.#sketch.increment(this.#hash[slot])
    const seg = this.#segment[slot]
    if (seg === PROBATION) {
      this.#unlink(slot)
      this.#linkHead(PROTECTED, slot)
      while (this.#weights[PROTECTED] > this.#protectedMax) {
        const demoted = this.#tails[PROTECTED]
        if (demoted === slot) break
        this.#unlink(demoted)
        this.#linkHead(PROBATION, demoted)
      }
    } else if (this.#heads[seg] !== slot) {
      // Bump skipping as in LruPolicy: an entry in the most recent 1/16 of its segment stays put.
      const count = this.#counts[seg]
      if (count >= SKIP_MIN && ((this.#counter - this.#ticket[slot]) >>> 0) < count >>> 4) return
      this.#unlink(slot)
      this.#linkHead(seg, slot)
    }
  }

  onUpdate(slot: number, weight: number): void {
    const seg = this.#segment[slot]
    this.#weights[seg] += weight - this.#weight[slot]
    this.#weight[slot] = weight
    this.onAccess(slot)
  }

  onRemove(slot: number): void {
    this.#unlink(slot)
  }

  victim(): number {
    const cand = this.#tails[WINDOW]
    const mainVictim = this.#tails[PROBATION] !== -1 ? this.#tails[PROBATION] : this.#tails[PROTECTED]
    if (cand !== -1 && this.#weights[WINDOW] > this.#windowMax) {
      if (mainVictim === -1) return cand
      if (this.#admit(this.#hash[cand], this.#hash[mainVictim])) {
        this.#unlink(cand)
        this.#linkHead(PROBATION, cand)
        return mainVictim
      }
      return cand
    }
    return mainVictim !== -1 ? mainVictim : cand
  }

  forEach(fn: (slot: number) => void): void {
    // Most valuable first: protected, then window, then probation.
    for (const seg of [PROTECTED, WINDOW, PROBATION]) {
      for (let s = this.#heads[seg]; s !== -1; s = this.#next[s]) fn(s)
    }
  }

  reset(): void {
    this.#next.fill(-1)
    this.#prev.fill(-1)
    this.#segment.fill(NONE)
    this.#heads.fill(-1)
    this.#tails.fill(-1)
    this.#weights.fill(0)
    this.#counts.fill(0)
    this.#sketch.reset()
  }

  #admit(candidateHash: number, victimHash: number): boolean {
    const c = this.#sketch.frequency(candidateHash)
    const v = this.#sketch.frequency(victimHash)
    if (c > v) return true
    return c >= HASHDOS_THRESHOLD && this.#random.next() < 1 / 128
  }

  #linkHead(seg: number, slot: number): void {
    const head = this.#heads[seg]
    this.#segment[slot] = seg
    this.#prev[slot] = -1
    this.#next[slot] = head
    if (head === -1) this.#tails[seg] = slot
    else this.#prev[head] = slot
    this.#heads[seg] = slot
    this.#weights[seg] += this.#weight[slot]
    this.#counts[seg]++
    this.#ticket[slot] = this.#counter = (this.#counter + 1) >>> 0
  }

  #unlink(slot: number): void {
    const seg = this.#segment[slot]
    if (seg === NONE) return
    const p = this.#prev[slot]
    const n = this.#next[slot]
    if (p === -1) this.#heads[seg] = n
    else this.#next[p] = n
    if (n === -1) this.#tails[seg] = p
    else this.#prev[n] = p
    this.#next[slot] = this.#prev[slot] = -1
    this.#segment[slot] = NONE
    this.#weights[seg] -= this.#weight[slot]
    this.#counts[seg]--
  }
}
