/**
 * The pieces of Window-TinyLFU below the engine: the frequency sketch's contract (count-min
 * estimates, the cap, halving, and the estimates and HALVED signal `increment` returns),
 * and the policy's shortcuts (CLOCK's second chance, the per-slot copies of estimates that
 * admission compares) against what they stand for.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { SeededRandom } from '../../src/core/random.js'
import { FrequencySketch, HALVED, MAX_FREQUENCY } from '../../src/policies/frequency-sketch.js'
import { TinyLfuPolicy } from '../../src/policies/tinylfu-policy.js'
import { hashKey } from '../../src/memory/hash-key.js'

describe('FrequencySketch', () => {
  test('an estimate is never below the true count (up to the cap of 15), whatever the collisions', () => {
    const sketch = new FrequencySketch(64)
    const random = new SeededRandom(11)
    const truth = new Map<number, number>()
    // 300 keys into a sketch sized for 64: plenty of shared counters. Few enough
    // increments (< 15 x 64) that no halving happens.
    for (let i = 0; i < 600; i++) {
      const key = hashKey(`k${Math.floor(random.next() * 300)}`)
      sketch.increment(key)
      truth.set(key, (truth.get(key) ?? 0) + 1)
    }
    for (const [key, n] of truth) assert.ok(sketch.frequency(key) >= Math.min(n, 15), `key ${key}: estimate ${sketch.frequency(key)} < count ${n}`)
  })

  test('a key alone in the sketch is counted exactly up to the cap, and increment returns the new estimate', () => {
    const sketch = new FrequencySketch(1024)
    const key = hashKey('only')
    const results: number[] = []
    for (let i = 0; i < 20; i++) results.push(sketch.increment(key))
    assert.equal(sketch.frequency(key), MAX_FREQUENCY)
    // 1, 2, ... 15, then the cap: every later increment is a no-op that returns 15.
    assert.deepEqual(results, [...Array.from({ length: 15 }, (_, i) => i + 1), ...Array(5).fill(MAX_FREQUENCY)])
  })

  test('after 15 x capacity increments every counter is halved, and the increment that did it says HALVED', () => {
    const capacity = 16
    const sketch = new FrequencySketch(capacity)
    const hot = hashKey('hot')
    for (let i = 0; i < 15; i++) sketch.increment(hot)
    assert.equal(sketch.frequency(hot), 15)
    let halvedAt = -1
    let counted = 15
    const random = new SeededRandom(5)
    for (let i = 0; halvedAt === -1 && i < 10_000; i++) {
      const cold = hashKey(`cold${Math.floor(random.next() * 1e9)}`)
      const before = sketch.frequency(cold)
      const r = sketch.increment(cold)
      if (before < MAX_FREQUENCY) counted++ // an increment at the cap changes nothing and is not counted
      if (r >= HALVED) {
        halvedAt = counted
        assert.equal(r & ~HALVED, (before + 1) >>> 1, 'the result is the halved new estimate')
        assert.equal(r & ~HALVED, sketch.frequency(cold))
      } else {
        assert.equal(r, Math.min(before + 1, MAX_FREQUENCY))
      }
    }
    // 15 x, not Caffeine's 10 x: keys reused 16-64 cache sizes apart (P6 at 4k-16k) keep their counts (decision 0380).
    assert.equal(halvedAt, 15 * capacity, 'the sample size is 15 x capacity increments that changed the sketch')
    assert.ok(sketch.frequency(hot) <= 7 + 1, `the hot key was halved (15 -> 7, plus at most 1 from a cold collision): ${sketch.frequency(hot)}`)
    assert.ok(sketch.frequency(hot) >= 7)
  })

  test('increment and frequency follow the word layout exactly (a model counter by counter; decision 0401)', () => {
    // The layout the header describes, with the sketch's own spread: row k's counter of a key
    // is nibble 2k + (bit 28 + k of the spread hash) of word (spread & mask); conservative
    // update; halving after 15 x capacity counted increments. Hit ratios depend on it, so the
    // arithmetic that reads and raises the four counters must match it counter for counter.
    const spread = (hash: number): number => {
      let h = Math.imul(hash ^ 0x97cb3127, 0x9e3779b1)
      h ^= h >>> 15
      h = Math.imul(h, 0x85ebca6b)
      return (h ^ (h >>> 13)) >>> 0
    }
    for (const capacity of [16, 100, 1024]) {
      const sketch = new FrequencySketch(capacity)
      const words = new Int32Array(Math.max(16, 2 ** Math.ceil(Math.log2(capacity))) / 2)
      const sample = 15 * Math.max(16, capacity)
      let additions = 0
      const shifts = (h: number): number[] => [0, 1, 2, 3].map((k) => 8 * k + 4 * ((h >>> (28 + k)) & 1))
      const model = (hash: number): { i: number; s: number[]; c: number[] } => {
        const h = spread(hash)
        const i = h & (words.length - 1)
        const s = shifts(h)
        return { i, s, c: s.map((x) => (words[i] >>> x) & 15) }
      }
      const random = new SeededRandom(capacity)
      const keys = Array.from({ length: capacity * 3 }, () => Math.floor(random.next() * 2 ** 32) | 0)
      for (let n = 0; n < 40 * capacity; n++) {
        const key = keys[Math.floor(random.next() * keys.length)]!
        const { i, s, c } = model(key)
        const m = Math.min(...c)
        let expected = MAX_FREQUENCY
        if (m < MAX_FREQUENCY) {
          for (let k = 0; k < 4; k++) if (c[k] === m) words[i] += 1 << s[k]!
          expected = m + 1
          if (++additions >= sample) {
            additions = Math.floor(additions / 2)
            for (let w = 0; w < words.length; w++) words[w] = (words[w]! >>> 1) & 0x77777777
            expected = (expected >>> 1) | HALVED
          }
        }
        assert.equal(sketch.increment(key), expected, `capacity ${capacity}, increment ${n}`)
        const probe = keys[Math.floor(random.next() * keys.length)]!
        assert.equal(sketch.frequency(probe), Math.min(...model(probe).c), `capacity ${capacity}, frequency after ${n}`)
      }
    }
  })

  test('ensureCapacity grows the table only when needed, dropping the counts', () => {
    const sketch = new FrequencySketch(16)
    const key = hashKey('k')
    sketch.increment(key)
    assert.equal(sketch.ensureCapacity(16), false)
    assert.equal(sketch.frequency(key), 1)
    assert.equal(sketch.ensureCapacity(4096), true)
    assert.equal(sketch.frequency(key), 0)
  })
})

/**
 * A policy over slots whose keys the test names: hashOf reads them from `keys`, and every
 * call of hashOf is counted, so the tests can tell which hashes a decision asked for.
 */
function policy(maximum: number, capacity = maximum): { p: TinyLfuPolicy; keys: string[]; hashCalls: () => number; insert: (slot: number, key: string) => void } {
  const keys: string[] = []
  let calls = 0
  const p = new TinyLfuPolicy(capacity, maximum, new SeededRandom(1), maximum, false, (slot) => {
    calls++
    return hashKey(keys[slot])
  })
  return {
    p,
    keys,
    hashCalls: () => calls,
    insert: (slot, key) => {
      keys[slot] = key
      p.onInsert(slot, hashKey(key), 1)
    },
  }
}

/** Slots in the policy's order, most valuable first. */
function order(p: TinyLfuPolicy): number[] {
  const out: number[] = []
  p.forEach((s) => out.push(s))
  return out
}

describe('TinyLfuPolicy', () => {
  test('a read entry gets a second chance at the cold end of protected (CLOCK), an unread one is demoted', () => {
    // 100 entries: window 1, probation up to 19, protected up to 79.
    const { p, insert } = policy(100)
    for (let s = 0; s < 100; s++) insert(s, `k${s}`)
    // Promote 80 entries from probation into protected (one more than it holds).
    for (let s = 0; s < 99; s++) p.onAccess(s)
    // Protected (warm to cold): 98 .. 20; window: 99; probation: 19 .. 0.
    const before = order(p)
    assert.deepEqual(before.slice(0, 79), Array.from({ length: 79 }, (_, i) => 98 - i))
    p.onAccess(20) // the coldest protected entry is read: only its reference bit is set
    assert.deepEqual(order(p), before, 'a protected hit moves nothing')
    p.onAccess(19) // a probation hit: promoted, and protected overflows by one
    const after = order(p)
    assert.deepEqual(after.slice(0, 2), [20, 19], 'the read entry got its second chance: back to the warm end')
    assert.ok(after.indexOf(21) > 79, 'the next cold entry, never read, was demoted to probation')
    assert.equal(after.indexOf(21), 80, 'at the warm end of probation')
  })

  test("a slot's estimate is its key's sketch estimate as of its last count, halved with the sketch", () => {
    // maximum 16: the sketch ages after 240 counts.
    const { p, insert } = policy(16, 17)
    const spare = 16
    const pump = (key: string, times: number): void => {
      // A spare slot inserted and removed at once: only the sketch remembers the key.
      for (let i = 0; i < times; i++) {
        insert(spare, key)
        p.onRemove(spare)
      }
    }
    pump('hot', 6)
    insert(0, 'hot') // the sketch remembers the key's six earlier counts
    assert.equal(p.frequencyOf(0), 7)
    insert(1, 'cold')
    assert.equal(p.frequencyOf(1), 1)
    p.onAccess(1)
    p.onAccess(1)
    assert.equal(p.frequencyOf(1), 3, 'a hit counts')
    for (let i = 0; i < 20; i++) p.onAccess(0)
    assert.equal(p.frequencyOf(0), MAX_FREQUENCY, 'capped at 15')
    p.onRemove(1)
    insert(1, 'new')
    assert.equal(p.frequencyOf(1), 1, "a reused slot carries its new key's estimate, not the old key's")
    // Age the sketch: other keys' counts until it halves (240 counts in all).
    let n = 0
    while (p.frequencyOf(0) === MAX_FREQUENCY && n++ < 1000) pump(`filler${n}`, 1)
    assert.ok(n < 1000, 'the sketch halved')
    assert.equal(p.frequencyOf(0), 7, 'halved with the sketch: 15 -> 7')
    assert.equal(p.frequencyOf(1), 0, '1 -> 0')
  })

  test("admission: the candidate's kept estimate against the victim's live one", () => {
    // maximum 5: window 1, main 4.
    const { p, insert, hashCalls } = policy(5, 16)
    for (let s = 0; s < 5; s++) insert(s, `k${s}`) // window [4], probation [3 2 1 0]
    insert(5, 'k5')
    const calls = hashCalls()
    assert.equal(p.victim(), 4, 'equal estimates: the candidate goes')
    // One hash for admission (the victim k0's: the candidate's estimate is its kept copy) and
    // one for the ghost record of the entry evicted (the candidate k4).
    assert.equal(hashCalls(), calls + 2, "the victim's hash (k0) for admission, the evicted candidate's for its ghost")
    p.onRemove(4)
    // The next candidate was counted twice before it came.
    for (let i = 0; i < 2; i++) {
      insert(15, 'k6')
      p.onRemove(15)
    }
    insert(6, 'k6')
    assert.equal(p.victim(), 5, "equal estimates (k5 against k0's 1): the candidate k5 goes")
    p.onRemove(5)
    insert(7, 'k7')
    assert.equal(p.frequencyOf(6), 3)
    assert.equal(p.victim(), 0, 'k6 (3) beats the victim k0 (1): k0 goes, k6 enters probation')
    assert.equal(hashCalls(), calls + 6, 'per eviction, one hash for admission (the victim) and one for the ghost of the evicted entry')
  })

  test("admission uses the estimate of the key now in the victim's slot, not of one that left it", () => {
    // maximum 5: window 1, main 4. 16 slots, so a spare slot can pump keys into the sketch.
    const { p, insert } = policy(5, 16)
    const pump = (key: string, times: number): void => {
      for (let i = 0; i < times; i++) {
        insert(15, key)
        p.onRemove(15)
      }
    }
    for (let s = 0; s < 5; s++) insert(s, `k${s}`) // window [4], probation [3 2 1 0]
    insert(5, 'k5')
    assert.equal(p.victim(), 4, 'equal estimates: the candidate goes') // slot 0 ('k0') was the victim
    p.onRemove(4)
    pump('k0', 10) // the key that was in slot 0 is now popular
    for (const s of [1, 2, 3, 0, 5]) p.onRemove(s) // everything leaves; slot 0 last
    // Slot 0 comes back with a key without history and becomes probation's cold end.
    insert(0, 'fresh')
    for (let s = 1; s < 4; s++) insert(s, `f${s}`)
    pump('f4', 4)
    insert(4, 'f4') // window [4] (estimate 5), probation [3 2 1 0]
    insert(5, 'f5')
    assert.equal(p.victim(), 0, "the candidate (5) beats slot 0's real key (1); k0's estimate (11) would have kept it")
  })

  test("property: an entry's estimate lies between its key's true count and the sketch's estimate", () => {
    // A skewed stream with evictions, fewer counts than one aging period (10 x 4096), so
    // no halving: the true count of a key is the number of its inserts and hits so far.
    const maximum = 64
    const sketchCapacity = 4096
    const keys: string[] = []
    const p = new TinyLfuPolicy(maximum + 1, maximum, new SeededRandom(1), sketchCapacity, false, (slot) => hashKey(keys[slot]))
    const shadow = new FrequencySketch(sketchCapacity) // fed the same counts in the same order
    const random = new SeededRandom(21)
    const slotOf = new Map<string, number>()
    const truth = new Map<string, number>()
    const free: number[] = []
    let next = 0
    let evictions = 0
    for (let i = 0; i < 20_000; i++) {
      const key = `k${Math.floor(random.next() ** 3 * 400)}`
      truth.set(key, (truth.get(key) ?? 0) + 1)
      shadow.increment(hashKey(key))
      const slot = slotOf.get(key)
      if (slot !== undefined) {
        p.onAccess(slot)
      } else {
        const s = free.pop() ?? next++
        slotOf.set(key, s)
        keys[s] = key
        p.onInsert(s, hashKey(key), 1)
        if (slotOf.size > maximum) {
          const victim = p.victim()
          evictions++
          slotOf.delete(keys[victim])
          p.onRemove(victim)
          free.push(victim)
        }
      }
      if (i % 97 === 0) {
        for (const [k, s] of slotOf) {
          const f = p.frequencyOf(s)
          assert.ok(f >= Math.min(truth.get(k)!, MAX_FREQUENCY), `${k}: ${f} below its count ${truth.get(k)}`)
          assert.ok(f <= shadow.frequency(hashKey(k)), `${k}: ${f} above the sketch's ${shadow.frequency(hashKey(k))}`)
        }
      }
    }
    assert.ok(evictions > 1000, `the stream evicted (${evictions})`)
  })
})

/**
 * The window/main split adapts by ARC's rule on ghosts of evicted keys. These streams are run
 * through the policy as a read-through cache (a miss inserts, then evicts while over the bound).
 */
describe('TinyLfuPolicy: the adaptive window', () => {
  function cache(maximum: number): { p: TinyLfuPolicy; request: (key: number) => void; has: (key: number) => boolean } {
    const keys: number[] = []
    const p = new TinyLfuPolicy(maximum + 1, maximum, new SeededRandom(1), maximum, false, (slot) => hashKey(keys[slot]))
    const slotOf = new Map<number, number>()
    const free: number[] = []
    let next = 0
    return {
      p,
      has: (key) => slotOf.has(key),
      request(key) {
        const slot = slotOf.get(key)
        if (slot !== undefined) return p.onAccess(slot)
        const s = free.pop() ?? next++
        keys[s] = key
        slotOf.set(key, s)
        p.onInsert(s, hashKey(key), 1)
        while (slotOf.size > maximum) {
          const victim = p.victim()
          slotOf.delete(keys[victim])
          p.onRemove(victim)
          free.push(victim)
        }
      },
    }
  }

  /** Half new keys, half a key among the 800 newest: every key is reused soon, then never. */
  function recency(c: ReturnType<typeof cache>, random: SeededRandom, from: number, requests: number): number {
    let newest = from
    for (let i = 0; i < requests; i++) {
      if (random.next() < 0.5) c.request(newest++)
      else c.request(newest - 1 - Math.floor(random.next() * Math.min(800, newest - from)))
    }
    return newest
  }

  /** A skewed draw over 5,000 keys (a few hundred carry most requests), ids from `base`. */
  function frequency(c: ReturnType<typeof cache>, random: SeededRandom, base: number, requests: number): void {
    for (let i = 0; i < requests; i++) c.request(base + Math.floor(random.next() ** 4 * 5000))
  }

  test('a recency-heavy stream grows the window, a frequency-heavy one then shrinks it', () => {
    const c = cache(1000)
    const random = new SeededRandom(3)
    assert.equal(c.p.windowMaximum, 10, 'starts at 1%')
    recency(c, random, 1e6, 100_000)
    const grown = c.p.windowMaximum
    assert.ok(grown >= 500, `the window grew to ${grown}`)
    frequency(c, random, 0, 200_000)
    const shrunk = c.p.windowMaximum
    assert.ok(shrunk <= 100, `the window shrank to ${shrunk}`)
  })

  test('a key evicted from probation before any reuse counts as a window ghost (ARC: seen once), not a main one', () => {
    const c = cache(10)
    for (let k = 0; k < 10; k++) c.request(k) // window [9], probation 0..8 (each seen once)
    c.request(10) // candidate 9 ties with victim 0: 9 loses admission (a window ghost)
    assert.equal(c.p.windowMaximum, 1)
    c.request(9) // window ghost: the window grows, so 0 leaves probation without a contest
    const before = c.p.windowMaximum
    assert.ok(before > 1, `the window grew to ${before}`)
    c.request(0) // 0 was never reused in the cache: its return grows the window again
    assert.ok(c.p.windowMaximum > before, `the window went from ${before} to ${c.p.windowMaximum}`)
  })

  test('a key back while a window ghost is admitted over a more frequent victim (ARC: its second use)', () => {
    const c = cache(1000) // window 10, main 990
    for (let k = 0; k < 1000; k++) c.request(k)
    for (let r = 0; r < 5; r++) for (let k = 0; k < 999; k++) c.request(k) // 0..998: estimated 6
    // One-off keys: each loses admission to a victim estimated 6 and becomes a window ghost
    // (the window holds the last ten, 10490..10499).
    for (let k = 10000; k < 10500; k++) c.request(k)
    assert.ok(!c.has(10489))
    c.request(10489) // its second use, while a window ghost: marked seen twice
    // New keys push it to the window's cold end: there it meets a victim estimated 6 with its 2.
    for (let k = 20000; k < 20100; k++) c.request(k)
    assert.ok(c.has(10489), 'admitted by the ghost rule, though the victim is estimated more frequent')
    let frequent = 0
    for (let k = 0; k < 999; k++) if (c.has(k)) frequent++
    assert.ok(frequent >= 950, `the frequent keys stay (${frequent} of 999)`)
  })

  test('a frequency-heavy stream keeps the window small', () => {
    const c = cache(1000)
    frequency(c, new SeededRandom(4), 0, 200_000)
    assert.ok(c.p.windowMaximum <= 100, `window ${c.p.windowMaximum}`)
  })

  test('deterministic: the same stream gives the same window after every request', () => {
    const trail = (): number[] => {
      const c = cache(500)
      const random = new SeededRandom(8)
      const out: number[] = []
      for (let round = 0; round < 20; round++) {
        if (round % 2 === 0) recency(c, random, 1e6 * (round + 1), 2_000)
        else frequency(c, random, 0, 2_000)
        out.push(c.p.windowMaximum)
      }
      return out
    }
    const a = trail()
    assert.deepEqual(trail(), a)
    assert.ok(new Set(a).size > 3, `the window moved: ${a.join(' ')}`)
  })
})
