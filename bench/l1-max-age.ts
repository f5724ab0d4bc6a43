/**
 * What `l2.l1MaxAge` costs: L2 reads per second added by capping how long L1 trusts an
 * entry, for a Zipf(0.99) stream at a fixed request rate, simulated on a ManualClock over
 * memoryStore (so the count is exact and the run reproducible; the cost of one read on
 * Redis is in docs/benchmarks.md, "L2 reads"). Run: `node dist/bench/l1-max-age.js`.
 * Recorded in docs/decisions/0110-l1-max-age-without-a-bus.md.
 */
import { createCache } from '../src/cache/cache.js'
import { ManualClock } from '../src/core/manual-clock.js'
import { memoryStore } from '../src/store/memory-store.js'
import type { Store } from '../src/store/types.js'
import { zipfSampler } from './traces.js'

const KEYS = 100_000
const RATE = 10_000 // requests per second, one process
const WARMUP_S = 30
const MEASURE_S = 30

async function run(cap: number, l1Entries: number): Promise<{ l2Reads: number; l1Hits: number; requests: number }> {
  const clock = new ManualClock(0)
  const inner = memoryStore({ clock, maxEntries: KEYS * 2 })
  let reads = 0
  const store: Store = { ...inner, name: inner.name, get: (k) => (reads++, inner.get(k)), getMany: (k) => inner.getMany(k), set: (k, v, t) => inner.set(k, v, t), setMany: (e) => inner.setMany(e), delete: (k) => inner.delete(k), deleteMany: (k) => inner.deleteMany(k), touch: (k, t) => inner.touch(k, t), clear: (p) => inner.clear(p), close: () => inner.close() }
  const cache = createCache<number>({ clock, store, memory: { maxEntries: l1Entries }, defaults: { ttl: '1h' }, l2: { l1MaxAge: cap } })
  const next = zipfSampler(KEYS, 0.99, 42)
  const step = 1000 / RATE
  let hitsBefore = 0
  let readsBefore = 0
  for (let i = 0; i < (WARMUP_S + MEASURE_S) * RATE; i++) {
    if (i === WARMUP_S * RATE) {
      // `hits` counts L1 hits only (a value adopted from L2 is counted as an L1 miss).
      hitsBefore = cache.stats().hits
      readsBefore = reads
    }
    const k = next()
    await cache.getOrSet(`k${k}`, () => k)
    clock.advance(step)
  }
  const s = cache.stats()
  await cache.close()
  return { l2Reads: reads - readsBefore, l1Hits: s.hits - hitsBefore, requests: MEASURE_S * RATE }
}

const caps = [Infinity, 30_000, 10_000, 5_000, 1_000]
console.log(`Zipf(0.99) over ${KEYS} keys, ${RATE} getOrSet/s, TTL 1 h; ${MEASURE_S} s measured after ${WARMUP_S} s warm-up`)
console.log('| L1 entries | l1MaxAge | L1 hit ratio | L2 reads/s | added vs no cap |')
console.log('|---:|---|---:|---:|---:|')
for (const l1Entries of [10_000, KEYS]) {
  let base = 0
  for (const cap of caps) {
    const r = await run(cap, l1Entries)
    const perS = r.l2Reads / MEASURE_S
    if (cap === Infinity) base = perS
    console.log(`| ${l1Entries} | ${cap === Infinity ? 'Infinity' : `${cap / 1000} s`} | ${((100 * r.l1Hits) / r.requests).toFixed(1)}% | ${perS.toFixed(0)} | +${(perS - base).toFixed(0)} |`)
  }
}
