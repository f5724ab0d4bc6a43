/**
 * The fail-safe timers of a factory run (moved out of cache.ts): `timeout.soft` answers
 * with the stale value while the factory goes on (and stores its result); `timeout.hard`
 * aborts the factory (ERR_FACTORY_TIMEOUT) and answers with the fallback if there is one.
 * A factory failure with a stale value answers with the fallback too.
 */
import type { Clock, TimerHandle } from '../core/clock.js'
import { FactoryTimeoutError } from '../core/errors.js'
import type { Envelope } from '../tier/envelope.js'

export interface FailSafeTimers<V> {
  readonly clock: Clock
  readonly key: string
  /** The fail-safe fallback, or undefined (then a failure or hard timeout rejects). */
  readonly stale: Envelope<V> | undefined
  /** `timeout.soft` in ms (Infinity: none); applies only with a stale value. */
  readonly soft: number
  /** `timeout.hard` in ms (Infinity: none). */
  readonly hard: number
  /** Aborts the factory's signal on a hard timeout. */
  readonly controller: AbortController | undefined
  /** Serves the stale value after a failure or a hard timeout (and schedules the retry). */
  fallBack(stale: Envelope<V>): V
  /** A soft timeout answered with the stale value. */
  onSoft(): void
  /** A hard timeout fired. */
  onHard(): void
}

/** `stored` (the factory's result, stored) raced against the timers; at least one is finite. */
export function failSafeTimers<V>(stored: Promise<V>, t: FailSafeTimers<V>): Promise<V> {
  const stale = t.stale
  return new Promise<V>((resolve, reject) => {
    let done = false
    const timers: TimerHandle[] = []
    const finish = (): boolean => {
      if (done) return false
      done = true
      for (const h of timers) t.clock.clearTimeout(h)
      return true
    }
    // Settled through a promise chain from the factory's result (not from a callback that
    // calls `resolve`), so a join inside the factory still sees this flight waiting for it
    // in the async stack trace (recursion detection, see single-flight.ts). Once a timer
    // has answered, the outcome is dropped here (a rejection included).
    stored
      .then(
        (v) => {
          finish()
          return v
        },
        (err: unknown) => {
          if (!finish()) return undefined as V
          if (stale === undefined) throw err
          return t.fallBack(stale)
        },
      )
      .then(resolve, reject)
    if (stale !== undefined && t.soft !== Infinity) {
      timers.push(
        t.clock.setTimeout(() => {
          if (!finish()) return
          // The factory goes on and stores its result; callers get the fallback now.
          t.onSoft()
          resolve(stale.value)
        }, t.soft),
      )
    }
    if (t.hard !== Infinity) {
      timers.push(
        t.clock.setTimeout(() => {
          if (!finish()) return
          t.onHard()
          const err = new FactoryTimeoutError(t.key, t.hard)
          t.controller?.abort(err)
          if (stale === undefined) reject(err)
          else resolve(t.fallBack(stale))
        }, t.hard),
      )
    }
  })
}
