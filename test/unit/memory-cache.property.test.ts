/**
 * Model-based property test of MemoryCache.
 *
 * Random sequences of set (random ttl / tti / size, some with a per-entry onEvent), get,
 * peek, has, delete, clear, purgeExpired and clock advances (some crossing many sweep
 * intervals) run against the engine and a plain reference model: a Map, in recency order
 * (last = most recently used), of key -> { value, expiresAt, idleMs, idleAt, size }.
 *
 * The model holds what the engine holds, expired-but-unreclaimed entries included:
 * - removals the model can predict (the key of a read, delete, clear, an exact-LRU victim)
 *   are predicted, with their reason;
 * - removals that are the engine's choice (TinyLFU victims, which expired entries the sweep
 *   reclaims and when) are learned from the engine's events, and each one is checked: the
 *   entry was held with that value, `expire` iff its deadline had passed at that moment,
 *   `evict` only while a bound was exceeded, and the sweep within 2 sweep intervals.
 * Since the model drops an entry only on a reported event and `size` must match after every
 * step, a silent removal, a double report or a report of an entry still present all fail.
 *
 * Values are unique per set, so any wrong or stale value is caught. Every value a read
 * returns is predicted exactly.
 *
 * Reproduce a failure with the seed and path fast-check prints; STRATACACHE_FC_SEED and
 * STRATACACHE_FC_RUNS override the fixed seed and the number of runs.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { type CacheEvent, type CacheEventType, type Duration, ManualClock, MemoryCache, type MemoryCacheOptions, SeededRandom, type SetOptions } from '../../src/index.js'

type Key = number
type Val = number

type Op =
  | { t: 'set'; k: Key; ttl: number | null; tti: number | null; size: number; hook: boolean; asString: boolean }
  | { t: 'get' | 'peek' | 'has' | 'delete'; k: Key }
  | { t: 'clear' }
  | { t: 'purge' }
  | { t: 'advance'; ms: number }

interface ModelEntry {
  value: Val
  /** TTL deadline (Infinity if none). */
  expiresAt: number
  /** Time-to-idle in ms (Infinity if none). */
  idleMs: number
  /** Idle deadline (Infinity if none). */
  idleAt: number
  size: number
}

interface Config {
  name: string
  policy: 'lru' | 'tinylfu'
  maxEntries?: number
  maxBytes?: number
  maxEntrySize?: number
  /** Cache-level default ttl. */
  ttl?: number
  sweepInterval: number
}

interface Ev {
  type: CacheEventType
  key: Key
  value: Val | undefined
  /** Clock time when the event fired. */
  at: number
}

const deadlineOf = (m: ModelEntry): number => Math.min(m.expiresAt, m.idleAt)
const expiredAt = (m: ModelEntry, now: number): boolean => deadlineOf(m) <= now

// ---- operation generators -------------------------------------------------------------

const KEYS = 8
const keyArb = fc.integer({ min: 0, max: KEYS - 1 })
/** Times on a 10 ms grid, so reads and sweeps often land exactly on deadlines. */
const grid = (min: number, max: number): fc.Arbitrary<number> => fc.integer({ min, max }).map((n) => n * 10)

function opArb(sized: boolean): fc.Arbitrary<Op> {
  const ttl = fc.oneof(
    { weight: 3, arbitrary: fc.constant(null) }, // the cache default
    { weight: 1, arbitrary: fc.constant(Infinity) },
    { weight: 6, arbitrary: grid(1, 40) },
  )
  const tti = fc.oneof({ weight: 5, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constant(Infinity) }, { weight: 3, arbitrary: grid(1, 20) })
  const size = sized
    ? fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 60 }) }, { weight: 1, arbitrary: fc.integer({ min: 61, max: 130 }) })
    : fc.constant(0)
  const set = fc.record({ t: fc.constant('set' as const), k: keyArb, ttl, tti, size, hook: fc.boolean(), asString: fc.boolean() })
  const read = fc.record({ t: fc.constantFrom('get' as const, 'peek' as const, 'has' as const), k: keyArb })
  const advance = fc.oneof(
    { weight: 6, arbitrary: grid(0, 15) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 120 }) }, // off the grid
    { weight: 1, arbitrary: grid(20, 300) }, // many sweep intervals at once
  )
  return fc.oneof(
    { weight: 8, arbitrary: set },
    { weight: 8, arbitrary: read },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('delete' as const), k: keyArb }) },
    { weight: 5, arbitrary: fc.record({ t: fc.constant('advance' as const), ms: advance }) },
    { weight: 1, arbitrary: fc.constant({ t: 'clear' as const }) },
    { weight: 1, arbitrary: fc.constant({ t: 'purge' as const }) },
  )
}

const toDuration = (ms: number, asString: boolean): Duration => (asString && Number.isFinite(ms) ? (`${ms}ms` as Duration) : ms)

// ---- one run ----------------------------------------------------------------------------

function run(config: Config, ops: readonly Op[]): void {
  const clock = new ManualClock(0)
  const sized = config.maxBytes !== undefined
  const maxEntries = config.maxEntries ?? Infinity
  const maxBytes = config.maxBytes ?? Infinity
  const maxEntrySize = config.maxEntrySize ?? maxBytes
  const exactLru = config.policy === 'lru'
  const defaultTtl = config.ttl ?? Infinity

  const options: MemoryCacheOptions<Key, Val> = {
    policy: config.policy,
    clock,
    sweepInterval: config.sweepInterval,
    // sizeOf must never be consulted: every set passes its size.
    sizeOf: () => {
      throw new Error('sizeOf called although set passed a size')
    },
  }
  if (config.maxEntries !== undefined) options.maxEntries = config.maxEntries
  if (config.maxBytes !== undefined) options.maxBytes = config.maxBytes
  if (config.maxEntrySize !== undefined) options.maxEntrySize = config.maxEntrySize
  if (config.ttl !== undefined) options.ttl = config.ttl
  const cache = new MemoryCache<Key, Val>(options)

  const events: Ev[] = []
  for (const type of ['store', 'expire', 'evict', 'erase', 'flush', 'timeout'] as const) {
    cache.on(type, (e) => events.push({ type: e.type, key: e.key, value: e.value, at: clock.now() }))
  }
  /** Per-entry onEvent calls, as [value the entry was stored with, event]. */
  const hookCalls: Array<[Val, CacheEvent<Key, Val>]> = []
  const hooked = new Set<Val>()

  const model = new Map<Key, ModelEntry>()
  const tally = { stores: 0, expired: 0, evicted: 0, erased: 0, flushed: 0, rejected: 0, hits: 0, misses: 0 }
  let nextValue = 0

  const modelBytes = (): number => {
    let n = 0
    for (const m of model.values()) n += m.size
    return n
  }
  const over = (): boolean => model.size > maxEntries || modelBytes() > maxBytes
  const count = (type: CacheEventType): void => {
    if (type === 'store') tally.stores++
    else if (type === 'expire') tally.expired++
    else if (type === 'evict') tally.evicted++
    else if (type === 'erase') tally.erased++
    else if (type === 'flush') tally.flushed++
  }

  for (let step = 0; step < ops.length; step++) {
    const op = ops[step]
    const where = `step ${step} ${JSON.stringify(op)}`
    events.length = 0
    hookCalls.length = 0
    const now = clock.now()
    let cursor = 0
    const take = (what: string): Ev => {
      assert.ok(cursor < events.length, `${where}: expected ${what}, got no more events (all: ${JSON.stringify(events)})`)
      return events[cursor++]
    }
    /** Consumes the next event, which must be exactly this one, and applies it to the model. */
    const expectRemoval = (type: CacheEventType, k: Key): void => {
      const m = model.get(k)!
      const ev = take(`${type} ${k}`)
      assert.deepEqual([ev.type, ev.key, ev.value], [type, k, m.value], `${where}: event`)
      count(type)
      model.delete(k)
    }
    /** Consumes the next event, which the engine chose: it must be a legitimate removal. */
    const acceptRemoval = (allowed: readonly CacheEventType[]): Ev => {
      const ev = take('a removal')
      const m = model.get(ev.key)
      assert.ok(m !== undefined, `${where}: ${ev.type} for key ${ev.key}, which is not held`)
      assert.equal(ev.value, m.value, `${where}: ${ev.type} for ${ev.key} carries the held value`)
      const expired = expiredAt(m, ev.at)
      assert.equal(ev.type === 'expire', expired, `${where}: ${ev.key} removed as ${ev.type} at ${ev.at}; its deadline is ${deadlineOf(m)}`)
      assert.ok(ev.type === 'expire' || allowed.includes(ev.type), `${where}: unexpected ${ev.type} for ${ev.key}`)
      count(ev.type)
      model.delete(ev.key)
      return ev
    }

    switch (op.t) {
      case 'set': {
        const value = ++nextValue
        const old = model.get(op.k)
        const ttl = op.ttl ?? defaultTtl
        const tti = op.tti ?? Infinity
        const setOptions: SetOptions<Key, Val> = {}
        if (op.ttl !== null) setOptions.ttl = toDuration(op.ttl, op.asString)
        if (op.tti !== null) setOptions.tti = toDuration(op.tti, op.asString)
        setOptions.size = op.size
        if (op.hook) {
          hooked.add(value)
          setOptions.onEvent = (e) => hookCalls.push([value, e])
        }
        const stored = cache.set(op.k, value, setOptions)
        const size = sized ? op.size : 0
        if (size > maxEntrySize) {
          assert.equal(stored, false, `${where}: an entry over maxEntrySize is refused`)
          tally.rejected++
          if (old !== undefined) expectRemoval(expiredAt(old, now) ? 'expire' : 'erase', op.k)
          break
        }
        assert.equal(stored, true, `${where}: set stores`)
        if (old !== undefined && expiredAt(old, now)) expectRemoval('expire', op.k)
        const ev = take('store')
        assert.deepEqual([ev.type, ev.key, ev.value], ['store', op.k, value], `${where}: store event`)
        count('store')
        model.delete(op.k)
        model.set(op.k, {
          value,
          expiresAt: now + ttl,
          idleMs: tti,
          idleAt: now + tti,
          size,
        })
        if (exactLru) {
          // The model predicts every victim: least recently used first, until within bounds.
          while (over()) {
            const victim = model.keys().next().value as Key
            expectRemoval(expiredAt(model.get(victim)!, now) ? 'expire' : 'evict', victim)
          }
        } else {
          while (cursor < events.length) {
            assert.ok(over(), `${where}: an eviction although the cache was within its bounds`)
            acceptRemoval(['evict'])
          }
          assert.ok(!over(), `${where}: set left the cache over a bound`)
        }
        break
      }
      case 'get':
      case 'peek':
      case 'has': {
        const m = model.get(op.k)
        const got = op.t === 'get' ? cache.get(op.k) : op.t === 'peek' ? cache.peek(op.k) : cache.has(op.k)
        const absent = op.t === 'has' ? false : undefined
        if (m === undefined) {
          assert.equal(got, absent, `${where}: absent key`)
          if (op.t === 'get') tally.misses++
        } else if (expiredAt(m, now)) {
          assert.equal(got, absent, `${where}: ${op.t} returned an expired entry (deadline ${deadlineOf(m)}, now ${now})`)
          expectRemoval('expire', op.k)
          if (op.t === 'get') tally.misses++
        } else {
          assert.equal(got, op.t === 'has' ? true : m.value, `${where}: live value`)
          if (op.t === 'get') {
            tally.hits++
            if (m.idleMs !== Infinity) m.idleAt = now + m.idleMs
            model.delete(op.k)
            model.set(op.k, m)
          }
        }
        break
      }
      case 'delete': {
        const m = model.get(op.k)
        const deleted = cache.delete(op.k)
        if (m === undefined) {
          assert.equal(deleted, false, `${where}: nothing to delete`)
        } else {
          const expired = expiredAt(m, now)
          assert.equal(deleted, !expired, `${where}: delete returns whether a live entry was erased`)
          expectRemoval(expired ? 'expire' : 'erase', op.k)
        }
        break
      }
      case 'clear': {
        const expected = [...model].map(([k, m]) => `${expiredAt(m, now) ? 'expire' : 'flush'}:${k}:${m.value}`).sort()
        cache.clear()
        const got = events.map((e) => `${e.type}:${e.key}:${String(e.value)}`).sort()
        assert.deepEqual(got, expected, `${where}: clear reports each held entry once`)
        for (const e of events) count(e.type)
        cursor = events.length
        model.clear()
        break
      }
      case 'purge': {
        const expected = [...model].filter(([, m]) => expiredAt(m, now)).map(([k, m]) => `expire:${k}:${m.value}`).sort()
        const n = cache.purgeExpired()
        assert.equal(n, expected.length, `${where}: purgeExpired returns how many it reclaimed`)
        assert.deepEqual(events.map((e) => `${e.type}:${e.key}:${String(e.value)}`).sort(), expected, `${where}: purge events`)
        while (cursor < events.length) acceptRemoval([])
        break
      }
      case 'advance': {
        clock.advance(op.ms)
        // Only the background sweep acts during an advance, and only on expired entries.
        while (cursor < events.length) acceptRemoval([])
        // It reclaims every expired entry within two sweep intervals of its deadline.
        const t = clock.now()
        for (const [k, m] of model) {
          assert.ok(
            deadlineOf(m) + 2 * config.sweepInterval > t,
            `${where}: key ${k} expired at ${deadlineOf(m)} is still held at ${t} (sweep every ${config.sweepInterval} ms)`,
          )
        }
        break
      }
    }
    assert.equal(cursor, events.length, `${where}: unexpected extra events ${JSON.stringify(events.slice(cursor))}`)

    // Per-entry onEvent: exactly the cache-level events of entries that asked for it.
    const expectedHooks = events.filter((e) => e.value !== undefined && hooked.has(e.value)).map((e) => [e.value, e.type, e.key, e.value])
    assert.deepEqual(
      hookCalls.map(([v, e]) => [v, e.type, e.key, e.value]),
      expectedHooks,
      `${where}: per-entry onEvent calls`,
    )

    // ---- invariants after every step ----
    const t = clock.now()
    assert.equal(cache.size, model.size, `${where}: size (every removal was reported once)`)
    assert.ok(cache.size <= maxEntries, `${where}: size ${cache.size} > maxEntries`)
    assert.ok(cache.bytes <= maxBytes, `${where}: bytes ${cache.bytes} > maxBytes`)
    assert.equal(cache.bytes, modelBytes(), `${where}: bytes`)
    const live = [...model].filter(([, m]) => !expiredAt(m, t)).reverse() // most recent first
    const dump = cache.dump()
    if (exactLru) {
      assert.deepEqual(
        dump.map((e) => e.key),
        live.map(([k]) => k),
        `${where}: live keys in LRU order`,
      )
    } else {
      assert.deepEqual(
        dump.map((e) => e.key).sort(),
        live.map(([k]) => k).sort(),
        `${where}: live keys`,
      )
    }
    for (const snap of dump) {
      const m = model.get(snap.key)!
      assert.equal(snap.value, m.value, `${where}: dump value of ${snap.key}`)
      assert.equal(snap.size, m.size, `${where}: dump size of ${snap.key}`)
      assert.equal(snap.remainingTtl, deadlineOf(m) - t, `${where}: remaining ttl of ${snap.key}`)
    }
    const s = cache.stats()
    assert.deepEqual(
      [s.stores, s.expired, s.evicted, s.erased, s.flushed, s.rejected, s.hits, s.misses],
      [tally.stores, tally.expired, tally.evicted, tally.erased, tally.flushed, tally.rejected, tally.hits, tally.misses],
      `${where}: stats [stores, expired, evicted, erased, flushed, rejected, hits, misses]`,
    )
  }
  cache.close()
}

// ---- the properties ---------------------------------------------------------------------

const CONFIGS: readonly Config[] = [
  { name: 'lru, maxEntries', policy: 'lru', maxEntries: 4, sweepInterval: 50 },
  { name: 'lru, maxBytes', policy: 'lru', maxBytes: 100, sweepInterval: 50 },
  { name: 'lru, both bounds, maxEntrySize, default ttl', policy: 'lru', maxEntries: 5, maxBytes: 120, maxEntrySize: 50, ttl: 200, sweepInterval: 30 },
  { name: 'tinylfu, maxEntries', policy: 'tinylfu', maxEntries: 4, sweepInterval: 50 },
  { name: 'tinylfu, maxBytes', policy: 'tinylfu', maxBytes: 100, sweepInterval: 50 },
  { name: 'tinylfu, both bounds, default ttl', policy: 'tinylfu', maxEntries: 5, maxBytes: 120, ttl: 150, sweepInterval: 40 },
]

const seedFromEnv = Number(process.env.STRATACACHE_FC_SEED)
const SEED = Number.isSafeInteger(seedFromEnv) ? seedFromEnv : 0x5eed_cace
const runsFromEnv = Number(process.env.STRATACACHE_FC_RUNS)
const RUNS = Number.isSafeInteger(runsFromEnv) && runsFromEnv > 0 ? runsFromEnv : 800

describe('MemoryCache agrees with a reference model', () => {
  for (const config of CONFIGS) {
    test(config.name, () => {
      fc.assert(
        fc.property(fc.array(opArb(config.maxBytes !== undefined), { minLength: 1, maxLength: 120, size: 'max' }), (ops) => run(config, ops)),
        { numRuns: RUNS, seed: SEED },
      )
    })
  }
})

/**
 * A cache that nobody listens to takes shortcuts: an LRU one at its entry bound evicts
 * before it stores and reuses the victim's slot (MemoryCache#reuse), and clear()
 * resets the storage at once instead of removing entries one by one. The model test above
 * never takes them (it listens). This property runs the same operations on such a cache and
 * on one with a listener (the path checked against the model), both with the same seeded
 * Random, and requires identical behaviour: every read, `size`, `stats()` and the order of
 * the entries, after every step. (It found that clear() without listeners used to reset
 * TinyLFU's frequency history, which clear() with listeners kept.)
 */
describe('MemoryCache: the silent eviction paths agree with the general one', () => {
  const configs = [
    { name: 'lru, maxEntries', policy: 'lru', maxEntries: 4 },
    { name: 'lru, maxEntries, default ttl', policy: 'lru', maxEntries: 3, ttl: 100 },
    { name: 'tinylfu, maxEntries', policy: 'tinylfu', maxEntries: 4 },
    { name: 'tinylfu, maxEntries, default ttl', policy: 'tinylfu', maxEntries: 3, ttl: 100 },
  ] as const
  for (const config of configs) {
    test(config.name, () => {
      const hook = (): void => {}
      fc.assert(
        fc.property(fc.array(opArb(false), { minLength: 1, maxLength: 120, size: 'max' }), (ops) => {
          const clock = new ManualClock(0)
          const make = (): MemoryCache<Key, Val> =>
            new MemoryCache<Key, Val>({
              policy: config.policy,
              clock,
              random: new SeededRandom(9),
              sweepInterval: 50,
              maxEntries: config.maxEntries,
              ...('ttl' in config ? { ttl: config.ttl } : {}),
            })
          const silent = make()
          const heard = make()
          heard.on('evict', hook)
          let value = 0
          for (let step = 0; step < ops.length; step++) {
            const op = ops[step]
            const results = [silent, heard].map((cache): unknown => {
              switch (op.t) {
                case 'set': {
                  const o: SetOptions<Key, Val> = {}
                  if (op.ttl !== null) o.ttl = op.ttl
                  if (op.tti !== null) o.tti = op.tti
                  if (op.hook) o.onEvent = hook // entries with extras: evicted the general way
                  return cache.set(op.k, value, o)
                }
                case 'get':
                case 'peek':
                case 'has':
                case 'delete':
                  return cache[op.t](op.k)
                case 'clear':
                  return cache.clear()
                case 'purge':
                  return cache.purgeExpired()
                case 'advance':
                  return undefined
              }
            })
            if (op.t === 'advance') clock.advance(op.ms)
            value++
            const where = `step ${step} ${JSON.stringify(op)}`
            assert.deepEqual(results[0], results[1], `${where}: result`)
            assert.deepEqual(silent.stats(), heard.stats(), `${where}: stats`)
            assert.deepEqual([...silent.entries()], [...heard.entries()], `${where}: entries, most recent first`)
          }
          silent.close()
          heard.close()
        }),
        { numRuns: RUNS, seed: SEED },
      )
    })
  }

  // The caches above have a one-entry TinyLFU window. This one has a window of 3 and a
  // sketch that halves every 3,000 counts, over a skewed stream long enough to take every
  // branch of the evict-before-insert path: a referenced window tail, admission won and
  // lost, halving between the count and the decision, entries with extras coming and going.
  for (const policy of ['tinylfu', 'lru'] as const) {
    test(`${policy}, 300 entries, a skewed stream of 40,000 operations`, () => {
      const clock = new ManualClock(0)
      const make = (): MemoryCache<number, number> =>
        new MemoryCache<number, number>({ policy, clock, random: new SeededRandom(11), maxEntries: 300, ttl: 5_000, sweepInterval: 100 })
      const silent = make()
      const heard = make()
      heard.on('evict', () => {})
      const stream = new SeededRandom(5)
      const hook = (): void => {}
      for (let step = 0; step < 40_000; step++) {
        const u = stream.next()
        // Hot keys 0..199 read and written often, a cold tail of 5,000 keys set once in a while.
        const key = u < 0.6 ? Math.floor(stream.next() ** 2 * 200) : 200 + Math.floor(stream.next() * 5_000)
        const op = stream.next()
        const results = [silent, heard].map((cache) => {
          if (op < 0.45) return cache.get(key)
          if (op < 0.95) return cache.set(key, step, op < 0.05 ? { onEvent: hook } : undefined)
          if (op < 0.99) return cache.delete(key)
          return undefined
        })
        if (op >= 0.99) clock.advance(50)
        assert.deepEqual(results[0], results[1], `step ${step}: result`)
        if (step % 1_000 === 0 || step === 39_999) {
          assert.deepEqual(silent.stats(), heard.stats(), `step ${step}: stats`)
          assert.deepEqual([...silent.entries()], [...heard.entries()], `step ${step}: entries, most recent first`)
        }
      }
      assert.ok(silent.stats().evicted > 5_000, `the stream evicts throughout (${silent.stats().evicted})`)
      silent.close()
      heard.close()
    })
  }
})
