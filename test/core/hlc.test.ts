import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type Clock, isCacheError, ManualClock, type TimerHandle } from '../../src/index.js'
import { compareVersions, HybridLogicalClock, isVersion, LOGICAL_BITS, logicalOfVersion, MAX_VERSION_MS, msOfVersion, versionFromMs } from '../../src/core/hlc.js'

/** A clock whose time is set by hand, including backwards (a stepped system clock). */
class SteppingClock implements Clock {
  time = 1_700_000_000_000
  now(): number {
    return this.time
  }
  setTimeout(): TimerHandle {
    return {}
  }
  clearTimeout(): void {}
}

const isOptionsError = (e: unknown): boolean => isCacheError(e, 'ERR_INVALID_OPTIONS')

describe('HybridLogicalClock', () => {
  test('versions pack physical ms and an 11-bit logical counter', () => {
    assert.equal(LOGICAL_BITS, 11)
    const clock = new ManualClock(1_000)
    const hlc = new HybridLogicalClock(clock)
    const v = hlc.next()
    assert.equal(v, 1_000 * 2048)
    assert.equal(msOfVersion(v), 1_000)
    assert.equal(versionFromMs(1_000.7), v, 'fractional ms are floored')
    assert.equal(hlc.next(), v + 1, 'same millisecond: the logical part counts')
    clock.advance(1)
    assert.equal(hlc.next(), 1_001 * 2048, 'a new millisecond resets it')
  })

  test('strictly increasing while the clock stalls, even past 2048 per millisecond', () => {
    const hlc = new HybridLogicalClock(new ManualClock(5_000))
    let prev = 0
    for (let i = 0; i < 5_000; i++) {
      const v = hlc.next()
      assert.ok(v > prev)
      prev = v
    }
    assert.equal(msOfVersion(prev), 5_002, 'the logical part carried into the physical part')
  })

  test('strictly increasing when the clock steps back', () => {
    const clock = new SteppingClock()
    const hlc = new HybridLogicalClock(clock)
    const a = hlc.next()
    clock.time -= 60_000
    const b = hlc.next()
    const c = hlc.now()
    const d = hlc.next()
    assert.ok(b > a && c >= b && d > c)
    clock.time += 120_000
    assert.ok(msOfVersion(hlc.next()) === clock.time, 'physical time takes over again once ahead')
  })

  test('now() consumes nothing; next() exceeds everything returned so far', () => {
    const hlc = new HybridLogicalClock(new ManualClock(7))
    assert.equal(hlc.current(), 0)
    const n = hlc.now()
    assert.equal(hlc.now(), n)
    assert.equal(hlc.current(), n)
    assert.ok(hlc.next() > n)
  })

  test('observe ratchets: later versions exceed what was seen', () => {
    const clock = new ManualClock(1_000)
    const hlc = new HybridLogicalClock(clock)
    const a = hlc.next()
    const remote = a + 30_000 * 2048 // a peer 30 s ahead
    hlc.observe(remote)
    assert.equal(hlc.current(), remote)
    assert.ok(hlc.next() > remote)
    assert.ok(hlc.now() > remote)
    const before = hlc.current()
    hlc.observe(a)
    assert.equal(hlc.current(), before, 'an older version changes nothing')
    assert.ok(hlc.next() > remote + 1)
  })

  test('a version beyond maxDrift is refused with ERR_CLOCK_DRIFT, counted, and never adopted', () => {
    const clock = new ManualClock(1_000)
    const hlc = new HybridLogicalClock(clock)
    const before = hlc.now()
    const limit = versionFromMs(1_000 + 60_000)
    assert.throws(() => hlc.observe(Number.MAX_SAFE_INTEGER), (e: unknown) => isCacheError(e, 'ERR_CLOCK_DRIFT') && (e as unknown as { limit: number }).limit === limit)
    assert.equal(hlc.current(), before, 'the clock did not move')
    assert.equal(hlc.driftRefusals, 1)
    assert.equal(hlc.tryObserve(limit + 1), false)
    assert.equal(hlc.driftRefusals, 2)
    assert.equal(hlc.tryObserve(limit), true, 'exactly maxDrift ahead is accepted')
    assert.equal(hlc.current(), limit)
    assert.equal(hlc.driftLimit(), limit)
    const strict = new HybridLogicalClock(clock, { maxDrift: '1s' })
    assert.throws(() => strict.observe(versionFromMs(5_000)), (e: unknown) => isCacheError(e, 'ERR_CLOCK_DRIFT'))
    strict.observe(versionFromMs(2_000))
    assert.equal(strict.current(), versionFromMs(2_000))
    const open = new HybridLogicalClock(clock, { maxDrift: Infinity })
    open.observe(versionFromMs(5_000_000))
    assert.equal(open.current(), versionFromMs(5_000_000))
    assert.equal(open.driftLimit(), Infinity)
  })

  test('safe integers through year 2100 and beyond; later clocks are refused', () => {
    assert.ok(MAX_VERSION_MS >= Date.UTC(2109, 0, 1))
    assert.equal(MAX_VERSION_MS * 2048 + 2047, Number.MAX_SAFE_INTEGER)
    const hlc = new HybridLogicalClock(new ManualClock(Date.UTC(2100, 11, 31)))
    for (let i = 0; i < 3_000; i++) assert.ok(Number.isSafeInteger(hlc.next()))
    assert.throws(() => new HybridLogicalClock(new ManualClock(Date.UTC(2200, 0, 1))), isOptionsError)
  })

  test('bad versions and options raise ERR_INVALID_OPTIONS', () => {
    const hlc = new HybridLogicalClock(new ManualClock(0))
    for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53, '5' as unknown as number]) {
      assert.throws(() => hlc.observe(bad), isOptionsError, String(bad))
      assert.equal(isVersion(bad), false)
    }
    assert.equal(isVersion(0), true)
    assert.throws(() => new HybridLogicalClock(new ManualClock(0), { maxDrift: -1 }), isOptionsError)
    assert.throws(() => new HybridLogicalClock({} as Clock), isOptionsError)
    assert.throws(() => new HybridLogicalClock(new ManualClock(0), { floor: -1 }), isOptionsError)
    assert.throws(() => new HybridLogicalClock(new ManualClock(0), { reserve: 0 }), isOptionsError)
    assert.throws(() => new HybridLogicalClock(new ManualClock(0), { highWater: {} as never }), isOptionsError)
  })

  test('versions (hlc, nodeId) are totally ordered: hlc first, node id breaks ties', () => {
    const v = (hlc: number, nodeId: string): { hlc: number; nodeId: string } => ({ hlc, nodeId })
    assert.equal(compareVersions(v(5, 'b'), v(6, 'a')), -1)
    assert.equal(compareVersions(v(6, 'a'), v(5, 'b')), 1)
    assert.equal(compareVersions(v(5, 'a'), v(5, 'b')), -1)
    assert.equal(compareVersions(v(5, 'b'), v(5, 'a')), 1)
    assert.equal(compareVersions(v(5, 'a'), v(5, 'a')), 0)
    const sorted = [v(2, 'b'), v(1, 'z'), v(2, 'a'), v(1, 'a')].sort(compareVersions)
    assert.deepEqual(sorted.map((x) => `${x.hlc}${x.nodeId}`), ['1a', '1z', '2a', '2b'])
    assert.equal(logicalOfVersion(versionFromMs(9) + 7), 7)
  })

  test('the floor restores a high-water mark: every timestamp is above it, even with the clock far behind', () => {
    const mark = versionFromMs(10_000) + 5
    const hlc = new HybridLogicalClock(new ManualClock(1_000), { floor: mark })
    assert.equal(hlc.current(), mark)
    assert.ok(hlc.next() > mark)
  })

  test('highWater: the mark is persisted (once per reserve) before a timestamp above it is issued; a restart resumes above it', async () => {
    const clock = new ManualClock(1_000)
    const marks: number[] = []
    let durable = 0
    const highWater = { persist: async (mark: number) => { marks.push(mark); durable = mark } }
    const hlc = new HybridLogicalClock(clock, { highWater, reserve: 1 })
    assert.throws(() => hlc.next(), isOptionsError, 'next() may not pass the durable mark')
    const drawn = await Promise.all(Array.from({ length: 3_000 }, () => hlc.nextDurable()))
    for (let i = 1; i < drawn.length; i++) assert.ok(drawn[i] > drawn[i - 1])
    assert.equal(marks.length, 2, 'concurrent draws share a write; 3000 draws spill past one reserve once')
    assert.ok(drawn.every((v) => v <= durable))
    assert.ok(hlc.next() > drawn[drawn.length - 1], 'next() works below the durable mark')
    // Restart with the clock stepped back to 0: resumes above the mark.
    const restarted = new HybridLogicalClock(new ManualClock(0), { floor: durable, highWater, reserve: 1 })
    assert.ok((await restarted.nextDurable()) > drawn[drawn.length - 1])
    // A failing hook fails the draw with its error and hands out nothing.
    const failing = new HybridLogicalClock(clock, { highWater: { persist: () => Promise.reject(new Error('disk gone')) } })
    await assert.rejects(failing.nextDurable(), /disk gone/)
    assert.equal(failing.current(), 0)
  })
})
