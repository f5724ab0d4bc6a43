/**
 * The distributed lock protocol of `lock: 'distributed'` (moved out of cache.ts; the
 * facade supplies what to re-read and what to compute, this file the lock's life cycle).
 *
 * One process in the cluster computes: the lock holder runs the factory and writes with
 * its fence; the others wait to be told the lock was released or its lease ran out (not
 * only by polling), re-read L2, and take their turn at the lock if the value is not there.
 * A waiter whose `lock.wait` runs out (or whose store fails) computes without the lock:
 * the degrade path, counted in `stats().lock.degraded`. It still writes fenced, with a
 * fence drawn before it computes, so a holder that writes later (paused, or just slow) is
 * refused rather than overwriting the newer value; without a fence (the store failed) it
 * does not write L2 at all. Under the lock the result is written before the lock is
 * released (even for the async strategies), so a woken waiter finds it.
 */
import { randomUUID } from 'node:crypto'
import type { Clock, TimerHandle } from '../core/clock.js'
import { type CacheError, LockLostError } from '../core/errors.js'
import type { GuardedStore } from '../resilience/guarded-store.js'
import type { Envelope } from '../tier/envelope.js'

/** One locked computation of a key, as the facade describes it. */
export interface LockedRun<V> {
  readonly key: string
  /** The L2 key of the entry's lock (L2Tier.lockKey). */
  readonly lockKey: string
  /** `lock.lease` in ms: the lease is extended a third of a lease before it ends. */
  readonly lease: number
  /** `lock.wait` in ms: how long a waiter waits before it computes without the lock. */
  readonly wait: number
  /** After a wait: reads L2 again; the entry when it is there, fresh and now held in L1. */
  reread(): Promise<Envelope<V> | undefined>
  /** Runs the factory and stores its result, L2 written under `fence` (false: L2 not written). */
  compute(fence: number | false): Promise<V>
}

export class LockProtocol {
  /** Times a caller waited for another process's lock (`stats().l2.lock.waits`). */
  waits = 0
  /** Times a caller computed without the lock (`stats().l2.lock.degraded`). */
  degraded = 0
  readonly #clock: Clock
  readonly #store: GuardedStore
  readonly #onError: (error: CacheError, key: string) => void
  /** Releases sent and not yet answered (see settled). */
  readonly #releasing = new Set<Promise<void>>()

  constructor(clock: Clock, store: GuardedStore, onError: (error: CacheError, key: string) => void) {
    this.#clock = clock
    this.#store = store
    this.#onError = onError
  }

  async run<V>(r: LockedRun<V>): Promise<V> {
    const store = this.#store
    const token = randomUUID()
    const deadline = this.#clock.now() + r.wait
    /** The store failed to answer `acquire` (down, frozen, breaker open). */
    let unavailable = false
    for (;;) {
      let grant
      try {
        grant = await store.acquire(r.lockKey, token, r.lease)
      } catch {
        unavailable = true
        break
      }
      if (grant !== undefined) return this.#hold(r, token, grant.fence)
      const remaining = deadline - this.#clock.now()
      if (remaining <= 0) break
      this.waits++
      await store.waitForRelease(r.lockKey, remaining)
      const found = await r.reread()
      if (found !== undefined) return found.value
      if (this.#clock.now() >= deadline) break
    }
    this.degraded++
    // Drawn before computing: a holder granted earlier writes below it, any later grant above.
    // A store that just failed to answer would most likely fail this too, after another
    // timeout: compute without a fence at once (so L2 is not written, as after a failed draw).
    let fence: number | false = false
    if (!unavailable) {
      try {
        fence = await store.drawFence(r.lockKey)
      } catch {
        fence = false
      }
    }
    return r.compute(fence)
  }

  /** Computes as the holder: extends the lease while the factory runs, releases it after the write. */
  async #hold<V>(r: LockedRun<V>, token: string, fence: number): Promise<V> {
    const store = this.#store
    let lost = false
    let timer: TimerHandle | undefined
    // Extend the lease while the factory runs, a third of a lease before it ends.
    const extend = (): void => {
      timer = this.#clock.setTimeout(
        () => {
          store.extend(r.lockKey, token, r.lease).then(
            (held) => {
              if (held) extend()
              else if (!lost) {
                lost = true
                this.#onError(new LockLostError(r.key), r.key)
              }
            },
            () => extend(),
          )
        },
        Math.max(1, r.lease / 3),
        { unref: true },
      )
    }
    extend()
    try {
      return await r.compute(fence)
    } finally {
      if (timer !== undefined) this.#clock.clearTimeout(timer)
      timer = undefined
      lost = true
      const released = store.release(r.lockKey, token).then(
        () => {},
        () => {
          // Released by expiry if not now; the failure is reported on the error channel.
        },
      )
      this.#releasing.add(released)
      void released.then(() => this.#releasing.delete(released))
    }
  }

  /**
   * Resolves once every release sent so far has been answered (the caller got its value
   * before its release): `close()` waits for it, so closing right after a miss does not cut
   * a release off (which failed with "Connection is closed" and warned).
   */
  async settled(): Promise<void> {
    await Promise.all(this.#releasing)
  }
}
