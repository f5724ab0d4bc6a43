/**
 * One bounded wait for the broker transports (NATS, AMQP): an operation that must settle
 * within a deadline measured on the injected `Clock`, so that nothing hangs on a silent
 * broker and unit tests can drive the deadline with a `ManualClock`.
 */
import type { Clock } from '../core/clock.js'

/**
 * Settles as `promise` does, or rejects with `onTimeout()` once `timeoutMs` has passed
 * (built then, so it can say what the link knows at that moment). A rejection of `promise`
 * is mapped through `onError` (the transport's typed error, with the failure as cause).
 */
export function bounded(clock: Clock, promise: Promise<void>, timeoutMs: number, onTimeout: () => Error, onError: (err: unknown) => Error): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = clock.setTimeout(() => reject(onTimeout()), timeoutMs)
    promise.then(
      () => {
        clock.clearTimeout(timer)
        resolve()
      },
      (err: unknown) => {
        clock.clearTimeout(timer)
        reject(onError(err))
      },
    )
  })
}
