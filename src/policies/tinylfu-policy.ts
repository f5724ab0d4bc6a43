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
import { type EvictionPolicy, growFloat64 } from './eviction-policy.js'
import { FrequencySketch } from './frequency-sketch.js'

const WINDOW = 0
const PROBATION = 1
const PROTECTED = 2
const NONE = 255
// Fields of a slot's record in #meta.
const STRIDE = 5
const HASH = 0
const TICKET = 1
const SEG = 2
const NEXT = 3
const PREV = 4
const HASHDOS_THRESHOLD = 6
/** Segments shorter than this keep exact LRU order. */
const SKIP_MIN = 1024

export class TinyLfuPolicy implements EvictionPolicy {
  readonly name = 'tinylfu'
  /**
   * Per-slot record of STRIDE int32s: key hash, bump ticket, segment, next, prev — what a
   * hit reads, side by side (20 bytes: one cache line, occasionally two).
   */
  #meta: Int32Array
  /** Per-slot weight, only when the policy counts bytes; every entry weighs 1 otherwise. */
  #weight: Float64Array | undefined
  #capacity: number
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
  constructor(capacity: number, maximum: number, random: Random, sketchCapacity: number, weighted: boolean) {
    this.#meta = emptyRecords(capacity)
    this.#capacity = capacity
    this.#weight = weighted ? new Float64Array(capacity) : undefined
    this.#windowMax = Math.max(1, Math.floor(maximum * 0.01))
    this.#mainMax = Math.max(0, maximum - this.#windowMax)
    this.#protectedMax = Math.floor(this.#mainMax * 0.8)
    this.#sketch = new FrequencySketch(sketchCapacity)
    this.#random = random
  }

  grow(capacity: number): void {
    if (capacity * STRIDE <= this.#meta.length) return
    const meta = emptyRecords(capacity)
    meta.set(this.#meta)
    this.#meta = meta
    this.#capacity = capacity
    if (this.#weight !== undefined) this.#weight = growFloat64(this.#weight, capacity)
    this.#sketch.ensureCapacity(capacity)
  }

  onInsert(slot: number, hash: number, weight: number): void {
    this.#meta[slot * STRIDE + HASH] = hash
    if (this.#weight !== undefined) this.#weight[slot] = weight
    this.#sketch.increment(hash)
    this.#linkHead(WINDOW, slot)
    // While the main space has room, window overflow moves there without any eviction.
    while (this.#weights[WINDOW] > this.#windowMax) {
      const cand = this.#tails[WINDOW]
      if (cand === slot || this.#weights[PROBATION] + this.#weights[PROTECTED] + this.#weightOf(cand) > this.#mainMax) break
      this.#unlink(cand)
      this.#linkHead(PROBATION, cand)
    }
  }

  onAccess(slot: number): void {
    const meta = this.#meta
    const r = slot * STRIDE
    this.#sketch.increment(meta[r + HASH])
    const seg = meta[r + SEG]
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
      if (count >= SKIP_MIN && ((this.#counter - meta[r + TICKET]) >>> 0) < count >>> 4) return
      this.#unlink(slot)
      this.#linkHead(seg, slot)
    }
  }

  onUpdate(slot: number, weight: number): void {
    const seg = this.#meta[slot * STRIDE + SEG]
    if (this.#weight !== undefined) {
      this.#weights[seg] += weight - this.#weight[slot]
      this.#weight[slot] = weight
    }
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
      if (this.#admit(this.#meta[cand * STRIDE + HASH], this.#meta[mainVictim * STRIDE + HASH])) {
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
      for (let s = this.#heads[seg]; s !== -1; s = this.#meta[s * STRIDE + NEXT]) fn(s)
    }
  }

  reset(): void {
    this.#meta = emptyRecords(this.#capacity)
    this.#heads.fill(-1)
    this.#tails.fill(-1)
    this.#weights.fill(0)
    this.#counts.fill(0)
    this.#sketch.reset()
  }

  #weightOf(slot: number): number {
    return this.#weight === undefined ? 1 : this.#weight[slot]
  }

  #admit(candidateHash: number, victimHash: number): boolean {
    const c = this.#sketch.frequency(candidateHash)
    const v = this.#sketch.frequency(victimHash)
    if (c > v) return true
    return c >= HASHDOS_THRESHOLD && this.#random.next() < 1 / 128
  }

  #linkHead(seg: number, slot: number): void {
    const meta = this.#meta
    const r = slot * STRIDE
    const head = this.#heads[seg]
    meta[r + SEG] = seg
    meta[r + PREV] = -1
    meta[r + NEXT] = head
    if (head === -1) this.#tails[seg] = slot
    else meta[head * STRIDE + PREV] = slot
    this.#heads[seg] = slot
    this.#weights[seg] += this.#weightOf(slot)
    this.#counts[seg]++
    meta[r + TICKET] = this.#counter = (this.#counter + 1) >>> 0
  }

  #unlink(slot: number): void {
    const meta = this.#meta
    const r = slot * STRIDE
    const seg = meta[r + SEG]
    if (seg === NONE) return
    const p = meta[r + PREV]
    const n = meta[r + NEXT]
    if (p === -1) this.#heads[seg] = n
    else meta[p * STRIDE + NEXT] = n
    if (n === -1) this.#tails[seg] = p
    else meta[n * STRIDE + PREV] = p
    meta[r + NEXT] = meta[r + PREV] = -1
    meta[r + SEG] = NONE
    this.#weights[seg] -= this.#weightOf(slot)
    this.#counts[seg]--
  }
}

function emptyRecords(capacity: number): Int32Array {
  const meta = new Int32Array(capacity * STRIDE)
  for (let r = 0; r < meta.length; r += STRIDE) {
    meta[r + SEG] = NONE
    meta[r + NEXT] = meta[r + PREV] = -1
  }
  return meta
}
