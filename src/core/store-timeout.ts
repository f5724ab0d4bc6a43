/**
 * One store call raced against a timer on the injected clock: the timeout of the facade's
 * guarded L2 (resilience/guarded-store.ts) and of the node's keyspace (server/keyspace.ts).
 */
import type { Clock } from './clock.js'
import { StoreTimeoutError } from './errors.js'

/** The store a timeout names: `name.operation`, with ` (location)` when the store says where it lives. */
export interface TimedStore {
  readonly name: string
  readonly location?: string | undefined
}

/**
 * Settles as `call` does if it settles within `timeoutMs` (and clears the timer); otherwise
 * rejects with `StoreTimeoutError` (`ERR_STORE_TIMEOUT`) when the timer fires. The call may
 * still land later: nothing waits for it.
 *
 * - `call`: the store's promise, or a function started once the timer is set (a synchronous
 *   throw becomes the rejection).
 * - The error names `operation`, or `store.name + '.' + operation (location)` when `store` is
 *   given (built only when the timer fires), states `statedMs` as the timeout (a read's later
 *   attempt races what is left of its deadline but names the whole), and carries `cause`.
 *
 * On the L2 read path: no allocation beyond the returned promise and its callbacks.
 */
export function raceStoreTimeout<T>(clock: Clock, timeoutMs: number, call: Promise<T> | (() => Promise<T>), operation: string, store?: TimedStore, statedMs = timeoutMs, cause?: unknown): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimeout(() => {
      const what = store === undefined ? operation : `${store.name}.${operation}${store.location === undefined ? '' : ` (${store.location})`}`
      reject(new StoreTimeoutError(what, statedMs, cause === undefined ? undefined : { cause }))
    }, timeoutMs)
    let pending: Promise<T>
    if (typeof call === 'function') {
      try {
        pending = call()
      } catch (err) {
        pending = Promise.reject(err)
      }
    } else {
      pending = call
    }
    pending.then(
      (v) => {
        clock.clearTimeout(timer)
        resolve(v)
      },
      (err: unknown) => {
        clock.clearTimeout(timer)
        reject(err)
      },
    )
  })
}
