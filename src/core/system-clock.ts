import { Worker } from 'node:worker_threads'
import type { Clock, TimerHandle, TimerOptions } from './clock.js'

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
 * `now()` is wall-clock milliseconds made monotonic: if the system clock steps back, time
 * stands still until it catches up, so TTL arithmetic never sees time reverse.
 */
const TICK_MS = 1

// Runs in the worker (CommonJS eval). Atomics.wait sleeps without spinning a core.
const TICKER_SOURCE = `
const { workerData } = require('node:worker_threads')
const now = new Float64Array(workerData, 0, 1)
const sleeper = new Int32Array(workerData, 8, 1)
for (;;) { now[0] = Date.now(); Atomics.wait(sleeper, 0, 0, ${TICK_MS}) }
`

class SystemClock implements Clock {
  #last = 0
  /** Shared cell written by the ticker; 0 until the ticker has written once. */
  #shared: Float64Array | undefined
  #started = false

  now(): number {
    const shared = this.#shared
    let t: number
    if (shared !== undefined && shared[0] !== 0) {
      t = shared[0]
    } else {
      if (!this.#started) this.#startTicker()
      t = Date.now()
    }
    if (t > this.#last) this.#last = t
    return this.#last
  }

  setTimeout(fn: () => void, ms: number, options?: TimerOptions): TimerHandle {
    // Node clamps delays above 2^31-1 ms to 1 ms; clamp ourselves so long timers stay long.
    const t = setTimeout(fn, Math.min(Math.max(0, ms), 2_147_483_647))
    if (options?.unref === true) t.unref()
    return t
  }

  clearTimeout(handle: TimerHandle): void {
    clearTimeout(handle as ReturnType<typeof setTimeout>)
  }

  #startTicker(): void {
    this.#started = true
    if (process.env.STRATACACHE_NO_TICKER === '1') return
    try {
      const buffer = new SharedArrayBuffer(16)
      const worker = new Worker(TICKER_SOURCE, { eval: true, workerData: buffer, stdout: false, stderr: false })
      worker.unref()
      const shared = new Float64Array(buffer, 0, 1)
      this.#shared = shared
      const fallBack = (): void => {
        // A dead ticker must not freeze time: go back to Date.now().
        this.#shared = undefined
      }
      worker.on('error', fallBack)
      worker.on('exit', fallBack)
    } catch {
      this.#shared = undefined
    }
  }
}

/** The process-wide real clock (TTL resolution about 1 ms). */
export const systemClock: Clock = new SystemClock()
