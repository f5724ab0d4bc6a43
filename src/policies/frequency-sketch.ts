/**
 * A count-min sketch of access frequencies, the "TinyLFU" half of W-TinyLFU.
 *
 * Design (after Einziger, Friedman & Manes, "TinyLFU: A Highly Efficient Cache Admission
 * Policy", 2017, and Caffeine's FrequencySketch):
 * - depth 4, 4-bit counters (0..15), 4 x nextPowerOfTwo(capacity) counters in all: about
 *   2 bytes per cached entry;
 * - word layout (Caffeine's block layout taken to one machine word): a key's four counters
 *   lie in one 32-bit word of eight, one counter per two-counter row, chosen by four bits of
 *   its hash. An increment is one load and one store, a lookup one load. Keys sharing a
 *   word share only the counters their bits pick; as in any count-min sketch a key's
 *   estimate is the minimum of its four counters, and sharing can only raise it;
 * - conservative update: only the counters equal to the current minimum are incremented,
 *   which reduces over-estimation;
 * - aging ("reset"): after 15 x capacity increments every counter is halved, so the sketch
 *   follows a changing workload instead of remembering old popularity forever. Caffeine
 *   halves after 10 x; on the ARC trace P6 at 4,096-16,384 entries the keys tinylfu lost to
 *   ARC were used 8+ times, 16-64 cache sizes apart, and 10 x halved them 1.5-6 times between
 *   uses (decision 0380: 15 x gains 0.1-0.5 points there over seven hash seeds).
 * Collisions only make a key look more popular than it is; they never lose data.
 *
 * `increment` returns the key's new estimate, and says when it halved the table: TinyLfuPolicy
 * keeps that estimate per resident entry (and halves its copies with the table), so that
 * admission needs no lookup and hits of keys at the cap skip the sketch exactly.
 */
import { nextPowerOfTwo } from '../core/grow-array.js'

/** The cap of an estimate (4-bit counters). */
export const MAX_FREQUENCY = 15
/** Set in `increment`'s result when that increment halved every counter. */
export const HALVED = 16
/** Counted increments between two halvings, per unit of capacity (Caffeine: 10; see the header). */
export const SAMPLE_FACTOR = 15

export class FrequencySketch {
  /** Eight 4-bit counters per word; row k of a word is nibbles 2k and 2k + 1. */
  #table: Int32Array
  #mask = 0
  #additions = 0
  #sampleSize = 0

  constructor(capacity: number) {
    this.#table = this.#allocate(capacity)
  }

  /** Resizes for a larger capacity; returns true when it did (counts are dropped: the sketch relearns quickly). */
  ensureCapacity(capacity: number): boolean {
    if (tableWords(capacity) <= this.#table.length) return false
    this.#table = this.#allocate(capacity)
    this.#additions = 0
    return true
  }

  /** Estimated frequency of `hash`, 0..15. */
  frequency(hash: number): number {
    const h = spread(hash)
    const w = this.#table[h & this.#mask]
    // The key's four counters, one per byte (see `increment`).
    const k = (((h >>> 28) * 0x00204081) & 0x01010101) * 0x0f
    const c = (((w >>> 4) & k) | (w & ~k)) & NIBBLES
    return min(min(c & 15, (c >>> 8) & 15), min((c >>> 16) & 15, c >>> 24))
  }

  /**
   * Counts one use of `hash` and returns its estimate after the count (0..15; at the cap
   * it stays 15 until a halving). When this increment aged the whole table, the result is
   * the halved estimate with the HALVED bit set.
   */
  increment(hash: number): number {
    const t = this.#table
    const h = spread(hash)
    const i = h & this.#mask
    const w = t[i]
    // Row k's counter is nibble 2k + b_k of the word (b_k: bit 28 + k of h; the table index
    // uses the low bits, and a table never has 2^28 words), the low or high nibble of byte
    // k. `k` has 0x0f in the bytes whose high nibble is the key's (the first multiply moves
    // bit k of h >>> 28 to bit 8k: its four shifted copies do not overlap; the second fills
    // the nibble), so `c` holds the four counters one per byte. Constant shifts only: shifts
    // by a variable count tie up x64's cl register and spilled (decision 0401). Written out,
    // not a helper, as in `frequency`: V8's inlining budget is in bytecode.
    const k = (((h >>> 28) * 0x00204081) & 0x01010101) * 0x0f
    const c = (((w >>> 4) & k) | (w & ~k)) & NIBBLES
    const m = min(min(c & 15, (c >>> 8) & 15), min((c >>> 16) & 15, c >>> 24))
    if (m >= CAP) return CAP
    // Conservative update: raise only the counters at the minimum (below 15, so no carry).
    // Per byte, c - m is 0..15, and adding 0x7f sets the byte's top bit unless it was 0:
    // `e` has a 1 in each byte whose counter is at the minimum, moved to the high nibble
    // where the counter lies there.
    const e = (~((c - m * 0x01010101 + 0x7f7f7f7f) >>> 7)) & 0x01010101
    t[i] = (w + ((e & k) << 4) + (e & ~k)) | 0
    // Every counter at the minimum went up by one: the new estimate is m + 1.
    if (++this.#additions >= this.#sampleSize) {
      this.#age()
      return ((m + 1) >>> 1) | HALVED_BIT
    }
    return m + 1
  }

  #allocate(capacity: number): Int32Array {
    const words = tableWords(capacity)
    this.#mask = words - 1
    this.#sampleSize = SAMPLE_FACTOR * Math.max(16, capacity)
    return new Int32Array(words)
  }

  #age(): void {
    this.#additions = Math.floor(this.#additions / 2)
    halve(this.#table)
  }
}

/**
 * Halves all eight counters of every word. A function of its own with nothing after the
 * loop: it runs once per 15 x capacity increments, so V8 compiles it on-stack mid-loop, and
 * code after such a loop (never run before) would deoptimize it again at every call.
 */
function halve(t: Int32Array): void {
  for (let i = 0; i < t.length; i++) t[i] = (t[i] >>> 1) & 0x77777777
}

/** 4 counters per unit of capacity (rounded up to a power of two), eight per word. */
function tableWords(capacity: number): number {
  return nextPowerOfTwo(Math.max(16, capacity)) / 2
}

// The exports above as module-private constants for the hot paths: V8 reads an exported
// binding from its cell, with a check that it is initialised, at every use (~7 instructions);
// a private const it folds (decision 0396).
const CAP = MAX_FREQUENCY
const HALVED_BIT = HALVED

/** The low nibble of every byte. */
const NIBBLES = 0x0f0f0f0f

/**
 * The smaller of two small integers, without a branch. Which of a key's counters is
 * smallest is a coin toss the CPU would mispredict about half the time: on the machine of
 * the benchmark a frequency lookup took 17 ns with Math.min and 7 ns with this.
 */
const min = (a: number, b: number): number => {
  const d = a - b
  return b + (d & (d >> 31))
}

const spread = (hash: number): number => {
  let h = Math.imul(hash ^ 0x97cb3127, 0x9e3779b1)
  h ^= h >>> 15
  h = Math.imul(h, 0x85ebca6b)
  return (h ^ (h >>> 13)) >>> 0
}

