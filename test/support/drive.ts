/**
 * Drives a promise on a ManualClock: lets I/O and microtasks run, then moves time in small
 * steps until the promise settles (or a time limit passes, which fails the test).
 */
import type { ManualClock } from '../../src/core/manual-clock.js'

export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

export interface Settled<T> {
  readonly ok: boolean
  readonly value?: T
  readonly error?: unknown
  /** Clock time at which it settled (to the step). */
  readonly at: number
}

export async function drive<T>(clock: ManualClock, promise: Promise<T>, { step = 5, limit = 120_000 } = {}): Promise<Settled<T>> {
  let result: Settled<T> | undefined
  promise.then(
    (value) => (result = { ok: true, value, at: clock.now() }),
    (error: unknown) => (result = { ok: false, error, at: clock.now() }),
  )
  const end = clock.now() + limit
  await tick()
  await tick()
  while (result === undefined) {
    if (clock.now() >= end) throw new Error(`promise still pending after ${limit} ms of clock time`)
    clock.advance(step)
    await tick()
    await tick()
  }
  return result
}
