import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { SeededRandom } from '../../src/core/random.js'
import { beladyHits } from '../../bench/belady.js'
import { makeCache, SUBJECTS } from '../../bench/harness.js'
import { loopHeavyTrace, scanMixedTrace, ZipfSampler, zipfStream } from '../../bench/traces.js'

/** Belady by brute force: on a full miss, scan ahead for every held key's next use. */
function naiveBelady(trace: readonly number[], capacity: number, bypass: boolean): number {
  const held = new Set<number>()
  const nextUse = (key: number, from: number): number => {
    for (let j = from; j < trace.length; j++) if (trace[j] === key) return j
    return Infinity
  }
  let hits = 0
  for (let i = 0; i < trace.length; i++) {
    const k = trace[i]
    if (held.has(k)) {
      hits++
      continue
    }
    if (held.size < capacity) {
      held.add(k)
      continue
    }
    let victim = -1
    let farthest = -1
    for (const h of held) {
      const u = nextUse(h, i + 1)
      if (u > farthest) {
        farthest = u
        victim = h
      }
    }
    if (bypass && nextUse(k, i + 1) >= farthest) continue
    held.delete(victim)
    held.add(k)
  }
  return hits
}

describe("Belady's optimum", () => {
  test('capacity 2, a b c a b c a b: by hand', () => {
    const [a, b, c] = [0, 1, 2]
    const trace = [a, b, c, a, b, c, a, b]
    // With bypass: a, b miss; c misses and is not stored (its next use, 5, is the farthest);
    // a, b hit; c misses and is again bypassed (never used again); a, b hit. 4 hits.
    assert.equal(beladyHits(trace, 2), 4)
    // Demand paging (every miss stored): at 2, c evicts b (next use 4, a's is 3); a hits at 3;
    // at 4, b evicts a (next use 6, c's is 5); c hits at 5; at 6, a evicts c (never used
    // again); b hits at 7. 3 hits.
    assert.equal(beladyHits(trace, 2, { bypass: false }), 3)
  })

  test('capacity 1, a b a: bypass keeps a', () => {
    assert.equal(beladyHits([0, 1, 0], 1), 1)
    assert.equal(beladyHits([0, 1, 0], 1, { bypass: false }), 0)
  })

  test('a cache that holds everything misses only the first request of each key', () => {
    assert.equal(beladyHits([5, 6, 5, 6, 7, 7, 5], 3), 4)
  })

  test('sparse and large key ids', () => {
    assert.equal(beladyHits([4e9, 7, 4e9, 7], 2), 2)
  })

  test('matches a brute-force implementation on random traces', () => {
    const random = new SeededRandom(123)
    for (let round = 0; round < 200; round++) {
      const keys = 2 + Math.floor(random.next() * 10)
      const length = 1 + Math.floor(random.next() * 60)
      const capacity = 1 + Math.floor(random.next() * 6)
      const trace = Array.from({ length }, () => Math.floor(random.next() * keys))
      for (const bypass of [true, false]) {
        assert.equal(beladyHits(trace, capacity, { bypass }), naiveBelady(trace, capacity, bypass), `trace ${trace.join(',')} capacity ${capacity} bypass ${bypass}`)
      }
    }
  })
})

describe('traces', () => {
  test('Zipf is deterministic per seed', () => {
    assert.deepEqual(zipfStream(1000, 0.99, 5000, 9), zipfStream(1000, 0.99, 5000, 9))
    assert.notDeepEqual(zipfStream(1000, 0.99, 5000, 9), zipfStream(1000, 0.99, 5000, 10))
  })

  test('Zipf is skewed: rank 0 is the most frequent, near its probability', () => {
    const sampler = new ZipfSampler(100, 0.99, new SeededRandom(1))
    const counts = new Array<number>(100).fill(0)
    const n = 50_000
    for (let i = 0; i < n; i++) counts[sampler.next()]++
    assert.equal(counts.indexOf(Math.max(...counts)), 0)
    assert.ok(Math.abs(counts[0] / n - sampler.probability(0)) < 0.01, `rank 0 share ${counts[0] / n} vs ${sampler.probability(0)}`)
    assert.ok(counts[0] > 5 * counts[9])
  })

  test('scan-mixed scans are one-off keys; loop-heavy walks its loop', () => {
    const scan = scanMixedTrace({ length: 10_000, keySpace: 1000, scanEvery: 3000, scanLength: 500 })
    assert.deepEqual(Array.from(scan.keys.subarray(3000, 3003)), [1000, 1001, 1002])
    assert.ok(scan.keys.subarray(0, 3000).every((k) => k < 1000))
    const loop = loopHeavyTrace({ length: 5000, loopKeys: 100, noise: 0 })
    assert.deepEqual(Array.from(loop.keys.subarray(98, 103)), [98, 99, 0, 1, 2])
  })
})

describe('bench subjects', () => {
  test('every bounded subject holds at most its bound and keeps the newest key; Map-fifo evicts first in, first out', () => {
    for (const subject of SUBJECTS) {
      if (subject === 'Map') continue // unbounded by design: the ceiling of get hits
      const { cache, close } = makeCache<string, number>(subject, 100, false)
      for (let i = 0; i < 1000; i++) cache.set(`k${i}`, i)
      assert.ok(cache.size <= 100, `${subject} holds ${cache.size}`)
      assert.equal(cache.get('k999'), 999, subject)
      assert.equal(cache.get('k0'), undefined, subject)
      close()
    }
    const { cache } = makeCache<string, number>('Map-fifo', 3, false)
    for (const k of ['a', 'b', 'c']) cache.set(k, 1)
    cache.set('a', 2) // an update: no eviction, no change of order
    cache.set('d', 1) // evicts the first in: a
    assert.deepEqual(['a', 'b', 'c', 'd'].map((k) => cache.get(k)), [undefined, 1, 1, 1])
    assert.equal(cache.size, 3)
  })
})
