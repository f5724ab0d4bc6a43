/**
 * Property test: random sequences of set / get / peek / has / delete / clear / clock
 * advances run against MemoryCache and a plain reference model.
 *
 * The model is a Map in recency order (last = most recent) of entries with their value,
 * deadlines and size. Evictions are policy decisions, so the model learns them from the
 * engine's events — and checks each one: the entry existed with that value, the reason is
 * right (`expire` iff its deadline had passed, `evict` only when a bound was exceeded), and
 * under `lru` the victim is exactly the least recently used entry. Because the model drops
 * an entry only on a reported event, a silent removal or a double report shows up as a
 * mismatch of the key sets checked after every step.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { type CacheEventType, ManualClock, MemoryCache, SeededRandom } from '../../src/index.js'

type Op =
  | { t: 'set'; k: number; v: number; ttl: number | null; tti: number | null; size: number }
  | { t: 'get' | 'peek' | 'has' | 'delete'; k: number }
  | { t: 'clear' }
  | { t: 'advance'; ms: number }

interface ModelEntry {
  value: number
  ttlAt: number
  tti: number
  deadline: number
  size: number
}

type Ev = [CacheEventType, number, unknown]

const keyArb = fc.integer({ min: 0, max: 7 })
/** Times on a 10 ms grid, so that reads land exactly on deadlines often. */
const tens = (min: number, max: number): fc.Arbitrary<number> => fc.integer({ min, max }).map((n) => n * 10)
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('set' as const), k: keyArb, v: fc.nat(1000), ttl: fc.option(tens(1, 50)), tti: fc.option(tens(1, 30)), size: fc.integer({ min: 1, max: 40 }) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constantFrom('get' as const, 'peek' as const, 'has' as const), k: keyArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('delete' as const), k: keyArb }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('advance' as const), ms: tens(0, 40) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'clear' as const }) },
)

interface Config {
  policy: 'lru' | 'tinylfu'
  maxEntries?: number
  maxBytes?: number
}

function run(config: Config, ops: Op[]): void {
  const clock = new ManualClock(0)
  const cache = new MemoryCache<number, number>({ ...config, clock, sweepInterval: 100, random: new SeededRandom(5), sizeOf: () => 1 })
  const events: Ev[] = []
  for (const type of ['store', 'expire', 'evict', 'erase', 'flush'] as const) cache.on(type, (e) => events.push([e.type, e.key, e.value]))
  const model = new Map<number, ModelEntry>()
  const maxEntries = config.maxEntries ?? Infinity
  const maxBytes = config.maxBytes ?? Infinity
  const sized = config.maxBytes !== undefined
  const modelBytes = (): number => [...model.values()].reduce((n, e) => n + (sized ? e.size : 0), 0)
  const touch = (k: number, e: ModelEntry): void => {
    model.delete(k)
    model.set(k, e)
  }
  /** Applies one removal event reported by the engine to the model, checking it. */
  const acceptRemoval = (ev: Ev, now: number, allowed: readonly CacheEventType[]): void => {
    const [type, k, value] = ev
    const m = model.get(k)
    assert.ok(m !== undefined, `event ${type} for ${k}, which the model does not hold`)
    assert.equal(value, m.value, `event ${type} for ${k} carries the entry's value`)
    const expired = m.deadline <= now
    assert.equal(type === 'expire', expired, `${k} removed as ${type}; deadline ${m.deadline}, now ${now}`)
    assert.ok(type === 'expire' || allowed.includes(type), `unexpected ${type} for ${k}`)
    model.delete(k)
  }

  for (const op of ops) {
    events.length = 0
    const now = clock.now()
    switch (op.t) {
      case 'set': {
        const old = model.get(op.k)
        const expected: Ev[] = []
        if (old !== undefined && old.deadline <= now) {
          expected.push(['expire', op.k, old.value])
          model.delete(op.k)
        }
        const ttlAt = op.ttl === null ? Infinity : now + op.ttl
        const tti = op.tti ?? 0
        const deadline = op.tti === null ? ttlAt : Math.min(ttlAt, now + op.tti)
        expected.push(['store', op.k, op.v])
        touch(op.k, { value: op.v, ttlAt, tti, deadline, size: op.size })
        assert.equal(cache.set(op.k, op.v, { ttl: op.ttl ?? Infinity, tti: op.tti ?? Infinity, size: op.size }), true)
        assert.deepEqual(events.slice(0, expected.length), expected)
        let lastVictim: ModelEntry | undefined
        for (const ev of events.slice(expected.length)) {
          if (config.policy === 'lru') {
            const lru = model.keys().next().value
            assert.equal(ev[1], lru, `lru evicts the least recently used (${lru}), not ${ev[1]}`)
          }
          lastVictim = model.get(ev[1])
          acceptRemoval(ev, now, ['evict'])
        }
        if (config.policy === 'lru' && lastVictim !== undefined) {
          // No more than needed: putting the last victim back would break a bound.
          assert.ok(model.size + 1 > maxEntries || modelBytes() + (sized ? lastVictim.size : 0) > maxBytes, 'evicted more than needed')
        }
        break
      }
      case 'get':
      case 'peek':
      case 'has': {
        const m = model.get(op.k)
        const got = op.t === 'get' ? cache.get(op.k) : op.t === 'peek' ? cache.peek(op.k) : cache.has(op.k)
        if (m === undefined) {
          assert.equal(got, op.t === 'has' ? false : undefined)
          assert.deepEqual(events, [])
        } else if (m.deadline <= now) {
          assert.equal(got, op.t === 'has' ? false : undefined, `${op.t} returned expired ${op.k}`)
          assert.deepEqual(events, [['expire', op.k, m.value]])
          model.delete(op.k)
        } else {
          assert.equal(got, op.t === 'has' ? true : m.value)
          assert.deepEqual(events, [])
          if (op.t === 'get') {
            if (m.tti !== 0) m.deadline = Math.min(m.ttlAt, now + m.tti)
            touch(op.k, m)
          }
        }
        break
      }
      case 'delete': {
        const m = model.get(op.k)
        const deleted = cache.delete(op.k)
        if (m === undefined) {
          assert.equal(deleted, false)
          assert.deepEqual(events, [])
        } else {
          assert.equal(deleted, m.deadline > now)
          assert.deepEqual(events, [[m.deadline > now ? 'erase' : 'expire', op.k, m.value]])
          model.delete(op.k)
        }
        break
      }
      case 'clear': {
        const expected = [...model].map(([k, m]): Ev => [m.deadline <= now ? 'expire' : 'flush', k, m.value])
        cache.clear()
        assert.deepEqual([...events].sort((a, b) => a[1] - b[1]), expected.sort((a, b) => a[1] - b[1]))
        model.clear()
        break
      }
      case 'advance': {
        clock.advance(op.ms)
        // Only the sweep can act during an advance, and only on expired entries.
        for (const ev of events) acceptRemoval(ev, clock.now(), [])
        break
      }
    }

    // After every step: same entries, same live entries (in recency order under lru), bounds kept.
    const t = clock.now()
    assert.equal(cache.size, model.size, 'every removal was reported')
    assert.ok(cache.size <= maxEntries, 'maxEntries kept')
    assert.ok(cache.bytes <= maxBytes, 'maxBytes kept')
    if (sized) assert.equal(cache.bytes, modelBytes())
    const live = [...model].filter(([, m]) => m.deadline > t).map(([k]) => k).reverse()
    const engineLive = [...cache.keys()]
    if (config.policy === 'lru') assert.deepEqual(engineLive, live)
    else assert.deepEqual([...engineLive].sort(), [...live].sort())
    for (const k of live) assert.equal(cache.peek(k), model.get(k)!.value)
  }
  cache.close()
}

describe('MemoryCache agrees with a reference model', () => {
  const configs: Config[] = [
    { policy: 'lru', maxEntries: 4 },
    { policy: 'lru', maxBytes: 100 },
    { policy: 'lru', maxEntries: 5, maxBytes: 80 },
    { policy: 'tinylfu', maxEntries: 4 },
    { policy: 'tinylfu', maxBytes: 100 },
  ]
  for (const config of configs) {
    test(JSON.stringify(config), () => {
      fc.assert(
        fc.property(fc.array(opArb, { minLength: 20, maxLength: 150, size: 'max' }), (ops) => run(config, ops)),
        { numRuns: 300, seed: 20261123 },
      )
    })
  }
})
