import type { Clock, TimerHandle } from './clock.js'

interface ManualTimer {
  readonly id: number
  readonly at: number
  readonly fn: () => void
}

/**
 * A clock that moves only when told to. `advance(ms)` fires due timers in time order,
 * each with `now()` set to its own due time, including timers scheduled by timers that
 * fire during the same advance.
 */
export class ManualClock implements Clock {
  #now: number
  #seq = 0
  // Few timers are pending at once in practice; a sorted array keeps firing order exact.
  #timers: ManualTimer[] = []

  constructor(start = 1_700_000_000_000) {
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: ManualTimer = { id: ++this.#seq, at: this.#now + Math.max(0, ms), fn }
    // Insert keeping (at, id) order so equal deadlines fire in scheduling order.
    let i = this.#timers.length
    while (i > 0 && this.#timers[i - 1].at > timer.at) i--
    this.#timers.splice(i, 0, timer)
    return timer
  }

  clearTimeout(handle: TimerHandle): void {
    const i = this.#timers.indexOf(handle as ManualTimer)
    if (i >= 0) this.#timers.splice(i, 1)
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`ManualClock.advance needs ms >= 0, got ${ms}`)
    const target = this.#now + ms
    for (;;) {
      const next = this.#timers[0]
      if (next === undefined || next.at > target) break
      this.#timers.shift()
      this.#now = Math.max(this.#now, next.at)
      next.fn()
    }
    this.#now = target
  }

  /** Sets the time (only forwards), firing due timers. */
  set(time: number): void {
    this.advance(Math.max(0, time - this.#now))
  }

  /** Number of timers not yet fired or cleared. */
  get pendingTimers(): number {
    return this.#timers.length
  }
}
