/**
 * ExpiryWheel against a model: random schedules (many into one bucket, as a burst of one
 * TTL does, which takes the wheel's cached-bucket path), reschedules, unschedules and
 * advances. Each advance must hand over exactly the scheduled slots whose tick has ended,
 * each once, and `size` must count what is scheduled.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { ExpiryWheel } from '../../src/expiry/expiry-wheel.js'

const RESOLUTION = 10
const SLOTS = 12

type Op = { t: 'schedule'; slot: number; in: number } | { t: 'unschedule'; slot: number } | { t: 'advance'; by: number }

/**
 * Advances `wheel` to `now` and checks it hands over exactly the slots of `model` (slot ->
 * tick) whose tick has ended, each once; removes them from the model and returns them.
 */
function advanceAndCheck(wheel: ExpiryWheel, model: Map<number, number>, now: number, limit: number): number[] {
  const handed: number[] = []
  wheel.advance(now, (slot) => handed.push(slot))
  const due = [...model].filter(([, tick]) => tick < limit).map(([slot]) => slot)
  assert.deepEqual([...handed].sort((a, b) => a - b), due.sort((a, b) => a - b), `at ${now}`)
  for (const slot of due) model.delete(slot)
  return due
}

describe('ExpiryWheel', () => {
  test('hands over exactly the slots whose tick has ended, once each', () => {
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      { weight: 6, arbitrary: fc.record({ t: fc.constant('schedule' as const), slot: fc.nat(SLOTS - 1), in: fc.oneof(fc.constant(25), fc.nat(60)) }) },
      { weight: 2, arbitrary: fc.record({ t: fc.constant('unschedule' as const), slot: fc.nat(SLOTS - 1) }) },
      { weight: 3, arbitrary: fc.record({ t: fc.constant('advance' as const), by: fc.nat(40) }) },
    )
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 200 }), (ops) => {
        let now = 1000
        const wheel = new ExpiryWheel(RESOLUTION, SLOTS, now)
        /** slot -> the tick its deadline falls in (never before the tick the wheel is at). */
        const model = new Map<number, number>()
        const tickOf = (t: number): number => Math.floor(t / RESOLUTION)
        let cursor = tickOf(now)
        for (const op of ops) {
          if (op.t === 'schedule') {
            wheel.schedule(op.slot, now + op.in)
            model.set(op.slot, Math.max(tickOf(now + op.in), cursor))
          } else if (op.t === 'unschedule') {
            wheel.unschedule(op.slot)
            model.delete(op.slot)
          } else {
            now += op.by
            const limit = tickOf(now)
            advanceAndCheck(wheel, model, now, limit)
            cursor = Math.max(cursor, limit)
          }
          assert.equal(wheel.size, model.size)
        }
      }),
      { numRuns: 500, seed: 0x77ee1 },
    )
  })

  test('reschedule(slot, previous, deadline) is schedule(slot, deadline), left in place when both fall in one tick', () => {
    // The engine moves a recycled slot from its evicted entry's deadline to the new one's
    // (decision 0396): with one TTL both usually fall in one tick, and nothing need move.
    type R = { t: 'schedule' | 'reschedule'; slot: number; in: number } | { t: 'advance'; by: number }
    const opArb: fc.Arbitrary<R> = fc.oneof(
      { weight: 4, arbitrary: fc.record({ t: fc.constantFrom('schedule' as const, 'reschedule' as const), slot: fc.nat(SLOTS - 1), in: fc.oneof(fc.constant(25), fc.nat(60), fc.constant(2 ** 40)) }) },
      { weight: 2, arbitrary: fc.record({ t: fc.constant('advance' as const), by: fc.nat(40) }) },
    )
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 200 }), (ops) => {
        let now = 1000
        const wheel = new ExpiryWheel(RESOLUTION, SLOTS, now)
        const model = new Map<number, number>()
        /** slot -> the deadline it was last scheduled with, while scheduled. */
        const deadlines = new Map<number, number>()
        const tickOf = (t: number): number => Math.min(Math.floor(t / RESOLUTION), 2 ** 31)
        let cursor = tickOf(now)
        for (const op of ops) {
          if (op.t !== 'advance') {
            const previous = deadlines.get(op.slot)
            if (op.t === 'reschedule' && previous !== undefined) wheel.reschedule(op.slot, previous, now + op.in)
            else wheel.schedule(op.slot, now + op.in)
            model.set(op.slot, Math.max(tickOf(now + op.in), cursor))
            deadlines.set(op.slot, now + op.in)
          } else {
            now += op.by
            const limit = tickOf(now)
            for (const slot of advanceAndCheck(wheel, model, now, limit)) deadlines.delete(slot)
            cursor = Math.max(cursor, limit)
          }
          assert.equal(wheel.size, model.size)
        }
      }),
      { numRuns: 500, seed: 0x396 },
    )
  })
})
