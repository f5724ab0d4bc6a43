/**
 * Reclaims expired entries without a timer per entry.
 *
 * Design: a hashed timing wheel with unbounded buckets (a "calendar queue"; Varghese &
 * Lauck, "Hashed and Hierarchical Timing Wheels", 1987). Time is cut into ticks of
 * `resolution` ms; a slot whose deadline falls in tick b is linked into bucket b, a doubly
 * linked list over typed arrays. Only non-empty buckets exist (a Map from tick to list
 * head), so any TTL from 1 ms to years costs the same O(1) to schedule and unschedule.
 *
 * `advance(now)` empties every bucket whose whole tick lies before `now`'s tick, handing
 * each slot to the owner, which either expires it or schedules it again (time-to-idle
 * extends deadlines without touching the wheel on reads: the slot is found a little early
 * and moved to its new bucket, as Caffeine does for variable expiry). A deadline is thus
 * reclaimed at most one tick after it passes, plus the owner's sweep period.
 *
 * Reads never depend on the wheel: the engine checks deadlines on every read.
 */
import { growInt32 } from '../core/grow-array.js'

/** Largest tick; -(tick + 2) must fit an int32 (see the `prev` encoding below). */
const MAX_TICK = 2 ** 31 - 3

export class ExpiryWheel {
  readonly #resolution: number
  readonly #base: number
  #next: Int32Array
  /**
   * Previous slot in the bucket list; for a bucket's head, `-(bucket + 2)` (so no per-slot
   * bucket array is needed to unlink a head); -1 when the slot is not scheduled.
   */
  #prev: Int32Array
  #buckets = new Map<number, number>()
  /**
   * The bucket last scheduled into and its head (-1: the bucket is empty): a one-entry
   * cache of #buckets, kept exact by #unlink, so that a burst of entries with one TTL
   * (which all fall in one bucket) costs no Map operation.
   */
  #hotBucket = -1
  #hotHead = -1
  /** Every tick before this one has been emptied. */
  #cursor: number
  #count = 0

  constructor(resolution: number, capacity: number, now: number) {
    this.#resolution = resolution
    this.#base = Math.floor(now / resolution)
    this.#cursor = 0
    this.#next = new Int32Array(capacity).fill(-1)
    this.#prev = new Int32Array(capacity).fill(-1)
  }

  /** Number of scheduled slots. */
  get size(): number {
    return this.#count
  }

  grow(capacity: number): void {
    this.#next = growInt32(this.#next, capacity)
    this.#prev = growInt32(this.#prev, capacity)
  }

  schedule(slot: number, deadline: number): void {
    let bucket = Math.floor(deadline / this.#resolution) - this.#base
    if (bucket < this.#cursor) bucket = this.#cursor
    // Deadlines past 2^31 ticks (decades) wait in the last tick and are rescheduled from there.
    if (bucket > MAX_TICK) bucket = MAX_TICK
    if (this.#prev[slot] !== -1) this.#unlink(slot)
    let head = bucket === this.#hotBucket ? this.#hotHead : (this.#buckets.get(bucket) ?? -1)
    if (head === -1) {
      // A new bucket, with this slot as its head.
      this.#next[slot] = -1
      this.#prev[slot] = -(bucket + 2)
      this.#buckets.set(bucket, slot)
      head = slot
    } else {
      // Linked after the head (order within a bucket does not matter): the map is unchanged.
      const n = this.#next[head]
      this.#next[slot] = n
      this.#prev[slot] = head
      if (n !== -1) this.#prev[n] = slot
      this.#next[head] = slot
    }
    this.#hotBucket = bucket
    this.#hotHead = head
    this.#count++
  }

  /**
   * `schedule(slot, deadline)` for a slot this wheel holds for `previous` (its deadline when
   * last scheduled): nothing moves when both fall in one tick, as when a slot is reused for a
   * new entry with the same TTL moments later (decision 0396). Every slot held lies in a tick
   * at or after the cursor, so the tick computed now for `previous` is the one it lies in.
   */
  reschedule(slot: number, previous: number, deadline: number): void {
    // Compared before `schedule`'s offset and clamps, which map equal ticks to equal buckets
    // (decision 0401: two subtractions and four compares fewer per reused slot). Deadlines
    // that differ here and clamp to one bucket (before the cursor, or decades ahead) are
    // scheduled again, into that same bucket.
    const r = this.#resolution
    if (this.#prev[slot] !== -1 && Math.floor(previous / r) === Math.floor(deadline / r)) return
    this.schedule(slot, deadline)
  }

  unschedule(slot: number): void {
    if (this.#prev[slot] !== -1) this.#unlink(slot)
  }

  /**
   * Hands every slot in a tick that ended at or before `now` to `onDue`, unscheduled.
   * `onDue` may schedule the slot again (into a later tick) or remove it.
   */
  advance(now: number, onDue: (slot: number) => void): void {
    const limit = Math.floor(now / this.#resolution) - this.#base
    const from = this.#cursor
    if (limit <= from) return
    // Move the cursor first: a slot scheduled again while draining lands at or after it.
    this.#cursor = limit
    if (limit - from <= this.#buckets.size) {
      for (let b = from; b < limit; b++) this.#drain(b, onDue)
    } else {
      // A long jump (idle process, manual clock): visit only the buckets that exist.
      const due: number[] = []
      for (const b of this.#buckets.keys()) if (b < limit) due.push(b)
      due.sort((x, y) => x - y)
      for (const b of due) this.#drain(b, onDue)
    }
  }

  clear(): void {
    this.#buckets.clear()
    this.#hotBucket = this.#hotHead = -1
    this.#next.fill(-1)
    this.#prev.fill(-1)
    this.#count = 0
  }

  #drain(bucket: number, onDue: (slot: number) => void): void {
    for (let slot = this.#buckets.get(bucket); slot !== undefined; slot = this.#buckets.get(bucket)) {
      this.#unlink(slot)
      onDue(slot)
    }
  }

  #unlink(slot: number): void {
    const p = this.#prev[slot]
    const n = this.#next[slot]
    if (p <= -2) {
      // The head of its bucket: the next slot (if any) becomes head and takes the encoding.
      const bucket = -p - 2
      if (n === -1) this.#buckets.delete(bucket)
      else {
        this.#buckets.set(bucket, n)
        this.#prev[n] = p
      }
      if (bucket === this.#hotBucket) this.#hotHead = n
    } else {
      this.#next[p] = n
      if (n !== -1) this.#prev[n] = p
    }
    this.#next[slot] = this.#prev[slot] = -1
    this.#count--
  }
}
