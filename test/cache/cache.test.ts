import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { describe, test } from 'node:test'
import { type CacheOptions, createCache, type EntryOptions, type FactoryContext, isCacheError, ManualClock, mathRandom, memoryStore } from '../../src/index.js'

/** Lets promise callbacks and setImmediate-queued work run (no timers, no sleeping). */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

function make<V = unknown>(options: CacheOptions = {}): { cache: ReturnType<typeof createCache<V>>; clock: ManualClock } {
  const clock = new ManualClock(0)
  return { cache: createCache<V>({ clock, ...options }), clock }
}

describe('getOrSet basics', () => {
  test('a miss runs the factory and stores; a hit does not', async () => {
    const { cache } = make<number>()
    let calls = 0
    assert.equal(await cache.getOrSet('k', () => ++calls), 1)
    assert.equal(await cache.getOrSet('k', () => ++calls), 1)
    assert.equal(calls, 1)
    assert.equal(await cache.get('k'), 1)
    assert.equal(await cache.has('k'), true)
    const s = cache.stats()
    assert.equal(s.hits, 2)
    assert.equal(s.misses, 1)
    assert.equal(s.factoryCalls, 1)
  })

  test('ttl ends freshness; defaults apply and per-call options override them', async () => {
    const { cache, clock } = make<string>({ defaults: { ttl: '1m' } })
    await cache.getOrSet('a', () => 'a1')
    await cache.getOrSet('b', () => 'b1', { ttl: '2m' })
    clock.advance(60_000)
    assert.equal(await cache.get('a'), undefined)
    assert.equal(await cache.get('b'), 'b1')
    assert.equal(await cache.getOrSet('a', () => 'a2'), 'a2')
  })

  test('set, peek, delete, clear', async () => {
    const { cache } = make<number>()
    await cache.set('x', 1)
    assert.equal(await cache.peek('x'), 1)
    assert.equal(await cache.delete('x'), true)
    assert.equal(await cache.peek('x'), undefined)
    await cache.set('y', 2)
    await cache.clear()
    assert.equal(await cache.get('y'), undefined)
  })

  test('set of undefined rejects with ERR_INVALID_VALUE (docs/reference/errors.md) and leaves the value it would have replaced', async () => {
    for (const store of [undefined, memoryStore()]) {
      const cache = createCache<number | undefined>({ clock: new ManualClock(0), store })
      await cache.set('k', 1)
      await assert.rejects(cache.set('k', undefined), (e: unknown) => isCacheError(e, 'ERR_INVALID_VALUE'))
      assert.equal(await cache.get('k'), 1, 'nothing was written')
      await cache.close()
    }
  })

  test('bad input is rejected with typed errors, and the cache keeps working', async () => {
    const { cache } = make<number>()
    await assert.rejects(cache.getOrSet('', () => 1), (e: unknown) => isCacheError(e, 'ERR_INVALID_KEY'))
    await assert.rejects(cache.getOrSet(42 as unknown as string, () => 1), (e: unknown) => isCacheError(e, 'ERR_INVALID_KEY'))
    await assert.rejects(cache.getOrSet('x'.repeat(2000), () => 1), (e: unknown) => isCacheError(e, 'ERR_INVALID_KEY'))
    await assert.rejects(cache.getOrSet('k', () => 1, { ttl: 'soon' as never }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && /ttl/.test(e.message))
    await assert.rejects(cache.getOrSet('k', () => 1, { strategy: 'yolo' as never }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && /strategy/.test(e.message))
    await assert.rejects(cache.getOrSet('k', () => 1, { refreshAhead: 1.5 }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    await assert.rejects(cache.getOrSet('k', 'not a function' as never), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    assert.throws(() => createCache({ defaults: { grace: -1 } }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && /defaults\.grace/.test(e.message))
    assert.equal(await cache.getOrSet('k', () => 7), 7)
  })

  test('an option name the cache does not know is ERR_INVALID_OPTIONS naming it, with the name it likely meant; it was ignored (memroy left the default tier)', async () => {
    const unknown = (options: unknown, option: string, meant?: string): void => {
      assert.throws(
        () => createCache(options as CacheOptions),
        (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === option && (meant === undefined || e.message.includes(`did you mean ${meant}?`)),
        option,
      )
    }
    unknown({ memroy: { maxEntries: 5 } }, 'memroy', 'memory')
    unknown({ nameSpace: 'a' }, 'nameSpace', 'namespace')
    unknown({ whatever: 1 }, 'whatever')
    unknown({ defaults: { tll: '5m' } }, 'defaults.tll', 'ttl')
    unknown({ defaults: { ttl: '5m', stale: '1m' } }, 'defaults.stale')
    unknown({ defaults: { timeout: { sfot: 10 } } }, 'defaults.timeout.sfot', 'soft')
    unknown({ defaults: { lock: { leese: '1s' } } }, 'defaults.lock.leese', 'lease')
    unknown({ memory: { maxEntries: 5, polcy: 'lru' } }, 'memory.polcy', 'policy')
    unknown({ flight: { timout: '1s' } }, 'flight.timout', 'timeout')
    unknown({ tags: { pruneage: '1h' } }, 'tags.pruneage', 'pruneAge')
    unknown({ origins: { versionTTL: '1h' } }, 'origins.versionTTL', 'versionTtl')
    unknown({ lock: { mode: 'local', wiat: '1s' } }, 'lock.wiat', 'wait')
    unknown({ store: memoryStore(), l2: { timeuot: 50 } }, 'l2.timeuot', 'timeout')
    unknown({ store: memoryStore(), l2: { retry: { attempt: 2 } } }, 'l2.retry.attempt', 'attempts')
    unknown({ store: memoryStore(), l2: { breaker: { openFour: '1s' } } }, 'l2.breaker.openFour', 'openFor')
    // Every documented name is known (one of each group), and wrap's options are checked once, when it is called.
    const cache = createCache({
      memory: { maxEntries: 5, policy: 'lru', ttlJitter: 0, sweepInterval: '1s', waitTimeout: '1s' },
      defaults: { ttl: '1m', tti: '1m', grace: '1m', graceBackoff: '1s', timeout: { soft: 10, hard: 20 }, refreshAhead: 0.5, strategy: 'stampede', lock: { lease: '1s', wait: '1s' }, tags: ['a'], origins: [] },
      flight: { timeout: '1s', detectRecursion: false },
      tags: { pruneAge: '1h', pruneInterval: '1m' },
      origins: { versionTtl: '1h' },
      lock: { mode: 'local', lease: '1s', wait: '1s' },
      maxKeyLength: 100,
      namespace: 'n',
      closeStore: true,
      ticker: false,
      random: mathRandom,
    })
    assert.throws(() => cache.wrap(async (n: number) => n, { key: (n: number) => `k${n}`, tll: '1m' } as never), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === 'tll')
    assert.equal(await cache.wrap(async (n: number) => n, { key: (n) => `k${n}`, ttl: '1m' })(3), 3)
    await cache.close()
  })

  test('close refuses further work', async () => {
    const { cache } = make<number>()
    await cache.set('a', 1)
    await cache.close()
    await cache.close()
    await assert.rejects(cache.getOrSet('a', () => 2), (e: unknown) => isCacheError(e, 'ERR_CLOSED'))
    await assert.rejects(cache.set('a', 2), (e: unknown) => isCacheError(e, 'ERR_CLOSED'))
  })

  test('close refuses the other writes too: delete, clear and invalidateTags reject with ERR_CLOSED and never reach the closed store', async () => {
    // docs/guide/cache.md, close(): "later writes fail with ERR_CLOSED".
    const store = memoryStore()
    const { cache } = make<number>({ store })
    const errors: string[] = []
    cache.on('error', (e) => errors.push(e.error.code))
    await cache.set('a', 1)
    await cache.close()
    await assert.rejects(cache.delete('a'), (e: unknown) => isCacheError(e, 'ERR_CLOSED'))
    await assert.rejects(cache.clear(), (e: unknown) => isCacheError(e, 'ERR_CLOSED'))
    await assert.rejects(cache.invalidateTags(['t']), (e: unknown) => isCacheError(e, 'ERR_CLOSED'))
    assert.deepEqual(errors, [], 'nothing was sent to the closed store')
    // L1 alone: the same answers.
    const { cache: alone } = make<number>()
    await alone.close()
    await assert.rejects(alone.delete('a'), (e: unknown) => isCacheError(e, 'ERR_CLOSED'))
    await assert.rejects(alone.clear(), (e: unknown) => isCacheError(e, 'ERR_CLOSED'))
    await assert.rejects(alone.invalidateTags(['t']), (e: unknown) => isCacheError(e, 'ERR_CLOSED'))
  })

  test('a bad namespace is ERR_INVALID_OPTIONS naming it, with or without a store or a bus', () => {
    // docs/reference/options.md, namespace: "No `:` or `#`"; createCache: invalid options are ERR_INVALID_OPTIONS naming the option.
    for (const namespace of ['a:b', 'a#b', '', 42]) {
      for (const tiers of [{}, { store: memoryStore() }]) {
        assert.throws(
          () => createCache({ ...tiers, namespace: namespace as never }),
          (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === 'namespace',
          `namespace ${JSON.stringify(namespace)} with ${Object.keys(tiers).join(', ') || 'L1 alone'}`,
        )
      }
    }
  })

  test('a malformed tag in defaults.tags is refused by createCache (ERR_INVALID_OPTIONS naming defaults.tags), not by every later call', () => {
    for (const tags of [[''], ['org::1'], ['ok', 42]]) {
      assert.throws(
        () => createCache({ defaults: { tags: tags as never } }),
        (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === 'defaults.tags' && isCacheError((e as Error).cause, 'ERR_INVALID_TAG'),
        JSON.stringify(tags),
      )
    }
    // Well-formed defaults still construct, and a tag function is checked per call as before.
    createCache({ defaults: { tags: ['org:1', 'all'] } })
    createCache({ defaults: { tags: () => ['org:1'] } })
  })

  test('an invalid nested option is named by its path: memory.*, flight.*, tags.* (clock and random stay top-level)', () => {
    // InvalidOptionsError.option is "the dotted path of the offending option, e.g. `memory.maxEntries`".
    const cases: Array<[CacheOptions, string]> = [
      [{ memory: { maxEntries: -1 } }, 'memory.maxEntries'],
      [{ memory: { maxEntries: 10, policy: 'arc' as never } }, 'memory.policy'],
      [{ memory: { maxEntries: 10, sweepInterval: 'soon' as never } }, 'memory.sweepInterval'],
      [{ memory: {} }, 'memory.maxEntries'],
      [{ flight: { timeout: 'soon' as never } }, 'flight.timeout'],
      [{ flight: { detectRecursion: 'yes' as never } }, 'flight.detectRecursion'],
      [{ tags: { pruneAge: 'soon' as never } }, 'tags.pruneAge'],
      [{ random: 5 as never }, 'random'],
      [{ clock: 5 as never }, 'clock'],
    ]
    for (const [options, option] of cases) {
      assert.throws(
        () => createCache(options),
        (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === option && e.message.includes(`"${option}"`),
        option,
      )
    }
  })

  test('memory, flight, tags and l2 that are not objects are ERR_INVALID_OPTIONS naming them, not silently ignored', () => {
    // docs/reference/options.md lists flight.*, tags.* and l2.* as objects; createCache: invalid options are ERR_INVALID_OPTIONS naming the option.
    const cases: Array<[CacheOptions, string]> = [
      [{ flight: 5 as never }, 'flight'],
      [{ flight: '60s' as never }, 'flight'],
      [{ tags: 5 as never }, 'tags'],
      [{ tags: ['org'] as never }, 'tags'],
      [{ store: memoryStore(), l2: 5 as never }, 'l2'],
      [{ store: memoryStore(), l2: '500ms' as never }, 'l2'],
      // memory of another shape was reported as a missing memory.maxEntries bound (or, null, taken as the default).
      [{ memory: 5 as never }, 'memory'],
      [{ memory: 'lru' as never }, 'memory'],
      [{ memory: [] as never }, 'memory'],
      [{ memory: null as never }, 'memory'],
    ]
    for (const [options, option] of cases) {
      assert.throws(
        () => createCache(options),
        (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === option,
        JSON.stringify(options),
      )
    }
  })

  test('memory.ttl, memory.tti, memory.clock and memory.random are refused (ERR_INVALID_OPTIONS naming them), not silently ignored', async () => {
    // docs/reference/options.md, memory: "MemoryCacheOptions ... without clock, random, ttl, tti" (those are defaults.ttl/tti and top-level clock/random).
    for (const [extra, option] of [
      [{ ttl: 1000 }, 'memory.ttl'],
      [{ tti: '10s' }, 'memory.tti'],
      [{ clock: new ManualClock() }, 'memory.clock'],
      [{ random: { next: () => 0.5 } }, 'memory.random'],
    ] as const) {
      assert.throws(
        () => createCache({ memory: { maxEntries: 10, ...extra } as never }),
        (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === option,
        option,
      )
    }
    // Before: memory.ttl 1 s was ignored and the entry lived the default 5 min.
    const { cache, clock } = make<number>({ defaults: { ttl: 1000 } })
    await cache.set('a', 1)
    clock.advance(1000)
    assert.equal(await cache.get('a'), undefined, 'defaults.ttl is the way')
  })

  test('l2 without a store is ERR_INVALID_OPTIONS naming l2, as codec is: its settings apply to an L2 store and were silently ignored', () => {
    for (const l2 of [{ timeout: '100ms' }, { strictWrites: true }, {}] as CacheOptions['l2'][]) {
      assert.throws(
        () => createCache({ l2 }),
        (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === 'l2' && /store/.test(e.message),
        JSON.stringify(l2),
      )
    }
    createCache({ store: memoryStore(), l2: { timeout: '100ms', strictWrites: true } })
  })

  test('timeout and lock that are not objects are ERR_INVALID_OPTIONS per call and in defaults, not silently ignored', async () => {
    // Per-call options: timeout is { soft, hard }, lock is { lease, wait } (docs/guide/cache.md, options.md).
    for (const [options, option] of [
      [{ timeout: 5 }, 'timeout'],
      [{ timeout: '2s' }, 'timeout'],
      [{ lock: 'bogus' }, 'lock'],
      [{ lock: 5 }, 'lock'],
      [{ lock: ['x'] }, 'lock'],
      // A soft timeout at or past the hard one could never fire: the stale value would never be served early.
      [{ timeout: { soft: '2s', hard: '1s' } }, 'timeout.soft'],
      [{ timeout: { soft: 1000, hard: 1000 } }, 'timeout.soft'],
    ] as Array<[EntryOptions, string]>) {
      const { cache } = make<number>()
      await assert.rejects(cache.getOrSet('k', () => 1, options), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === option, JSON.stringify(options))
      await assert.rejects(cache.set('k', 1, options), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === option, JSON.stringify(options))
      assert.equal(await cache.has('k'), false, 'nothing stored')
      assert.throws(
        () => createCache({ defaults: options }),
        (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === `defaults.${option}`,
        `defaults ${JSON.stringify(options)}`,
      )
    }
    // Objects still work.
    const { cache } = make<number>()
    assert.equal(await cache.getOrSet('k', () => 1, { timeout: { soft: '1s' }, lock: { lease: '5s', wait: '1s' } }), 1)
    // Only a pair given together is compared: a per-call hard below the defaults' soft is the caller's choice.
    const { cache: other } = make<number>({ defaults: { timeout: { soft: '2s' } } })
    assert.equal(await other.getOrSet('k', () => 2, { timeout: { hard: '1s' } }), 2)
  })

  test('invalidateTags with options that are not an object is ERR_INVALID_OPTIONS, and nothing is invalidated', async () => {
    const { cache } = make<number>()
    await cache.set('k', 1, { tags: ['t'] })
    for (const options of [5, 'soft', null]) {
      await assert.rejects(cache.invalidateTags(['t'], options as never), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === 'options', String(options))
    }
    assert.equal(await cache.get('k'), 1, 'still served')
    await cache.invalidateTags(['t'], {})
    assert.equal(await cache.get('k'), undefined)
  })

  test('a getOrSet without options (the plain-hit path) checks, counts and falls back like any other', async () => {
    const { cache, clock } = make<unknown>({ defaults: { ttl: '1m' } })
    // Bad input is a rejection, never a synchronous throw.
    for (const call of [() => cache.getOrSet('', () => 1), () => cache.getOrSet('x'.repeat(2000), () => 1), () => cache.getOrSet('k', 1 as never)]) {
      let promise: Promise<unknown> | undefined
      assert.doesNotThrow(() => {
        promise = call()
      })
      await assert.rejects(promise!, (e: unknown) => isCacheError(e, 'ERR_INVALID_KEY') || isCacheError(e, 'ERR_INVALID_OPTIONS'))
    }
    let calls = 0
    assert.equal(await cache.getOrSet('bare', () => ++calls), 1)
    assert.equal(await cache.getOrSet('bare', () => ++calls), 1)
    // Entries written with other options are envelopes: tags (another definition: a miss),
    // grace (fresh: a hit; stale: a miss that keeps the fallback).
    await cache.set('tagged', 'old', { tags: ['t'] })
    assert.equal(await cache.getOrSet('tagged', () => 'new'), 'new')
    await cache.set('graced', 'g1', { ttl: '1s', grace: '1h' })
    assert.equal(await cache.getOrSet('graced', () => 'unused'), 'g1')
    clock.advance(1_000)
    assert.equal(
      await cache.getOrSet('graced', () => {
        throw new Error('source down')
      }),
      'g1',
      'stale fallback',
    )
    // Expired: a miss.
    clock.advance(60_000)
    assert.equal(await cache.getOrSet('bare', () => ++calls), 2)
    const s = cache.stats()
    assert.equal(s.hits, 2)
    assert.equal(s.misses, 4)
    assert.equal(s.staleHits, 1)
    await cache.close()
    await assert.rejects(cache.getOrSet('bare', () => 3), (e: unknown) => isCacheError(e, 'ERR_CLOSED'))
  })

  test('a getOrSet without options under defaults with tags, grace or refreshAhead stores envelopes and reads them in full', async () => {
    const { cache, clock } = make<number>({ defaults: { ttl: 1000, tags: ['org:1'], refreshAhead: 0.5 } })
    let calls = 0
    assert.equal(await cache.getOrSet('k', () => ++calls), 1)
    clock.advance(600)
    assert.equal(await cache.getOrSet('k', () => ++calls), 1, 'served while the refresh runs')
    await flush()
    assert.equal(calls, 2, 'refresh-ahead started by a hit without options')
    assert.equal(await cache.getOrSet('k', () => ++calls), 2)
    await cache.invalidateTags(['org:1'])
    assert.equal(await cache.getOrSet('k', () => ++calls), 3, 'hard-invalidated: a miss')
  })

  test('a clock that throws during a hit rejects the call instead of throwing', async () => {
    let broken = false
    const inner = new ManualClock(0)
    const clock = {
      now: () => {
        if (broken) throw new Error('clock broke')
        return inner.now()
      },
      setTimeout: inner.setTimeout.bind(inner),
      clearTimeout: inner.clearTimeout.bind(inner),
    }
    const cache = createCache<number>({ clock, defaults: { ttl: '1m' } })
    assert.equal(await cache.getOrSet('k', () => 1), 1)
    broken = true
    let promise: Promise<number> | undefined
    assert.doesNotThrow(() => {
      promise = cache.getOrSet('k', () => 2)
    })
    await assert.rejects(promise!, /clock broke/)
  })
})

describe('single-flight through the facade', () => {
  test('1,000 concurrent callers on one missing key: one factory call, all get the value', async () => {
    const { cache } = make<string>()
    const d = deferred<string>()
    let calls = 0
    const all = Array.from({ length: 1000 }, () =>
      cache.getOrSet('hot', () => {
        calls++
        return d.promise
      }),
    )
    d.resolve('v')
    assert.deepEqual(new Set(await Promise.all(all)), new Set(['v']))
    assert.equal(calls, 1)
    assert.equal(cache.stats().flightJoins, 999)
  })

  test('10 keys x 100 callers: 10 factory calls', async () => {
    const { cache } = make<string>()
    let calls = 0
    const all: Array<Promise<string>> = []
    for (let c = 0; c < 100; c++) {
      for (let k = 0; k < 10; k++) {
        all.push(
          cache.getOrSet(`k${k}`, async () => {
            calls++
            await flush()
            return `v${k}`
          }),
        )
      }
    }
    const values = await Promise.all(all)
    assert.equal(calls, 10)
    assert.equal(values[0], 'v0')
    assert.equal(values[999], 'v9')
  })

  test('leader failure: followers fail at once with ERR_LEADER_FAILED carrying the cause', async () => {
    const { cache } = make<string>()
    const d = deferred<string>()
    let calls = 0
    const leader = cache.getOrSet('k', () => {
      calls++
      return d.promise
    })
    const followers = Array.from({ length: 5 }, () => cache.getOrSet('k', () => 'never'))
    const boom = new Error('db down')
    d.reject(boom)
    await assert.rejects(leader, (e: unknown) => e === boom)
    for (const f of followers) await assert.rejects(f, (e: unknown) => isCacheError(e, 'ERR_LEADER_FAILED') && e.cause === boom)
    assert.equal(calls, 1)
    assert.equal(cache.stats().factoryErrors, 1)
  })

  test('a follower times out after flight.timeout; the leader still stores', async () => {
    const { cache, clock } = make<string>({ flight: { timeout: '2s' } })
    const d = deferred<string>()
    const leader = cache.getOrSet('k', () => d.promise)
    const follower = cache.getOrSet('k', () => 'x')
    clock.advance(2000)
    await assert.rejects(follower, (e: unknown) => isCacheError(e, 'ERR_FLIGHT_TIMEOUT'))
    d.resolve('late')
    assert.equal(await leader, 'late')
    assert.equal(await cache.get('k'), 'late')
  })

  test('aborting a follower detaches only it', async () => {
    const { cache } = make<string>()
    const d = deferred<string>()
    const leader = cache.getOrSet('k', () => d.promise)
    const ac = new AbortController()
    const quitter = cache.getOrSet('k', () => 'x', { signal: ac.signal })
    const stayer = cache.getOrSet('k', () => 'x')
    ac.abort()
    await assert.rejects(quitter, (e: unknown) => isCacheError(e, 'ERR_ABORTED'))
    d.resolve('v')
    assert.equal(await leader, 'v')
    assert.equal(await stayer, 'v')
    assert.equal(await cache.get('k'), 'v')
  })

  test('a factory asking for its own key fails with ERR_RECURSIVE_FLIGHT, directly or through a cycle', async () => {
    const { cache } = make<unknown>()
    await assert.rejects(
      cache.getOrSet('self', () => cache.getOrSet('self', () => 1)),
      (e: unknown) => isCacheError(e, 'ERR_RECURSIVE_FLIGHT'),
    )
    const a = (): Promise<unknown> => cache.getOrSet('a', () => b())
    const b = (): Promise<unknown> => cache.getOrSet('b', () => a())
    await assert.rejects(a(), (e: unknown) => isCacheError(e, 'ERR_RECURSIVE_FLIGHT'))
  })

  test('recursion across awaits is refused on every miss path: timeouts, stale fallback, signal, strategies, L2', async () => {
    // Each of these puts different promise plumbing between the factory and its flight.
    const variants: Array<[string, CacheOptions, EntryOptions<unknown>]> = [
      ['defaults', {}, {}],
      ['hard timeout', {}, { timeout: { hard: '10s' } }],
      ['soft timeout with a stale value', {}, { ttl: '1s', grace: '1m', timeout: { soft: '10s' } }],
      ['signal', {}, { signal: new AbortController().signal }],
      ['stampede-async', {}, { strategy: 'stampede-async' }],
      ['L2 store', { store: memoryStore() }, {}],
      ['L2 store, distributed lock', { store: memoryStore(), lock: 'distributed' }, {}],
    ]
    for (const [name, options, entry] of variants) {
      const { cache, clock } = make<unknown>(options)
      // A stale value to fall back on (used by the soft-timeout variant).
      await cache.set('self', 'old', entry)
      await cache.set('a', 'old', entry)
      clock.advance(2_000)
      await cache.delete('self')
      if (entry.grace === undefined) await cache.delete('a')
      const timers = clock.pendingTimers
      const self = (): Promise<unknown> =>
        cache.getOrSet(
          'self',
          async () => {
            await flush()
            return `self(${String(await self())})`
          },
          entry,
        )
      await assert.rejects(self(), (e: unknown) => isCacheError(e, 'ERR_RECURSIVE_FLIGHT'), name)
      const a = (): Promise<unknown> =>
        cache.getOrSet(
          'a',
          async () => {
            await flush()
            return `a(${String(await b())})`
          },
          entry,
        )
      const b = (): Promise<unknown> => cache.getOrSet('b', () => flush().then(a), entry)
      const outcome = await a().then(
        (v) => v,
        (e: unknown) => e,
      )
      if (entry.grace !== undefined) assert.equal(outcome, 'old', `${name}: the stale value answers the failed refresh`)
      else assert.ok(isCacheError(outcome, 'ERR_RECURSIVE_FLIGHT'), `${name}: ${String(outcome)}`)
      assert.equal(clock.pendingTimers, timers, `${name}: no follower left waiting`)
      await cache.close()
    }
  })
})

describe('strategies', () => {
  test('none and async run the factory for every concurrent caller; stampede strategies once', async () => {
    for (const [strategy, expected] of [['none', 3], ['async', 3], ['stampede', 1], ['stampede-async', 1]] as const) {
      const { cache } = make<number>()
      let calls = 0
      const d = deferred<void>()
      const run = (): Promise<number> =>
        cache.getOrSet(
          'k',
          async () => {
            calls++
            await d.promise
            return calls
          },
          { strategy },
        )
      const all = [run(), run(), run()]
      d.resolve()
      await Promise.all(all)
      await flush()
      assert.equal(calls, expected, strategy)
      assert.notEqual(await cache.get('k'), undefined, `${strategy} stored the value`)
    }
  })

  test('async strategies store in the background, after the caller has its value', async () => {
    const { cache } = make<number>()
    const p = cache.getOrSet('k', () => 1, { strategy: 'async' })
    assert.equal(await p, 1)
    await flush()
    assert.equal(await cache.get('k'), 1)
  })
})

describe('fail-safe', () => {
  test('with grace, a failing factory serves the stale value and backs off before retrying', async () => {
    const { cache, clock } = make<string>({ defaults: { ttl: '1m', grace: '1h', graceBackoff: '10s' } })
    await cache.getOrSet('k', () => 'v1')
    clock.advance(60_000)
    let calls = 0
    const failing = (ctx: FactoryContext<string>): string => {
      calls++
      assert.equal(ctx.stale, 'v1')
      throw new Error('source down')
    }
    assert.equal(await cache.getOrSet('k', failing), 'v1')
    assert.equal(calls, 1)
    clock.advance(5_000)
    assert.equal(await cache.getOrSet('k', failing), 'v1')
    assert.equal(calls, 1, 'no retry within the backoff')
    clock.advance(5_000)
    assert.equal(await cache.getOrSet('k', failing), 'v1')
    assert.equal(calls, 2, 'retried after the backoff')
    clock.advance(10_000)
    assert.equal(await cache.getOrSet('k', failing), 'v1')
    assert.equal(calls, 2, 'the backoff doubled')
    clock.advance(10_000)
    assert.equal(await cache.getOrSet('k', () => 'v2'), 'v2')
    assert.ok(cache.stats().staleHits >= 4)
  })

  test('without grace a failure propagates and nothing stale is served', async () => {
    const { cache, clock } = make<string>({ defaults: { ttl: '1m' } })
    await cache.getOrSet('k', () => 'v1')
    clock.advance(60_000)
    await assert.rejects(cache.getOrSet('k', () => Promise.reject(new Error('down'))), /down/)
  })

  test('grace ends: past ttl + grace there is no fallback', async () => {
    const { cache, clock } = make<string>({ defaults: { ttl: '1m', grace: '1m' } })
    await cache.getOrSet('k', () => 'v1')
    clock.advance(120_000)
    await assert.rejects(cache.getOrSet('k', () => Promise.reject(new Error('down'))), /down/)
  })

  test('soft timeout answers with the stale value; the factory goes on and stores its result', async () => {
    const { cache, clock } = make<string>({ defaults: { ttl: '1m', grace: '1h' } })
    await cache.getOrSet('k', () => 'v1')
    clock.advance(60_000)
    const d = deferred<string>()
    const p = cache.getOrSet('k', () => d.promise, { timeout: { soft: '200ms' } })
    clock.advance(200)
    assert.equal(await p, 'v1')
    d.resolve('v2')
    await flush()
    assert.equal(await cache.get('k'), 'v2')
  })

  test('hard timeout fails with ERR_FACTORY_TIMEOUT and aborts the factory signal', async () => {
    const { cache, clock } = make<string>()
    let signal: AbortSignal | undefined
    const p = cache.getOrSet('k', (ctx) => {
      signal = ctx.signal
      return new Promise<string>(() => {})
    }, { timeout: { hard: '2s' } })
    clock.advance(2000)
    await assert.rejects(p, (e: unknown) => isCacheError(e, 'ERR_FACTORY_TIMEOUT'))
    assert.equal(signal?.aborted, true)
    assert.equal(cache.stats().factoryTimeouts, 1)
    assert.equal(clock.pendingTimers, 0)
  })

  test('a fast factory clears its timeout timers', async () => {
    // No TTL, so the engine has no sweep timer and any pending timer would be a leak.
    const { cache, clock } = make<string>({ defaults: { ttl: Infinity } })
    await cache.getOrSet('k', () => 'v', { timeout: { soft: '1s', hard: '5s' } })
    assert.equal(clock.pendingTimers, 0)
  })
})

describe('refresh-ahead and the factory context', () => {
  test('a hit after refreshAhead x ttl starts one background refresh', async () => {
    const { cache, clock } = make<number>({ defaults: { ttl: 1000, refreshAhead: 0.8 } })
    let calls = 0
    const refreshed = deferred<number>()
    const factory = (): number | Promise<number> => (++calls === 1 ? 1 : refreshed.promise)
    await cache.getOrSet('k', factory)
    clock.advance(799)
    assert.equal(await cache.getOrSet('k', factory), 1)
    assert.equal(calls, 1)
    clock.advance(1)
    assert.equal(await cache.getOrSet('k', factory), 1, 'the current value is served during the refresh')
    assert.equal(await cache.getOrSet('k', factory), 1)
    assert.equal(calls, 2, 'one refresh, however many hits')
    refreshed.resolve(2)
    await flush()
    assert.equal(await cache.get('k'), 2)
    assert.equal(cache.stats().refreshes, 1)
  })

  test('a failed refresh-ahead is retried no more often than graceBackoff (doubling), not on every later hit', async () => {
    // Before: 100 hits in the refresh window with a failing factory ran it 100 times in the same millisecond.
    const { cache, clock } = make<number>({ defaults: { ttl: 10_000, refreshAhead: 0.5, graceBackoff: '1s' } })
    let calls = 0
    let failing = false
    const factory = async (): Promise<number> => {
      calls++
      if (failing) throw new Error('source down')
      return calls
    }
    await cache.getOrSet('k', factory)
    failing = true
    clock.advance(6_000)
    for (let i = 0; i < 20; i++) {
      assert.equal(await cache.getOrSet('k', factory), 1, 'the fresh value is still served')
      await flush()
    }
    assert.equal(calls, 2, 'one refresh, then the backoff')
    clock.advance(999)
    await cache.getOrSet('k', factory)
    await flush()
    assert.equal(calls, 2, 'not before graceBackoff')
    clock.advance(1)
    await cache.getOrSet('k', factory)
    await flush()
    assert.equal(calls, 3, 'retried after graceBackoff')
    clock.advance(1_000)
    await cache.getOrSet('k', factory)
    await flush()
    assert.equal(calls, 3, 'the second failure doubles the backoff')
    failing = false
    clock.advance(1_000)
    assert.equal(await cache.getOrSet('k', factory), 1)
    await flush()
    assert.equal(calls, 4)
    assert.equal(await cache.get('k'), 4, 'the successful refresh is stored')
  })

  test('a failed or soft-timed-out refresh-ahead counts no staleHits: the hit that started it served a fresh value (counted in hits)', async () => {
    // stats().staleHits: stale values served by fail-safe. A background refresh serves nobody.
    const { cache, clock } = make<number>({ defaults: { ttl: 1000, refreshAhead: 0.5 } })
    let calls = 0
    await cache.getOrSet('k', async () => {
      if (++calls > 1) throw new Error('source down')
      return 1
    })
    clock.advance(600)
    assert.equal(
      await cache.getOrSet('k', async () => {
        throw new Error('source down')
      }),
      1,
    )
    await flush()
    await flush()
    let s = cache.stats()
    assert.deepEqual({ hits: s.hits, staleHits: s.staleHits, factoryErrors: s.factoryErrors, refreshes: s.refreshes }, { hits: 1, staleHits: 0, factoryErrors: 1, refreshes: 1 })
    // A refresh past its soft timeout: nobody waits for it either.
    const slow = deferred<number>()
    await cache.set('s', 1, { ttl: 1000, refreshAhead: 0.5, timeout: { soft: 10 } })
    clock.advance(600)
    assert.equal(await cache.getOrSet('s', () => slow.promise, { ttl: 1000, refreshAhead: 0.5, timeout: { soft: 10 } }), 1)
    await flush()
    clock.advance(10)
    await flush()
    slow.resolve(2)
    await flush()
    s = cache.stats()
    assert.equal(s.staleHits, 0)
    assert.equal(await cache.get('s'), 2, 'the slow refresh still stores its result')
  })

  test('ctx.setTtl changes the entry ttl; ctx.skip returns without caching', async () => {
    const { cache, clock } = make<string>({ defaults: { ttl: '1h' } })
    await cache.getOrSet('short', (ctx) => {
      ctx.setTtl('1s')
      return 'v'
    })
    clock.advance(1000)
    assert.equal(await cache.get('short'), undefined)
    assert.equal(
      await cache.getOrSet('skipped', (ctx) => {
        ctx.skip()
        return 'v'
      }),
      'v',
    )
    assert.equal(await cache.get('skipped'), undefined)
  })
})

describe('batch and wrap', () => {
  test('getOrSetMany calls the batch factory once with the missing keys only', async () => {
    const { cache } = make<string>()
    await cache.set('b', 'cached-b')
    const seen: string[][] = []
    const values = await cache.getOrSetMany(['a', 'b', 'c', 'a'], async (missing) => {
      seen.push(missing)
      return new Map(missing.map((k) => [k, `v-${k}`]))
    })
    assert.deepEqual(values, ['v-a', 'cached-b', 'v-c', 'v-a'])
    assert.deepEqual(seen, [['a', 'c']])
    assert.equal(await cache.get('c'), 'v-c')
  })

  test('getOrSetMany joins keys already in flight and accepts arrays and objects', async () => {
    const { cache } = make<string>()
    const d = deferred<string>()
    const single = cache.getOrSet('x', () => d.promise)
    const seen: string[][] = []
    const many = cache.getOrSetMany(['x', 'y', 'z'], (missing) => {
      seen.push(missing)
      return missing.map((k) => `arr-${k}`)
    })
    d.resolve('single-x')
    assert.deepEqual(await many, ['single-x', 'arr-y', 'arr-z'])
    assert.equal(await single, 'single-x')
    assert.deepEqual(seen, [['y', 'z']])
    const obj = await cache.getOrSetMany(['p', 'q'], () => ({ p: 'P' }))
    assert.deepEqual(obj, ['P', undefined])
    assert.equal(await cache.has('q'), false)
    assert.equal(cache.stats().factoryErrors, 0, 'a key left out of the batch is not an error')
  })

  test('getOrSetMany with an object result reads its own keys only: keys named like Object.prototype members resolve to undefined, uncached', async () => {
    // "Keys it leaves out resolve to undefined, uncached": __proto__, constructor, toString were answered
    // with Object.prototype and its methods (and cached).
    const { cache } = make<unknown>()
    const keys = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']
    assert.deepEqual(await cache.getOrSetMany(keys, () => ({})), keys.map(() => undefined))
    for (const k of keys) assert.equal(await cache.has(k), false, k)
    // An own key of one of those names is a value like any other.
    const own = JSON.parse('{"__proto__": 1, "constructor": 2}') as Record<string, number>
    assert.deepEqual(await cache.getOrSetMany(['__proto__', 'constructor'], () => own), [1, 2])
    assert.equal(await cache.get('constructor'), 2)
  })

  test('a wrapped function whose key function throws rejects instead of throwing synchronously, as a bad key does', async () => {
    const { cache } = make<number>()
    const boom = cache.wrap(async (n: number) => n, {
      key: () => {
        throw new Error('no key')
      },
    })
    let promise: Promise<number> | undefined
    assert.doesNotThrow(() => {
      promise = boom(1)
    })
    await assert.rejects(promise!, /no key/)
    const tagged = cache.wrap(async (n: number) => n, {
      key: () => {
        throw new Error('no key either')
      },
      tags: (n: number) => [`n:${n}`],
    })
    assert.doesNotThrow(() => {
      promise = tagged(1)
    })
    await assert.rejects(promise!, /no key either/)
    const badKey = cache.wrap(async (n: number) => n, { key: () => 5 as never })
    await assert.rejects(badKey(1), (e: unknown) => isCacheError(e, 'ERR_INVALID_KEY'))
  })

  test('getOrSetMany with a batch that is not a function rejects with ERR_INVALID_OPTIONS and starts nothing', async () => {
    const { cache } = make<string>()
    for (const batch of [undefined, null, 'load', {}]) {
      await assert.rejects(cache.getOrSetMany(['a', 'b'], batch as never), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && /factory/.test(e.message))
    }
    assert.equal(cache.stats().factoryCalls, 0)
    assert.equal(cache.stats().flightJoins, 0)
    assert.equal(await cache.getOrSet('a', () => 'later'), 'later', 'no flight was left behind')
  })

  test('getOrSetMany: a failing batch fails every missing key', async () => {
    const { cache } = make<string>()
    await assert.rejects(cache.getOrSetMany(['a', 'b'], () => Promise.reject(new Error('batch down'))), /batch down/)
  })

  test('wrap caches by the key function', async () => {
    const { cache } = make<{ id: number }>()
    let calls = 0
    const load = async (id: number): Promise<{ id: number }> => {
      calls++
      return { id }
    }
    const getUser = cache.wrap(load, { key: (id) => `user:${id}`, ttl: '1m' })
    assert.deepEqual(await getUser(1), { id: 1 })
    assert.deepEqual(await getUser(1), { id: 1 })
    assert.deepEqual(await getUser(2), { id: 2 })
    assert.equal(calls, 2)
    assert.deepEqual(await cache.get('user:2'), { id: 2 })
  })
  test('a wrapped function is called with the this it was called on, as a method would be (fixed and computed tags)', async () => {
    const { cache } = make<number>()
    const repo = {
      base: 100,
      load: cache.wrap(async function (this: { base: number }, n: number) {
        return this.base + n
      }, { key: (n) => `repo:${n}` }),
      tagged: cache.wrap(async function (this: { base: number }, n: number) {
        return this.base * n
      }, { key: (n) => `tagged:${n}`, tags: (n, r) => [`t:${n}:${r}`] }),
    }
    assert.equal(await repo.load(1), 101)
    assert.equal(await repo.tagged(2), 200)
    // Cached: the key alone decides, as documented (instance state is not part of the key).
    repo.base = 5
    assert.equal(await repo.load(1), 101)
  })
})

describe('events and waitFor', () => {
  test('listeners receive the cached value, not the internal envelope', async () => {
    const { cache } = make<string>()
    const seen: unknown[] = []
    const off = cache.on('store', (e) => seen.push([e.type, e.key, e.value]))
    await cache.getOrSet('k', () => 'v')
    off()
    await cache.set('k2', 'w')
    assert.deepEqual(seen, [['store', 'k', 'v']])
  })

  test('waitFor resolves when another caller stores the key', async () => {
    const { cache, clock } = make<string>()
    const waiting = cache.waitFor('k', { timeout: '1s' })
    await cache.set('k', 'v')
    assert.equal(await waiting, 'v')
    const never = cache.waitFor('nope', { timeout: '1s' })
    clock.advance(1000)
    await assert.rejects(never, (e: unknown) => isCacheError(e, 'ERR_WAIT_TIMEOUT'))
  })

  /** Settles `p` within a few turns of the event loop, or says it is still pending. */
  async function settled<T>(p: Promise<T>): Promise<{ value: T } | { error: unknown } | 'pending'> {
    let out: { value: T } | { error: unknown } | 'pending' = 'pending'
    p.then(
      (value) => (out = { value }),
      (error: unknown) => (out = { error }),
    )
    for (let i = 0; i < 5; i++) await flush()
    return out
  }

  test('waitFor agrees with get: never a value a hard invalidation retired (it waits for the next one)', async () => {
    const { cache, clock } = make<string>()
    await cache.set('k', 'old', { tags: ['t'] })
    await cache.invalidateTags(['t'])
    // Asked first: L1 still holds the retired entry (get would drop it on sight).
    const waiting = cache.waitFor('k', { timeout: '1s' })
    assert.equal(await settled(waiting), 'pending')
    assert.equal(await cache.get('k'), undefined)
    await cache.set('k', 'new', { tags: ['t'] })
    assert.deepEqual(await settled(waiting), { value: 'new' })
    // Nothing fresh arrives: the wait times out rather than answer with the retired value.
    await cache.invalidateTags(['t'])
    const never = cache.waitFor('k', { timeout: '1s' })
    clock.advance(1000)
    await assert.rejects(never, (e: unknown) => isCacheError(e, 'ERR_WAIT_TIMEOUT'))
  })

  test('waitFor agrees with get: not a value past its TTL inside grace, nor a soft-invalidated one, nor a stale fallback stored again', async () => {
    const { cache, clock } = make<string>()
    await cache.set('g', 'v1', { ttl: '1s', grace: '1m' })
    clock.advance(1500)
    const graced = cache.waitFor('g', { timeout: '5s' })
    assert.equal(await settled(graced), 'pending')
    assert.equal(await cache.get('g'), undefined)
    // A factory failure puts the stale fallback back into L1: still not a value get returns.
    assert.equal(await cache.getOrSet('g', () => Promise.reject(new Error('down')), { ttl: '1s', grace: '1m' }), 'v1')
    assert.equal(await settled(graced), 'pending')
    await cache.set('g', 'v2', { ttl: '1s', grace: '1m' })
    assert.deepEqual(await settled(graced), { value: 'v2' })

    await cache.set('s', 'w1', { tags: ['soft'] })
    await cache.invalidateTags(['soft'], { mode: 'soft' })
    const soft = cache.waitFor('s', { timeout: '5s' })
    assert.equal(await settled(soft), 'pending')
    assert.equal(await cache.get('s'), undefined)
    await cache.set('s', 'w2', { tags: ['soft'] })
    assert.deepEqual(await settled(soft), { value: 'w2' })
  })
})

describe('per-call options resolved once (P11)', () => {
  test('per-call TTLs stay distinct on every path: first use, the last one kept, the memo, the defaults', async () => {
    const { cache, clock } = make<string>({ defaults: { ttl: '10s' } })
    // One TTL repeated, another, back to the first (from the memo), the defaults' value itself.
    await cache.getOrSet('a', () => 'a', { ttl: '1s' })
    await cache.getOrSet('b', () => 'b', { ttl: '1s' })
    await cache.set('c', 'c', { ttl: 3000 })
    await cache.getOrSet('d', () => 'd', { ttl: '1s' })
    await cache.set('e', 'e', { ttl: '10s' })
    await cache.getOrSet('f', () => 'f', { ttl: 3000 })
    clock.advance(1500)
    assert.deepEqual(await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map((k) => cache.get(k))), [undefined, undefined, 'c', undefined, 'e', 'f'])
    clock.advance(2000)
    assert.deepEqual(await Promise.all(['c', 'e', 'f'].map((k) => cache.get(k))), [undefined, 'e', undefined])
    clock.advance(7000)
    assert.equal(await cache.get('e'), undefined)
  })

  test('a bad per-call TTL is refused even on a hit, and is never kept', async () => {
    const { cache } = make<number>()
    await cache.set('k', 1)
    for (const ttl of ['', -1, 0, 'soon', '1s', '', -1] as never[]) {
      if (ttl === '1s') {
        assert.equal(await cache.getOrSet('k', () => 2, { ttl }), 1)
        continue
      }
      await assert.rejects(cache.getOrSet('k', () => 2, { ttl }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
      await assert.rejects(cache.set('k', 2, { ttl }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    }
    assert.equal(await cache.get('k'), 1)
  })

  test('fields that repeat the defaults act as the defaults; other fields still apply per call', async () => {
    const tags = ['org:1']
    const { cache, clock } = make<string>({ defaults: { ttl: '1s', grace: '1m', tags } })
    await cache.getOrSet('k', () => 'v1', { grace: '1m', tags, ttl: '1s' })
    clock.advance(2000)
    // Within grace: a failing factory serves the stale value, as under the defaults.
    assert.equal(await cache.getOrSet('k', () => Promise.reject(new Error('down')), { grace: '1m', tags }), 'v1')
    await cache.invalidateTags(['org:1'])
    assert.equal(await cache.getOrSet('k', () => 'v2', { tags }), 'v2')
    // A field that differs is honoured: other tags make another definition (a miss).
    assert.equal(await cache.getOrSet('k', () => 'v3', { tags: ['org:2'] }), 'v3')
  })

  test('{ ttl, tags } literals per call: equal ones share a resolution, a changed array afterwards changes nothing kept', async () => {
    const { cache } = make<string>()
    const reused = ['team:1']
    await cache.getOrSet('a', () => 'a1', { ttl: '1h', tags: reused })
    // The caller reuses its array for another call site: what was kept must not follow it.
    reused[0] = 'team:2'
    await cache.getOrSet('b', () => 'b1', { ttl: '1h', tags: ['team:1'] })
    await cache.getOrSet('c', () => 'c1', { ttl: '1h', tags: reused })
    await cache.invalidateTags(['team:1'])
    // a and b carry team:1, c carries team:2.
    assert.equal(await cache.getOrSet('a', () => 'a2', { ttl: '1h', tags: ['team:1'] }), 'a2')
    assert.equal(await cache.getOrSet('b', () => 'b2', { ttl: '1h', tags: ['team:1'] }), 'b2')
    assert.equal(await cache.getOrSet('c', () => 'c2', { ttl: '1h', tags: ['team:2'] }), 'c1')
    // Another tag definition is another entry (a miss), from the memo or not.
    assert.equal(await cache.getOrSet('c', () => 'c3', { ttl: '1h', tags: ['team:1'] }), 'c3')
  })

  test('tags per key ({ tags: [`user:${id}`] }): each entry is tagged with its own, TTL and grace as given', async () => {
    const { cache, clock } = make<string>()
    for (const id of [1, 2, 3]) await cache.getOrSet(`u${id}`, () => `v${id}`, { ttl: '1s', grace: '1m', tags: [`user:${id}`] })
    await cache.invalidateTags(['user:2'])
    const again = (id: number, value: string): Promise<string> => cache.getOrSet(`u${id}`, () => value, { ttl: '1s', grace: '1m', tags: [`user:${id}`] })
    assert.equal(await again(1, 'x'), 'v1')
    assert.equal(await again(2, 'w2'), 'w2')
    assert.equal(await again(3, 'x'), 'v3')
    clock.advance(2000)
    // Past the TTL, within grace: a failing factory serves the stale value.
    assert.equal(await cache.getOrSet('u3', () => Promise.reject(new Error('down')), { ttl: '1s', grace: '1m', tags: ['user:3'] }), 'v3')
    clock.advance(120_000)
    await assert.rejects(cache.getOrSet('u3', () => Promise.reject(new Error('down')), { ttl: '1s', grace: '1m', tags: ['user:3'] }), /down/)
  })

  test('more option shapes than are kept, interleaved: each call keeps its own TTL, grace and tags', async () => {
    const { cache, clock } = make<number>()
    // 12 shapes (the memo keeps fewer), each used twice, in turn.
    const shape = (i: number): EntryOptions<number> => ({ ttl: 1000 * (i + 1), grace: i % 2 === 0 ? '1m' : 0, tags: [`s:${i}`], strategy: 'stampede' })
    for (let round = 0; round < 2; round++) for (let i = 0; i < 12; i++) await cache.getOrSet(`k${i}:${round}`, () => i, shape(i))
    clock.advance(6500)
    // TTLs of 1..6 s are over, 7..12 s are not.
    for (let i = 0; i < 12; i++) assert.equal(await cache.get(`k${i}:1`), i >= 6 ? i : undefined, `k${i}`)
    await cache.invalidateTags(['s:9'])
    assert.equal(await cache.get('k9:0'), undefined)
    assert.equal(await cache.get('k10:0'), 10)
  })

  test('bad fields beside tags are refused on every call and never kept', async () => {
    const { cache } = make<number>()
    for (let i = 0; i < 3; i++) {
      await assert.rejects(cache.getOrSet('k', () => 1, { ttl: '1h', tags: ['a'], grace: 'later' as never }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
      await assert.rejects(cache.getOrSet('k', () => 1, { ttl: '1h', tags: 'a' as never }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
      await assert.rejects(cache.set('k', 1, { ttl: -5, tags: ['a'] }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    }
    assert.equal(await cache.getOrSet('k', () => 7, { ttl: '1h', tags: ['a'] }), 7)
  })

  test('a tags function is one definition per function: the same function hits, another misses', async () => {
    const { cache } = make<{ org: number }>()
    const byOrg = (v: { org: number }): string[] => [`org:${v.org}`]
    assert.deepEqual(await cache.getOrSet('k', () => ({ org: 1 }), { ttl: '1h', tags: byOrg }), { org: 1 })
    assert.deepEqual(await cache.getOrSet('k', () => ({ org: 2 }), { ttl: '1h', tags: byOrg }), { org: 1 })
    await cache.invalidateTags(['org:1'])
    assert.deepEqual(await cache.getOrSet('k', () => ({ org: 3 }), { ttl: '1h', tags: byOrg }), { org: 3 })
  })

  test('wrap: tags computed per call from arguments and result, fixed tags, and bad options refused per call', async () => {
    const { cache } = make<{ id: number; org: number }>()
    let calls = 0
    const load = cache.wrap(
      async (id: number) => {
        calls++
        return { id, org: id % 3 }
      },
      { key: (id) => `u:${id}`, ttl: '1h', grace: '1m', tags: (id, user) => [`org:${user.org}`, `user:${id}`] },
    )
    for (let round = 0; round < 2; round++) for (let id = 0; id < 9; id++) assert.deepEqual(await load(id), { id, org: id % 3 })
    assert.equal(calls, 9)
    await cache.invalidateTags(['org:1'])
    await cache.invalidateTags(['user:2'])
    for (let id = 0; id < 9; id++) await load(id)
    // org:1 is ids 1, 4, 7; user:2 is id 2.
    assert.equal(calls, 13)

    let fixedCalls = 0
    const fixed = cache.wrap(async (id: number) => ({ id, org: ++fixedCalls }), { key: (id) => `f:${id}`, tags: ['fixed'] })
    await fixed(1)
    await fixed(2)
    await fixed(1)
    assert.equal(fixedCalls, 2)
    await cache.invalidateTags(['fixed'])
    await fixed(1)
    assert.equal(fixedCalls, 3)

    const bad = cache.wrap(async (id: number) => ({ id, org: 0 }), { key: (id) => `b:${id}`, ttl: -1 })
    for (let i = 0; i < 2; i++) await assert.rejects(bad(i), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
  })

  test('set without L2 or bus resolves at once and stores before it returns', async () => {
    const { cache } = make<number>()
    const done = cache.set('k', 1, { ttl: '1m' })
    assert.equal(await cache.peek('k'), 1)
    await done
    await cache.close()
    await assert.rejects(cache.set('k', 2), (e: unknown) => isCacheError(e, 'ERR_CLOSED'))
  })

  test('set with nothing beyond TTL and TTI (L1 alone): exact TTL and TTI, and it replaces an entry that had tags', async () => {
    const { cache, clock } = make<string>()
    await cache.set('a', 'tagged', { tags: ['t'] })
    await cache.set('a', 'plain', { ttl: '1m' })
    await cache.invalidateTags(['t'])
    assert.equal(await cache.get('a'), 'plain', 'the plain value does not depend on the old tags')
    await cache.set('b', 'idle', { tti: '10s' })
    clock.advance(59_999)
    assert.equal(await cache.peek('a'), 'plain')
    assert.equal(await cache.peek('b'), undefined, 'idle for 10 s')
    clock.advance(1)
    assert.equal(await cache.peek('a'), undefined, 'expired at its TTL, no grace')
    await cache.set('c', 'v', { ttl: 1000, grace: 0 })
    clock.advance(999)
    assert.equal(await cache.get('c'), 'v')
    clock.advance(1)
    assert.equal(await cache.get('c'), undefined)
    assert.deepEqual(cache.stats().evictions, { expire: 3, evict: 0, erase: 0, flush: 0 })
    await cache.close()
  })

  test('evictions still let the tag trie shed idle nodes (memory pressure), without an evict listener', async () => {
    const { cache, clock } = make<number>({ memory: { maxEntries: 10 }, tags: { pruneAge: '1s', pruneInterval: '1h' } })
    for (let i = 0; i < 10; i++) await cache.set(`k${i}`, i, { tags: [`t:${i}`] })
    await cache.invalidateTags(Array.from({ length: 10 }, (_, i) => `t:${i}`))
    const before = cache.stats().tagNodes
    assert.ok(before >= 10, `expected the trie to hold the tags, got ${before}`)
    // Idle past pruneAge, entries still fresh (TTL 5 min): new keys evict old ones.
    clock.advance(2000)
    for (let i = 10; i < 20; i++) await cache.set(`k${i}`, i)
    assert.ok(cache.stats().evictions.evict > 0)
    const after = cache.stats().tagNodes
    assert.ok(after < before, `expected evictions to prune idle tag nodes: ${before} before, ${after} after`)
  })
})

describe('ticker option (P11)', () => {
  // A child process per case: thread wake-ups are process-wide.
  // `ms`: how long it is read. The ticking case reads for 2 s: at ~1,000 ticks a second it clears
  // 100 wake-ups even when a loaded machine schedules each tick several ms late.
  const wakeupsWhileReading = (options: string, ms: number): number => {
    const mod = new URL('../../src/index.js', import.meta.url).href
    const script = `
      import { readdirSync, readFileSync } from 'node:fs'
      const { createCache } = await import(${JSON.stringify(mod)})
      const wakeups = () => readdirSync('/proc/self/task').map((t) => {
        try { return Number(/voluntary_ctxt_switches:\\s+(\\d+)/.exec(readFileSync('/proc/self/task/' + t + '/status', 'utf8'))[1]) } catch { return 0 }
      }).reduce((a, b) => a + b, 0)
      const cache = createCache(${options})
      await cache.set('k', 1)
      await new Promise((r) => setTimeout(r, 100))
      const w0 = wakeups()
      // Hits as light traffic makes them: a burst, then one every 50 ms.
      for (let i = 0; i < 1000; i++) await cache.getOrSet('k', () => 2)
      const reads = setInterval(() => void cache.getOrSet('k', () => 2), 50)
      await new Promise((r) => setTimeout(r, ${ms}))
      clearInterval(reads)
      console.log(wakeups() - w0)
      process.exit(0)
    `
    return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, STRATACACHE_NO_TICKER: '' } }))
  }

  test('createCache({ ticker: false }) reads Date.now() and starts no thread; the default starts the ticker', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
    const off = wakeupsWhileReading('{ ticker: false }', 500)
    assert.ok(off < 50, `ticker: false: ${off} wake-ups in 0.5 s`)
    const on = wakeupsWhileReading('{}', 2000)
    assert.ok(on > 100, `default: the ticker runs after reads (${on} wake-ups in 2 s)`)
  })

  test('a bad ticker option, or one given with a clock, is ERR_INVALID_OPTIONS', () => {
    assert.throws(() => createCache({ ticker: 'no' as never }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && /ticker/.test(e.message))
    assert.throws(() => createCache({ ticker: false, clock: new ManualClock(0) }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && /ticker/.test(e.message))
  })
})
