// The phi-accrual detector: defaults, the meaning of the threshold in seconds, adaptation, the window, validation.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isCacheError } from '../../src/core/errors.js'
import { BroadcastQueue, DEFAULT_PHI_OPTIONS, PhiAccrualDetector, phiCrossingMs, phiOf } from '../../src/cluster/index.js'

describe('PhiAccrualDetector', () => {
  test('defaults are Akka\'s, and phi 8 means ~4.5 s of silence after steady 1 s heartbeats', () => {
    assert.deepEqual({ ...DEFAULT_PHI_OPTIONS }, { threshold: 8, maxSamples: 1000, minStdDeviationMs: 100, acceptableHeartbeatPauseMs: 3000, firstHeartbeatEstimateMs: 1000 })
    const cross = phiCrossingMs({}, 1000)
    assert.ok(cross > 4400 && cross < 4700, `crossing at ${cross} ms`)
    const d = new PhiAccrualDetector()
    assert.equal(d.phi(0), 0, 'nothing to judge before the first heartbeat')
    for (let t = 0; t <= 100_000; t += 1000) d.heartbeat(t)
    const last = 100_000
    assert.ok(d.phi(last + 1000) < 0.1, 'one interval of silence is nothing')
    assert.ok(d.phi(last + 3900) < 1, 'the acceptable pause costs little')
    assert.ok(d.isAvailable(last + cross - 50))
    assert.ok(!d.isAvailable(last + cross + 50), `suspected just after ${cross} ms`)
    let prev = -1
    for (let e = 0; e < 20_000; e += 100) {
      const phi = d.phi(last + e)
      assert.ok(phi >= prev && !Number.isNaN(phi), `phi grows with silence (at ${e} ms: ${phi})`)
      prev = phi
    }
  })

  test('a jittery history is judged more patiently than a steady one, and a new peer by the first estimate', () => {
    const steady = new PhiAccrualDetector()
    const jittery = new PhiAccrualDetector()
    let t = 0
    for (let i = 0; i < 200; i++) {
      steady.heartbeat(i * 1000)
      t += i % 2 === 0 ? 300 : 1700
      jittery.heartbeat(t)
    }
    assert.ok(jittery.phi(t + 5000) < steady.phi(199_000 + 5000) / 2)
    const fresh = new PhiAccrualDetector()
    fresh.heartbeat(0)
    assert.ok(fresh.isAvailable(4000) && !fresh.isAvailable(7000), 'first estimate 1 s ± 250 ms plus 3 s pause')
  })

  test('the window keeps maxSamples intervals', () => {
    const d = new PhiAccrualDetector({ maxSamples: 10 })
    let t = 0
    for (let i = 0; i < 50; i++) d.heartbeat((t += 5000))
    assert.equal(d.samples, 10)
    for (let i = 0; i < 10; i++) d.heartbeat((t += 100))
    // Only the 100 ms intervals remain: 3.5 s of silence is now well past the mean + pause.
    assert.ok(d.phi(t + 3500) > 1 && d.phi(t + 5000) > 8)
  })

  test('phiOf never returns NaN; options are validated', () => {
    assert.equal(phiOf(0, 1e9, 1), 0)
    assert.equal(phiOf(1e9, 0, 1), Infinity)
    const bad = (e: unknown): boolean => isCacheError(e, 'ERR_INVALID_OPTIONS')
    assert.throws(() => new PhiAccrualDetector({ threshold: 0 }), bad)
    assert.throws(() => new PhiAccrualDetector({ maxSamples: 1 }), bad)
    assert.throws(() => new PhiAccrualDetector({ minStdDeviationMs: Number.NaN }), bad)
    assert.throws(() => new PhiAccrualDetector({ acceptableHeartbeatPauseMs: -1 }), bad)
  })
})

describe('BroadcastQueue', () => {
  test('least-sent first, newer replaces older, retransmit limit ~ log(n), bounded', () => {
    const q = new BroadcastQueue<string>({ maxSize: 3, retransmitMult: 2 })
    q.push('a', 'a1')
    q.push('b', 'b1')
    assert.deepEqual(q.take(1, 9), ['b1'])
    assert.deepEqual(q.take(1, 9), ['a1'])
    q.push('a', 'a2')
    assert.deepEqual(q.take(5, 9), ['a2', 'b1'])
    assert.deepEqual(q.take(5, 9), ['a2'], 'b1 retired after 2 * ceil(log10(10)) = 2 sends')
    assert.equal(q.size, 0)
    for (const k of ['w', 'x', 'y']) q.push(k, k)
    q.take(1, 9)
    q.push('z', 'z')
    assert.equal(q.size, 3)
    assert.deepEqual(q.take(5, 9).sort(), ['w', 'x', 'z'], 'the most-sent (y) was dropped to make room')
  })
})
