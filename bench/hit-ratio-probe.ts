/**
 * A generalization probe for the eviction policy: synthetic workloads other than the ones the
 * targets are set on (the ARC traces P3 and P6, scan-mixed), to see where `tinylfu` falls
 * behind LRU or ARC before an outside trace shows it. Not a target; decision 0391.
 *
 *   node dist/bench/hit-ratio-probe.js                     every workload at 1k 2k 5k 10k 15k entries
 *   node dist/bench/hit-ratio-probe.js 1000,5000 drift     sizes, and workloads whose name starts so
 *
 * Workloads (1M requests each, deterministic):
 * - "stack": the LRU stack-depth model: a new key with probability pNew, else the key at
 *   recency depth d, d drawn from a Pareto tail of scale d0 and index alpha. LRU is the
 *   natural policy here (recency is all there is); a policy that keeps its window small
 *   loses to it.
 * - "warming": a Zipf(s) hot set of W keys that slides up the key space by `drift` keys
 *   per request, key = base + rank: a key enters cold, warms up as the set slides over it,
 *   is hottest just before it leaves, then is never seen again (a count reached earlier
 *   outlives the key's use).
 * - "cooling": the same slide with key = base + (W - 1 - rank): a key enters hottest and
 *   cools (news, sessions).
 * - "zipf": a fixed Zipf(s) over 100k keys (frequency is all there is).
 * Each row prints tinylfu (T), LRU (L), ARC (A) and, where tinylfu trails max(LRU, ARC) by
 * more than 0.5 points, the gap.
 */
import { MemoryCache } from '../src/index.js'
import { SeededRandom } from '../src/core/random.js'
import { arcHits } from './arc.js'

const LENGTH = 1_000_000

function hitRatio(policy: 'lru' | 'tinylfu', keys: Uint32Array, size: number): number {
  const cache = new MemoryCache<number, number>({ maxEntries: size, policy, random: new SeededRandom(7) })
  let hits = 0
  for (let i = 0; i < keys.length; i++) {
    if (cache.get(keys[i]!) !== undefined) hits++
    else cache.set(keys[i]!, i)
  }
  cache.close()
  return (100 * hits) / keys.length
}

/** LRU stack-depth model; keys ordered by last use in a Fenwick tree over request times. */
function stackTrace(pNew: number, d0: number, alpha: number, seed: number): Uint32Array {
  const random = new SeededRandom(seed)
  const n = LENGTH + 1
  const tree = new Int32Array(n + 1)
  const keyAt = new Int32Array(n + 1)
  const add = (i: number, v: number): void => {
    for (; i <= n; i += i & -i) tree[i]! += v
  }
  let top = 1
  while (top * 2 <= n) top *= 2
  /** The time slot of the k-th live entry counted from the oldest. */
  const kth = (k: number): number => {
    let pos = 0
    for (let step = top; step > 0; step >>= 1) {
      if (pos + step <= n && tree[pos + step]! < k) {
        pos += step
        k -= tree[pos]!
      }
    }
    return pos + 1
  }
  const out = new Uint32Array(LENGTH)
  let live = 0
  let next = 0
  for (let t = 1; t <= LENGTH; t++) {
    let key: number
    if (live === 0 || random.next() < pNew) {
      key = next++
      live++
    } else {
      let depth = Math.floor(d0 * (Math.pow(1 - random.next(), -1 / alpha) - 1)) + 1
      if (depth > live) depth = 1 + Math.floor(random.next() * live)
      const slot = kth(live - depth + 1)
      key = keyAt[slot]!
      add(slot, -1)
    }
    add(t, 1)
    keyAt[t] = key
    out[t - 1] = key
  }
  return out
}

/** A Zipf(s) set of `width` keys sliding by `drift` keys per request (see the header). */
function slidingTrace(width: number, s: number, drift: number, cooling: boolean, seed: number): Uint32Array {
  const random = new SeededRandom(seed)
  const cdf = new Float64Array(width)
  let total = 0
  for (let i = 0; i < width; i++) cdf[i] = total += 1 / Math.pow(i + 1, s)
  const out = new Uint32Array(LENGTH)
  for (let t = 0; t < LENGTH; t++) {
    const u = random.next() * total
    let lo = 0
    let hi = width - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cdf[mid]! < u) lo = mid + 1
      else hi = mid
    }
    out[t] = Math.floor(t * drift) + (cooling ? width - 1 - lo : lo)
  }
  return out
}

const WORKLOADS: ReadonlyArray<readonly [string, () => Uint32Array]> = [
  ['stack pNew .10 d0 20 a 1.0', () => stackTrace(0.1, 20, 1.0, 1)],
  ['stack pNew .05 d0 50 a 0.8', () => stackTrace(0.05, 50, 0.8, 2)],
  ['stack pNew .20 d0 200 a 1.2', () => stackTrace(0.2, 200, 1.2, 3)],
  ['stack pNew .02 d0 1000 a 1.5', () => stackTrace(0.02, 1000, 1.5, 4)],
  ['warming W 20k s .8 drift .02', () => slidingTrace(20_000, 0.8, 0.02, false, 5)],
  ['warming W 50k s 1 drift .05', () => slidingTrace(50_000, 1.0, 0.05, false, 6)],
  ['warming W 10k s .6 drift .005', () => slidingTrace(10_000, 0.6, 0.005, false, 7)],
  ['cooling W 20k s .8 drift .02', () => slidingTrace(20_000, 0.8, 0.02, true, 15)],
  ['cooling W 50k s 1 drift .05', () => slidingTrace(50_000, 1.0, 0.05, true, 16)],
  ['cooling W 10k s .6 drift .005', () => slidingTrace(10_000, 0.6, 0.005, true, 17)],
  ['zipf 100k s .7', () => slidingTrace(100_000, 0.7, 0, false, 8)],
  ['zipf 100k s 1.0', () => slidingTrace(100_000, 1.0, 0, false, 9)],
]

const [sizesArg, only] = process.argv.slice(2)
const sizes = (sizesArg ?? '1000,2000,5000,10000,15000').split(',').map(Number)
let worst = 0
for (const [name, make] of WORKLOADS) {
  if (only !== undefined && !name.startsWith(only)) continue
  const keys = make()
  const cells = sizes.map((size) => {
    const t = hitRatio('tinylfu', keys, size)
    const l = hitRatio('lru', keys, size)
    const a = (100 * arcHits(keys, size)) / keys.length
    const gap = t - Math.max(l, a)
    if (gap < worst) worst = gap
    return `${size}: T ${t.toFixed(1)} L ${l.toFixed(1)} A ${a.toFixed(1)}${gap < -0.5 ? ` (${gap.toFixed(1)})` : ''}`
  })
  console.log(`${name.padEnd(30)} ${cells.join(' | ')}`)
}
console.log(`largest shortfall of tinylfu against max(LRU, ARC): ${worst.toFixed(2)} points`)
