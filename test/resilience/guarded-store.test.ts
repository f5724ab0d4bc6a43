import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { InvalidKeyError, isCacheError } from '../../src/core/errors.js'
import { ManualClock } from '../../src/core/manual-clock.js'
import { SeededRandom } from '../../src/core/random.js'
import { CircuitBreaker } from '../../src/resilience/circuit-breaker.js'
import { GuardedStore } from '../../src/resilience/guarded-store.js'
import { FlakyStore } from '../support/flaky-store.js'
import { gated } from '../support/gated-store.js'
import { memoryStore } from '../../src/store/memory-store.js'
import type { StoreLocks } from '../../src/store/types.js'

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b))

/** Settles a promise while advancing the clock in small steps (timers fire, no sleeping). */
async function settle<T>(clock: ManualClock, p: Promise<T>, stepMs = 10, maxMs = 60_000): Promise<{ value?: T; error?: unknown; elapsed: number }> {
  let out: { value?: T; error?: unknown } | undefined
  p.then(
    (value) => (out = { value }),
    (error: unknown) => (out = { error }),
  )
  const start = clock.now()
  for (let t = 0; t <= maxMs; t += stepMs) {
    await flush()
    if (out !== undefined) return { ...out, elapsed: clock.now() - start }
    clock.advance(stepMs)
  }
  throw new Error(`did not settle within ${maxMs} ms of clock time`)
}

function setup(options: ConstructorParameters<typeof GuardedStore>[3] = {}) {
  const clock = new ManualClock(0)
  const raw = new FlakyStore(clock)
  const store = new GuardedStore(raw, clock, new SeededRandom(7), { timeout: '100ms', ...options })
  const errors: string[] = []
  store.onError = (e) => errors.push(e.code)
  return { clock, raw, store, errors }
}

describe('CircuitBreaker', () => {
  test('opens after 5 consecutive failures, probes after 30s, closes after 3 successes', () => {
    const clock = new ManualClock(0)
    const b = new CircuitBreaker(clock)
    for (let i = 0; i < 4; i++) {
      assert.ok(b.tryAcquire())
      b.failure()
    }
    assert.equal(b.state, 'closed')
    b.success() // a success resets the consecutive count
    for (let i = 0; i < 4; i++) b.failure()
    assert.equal(b.state, 'closed')
    b.failure()
    assert.equal(b.state, 'open')
    assert.equal(b.tryAcquire(), false)
    clock.advance(29_999)
    assert.equal(b.tryAcquire(), false)
    clock.advance(1)
    assert.equal(b.state, 'half-open')
    assert.equal(b.tryAcquire(), true)
    assert.equal(b.tryAcquire(), false, 'one probe at a time')
    b.success()
    for (let i = 0; i < 2; i++) {
      assert.ok(b.tryAcquire())
      b.success()
    }
    assert.equal(b.state, 'closed')
    assert.deepEqual(b.stats(), { state: 'closed', opened: 1, rejected: 3 })
  })

  test('a failed probe opens the circuit again for a full period', () => {
    const clock = new ManualClock(0)
    const b = new CircuitBreaker(clock, { failureThreshold: 1, openFor: '1s' })
    b.failure()
    clock.advance(1000)
    assert.ok(b.tryAcquire())
    b.failure()
    assert.equal(b.state, 'open')
    clock.advance(999)
    assert.equal(b.state, 'open')
    clock.advance(1)
    assert.equal(b.state, 'half-open')
  })

  test('invalid options name the option', () => {
    assert.throws(() => new CircuitBreaker(new ManualClock(), { failureThreshold: 0 }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && e.message.includes('breaker.failureThreshold'))
    assert.throws(() => new CircuitBreaker(new ManualClock(), { openFor: "soon" as "1s" }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && e.message.includes('breaker.openFor'))
  })
})

describe('GuardedStore', () => {
  test('a hung store: every call gives up at its timeout with ERR_STORE_TIMEOUT', async () => {
    const { clock, raw, store, errors } = setup()
    raw.health = 'hung'
    const r = await settle(clock, store.get('k'))
    assert.ok(isCacheError(r.error, 'ERR_STORE_TIMEOUT'))
    assert.ok(r.elapsed >= 100 && r.elapsed <= 110, `gave up after ${r.elapsed} ms`)
    assert.equal(raw.calls.filter((c) => c === 'get').length, 1, 'a timeout is not retried')
    // Writes never reject: they are queued.
    const w = await settle(clock, store.set('k', bytes('v'), 60_000))
    assert.equal(w.error, undefined)
    assert.equal(store.stats().queued, 1)
    assert.deepEqual(errors, ['ERR_STORE_TIMEOUT', 'ERR_STORE_TIMEOUT'])
  })

  test('reads retry a refused connection with backoff, then fail with ERR_STORE_UNAVAILABLE', async () => {
    const { clock, raw, store } = setup({ retry: { attempts: 2, baseDelay: '20ms', maxDelay: '200ms' } })
    raw.health = 'down'
    const r = await settle(clock, store.get('k'), 1)
    assert.ok(isCacheError(r.error, 'ERR_STORE_UNAVAILABLE'))
    assert.ok(r.error instanceof Error && r.error.cause instanceof Error && r.error.cause.message.includes('ECONNREFUSED'))
    assert.equal(raw.calls.length, 3)
    assert.equal(store.stats().retries, 2)
    assert.ok(r.elapsed <= 20 + 40, `backoff stays within the jittered bound, took ${r.elapsed} ms`)
  })

  test('a read that keeps failing slowly (not by timeout) gives up at one timeout overall, retries included', async () => {
    // Like ioredis with a killed server: each command fails after a reconnect attempt, not
    // at once and not by timing out. Three attempts of 80 ms must not add up to 240 ms.
    const { clock, raw, store, errors } = setup({ retry: { attempts: 2, baseDelay: '20ms', maxDelay: '200ms' } })
    raw.get = () => new Promise((_, reject) => clock.setTimeout(() => reject(new Error('Reached the max retries per request limit')), 80))
    const r = await settle(clock, store.get('k'), 1)
    assert.ok(r.elapsed <= 100, `the read answered after ${r.elapsed} ms, past its timeout of 100 ms`)
    assert.ok(isCacheError(r.error, 'ERR_STORE_TIMEOUT') || isCacheError(r.error, 'ERR_STORE_UNAVAILABLE'), String(r.error))
    // The caller learns why: the failure that started the retries is the cause.
    const causes: string[] = []
    for (let e: unknown = r.error; e instanceof Error; e = e.cause) causes.push(e.message)
    assert.ok(causes.some((m) => m.includes('max retries')), causes.join(' <- '))
    assert.ok(errors.length >= 1)
    // getMany is bounded the same way.
    raw.getMany = () => new Promise((_, reject) => clock.setTimeout(() => reject(new Error('Reached the max retries per request limit')), 80))
    const m = await settle(clock, store.getMany(['a', 'b']), 1)
    assert.ok(m.error !== undefined && m.elapsed <= 100, `getMany answered after ${m.elapsed} ms`)
  })

  test('a retry that succeeds answers the read', async () => {
    const { clock, raw, store } = setup()
    await store.set('k', bytes('v'), 60_000)
    raw.health = 'down'
    const p = store.get('k')
    await flush()
    raw.health = 'up'
    const r = await settle(clock, p, 1)
    assert.equal(text(r.value as Uint8Array), 'v')
  })

  test('the breaker opens after 5 failures; calls then fail at once without touching the store', async () => {
    const { clock, raw, store } = setup({ retry: { attempts: 0 } })
    raw.health = 'down'
    for (let i = 0; i < 5; i++) await settle(clock, store.get('k'))
    assert.equal(store.stats().breaker.state, 'open')
    const before = raw.calls.length
    const r = await settle(clock, store.get('k'))
    assert.ok(isCacheError(r.error, 'ERR_STORE_UNAVAILABLE'))
    assert.equal(r.elapsed, 0)
    assert.equal(raw.calls.length, before)
    // The refusal says why the circuit opened: the last failure, message and cause.
    assert.match((r.error as Error).message, /circuit open; last failure: .*ECONNREFUSED/)
    assert.ok(isCacheError((r.error as Error).cause, 'ERR_STORE_UNAVAILABLE'))
  })

  test('writes and deletes made while down are replayed in order once the store is back; newest wins per key', async () => {
    const { clock, raw, store } = setup({ retry: { attempts: 0 }, breaker: { openFor: '1s', successThreshold: 1 } })
    await store.set('a', bytes('a0'), 60_000)
    await store.set('gone', bytes('x'), 60_000)
    raw.health = 'down'
    await settle(clock, store.set('a', bytes('a1'), 60_000))
    await settle(clock, store.set('a', bytes('a2'), 60_000))
    await settle(clock, store.delete('gone'))
    await settle(clock, store.set('b', bytes('b1'), 60_000))
    assert.equal(store.stats().queued, 3, 'one slot per key')
    // Reads of queued keys are answered from the queue: a deleted value is never read back.
    assert.equal(text(await store.get('a')), 'a2')
    assert.equal(await store.get('gone'), undefined)
    raw.health = 'up'
    for (let i = 0; i < 200 && store.stats().queued > 0; i++) {
      clock.advance(50)
      await flush()
    }
    assert.equal(store.stats().queued, 0)
    assert.equal(text(raw.data.get('a')?.value), 'a2')
    assert.equal(raw.data.has('gone'), false)
    assert.equal(text(raw.data.get('b')?.value), 'b1')
    assert.equal(store.stats().replayed, 3)
  })

  test('a queued clear drops queued writes under its prefix and is replayed before later writes', async () => {
    const { clock, raw, store } = setup({ retry: { attempts: 0 } })
    await store.set('ns:old', bytes('o'), 60_000)
    await store.set('other', bytes('keep'), 60_000)
    raw.health = 'down'
    await settle(clock, store.set('ns:x', bytes('x'), 60_000))
    await settle(clock, store.clear('ns:'))
    await settle(clock, store.set('ns:y', bytes('y'), 60_000))
    assert.equal(store.stats().queued, 2)
    assert.equal(await store.get('ns:old'), undefined, 'a pending clear hides what it will remove')
    raw.health = 'up'
    for (let i = 0; i < 2000 && store.stats().queued > 0; i++) {
      clock.advance(50)
      await flush()
    }
    assert.equal(store.stats().queued, 0)
    assert.deepEqual([...raw.data.keys()].sort(), ['ns:y', 'other'])
  })

  test('a full write queue drops the oldest operation and counts it', async () => {
    const { clock, raw, store } = setup({ retry: { attempts: 0 }, writeQueue: 2 })
    raw.health = 'down'
    for (const k of ['a', 'b', 'c']) await settle(clock, store.set(k, bytes(k), 60_000))
    const s = store.stats()
    assert.equal(s.queued, 2)
    assert.equal(s.queueDropped, 1)
  })

  test('a queued write that expired before replay deletes instead of writing', async () => {
    const { clock, raw, store } = setup({ retry: { attempts: 0 } })
    await store.set('k', bytes('old'), 60_000)
    raw.health = 'down'
    await settle(clock, store.set('k', bytes('new'), 1_000))
    clock.advance(2_000)
    assert.equal(await store.get('k'), undefined)
    raw.health = 'up'
    for (let i = 0; i < 2000 && store.stats().queued > 0; i++) {
      clock.advance(50)
      await flush()
    }
    assert.equal(raw.data.has('k'), false)
  })

  test('a full store refuses writes: no breaker trip, nothing queued, the older value deleted, reads unaffected', async () => {
    const { clock, raw, store, errors } = setup({ retry: { attempts: 2 } })
    await store.set('k', bytes('old'), 60_000)
    raw.health = 'full'
    for (let i = 0; i < 10; i++) await settle(clock, store.set(`n${i}`, bytes('v'), 60_000))
    await settle(clock, store.set('k', bytes('new'), 60_000))
    const s = store.stats()
    assert.equal(s.breaker.state, 'closed', 'a refusal is an answer, not a failure')
    assert.equal(s.failures, 0)
    assert.equal(s.queued, 0, 'a refused write is never queued')
    assert.equal(s.refused, 11)
    assert.equal(errors.filter((c) => c === 'ERR_STORE_FULL').length, 11, 'each refusal is reported')
    assert.equal(raw.data.has('k'), false, 'the older value does not survive the refused overwrite')
    assert.equal(await store.get('k'), undefined)
    // Writes go direct again as soon as the store has room.
    raw.health = 'up'
    await settle(clock, store.set('k', bytes('newer'), 60_000))
    assert.equal(text(raw.data.get('k')?.value), 'newer')
  })

  test('a refused write that keeps on refusal (tag versions) leaves the older value in place', async () => {
    const { clock, raw, store } = setup()
    await store.set('v', bytes('1'), Infinity, true)
    raw.health = 'full'
    await settle(clock, store.set('v', bytes('2'), Infinity, true))
    assert.equal(text(raw.data.get('v')?.value), '1', 'an older version beats none')
    assert.equal(store.stats().refused, 1)
    assert.equal(store.stats().queued, 0)
  })

  test('a refused read is not retried and does not count against the breaker', async () => {
    const { clock, raw, store } = setup({ retry: { attempts: 3 } })
    raw.get = () => Promise.reject(new InvalidKeyError('bad key'))
    for (let i = 0; i < 8; i++) {
      const r = await settle(clock, store.get('k'))
      assert.ok(isCacheError(r.error, 'ERR_INVALID_KEY'))
      assert.equal(r.elapsed, 0, 'no backoff: not retried')
    }
    assert.equal(store.stats().retries, 0)
    assert.equal(store.stats().breaker.state, 'closed')
  })

  test('a write that is refused during replay becomes a delete in its place; later writes still land', async () => {
    const { clock, raw, store } = setup({ retry: { attempts: 0 }, breaker: { openFor: '1s', successThreshold: 1 } })
    await store.set('k', bytes('old'), 60_000)
    raw.health = 'down'
    await settle(clock, store.set('k', bytes('new'), 60_000))
    await settle(clock, store.delete('other'))
    assert.equal(store.stats().queued, 2)
    raw.health = 'full'
    for (let i = 0; i < 2000 && store.stats().queued > 0; i++) {
      clock.advance(50)
      await flush()
    }
    assert.equal(store.stats().queued, 0, 'the queue drained: a refusal does not block it')
    assert.equal(raw.data.has('k'), false, 'the refused write deleted the older value')
    assert.equal(store.stats().refused, 1)
  })

  test('invalid options name the option', () => {
    const clock = new ManualClock(0)
    const raw = new FlakyStore(clock)
    const bad = (o: ConstructorParameters<typeof GuardedStore>[3], name: string): void =>
      assert.throws(() => new GuardedStore(raw, clock, new SeededRandom(1), o), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && e.message.includes(name))
    bad({ timeout: 0 }, 'l2.timeout')
    bad({ retry: { attempts: -1 } }, 'l2.retry.attempts')
    bad({ writeQueue: 1.5 }, 'l2.writeQueue')
    bad({ breaker: { successThreshold: 0 } }, 'l2.breaker.successThreshold')
  })

  test('strictWrites must be a boolean: a string such as "true" is refused, not read as false', () => {
    const clock = new ManualClock(0)
    const raw = new FlakyStore(clock)
    for (const strictWrites of ['true', 'yes', 1, null]) {
      assert.throws(
        () => new GuardedStore(raw, clock, new SeededRandom(1), { strictWrites: strictWrites as never }),
        (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && e.message.includes('l2.strictWrites'),
        JSON.stringify(strictWrites),
      )
    }
    assert.equal(new GuardedStore(raw, clock, new SeededRandom(1), { strictWrites: true }).strictWrites, true)
    assert.equal(new GuardedStore(raw, clock, new SeededRandom(1), { strictWrites: false }).strictWrites, false)
    assert.equal(new GuardedStore(raw, clock, new SeededRandom(1), {}).strictWrites, false)
  })
})

describe('GuardedStore with strictWrites', () => {
  test('a write to a failing store rejects with ERR_STORE_UNAVAILABLE and nothing is queued', async () => {
    const { clock, raw, store } = setup({ strictWrites: true })
    raw.health = 'down'
    const r = await settle(clock, store.set('k', bytes('v'), 60_000))
    assert.ok(isCacheError(r.error) && r.error.code === 'ERR_STORE_UNAVAILABLE', `got ${String(r.error)}`)
    const d = await settle(clock, store.delete('k'))
    assert.ok(isCacheError(d.error) && d.error.code === 'ERR_STORE_UNAVAILABLE')
    const c = await settle(clock, store.clear(''))
    assert.ok(isCacheError(c.error) && c.error.code === 'ERR_STORE_UNAVAILABLE')
    assert.equal(store.stats().queued, 0, 'a strict store never queues')
    // Once the store is back, nothing old is replayed over newer data.
    raw.health = 'up'
    await store.set('k', bytes('new'), 60_000)
    clock.advance(60_000)
    await flush()
    assert.equal(text(raw.data.get('k')?.value), 'new')
  })

  test('a hung store: the write rejects with ERR_STORE_TIMEOUT within the timeout', async () => {
    const { clock, raw, store } = setup({ strictWrites: true })
    raw.health = 'hung'
    const r = await settle(clock, store.set('k', bytes('v'), 60_000))
    assert.ok(isCacheError(r.error) && r.error.code === 'ERR_STORE_TIMEOUT')
    assert.ok(r.elapsed <= 110, `settled after ${r.elapsed} ms`)
    assert.equal(store.stats().queued, 0)
  })

  test('a refusal (full) rejects with ERR_STORE_FULL and keeps the older value instead of deleting it', async () => {
    const { clock, raw, store } = setup({ strictWrites: true })
    await store.set('k', bytes('old'), 60_000)
    raw.health = 'full'
    const r = await settle(clock, store.set('k', bytes('new'), 60_000))
    assert.ok(isCacheError(r.error) && r.error.code === 'ERR_STORE_FULL')
    assert.equal(text(raw.data.get('k')?.value), 'old')
    assert.equal(store.breaker.state, 'closed', 'a refusal is not a failure')
    assert.equal(store.stats().queued, 0)
  })

  test('strictWrites off (the default): the same failure is queued and the call resolves', async () => {
    const { clock, raw, store } = setup()
    raw.health = 'down'
    const r = await settle(clock, store.set('k', bytes('v'), 60_000))
    assert.equal(r.error, undefined)
    assert.equal(store.stats().queued, 1)
  })
})

describe('GuardedStore ordered writes (setAbove / deleteAbove, for lock: distributed)', () => {
  function ordered() {
    const clock = new ManualClock(0)
    const inner = memoryStore({ clock })
    let down = false
    const store = new GuardedStore(gated(inner, () => down), clock, new SeededRandom(7), { timeout: '100ms', retry: { attempts: 0 } })
    return { clock, inner, locks: inner.locks as StoreLocks, store, setDown: (d: boolean) => (down = d) }
  }

  test('a setAbove that fails is queued as a deleteAbove: read back as absent, replayed as a delete that refuses earlier holders', async () => {
    const { clock, inner, locks, store, setDown } = ordered()
    const holder = await locks.acquire('k', 'tok', 60_000)
    assert.ok(holder !== undefined)
    await inner.set('k', bytes('before'), 60_000)
    setDown(true)
    await store.setAbove('k', bytes('explicit'), 60_000)
    assert.equal(store.stats().queued, 1)
    setDown(false)
    assert.equal(await store.get('k'), undefined, 'the queue answers: forgotten, not the older value')
    await settle(clock, (async () => {
      while (store.stats().queued > 0) await new Promise((r) => setImmediate(r))
    })())
    assert.equal(await inner.get('k'), undefined, 'replayed as a delete, not as the value')
    assert.equal(await locks.setFenced('k', bytes('stale'), 60_000, holder.fence), false, 'the replay raised the mark above the earlier holder')
  })

  test('a queued clear of its prefix keeps a queued deleteAbove (a clear raises no mark)', async () => {
    const { clock, inner, locks, store, setDown } = ordered()
    const holder = await locks.acquire('p:k', 'tok', 60_000)
    assert.ok(holder !== undefined)
    setDown(true)
    await store.deleteAbove('p:k')
    await store.clear('p:')
    assert.equal(store.stats().queued, 2)
    setDown(false)
    await settle(clock, (async () => {
      while (store.stats().queued > 0) await new Promise((r) => setImmediate(r))
    })())
    assert.equal(await locks.setFenced('p:k', bytes('stale'), 60_000, holder.fence), false)
    assert.equal(await inner.get('p:k'), undefined)
  })

  test('ordered writes go direct past queued operations on other keys, and queue behind one on their own key', async () => {
    const { store, inner, setDown } = ordered()
    setDown(true)
    await store.set('other', bytes('x'), 60_000)
    await store.setAbove('k', bytes('queued'), 60_000)
    assert.equal(store.stats().queued, 2)
    setDown(false)
    await store.setAbove('k2', bytes('direct'), 60_000)
    assert.equal(text(await inner.get('k2')), 'direct', 'no queued operation concerns k2')
    await store.setAbove('k', bytes('later'), 60_000)
    assert.equal(await inner.get('k'), undefined, 'k has a queued operation: this one joins it')
    assert.equal(store.stats().queued, 2)
  })
})

describe('GuardedStore scan', () => {
  test('forwards scan pages; a failing store rejects through the breaker like a read; a store that cannot scan says so', async () => {
    const { clock, raw, store } = setup({ retry: { attempts: 0 } })
    assert.equal(store.canScan, true)
    await raw.setMany(['p:1', 'p:2', 'p:3', 'q:1'].map((key) => ({ key, value: bytes('v'), ttlMs: 60_000 })))
    const first = await store.scan({ prefix: 'p:', limit: 2 })
    assert.deepEqual(first.keys, ['p:1', 'p:2'])
    const second = await store.scan({ prefix: 'p:', limit: 2, cursor: first.cursor })
    assert.deepEqual(second, { keys: ['p:3'], cursor: undefined })
    raw.health = 'down'
    const failed = await settle(clock, store.scan({ prefix: 'p:' }))
    assert.ok(isCacheError(failed.error, 'ERR_STORE_UNAVAILABLE'), String(failed.error))
    raw.health = 'hung'
    const hung = await settle(clock, store.scan({ prefix: 'p:' }))
    assert.ok(isCacheError(hung.error, 'ERR_STORE_TIMEOUT'), String(hung.error))
    const plain = new GuardedStore({ ...raw, name: 'noscan', scan: undefined, get: (k: string) => raw.get(k) } as unknown as FlakyStore, clock, new SeededRandom(1))
    assert.equal(plain.canScan, false)
    await assert.rejects(plain.scan(), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
  })
})
