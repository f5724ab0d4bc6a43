import assert from 'node:assert/strict'
import { getEventListeners } from 'node:events'
import { describe, test } from 'node:test'
import { type CacheEvent, type CacheEventType, isCacheError, ManualClock, MemoryCache, type MemoryCacheOptions, SeededRandom } from '../../src/index.js'

function make<V = unknown>(options: Partial<MemoryCacheOptions<string, V>> = {}): { cache: MemoryCache<string, V>; clock: ManualClock; events: Array<[CacheEventType, string]> } {
  const clock = new ManualClock(0)
  const cache = new MemoryCache<string, V>({ maxEntries: 100, clock, random: new SeededRandom(1), ...options })
  const events: Array<[CacheEventType, string]> = []
  for (const type of ['store', 'expire', 'evict', 'erase', 'flush', 'timeout'] as const) cache.on(type, (e) => events.push([e.type, e.key]))
  return { cache, clock, events }
}

describe('options', () => {
  test('an unbounded cache is refused', () => {
    assert.throws(() => new MemoryCache({}), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && /maxEntries/.test(e.message))
  })

  test('each invalid option fails at construction, naming the option', () => {
    const cases: Array<[string, Record<string, unknown>]> = [
      ['maxEntries', { maxEntries: 0 }],
      ['maxEntries', { maxEntries: 1.5 }],
      ['maxEntries', { maxEntries: -3 }],
      ['maxBytes', { maxBytes: 'huge' }],
      ['maxEntrySize', { maxEntries: 5, maxEntrySize: -1 }],
      ['policy', { maxEntries: 5, policy: 'fifo' }],
      ['ttl', { maxEntries: 5, ttl: 'soon' }],
      ['ttl', { maxEntries: 5, ttl: 0 }],
      ['tti', { maxEntries: 5, tti: -1 }],
      ['ttlJitter', { maxEntries: 5, ttlJitter: 2 }],
      ['sweepInterval', { maxEntries: 5, sweepInterval: Infinity }],
      ['waitTimeout', { maxEntries: 5, waitTimeout: 'x' }],
      ['sizeOf', { maxBytes: 100, sizeOf: 42 }],
      ['clock', { maxEntries: 5, clock: {} }],
      ['random', { maxEntries: 5, random: 3 }],
    ]
    for (const [option, opts] of cases) {
      assert.throws(
        () => new MemoryCache(opts as MemoryCacheOptions<string, unknown>),
        (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && e.message.includes(option),
        `${option}: ${JSON.stringify(opts)}`,
      )
    }
  })

  test('bad per-call input gets typed errors and leaves the cache intact', () => {
    const { cache } = make({ maxBytes: 1000 })
    cache.set('keep', 'v', { size: 1 })
    assert.throws(() => cache.set('k', undefined as unknown as string), (e: unknown) => isCacheError(e, 'ERR_INVALID_VALUE'))
    assert.throws(() => cache.set('k', 'v', { ttl: 'soon' as never }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    assert.throws(() => cache.set('k', 'v', { size: -1 }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    assert.throws(() => cache.set('k', 'v', { size: NaN }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    assert.throws(() => cache.on('nope' as CacheEventType, () => {}), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    assert.equal(cache.size, 1)
    assert.equal(cache.get('keep'), 'v')
    assert.equal(cache.bytes, 1)
  })
})

describe('basic operations', () => {
  test('get, peek, has, delete, clear, null values', () => {
    const { cache, events } = make()
    assert.equal(cache.get('a'), undefined)
    assert.equal(cache.set('a', 1), true)
    cache.set('n', null)
    assert.equal(cache.get('a'), 1)
    assert.equal(cache.get('n'), null)
    assert.equal(cache.has('n'), true)
    assert.equal(cache.peek('a'), 1)
    assert.equal(cache.size, 2)
    assert.equal(cache.delete('a'), true)
    assert.equal(cache.delete('a'), false)
    assert.equal(cache.has('a'), false)
    cache.clear()
    assert.equal(cache.size, 0)
    assert.deepEqual(events, [['store', 'a'], ['store', 'n'], ['erase', 'a'], ['flush', 'n']])
    const s = cache.stats()
    assert.equal(s.hits, 2)
    assert.equal(s.misses, 1)
    assert.equal(s.stores, 2)
    assert.equal(s.erased, 1)
    assert.equal(s.flushed, 1)
  })

  test('overwrite reports only store and keeps one entry', () => {
    const { cache, events } = make()
    cache.set('a', 1)
    cache.set('a', 2)
    assert.equal(cache.get('a'), 2)
    assert.equal(cache.size, 1)
    assert.deepEqual(events, [['store', 'a'], ['store', 'a']])
  })

  test('non-string keys work like Map keys', () => {
    const clock = new ManualClock()
    const cache = new MemoryCache<unknown, string>({ maxEntries: 10, clock })
    const obj = {}
    cache.set(1, 'one')
    cache.set(obj, 'obj')
    cache.set(2.5, 'float')
    assert.equal(cache.get(1), 'one')
    assert.equal(cache.get(obj), 'obj')
    assert.equal(cache.get({}), undefined)
    assert.equal(cache.get(2.5), 'float')
  })
})

describe('bounds and eviction', () => {
  test('lru evicts exactly the least recently used; peek does not refresh', () => {
    const { cache, events } = make({ maxEntries: 3, policy: 'lru' })
    cache.set('a', 1)
    cache.set('b', 2)
    cache.set('c', 3)
    cache.get('a') // a is now most recent
    cache.peek('b') // no refresh
    cache.set('d', 4)
    assert.deepEqual([...cache.keys()], ['d', 'a', 'c'])
    assert.deepEqual(events.filter(([t]) => t === 'evict'), [['evict', 'b']])
    cache.set('e', 5)
    assert.deepEqual(events.filter(([t]) => t === 'evict'), [['evict', 'b'], ['evict', 'c']])
    assert.equal(cache.stats().evicted, 2)
  })

  test('maxBytes bounds the sum of sizes; per-entry size and sizeOf', () => {
    const { cache, events } = make<string>({ maxEntries: undefined, maxBytes: 100, policy: 'lru', sizeOf: (v) => v.length })
    cache.set('a', 'x'.repeat(40))
    cache.set('b', 'x'.repeat(40))
    assert.equal(cache.bytes, 80)
    cache.set('c', 'tiny', { size: 30 })
    assert.ok(cache.bytes <= 100)
    assert.equal(cache.bytes, 70)
    assert.equal(cache.has('a'), false)
    assert.deepEqual(events.filter(([t]) => t === 'evict'), [['evict', 'a']])
    // Overwrite with a different size keeps the byte count right.
    cache.set('b', 'x'.repeat(10))
    assert.equal(cache.bytes, 40)
  })

  test('an entry larger than maxEntrySize is refused and erases the old value', () => {
    const { cache, events } = make<string>({ maxBytes: 100, maxEntrySize: 50, sizeOf: (v) => v.length })
    cache.set('a', 'small')
    assert.equal(cache.set('a', 'x'.repeat(60)), false)
    assert.equal(cache.has('a'), false)
    assert.equal(cache.stats().rejected, 1)
    assert.deepEqual(events, [['store', 'a'], ['erase', 'a']])
  })

  test('default size estimate is used with maxBytes and no sizeOf', () => {
    const { cache } = make({ maxEntries: undefined, maxBytes: '1kb' })
    cache.set('s', 'x'.repeat(100))
    assert.ok(cache.bytes >= 200)
    for (let i = 0; i < 100; i++) cache.set(`k${i}`, { id: i, name: 'x'.repeat(50) })
    assert.ok(cache.bytes <= 1024)
    assert.ok(cache.size < 20)
  })

  test('tinylfu keeps frequently read keys through a scan of one-off keys; lru does not', () => {
    const survivors = (policy: 'lru' | 'tinylfu'): number => {
      const cache = new MemoryCache<string, number>({ maxEntries: 200, policy, clock: new ManualClock(), random: new SeededRandom(3) })
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 100; i++) {
          if (cache.get(`hot${i}`) === undefined) cache.set(`hot${i}`, i)
        }
      }
      for (let i = 0; i < 1000; i++) if (cache.get(`scan${i}`) === undefined) cache.set(`scan${i}`, i)
      let n = 0
      for (let i = 0; i < 100; i++) if (cache.has(`hot${i}`)) n++
      assert.ok(cache.size <= 200)
      return n
    }
    assert.ok(survivors('tinylfu') >= 90, `tinylfu kept ${survivors('tinylfu')}`)
    assert.equal(survivors('lru'), 0)
  })

  test('large caches keep their bound under churn for both policies', () => {
    for (const policy of ['lru', 'tinylfu'] as const) {
      const cache = new MemoryCache<number, number>({ maxEntries: 5000, policy, clock: new ManualClock(), random: new SeededRandom(9) })
      const rnd = new SeededRandom(4)
      for (let i = 0; i < 50_000; i++) {
        const k = Math.floor(rnd.next() ** 2 * 20_000)
        if (cache.get(k) === undefined) cache.set(k, k)
        assert.ok(cache.size <= 5000)
      }
      for (const [k, v] of cache.entries()) assert.equal(k, v)
      assert.equal(cache.count(), cache.size)
    }
  })
})

describe('expiry', () => {
  test('ttl: never returned after its deadline, by any read', () => {
    const { cache, clock, events } = make()
    cache.set('a', 1, { ttl: 100 })
    clock.advance(99)
    assert.equal(cache.get('a'), 1)
    assert.equal(cache.remainingTtl('a'), 1)
    clock.advance(1)
    assert.equal(cache.peek('a'), undefined)
    assert.equal(cache.has('a'), false)
    assert.equal(cache.get('a'), undefined)
    assert.deepEqual([...cache.keys()], [])
    assert.deepEqual(events, [['store', 'a'], ['expire', 'a']])
  })

  test('iterators, filter and count skip expired entries', () => {
    const { cache, clock } = make()
    cache.set('short', 1, { ttl: '1s' })
    cache.set('long', 2, { ttl: '1h' })
    clock.advance(1000)
    assert.deepEqual([...cache.keys()], ['long'])
    assert.deepEqual(cache.filter(() => true), [['long', 2]])
    assert.equal(cache.count(), 1)
    assert.deepEqual(cache.dump().map((d) => d.key), ['long'])
  })

  test('very long and infinite TTLs', () => {
    const { cache, clock } = make()
    cache.set('years', 1, { ttl: '99999999s' })
    cache.set('forever', 2, { ttl: Infinity })
    clock.advance(99_999_998_000)
    assert.equal(cache.get('years'), 1)
    clock.advance(2000)
    assert.equal(cache.get('years'), undefined)
    assert.equal(cache.get('forever'), 2)
    assert.equal(cache.remainingTtl('forever'), Infinity)
  })

  test('default ttl from options; a per-entry ttl overrides it', () => {
    const { cache, clock } = make({ ttl: '1m' })
    cache.set('d', 1)
    cache.set('o', 2, { ttl: '2m' })
    clock.advance(60_000)
    assert.equal(cache.get('d'), undefined)
    assert.equal(cache.get('o'), 2)
    cache.set('o', 3, { ttl: Infinity })
    clock.advance(3_600_000)
    assert.equal(cache.get('o'), 3)
  })

  test('tti: get extends, peek does not, the ttl still caps it', () => {
    const { cache, clock } = make()
    cache.set('a', 1, { tti: 100 })
    cache.set('b', 2, { tti: 100 })
    cache.set('c', 3, { tti: 100, ttl: 250 })
    for (let i = 0; i < 5; i++) {
      clock.advance(60)
      assert.equal(cache.get('a'), 1)
      assert.equal(cache.peek('b') !== undefined, i === 0)
      if (clock.now() < 250) assert.equal(cache.get('c'), 3)
    }
    assert.equal(clock.now(), 300)
    assert.equal(cache.get('c'), undefined)
    clock.advance(100)
    assert.equal(cache.get('a'), undefined)
  })

  test('ttlJitter shortens but never lengthens a TTL', () => {
    const { cache } = make({ maxEntries: 1000, ttlJitter: 0.5 })
    for (let i = 0; i < 500; i++) cache.set(`k${i}`, i, { ttl: 1000 })
    const ttls = cache.dump().map((d) => d.remainingTtl)
    assert.ok(ttls.every((t) => t <= 1000 && t >= 500))
    assert.ok(new Set(ttls).size > 100)
  })

  test('the sweep reclaims memory without reads, with one timer, and stops when idle', () => {
    const { cache, clock, events } = make({ maxEntries: 20_000, sweepInterval: '1s' })
    assert.equal(clock.pendingTimers, 0)
    for (let i = 0; i < 10_000; i++) cache.set(`k${i}`, i, { ttl: 1000 + (i % 5000) })
    assert.ok(clock.pendingTimers <= 1, `pending timers ${clock.pendingTimers}`)
    cache.set('forever', 0)
    clock.advance(6000 + 2 * 1000)
    assert.equal(cache.size, 1)
    assert.equal(events.filter(([t]) => t === 'expire').length, 10_000)
    assert.equal(cache.stats().expired, 10_000)
    assert.equal(clock.pendingTimers, 0)
    assert.equal(cache.get('forever'), 0)
  })

  test('the sweep finds idle entries after their extended deadline, not before', () => {
    const { cache, clock } = make({ sweepInterval: 100 })
    cache.set('a', 1, { tti: 150 })
    for (let i = 0; i < 10; i++) {
      clock.advance(100)
      assert.equal(cache.get('a'), 1)
    }
    assert.equal(cache.size, 1)
    clock.advance(150 + 2 * 100)
    assert.equal(cache.size, 0)
  })

  test('an entry removed by eviction, delete or clear after its deadline is reported as expire', () => {
    const { cache, clock, events } = make({ maxEntries: 2, policy: 'lru' })
    cache.set('a', 1, { ttl: 10 })
    cache.set('b', 2, { ttl: 10 })
    clock.advance(10)
    cache.set('c', 3) // evicts a, which had expired
    assert.equal(cache.delete('b'), false)
    cache.set('d', 4, { ttl: 5 })
    clock.advance(5)
    cache.clear()
    assert.deepEqual(events.filter(([t]) => t !== 'store'), [['expire', 'a'], ['expire', 'b'], ['flush', 'c'], ['expire', 'd']])
  })

  test('purgeExpired reclaims now', () => {
    const { cache, clock } = make()
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, i, { ttl: i < 4 ? 10 : 1000 })
    clock.advance(10)
    assert.equal(cache.purgeExpired(), 4)
    assert.equal(cache.size, 6)
  })
})

describe('events', () => {
  test('per-entry onEvent sees store then exactly one removal', () => {
    const { cache, clock } = make({ maxEntries: 2, policy: 'lru' })
    const seen: Array<CacheEvent<string, unknown>> = []
    cache.set('a', 1, { onEvent: (e) => seen.push(e) })
    cache.set('b', 2, { ttl: 5, onEvent: (e) => seen.push(e) })
    clock.advance(5)
    cache.get('b')
    cache.set('c', 3)
    cache.set('d', 4)
    assert.deepEqual(seen.map((e) => [e.type, e.key, e.value]), [['store', 'a', 1], ['store', 'b', 2], ['expire', 'b', 2], ['evict', 'a', 1]])
  })

  test('a throwing listener neither corrupts the cache nor stops other listeners', () => {
    const { cache } = make({ maxEntries: 2, policy: 'lru' })
    const seen: string[] = []
    const warnings: string[] = []
    const onWarning = (w: Error): void => {
      warnings.push(w.message)
    }
    process.on('warning', onWarning)
    cache.on('store', () => {
      throw new Error('listener bug')
    })
    cache.on('store', (e) => seen.push(e.key))
    cache.on('evict', () => {
      throw new Error('evict bug')
    })
    assert.equal(cache.set('a', 1, { onEvent: () => { throw new Error('entry bug') } }), true)
    cache.set('b', 2)
    cache.set('c', 3)
    assert.deepEqual(seen, ['a', 'b', 'c'])
    assert.equal(cache.size, 2)
    assert.deepEqual([...cache.keys()], ['c', 'b'])
    assert.ok(cache.stats().listenerErrors >= 5)
    process.off('warning', onWarning)
  })

  test('unsubscribe stops delivery and is idempotent', () => {
    const { cache } = make()
    const seen: string[] = []
    const off = cache.on('store', (e) => seen.push(e.key))
    cache.set('a', 1)
    off()
    off()
    cache.set('b', 2)
    assert.deepEqual(seen, ['a'])
  })

  test('listeners may change the cache while being notified', () => {
    const { cache } = make({ maxEntries: 3, policy: 'lru' })
    cache.on('evict', (e) => {
      cache.delete(`${e.key}-child`)
    })
    cache.on('flush', () => {
      cache.set('reborn', 1)
    })
    cache.set('a', 1)
    cache.set('a-child', 1)
    cache.set('b', 1)
    cache.set('c', 1) // evicts a, whose listener deletes a-child
    assert.deepEqual([...cache.keys()].sort(), ['b', 'c'])
    cache.clear()
    assert.deepEqual([...cache.keys()], ['reborn'])
  })
})

describe('entries tied to an AbortSignal', () => {
  test('abort erases the entry', () => {
    const { cache, events } = make()
    const ac = new AbortController()
    cache.set('a', 1, { signal: ac.signal })
    ac.abort()
    assert.equal(cache.has('a'), false)
    assert.deepEqual(events, [['store', 'a'], ['erase', 'a']])
  })

  test('no leak when the entry goes first; a later abort does nothing', () => {
    const { cache } = make({ maxEntries: 1 })
    for (const leave of ['delete', 'overwrite', 'evict', 'clear'] as const) {
      const ac = new AbortController()
      cache.set('a', 1, { signal: ac.signal })
      assert.equal(getEventListeners(ac.signal, 'abort').length, 1)
      if (leave === 'delete') cache.delete('a')
      else if (leave === 'overwrite') cache.set('a', 2)
      else if (leave === 'evict') cache.set('b', 2)
      else cache.clear()
      assert.equal(getEventListeners(ac.signal, 'abort').length, 0, leave)
      const before = [...cache.entries()]
      ac.abort()
      assert.deepEqual([...cache.entries()], before, leave)
      cache.clear()
    }
  })

  test('an already aborted signal stores nothing', () => {
    const { cache } = make()
    cache.set('a', 1)
    assert.equal(cache.set('a', 2, { signal: AbortSignal.abort() }), false)
    assert.equal(cache.has('a'), false)
  })
})

describe('waitFor', () => {
  test('resolves at once when live, else when stored', async () => {
    const { cache, clock } = make()
    cache.set('now', 1)
    assert.equal(await cache.waitFor('now'), 1)
    const later = cache.waitFor('later')
    const other = cache.waitFor('later')
    cache.set('later', 2)
    assert.deepEqual(await Promise.all([later, other]), [2, 2])
    assert.equal(clock.pendingTimers, 0)
  })

  test('times out with ERR_WAIT_TIMEOUT and a timeout event (default 5 s)', async () => {
    const { cache, clock, events } = make()
    const p = cache.waitFor('never')
    clock.advance(4999)
    let settled = false
    void p.catch(() => (settled = true))
    await Promise.resolve()
    assert.equal(settled, false)
    clock.advance(1)
    await assert.rejects(p, (e: unknown) => isCacheError(e, 'ERR_WAIT_TIMEOUT'))
    assert.deepEqual(events, [['timeout', 'never']])
    assert.equal(cache.stats().waitTimeouts, 1)
    const q = cache.waitFor('x', { timeout: '1s' })
    clock.advance(1000)
    await assert.rejects(q, (e: unknown) => isCacheError(e, 'ERR_WAIT_TIMEOUT'))
  })

  test('abort rejects with ERR_ABORTED and leaves no timer or listener', async () => {
    const { cache, clock } = make()
    const ac = new AbortController()
    const p = cache.waitFor('k', { signal: ac.signal })
    ac.abort()
    await assert.rejects(p, (e: unknown) => isCacheError(e, 'ERR_ABORTED'))
    assert.equal(clock.pendingTimers, 0)
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0)
    await assert.rejects(cache.waitFor('k', { signal: AbortSignal.abort() }), (e: unknown) => isCacheError(e, 'ERR_ABORTED'))
  })

  test('close rejects pending waits with ERR_CLOSED, clears the cache, refuses writes', async () => {
    const { cache, clock, events } = make()
    cache.set('a', 1, { ttl: 1000 })
    const p = cache.waitFor('k')
    cache.close()
    cache.close()
    await assert.rejects(p, (e: unknown) => isCacheError(e, 'ERR_CLOSED'))
    assert.equal(clock.pendingTimers, 0)
    assert.equal(cache.size, 0)
    assert.ok(events.some(([t, k]) => t === 'flush' && k === 'a'))
    assert.throws(() => cache.set('b', 1), (e: unknown) => isCacheError(e, 'ERR_CLOSED'))
    await assert.rejects(cache.waitFor('b'), (e: unknown) => isCacheError(e, 'ERR_CLOSED'))
  })
})

describe('walking the cache', () => {
  test('keys, values, entries in recency order; filter, filterErase, count, dump', () => {
    const { cache, clock, events } = make({ policy: 'lru', maxBytes: 1000, sizeOf: () => 10 })
    for (let i = 0; i < 6; i++) cache.set(`k${i}`, i, i === 0 ? { ttl: 100 } : undefined)
    cache.get('k2')
    assert.deepEqual([...cache.keys()], ['k2', 'k5', 'k4', 'k3', 'k1', 'k0'])
    assert.deepEqual([...cache.values()], [2, 5, 4, 3, 1, 0])
    assert.deepEqual(cache.filter((_k, v) => (v as number) % 2 === 0), [['k2', 2], ['k4', 4], ['k0', 0]])
    assert.equal(cache.count((k) => k > 'k2'), 3)
    const dump = cache.dump()
    assert.equal(dump.length, 6)
    assert.deepEqual(dump.at(-1), { key: 'k0', value: 0, size: 10, remainingTtl: 100 })
    assert.ok(Object.isFrozen(dump) === false && dump[0].remainingTtl === Infinity)
    clock.advance(10)
    assert.equal(cache.filterErase((_k, v) => (v as number) >= 4), 2)
    assert.deepEqual([...cache.keys()], ['k2', 'k3', 'k1', 'k0'])
    assert.deepEqual(events.filter(([t]) => t === 'erase').map(([, k]) => k).sort(), ['k4', 'k5'])
  })

  test('iterating while deleting is safe', () => {
    const { cache } = make()
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, i)
    const seen: string[] = []
    for (const key of cache.keys()) {
      seen.push(key)
      cache.delete(`k${9 - Number(key.slice(1))}`)
    }
    assert.equal(seen.length, 5)
    assert.equal(cache.size, 5)
  })

  test('mutating a dump does not change the cache', () => {
    const { cache } = make()
    cache.set('a', 1)
    const d = cache.dump() as Array<{ key: string; value: unknown }>
    d[0].key = 'zzz'
    d.length = 0
    assert.deepEqual([...cache.keys()], ['a'])
  })
})
