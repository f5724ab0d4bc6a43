import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isCacheError } from '../../src/core/errors.js'
import { ManualClock } from '../../src/core/manual-clock.js'
import { storeConformance } from '../../src/store/conformance.js'
import { memoryStore } from '../../src/store/memory-store.js'
import type { StoreLocks } from '../../src/store/types.js'

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b))

const clock = new ManualClock()
storeConformance({
  name: 'memory',
  open: async () => memoryStore({ clock }),
  advance: async (ms) => clock.advance(ms),
  minTtlMs: 1,
})

function locksOf(store: ReturnType<typeof memoryStore>): StoreLocks {
  assert.ok(store.locks !== undefined)
  return store.locks
}

describe('memoryStore specifics', () => {
  test('options are validated and named', () => {
    for (const maxEntries of [0, -1, 1.5, Number.NaN]) {
      assert.throws(
        () => memoryStore({ maxEntries }),
        (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && err.message.includes('memory.maxEntries'),
      )
    }
  })

  test('a TTL or lease that is not > 0 is rejected, and nothing is written', async () => {
    const store = memoryStore({ clock: new ManualClock() })
    for (const ttl of [0, -5, Number.NaN]) {
      await assert.rejects(store.set('k', bytes('v'), ttl), (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS'))
    }
    await assert.rejects(
      store.setMany([
        { key: 'ok', value: bytes('v'), ttlMs: 10 },
        { key: 'bad', value: bytes('v'), ttlMs: 0 },
      ]),
      (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS'),
    )
    assert.equal(await store.get('ok'), undefined, 'a bad batch writes nothing')
    await assert.rejects(locksOf(store).acquire('L', 't', 0), (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS'))
    await store.close()
  })

  test('maxEntries evicts the oldest-inserted entry; an overwrite counts as a new insertion', async () => {
    const store = memoryStore({ clock: new ManualClock(), maxEntries: 3 })
    await store.set('a', bytes('a'), 1000)
    await store.set('b', bytes('b'), 1000)
    await store.set('c', bytes('c'), 1000)
    await store.set('a', bytes('a2'), 1000) // a is now the newest
    await store.set('d', bytes('d'), 1000) // evicts b, the oldest insertion
    assert.deepEqual((await store.getMany(['a', 'b', 'c', 'd'])).map(text), ['a2', undefined, 'c', 'd'])
    await store.get('c') // reads do not refresh: c is still the oldest
    await store.set('e', bytes('e'), 1000)
    assert.deepEqual((await store.getMany(['a', 'c', 'd', 'e'])).map(text), ['a2', undefined, 'd', 'e'])
    await store.close()
  })

  test('writes sweep expired entries, so they do not take room from live ones', async () => {
    const c = new ManualClock()
    const store = memoryStore({ clock: c, maxEntries: 3 })
    await store.set('x', bytes('x'), 10_000)
    await store.set('dead', bytes('d'), 10)
    await store.set('z', bytes('z'), 10_000)
    c.advance(20)
    // Without the sweep, 'w' would make 4 entries and evict 'x' (the oldest); the sweep
    // removes the expired 'dead' first, so 'x' stays.
    await store.set('w', bytes('w'), 10_000)
    assert.deepEqual((await store.getMany(['x', 'z', 'w'])).map(text), ['x', 'z', 'w'])
    await store.close()
  })

  test('operations after close throw ClosedError; close lets pending waiters go', async () => {
    const c = new ManualClock()
    const store = memoryStore({ clock: c })
    const locks = locksOf(store)
    assert.ok((await locks.acquire('L', 'a', 60_000)) !== undefined)
    let woke = false
    const waiting = locks.waitForRelease('L', 60_000).then(() => (woke = true))
    await flush()
    assert.equal(woke, false)
    await store.close()
    await waiting
    assert.equal(woke, true)
    await assert.rejects(store.get('k'), (err: unknown) => isCacheError(err, 'ERR_CLOSED'))
    await assert.rejects(store.set('k', bytes('v'), 10), (err: unknown) => isCacheError(err, 'ERR_CLOSED'))
    await assert.rejects(locks.acquire('L', 'b', 10), (err: unknown) => isCacheError(err, 'ERR_CLOSED'))
    assert.equal(c.pendingTimers, 0, 'no timer left behind')
  })

  test('release wakes every waiter at once, without any time passing', async () => {
    const c = new ManualClock()
    const store = memoryStore({ clock: c })
    const locks = locksOf(store)
    assert.ok((await locks.acquire('L', 'a', 60_000)) !== undefined)
    let woke = 0
    const waits = [1, 2, 3].map(() => locks.waitForRelease('L', 60_000).then(() => woke++))
    await flush()
    assert.equal(woke, 0)
    assert.equal(await locks.release('L', 'a'), true)
    await Promise.all(waits)
    assert.equal(woke, 3)
    assert.equal(c.pendingTimers, 0, 'the waiters cleared their timers')
    await store.close()
  })

  test('a lease running out wakes waiters at its expiry; an extended lease keeps them waiting', async () => {
    const c = new ManualClock()
    const store = memoryStore({ clock: c })
    const locks = locksOf(store)
    assert.ok((await locks.acquire('L', 'a', 100)) !== undefined)
    let woke = false
    const waiting = locks.waitForRelease('L', 60_000).then(() => (woke = true))
    c.advance(50)
    assert.equal(await locks.extend('L', 'a', 100), true) // now expires at 150
    c.advance(60) // 110: past the first lease
    await flush()
    assert.equal(woke, false, 'the extended lease still holds')
    c.advance(40) // 150: the extended lease ends
    await waiting
    assert.equal(woke, true)
    await store.close()
  })

  test('a grant after a fenced write with a made-up high fence still gets a usable fence', async () => {
    const store = memoryStore({ clock: new ManualClock() })
    const locks = locksOf(store)
    assert.equal(await locks.setFenced('K', bytes('v'), 1000, 1_000_000), true)
    const grant = await locks.acquire('K', 'a', 1000)
    assert.ok(grant !== undefined)
    assert.ok(grant.fence > 1_000_000)
    assert.equal(await locks.setFenced('K', bytes('mine'), 1000, grant.fence), true)
    await store.close()
  })

  test("clear('') keeps fence marks and fences: a stale holder still cannot write", async () => {
    const store = memoryStore({ clock: new ManualClock() })
    const locks = locksOf(store)
    const a = await locks.acquire('K', 'a', 1000)
    assert.ok(a !== undefined)
    assert.equal(await locks.release('K', 'a'), true)
    const b = await locks.acquire('K', 'b', 1000)
    assert.ok(b !== undefined)
    assert.equal(await locks.setFenced('K', bytes('b'), 1000, b.fence), true)
    await store.clear('')
    assert.equal(await store.get('K'), undefined)
    assert.equal(await locks.setFenced('K', bytes('stale'), 1000, a.fence), false)
    assert.equal(await locks.release('K', 'b'), true)
    const c = await locks.acquire('K', 'c', 1000)
    assert.ok(c !== undefined && c.fence > b.fence)
    await store.close()
  })

  test('setFenced rejects a fence that is not a finite number', async () => {
    const store = memoryStore({ clock: new ManualClock() })
    for (const fence of [Number.NaN, Infinity]) {
      await assert.rejects(locksOf(store).setFenced('K', bytes('v'), 1000, fence), (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS'))
    }
    assert.equal(await store.get('K'), undefined)
    await store.close()
  })

})
