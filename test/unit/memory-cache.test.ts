/**
 * MemoryCache (L1 engine), one focused test per behaviour. Time is a ManualClock: no test
 * sleeps, none depends on wall-clock timing.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { getEventListeners } from 'node:events'
import { describe, test } from 'node:test'
import {
  type CacheEvent,
  type CacheEventType,
  CacheError,
  InvalidOptionsError,
  isCacheError,
  ManualClock,
  MemoryCache,
  type MemoryCacheOptions,
  type Random,
  SeededRandom,
} from '../../src/index.js'
import { track } from '../../src/testing/index.js'
import { createSystemClock, SystemClock } from '../../src/core/system-clock.js'

const ALL_TYPES: readonly CacheEventType[] = ['store', 'expire', 'evict', 'erase', 'flush', 'timeout']

type Logged<V> = [CacheEventType, string, V | undefined]

interface Fixture<V> {
  cache: MemoryCache<string, V>
  clock: ManualClock
  /** Every event of every type, in order, as [type, key, value]. */
  events: Array<Logged<V>>
  /** Events other than `store`. */
  removals: () => Array<Logged<V>>
}

/** A cache on a ManualClock at t=0 with a listener on every event type. Bound: 100 entries unless given. */
function setup<V = unknown>(options: Partial<MemoryCacheOptions<string, V>> = {}): Fixture<V> {
  const clock = new ManualClock(0)
  const bound = options.maxEntries === undefined && options.maxBytes === undefined ? { maxEntries: 100 } : {}
  const cache = new MemoryCache<string, V>({ ...bound, clock, random: new SeededRandom(1), ...options })
  const events: Array<Logged<V>> = []
  for (const type of ALL_TYPES) cache.on(type, (e) => events.push([e.type, e.key, e.value]))
  return { cache, clock, events, removals: () => events.filter(([t]) => t !== 'store') }
}

/** Lets pending promise callbacks run (a macrotask turn; no time passes on any clock). */
const flush = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve))

function assertCode(err: unknown, code: string): void {
  assert.ok(err instanceof CacheError, `expected a CacheError, got ${String(err)}`)
  assert.equal(err.code, code)
}

function assertInvalidOption(fn: () => unknown, option: string, label: string): void {
  assert.throws(
    fn,
    (err: unknown) => {
      assert.ok(err instanceof InvalidOptionsError, `${label}: expected InvalidOptionsError, got ${String(err)}`)
      assert.equal(err.code, 'ERR_INVALID_OPTIONS')
      assert.ok(err.message.includes(option), `${label}: message "${err.message}" names "${option}"`)
      return true
    },
    label,
  )
}

const anyOptions = (o: Record<string, unknown>): MemoryCacheOptions<string, unknown> => o as unknown as MemoryCacheOptions<string, unknown>

// ---------------------------------------------------------------------------------------

describe('construction and options', () => {
  test('a cache with neither maxEntries nor maxBytes is refused, naming both', () => {
    for (const opts of [{}, { ttl: '5m' }, { maxEntries: undefined, maxBytes: undefined }]) {
      assert.throws(
        () => new MemoryCache(anyOptions(opts)),
        (err: unknown) => {
          assertCode(err, 'ERR_INVALID_OPTIONS')
          assert.match((err as Error).message, /maxEntries/)
          assert.match((err as Error).message, /maxBytes/)
          return true
        },
      )
    }
  })

  test('missing or non-object options are refused with ERR_INVALID_OPTIONS', () => {
    for (const bad of [undefined, null, 5, 'big']) {
      assert.throws(
        () => new MemoryCache(bad as unknown as MemoryCacheOptions<string, unknown>),
        (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS'),
      )
    }
  })

  test('every invalid option value fails at construction, naming the option', () => {
    const cases: Array<[string, Record<string, unknown>]> = [
      ['maxEntries', { maxEntries: -1 }],
      ['maxEntries', { maxEntries: 0 }],
      ['maxEntries', { maxEntries: 1.5 }],
      ['maxEntries', { maxEntries: NaN }],
      ['maxEntries', { maxEntries: '10' }],
      ['maxBytes', { maxBytes: -1 }],
      ['maxBytes', { maxBytes: 0 }],
      ['maxBytes', { maxBytes: 'lots' }],
      ['maxBytes', { maxBytes: NaN }],
      ['maxEntrySize', { maxBytes: 100, maxEntrySize: -1 }],
      ['maxEntrySize', { maxBytes: 100, maxEntrySize: 'big' }],
      ['policy', { maxEntries: 5, policy: 'fifo' }],
      ['policy', { maxEntries: 5, policy: 'LRU ' }],
      ['ttl', { maxEntries: 5, ttl: 'soon' }],
      ['ttl', { maxEntries: 5, ttl: -5 }],
      ['ttl', { maxEntries: 5, ttl: NaN }],
      ['tti', { maxEntries: 5, tti: '10 minutes' }],
      ['tti', { maxEntries: 5, tti: -1 }],
      ['ttlJitter', { maxEntries: 5, ttlJitter: -0.1 }],
      ['ttlJitter', { maxEntries: 5, ttlJitter: 1.5 }],
      ['ttlJitter', { maxEntries: 5, ttlJitter: NaN }],
      ['ttlJitter', { maxEntries: 5, ttlJitter: '0.5' }],
      ['sizeOf', { maxBytes: 100, sizeOf: 42 }],
      ['sizeOf', { maxBytes: 100, sizeOf: 'length' }],
      ['sweepInterval', { maxEntries: 5, sweepInterval: 'often' }],
      ['sweepInterval', { maxEntries: 5, sweepInterval: -1 }],
      ['waitTimeout', { maxEntries: 5, waitTimeout: 'x' }],
      ['waitTimeout', { maxEntries: 5, waitTimeout: -1 }],
      ['clock', { maxEntries: 5, clock: {} }],
      ['random', { maxEntries: 5, random: 3 }],
      // Unknown names were ignored: a misspelt policy left 'tinylfu', a misspelt bound no bound of that kind.
      ['polcy', { maxEntries: 5, polcy: 'lru' }],
      ['maxEntires', { maxBytes: 100, maxEntires: 5 }],
    ]
    for (const [option, opts] of cases) {
      assertInvalidOption(() => new MemoryCache(anyOptions(opts)), option, `${option}: ${String(Object.values(opts).at(-1))}`)
    }
  })

  test('valid options in every accepted form construct', () => {
    const clock = new ManualClock(0)
    const forms: Array<MemoryCacheOptions<string, string>> = [
      { maxEntries: 1, clock },
      { maxBytes: 1, sizeOf: () => 1, clock },
      { maxBytes: '64kb', maxEntrySize: '1kb', clock },
      { maxEntries: 10, maxBytes: '1mb', policy: 'lru', clock },
      { maxEntries: 10, policy: 'tinylfu', clock },
      { maxEntries: 10, ttl: '5m', tti: '30s', sweepInterval: '500ms', waitTimeout: '2s', clock },
      { maxEntries: 10, ttl: Infinity, tti: 'Infinity', clock },
      { maxEntries: 10, ttl: 1500, ttlJitter: 0, clock },
      { maxEntries: 10, ttl: '1d', ttlJitter: 1, clock },
      { maxBytes: 1000, sizeOf: (v) => v.length, clock },
    ]
    for (const options of forms) {
      const cache = new MemoryCache<string, string>(options)
      assert.equal(cache.set('k', 'v'), true)
      assert.equal(cache.get('k'), 'v')
      cache.close()
    }
  })

  test('per-call options are validated too, and a bad call leaves the cache intact', () => {
    const { cache } = setup<string>({ maxBytes: 1000, sizeOf: () => 1 })
    cache.set('keep', 'v')
    assertInvalidOption(() => cache.set('k', 'v', { ttl: 'soon' as never }), 'ttl', 'set ttl')
    assertInvalidOption(() => cache.set('k', 'v', { ttl: -1 }), 'ttl', 'set ttl < 0')
    assertInvalidOption(() => cache.set('k', 'v', { tti: 'x' as never }), 'tti', 'set tti')
    assertInvalidOption(() => cache.set('k', 'v', { size: -1 }), 'size', 'set size < 0')
    assertInvalidOption(() => cache.set('k', 'v', { size: NaN }), 'size', 'set size NaN')
    assertInvalidOption(() => cache.on('nope' as CacheEventType, () => {}), 'type', 'on(unknown type)')
    assertInvalidOption(() => cache.on(1n as unknown as CacheEventType, () => {}), 'type', 'on(a bigint)')
    assertInvalidOption(() => cache.set('k', 'v', null as never), 'options', 'set(k, v, null)')
    assertInvalidOption(() => cache.set('k', 'v', 5 as never), 'options', 'set(k, v, 5)')
    assert.equal(cache.has('k'), false)
    assert.equal(cache.size, 1)
    assert.equal(cache.bytes, 1)
    assert.equal(cache.get('keep'), 'v')
  })
})

describe('bad input never corrupts the cache', () => {
  test('a non-function onEvent is refused before anything is stored', () => {
    const { cache } = setup<number>()
    assertInvalidOption(() => cache.set('k', 1, { onEvent: 'log' as never }), 'onEvent', 'onEvent')
    assert.equal(cache.size, 0)
    assert.equal(cache.has('k'), false)
  })

  test('a signal that is not an AbortSignal is refused with ERR_INVALID_OPTIONS and stores nothing', () => {
    const { cache, events } = setup<number>({ maxEntries: 2, policy: 'lru' })
    assertInvalidOption(() => cache.set('k', 1, { signal: {} as AbortSignal }), 'signal', 'set signal {}')
    assert.equal(cache.size, 0, 'nothing half-stored')
    assert.equal(cache.has('k'), false)
    assert.deepEqual(events, [])
    // The cache keeps its full capacity and evicts normally.
    cache.set('a', 1)
    cache.set('b', 2)
    cache.set('c', 3)
    assert.equal(cache.size, 2)
    assert.deepEqual([...cache.keys()], ['c', 'b'])
  })

  test('predicates and waitFor arguments of the wrong type are ERR_INVALID_OPTIONS naming them, not a raw TypeError', async () => {
    const { cache, clock } = setup<number>()
    cache.set('a', 1)
    const bad = 5 as unknown as (k: string, v: number) => boolean
    for (const call of [() => cache.filter(bad), () => cache.count(bad), () => cache.filterErase(bad)]) {
      assert.throws(call, (err: unknown) => {
        assertCode(err, 'ERR_INVALID_OPTIONS')
        assert.equal((err as unknown as { option: string }).option, 'predicate')
        return true
      })
    }
    assert.equal(cache.count(), 1, 'nothing erased')
    await assert.rejects(cache.waitFor('a', 5 as unknown as { timeout: number }), (err: unknown) => (assertCode(err, 'ERR_INVALID_OPTIONS'), (err as unknown as { option: string }).option === 'options'))
    await assert.rejects(cache.waitFor('a', {}, 5 as unknown as (v: number) => boolean), (err: unknown) => (assertCode(err, 'ERR_INVALID_OPTIONS'), (err as unknown as { option: string }).option === 'accept'))
    assert.equal(clock.pendingTimers, 0)
  })

  test('waitFor with a signal that is not an AbortSignal rejects with ERR_INVALID_OPTIONS and leaves nothing behind', async () => {
    const { cache, clock, events } = setup<number>()
    await assert.rejects(cache.waitFor('x', { signal: {} as AbortSignal }), (err: unknown) => {
      assertCode(err, 'ERR_INVALID_OPTIONS')
      assert.match((err as Error).message, /signal/)
      return true
    })
    assert.equal(clock.pendingTimers, 0, 'no timeout timer left behind')
    assert.doesNotThrow(() => clock.advance(60_000), 'a leftover timer must not throw from the clock (a crash on the system clock)')
    assert.deepEqual(events, [])
  })

  test('a sizeOf that returns a bad size is reported as ERR_INVALID_OPTIONS naming sizeOf', () => {
    const { cache } = setup<number>({ maxBytes: 100, sizeOf: () => NaN })
    assertInvalidOption(() => cache.set('k', 1), 'sizeOf', 'sizeOf -> NaN')
    assert.equal(cache.size, 0)
    assert.equal(cache.bytes, 0)
  })

  test('maxEntrySize above maxBytes can never make set claim to store what it cannot hold', () => {
    // Either the option is refused at construction, or an entry larger than maxBytes is refused.
    let cache: MemoryCache<string, number>
    try {
      cache = new MemoryCache<string, number>({ maxBytes: 100, maxEntrySize: 200, clock: new ManualClock(0) })
    } catch (err) {
      assertCode(err, 'ERR_INVALID_OPTIONS')
      assert.match((err as Error).message, /maxEntrySize/)
      return
    }
    const stored = cache.set('big', 1, { size: 150 })
    assert.equal(stored, cache.has('big'), 'set returns true only when the entry is held')
    assert.equal(stored, false)
  })

  test('maxEntrySize without maxBytes is refused (ERR_INVALID_OPTIONS naming maxEntrySize): sizes are counted only under maxBytes, so it was silently ignored', () => {
    // docs/reference/options.md: maxEntrySize "Largest single entry; larger ones are not stored". Without
    // maxBytes no size is counted: a 100-byte entry was stored under maxEntrySize 5.
    assertInvalidOption(() => new MemoryCache<string, string>({ maxEntries: 10, maxEntrySize: 5, clock: new ManualClock(0) }), 'maxEntrySize', 'maxEntries only')
    assertInvalidOption(() => new MemoryCache<string, string>({ maxEntries: 10, maxEntrySize: '1kb', clock: new ManualClock(0) }), 'maxEntrySize', 'string size')
    // With maxBytes (and maxEntries) it applies as documented.
    const cache = new MemoryCache<string, string>({ maxEntries: 10, maxBytes: 100, maxEntrySize: 5, clock: new ManualClock(0) })
    assert.equal(cache.set('a', 'x', { size: 6 }), false)
    assert.equal(cache.set('a', 'x', { size: 5 }), true)
  })
})

describe('basic operations', () => {
  test('set / get / peek / has on present and absent keys', () => {
    const { cache } = setup<number>()
    assert.equal(cache.get('a'), undefined)
    assert.equal(cache.peek('a'), undefined)
    assert.equal(cache.has('a'), false)
    assert.equal(cache.set('a', 1), true)
    assert.equal(cache.get('a'), 1)
    assert.equal(cache.peek('a'), 1)
    assert.equal(cache.has('a'), true)
    assert.equal(cache.size, 1)
  })

  test('null and other falsy values are cacheable; undefined is refused with ERR_INVALID_VALUE', () => {
    const { cache, events } = setup<unknown>()
    cache.set('null', null)
    cache.set('zero', 0)
    cache.set('empty', '')
    cache.set('false', false)
    assert.equal(cache.get('null'), null)
    assert.equal(cache.has('null'), true)
    assert.equal(cache.peek('null'), null)
    assert.equal(cache.get('zero'), 0)
    assert.equal(cache.get('empty'), '')
    assert.equal(cache.get('false'), false)
    cache.set('x', 'old')
    const before = events.length
    assert.throws(() => cache.set('x', undefined), (err: unknown) => isCacheError(err, 'ERR_INVALID_VALUE'))
    assert.throws(() => cache.set('y', undefined), (err: unknown) => isCacheError(err, 'ERR_INVALID_VALUE'))
    assert.equal(cache.get('x'), 'old', 'a refused set leaves the old value')
    assert.equal(cache.has('y'), false)
    assert.equal(cache.size, 5)
    assert.equal(events.length, before, 'a refused set reports nothing')
  })

  test('overwrite replaces the value, keeps one entry and reports only store', () => {
    const { cache, events } = setup<number>()
    cache.set('a', 1)
    cache.set('a', 2)
    cache.set('a', 3)
    assert.equal(cache.get('a'), 3)
    assert.equal(cache.size, 1)
    assert.deepEqual(events, [
      ['store', 'a', 1],
      ['store', 'a', 2],
      ['store', 'a', 3],
    ])
  })

  test('delete returns true only when a live entry was erased', () => {
    const { cache, events } = setup<number>()
    assert.equal(cache.delete('a'), false)
    cache.set('a', 1)
    assert.equal(cache.delete('a'), true)
    assert.equal(cache.delete('a'), false)
    assert.equal(cache.has('a'), false)
    assert.equal(cache.size, 0)
    assert.deepEqual(events, [
      ['store', 'a', 1],
      ['erase', 'a', 1],
    ])
  })

  test('clear removes every entry with flush events', () => {
    const { cache, removals } = setup<number>()
    for (let i = 0; i < 5; i++) cache.set(`k${i}`, i)
    cache.clear()
    assert.equal(cache.size, 0)
    assert.equal(cache.count(), 0)
    assert.deepEqual([...cache.keys()], [])
    assert.deepEqual(
      removals().sort((a, b) => a[1].localeCompare(b[1])),
      [0, 1, 2, 3, 4].map((i): Logged<number> => ['flush', `k${i}`, i]),
    )
    cache.set('again', 9)
    assert.equal(cache.get('again'), 9, 'usable after clear')
  })

  test('clear without listeners empties the cache too', () => {
    const clock = new ManualClock(0)
    const cache = new MemoryCache<string, number>({ maxBytes: 100, sizeOf: () => 10, clock, ttl: 1000 })
    for (let i = 0; i < 5; i++) cache.set(`k${i}`, i)
    cache.clear()
    assert.equal(cache.size, 0)
    assert.equal(cache.bytes, 0)
    assert.equal(cache.get('k1'), undefined)
    for (let i = 0; i < 10; i++) cache.set(`n${i}`, i)
    assert.equal(cache.size, 10)
    assert.equal(cache.bytes, 100)
    assert.deepEqual([...cache.keys()].sort(), Array.from({ length: 10 }, (_, i) => `n${i}`).sort())
    clock.advance(5000)
    assert.equal(cache.size, 0, 'entries stored after a clear are still swept')
  })

  test('keys of any type work as Map keys (identity for objects)', () => {
    const cache = new MemoryCache<unknown, string>({ maxEntries: 10, clock: new ManualClock() })
    const obj = { id: 1 }
    cache.set(1, 'one')
    cache.set('1', 'string one')
    cache.set(obj, 'obj')
    cache.set(NaN, 'nan')
    assert.equal(cache.get(1), 'one')
    assert.equal(cache.get('1'), 'string one')
    assert.equal(cache.get(obj), 'obj')
    assert.equal(cache.get({ id: 1 }), undefined)
    assert.equal(cache.get(NaN), 'nan')
  })
})

describe('lru policy', () => {
  test('evicts exactly the least recently used; get refreshes, peek and has do not', () => {
    const { cache, removals } = setup<number>({ maxEntries: 3, policy: 'lru' })
    cache.set('a', 1)
    cache.set('b', 2)
    cache.set('c', 3)
    cache.get('a') // order (MRU first): a c b
    cache.peek('b')
    cache.has('b')
    cache.set('d', 4) // evicts b
    assert.deepEqual(removals(), [['evict', 'b', 2]])
    cache.peek('c')
    cache.set('e', 5) // evicts c (peek did not refresh it)
    assert.deepEqual(removals(), [
      ['evict', 'b', 2],
      ['evict', 'c', 3],
    ])
    assert.deepEqual([...cache.keys()], ['e', 'd', 'a'])
    assert.equal(cache.size, 3)
  })

  test('overwriting a key counts as a use', () => {
    const { cache, removals } = setup<number>({ maxEntries: 3, policy: 'lru' })
    cache.set('a', 1)
    cache.set('b', 2)
    cache.set('c', 3)
    cache.set('a', 10)
    cache.set('d', 4)
    assert.deepEqual(removals(), [['evict', 'b', 2]])
    assert.equal(cache.get('a'), 10)
  })

  test('iteration is most recently used first', () => {
    const { cache } = setup<number>({ policy: 'lru' })
    cache.set('a', 1)
    cache.set('b', 2)
    cache.set('c', 3)
    assert.deepEqual([...cache.keys()], ['c', 'b', 'a'])
    cache.get('a')
    assert.deepEqual([...cache.keys()], ['a', 'c', 'b'])
    cache.peek('b')
    cache.has('b')
    assert.deepEqual([...cache.keys()], ['a', 'c', 'b'])
    cache.set('b', 20)
    assert.deepEqual([...cache.keys()], ['b', 'a', 'c'])
    assert.deepEqual([...cache.values()], [20, 1, 3])
    assert.deepEqual(
      [...cache.entries()],
      [
        ['b', 20],
        ['a', 1],
        ['c', 3],
      ],
    )
  })

  test('eviction order is exact LRU in a large cache too (every get refreshes)', () => {
    // 4096 entries: large enough that any approximation of recency would show.
    const n = 4096
    const { cache, removals } = setup<number>({ maxEntries: n, policy: 'lru' })
    for (let i = 0; i < n; i++) cache.set(`k${i}`, i)
    // Read every key once, in a shuffled order: that order is now the exact LRU order.
    const random = new SeededRandom(99)
    const order = Array.from({ length: n }, (_, i) => i)
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(random.next() * (i + 1))
      ;[order[i], order[j]] = [order[j], order[i]]
    }
    for (const i of order) assert.equal(cache.get(`k${i}`), i)
    const keysBefore = [...cache.keys()]
    for (let i = 0; i < n; i++) cache.set(`new${i}`, -1)
    const victims = removals().map(([, k]) => k)
    const expected = order.map((i) => `k${i}`)
    const firstWrong = victims.findIndex((k, i) => k !== expected[i])
    assert.equal(firstWrong, -1, `victim #${firstWrong} is ${victims[firstWrong]}, expected ${expected[firstWrong]}`)
    assert.deepEqual(victims, expected, 'victims leave in exact least-recently-used order')
    assert.deepEqual(keysBefore, [...expected].reverse(), 'keys() is MRU first')
  })

  test('a recently read entry outlives entries written just before it (large cache)', () => {
    const n = 2000
    const { cache } = setup<number>({ maxEntries: n, policy: 'lru' })
    for (let i = 0; i < n; i++) cache.set(`k${i}`, i)
    cache.get('k1990') // now the most recently used
    for (let i = 0; i < n - 1; i++) cache.set(`new${i}`, i)
    assert.equal(cache.peek('k1990'), 1990, 'the most recently read old entry survives')
    assert.equal(cache.peek('k1999'), undefined, 'the least recently used old entry is gone')
  })
})

describe('tinylfu policy', () => {
  test('the entry bound holds under a mixed workload', () => {
    const { cache } = setup<number>({ maxEntries: 50, policy: 'tinylfu' })
    const random = new SeededRandom(3)
    for (let i = 0; i < 20_000; i++) {
      const k = `k${Math.floor(random.next() ** 2 * 500)}`
      if (cache.get(k) === undefined) cache.set(k, i)
      assert.ok(cache.size <= 50)
    }
    assert.equal(cache.size, 50)
    assert.equal(cache.count(), 50)
  })

  test('the byte bound holds with uneven sizes', () => {
    const { cache } = setup<number>({ maxBytes: 1000, policy: 'tinylfu' })
    const random = new SeededRandom(4)
    for (let i = 0; i < 10_000; i++) {
      const k = `k${Math.floor(random.next() * 300)}`
      if (cache.get(k) === undefined) cache.set(k, i, { size: 1 + Math.floor(random.next() * 100) })
      assert.ok(cache.bytes <= 1000, `bytes ${cache.bytes}`)
    }
    const held = cache.dump().reduce((n, e) => n + e.size, 0)
    assert.equal(held, cache.bytes)
  })

  test('frequently read keys survive a scan of one-off keys better than under lru', () => {
    const hotHitRatio = (policy: 'lru' | 'tinylfu'): number => {
      const cache = new MemoryCache<string, number>({ maxEntries: 100, policy, clock: new ManualClock(0), random: new SeededRandom(8) })
      let hits = 0
      let reads = 0
      let scan = 0
      for (let round = 0; round < 50; round++) {
        for (let h = 0; h < 50; h++) {
          const k = `hot${h}`
          if (round >= 10) reads++
          if (cache.get(k) !== undefined) {
            if (round >= 10) hits++
          } else {
            cache.set(k, h)
          }
        }
        // A scan of one-off keys, twice the cache's capacity.
        for (let s = 0; s < 200; s++) {
          const k = `scan${scan++}`
          if (cache.get(k) === undefined) cache.set(k, s)
        }
        assert.ok(cache.size <= 100)
      }
      return hits / reads
    }
    const lru = hotHitRatio('lru')
    const tinylfu = hotHitRatio('tinylfu')
    assert.ok(tinylfu >= 0.8, `tinylfu keeps the hot set: hit ratio ${tinylfu}`)
    assert.ok(tinylfu > lru + 0.5, `tinylfu ${tinylfu} vs lru ${lru}`)
  })

  test('a cache bounded by bytes alone sizes its frequency sketch by the entries it holds, and it grows with them', () => {
    // Eight small caches: with a sketch for 2^20 entries each they would take 16 MB.
    const before = process.memoryUsage().arrayBuffers
    const caches = Array.from({ length: 8 }, () => new MemoryCache<string, number>({ maxBytes: '64kb', policy: 'tinylfu', clock: new ManualClock(0) }))
    const grown = process.memoryUsage().arrayBuffers - before
    assert.ok(grown < 512 * 1024, `8 empty caches allocated ${grown} bytes of typed arrays`)
    // One of them grows past its first slots (1,024) and still protects a hot set from a
    // scan, which needs a working sketch after its resizes.
    const cache = caches[0]
    let hits = 0
    let scan = 0
    for (let round = 0; round < 40; round++) {
      for (let h = 0; h < 2000; h++) {
        const k = `hot${h}`
        if (cache.get(k) !== undefined) hits += round >= 20 ? 1 : 0
        else cache.set(k, h, { size: 10 })
      }
      for (let s = 0; s < 4000; s++) cache.set(`scan${scan++}`, s, { size: 10 })
      assert.ok(cache.bytes <= 65_536)
    }
    assert.ok(cache.size > 2000, `the cache holds more than its first slots: ${cache.size}`)
    assert.ok(hits / (20 * 2000) >= 0.8, `the hot set survives the scans: hit ratio ${hits / (20 * 2000)}`)
    for (const c of caches) c.close()
  })
})

describe('byte bound', () => {
  test('maxBytes bounds the sum of sizes; explicit size wins over sizeOf; sizeOf gets (value, key)', () => {
    const calls: Array<[string, string]> = []
    const { cache, removals } = setup<string>({
      maxBytes: 100,
      policy: 'lru',
      sizeOf: (v, k) => {
        calls.push([v, k])
        return v.length
      },
    })
    cache.set('a', 'x'.repeat(40))
    cache.set('b', 'y'.repeat(40))
    assert.equal(cache.bytes, 80)
    assert.deepEqual(calls, [
      ['x'.repeat(40), 'a'],
      ['y'.repeat(40), 'b'],
    ])
    cache.set('c', 'tiny', { size: 30 })
    assert.equal(calls.length, 2, 'sizeOf is not called when size is given')
    assert.equal(cache.bytes, 70)
    assert.deepEqual(removals(), [['evict', 'a', 'x'.repeat(40)]])
    cache.set('b', 'z'.repeat(10)) // overwrite with a smaller size
    assert.equal(cache.bytes, 40)
    cache.delete('c')
    assert.equal(cache.bytes, 10)
    assert.deepEqual(
      cache.dump().map((e) => [e.key, e.size]),
      [['b', 10]],
    )
  })

  test('byte sizes as strings; an entry of exactly maxBytes evicts everything else', () => {
    const { cache } = setup<string>({ maxBytes: '1kb', policy: 'lru', sizeOf: () => 100 })
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, 'v')
    assert.equal(cache.bytes, 1000)
    cache.set('k10', 'v')
    assert.equal(cache.bytes, 1000)
    assert.equal(cache.has('k0'), false)
    assert.equal(cache.set('big', 'v', { size: 1024 }), true)
    assert.equal(cache.size, 1)
    assert.equal(cache.bytes, 1024)
    assert.equal(cache.get('big'), 'v')
  })

  test('an entry larger than maxEntrySize is not stored and erases the old value', () => {
    const { cache, events } = setup<string>({ maxBytes: 100, maxEntrySize: 50, sizeOf: (v) => v.length })
    cache.set('k', 'small')
    assert.equal(cache.set('k', 'x'.repeat(51)), false)
    assert.equal(cache.has('k'), false)
    assert.equal(cache.bytes, 0)
    assert.equal(cache.set('other', 'x'.repeat(51)), false)
    assert.equal(cache.has('other'), false)
    assert.deepEqual(events, [
      ['store', 'k', 'small'],
      ['erase', 'k', 'small'],
    ])
    assert.equal(cache.stats().rejected, 2)
    assert.equal(cache.set('k', 'x'.repeat(50)), true, 'exactly maxEntrySize is accepted')
  })

  test('maxEntrySize defaults to maxBytes', () => {
    const { cache } = setup<string>({ maxBytes: 100 })
    assert.equal(cache.set('k', 'v', { size: 101 }), false)
    assert.equal(cache.set('k', 'v', { size: 100 }), true)
  })

  test('the default size estimate charges something for every entry', () => {
    const { cache } = setup<unknown>({ maxBytes: '1mb' })
    cache.set('s', 'x'.repeat(1000))
    const s = cache.bytes
    assert.ok(s >= 1000, `a 1000-char string is at least 1000 bytes, got ${s}`)
    cache.set('b', Buffer.alloc(4096))
    assert.ok(cache.bytes - s >= 4096)
    cache.set('o', { a: 1, b: 'two', c: [1, 2, 3] })
    assert.ok(cache.dump().every((e) => e.size > 0))
  })

  test('with only maxEntries, bytes stay 0 and sizes are ignored', () => {
    const { cache } = setup<string>({ maxEntries: 10 })
    cache.set('a', 'x'.repeat(100), { size: 500 })
    assert.equal(cache.bytes, 0)
    assert.equal(cache.dump()[0].size, 0)
  })

  test('both bounds at once: each is respected', () => {
    const { cache } = setup<number>({ maxEntries: 5, maxBytes: 100, policy: 'lru' })
    for (let i = 0; i < 10; i++) cache.set(`small${i}`, i, { size: 1 })
    assert.equal(cache.size, 5)
    cache.set('big1', 1, { size: 60 })
    cache.set('big2', 2, { size: 60 })
    assert.ok(cache.bytes <= 100)
    assert.ok(cache.size <= 5)
    assert.equal(cache.get('big2'), 2)
  })
})

describe('time-to-live', () => {
  test('an injected clock that goes backwards between two readings of one get neither throws nor corrupts', () => {
    // The Clock contract says now() never goes backwards; a broken clock must still not make
    // get throw. Here get's first reading says "expired" and its second says "not yet".
    const manual = new ManualClock(0)
    const readings: number[] = []
    const clock = { now: () => readings.shift() ?? manual.now(), setTimeout: manual.setTimeout.bind(manual), clearTimeout: manual.clearTimeout.bind(manual) }
    const removals: string[] = []
    const cache = new MemoryCache<string, string>({ maxEntries: 10, clock, random: new SeededRandom(1), policy: 'lru' })
    cache.on('expire', (e) => removals.push(e.key))
    cache.set('a', 'v', { ttl: 1000 })
    readings.push(1000, 999)
    assert.equal(cache.get('a'), 'v', 'the second reading (not expired) decides')
    assert.equal(cache.size, 1)
    assert.deepEqual(removals, [])
    manual.advance(1000)
    assert.equal(cache.get('a'), undefined, 'expired once the clock agrees')
    assert.deepEqual(removals, ['a'])
    assert.equal(cache.size, 0)
  })

  test('an entry lives for its ttl and not a millisecond longer', () => {
    const { cache, clock } = setup<string>()
    cache.set('a', 'v', { ttl: 1000 })
    clock.advance(999)
    assert.equal(cache.get('a'), 'v')
    assert.equal(cache.remainingTtl('a'), 1)
    clock.advance(1)
    assert.equal(cache.get('a'), undefined, 'expired once its deadline is reached')
  })

  test('ttl as strings; the cache default applies; per-entry ttl overrides it, Infinity included', () => {
    const { cache, clock } = setup<string>({ ttl: '1m', sweepInterval: '10s' })
    cache.set('default', 'v')
    cache.set('short', 'v', { ttl: '500ms' })
    cache.set('long', 'v', { ttl: '2h' })
    cache.set('forever', 'v', { ttl: Infinity })
    cache.set('forever2', 'v', { ttl: 'Infinity' })
    assert.equal(cache.remainingTtl('default'), 60_000)
    assert.equal(cache.remainingTtl('short'), 500)
    assert.equal(cache.remainingTtl('long'), 7_200_000)
    assert.equal(cache.remainingTtl('forever'), Infinity)
    clock.advance(501)
    assert.equal(cache.has('short'), false)
    assert.equal(cache.has('default'), true)
    clock.advance(60_000)
    assert.equal(cache.has('default'), false)
    assert.equal(cache.has('long'), true)
    clock.advance(365 * 86_400_000)
    assert.equal(cache.get('forever'), 'v')
    assert.equal(cache.get('forever2'), 'v')
    assert.equal(cache.has('long'), false)
  })

  test('a ttl of 99,999,999 s is honoured exactly', () => {
    const { cache, clock } = setup<string>({ sweepInterval: '1d' })
    cache.set('a', 'v', { ttl: '99999999s' })
    cache.set('b', 'v', { ttl: 99_999_999_000 })
    assert.equal(cache.remainingTtl('a'), 99_999_999_000)
    clock.advance(99_999_998_000)
    assert.equal(cache.get('a'), 'v')
    assert.equal(cache.get('b'), 'v')
    assert.equal(cache.remainingTtl('a'), 1000)
    clock.advance(1000)
    assert.equal(cache.get('a'), undefined)
    assert.equal(cache.get('b'), undefined)
  })

  test('overwriting an entry restarts its ttl (and can remove it)', () => {
    const { cache, clock } = setup<string>()
    cache.set('a', 'v1', { ttl: 100 })
    clock.advance(80)
    cache.set('a', 'v2', { ttl: 100 })
    clock.advance(80)
    assert.equal(cache.get('a'), 'v2')
    cache.set('a', 'v3') // no ttl: lives forever
    clock.advance(10_000)
    assert.equal(cache.get('a'), 'v3')
    assert.equal(cache.remainingTtl('a'), Infinity)
  })

  test('an expired entry is never returned by any read, even before it is reclaimed', () => {
    const { cache, clock } = setup<string>({ sweepInterval: '1h', policy: 'lru' })
    cache.set('gone', 'old', { ttl: 100 })
    cache.set('live', 'v')
    clock.advance(100)
    // The sweep has not run: the expired entry is still held...
    assert.equal(cache.size, 2)
    // ...but no read shows it.
    assert.deepEqual([...cache.keys()], ['live'])
    assert.deepEqual([...cache.values()], ['v'])
    assert.deepEqual([...cache.entries()], [['live', 'v']])
    assert.deepEqual(cache.filter(() => true), [['live', 'v']])
    assert.equal(cache.count(), 1)
    assert.equal(cache.count((k) => k === 'gone'), 0)
    assert.deepEqual(
      cache.dump().map((e) => e.key),
      ['live'],
    )
    assert.equal(cache.remainingTtl('gone'), undefined)
    assert.equal(cache.peek('gone'), undefined)
    assert.equal(cache.has('gone'), false)
    assert.equal(cache.get('gone'), undefined)
  })

  test('ttlJitter shortens ttls by up to the fraction and never lengthens them', () => {
    const { cache } = setup<number>({ maxEntries: 1000, ttl: 10_000, ttlJitter: 0.5, random: new SeededRandom(11) })
    for (let i = 0; i < 500; i++) cache.set(`k${i}`, i)
    const ttls = cache.dump().map((e) => e.remainingTtl)
    assert.ok(ttls.every((t) => t > 5000 && t <= 10_000), `range ${Math.min(...ttls)}..${Math.max(...ttls)}`)
    assert.ok(new Set(ttls).size > 400, 'spread out')
    assert.ok(Math.min(...ttls) < 5500 && Math.max(...ttls) > 9500, 'covers the range')
  })

  test('ttlJitter follows ttl * (1 - ttlJitter * r), also for per-entry ttls', () => {
    const fixed: Random = { next: () => 0.5 }
    const { cache } = setup<number>({ ttl: 1000, ttlJitter: 0.2, random: fixed })
    cache.set('a', 1)
    cache.set('b', 2, { ttl: 5000 })
    cache.set('c', 3, { ttl: Infinity })
    assert.equal(cache.remainingTtl('a'), 900)
    assert.equal(cache.remainingTtl('b'), 4500)
    assert.equal(cache.remainingTtl('c'), Infinity, 'no ttl, nothing to jitter')
  })

  test('ttlJitter 1 keeps ttls in (0, ttl]', () => {
    const nearlyOne: Random = { next: () => 0.999_999 }
    const { cache } = setup<number>({ ttl: 1000, ttlJitter: 1, random: nearlyOne })
    cache.set('a', 1)
    const t = cache.remainingTtl('a')
    assert.ok(t !== undefined && t > 0 && t <= 1000, `ttl ${t}`)
  })

  test('with the real clock, get reads the time as its now() does (get inlines that read): the ticker cell, monotonic when it steps back, Date.now() while it parks', () => {
    // Drives the clock's internal cell (SystemClock.cell, written by the ticker thread) by hand.
    const clock = createSystemClock({ ticker: false }) as SystemClock
    const cell = new Float64Array([1_000_000])
    clock.cell = cell
    const cache = new MemoryCache<string, number>({ maxEntries: 10, clock })
    cache.set('a', 1, { ttl: 100 }) // deadline 1_000_100
    cache.set('b', 2, { ttl: 200 }) // 1_000_200
    cache.set('c', 3, { ttl: 1000 }) // 1_001_000
    cell[0] = 1_000_099
    assert.equal(cache.get('a'), 1)
    cell[0] = 1_000_100
    assert.equal(cache.get('a'), undefined, 'expired at its deadline')
    cell[0] = 1_000_250
    assert.equal(cache.get('c'), 3)
    cell[0] = 1_000_150 // the wall clock stepped back: time stands still at 1_000_250
    assert.equal(cache.get('b'), undefined, 'b expired at 1_000_200, before the step back')
    assert.equal(clock.now(), 1_000_250)
    cell[0] = 0 // parked: the read falls back to Date.now(), far past every deadline here
    assert.equal(cache.get('c'), undefined)
    assert.ok(clock.now() >= Date.now() - 1000)
    cache.close()
  })
})

describe('time-to-idle', () => {
  test('get extends the idle deadline', () => {
    const { cache, clock } = setup<string>()
    cache.set('a', 'v', { tti: 100 })
    for (let i = 0; i < 10; i++) {
      clock.advance(60)
      assert.equal(cache.get('a'), 'v', `read ${i} at ${clock.now()}`)
    }
    assert.equal(cache.remainingTtl('a'), 100)
    clock.advance(100)
    assert.equal(cache.get('a'), undefined, 'idle for the full tti: gone')
  })

  test('peek and has do not extend the idle deadline', () => {
    const { cache, clock } = setup<string>()
    cache.set('a', 'v', { tti: 100 })
    clock.advance(60)
    assert.equal(cache.peek('a'), 'v')
    assert.equal(cache.has('a'), true)
    clock.advance(40)
    assert.equal(cache.peek('a'), undefined)
  })

  test('ttl caps the life however often the entry is read', () => {
    const { cache, clock } = setup<string>()
    cache.set('a', 'v', { ttl: 250, tti: 100 })
    clock.advance(90)
    cache.get('a')
    clock.advance(90)
    assert.equal(cache.remainingTtl('a'), 10, 'idle deadline 190')
    cache.get('a')
    assert.equal(cache.remainingTtl('a'), 70, 'the sooner of idle (280) and ttl (250) deadline')
    clock.advance(69)
    assert.equal(cache.get('a'), 'v')
    clock.advance(1)
    assert.equal(cache.get('a'), undefined)
  })

  test('the cache default tti applies', () => {
    const { cache, clock } = setup<string>({ tti: '1s' })
    cache.set('a', 'v')
    cache.set('b', 'v', { tti: Infinity })
    clock.advance(999)
    cache.get('a')
    clock.advance(999)
    assert.equal(cache.has('a'), true)
    clock.advance(1)
    assert.equal(cache.has('a'), false)
    assert.equal(cache.has('b'), true)
  })

  test('the sweep honours idle extensions and reclaims once reads stop', () => {
    const { cache, clock, removals } = setup<string>({ sweepInterval: 50 })
    cache.set('a', 'v', { tti: 100 })
    for (let i = 0; i < 20; i++) {
      clock.advance(50)
      assert.equal(cache.get('a'), 'v')
    }
    assert.deepEqual(removals(), [])
    clock.advance(100 + 2 * 50)
    assert.equal(cache.size, 0, 'reclaimed without a read')
    assert.deepEqual(removals(), [['expire', 'a', 'v']])
  })
})

describe('background sweep', () => {
  test('reclaims expired entries within about two sweep intervals, without any read', () => {
    const { cache, clock, removals } = setup<number>({ sweepInterval: 100 })
    for (let i = 0; i < 50; i++) cache.set(`k${i}`, i, { ttl: 250 })
    cache.set('forever', -1)
    clock.advance(249)
    assert.equal(cache.size, 51)
    assert.deepEqual(removals(), [])
    clock.advance(1 + 2 * 100)
    assert.equal(cache.size, 1, 'expired entries were reclaimed')
    const expired = removals()
    assert.equal(expired.length, 50)
    assert.ok(expired.every(([t]) => t === 'expire'))
    assert.deepEqual(new Set(expired.map(([, k]) => k)), new Set(Array.from({ length: 50 }, (_, i) => `k${i}`)))
    assert.equal(cache.stats().expired, 50)
  })

  test('a key written again is reclaimed at its new deadline, whether it falls in the same sweep tick or a later one', () => {
    // #setDeadline leaves a slot in its wheel bucket when the new deadline falls in the same
    // tick (decision 0401): the sweep must still reclaim it then, and never at the old one.
    const { cache, clock, removals } = setup<number>({ sweepInterval: 100 })
    cache.set('same', 1, { ttl: 250 }) // deadline 250: tick 2
    cache.set('later', 1, { ttl: 250 })
    clock.advance(10)
    cache.set('same', 2, { ttl: 245 }) // deadline 255: still tick 2
    cache.set('later', 2, { ttl: 500 }) // deadline 510: tick 5
    clock.advance(244) // t = 254
    assert.equal(cache.get('same'), 2)
    clock.advance(1 + 2 * 100) // t = 455: tick 2 swept
    assert.deepEqual(removals(), [['expire', 'same', 2]])
    assert.equal(cache.peek('later'), 2, 'not reclaimed at its old deadline')
    clock.advance(55 + 2 * 100) // t = 710
    assert.deepEqual(removals(), [
      ['expire', 'same', 2],
      ['expire', 'later', 2],
    ])
    assert.equal(cache.size, 0)
  })

  test('does not touch live entries', () => {
    const { cache, clock, removals } = setup<number>({ sweepInterval: 100 })
    for (let i = 0; i < 20; i++) cache.set(`k${i}`, i, { ttl: 10_000 })
    clock.advance(9_000)
    assert.equal(cache.size, 20)
    assert.deepEqual(removals(), [])
    assert.equal(cache.get('k3'), 3)
  })

  test('no timer per entry: 10,000 entries with deadlines need at most 2 timers', () => {
    const { cache, clock } = setup<number>({ maxEntries: 20_000, sweepInterval: '1s' })
    const random = new SeededRandom(2)
    for (let i = 0; i < 10_000; i++) {
      const ttl = 1 + Math.floor(random.next() * 3_600_000)
      if (i % 3 === 0) cache.set(`k${i}`, i, { ttl, tti: 1 + Math.floor(random.next() * 60_000) })
      else cache.set(`k${i}`, i, { ttl })
      assert.ok(clock.pendingTimers <= 2)
    }
    assert.ok(clock.pendingTimers <= 2, `pending timers: ${clock.pendingTimers}`)
    assert.ok(clock.pendingTimers >= 1, 'a sweep is scheduled')
    clock.advance(3_600_000 + 5000)
    assert.equal(cache.size, 0)
    assert.equal(clock.pendingTimers, 0, 'the sweep stops once no entry has a deadline')
  })

  test('no sweep timer while no entry has a deadline', () => {
    const { cache, clock } = setup<number>({ maxEntries: 1000, sweepInterval: 100 })
    for (let i = 0; i < 100; i++) cache.set(`k${i}`, i)
    assert.equal(clock.pendingTimers, 0)
    cache.set('t', 1, { ttl: 50 })
    assert.ok(clock.pendingTimers >= 1)
    clock.advance(1000)
    assert.equal(clock.pendingTimers, 0)
    assert.equal(cache.size, 100)
  })

  test('purgeExpired reclaims expired entries now and returns how many', () => {
    const { cache, clock, removals } = setup<number>({ sweepInterval: '1h' })
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, i, { ttl: i < 6 ? 100 : 1000 })
    cache.set('forever', 1)
    assert.equal(cache.purgeExpired(), 0)
    clock.advance(100)
    assert.equal(cache.size, 11)
    assert.equal(cache.purgeExpired(), 6)
    assert.equal(cache.size, 5)
    assert.equal(removals().length, 6)
    assert.ok(removals().every(([t]) => t === 'expire'))
    assert.equal(cache.purgeExpired(), 0, 'each entry reported once')
    assert.equal(removals().length, 6)
  })

  test('an expire listener may store the key again (refresh on expiry)', () => {
    const { cache, clock } = setup<number>({ sweepInterval: 100 })
    let refreshed = 0
    cache.on('expire', (e) => {
      if (refreshed++ < 3) cache.set(e.key, (e.value ?? 0) + 1, { ttl: 100 })
    })
    cache.set('a', 0, { ttl: 100 })
    clock.advance(250) // the first sweep that sees a's tick as past runs at 200
    assert.equal(refreshed, 1)
    assert.equal(cache.get('a'), 1, 'the refreshed value is live')
    assert.equal(cache.size, 1)
    clock.advance(2000)
    assert.equal(refreshed, 4, 'three refreshes, then the last copy expired')
    assert.equal(cache.size, 0)
    assert.equal(cache.get('a'), undefined)
  })
})

describe('events', () => {
  test('each reason is reported: store, expire, evict, erase, flush', () => {
    const { cache, clock, events } = setup<number>({ maxEntries: 2, policy: 'lru' })
    cache.set('a', 1, { ttl: 10 })
    clock.advance(10)
    cache.get('a') // expire
    cache.set('b', 2)
    cache.set('c', 3)
    cache.set('d', 4) // evict b
    cache.delete('c') // erase
    cache.clear() // flush d
    assert.deepEqual(events, [
      ['store', 'a', 1],
      ['expire', 'a', 1],
      ['store', 'b', 2],
      ['store', 'c', 3],
      ['store', 'd', 4],
      ['evict', 'b', 2],
      ['erase', 'c', 3],
      ['flush', 'd', 4],
    ])
    const s = cache.stats()
    assert.equal(s.stores, 4)
    assert.equal(s.expired, 1)
    assert.equal(s.evicted, 1)
    assert.equal(s.erased, 1)
    assert.equal(s.flushed, 1)
  })

  test('an already-expired entry is reported as expire whatever removes it', () => {
    const cases: Array<[string, (f: Fixture<number>) => void]> = [
      ['delete', (f) => assert.equal(f.cache.delete('x'), false, 'delete of an expired entry erased nothing live')],
      ['clear', (f) => f.cache.clear()],
      ['get', (f) => f.cache.get('x')],
      ['peek', (f) => f.cache.peek('x')],
      ['has', (f) => f.cache.has('x')],
      ['purgeExpired', (f) => f.cache.purgeExpired()],
      ['overwrite', (f) => f.cache.set('x', 2)],
      ['oversized overwrite', (f) => f.cache.set('x', 2, { size: 1000 })],
      [
        'eviction',
        (f) => {
          f.cache.set('y', 2)
          f.cache.set('z', 3)
        },
      ],
    ]
    for (const [name, remove] of cases) {
      const f = setup<number>({ maxEntries: 2, maxBytes: 100, sizeOf: () => 1, policy: 'lru', sweepInterval: '1h' })
      f.cache.set('x', 1, { ttl: 10 })
      f.clock.advance(20)
      remove(f)
      const forX = f.removals().filter(([, k]) => k === 'x')
      assert.deepEqual(forX, [['expire', 'x', 1]], `${name}: reported once as expire`)
      // Nothing can report it again.
      f.cache.clear()
      f.cache.purgeExpired()
      f.clock.advance(10_000_000)
      assert.deepEqual(
        f.removals().filter(([, k, v]) => k === 'x' && v === 1),
        [['expire', 'x', 1]],
        `${name}: reported exactly once`,
      )
    }
  })

  test('an expired entry evicted by the bound is reported as expire', () => {
    const { cache, clock, removals } = setup<number>({ maxEntries: 2, policy: 'lru', sweepInterval: '1h' })
    cache.set('a', 1, { ttl: 10 })
    cache.set('b', 2)
    clock.advance(10)
    cache.set('c', 3)
    assert.deepEqual(removals(), [['expire', 'a', 1]])
    assert.equal(cache.stats().evicted, 0)
    assert.equal(cache.stats().expired, 1)
  })

  test('overwriting a live key reports only store, also to per-entry listeners', () => {
    const { cache, events } = setup<number>()
    const first: string[] = []
    const second: string[] = []
    cache.set('a', 1, { onEvent: (e) => first.push(e.type) })
    cache.set('a', 2, { onEvent: (e) => second.push(e.type) })
    assert.deepEqual(events, [
      ['store', 'a', 1],
      ['store', 'a', 2],
    ])
    assert.deepEqual(first, ['store'])
    assert.deepEqual(second, ['store'])
    cache.delete('a')
    assert.deepEqual(first, ['store'], 'the replaced entry gets nothing more')
    assert.deepEqual(second, ['store', 'erase'])
  })

  test('per-entry onEvent gets store then exactly one removal, for every reason', () => {
    const log = new Map<string, Array<CacheEvent<string, number>>>()
    const onEvent = (e: CacheEvent<string, number>): void => {
      const list = log.get(e.key) ?? []
      list.push(e)
      log.set(e.key, list)
    }
    const { cache, clock } = setup<number>({ maxEntries: 3, policy: 'lru', sweepInterval: 100 })
    cache.set('expires', 1, { ttl: 50, onEvent })
    clock.advance(300) // swept
    cache.set('erased', 2, { onEvent })
    cache.set('evicted', 3, { onEvent })
    cache.set('flushed', 4, { onEvent })
    cache.delete('erased')
    cache.set('x', 5)
    cache.set('y', 6) // over the bound: evicts the LRU, 'evicted'
    cache.clear()
    const expected: Record<string, [CacheEventType, number]> = {
      expires: ['expire', 1],
      erased: ['erase', 2],
      evicted: ['evict', 3],
      flushed: ['flush', 4],
    }
    assert.deepEqual([...log.keys()].sort(), Object.keys(expected).sort(), 'only entries with onEvent are reported to it')
    for (const [key, [reason, value]] of Object.entries(expected)) {
      assert.deepEqual(
        log.get(key),
        [
          { type: 'store', key, value },
          { type: reason, key, value },
        ],
        key,
      )
    }
  })

  test('per-entry onEvent reports erase and evict with the entry value', () => {
    const seen: Array<[string, string, number | undefined]> = []
    const { cache } = setup<number>({ maxEntries: 1, policy: 'lru' })
    cache.set('a', 1, { onEvent: (e) => seen.push([e.type, e.key, e.value]) })
    cache.set('b', 2, { onEvent: (e) => seen.push([e.type, e.key, e.value]) }) // evicts a
    cache.delete('b')
    assert.deepEqual(seen, [
      ['store', 'a', 1],
      ['store', 'b', 2],
      ['evict', 'a', 1],
      ['erase', 'b', 2],
    ])
  })

  // A cache nobody listens to evicts before it inserts and reuses the victim's slot (see
  // MemoryCache#reuse); an entry with extras must still be reported, and its extras must
  // not pass to the next entry in its slot.
  for (const policy of ['lru', 'tinylfu'] as const) {
    test(`${policy}: without cache listeners, per-entry onEvent and signals still see their entry evicted, once`, () => {
      const cache = new MemoryCache<string, number>({ maxEntries: 200, policy, clock: new ManualClock(0), random: new SeededRandom(3) })
      const seen: Array<[string, string, number | undefined]> = []
      const controller = new AbortController()
      for (let i = 0; i < 150; i++) cache.set(`warm${i}`, i)
      cache.set('tracked', -1, { onEvent: (e) => seen.push([e.type, e.key, e.value]) })
      cache.set('tied', -2, { signal: controller.signal })
      for (let i = 0; i < 2_000; i++) cache.set(`k${i}`, i)
      assert.equal(cache.has('tracked') || cache.has('tied'), false, 'both pushed out by 2,000 new keys')
      assert.deepEqual(seen, [
        ['store', 'tracked', -1],
        ['evict', 'tracked', -1],
      ])
      assert.equal(cache.stats().evicted, 2_152 - 200)
      assert.equal(getEventListeners(controller.signal, 'abort').length, 0, 'the abort listener left with its entry')
      controller.abort()
      for (let i = 0; i < 500; i++) cache.set(`later${i}`, i)
      assert.equal(seen.length, 2, 'the slot of tracked went to other keys without its onEvent')
      assert.equal(cache.stats().erased, 0, 'the signal of an evicted entry erases nothing')
      assert.equal(cache.size, 200)
    })
  }

  // An entry with extras stored at the bound, nobody listening to the cache, also takes the
  // victim's slot (decision 0396): its own store callback sees the cache at its bound, the
  // victim gone, as before that path was split from the general one.
  for (const policy of ['lru', 'tinylfu'] as const) {
    test(`${policy}: a new entry's onEvent or signal at the bound: the store callback sees the cache at its bound`, () => {
      const cache = new MemoryCache<string, number>({ maxEntries: 200, policy, clock: new ManualClock(0), random: new SeededRandom(3) })
      for (let i = 0; i < 2_000; i++) cache.set(`k${i}`, i)
      const sizes: number[] = []
      const evictedBefore = cache.stats().evicted
      cache.set('tracked', -1, { onEvent: (e) => e.type === 'store' && sizes.push(cache.size, cache.stats().evicted - evictedBefore) })
      assert.deepEqual(sizes, [200, 1])
      const controller = new AbortController()
      cache.set('tied', -2, { signal: controller.signal })
      assert.equal(cache.size, 200)
      assert.equal(cache.get('tied'), -2)
      controller.abort()
      assert.equal(cache.has('tied'), false, 'erased by its signal')
      const aborted = new AbortController()
      aborted.abort()
      assert.equal(cache.set('refused', 1, { signal: aborted.signal }), false)
      assert.equal(cache.stats().rejected, 1)
    })
  }

  test('on() returns an unsubscribe function (idempotent); other listeners keep listening', () => {
    const { cache } = setup<number>()
    const a: string[] = []
    const b: string[] = []
    const offA = cache.on('store', (e) => a.push(e.key))
    cache.on('store', (e) => b.push(e.key))
    cache.set('k1', 1)
    offA()
    offA()
    cache.set('k2', 2)
    assert.deepEqual(a, ['k1'])
    assert.deepEqual(b, ['k1', 'k2'])
  })

  test('the same function subscribed twice is called twice and unsubscribed one at a time', () => {
    const { cache } = setup<number>()
    let calls = 0
    const listener = (): void => {
      calls++
    }
    const off1 = cache.on('store', listener)
    cache.on('store', listener)
    cache.set('a', 1)
    assert.equal(calls, 2)
    off1()
    cache.set('b', 1)
    assert.equal(calls, 3)
  })

  test('a throwing listener never corrupts the cache, never escapes, never stops other listeners', () => {
    const { cache, clock } = setup<number>({ maxEntries: 4, policy: 'lru', sweepInterval: 100 })
    const seen: CacheEventType[] = []
    for (const type of ALL_TYPES) {
      cache.on(type, () => {
        throw new Error(`boom on ${type}`)
      })
      cache.on(type, (e) => seen.push(e.type))
    }
    const throwingOnEvent = (): void => {
      throw new Error('entry boom')
    }
    assert.equal(cache.set('a', 1, { onEvent: throwingOnEvent }), true)
    assert.equal(cache.get('a'), 1)
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, i, { onEvent: throwingOnEvent }) // evictions
    assert.equal(cache.size, 4)
    assert.deepEqual([...cache.keys()], ['k9', 'k8', 'k7', 'k6'])
    assert.equal(cache.delete('k9'), true)
    assert.equal(cache.set('t0', 0, { ttl: 50, onEvent: throwingOnEvent }), true)
    clock.advance(1000) // sweep with throwing expire listeners
    assert.equal(cache.size, 3)
    assert.deepEqual([...cache.keys()], ['k8', 'k7', 'k6'])
    cache.set('e', 1, { ttl: 10, onEvent: throwingOnEvent })
    clock.advance(10)
    assert.equal(cache.get('e'), undefined, 'get of an expired entry with throwing expire listeners')
    cache.clear()
    assert.equal(cache.size, 0)
    for (const type of ['store', 'evict', 'erase', 'expire', 'flush'] as const) assert.ok(seen.includes(type), `second ${type} listener ran`)
    assert.ok(cache.stats().listenerErrors > 20)
    // Still fully usable.
    cache.set('after', 1)
    assert.equal(cache.get('after'), 1)
  })

  test('a listener that changes the cache during clear does not cause double reports', () => {
    const { cache, removals } = setup<number>()
    for (let i = 0; i < 5; i++) cache.set(`k${i}`, i)
    let once = false
    cache.on('flush', () => {
      if (once) return
      once = true
      for (let i = 0; i < 5; i++) cache.delete(`k${i}`)
    })
    cache.clear()
    assert.equal(cache.size, 0)
    const byKey = new Map<string, number>()
    for (const [, k] of removals()) byKey.set(k, (byKey.get(k) ?? 0) + 1)
    assert.equal(byKey.size, 5)
    for (const [k, n] of byKey) assert.equal(n, 1, `${k} reported ${n} times`)
  })
})

describe('entries tied to an AbortSignal', () => {
  test('aborting the signal erases the entry (reason erase) and removes the listener', () => {
    const { cache, removals } = setup<number>()
    const controller = new AbortController()
    const seen: CacheEventType[] = []
    cache.set('a', 1, { signal: controller.signal, onEvent: (e) => seen.push(e.type) })
    assert.equal(getEventListeners(controller.signal, 'abort').length, 1)
    controller.abort()
    assert.equal(cache.has('a'), false)
    assert.equal(cache.size, 0)
    assert.deepEqual(removals(), [['erase', 'a', 1]])
    assert.deepEqual(seen, ['store', 'erase'])
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0)
  })

  test('one signal can hold many entries', () => {
    const { cache } = setup<number>()
    const controller = new AbortController()
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, i, { signal: controller.signal })
    cache.set('free', 1)
    controller.abort()
    assert.equal(cache.size, 1)
    assert.equal(cache.has('free'), true)
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0)
  })

  test('an already-aborted signal: not stored, set returns false, an older value is erased', () => {
    const { cache, removals } = setup<number>()
    cache.set('a', 1)
    const controller = new AbortController()
    controller.abort()
    assert.equal(cache.set('a', 2, { signal: controller.signal }), false)
    assert.equal(cache.set('b', 2, { signal: controller.signal }), false)
    assert.equal(cache.has('a'), false)
    assert.equal(cache.has('b'), false)
    assert.deepEqual(removals(), [['erase', 'a', 1]])
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0)
  })

  test('no leak when the entry goes first: delete, overwrite, evict, expire, clear, filterErase', () => {
    const cases: Array<[string, (f: Fixture<number>) => void]> = [
      ['delete', (f) => f.cache.delete('a')],
      ['overwrite without signal', (f) => f.cache.set('a', 2)],
      ['evict', (f) => f.cache.set('b', 2)],
      ['expire (sweep)', (f) => f.clock.advance(10_000)],
      ['clear', (f) => f.cache.clear()],
      ['filterErase', (f) => f.cache.filterErase((k) => k === 'a')],
    ]
    for (const [name, goFirst] of cases) {
      const f = setup<number>({ maxEntries: 1, policy: 'lru', sweepInterval: 100 })
      const controller = new AbortController()
      f.cache.set('a', 1, { signal: controller.signal, ttl: 1000 })
      assert.equal(getEventListeners(controller.signal, 'abort').length, 1, name)
      goFirst(f)
      assert.equal(getEventListeners(controller.signal, 'abort').length, 0, `${name}: abort listener removed`)
      const before = f.events.length
      const sizeBefore = f.cache.size
      const valueBefore = f.cache.peek('a')
      controller.abort()
      assert.equal(f.events.length, before, `${name}: aborting afterwards reports nothing`)
      assert.equal(f.cache.size, sizeBefore, `${name}: aborting afterwards removes nothing`)
      assert.equal(f.cache.peek('a'), valueBefore, `${name}: a newer value under the key survives`)
    }
  })

  test('overwriting with a new signal moves the tie to the new signal', () => {
    const { cache } = setup<number>()
    const first = new AbortController()
    const second = new AbortController()
    cache.set('a', 1, { signal: first.signal })
    cache.set('a', 2, { signal: second.signal })
    assert.equal(getEventListeners(first.signal, 'abort').length, 0)
    assert.equal(getEventListeners(second.signal, 'abort').length, 1)
    first.abort()
    assert.equal(cache.get('a'), 2)
    second.abort()
    assert.equal(cache.has('a'), false)
  })

  test('re-storing under the same signal many times keeps one listener', () => {
    const { cache } = setup<number>()
    const controller = new AbortController()
    for (let i = 0; i < 100; i++) cache.set('a', i, { signal: controller.signal })
    assert.equal(getEventListeners(controller.signal, 'abort').length, 1)
  })

  test('aborting the signal of an entry that has already expired reports expire', () => {
    const { cache, clock, removals } = setup<number>({ sweepInterval: '1h' })
    const controller = new AbortController()
    cache.set('a', 1, { ttl: 10, signal: controller.signal })
    clock.advance(20)
    controller.abort()
    assert.deepEqual(removals(), [['expire', 'a', 1]])
    assert.equal(cache.size, 0)
  })

  test('evicting many signal-tied entries leaves no listeners behind', () => {
    const { cache } = setup<number>({ maxEntries: 10, policy: 'tinylfu' })
    const controllers = Array.from({ length: 200 }, () => new AbortController())
    controllers.forEach((c, i) => cache.set(`k${i}`, i, { signal: c.signal }))
    const attached = controllers.filter((c) => getEventListeners(c.signal, 'abort').length > 0).length
    assert.equal(attached, cache.size, 'only entries still held keep a listener')
    for (const c of controllers) assert.ok(getEventListeners(c.signal, 'abort').length <= 1)
  })
})

describe('waitFor', () => {
  test('resolves at once when the key is present', async () => {
    const { cache, clock } = setup<number>()
    cache.set('a', 1)
    assert.equal(await cache.waitFor('a'), 1)
    assert.equal(clock.pendingTimers, 0, 'no timer left behind')
    cache.set('n', null as unknown as number)
    assert.equal(await cache.waitFor('n'), null)
  })

  test('resolves when the key is stored, for every waiter, and clears its timer', async () => {
    const { cache, clock } = setup<number>()
    const w1 = track(cache.waitFor('a'))
    const w2 = track(cache.waitFor('a', { timeout: '10s' }))
    const other = track(cache.waitFor('b'))
    await flush()
    assert.equal(w1.state, 'pending')
    cache.set('c', 0)
    await flush()
    assert.equal(w1.state, 'pending', 'another key does not wake it')
    clock.advance(1000)
    cache.set('a', 42)
    await flush()
    assert.equal(w1.state, 'fulfilled')
    assert.equal(w1.value, 42)
    assert.equal(w2.value, 42)
    assert.equal(other.state, 'pending')
    assert.equal(clock.pendingTimers, 1, "only b's timeout timer remains")
  })

  test('an expired entry does not satisfy a wait', async () => {
    const { cache, clock } = setup<number>({ sweepInterval: '1h' })
    cache.set('a', 1, { ttl: 10 })
    clock.advance(10)
    const w = track(cache.waitFor('a'))
    await flush()
    assert.equal(w.state, 'pending')
    cache.set('a', 2)
    await flush()
    assert.equal(w.value, 2)
  })

  test('a set with an already-aborted signal does not satisfy a wait', async () => {
    const { cache } = setup<number>()
    const w = track(cache.waitFor('a'))
    assert.equal(cache.set('a', 1, { signal: AbortSignal.abort() }), false)
    await flush()
    assert.equal(w.state, 'pending')
    cache.set('a', 2)
    await flush()
    assert.equal(w.value, 2)
  })

  test('a set that is refused (too large) does not satisfy a wait', async () => {
    const { cache } = setup<number>({ maxBytes: 10 })
    const w = track(cache.waitFor('a'))
    assert.equal(cache.set('a', 1, { size: 11 }), false)
    await flush()
    assert.equal(w.state, 'pending')
    cache.set('a', 2, { size: 1 })
    await flush()
    assert.equal(w.value, 2)
  })

  test('times out after the default 5 s with ERR_WAIT_TIMEOUT and a timeout event', async () => {
    const { cache, clock, events } = setup<number>()
    const w = track(cache.waitFor('a'))
    clock.advance(4999)
    await flush()
    assert.equal(w.state, 'pending')
    clock.advance(1)
    await flush()
    assert.equal(w.state, 'rejected')
    assertCode(w.error, 'ERR_WAIT_TIMEOUT')
    assert.deepEqual(events, [['timeout', 'a', undefined]])
    assert.equal(cache.stats().waitTimeouts, 1)
    cache.set('a', 1) // too late: nothing else happens
    await flush()
    assert.equal(w.state, 'rejected')
  })

  test('timeout per call (string or ms) and per cache (waitTimeout)', async () => {
    const { cache, clock } = setup<number>({ waitTimeout: '2s' })
    const byCache = track(cache.waitFor('a'))
    const byCall = track(cache.waitFor('b', { timeout: '500ms' }))
    const byMs = track(cache.waitFor('c', { timeout: 800 }))
    clock.advance(499)
    await flush()
    assert.equal(byCall.state, 'pending')
    clock.advance(1)
    await flush()
    assert.equal(byCall.state, 'rejected')
    assert.equal(byMs.state, 'pending')
    clock.advance(300)
    await flush()
    assert.equal(byMs.state, 'rejected')
    assert.equal(byCache.state, 'pending')
    clock.advance(1200)
    await flush()
    assert.equal(byCache.state, 'rejected')
    for (const w of [byCache, byCall, byMs]) assertCode(w.error, 'ERR_WAIT_TIMEOUT')
  })

  test('timeout: Infinity waits without a timer', async () => {
    const { cache, clock } = setup<number>()
    const w = track(cache.waitFor('a', { timeout: Infinity }))
    assert.equal(clock.pendingTimers, 0)
    clock.advance(365 * 86_400_000)
    await flush()
    assert.equal(w.state, 'pending')
    cache.set('a', 1)
    await flush()
    assert.equal(w.value, 1)
  })

  test('a bad timeout is ERR_INVALID_OPTIONS', async () => {
    const { cache } = setup<number>()
    await assert.rejects(
      async () => cache.waitFor('a', { timeout: 'soon' as never }),
      (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && (err as Error).message.includes('timeout'),
    )
  })

  test('aborting rejects with ERR_ABORTED, clears the timer and the abort listener', async () => {
    const { cache, clock, events } = setup<number>()
    const controller = new AbortController()
    const w = track(cache.waitFor('a', { signal: controller.signal }))
    assert.equal(getEventListeners(controller.signal, 'abort').length, 1)
    controller.abort(new Error('user left'))
    await flush()
    assert.equal(w.state, 'rejected')
    assertCode(w.error, 'ERR_ABORTED')
    assert.equal(clock.pendingTimers, 0)
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0)
    assert.deepEqual(events, [], 'no timeout event for an abort')
    cache.set('a', 1) // no late resolution, no crash
    await flush()
    assert.equal(w.state, 'rejected')
  })

  test('an already-aborted signal rejects at once with ERR_ABORTED', async () => {
    const { cache } = setup<number>()
    await assert.rejects(cache.waitFor('a', { signal: AbortSignal.abort() }), (err: unknown) => isCacheError(err, 'ERR_ABORTED'))
  })

  test('a resolved wait removes its abort listener', async () => {
    const { cache } = setup<number>()
    const controller = new AbortController()
    const p = cache.waitFor('a', { signal: controller.signal })
    cache.set('a', 1)
    assert.equal(await p, 1)
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0)
  })

  test('a timed-out wait removes its abort listener', async () => {
    const { cache, clock } = setup<number>()
    const controller = new AbortController()
    const w = track(cache.waitFor('a', { signal: controller.signal, timeout: 100 }))
    clock.advance(100)
    await flush()
    assertCode(w.error, 'ERR_WAIT_TIMEOUT')
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0)
  })
})

describe('iteration and queries', () => {
  test('filter, count and filterErase work on live entries', () => {
    const { cache, clock, removals } = setup<number>({ sweepInterval: '1h', policy: 'lru' })
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, i)
    cache.set('gone', 100, { ttl: 10 })
    clock.advance(10)
    const even = (_k: string, v: number): boolean => v % 2 === 0
    assert.deepEqual(cache.filter(even), [
      ['k8', 8],
      ['k6', 6],
      ['k4', 4],
      ['k2', 2],
      ['k0', 0],
    ])
    assert.equal(cache.count(), 10)
    assert.equal(cache.count(even), 5)
    assert.equal(
      cache.count((k) => k === 'gone'),
      0,
    )
    assert.equal(cache.filterErase(even), 5)
    assert.equal(cache.count(), 5)
    assert.deepEqual(
      removals()
        .map(([t, k]) => `${t}:${k}`)
        .sort(),
      ['erase:k0', 'erase:k2', 'erase:k4', 'erase:k6', 'erase:k8'],
    )
    assert.equal(cache.filterErase(() => false), 0)
    assert.equal(cache.stats().erased, 5)
  })

  test('dump gives key, value, size and remaining ttl of live entries, most recent first', () => {
    const { cache, clock } = setup<string>({ maxBytes: 1000, sizeOf: (v) => v.length, policy: 'lru' })
    cache.set('a', 'aaaa', { ttl: 1000 })
    cache.set('b', 'bb', { tti: 300 })
    cache.set('c', 'c', { size: 7 })
    clock.advance(100)
    assert.deepEqual(cache.dump(), [
      { key: 'c', value: 'c', size: 7, remainingTtl: Infinity },
      { key: 'b', value: 'bb', size: 2, remainingTtl: 200 },
      { key: 'a', value: 'aaaa', size: 4, remainingTtl: 900 },
    ])
  })

  test('remainingTtl: ms left, Infinity for none, undefined when absent', () => {
    const { cache, clock } = setup<number>()
    cache.set('t', 1, { ttl: '1m' })
    cache.set('none', 1)
    clock.advance(15_000)
    assert.equal(cache.remainingTtl('t'), 45_000)
    assert.equal(cache.remainingTtl('none'), Infinity)
    assert.equal(cache.remainingTtl('missing'), undefined)
    clock.advance(45_000)
    assert.equal(cache.remainingTtl('t'), undefined)
  })

  test('the cache may be changed while iterating', () => {
    const { cache } = setup<number>()
    for (let i = 0; i < 20; i++) cache.set(`k${i}`, i)
    let seen = 0
    for (const k of cache.keys()) {
      seen++
      cache.delete(k)
    }
    assert.equal(seen, 20)
    assert.equal(cache.size, 0)
    for (let i = 0; i < 5; i++) cache.set(`k${i}`, i)
    const values: number[] = []
    for (const [k, v] of cache.entries()) {
      values.push(v)
      cache.set(`${k}-copy`, v)
    }
    assert.equal(values.length, 5)
    assert.equal(cache.size, 10)
  })

  test('reads other than get do not count as uses for the lru order', () => {
    const { cache } = setup<number>({ policy: 'lru' })
    cache.set('a', 1)
    cache.set('b', 2)
    assert.equal([...cache.entries()].length, 2)
    cache.filter(() => true)
    cache.count()
    cache.dump()
    cache.remainingTtl('a')
    assert.deepEqual([...cache.keys()], ['b', 'a'])
  })
})

describe('stats', () => {
  test('counts hits, misses, stores and removals by reason', () => {
    const { cache, clock } = setup<number>({ maxEntries: 2, maxBytes: 100, maxEntrySize: 50, policy: 'lru' })
    cache.set('a', 1, { size: 10, ttl: 10 })
    cache.get('a') // hit
    cache.get('zz') // miss
    clock.advance(10)
    cache.get('a') // miss (expired)
    cache.set('b', 2, { size: 10 })
    cache.set('c', 3, { size: 10 })
    cache.set('d', 4, { size: 10 }) // evicts b
    cache.set('e', 5, { size: 51 }) // rejected
    cache.delete('c')
    cache.clear() // flush d
    assert.deepEqual(cache.stats(), {
      size: 0,
      bytes: 0,
      hits: 1,
      misses: 2,
      stores: 4,
      rejected: 1,
      expired: 1,
      evicted: 1,
      erased: 1,
      flushed: 1,
      waitTimeouts: 0,
      listenerErrors: 0,
    })
    cache.set('f', 1, { size: 20 })
    assert.equal(cache.stats().size, 1)
    assert.equal(cache.stats().bytes, 20)
  })
})

describe('close', () => {
  test('stops the sweep timer, empties the cache and rejects pending waits with ERR_CLOSED', async () => {
    const { cache, clock, removals } = setup<number>({ sweepInterval: 100 })
    cache.set('a', 1, { ttl: 1000 })
    cache.set('b', 2)
    const w = track(cache.waitFor('x'))
    assert.ok(clock.pendingTimers >= 2)
    cache.close()
    await flush()
    assert.equal(w.state, 'rejected')
    assertCode(w.error, 'ERR_CLOSED')
    assert.equal(clock.pendingTimers, 0, 'no timer left')
    assert.equal(cache.size, 0)
    assert.deepEqual(
      removals()
        .map(([t, k]) => `${t}:${k}`)
        .sort(),
      ['flush:a', 'flush:b'],
    )
    clock.advance(10_000)
    assert.deepEqual(
      removals().filter(([t]) => t === 'timeout'),
      [],
      'a closed wait does not also time out',
    )
  })

  test('after close, waitFor rejects and set throws ERR_CLOSED; close is idempotent', async () => {
    const { cache } = setup<number>()
    cache.close()
    cache.close()
    await assert.rejects(cache.waitFor('a'), (err: unknown) => isCacheError(err, 'ERR_CLOSED'))
    assert.throws(() => cache.set('a', 1), (err: unknown) => isCacheError(err, 'ERR_CLOSED'))
    assert.equal(cache.get('a'), undefined)
  })

  test('close releases the abort listeners of signal-tied entries and of pending waits', async () => {
    const { cache } = setup<number>()
    const entry = new AbortController()
    const wait = new AbortController()
    cache.set('a', 1, { signal: entry.signal })
    const w = track(cache.waitFor('x', { signal: wait.signal }))
    cache.close()
    await flush()
    assertCode(w.error, 'ERR_CLOSED')
    assert.equal(getEventListeners(entry.signal, 'abort').length, 0)
    assert.equal(getEventListeners(wait.signal, 'abort').length, 0)
  })
})

describe('on the system clock', () => {
  test('a cache with pending expiry never keeps the process alive (real timers: the point is the system clock)', () => {
    const entry = new URL('../../src/index.js', import.meta.url).href
    const script = `
      const { MemoryCache } = await import(${JSON.stringify(entry)})
      const cache = new MemoryCache({ maxEntries: 10, sweepInterval: '1s' })
      cache.set('a', 1, { ttl: '1h' })
      cache.set('b', 2, { tti: '10m' })
      if (cache.get('a') !== 1 || cache.get('b') !== 2) process.exit(3)
      console.log('done')
    `
    // If the sweep timer (or the clock's ticker) kept the process alive, the child would run
    // for an hour; the generous kill timeout only turns that hang into a failure.
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 })
    assert.equal(child.error, undefined, `child did not exit by itself: ${String(child.error)}`)
    assert.equal(child.signal, null)
    assert.equal(child.status, 0, child.stderr)
    assert.equal(child.stdout.trim(), 'done')
  })

  test('ttl entries work on the default clock', () => {
    const cache = new MemoryCache<string, number>({ maxEntries: 10 })
    cache.set('a', 1, { ttl: '1h' })
    assert.equal(cache.get('a'), 1)
    const left = cache.remainingTtl('a')
    assert.ok(left !== undefined && left > 3_500_000 && left <= 3_600_000, `remaining ${left}`)
    cache.close()
  })
})
