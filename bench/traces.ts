/**
 * Deterministic synthetic request traces for the benchmarks.
 *
 * Design:
 * - Every generator takes a seed and draws from `SeededRandom` (mulberry32, src/core/random.ts),
 *   so a trace is the same on every machine and run. Keys are non-negative integer ids in a
 *   `Uint32Array` (compact, and usable as indices by `bench/belady.ts`).
 * - Zipf(s) over n ranks (Zipf 1949; the usual model of cache popularity, see Breslau et al.,
 *   "Web Caching and Zipf-like Distributions: Evidence and Implications", INFOCOM 1999):
 *   rank r in [0, n) has weight 1 / (r + 1)^s. Sampling is by inverse CDF: the cumulative
 *   weights are precomputed once into a Float64Array and each sample is a binary search for
 *   a uniform draw (exact, O(log n), no rejection). `zipfSampler` then maps ranks through a
 *   seeded permutation so popular keys are spread over the key space, as in real workloads.
 * - "scan-mixed": a Zipf stream interrupted at regular intervals by a scan of keys that are
 *   never requested again (a batch job or crawler walking cold data). LRU lets every scan
 *   flush part of its hot set; a frequency-based admission filter (TinyLFU) should not.
 * - "loop-heavy": a cyclic walk over a fixed set of keys, slightly larger than some of the
 *   cache sizes (LRU's worst case: it then hits nothing in the loop), with a fraction of the
 *   requests replaced by Zipf noise over other keys. After the "loop" traces of the LIRS and
 *   ARC papers (Jiang & Zhang, SIGMETRICS 2002; Megiddo & Modha, FAST 2003).
 */
import { type Random, SeededRandom } from '../src/core/random.js'

/** Samples Zipf(s)-distributed ranks in [0, n); rank 0 is the most popular. */
export class ZipfSampler {
  readonly n: number
  readonly s: number
  readonly #cumulative: Float64Array
  readonly #total: number
  readonly #random: Random

  constructor(n: number, s: number, random: Random) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`ZipfSampler: n must be a positive integer, got ${n}`)
    if (!(s >= 0)) throw new RangeError(`ZipfSampler: s must be >= 0, got ${s}`)
    this.n = n
    this.s = s
    this.#random = random
    const cumulative = new Float64Array(n)
    let sum = 0
    for (let r = 0; r < n; r++) cumulative[r] = sum += 1 / Math.pow(r + 1, s)
    this.#cumulative = cumulative
    this.#total = sum
  }

  /** Probability of rank `r`. */
  probability(r: number): number {
    return 1 / Math.pow(r + 1, this.s) / this.#total
  }

  /** The next rank: the first r whose cumulative weight reaches a uniform draw. */
  next(): number {
    const u = this.#random.next() * this.#total
    const c = this.#cumulative
    let lo = 0
    let hi = this.n - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (c[mid] < u) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/** A seeded random permutation of [0, n) (Fisher-Yates), drawn from `random`. */
export function permutation(n: number, random: Random): Uint32Array {
  const p = new Uint32Array(n)
  for (let i = 0; i < n; i++) p[i] = i
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random.next() * (i + 1))
    const t = p[i]
    p[i] = p[j]
    p[j] = t
  }
  return p
}

/**
 * A Zipf(s) key generator over keys [0, n): ranks drawn by `ZipfSampler`, mapped through a
 * permutation drawn first from the same seeded generator.
 */
export function zipfSampler(n: number, s: number, seed: number): () => number {
  const random = new SeededRandom(seed)
  const perm = permutation(n, random)
  const ranks = new ZipfSampler(n, s, random)
  return () => perm[ranks.next()]
}

/** `length` keys of `zipfSampler(n, s, seed)`. */
export function zipfStream(n: number, s: number, length: number, seed: number): Uint32Array {
  const next = zipfSampler(n, s, seed)
  const out = new Uint32Array(length)
  for (let i = 0; i < length; i++) out[i] = next()
  return out
}

export interface Trace {
  readonly name: string
  /** One line, with every parameter. */
  readonly description: string
  readonly params: Readonly<Record<string, number>>
  readonly keys: Uint32Array
}

export interface ScanMixedParams {
  /** Total requests. */
  length: number
  /** Keys of the Zipf part: [0, keySpace). */
  keySpace: number
  /** Zipf exponent of the popular part. */
  zipf: number
  /** Zipf requests between two scans. */
  scanEvery: number
  /** Keys per scan: each is new (ids from `keySpace` up) and requested exactly once. */
  scanLength: number
  seed: number
}

export const SCAN_MIXED: Readonly<ScanMixedParams> = {
  length: 1_400_000,
  keySpace: 250_000,
  zipf: 0.9,
  scanEvery: 50_000,
  scanLength: 20_000,
  seed: 1,
}

/**
 * "scan-mixed": `scanEvery` Zipf(`zipf`) requests over `keySpace` keys, then a scan of
 * `scanLength` one-off keys, repeated until `length` requests (defaults in SCAN_MIXED:
 * 250k keys, Zipf 0.9, a 20k scan after every 50k requests, so 2/7 of requests are scans).
 */
export function scanMixedTrace(options: Partial<ScanMixedParams> = {}): Trace {
  const p: ScanMixedParams = { ...SCAN_MIXED, ...options }
  const next = zipfSampler(p.keySpace, p.zipf, p.seed)
  const keys = new Uint32Array(p.length)
  let oneOff = p.keySpace
  let i = 0
  while (i < p.length) {
    for (let j = 0; j < p.scanEvery && i < p.length; j++) keys[i++] = next()
    for (let j = 0; j < p.scanLength && i < p.length; j++) keys[i++] = oneOff++
  }
  return {
    name: 'scan-mixed',
    description:
      `Zipf(${p.zipf}) over ${count(p.keySpace)} keys, a scan of ${count(p.scanLength)} one-off keys ` +
      `after every ${count(p.scanEvery)} requests, ${count(p.length)} requests, seed ${p.seed}`,
    params: { ...p },
    keys,
  }
}

export interface LoopHeavyParams {
  length: number
  /** Keys of the loop: [0, loopKeys), requested in order, over and over. */
  loopKeys: number
  /** Fraction of requests that are Zipf noise instead of the next loop key. */
  noise: number
  /** Keys of the noise: [loopKeys, loopKeys + noiseKeySpace). */
  noiseKeySpace: number
  /** Zipf exponent of the noise. */
  zipf: number
  seed: number
}

export const LOOP_HEAVY: Readonly<LoopHeavyParams> = {
  length: 1_000_000,
  loopKeys: 12_000,
  noise: 0.25,
  noiseKeySpace: 100_000,
  zipf: 0.9,
  seed: 2,
}

/**
 * "loop-heavy": each request is, with probability `noise`, a Zipf(`zipf`) draw over
 * `noiseKeySpace` other keys, else the next key of a loop over `loopKeys` keys (defaults in
 * LOOP_HEAVY: a 12k-key loop, 25% Zipf(0.9) noise over 100k keys).
 */
export function loopHeavyTrace(options: Partial<LoopHeavyParams> = {}): Trace {
  const p: LoopHeavyParams = { ...LOOP_HEAVY, ...options }
  const next = zipfSampler(p.noiseKeySpace, p.zipf, p.seed)
  const coin = new SeededRandom((p.seed * 0x9e3779b1 + 17) >>> 0)
  const keys = new Uint32Array(p.length)
  let pos = 0
  for (let i = 0; i < p.length; i++) {
    if (coin.next() < p.noise) {
      keys[i] = p.loopKeys + next()
    } else {
      keys[i] = pos
      pos = pos + 1 === p.loopKeys ? 0 : pos + 1
    }
  }
  return {
    name: 'loop-heavy',
    description:
      `${Math.round((1 - p.noise) * 100)}% a loop over ${count(p.loopKeys)} keys, ${Math.round(p.noise * 100)}% ` +
      `Zipf(${p.zipf}) noise over ${count(p.noiseKeySpace)} other keys, ${count(p.length)} requests, seed ${p.seed}`,
    params: { ...p },
    keys,
  }
}

/** Number of distinct keys in a trace. */
export function distinctKeys(keys: ArrayLike<number>): number {
  return new Set(Array.from(keys)).size
}

function count(n: number): string {
  const trim = (x: number): string => String(Math.round(x * 10) / 10)
  return n >= 1e6 ? `${trim(n / 1e6)}M` : n >= 1e3 ? `${trim(n / 1e3)}k` : String(n)
}
