import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type Clock, isCacheError, ManualClock, type TimerHandle } from '../../src/index.js'
import { HybridClock, isVersion, LOGICAL_BITS, MAX_VERSION_MS, msOfVersion, versionFromMs } from '../../src/tags/index.js'

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

describe('HybridClock', () => {
  test('versions pack physical ms and an 11-bit logical counter', () => {
    assert.equal(LOGICAL_BITS, 11)
    const clock = new ManualClock(1_000)
    const hlc = new HybridClock(clock)
    const v = hlc.next()
    assert.equal(v, 1_000 * 2048)
    assert.equal(msOfVersion(v), 1_000)
    assert.equal(versionFromMs(1_000.7), v, 'fractional ms are floored')
    assert.equal(hlc.next(), v + 1, 'same millisecond: the logical part counts')
    clock.advance(1)
    assert.equal(hlc.next(), 1_001 * 2048, 'a new millisecond resets it')
  })

  test('strictly increasing while the clock stalls, even past 2048 per millisecond', () => {
    const hlc = new HybridClock(new ManualClock(5_000))
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
    const hlc = new HybridClock(clock)
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
    const hlc = new HybridClock(new ManualClock(7))
    assert.equal(hlc.current(), 0)
    const n = hlc.now()
    assert.equal(hlc.now(), n)
    assert.equal(hlc.current(), n)
    assert.ok(hlc.next() > n)
  })

  test('observe ratchets: later versions exceed what was seen', () => {
    const clock = new ManualClock(1_000)
    const hlc = new HybridClock(clock)
    const a = hlc.next()
    const remote = a + 30_000 * 2048 // a peer 30 s ahead
    assert.equal(hlc.observe(remote), remote)
    assert.ok(hlc.next() > remote)
    assert.ok(hlc.now() > remote)
    assert.equal(hlc.observe(a), a, 'an older version changes nothing')
    assert.ok(hlc.next() > remote + 1)
  })

  test('a version beyond maxDrift is clamped, so one bad message cannot push the clock away', () => {
    const clock = new ManualClock(1_000)
    const hlc = new HybridClock(clock)
    const limit = versionFromMs(1_000 + 60_000)
    assert.equal(hlc.observe(Number.MAX_SAFE_INTEGER), limit)
    assert.equal(hlc.current(), limit)
    const strict = new HybridClock(clock, { maxDrift: '1s' })
    assert.equal(strict.observe(versionFromMs(5_000)), versionFromMs(2_000))
    const open = new HybridClock(clock, { maxDrift: Infinity })
    assert.equal(open.observe(versionFromMs(5_000_000)), versionFromMs(5_000_000))
  })

  test('safe integers through year 2100 and beyond; later clocks are refused', () => {
    assert.ok(MAX_VERSION_MS >= Date.UTC(2109, 0, 1))
    assert.equal(MAX_VERSION_MS * 2048 + 2047, Number.MAX_SAFE_INTEGER)
    const hlc = new HybridClock(new ManualClock(Date.UTC(2100, 11, 31)))
    for (let i = 0; i < 3_000; i++) assert.ok(Number.isSafeInteger(hlc.next()))
    assert.throws(() => new HybridClock(new ManualClock(Date.UTC(2200, 0, 1))), isOptionsError)
  })

  test('bad versions and options raise ERR_INVALID_OPTIONS', () => {
    const hlc = new HybridClock(new ManualClock(0))
    for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53, '5' as unknown as number]) {
      assert.throws(() => hlc.observe(bad), isOptionsError, String(bad))
      assert.equal(isVersion(bad), false)
    }
    assert.equal(isVersion(0), true)
    assert.throws(() => new HybridClock(new ManualClock(0), { maxDrift: -1 }), isOptionsError)
    assert.throws(() => new HybridClock({} as Clock), isOptionsError)
  })
})
