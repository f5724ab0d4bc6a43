/**
 * The store-call timeout shared by the guarded L2 and the node's keyspace
 * (core/store-timeout.ts), on a ManualClock: settles as the call does and clears its timer;
 * past the timeout, ERR_STORE_TIMEOUT naming the operation (and the store), the stated
 * timeout and the cause; a synchronous throw is the rejection.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Clock, TimerHandle } from '../../src/core/clock.js'
import { StoreTimeoutError } from '../../src/core/errors.js'
import { ManualClock } from '../../src/core/manual-clock.js'
import { raceStoreTimeout } from '../../src/core/store-timeout.js'

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** A ManualClock that counts the timers still pending. */
function counting(): { clock: Clock & { advance(ms: number): void }; pending: () => number } {
  const inner = new ManualClock(1_000)
  const live = new Set<TimerHandle>()
  const clock = {
    now: () => inner.now(),
    advance: (ms: number) => inner.advance(ms),
    setTimeout(fn: () => void, ms: number): TimerHandle {
      const h: TimerHandle = inner.setTimeout(() => {
        live.delete(h)
        fn()
      }, ms)
      live.add(h)
      return h
    },
    clearTimeout(h: TimerHandle): void {
      live.delete(h)
      inner.clearTimeout(h)
    },
  }
  return { clock, pending: () => live.size }
}

test('a call that settles first: its value or its error, and the timer is cleared', async () => {
  const { clock, pending } = counting()
  assert.equal(await raceStoreTimeout(clock, 100, Promise.resolve(7), 'get'), 7)
  assert.equal(pending(), 0)
  assert.equal(await raceStoreTimeout(clock, 100, () => Promise.resolve('f'), 'get'), 'f', 'a function is started')
  const boom = new Error('boom')
  await assert.rejects(raceStoreTimeout(clock, 100, Promise.reject(boom), 'get'), (err) => err === boom)
  await assert.rejects(
    raceStoreTimeout(clock, 100, () => {
      throw boom
    }, 'get'),
    (err) => err === boom,
    'a synchronous throw is the rejection',
  )
  assert.equal(pending(), 0)
})

test('past the timeout: ERR_STORE_TIMEOUT naming the operation, or store.operation (location); stated timeout and cause', async () => {
  const { clock, pending } = counting()
  const hung = new Promise<never>(() => {})
  const got: { bare?: unknown; named?: unknown; unlocated?: unknown } = {}
  const seen = (): typeof got => got
  raceStoreTimeout(clock, 50, hung, 'scan').catch((err: unknown) => (got.bare = err))
  const cause = new Error('first attempt')
  raceStoreTimeout(clock, 30, () => hung, 'get', { name: 'redis', location: '127.0.0.1:6379' }, 500, cause).catch((err: unknown) => (got.named = err))
  raceStoreTimeout(clock, 50, hung, 'set', { name: 'memory' }).catch((err: unknown) => (got.unlocated = err))
  clock.advance(29)
  await flush()
  assert.ok(got.named === undefined, 'not before its time')
  clock.advance(1)
  await flush()
  const named = seen().named
  assert.ok(named instanceof StoreTimeoutError)
  assert.equal(named.code, 'ERR_STORE_TIMEOUT')
  assert.equal(named.operation, 'redis.get (127.0.0.1:6379)')
  assert.equal(named.timeoutMs, 500, 'the stated timeout, not what was left of it')
  assert.equal(named.cause, cause)
  assert.ok(got.bare === undefined)
  clock.advance(20)
  await flush()
  const { bare, unlocated } = seen()
  assert.ok(bare instanceof StoreTimeoutError)
  assert.equal(bare.operation, 'scan')
  assert.equal(bare.timeoutMs, 50)
  assert.equal(bare.cause, undefined)
  assert.equal(bare.message, 'Store operation scan ran past its timeout of 50 ms')
  assert.ok(unlocated instanceof StoreTimeoutError)
  assert.equal(unlocated.operation, 'memory.set')
  assert.equal(pending(), 0)
})
