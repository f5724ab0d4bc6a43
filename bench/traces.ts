/**
 * Deterministic synthetic key streams for the benchmarks.
 *
 * Zipf(s) over n keys is sampled by inverse CDF: a binary search over the cumulative
 * weights 1/i^s (i = 1..n), driven by a seeded generator, then mapped through a seeded
 * permutation so popular keys are spread over the key space (as in real workloads).
 */
import { SeededRandom } from '../src/core/random.js'

export function zipfSampler(n: number, s: number, seed: number): () => number {
  const cumulative = new Float64Array(n)
  let total = 0
  for (let i = 0; i < n; i++) cumulative[i] = total += 1 / Math.pow(i + 1, s)
  const rnd = new SeededRandom(seed)
  const perm = new Uint32Array(n)
  for (let i = 0; i < n; i++) perm[i] = i
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd.next() * (i + 1))
    const t = perm[i]
    perm[i] = perm[j]
    perm[j] = t
  }
  return () => {
    const u = rnd.next() * total
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (cumulative[mid] < u) lo = mid + 1
      else hi = mid
    }
    return perm[lo]
  }
}

export function zipfStream(n: number, s: number, length: number, seed: number): Uint32Array {
  const next = zipfSampler(n, s, seed)
  const out = new Uint32Array(length)
  for (let i = 0; i < length; i++) out[i] = next()
  return out
}

export interface Trace {
  readonly name: string
  readonly description: string
  readonly keys: Uint32Array
}

/**
 * "scan-mixed": Zipf(0.9) over 50,000 keys; after every 20,000 requests a scan of 5,000
 * keys never seen before and never seen again (a batch job, a crawler). 500,000 requests.
 */
export function scanMixedTrace(seed = 1): Trace {
  const length = 500_000
  const next = zipfSampler(50_000, 0.9, seed)
  const keys = new Uint32Array(length)
  let oneOff = 1_000_000
  let i = 0
  while (i < length) {
    for (let j = 0; j < 20_000 && i < length; j++) keys[i++] = next()
    for (let j = 0; j < 5_000 && i < length; j++) keys[i++] = oneOff++
  }
  return { name: 'scan-mixed', description: 'Zipf(0.9) over 50k keys + a 5k one-off scan every 20k requests, 500k requests', keys }
}

/**
 * "loop-heavy": 70% of requests walk a loop over 6,000 keys in order (LRU's worst case when
 * the cache is smaller than the loop); 30% are Zipf(0.9) noise over 50,000 other keys.
 * 500,000 requests.
 */
export function loopHeavyTrace(seed = 2): Trace {
  const length = 500_000
  const next = zipfSampler(50_000, 0.9, seed)
  const rnd = new SeededRandom(seed + 17)
  const keys = new Uint32Array(length)
  let pos = 0
  for (let i = 0; i < length; i++) {
    if (rnd.next() < 0.7) {
      keys[i] = 2_000_000 + pos
      pos = (pos + 1) % 6_000
    } else {
      keys[i] = next()
    }
  }
  return { name: 'loop-heavy', description: '70% a loop over 6k keys, 30% Zipf(0.9) over 50k keys, 500k requests', keys }
}
