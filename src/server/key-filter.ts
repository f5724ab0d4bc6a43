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
const pair: [number, number] = [0, 0]

/** Two 32-bit hashes of `key` (FNV-1a and a multiplicative one with another seed); the second is odd. */
function hashes(key: string): [number, number] {
  let a = 0x811c9dc5
  let b = 0x9e3779b9
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995)
    b ^= b >>> 13
  }
  pair[0] = a >>> 0
  pair[1] = (b | 1) >>> 0
  return pair
}
