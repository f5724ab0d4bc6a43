/**
 * The one backoff policy (core/backoff.ts) on SeededRandom: the bare schedule, bounds,
 * the cap, the jitter's distribution, deterministic replay, and option validation.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Backoff, BackoffPolicy, backoffPolicy, DEFAULT_BACKOFF } from '../../src/core/backoff.js'
import { isCacheError } from '../../src/core/errors.js'
import { SeededRandom, type Random } from '../../src/core/random.js'

const fixed = (r: number): Random => ({ next: () => r })

test('defaults are LoomCache\'s: 100 ms doubling to 5 s, ±25 %', () => {
  assert.deepEqual({ ...DEFAULT_BACKOFF }, { initial: 100, max: 5000, jitter: 0.25 })
  const p = backoffPolicy(undefined, 'x.reconnect', fixed(0.5))
  assert.deepEqual([p.initial, p.max, p.jitter], [100, 5000, 0.25])
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 60, 1e9].map((n) => p.ceiling(n)), [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000])
  // r = 0.5 is the middle of the jitter band: the bare schedule.
  assert.deepEqual([0, 1, 2, 6].map((n) => p.delay(n)), [100, 200, 400, 5000])
  assert.equal(backoffPolicy(undefined, 'x', fixed(0)).delay(0), 75)
  assert.equal(backoffPolicy(undefined, 'x', fixed(0)).delay(10), 3750)
  assert.equal(backoffPolicy(undefined, 'x', fixed(0.999999)).delay(10), 5000, 'never above the cap')
})

test('jitter 0: the bare doubling schedule, reset by success; current() does not count', () => {
  const b = backoffPolicy({ jitter: 0 }, 'bus.reconnect', new SeededRandom(1)).attempts()
  assert.equal(b.current(), 100)
  assert.equal(b.current(), 100)
  assert.deepEqual(
    Array.from({ length: 9 }, () => b.next()),
    [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000],
  )
  assert.equal(b.current(), 5000)
  for (let i = 0; i < 100; i++) b.next()
  assert.equal(b.next(), 5000, 'no overflow after many attempts')
  b.reset()
  assert.equal(b.attempt, 0)
  assert.equal(b.next(), 100)
  const custom = backoffPolicy({ initial: '1s', max: '3s', jitter: 0 }, 'feed.reconnect').attempts()
  assert.deepEqual([custom.next(), custom.next(), custom.next()], [1000, 2000, 3000])
})

test('±j jitter: every delay within d × [1 − j, 1 + j] and the cap; spread across the whole band, mean near d', () => {
  for (const j of [0.1, 0.25, 0.5]) {
    const p = new BackoffPolicy({ initial: 100, max: 5000, jitter: j }, new SeededRandom(7))
    for (let n = 0; n < 9; n++) {
      const d = p.ceiling(n)
      const lo = d * (1 - j)
      const hi = Math.min(5000, d * (1 + j))
      const draws = Array.from({ length: 2000 }, () => p.delay(n))
      const min = Math.min(...draws)
      const max = Math.max(...draws)
      assert.ok(min >= lo && max <= hi, `j=${j} n=${n}: [${min}, ${max}] outside [${lo}, ${hi}]`)
      // Uniform over the band: 2000 draws reach within 2 % of both ends.
      assert.ok(min < lo + 0.02 * (hi - lo) && max > hi - 0.02 * (hi - lo), `j=${j} n=${n}: draws [${min}, ${max}] do not fill [${lo}, ${hi}]`)
      if (d * (1 + j) <= 5000) {
        const mean = draws.reduce((a, b) => a + b, 0) / draws.length
        assert.ok(Math.abs(mean - d) < 0.03 * d, `j=${j} n=${n}: mean ${mean} far from ${d}`)
      }
      // Each tenth of the band holds about a tenth of the draws (uniform, not clumped).
      const buckets = new Array<number>(10).fill(0)
      for (const x of draws) buckets[Math.min(9, Math.floor(((x - lo) / (hi - lo)) * 10))]++
      if (d * (1 + j) <= 5000) for (const c of buckets) assert.ok(c > 120 && c < 280, `j=${j} n=${n}: buckets ${buckets.join(',')}`)
    }
  }
})

test("'full' jitter: every delay in [0, d), uniform, capped", () => {
  const p = backoffPolicy({ initial: '20ms', max: '200ms', jitter: 'full' }, 'l2.retry', new SeededRandom(3))
  for (let n = 0; n < 8; n++) {
    const d = Math.min(200, 20 * 2 ** n)
    const draws = Array.from({ length: 2000 }, () => p.delay(n))
    assert.ok(draws.every((x) => x >= 0 && x < d), `n=${n}`)
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length
    assert.ok(Math.abs(mean - d / 2) < 0.05 * d, `n=${n}: mean ${mean}, expected about ${d / 2}`)
  }
})

test('deterministic replay: the same seed gives the same delays; another seed does not', () => {
  const run = (seed: number): number[] => {
    const b = new Backoff(backoffPolicy(undefined, 'x', new SeededRandom(seed)))
    const out: number[] = []
    for (let i = 0; i < 12; i++) {
      out.push(b.current(), b.next())
      if (i === 7) b.reset()
    }
    return out
  }
  assert.deepEqual(run(42), run(42))
  assert.notDeepEqual(run(42), run(43))
  // current() is drawn once per attempt and next() returns that same draw.
  const trace = run(42)
  for (let i = 0; i < trace.length; i += 2) assert.equal(trace[i], trace[i + 1])
})

test('twenty loops on one schedule no longer step together: their sums after k failures spread', () => {
  // The herd this policy exists for: 20 processes lose the broker at the same instant and
  // fail 4 times. Without jitter all 20 dial at 100+200+400+800 = 1500 ms exactly.
  const random = new SeededRandom(2024)
  const policy = backoffPolicy(undefined, 'bus.reconnect', random)
  const at = Array.from({ length: 20 }, () => {
    const b = policy.attempts()
    return b.next() + b.next() + b.next() + b.next()
  })
  const spread = Math.max(...at) - Math.min(...at)
  assert.ok(at.every((t) => t >= 1125 && t <= 1875), JSON.stringify(at))
  assert.ok(spread > 300, `spread ${spread} ms`)
  const bare = backoffPolicy({ jitter: 0 }, 'x', random)
  const lockstep = Array.from({ length: 20 }, () => {
    const b = bare.attempts()
    return b.next() + b.next() + b.next() + b.next()
  })
  assert.equal(new Set(lockstep).size, 1)
})

test('options are validated, naming the option', () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ initial: 0 }, /x\.reconnect\.initial/],
    [{ initial: 'Infinity' }, /x\.reconnect\.initial/],
    [{ initial: -5 }, /x\.reconnect\.initial/],
    [{ initial: '1s', max: '500ms' }, /x\.reconnect\.max/],
    [{ initial: '10s' }, /x\.reconnect\.max/],
    [{ max: 'soon' }, /x\.reconnect\.max/],
    [{ max: Infinity }, /x\.reconnect\.max/],
    [{ jitter: 1 }, /x\.reconnect\.jitter/],
    [{ jitter: -0.1 }, /x\.reconnect\.jitter/],
    [{ jitter: 'half' }, /x\.reconnect\.jitter/],
    [{ jitter: Number.NaN }, /x\.reconnect\.jitter/],
    [5, /x\.reconnect/],
    [null, /x\.reconnect/],
  ]
  for (const [options, name] of bad) {
    assert.throws(
      () => backoffPolicy(options as never, 'x.reconnect'),
      (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && name.test((err as Error).message),
      JSON.stringify(options),
    )
  }
  assert.throws(
    () => backoffPolicy(undefined, 'x.reconnect', {} as Random),
    (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && /x\.reconnect\.random/.test((err as Error).message),
  )
})
