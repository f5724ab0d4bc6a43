import { hashString } from '../memory/hash-key.js'

/**
 * A Bloom filter of strings: `add(key)` marks it, `mightHave(key)` is false only for a key
 * never added (no false negatives; false positives grow with the keys added: about 3 % at
 * 1M keys for the default 2^23 bits and three probes, all positives once saturated). Keys
 * cannot be removed. The keyspace keeps one of the keys its store may hold (decision 0321),
 * so a write to a key it never held skips the store read.
 */
export class KeyFilter {
  readonly #bits: Uint32Array
  readonly #mask: number

  /** `log2Bits`: the filter's size as a power of two, in bits (default 23: 1 MiB). */
  constructor(log2Bits = 23) {
    if (!Number.isInteger(log2Bits) || log2Bits < 5 || log2Bits > 31) throw new RangeError('log2Bits must be an integer in 5..31')
    this.#bits = new Uint32Array(2 ** (log2Bits - 5))
    this.#mask = 2 ** log2Bits - 1
  }

  add(key: string): void {
    const h = hashes(key)
    let a = h[0]
    const b = h[1]
    for (let i = 0; i < PROBES; i++) {
      const bit = (a & this.#mask) >>> 0
      this.#bits[bit >>> 5]! |= 1 << (bit & 31)
      a = (a + b) >>> 0
    }
  }

  mightHave(key: string): boolean {
    const h = hashes(key)
    let a = h[0]
    const b = h[1]
    for (let i = 0; i < PROBES; i++) {
      const bit = (a & this.#mask) >>> 0
      if ((this.#bits[bit >>> 5]! & (1 << (bit & 31))) === 0) return false
      a = (a + b) >>> 0
    }
    return true
  }
}

const PROBES = 3
/** Seeds of the two hashes (any int32s that differ). */
const SEED_A = 0x2f6b1c35
const SEED_B = 0x51ed270b
const pair: [number, number] = [0, 0]

/** Two 32-bit hashes of `key` (the engine's string hash under two seeds); the second is odd. */
function hashes(key: string): [number, number] {
  pair[0] = hashString(key, SEED_A) >>> 0
  pair[1] = (hashString(key, SEED_B) | 1) >>> 0
  return pair
}
