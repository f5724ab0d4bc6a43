/**
 * pollUntil (core/poll-until.ts), the real-time conformance suites' wait: its deadline
 * counts the time the process ran, not the time it was descheduled. Driven by a clock whose
 * timers the test fires by hand, as late as it likes, so a stall is exact and nothing sleeps.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Clock, TimerHandle } from '../../src/core/clock.js'
import { pollUntil, stalledNote } from '../../src/core/poll-until.js'

/** A clock whose single pending timer fires when the test says, at the time it says. */
class HandClock implements Clock {
  now_ = 0
  pending: (() => void) | undefined
  now(): number {
    return this.now_
  }
  setTimeout(fn: () => void): TimerHandle {
    this.pending = fn
    return 0 as unknown as TimerHandle
  }
  clearTimeout(): void {
    this.pending = undefined
  }
  /** Moves time by `ms`, then fires the pending poll and lets the waiter run. */
  async fire(ms: number): Promise<void> {
    this.now_ += ms
    const fn = this.pending
    this.pending = undefined
    assert.ok(fn, 'a poll is pending')
    fn()
    await new Promise((resolve) => setImmediate(resolve))
  }
}

test('pollUntil: holds at once without a timer; fails after ms of polls that wake on time', async () => {
  const clock = new HandClock()
  assert.deepEqual(await pollUntil(clock, 100, () => true), { held: true, stalledMs: 0 })
  const r = pollUntil(clock, 100, () => false)
  await new Promise((resolve) => setImmediate(resolve))
  let polls = 0
  while (clock.pending !== undefined) {
    await clock.fire(5)
    polls++
  }
  const outcome = await r
  assert.deepEqual(outcome, { held: false, stalledMs: 0 })
  assert.equal(polls, 21, 'polls every 5 ms until past the 100 ms deadline')
  assert.equal(stalledNote(outcome), '')
})

test('pollUntil: a stall moves the deadline by its lateness, so a delivery read after the stall still counts', async () => {
  const clock = new HandClock()
  let delivered = false
  const r = pollUntil(clock, 100, () => delivered)
  await new Promise((resolve) => setImmediate(resolve))
  await clock.fire(5)
  // The process is descheduled for 5 s: the next poll fires 4,995 ms late, before the
  // socket that holds the delivery is read (the event loop runs timers first).
  await clock.fire(5_000)
  assert.notEqual(clock.pending, undefined, 'past the 100 ms deadline in wall time, the wait goes on')
  delivered = true
  await clock.fire(5)
  assert.deepEqual(await r, { held: true, stalledMs: 4_995 })
})

test('pollUntil: with stalls, a check that never holds still fails after ms of running time, naming the stall', async () => {
  const clock = new HandClock()
  const r = pollUntil(clock, 100, () => false)
  await new Promise((resolve) => setImmediate(resolve))
  await clock.fire(1_000)
  let polls = 0
  while (clock.pending !== undefined) {
    await clock.fire(5)
    polls++
  }
  const outcome = await r
  assert.equal(outcome.held, false)
  assert.equal(outcome.stalledMs, 995)
  assert.equal(polls, 20, 'the 100 ms of running time are still polled in full after the stall')
  assert.equal(stalledNote(outcome), ' (+995 ms this process was stalled)')
  // A lateness up to 10 ms is a poll's ordinary jitter, not a stall.
  const jitter = new HandClock()
  const j = pollUntil(jitter, 100, () => false)
  await new Promise((resolve) => setImmediate(resolve))
  while (jitter.pending !== undefined) await jitter.fire(15)
  assert.deepEqual(await j, { held: false, stalledMs: 0 })
})
