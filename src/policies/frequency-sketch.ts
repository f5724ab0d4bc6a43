/**
 * A count-min sketch of access frequencies, the "TinyLFU" half of W-TinyLFU.
 *
 * Design (after Einziger, Friedman & Manes, "TinyLFU: A Highly Efficient Cache Admission
 * Policy", 2017, and Caffeine's FrequencySketch):
 * - depth 4, width a power of two >= the cache's capacity; one byte per counter, capped at
 *   15 (4-bit counters in spirit; bytes keep the code simple and fast in JS);
 * - block layout (Caffeine's since 3.0): a key's four counters lie in one 64-byte block,
 *   one per 16-byte row, so an increment costs one cache miss instead of four;
 * - conservative update: only the counters equal to the current minimum are incremented,
 *   which reduces over-estimation;
 * - aging ("reset"): after 10 x capacity increments every counter is halved, so the sketch
 *   follows a changing workload instead of remembering old popularity forever.
 * Collisions only make a key look more popular than it is; they never lose data.
 */
export class FrequencySketch {
  #table: Uint8Array
  /** Mask selecting a block (64 bytes) of the table. */
  #blockMask: number
  #additions = 0
  #sampleSize: number

  constructor(capacity: number) {
    const bytes = 4 * nextPowerOfTwo(Math.max(16, capacity))
    this.#table = new Uint8Array(bytes)
    this.#blockMask = bytes / 64 - 1
    this.#sampleSize = 10 * Math.max(16, capacity)
  }

  /** Resizes for a larger capacity (counts are dropped: the sketch relearns quickly). */
  ensureCapacity(capacity: number): void {
    const bytes = 4 * nextPowerOfTwo(Math.max(16, capacity))
    if (bytes <= this.#table.length) return
    this.#table = new Uint8Array(bytes)
    this.#blockMask = bytes / 64 - 1
    this.#sampleSize = 10 * Math.max(16, capacity)
    this.#additions = 0
  }

  /** Estimated frequency of `hash`, 0..15. */
  frequency(hash: number): number {
    const t = this.#table
    const block = (spread(hash) & this.#blockMask) << 6
    const h = rehash(hash)
    let min = t[block + (h & 15)]
    const b = t[block + 16 + ((h >>> 8) & 15)]
    if (b < min) min = b
    const c = t[block + 32 + ((h >>> 16) & 15)]
    if (c < min) min = c
    const d = t[block + 48 + ((h >>> 24) & 15)]
    return d < min ? d : min
  }

  increment(hash: number): void {
    const t = this.#table
    const block = (spread(hash) & this.#blockMask) << 6
    const h = rehash(hash)
    const i0 = block + (h & 15)
    const i1 = block + 16 + ((h >>> 8) & 15)
    const i2 = block + 32 + ((h >>> 16) & 15)
    const i3 = block + 48 + ((h >>> 24) & 15)
    let min = t[i0]
    if (t[i1] < min) min = t[i1]
    if (t[i2] < min) min = t[i2]
    if (t[i3] < min) min = t[i3]
    if (min >= 15) return
    // Conservative update: raise only the counters at the minimum.
    if (t[i0] === min) t[i0]++
    if (t[i1] === min) t[i1]++
    if (t[i2] === min) t[i2]++
    if (t[i3] === min) t[i3]++
    if (++this.#additions >= this.#sampleSize) this.#age()
  }

  reset(): void {
    this.#table.fill(0)
    this.#additions = 0
  }

  #age(): void {
    const t = this.#table
    for (let i = 0; i < t.length; i++) t[i] >>>= 1
    this.#additions = Math.floor(this.#additions / 2)
  }
}

function spread(hash: number): number {
  const h = Math.imul(hash ^ 0x97cb3127, 0x9e3779b1)
  return (h ^ (h >>> 15)) >>> 0
}

function rehash(hash: number): number {
  let h = Math.imul(hash ^ 0x85ebca6b, 0xc2b2ae35)
  h ^= h >>> 13
  return Math.imul(h, 0x27d4eb2f) >>> 0
}

function nextPowerOfTwo(n: number): number {
  let p = 1
  while (p < n) p *= 2
  return p
}
