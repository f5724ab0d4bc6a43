/**
 * The facade with a second tier. Two `Cache` instances over one store stand for two
 * processes (each has its own L1 and tag trie). Time is a ManualClock; the store is the
 * FlakyStore test double, whose health the tests set (real servers: test/store).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type Cache, type CacheErrorEvent, type CacheOptions, createCache, isCacheError, ManualClock } from '../../src/index.js'
import { deferred } from '../../src/testing/index.js'
import { FlakyStore } from '../support/flaky-store.js'
import { gated } from '../support/gated-store.js'
import { memoryStore } from '../../src/store/memory-store.js'
import type { Store, StoreLocks } from '../../src/store/types.js'
import { memoryBus } from '../../src/bus/memory-transport.js'

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** Lets background work (touches, replays) run while the clock moves in small steps. */
async function run(clock: ManualClock, ms: number, step = 10): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(Math.min(step, ms - t))
    await flush()
  }
  await flush()
}

async function settle<T>(clock: ManualClock, p: Promise<T>, maxMs = 60_000, step = 10): Promise<{ value?: T; error?: unknown; elapsed: number }> {
  let out: { value?: T; error?: unknown } | undefined
  p.then(
    (value) => (out = { value }),
    (error: unknown) => (out = { error }),
  )
  const start = clock.now()
  for (let t = 0; t <= maxMs; t += step) {
    await flush()
    if (out !== undefined) return { ...out, elapsed: clock.now() - start }
    clock.advance(step)
  }
  throw new Error(`did not settle within ${maxMs} ms of clock time`)
}

function world(options: CacheOptions = {}) {
  const clock = new ManualClock(1_000_000)
  const store = new FlakyStore(clock)
  const make = <V>(extra: CacheOptions = {}): Cache<V> => createCache<V>({ clock, store, l2: { timeout: '100ms' }, ...options, ...extra })
  return { clock, store, make }
}

function errorsOf(cache: Cache<unknown>): CacheErrorEvent[] {
  const seen: CacheErrorEvent[] = []
  cache.on('error', (e) => seen.push(e))
  return seen
}

describe('tiered reads and writes', () => {
  test('a value computed by one process is read from L2 by another; the factory runs once', async () => {
    const { make } = world()
    const a = make<{ n: number }>()
    const b = make<{ n: number }>()
    let calls = 0
    assert.deepEqual(await a.getOrSet('k', () => ({ n: ++calls })), { n: 1 })
    assert.deepEqual(await b.getOrSet('k', () => ({ n: ++calls })), { n: 1 })
    assert.equal(calls, 1)
    assert.equal(b.stats().l2?.hits, 1)
    // Now in B's L1: no second L2 read.
    assert.deepEqual(await b.get('k'), { n: 1 })
    assert.equal(b.stats().l2?.hits, 1)
  })

  test('types survive L2 exactly with the default codec (Date, Map, Set, BigInt, typed arrays, null)', async () => {
    const { make } = world()
    const value = { at: new Date(1_700_000_000_123), m: new Map([['a', 1n << 70n]]), s: new Set([1, 'x']), bytes: new Uint8Array([1, 2, 255]), none: null, nested: [{ f: 1.5 }] }
    await make().set('k', value)
    assert.deepStrictEqual(await make().get('k'), value)
  })

  test('an entry read from L2 into L1 never outlives its L2 expiry', async () => {
    const { clock, make } = world()
    const a = make<string>()
    const b = make<string>()
    await a.set('k', 'v', { ttl: '10s' })
    clock.advance(6_000)
    assert.equal(await b.get('k'), 'v')
    clock.advance(3_999)
    assert.equal(await b.get('k'), 'v')
    clock.advance(1)
    assert.equal(await b.get('k'), undefined, 'L1 copy ends with the writer\'s deadline')
  })

  test('set, delete and clear reach L2; clear keeps other namespaces', async () => {
    const { store, make } = world()
    const a = make<string>()
    const other = make<string>({ namespace: 'other' })
    await a.set('x', '1')
    await a.set('y', '2')
    await other.set('x', 'o')
    assert.equal(await a.delete('x'), true)
    assert.equal(await make<string>().get('x'), undefined)
    await a.clear()
    assert.equal(await make<string>().get('y'), undefined)
    assert.equal(await make<string>({ namespace: 'other' }).get('x'), 'o')
    assert.deepEqual([...store.data.keys()], ['other:x'])
  })

  test('a stale L2 value within grace is the fallback when the factory fails', async () => {
    const { clock, make } = world()
    await make<string>().getOrSet('k', () => 'old', { ttl: '1s', grace: '1h' })
    clock.advance(5_000)
    const b = make<string>()
    assert.equal(
      await b.getOrSet('k', () => {
        throw new Error('source down')
      }, { ttl: '1s', grace: '1h' }),
      'old',
    )
    assert.equal(b.stats().staleHits, 1)
  })
})

describe('closing: the store closes with the last cache that uses it', () => {
  test('a store given to one cache is closed by its close()', async () => {
    const clock = new ManualClock(0)
    const store = memoryStore({ clock })
    const cache = createCache<string>({ clock, store })
    await cache.set('k', 'v')
    await cache.close()
    await assert.rejects(store.get('cache:k'), (e: unknown) => isCacheError(e, 'ERR_CLOSED'))
  })

  test('a store shared by two caches stays open until both are closed', async () => {
    const clock = new ManualClock(0)
    const store = memoryStore({ clock })
    const a = createCache<string>({ clock, store })
    const b = createCache<string>({ clock, store })
    await a.set('k', 'v')
    await a.close()
    assert.equal(await b.get('k'), 'v')
    await b.close()
    await assert.rejects(store.get('cache:k'), (e: unknown) => isCacheError(e, 'ERR_CLOSED'))
  })

  test('a fill that finishes after close() returns its value and reports nothing (the closed store is not trouble to warn about)', async () => {
    const clock = new ManualClock(0)
    // Under the distributed lock the fill's fenced write and its release reach the closed store.
    const cache = createCache<string>({ clock, store: memoryStore({ clock }), lock: 'distributed' })
    const seen = errorsOf(cache as Cache<unknown>)
    const gate = deferred<string>()
    const many = deferred<Record<string, string>>()
    const one = cache.getOrSet('k', () => gate.promise)
    const batch = cache.getOrSetMany(['a', 'b'], () => many.promise)
    await cache.close()
    gate.resolve('late')
    many.resolve({ a: 'A', b: 'B' })
    assert.equal(await one, 'late')
    assert.deepEqual(await batch, ['A', 'B'])
    assert.deepEqual(seen.map((e) => [e.error.code, e.key]), [], 'no error event for a write the close itself refused')
  })

  test('closeStore: false leaves the store to its owner, whichever cache closes last', async () => {
    const clock = new ManualClock(0)
    const store = memoryStore({ clock })
    const a = createCache<string>({ clock, store, closeStore: false })
    const b = createCache<string>({ clock, store })
    await a.set('k', 'v')
    await b.close()
    await a.close()
    await a.close()
    assert.notEqual(await store.get('cache:k'), undefined)
    await store.close()
    assert.throws(() => createCache({ store: memoryStore(), closeStore: 'yes' as unknown as boolean }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
  })
})

describe('batches and limits', () => {
  test('getOrSetMany of 100 keys: one L2 round trip for the records, one batch factory call for the rest', async () => {
    const { store, make } = world()
    const writer = make<number>()
    for (let i = 0; i < 100; i += 2) await writer.set(`k${i}`, i)
    const reader = make<number>()
    store.calls.length = 0
    const batches: string[][] = []
    const keys = Array.from({ length: 100 }, (_, i) => `k${i}`)
    const values = await reader.getOrSetMany(keys, (missing) => {
      batches.push(missing)
      return new Map(missing.map((k) => [k, -Number(k.slice(1))]))
    })
    assert.deepEqual(values, keys.map((_, i) => (i % 2 === 0 ? i : -i)))
    assert.equal(batches.length, 1)
    assert.equal(batches[0]?.length, 50)
    assert.equal(store.calls.filter((c) => c === 'getMany').length, 1, 'one read for all 100 keys')
    assert.equal(store.calls.filter((c) => c === 'get').length, 0, 'no per-key reads')
    // The computed half was written for the next process.
    assert.equal(await make<number>().get('k1'), -1)
  })

  test('getOrSetMany answers from L2 even when L1 is too small to keep what it read', async () => {
    const { make } = world()
    const writer = make<number>()
    for (let i = 0; i < 20; i++) await writer.set(`k${i}`, i)
    const tiny = make<number>({ memory: { maxEntries: 1, policy: 'lru' } })
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`)
    let asked = 0
    assert.deepEqual(await tiny.getOrSetMany(keys, (missing) => ((asked += missing.length), new Map())), keys.map((_, i) => i))
    assert.equal(asked, 0)
  })

  test('getOrSetMany with repeated keys asks for each once and answers every position', async () => {
    const { make } = world()
    const c = make<string>()
    const asked: string[][] = []
    const out = await c.getOrSetMany(['a', 'b', 'a', 'a'], (missing) => (asked.push(missing), missing.map((k) => k.toUpperCase())))
    assert.deepEqual(out, ['A', 'B', 'A', 'A'])
    assert.deepEqual(asked, [['a', 'b']])
  })

  test('getOrSetMany under the distributed lock still makes one batch call', async () => {
    const clock = new ManualClock(0)
    const store = memoryStore({ clock })
    const c = createCache<number>({ clock, store, lock: 'distributed' })
    const asked: string[][] = []
    const out = await c.getOrSetMany(['x', 'y'], (missing) => (asked.push(missing), missing.map((k) => k.length)))
    assert.deepEqual(out, [1, 1])
    assert.deepEqual(asked, [['x', 'y']])
  })

  test('set of a value over codec.maxValueBytes fails with ERR_VALUE_TOO_LARGE and stores nothing', async () => {
    const { store, make } = world()
    const c = make<string>({ codec: { maxValueBytes: 1024, compression: false } })
    await assert.rejects(c.set('big', 'x'.repeat(5000)), (e: unknown) => isCacheError(e, 'ERR_VALUE_TOO_LARGE'))
    assert.equal(await c.get('big'), undefined)
    assert.equal(store.data.size, 0)
  })

  test('getOrSet of a value L2 refuses answers it, keeps it in L1 only and reports why', async () => {
    const { store, make } = world()
    const c = make<string>({ codec: { maxValueBytes: 1024, compression: false } })
    const errors = errorsOf(c as Cache<unknown>)
    assert.equal(await c.getOrSet('big', () => 'y'.repeat(5000)), 'y'.repeat(5000))
    assert.equal(await c.get('big'), 'y'.repeat(5000))
    assert.equal(store.data.size, 0)
    assert.ok(errors.some((e) => isCacheError(e.error, 'ERR_VALUE_TOO_LARGE') && e.key === 'big'))
  })

  test('a custom serializer returning a string: set fails with ERR_INVALID_OPTIONS naming codec.serializer, and nothing undecodable reaches L2', async () => {
    const { make } = world()
    const serializer = { id: 5, serialize: (v: unknown) => JSON.stringify(v) as never, deserialize: (b: Uint8Array) => JSON.parse(Buffer.from(b).toString()) as unknown }
    const a = make<unknown>({ codec: { serializer } })
    await assert.rejects(a.set('k', { a: 1 }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === 'codec.serializer')
    const b = make<unknown>({ codec: { serializer } })
    const errors: string[] = []
    b.on('error', (e) => errors.push(e.error.code))
    assert.equal(await b.get('k'), undefined)
    assert.deepEqual(errors, [], 'no ERR_DECODE: nothing was written')
  })

  test('a value the serializer cannot represent: set fails with ERR_INVALID_VALUE naming the key', async () => {
    const { make } = world()
    const c = make<unknown>({ codec: { serializer: 'json' } })
    await assert.rejects(c.set('n', { big: 1n }), (e: unknown) => isCacheError(e, 'ERR_INVALID_VALUE') && e.message.includes('"n"'))
  })

  test('a function, anywhere in the value, is refused for L2 (msgpack wrote it as undefined: another process read a decode error or a value without it)', async () => {
    const { make } = world()
    const a = make<unknown>()
    const b = make<unknown>()
    const seenByB = errorsOf(b)
    await assert.rejects(a.set('f', () => 1), (e: unknown) => isCacheError(e, 'ERR_INVALID_VALUE') && e.message.includes('"f"'))
    await assert.rejects(a.set('o', { id: 1, load: () => 2 }), (e: unknown) => isCacheError(e, 'ERR_INVALID_VALUE') && e.message.includes('"o"'))
    // A factory's result that L2 refuses is kept in L1 (the caller gets it) and reported; nothing reaches L2.
    const seenByA = errorsOf(a)
    const got = (await a.getOrSet('g', () => ({ id: 2, load: () => 3 }))) as { load: () => number }
    assert.equal(got.load(), 3)
    assert.deepEqual(seenByA.map((e) => [e.error.code, e.key]), [['ERR_INVALID_VALUE', 'g']])
    assert.equal(await b.getOrSet('g', () => 'computed by b'), 'computed by b')
    assert.equal(await b.get('o'), undefined)
    assert.equal(await b.get('f'), undefined)
    assert.deepEqual(seenByB.map((e) => e.error.code), [], 'no ERR_DECODE: nothing undecodable was written')
  })

  test('a Promise given to set (a forgotten await) is refused for L2, not written as {} for other processes', async () => {
    const { make } = world()
    const a = make<unknown>()
    const b = make<unknown>()
    await assert.rejects(a.set('p', Promise.resolve({ id: 1 })), (e: unknown) => isCacheError(e, 'ERR_INVALID_VALUE') && e.message.includes('"p"'))
    assert.equal(await b.get('p'), undefined)
  })
})

describe('tags across processes (passive resync)', () => {
  test('an invalidation recorded in L2 keeps every other process from serving the entry from L2', async () => {
    const { clock, make } = world()
    const a = make<string>()
    await a.getOrSet('user:1', () => 'alice', { tags: ['org:1:user:1'] })
    // Across processes, order is by hybrid-clock version: one in the same millisecond as the
    // write is a tie (documented: the stale bound is the clock skew).
    clock.advance(1)
    await make<string>().invalidateTags(['org:1'])
    const c = make<string>()
    let calls = 0
    assert.equal(await c.getOrSet('user:1', () => `fresh${++calls}`, { tags: ['org:1:user:1'] }), 'fresh1')
    assert.equal(await c.get('user:1'), 'fresh1')
    // The fresh value was written after C observed the invalidation: others accept it.
    assert.equal(await make<string>().getOrSet('user:1', () => 'never', { tags: ['org:1:user:1'] }), 'fresh1')
  })

  test('an invalidation in the same millisecond as another process\'s write still keeps it from L2 (decision 0399)', async () => {
    const { make } = world() // a frozen ManualClock: every step below is in one millisecond
    const a = make<string>()
    await a.getOrSet('user:1', () => 'alice', { tags: ['org:1:user:1'] })
    await make<string>().invalidateTags(['org:1'])
    const c = make<string>()
    assert.equal(await c.getOrSet('user:1', () => 'fresh', { tags: ['org:1:user:1'] }), 'fresh')
    // Written after C observed the invalidation, in the same millisecond: others accept it.
    assert.equal(await make<string>().getOrSet('user:1', () => 'never', { tags: ['org:1:user:1'] }), 'fresh')
  })

  test('an invalidation of a sibling does not touch the entry', async () => {
    const { make } = world()
    await make<string>().getOrSet('u', () => 'v', { tags: ['org:1:user:1'] })
    await make<string>().invalidateTags(['org:1:user:2', 'org:2'])
    assert.equal(await make<string>().get('u'), 'v')
  })

  test('soft invalidation in L2 makes the entry a fallback, not fresh', async () => {
    const { clock, make } = world()
    await make<string>().getOrSet('u', () => 'old', { tags: ['t:1'], grace: '1h' })
    clock.advance(1)
    await make<string>().invalidateTags(['t:1'], { mode: 'soft' })
    const c = make<string>()
    assert.equal(await c.get('u'), undefined)
    assert.equal(await c.getOrSet('u', () => Promise.reject(new Error('down')), { tags: ['t:1'], grace: '1h' }), 'old')
  })
})

describe('without a bus, L1 trusts an entry at most l2.l1MaxAge (the stale bound)', () => {
  test('a tag another process invalidated stops being served once l1MaxAge has passed, not at the TTL', async () => {
    const { clock, make } = world()
    const a = make<string>({ l2: { timeout: '100ms', l1MaxAge: '2s' } })
    const b = make<string>()
    assert.equal(await a.getOrSet('u', () => 'old', { ttl: '1h', tags: ['org:1'] }), 'old')
    clock.advance(1)
    await b.invalidateTags(['org:1'])
    // Within the window A still serves its L1 copy (nothing told it).
    assert.equal(await a.get('u'), 'old')
    clock.advance(2_000)
    assert.equal(await a.get('u'), undefined, 'past l1MaxAge A reads L2 again and sees the invalidation')
    assert.equal(await a.getOrSet('u', () => 'new', { ttl: '1h', tags: ['org:1'] }), 'new')
  })

  test('the default is 5 s; a set or a delete by another process is seen by then, bare values included', async () => {
    const { clock, make } = world()
    const a = make<string>()
    const b = make<string>()
    assert.equal(await a.getOrSet('k', () => 'v1'), 'v1')
    assert.equal(await a.getOrSet('gone', () => 'g'), 'g')
    await b.set('k', 'v2')
    await b.delete('gone')
    clock.advance(4_999)
    assert.equal(await a.getOrSet('k', () => 'never'), 'v1')
    clock.advance(1)
    assert.equal(await a.getOrSet('k', () => 'never'), 'v2')
    assert.equal(await a.get('gone'), undefined)
    // Re-read from L2, the entry is trusted for another window, then read again.
    const reads = a.stats().l2?.hits ?? 0
    clock.advance(4_000)
    assert.equal(await a.getOrSet('k', () => 'never'), 'v2')
    assert.equal(a.stats().l2?.hits, reads, 'a hit within the window does not touch L2')
  })

  test('an entry never lives in L1 past its own deadline because of the cap, and grace fallbacks still come from L2', async () => {
    const { clock, make } = world()
    const a = make<string>({ l2: { timeout: '100ms', l1MaxAge: '10s' } })
    assert.equal(await a.getOrSet('k', () => 'v', { ttl: '1s', grace: '1h' }), 'v')
    clock.advance(1_000)
    assert.equal(await a.get('k'), undefined)
    clock.advance(20_000)
    // Out of L1 by now (the cap), the stale value is still L2's fallback.
    assert.equal(await a.getOrSet('k', () => Promise.reject(new Error('down')), { ttl: '1s', grace: '1h' }), 'v')
  })

  test('with a bus there is no default cap (the bus bounds staleness); l1MaxAge: Infinity turns it off without one', async () => {
    const clock = new ManualClock(0)
    const store = memoryStore({ clock })
    const bus = memoryBus()
    const a = createCache<string>({ clock, store, bus })
    await a.getOrSet('k', () => 'v', { ttl: '1h' })
    const hits = a.stats().l2?.hits
    clock.advance(60_000)
    assert.equal(await a.get('k'), 'v')
    assert.equal(a.stats().l2?.hits, hits, 'served from L1 a minute later')
    await a.close()
    const store2 = memoryStore({ clock })
    const c = createCache<string>({ clock, store: store2, l2: { l1MaxAge: Infinity } })
    await c.getOrSet('k', () => 'v', { ttl: '1h' })
    clock.advance(60_000)
    assert.equal(await c.get('k'), 'v')
    assert.equal(c.stats().l2?.hits, 0)
    assert.throws(() => createCache({ store: memoryStore(), l2: { l1MaxAge: 0 } }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && e.message.includes('l2.l1MaxAge'))
  })
})

describe('time-to-idle across tiers', () => {
  test('reads keep the L2 entry alive with at most one touch per key per debounce interval', async () => {
    const { clock, store, make } = world()
    const a = make<string>({ l2: { timeout: '100ms', touchInterval: '30s' } })
    await a.getOrSet('k', () => 'v', { ttl: '1h', tti: '10s' })
    store.calls.length = 0
    // Read every second for a minute: L1 keeps it (TTI 10s - 5s debounce = 5s idle in L1 is enough).
    for (let i = 0; i < 60; i++) {
      assert.equal(await a.getOrSet('k', () => 'recomputed', { ttl: '1h', tti: '10s' }), 'v')
      await run(clock, 1_000, 50)
    }
    const touches = store.calls.filter((c) => c === 'touch').length
    assert.ok(touches >= 10 && touches <= 13, `touches: ${touches} (one per 5 s debounce)`)
    assert.equal(a.stats().l2?.timeouts, 0)
    // Another process still finds it in L2.
    assert.equal(await make<string>().get('k'), 'v')
    // Idle: both tiers let it go.
    await run(clock, 11_000, 1_000)
    assert.equal(await make<string>().get('k'), undefined)
    assert.equal(await a.get('k'), undefined)
  })

  test('a full touch queue drops touches and counts them', async () => {
    const { clock, store, make } = world()
    // l1MaxAge off: the touches under test come from L1 hits over 11 s.
    const a = make<string>({ l2: { timeout: '100ms', touchQueue: 1, l1MaxAge: Infinity } })
    // TTI 20 s: a touch at most every 10 s, and L1 lets an entry idle 10 s.
    for (const k of ['a', 'b', 'c']) await a.set(k, k, { tti: '20s' })
    await run(clock, 6_000, 1_000)
    for (const k of ['a', 'b', 'c']) assert.equal(await a.get(k), k)
    await run(clock, 5_000, 1_000)
    store.health = 'hung'
    // Three L1 hits in one burst each want a touch: the queue (size 1) keeps one.
    for (const k of ['a', 'b', 'c']) assert.equal(await a.get(k), k)
    const touches = a.stats().l2?.touches
    assert.equal(touches?.dropped, 2)
    assert.equal(touches?.queued, 1)
  })
})

describe('a failing L2', () => {
  test('a hung store: a getOrSet miss waits at most one L2 read and one L2 write timeout; the factory runs; the error is reported', async () => {
    const { clock, store, make } = world()
    const a = make<string>()
    const errors = errorsOf(a as Cache<unknown>)
    store.health = 'hung'
    const r = await settle(clock, a.getOrSet('k', () => 'computed'))
    assert.equal(r.value, 'computed')
    assert.ok(r.elapsed >= 200 && r.elapsed <= 210, `took ${r.elapsed} ms`)
    assert.ok(errors.some((e) => isCacheError(e.error, 'ERR_STORE_TIMEOUT')))
    // And L1 answers from now on, without touching the store.
    assert.equal((await settle(clock, a.getOrSet('k', () => 'again'))).value, 'computed')
  })

  test('a dead store opens the breaker; callers then never wait; writes land once it returns', async () => {
    const { clock, store, make } = world()
    const a = make<string>({ l2: { timeout: '100ms', retry: { attempts: 0 }, breaker: { openFor: '1s', successThreshold: 1 } } })
    await a.set('gone', 'x')
    store.health = 'down'
    for (let i = 0; i < 5; i++) await settle(clock, a.getOrSet(`k${i}`, () => `v${i}`))
    assert.equal(a.stats().l2?.breaker.state, 'open')
    const r = await settle(clock, a.getOrSet('fast', () => 'f'))
    assert.equal(r.value, 'f')
    assert.equal(r.elapsed, 0)
    await a.delete('gone')
    assert.ok((a.stats().l2?.queued ?? 0) >= 6)
    store.health = 'up'
    await run(clock, 3_000, 100)
    assert.equal(a.stats().l2?.queued, 0)
    const b = make<string>()
    assert.equal(await b.get('k3'), 'v3')
    assert.equal(await b.get('fast'), 'f')
    assert.equal(await b.get('gone'), undefined, 'a delete made while down is not undone by L2')
  })

  test('a record that fails to decode is a counted miss with ERR_DECODE on the error channel', async () => {
    const { store, make } = world()
    const a = make<string>()
    const errors = errorsOf(a as Cache<unknown>)
    store.data.set('cache:k', { value: new Uint8Array([1, 2, 3, 4, 5]), expiresAt: Infinity })
    assert.equal(await a.getOrSet('k', () => 'rebuilt'), 'rebuilt')
    assert.equal(a.stats().l2?.decodeErrors, 1)
    assert.ok(errors.some((e) => isCacheError(e.error, 'ERR_DECODE') && e.key === 'k'))
    assert.equal(await make<string>().get('k'), 'rebuilt', 'the rebuilt value replaced the corrupt record')
  })

  test('a record encrypted under another key is a miss with ERR_DECRYPT, never a wrong value', async () => {
    const { make } = world()
    const k1 = new Uint8Array(32).fill(1)
    const k2 = new Uint8Array(32).fill(2)
    await make<string>({ codec: { encryption: { keys: { a: k1 }, activeKeyId: 'a' } } }).set('k', 'secret')
    const reader = make<string>({ codec: { encryption: { keys: { a: k2 }, activeKeyId: 'a' } } })
    const errors = errorsOf(reader as Cache<unknown>)
    assert.equal(await reader.get('k'), undefined)
    assert.ok(errors.some((e) => isCacheError(e.error, 'ERR_DECRYPT')))
    assert.equal(await make<string>({ codec: { encryption: { keys: { a: k1 }, activeKeyId: 'a' } } }).get('k'), 'secret')
  })

  test('options: distributed lock without a lockable store, bad namespace, codec without store', () => {
    const clock = new ManualClock(0)
    const store = new FlakyStore(clock)
    assert.throws(() => createCache({ clock, store, lock: 'distributed' }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && e.message.includes('"lock"'))
    assert.throws(() => createCache({ clock, lock: 'distributed' }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    assert.throws(() => createCache({ clock, store, namespace: 'a:b' }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && e.message.includes('namespace'))
    assert.throws(() => createCache({ clock, codec: { serializer: 'json' } }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && e.message.includes('codec'))
    assert.throws(() => createCache({ clock, store, l2: { touchInterval: 0 } }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && e.message.includes('l2.touchInterval'))
  })
})

describe('distributed lock (one factory run across processes)', () => {
  function lockWorld(extra: CacheOptions = {}) {
    const clock = new ManualClock(1_000_000)
    const store = memoryStore({ clock })
    const make = <V>(more: CacheOptions = {}): Cache<V> => createCache<V>({ clock, store, lock: 'distributed', ...extra, ...more })
    return { clock, store, make }
  }

  test('concurrent misses in several processes: the lock holder computes, the others are woken and read L2', async () => {
    const { clock, make } = lockWorld()
    const caches = [make<string>(), make<string>(), make<string>(), make<string>()]
    const gate = deferred<string>()
    let calls = 0
    const factory = (): Promise<string> => {
      calls++
      return gate.promise
    }
    const results = caches.flatMap((c) => Array.from({ length: 25 }, () => c.getOrSet('k', factory)))
    await run(clock, 100)
    assert.equal(calls, 1, 'one factory run in the whole cluster')
    gate.resolve('value')
    const r = await settle(clock, Promise.all(results), 1_000)
    assert.deepEqual(new Set(r.value), new Set(['value']))
    assert.equal(calls, 1)
    assert.ok(r.elapsed < 100, `waiters were woken by the release, not by polling (${r.elapsed} ms)`)
    const waits = caches.reduce((n, c) => n + (c.stats().l2?.lock.waits ?? 0), 0)
    assert.ok(waits >= 3, `waits: ${waits}`)
  })

  test('a holder that never finishes: waiters give up after lock.wait and compute without the lock (degrade path)', async () => {
    const { clock, make } = lockWorld({ lock: { mode: 'distributed', wait: '2s', lease: '30s' } })
    const a = make<string>()
    const b = make<string>()
    void a.getOrSet('k', () => new Promise<string>(() => {}))
    await run(clock, 10)
    const r = await settle(clock, b.getOrSet('k', () => 'b computed'), 10_000, 50)
    assert.equal(r.value, 'b computed')
    assert.ok(r.elapsed >= 2_000 && r.elapsed <= 2_500, `waited ${r.elapsed} ms`)
    assert.equal(b.stats().l2?.lock.degraded, 1)
  })

  test('per-call lock timings override the cache defaults', async () => {
    const { clock, make } = lockWorld({ lock: { mode: 'distributed', wait: '30s' } })
    const a = make<string>()
    const b = make<string>()
    void a.getOrSet('k', () => new Promise<string>(() => {}))
    await run(clock, 10)
    const r = await settle(clock, b.getOrSet('k', () => 'mine', { lock: { wait: '500ms' } }), 10_000, 50)
    assert.equal(r.value, 'mine')
    assert.ok(r.elapsed <= 700, `waited ${r.elapsed} ms`)
  })

  test('the lease is extended while a slow factory runs, so no second process starts it', async () => {
    const { clock, make } = lockWorld({ lock: { mode: 'distributed', lease: '1s', wait: '20s' } })
    const a = make<string>()
    const b = make<string>()
    const gate = deferred<string>()
    let calls = 0
    const pa = a.getOrSet('k', () => (calls++, gate.promise))
    await run(clock, 10)
    const pb = b.getOrSet('k', () => (calls++, Promise.resolve('second')))
    await run(clock, 5_000, 50)
    assert.equal(calls, 1, 'the lease (1s) was extended for 5s')
    gate.resolve('first')
    assert.equal(await pa, 'first')
    assert.equal((await settle(clock, pb, 1_000)).value, 'first')
  })

  test('fencing: a holder that paused past its lease cannot overwrite the newer holder\'s value', async () => {
    const { clock, make } = lockWorld({ lock: { mode: 'distributed', lease: '1s', wait: '10s' } })
    const a = make<string>()
    const b = make<string>()
    const paused = deferred<string>()
    const errors = errorsOf(a as Cache<unknown>)
    const pa = a.getOrSet('k', () => paused.promise)
    await run(clock, 10)
    // One clock jump of 1.5 leases with no event-loop turn in between: A's process was
    // frozen, its pending extension could not re-arm, and the lease lapsed.
    clock.advance(1_500)
    const pb = b.getOrSet('k', () => 'newer')
    assert.equal((await settle(clock, pb, 5_000)).value, 'newer')
    // A's process runs again: its next extension finds the lock gone.
    await run(clock, 1_000, 50)
    paused.resolve('older')
    assert.equal(await pa, 'older', 'the paused caller still gets its own result')
    await run(clock, 10)
    assert.equal(await make<string>().get('k'), 'newer', 'L2 keeps the newer holder\'s value')
    assert.equal(a.stats().l2?.fencedRefused, 1)
    assert.ok(errors.some((e) => isCacheError(e.error, 'ERR_LOCK_LOST') && e.key === 'k'), 'A learns it lost the lock')
    assert.equal(await a.get('k'), 'newer', 'the refused write left nothing in A\'s own L1')
    assert.equal(await b.get('k'), 'newer')
  })

  test('a waiter wakes when a paused holder\'s lease runs out (no release), takes the lock, and the holder\'s late write is refused everywhere', async () => {
    const { clock, make } = lockWorld({ lock: { mode: 'distributed', lease: '1s', wait: '5s' } })
    const a = make<string>()
    const b = make<string>()
    const paused = deferred<string>()
    const pa = a.getOrSet('k', () => paused.promise)
    await run(clock, 10)
    const pb = b.getOrSet('k', () => 'newer')
    await run(clock, 10)
    assert.equal(b.stats().l2?.lock.waits, 1, 'B waits for A')
    // A's process freezes (one jump, no turn of its event loop): its lease lapses.
    clock.advance(1_500)
    const r = await settle(clock, pb, 10_000)
    assert.equal(r.value, 'newer')
    assert.equal(b.stats().l2?.lock.degraded, 0, 'B took the lock when the lease ended, not at its wait timeout')
    await run(clock, 1_000, 50)
    paused.resolve('older')
    assert.equal(await pa, 'older')
    await run(clock, 10)
    assert.equal(a.stats().l2?.fencedRefused, 1)
    for (const [name, c] of [['L2', make<string>()], ['A', a], ['B', b]] as const) assert.equal(await c.get('k'), 'newer', `${name} holds the newer value`)
  })

  test('a waiter whose lock.wait runs out writes fenced: the holder (still in its lease) writes later and is refused, and keeps no trace of its value', async () => {
    const { clock, make } = lockWorld({ lock: { mode: 'distributed', lease: '10s', wait: '2s' } })
    const a = make<string>()
    const b = make<string>()
    const errors = errorsOf(a as Cache<unknown>)
    const slow = deferred<string>()
    const pa = a.getOrSet('k', () => slow.promise)
    await run(clock, 10)
    const r = await settle(clock, b.getOrSet('k', () => 'newer'), 10_000, 50)
    assert.equal(r.value, 'newer')
    assert.equal(b.stats().l2?.lock.degraded, 1, 'B gave up waiting and computed without the lock')
    slow.resolve('older')
    assert.equal(await pa, 'older', 'A\'s callers still get A\'s result')
    await run(clock, 10)
    assert.equal(a.stats().l2?.fencedRefused, 1, 'A\'s fenced write came after B\'s and was refused')
    assert.ok(errors.some((e) => isCacheError(e.error, 'ERR_LOCK_LOST') && e.key === 'k'), 'A is told its write was refused')
    for (const [name, c] of [['L2', make<string>()], ['A', a], ['B', b]] as const) assert.equal(await c.get('k'), 'newer', `${name} holds the newer value`)
  })

  test('a waiter that gives up and cannot draw a fence does not write L2 unfenced; a lockable store without drawFence is refused', async () => {
    const clock = new ManualClock(1_000_000)
    const inner = memoryStore({ clock })
    const locks = inner.locks as StoreLocks
    const wrap = (drawFence: StoreLocks['drawFence'] | undefined): Store => ({
      name: 'wrapped',
      get: (k) => inner.get(k),
      getMany: (k) => inner.getMany(k),
      set: (k, v, t) => inner.set(k, v, t),
      setMany: (e) => inner.setMany(e),
      delete: (k) => inner.delete(k),
      deleteMany: (k) => inner.deleteMany(k),
      touch: (k, t) => inner.touch(k, t),
      clear: (p) => inner.clear(p),
      close: () => inner.close(),
      locks: {
        acquire: (k, t, l) => locks.acquire(k, t, l),
        extend: (k, t, l) => locks.extend(k, t, l),
        release: (k, t) => locks.release(k, t),
        setFenced: (k, v, t, f) => locks.setFenced(k, v, t, f),
        setAbove: (k, v, t) => locks.setAbove(k, v, t),
        deleteAbove: (k) => locks.deleteAbove(k),
        waitForRelease: (k, t, s) => locks.waitForRelease(k, t, s),
        ...(drawFence === undefined ? {} : { drawFence }),
      } as StoreLocks,
    })
    assert.throws(
      () => createCache({ clock, store: wrap(undefined), lock: 'distributed' }),
      (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && e.message.includes('drawFence()'),
    )
    const store = wrap(() => Promise.reject(new Error('connection reset')))
    const opts: CacheOptions = { clock, store, lock: { mode: 'distributed', lease: '10s', wait: '1s' } }
    const a = createCache<string>(opts)
    const b = createCache<string>(opts)
    void a.getOrSet('k', () => new Promise<string>(() => {}))
    await run(clock, 10)
    const r = await settle(clock, b.getOrSet('k', () => 'unordered'), 10_000, 50)
    assert.equal(r.value, 'unordered')
    assert.equal(b.stats().l2?.lock.degraded, 1)
    await run(clock, 10)
    assert.equal(await inner.get('cache:k'), undefined, 'nothing reached L2 without a fence')
  })
})

describe('distributed lock: explicit writes and refresh-ahead are ordered after every earlier holder', () => {
  function lockWorld(lock: CacheOptions['lock'] = { mode: 'distributed', lease: '1s', wait: '10s' }) {
    const clock = new ManualClock(1_000_000)
    const inner = memoryStore({ clock })
    let down = false
    const calls: string[] = []
    const store = gated(inner, () => down, calls)
    // No bus here, so L1 would trust an entry only l1MaxAge (5 s); the refresh-ahead cases
    // need B's L1 to keep its entry past its refresh point, as it does with a bus.
    const make = <V>(more: CacheOptions = {}): Cache<V> => createCache<V>({ clock, store, lock, l2: { timeout: '100ms', retry: { attempts: 0 }, l1MaxAge: Infinity }, ...more })
    return { clock, inner, calls, make, setDown: (d: boolean) => (down = d) }
  }

  for (const paused of [false, true]) {
    const when = paused ? 'a holder paused past its lease' : 'a holder still in its lease'
    test(`an explicit set made while ${when} computes is not overwritten by the holder's later write`, async () => {
      const { clock, make } = lockWorld()
      const a = make<string>()
      const b = make<string>()
      const errors = errorsOf(a as Cache<unknown>)
      const slow = deferred<string>()
      const pa = a.getOrSet('k', () => slow.promise)
      await run(clock, 10)
      // Paused: one clock jump with no turn of A's event loop, so its lease lapses.
      if (paused) clock.advance(1_500)
      await b.set('k', 'newer')
      await run(clock, 100)
      slow.resolve('older')
      assert.equal(await pa, 'older', 'A\'s callers still get A\'s result')
      await run(clock, 10)
      assert.equal(a.stats().l2?.fencedRefused, 1, 'A\'s fenced write came after the set and was refused')
      assert.ok(errors.some((e) => isCacheError(e.error, 'ERR_LOCK_LOST') && e.key === 'k'))
      for (const [name, c] of [['L2', make<string>()], ['A', a], ['B', b]] as const) assert.equal(await c.get('k'), 'newer', `${name} holds the set value`)
    })

    test(`a delete made while ${when} computes is not undone: the holder cannot write the key back`, async () => {
      const { clock, make } = lockWorld()
      const a = make<string>()
      const b = make<string>()
      const slow = deferred<string>()
      const pa = a.getOrSet('k', () => slow.promise)
      await run(clock, 10)
      if (paused) clock.advance(1_500)
      await b.delete('k')
      await run(clock, 100)
      slow.resolve('older')
      assert.equal(await pa, 'older')
      await run(clock, 10)
      assert.equal(a.stats().l2?.fencedRefused, 1)
      for (const [name, c] of [['L2', make<string>()], ['A', a], ['B', b]] as const) assert.equal(await c.get('k'), undefined, `${name} does not hold the value computed before the delete`)
    })
  }

  test('refresh-ahead takes the lock: a holder granted before the refresh cannot overwrite the refreshed value', async () => {
    const { clock, inner, make } = lockWorld()
    const a = make<string>()
    const b = make<string>()
    const opts = { ttl: 10_000, refreshAhead: 0.5 }
    assert.equal(await b.getOrSet('k', () => 'v0', opts), 'v0')
    await inner.delete('cache:k') // L2 lost the record (evicted); B's L1 still holds it
    const slow = deferred<string>()
    const pa = a.getOrSet('k', () => slow.promise, opts)
    await run(clock, 10)
    // A freezes past its lease; B's entry passes its refresh point.
    clock.advance(6_000)
    let refreshes = 0
    assert.equal(await b.getOrSet('k', () => (refreshes++, 'refreshed'), opts), 'v0', 'served at once, refreshed in the background')
    await run(clock, 100)
    assert.equal(refreshes, 1)
    slow.resolve('older')
    assert.equal(await pa, 'older')
    await run(clock, 10)
    assert.equal(a.stats().l2?.fencedRefused, 1, 'A\'s write after the refresh was refused')
    assert.equal(await make<string>().get('k'), 'refreshed', 'L2 keeps the refreshed value')
  })

  test('refresh-ahead in two processes past their refresh point: one refresh in the cluster, the other process adopts it', async () => {
    const { clock, make } = lockWorld({ mode: 'distributed', lease: '10s', wait: '10s' })
    const a = make<string>()
    const b = make<string>()
    const opts = { ttl: 10_000, refreshAhead: 0.5 }
    assert.equal(await a.getOrSet('k', () => 'v0', opts), 'v0')
    assert.equal(await b.getOrSet('k', () => 'never', opts), 'v0', 'B read it from L2')
    clock.advance(6_000)
    const gate = deferred<string>()
    let calls = 0
    const factory = (): Promise<string> => (calls++, gate.promise)
    assert.equal(await a.getOrSet('k', factory, opts), 'v0')
    await run(clock, 10)
    assert.equal(await b.getOrSet('k', factory, opts), 'v0')
    await run(clock, 100)
    gate.resolve('v1')
    await run(clock, 100)
    assert.equal(calls, 1, 'B waited for A\'s refresh instead of running its own')
    assert.equal(await b.getOrSet('k', factory, opts), 'v1', 'B adopted the refreshed value')
  })

  test('an explicit set that L2 missed is replayed as a delete that raises the mark: the holder granted before it cannot write its older value', async () => {
    const { clock, make, setDown } = lockWorld({ mode: 'distributed', lease: '10s', wait: '10s' })
    const a = make<string>()
    const b = make<string>()
    const slow = deferred<string>()
    const pa = a.getOrSet('k', () => slow.promise)
    await run(clock, 10)
    setDown(true)
    await b.set('k', 'newer')
    assert.equal(b.stats().l2?.queued, 1, 'queued while L2 refuses connections')
    setDown(false)
    await run(clock, 1_000, 50)
    assert.equal(b.stats().l2?.queued, 0, 'replayed')
    slow.resolve('older')
    assert.equal(await pa, 'older')
    await run(clock, 10)
    assert.equal(a.stats().l2?.fencedRefused, 1, 'the replay raised the mark above A\'s grant')
    assert.equal(await make<string>().get('k'), undefined, 'L2 forgot the key: neither the older value nor one replayed out of order')
    assert.equal(await a.get('k'), undefined)
    assert.equal(await b.get('k'), 'newer', 'B still serves its own set from L1')
  })

  test('a set that L2 missed is not replayed over the value of a holder granted after it', async () => {
    const { clock, make, setDown } = lockWorld()
    const b = make<string>()
    setDown(true)
    await b.set('k', 'b-old')
    assert.equal(b.stats().l2?.queued, 1)
    setDown(false)
    // Before B's queue replays, C computes from the source (after B's set) and writes.
    const c = make<string>()
    assert.equal(await c.getOrSet('k', () => 'c-newer'), 'c-newer')
    await run(clock, 1_000, 50)
    assert.equal(b.stats().l2?.queued, 0, 'replayed')
    const seen = await make<string>().get('k')
    assert.notEqual(seen, 'b-old', 'the set made before C\'s grant does not land over C\'s value')
    assert.equal(seen, undefined, 'the replay forgets the key')
  })

  test('a queued delete is replayed raising the mark: a holder granted before it cannot resurrect the key', async () => {
    const { clock, inner, make, setDown } = lockWorld({ mode: 'distributed', lease: '10s', wait: '10s' })
    const a = make<string>()
    const b = make<string>()
    const slow = deferred<string>()
    const pa = a.getOrSet('k', () => slow.promise)
    await run(clock, 10)
    setDown(true)
    await b.delete('k')
    assert.equal(b.stats().l2?.queued, 1)
    setDown(false)
    await run(clock, 1_000, 50)
    assert.equal(b.stats().l2?.queued, 0)
    slow.resolve('older')
    await pa
    await run(clock, 10)
    assert.equal(await inner.get('cache:k'), undefined)
    assert.equal(a.stats().l2?.fencedRefused, 1)
  })

  test('without distributed locking, explicit writes and deletes are plain store calls (no fence state, no extra round trip)', async () => {
    const { calls, make } = lockWorld({ mode: 'local' })
    const c = make<string>()
    await c.set('k', 'v')
    await c.delete('k')
    assert.deepEqual(calls, ['set', 'delete'])
  })

  test('with distributed locking, an explicit set or delete is one store call', async () => {
    const { calls, make } = lockWorld()
    const c = make<string>()
    await c.set('k', 'v')
    await c.delete('k')
    assert.deepEqual(calls, ['setAbove', 'deleteAbove'])
  })
})

describe('l2.strictWrites', () => {
  test('set rejects with the store error when L2 is down, and L1 does not keep the value it refused', async () => {
    const { clock, store, make } = world()
    const a = make<string>({ l2: { timeout: '100ms', retry: { attempts: 0 }, strictWrites: true } })
    await a.set('k', 'old')
    store.health = 'down'
    const r = await settle(clock, a.set('k', 'new'))
    assert.ok(isCacheError(r.error, 'ERR_STORE_UNAVAILABLE'), `got ${String(r.error)}`)
    store.health = 'up'
    assert.equal(await a.get('k'), 'old', 'the refused value is not served; L2 still holds the old one')
    assert.equal(a.stats().l2?.queued, 0)
  })

  test('a full store: set rejects with ERR_STORE_FULL and the older value stays readable', async () => {
    const { clock, store, make } = world()
    const a = make<string>({ l2: { timeout: '100ms', strictWrites: true } })
    await a.set('k', 'old')
    store.health = 'full'
    const r = await settle(clock, a.set('k', 'new'))
    assert.ok(isCacheError(r.error, 'ERR_STORE_FULL'))
    store.health = 'up'
    const b = make<string>()
    assert.equal(await b.get('k'), 'old')
    assert.equal(await a.get('k'), 'old')
  })

  test('delete and clear reject when L2 is down; invalidateTags still invalidates locally', async () => {
    const { clock, store, make } = world()
    const a = make<string>({ l2: { timeout: '100ms', retry: { attempts: 0 }, strictWrites: true } })
    await a.set('t', 'tagged', { tags: ['org:1'] })
    store.health = 'down'
    assert.ok(isCacheError((await settle(clock, a.delete('x'))).error, 'ERR_STORE_UNAVAILABLE'))
    assert.ok(isCacheError((await settle(clock, a.invalidateTags(['org:1']))).error, 'ERR_STORE_UNAVAILABLE'))
    assert.equal(await a.peek('t'), undefined, 'the local invalidation happened before the L2 write failed')
    assert.ok(isCacheError((await settle(clock, a.clear())).error, 'ERR_STORE_UNAVAILABLE'))
  })

  test('a getOrSet fill never fails because of L2, even with strictWrites', async () => {
    const { clock, store, make } = world()
    const a = make<string>({ l2: { timeout: '100ms', retry: { attempts: 0 }, strictWrites: true } })
    const errors = errorsOf(a as Cache<unknown>)
    store.health = 'down'
    const r = await settle(clock, a.getOrSet('k', () => 'computed'))
    assert.equal(r.value, 'computed')
    assert.ok(errors.some((e) => isCacheError(e.error, 'ERR_STORE_UNAVAILABLE')))
    assert.equal(a.stats().l2?.queued, 0)
  })
})
