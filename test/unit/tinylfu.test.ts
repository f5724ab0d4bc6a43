/**
 * The pieces of Window-TinyLFU below the engine: the frequency sketch's contract (count-min
 * estimates, the cap, halving, and the SATURATED / HALVED signals the policy relies on to
 * skip the sketch exactly), and the policy's shortcuts (CLOCK's second chance, the
 * saturation bit, the cached hashes used at admission) against what they stand for.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { SeededRandom } from '../../src/core/random.js'
import { FrequencySketch, HALVED, SATURATED } from '../../src/policies/frequency-sketch.js'
import { TinyLfuPolicy } from '../../src/policies/tinylfu-policy.js'
import { hashKey } from '../../src/memory/hash-key.js'

describe('FrequencySketch', () => {
  test('an estimate is never below the true count (up to the cap of 15), whatever the collisions', () => {
    const sketch = new FrequencySketch(64)
    const random = new SeededRandom(11)
    const truth = new Map<number, number>()
    // 300 keys into a sketch sized for 64: plenty of shared counters. Few enough
    // increments (< 10 x 64) that no halving happens.
    for (let i = 0; i < 600; i++) {
      const key = hashKey(`k${Math.floor(random.next() * 300)}`)
      sketch.increment(key)
      truth.set(key, (truth.get(key) ?? 0) + 1)
    }
    for (const [key, n] of truth) assert.ok(sketch.frequency(key) >= Math.min(n, 15), `key ${key}: estimate ${sketch.frequency(key)} < count ${n}`)
  })

  test('a key alone in the sketch is counted exactly up to the cap, and SATURATED says when it reached it', () => {
    const sketch = new FrequencySketch(1024)
    const key = hashKey('only')
    const signals: number[] = []
    for (let i = 0; i < 20; i++) signals.push(sketch.increment(key))
    assert.equal(sketch.frequency(key), 15)
    // The 15th increment brings it to 15 and says so; every later one is a no-op that says so too.
    assert.deepEqual(signals.slice(0, 14), Array(14).fill(0))
    assert.deepEqual(signals.slice(14), Array(6).fill(SATURATED))
  })

  test('after 10 x capacity increments every counter is halved, and the increment that did it says HALVED', () => {
    const capacity = 16
    const sketch = new FrequencySketch(capacity)
    const hot = hashKey('hot')
    for (let i = 0; i < 15; i++) sketch.increment(hot)
    assert.equal(sketch.frequency(hot), 15)
    let halvedAt = -1
    let counted = 15
    const random = new SeededRandom(5)
    for (let i = 0; halvedAt === -1 && i < 10_000; i++) {
      const r = sketch.increment(hashKey(`cold${Math.floor(random.next() * 1e9)}`))
      if (r !== SATURATED) counted++
      if (r === HALVED) halvedAt = counted
    }
    assert.equal(halvedAt, 10 * capacity, 'the sample size is 10 x capacity increments that changed the sketch')
    assert.ok(sketch.frequency(hot) <= 7 + 1, `the hot key was halved (15 -> 7, plus at most 1 from a cold collision): ${sketch.frequency(hot)}`)
    assert.ok(sketch.frequency(hot) >= 7)
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
 * call of hashOf is counted, so the cached-hash paths can be checked against recomputing.
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

  test('admission uses the hash of the key now in a slot, never one cached for a key that left it', () => {
    // maximum 5: window 1, main 4. 16 slots, so spare slots can pump keys into the sketch.
    const { p, insert } = policy(5, 16)
    const pump = (key: string, times: number): void => {
      // A spare slot inserted and removed at once: only the sketch remembers the key.
      for (let i = 0; i < times; i++) {
        insert(15, key)
        p.onRemove(15)
      }
    }
    for (let s = 0; s < 5; s++) insert(s, `k${s}`) // window [4], probation [3 2 1 0]
    insert(5, 'k5')
    assert.equal(p.victim(), 4, 'equal frequencies: the candidate goes') // victim hash of slot 0 ('k0') now cached
    p.onRemove(4)
    pump('k0', 10) // the key that was in slot 0 is now popular
    for (const s of [1, 2, 3, 0, 5]) p.onRemove(s) // everything leaves; slot 0 last
    // Slot 0 comes back with a key without history and becomes probation's cold end.
    insert(0, 'fresh')
    for (let s = 1; s < 5; s++) insert(s, `f${s}`) // window [4], probation [3 2 1 0]
    pump('f4', 4) // the candidate: frequency 5, above 'fresh' (1), below 'k0' (10)
    insert(5, 'f5')
    assert.equal(p.victim(), 0, "the candidate beats slot 0's real key; a stale cached hash ('k0') would have kept it")
  })

  test('admission takes most hashes from its caches: fewer hash computations than keys compared', () => {
    // A skewed stream with evictions; each admission compares two keys.
    const run = (): { victims: number[]; calls: number } => {
      const { p, insert, hashCalls } = policy(64)
      const random = new SeededRandom(21)
      const slotOf = new Map<string, number>()
      const free: number[] = []
      let next = 0
      const victims: number[] = []
      for (let i = 0; i < 20_000; i++) {
        const key = `k${Math.floor(random.next() ** 3 * 400)}`
        const slot = slotOf.get(key)
        if (slot !== undefined) {
          p.onAccess(slot)
          continue
        }
        const s = free.pop() ?? next++
        slotOf.set(key, s)
        insert(s, key)
        if (slotOf.size > 64) {
          const victim = p.victim()
          victims.push(victim)
          for (const [k, vs] of slotOf) if (vs === victim) slotOf.delete(k)
          p.onRemove(victim)
          free.push(victim)
        }
      }
      return { victims, calls: hashCalls() }
    }
    const a = run()
    const b = run()
    assert.deepEqual(a.victims, b.victims, 'deterministic')
    assert.ok(a.victims.length > 1000)
    // Without the caches every admission would hash two keys.
    assert.ok(a.calls < a.victims.length * 2, `hash calls ${a.calls} for ${a.victims.length} evictions`)
  })
})
