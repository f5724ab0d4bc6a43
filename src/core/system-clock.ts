import { Worker } from 'node:worker_threads'
import { MAX_TIMER_MS, type Clock, type TimerHandle, type TimerOptions } from './clock.js'
import { InvalidOptionsError } from './errors.js'

/**
 * The only module that touches real time.
 *
 * Why a ticker thread: on this class of machine `Date.now()` costs ~40 ns, more than the
 * whole `Map` lookup of a cache hit, and every read of an entry with a TTL needs the time.
 * lru-cache avoids the cost by caching "now" until a timer clears it, which serves expired
 * entries for as long as the event loop is blocked. Instead, a tiny worker thread writes
 * `Date.now()` into shared memory every `TICK_MS`; reading it costs one memory load, and it
 * keeps moving while the main thread is busy. The time read is thus at most about one tick
 * behind (documented as the TTL resolution). If the worker cannot start or dies, `now()`
 * falls back to `Date.now()`. The worker is unref'd and never keeps a process alive.
 *
 * The ticker parks when nobody needs it: after `ACTIVE_TICKS` ticks it writes 0 into the
 * shared cell and sleeps until woken. A read that finds 0 takes `Date.now()` and wakes it
 * (at most one wake-up per millisecond of reads, so the hot path never pays a syscall).
 * An idle process therefore costs nothing after its last read; a busy one pays one
 * `Date.now()` and one futex wake per 100 ms. Measured (bench `ticker` suite, and
 * docs/decisions/0105): a ticker that never parks cost an idle process about 110 CPU-seconds
 * and 3 million thread wake-ups per hour.
 *
 * `now()` is wall-clock milliseconds made monotonic: if the system clock steps back, time
 * stands still until it catches up, so TTL arithmetic never sees time reverse.
 */
const TICK_MS = 1
/** Ticks (about 100 ms) after which the ticker parks until a read wakes it (decision 0230: sparse readers kept a 1 s ticker awake). */
const ACTIVE_TICKS = 100

// Runs in the worker (CommonJS eval). Atomics.wait sleeps without spinning a core; a
// notify from the main thread ends a park (or merely shortens a tick).
const TICKER_SOURCE = `
const { workerData } = require('node:worker_threads')
const now = new Float64Array(workerData, 0, 1)
const sleeper = new Int32Array(workerData, 8, 1)
for (;;) {
  for (let i = 0; i < ${ACTIVE_TICKS}; i++) { now[0] = Date.now(); Atomics.wait(sleeper, 0, 0, ${TICK_MS}) }
  now[0] = 0
  Atomics.wait(sleeper, 0, 0)
}
`

export interface SystemClockOptions {
  /**
   * Read the time from a ticker thread (one memory load per read, resolution about 1 ms)
   * instead of calling `Date.now()` on every read. The thread parks after about 100 ms
   * without reads, so an idle process pays nothing for it. `false` (or the environment
   * variable `STRATACACHE_NO_TICKER=1`) never starts a thread.
   * @default true
   */
  ticker?: boolean
}

/** The cell of a clock whose ticker is not running (never written). */
const STOPPED = new Float64Array(1)

export class SystemClock implements Clock {
  /**
   * Internal, read by the engine's hit path (MemoryCache#get), which inlines `now()` by hand:
   * the ticker's cell ([0]: its latest `Date.now()`, 0 while it parks; STOPPED while it is not
   * running), and the latest time `now()` returned. A call to `now()` that V8 does not
   * inline costs a frame and a boxed number per read (see docs/decisions/0385).
   */
  cell: Float64Array = STOPPED
  last = 0
  #sleeper: Int32Array | undefined
  #started = false
  #lastWake = 0
  readonly #ticker: boolean

  constructor(ticker: boolean) {
    this.#ticker = ticker
  }

  now(): number {
    // Kept as MemoryCache#get inlines it: change both together.
    const t = this.cell[0]
    // `+`: a number to TurboFan where this is inlined, so the arms meet unboxed (decision 0402).
    return t > this.last ? (this.last = t) : t !== 0 ? this.last : +this.#slowNow()
  }

  /** Out of line: the ticker has not started, is parked, or is off. */
  #slowNow(): number {
    const t = Date.now()
    if (!this.#started) this.#startTicker()
    else if (this.#sleeper !== undefined && t !== this.#lastWake) {
      // Parked (or not yet written): wake it, at most once per millisecond of reads.
      this.#lastWake = t
      Atomics.notify(this.#sleeper, 0)
    }
    if (t > this.last) this.last = t
    return this.last
  }

  setTimeout(fn: () => void, ms: number, options?: TimerOptions): TimerHandle {
    // Node clamps delays above 2^31-1 ms to 1 ms; clamp ourselves so long timers stay long.
    const t = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS))
    if (options?.unref === true) t.unref()
    return t
  }

  clearTimeout(handle: TimerHandle): void {
    clearTimeout(handle as ReturnType<typeof setTimeout>)
  }

  #startTicker(): void {
    this.#started = true
    if (!this.#ticker || process.env.STRATACACHE_NO_TICKER === '1') return
    try {
      const buffer = new SharedArrayBuffer(16)
      // execArgv []: the process's own flags must not reach the ticker (with --input-type=module
      // its CommonJS source failed to load, silently: every read fell back to Date.now()).
      const worker = new Worker(TICKER_SOURCE, { eval: true, workerData: buffer, stdout: false, stderr: false, execArgv: [] })
      worker.unref()
      this.cell = new Float64Array(buffer, 0, 1)
      this.#sleeper = new Int32Array(buffer, 8, 1)
      const fallBack = (): void => {
        // A dead ticker must not freeze time: go back to Date.now().
        this.cell = STOPPED
        this.#sleeper = undefined
      }
      worker.on('error', fallBack)
      worker.on('exit', fallBack)
    } catch {
      this.cell = STOPPED
      this.#sleeper = undefined
    }
  }
}

/** The process-wide real clock (TTL resolution about 1 ms; ticker thread, parked when idle). */
export const systemClock: Clock = new SystemClock(true)

let noTicker: Clock | undefined

/** The process-wide real clock that never starts a thread (`createCache({ ticker: false })`). */
export function noTickerClock(): Clock {
  noTicker ??= new SystemClock(false)
  return noTicker
}

/**
 * A real clock of its own: `createSystemClock({ ticker: false })` reads `Date.now()` on every
 * call and never starts a thread (pass it as `clock` to a cache or store).
 */
export function createSystemClock(options: SystemClockOptions = {}): Clock {
  if (options.ticker !== undefined && typeof options.ticker !== 'boolean') throw new InvalidOptionsError('ticker', `expected a boolean, got ${typeof options.ticker}`)
  return new SystemClock(options.ticker ?? true)
}
