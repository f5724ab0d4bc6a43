/**
 * How long this process's event loop was stalled while a real-time measurement ran.
 *
 * Real-socket tests check latencies against bounds the product states (a timeout, a
 * heartbeat sum, "wakes at once, not at the timeout"). On a loaded 2-core CI machine a
 * process can be starved of CPU (or paused by GC) for hundreds of milliseconds, and then
 * every timer and every socket callback runs that much late — the product is not slower,
 * the process was not running. So a check allows its stated bound, its fixed margin, plus
 * the stalls measured here during the same span: the allowance stretches by what the
 * machine actually took, while a product that waits on the wrong thing (a timeout, a
 * poll, several heartbeats) still fails on an idle loop.
 *
 * A 20 ms interval timer is sampled; only a lateness over 10 ms counts as a stall. The
 * millisecond of jitter every firing has is left out: summed over a long span it would grow
 * with the span and loosen the check.
 */
const PERIOD_MS = 20
const STALL_MS = 10

export interface StallMeter {
  /** Milliseconds the event loop was stalled since `stallMeter()` (up to `stop()`). */
  readonly stalledMs: number
  stop(): void
}

export function stallMeter(): StallMeter {
  let last = performance.now()
  let stalled = 0
  let stopped = false
  const late = (now: number): number => {
    const by = now - last - PERIOD_MS
    return by > STALL_MS ? by : 0
  }
  const timer = setInterval(() => {
    const now = performance.now()
    stalled += late(now)
    last = now
  }, PERIOD_MS)
  // A meter a failed assertion left running must not keep the test file's process alive.
  timer.unref()
  return {
    get stalledMs() {
      return stopped ? stalled : stalled + late(performance.now())
    },
    stop: () => {
      if (stopped) return
      stalled += late(performance.now())
      stopped = true
      clearInterval(timer)
    },
  }
}

/**
 * `minTtlMs` (the conformance suite's time unit) for stores that run on real time (Redis
 * standalone and cluster). The suite's tightest checks leave two units between an
 * operation and the expiry it must beat (a lease of 4 units extended after 2, a TTL of 4
 * touched after 2). At 50 ms that slack was 100 ms, and one run in about ten of the
 * cluster suite at load 9-13 failed `extend keeps the lease past its original expiry`:
 * the process stalled past the lease before its extend reached Redis, so Redis rightly
 * refused it. 150 ms gives 300 ms of slack, above the stalls measured on this machine,
 * for about 13 s more sleep per real-time target.
 */
export const REAL_TIME_UNIT_MS = 150
