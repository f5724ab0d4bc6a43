/**
 * The facade with an invalidation bus. Two caches with their own Bus over one in-process
 * hub (and one memoryStore as L2) stand for two processes; time is a ManualClock and
 * faults come from ChaosTransport. What is proved: after set/delete/invalidateTags/clear
 * resolve in A, B drops its L1 copy when the message arrives; A ignores its own messages;
 * L1 is bypassed while the bus is unhealthy and flushed when it recovers; a fill that
 * raced an invalidation does not land in L1; counters in stats() and Prometheus.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { createBus, type Bus } from '../../src/bus/bus.js'
import { ChaosTransport } from '../../src/bus/chaos-transport.js'
import { MemoryBusHub, memoryBus, memoryTransport } from '../../src/bus/memory-transport.js'
import { type Cache, createCache, isCacheError, ManualClock } from '../../src/index.js'
import { registerMetrics } from '../../src/metrics/index.js'
import { memoryStore } from '../../src/store/memory-store.js'
import type { Store } from '../../src/store/types.js'
import { deferred } from '../../src/testing/index.js'

const settle = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve))
}

interface Proc {
  cache: Cache<string>
  bus: Bus
  chaos: ChaosTransport
}

function world(withStore = true) {
  const clock = new ManualClock(1_000_000)
  const hub = new MemoryBusHub()
  const store: Store | undefined = withStore ? memoryStore({ clock }) : undefined
  const procs: Proc[] = []
  const proc = async (): Promise<Proc> => {
    const chaos = new ChaosTransport(memoryTransport({ hub }))
    const bus = createBus({ transport: chaos, clock })
    const cache = createCache<string>({ clock, ...(store === undefined ? {} : { store }), bus })
    await bus.start()
    await settle()
    const p = { cache, bus, chaos }
    procs.push(p)
    return p
  }
  const advance = async (ms: number): Promise<void> => {
    for (let t = 0; t < ms; t += 100) {
      clock.advance(Math.min(100, ms - t))
      await settle()
    }
  }
  const close = async (): Promise<void> => {
    for (const p of procs) await p.cache.close()
  }
  return { clock, hub, store, proc, advance, close }
}

/** The value B serves for `key` (from L1 when it has it), counting factory calls. */
function reader(p: Proc) {
  let calls = 0
  return {
    read: (key: string, source: () => string) =>
      p.cache.getOrSet(key, () => {
        calls++
        return source()
      }),
    get calls() {
      return calls
    },
  }
}

describe('cache + bus: coherence', () => {
  test('set in A: B stops serving its L1 copy once the message arrives (without the bus it would serve it until TTL)', async () => {
    const w = world()
    const a = await w.proc()
    const b = await w.proc()
    let source = 'v1'
    const rb = reader(b)
    assert.equal(await rb.read('k', () => source), 'v1')
    assert.equal(await rb.read('k', () => source), 'v1', 'an L1 hit')
    source = 'v2'
    await a.cache.set('k', 'v2')
    await settle()
    assert.equal(await b.cache.get('k'), 'v2', 'read from L2 after the L1 copy was dropped')
    assert.equal(b.cache.stats().bus?.keysDropped, 1)
    assert.equal(a.cache.stats().bus?.published, 1)
    await w.close()
  })

  test('delete and clear in A drop B’s L1 entries; A keeps serving its own fresh writes (own messages ignored)', async () => {
    const w = world(false)
    const a = await w.proc()
    const b = await w.proc()
    await b.cache.set('x', 'bx')
    await b.cache.set('y', 'by')
    await settle()
    await a.cache.set('mine', 'a')
    await a.cache.delete('x')
    await settle()
    assert.equal(await b.cache.get('x'), undefined)
    assert.equal(await b.cache.get('y'), 'by')
    assert.equal(await a.cache.get('mine'), 'a', 'A’s own set is not dropped by its own message')
    await a.cache.clear()
    await settle()
    assert.equal(await b.cache.get('y'), undefined)
    assert.equal(b.cache.stats().bus?.l1Flushes, 1)
    await w.close()
  })

  test('invalidateTags in A: B’s tagged entries are never served again; B’s trie has A’s version', async () => {
    const w = world(false)
    const a = await w.proc()
    const b = await w.proc()
    let n = 0
    const get = () => b.cache.getOrSet('u', () => `u${++n}`, { tags: ['org:1:user:7'] })
    assert.equal(await get(), 'u1')
    assert.equal(await get(), 'u1')
    await a.cache.invalidateTags(['org:1'])
    await settle()
    assert.equal(await get(), 'u2', 'recomputed: the ancestor tag was invalidated remotely')
    assert.equal(b.cache.stats().bus?.tagsObserved, 1)
    // Soft mode travels too: the value becomes stale, usable only as a fallback.
    await a.cache.invalidateTags(['org:1:user:7'], { mode: 'soft' })
    await settle()
    assert.equal(await get(), 'u3')
    await w.close()
  })

  test('caches sharing one Bus in one process see each other’s changes at once', async () => {
    const clock = new ManualClock()
    const bus = memoryBus({ clock, hub: new MemoryBusHub() })
    const c1 = createCache<string>({ clock, bus })
    const c2 = createCache<string>({ clock, bus })
    await bus.start()
    await c2.set('k', 'old')
    await c1.set('k', 'new')
    assert.equal(await c2.get('k'), undefined, 'dropped synchronously, before any delivery')
    assert.equal(await c1.get('k'), 'new')
    await c1.close()
    assert.equal(bus.healthy, true, 'still open while c2 is attached')
    await c2.close()
    assert.equal(bus.healthy, false, 'closed with the last cache')
  })

  test('a different namespace is not affected', async () => {
    const clock = new ManualClock()
    const hub = new MemoryBusHub()
    const a = createCache<string>({ clock, namespace: 'users', bus: createBus({ transport: memoryTransport({ hub }), clock }) })
    const b = createCache<string>({ clock, namespace: 'orders', bus: createBus({ transport: memoryTransport({ hub }), clock }) })
    await settle()
    await b.set('k', 'kept')
    await a.set('k', 'x')
    await settle()
    assert.equal(await b.get('k'), 'kept')
    await a.close()
    await b.close()
  })
})

describe('cache + bus: faults', () => {
  test('while B’s subscription is down B bypasses L1 (reads go to L2/factory); on reconnect it flushes', async () => {
    const w = world()
    const a = await w.proc()
    const b = await w.proc()
    const rb = reader(b)
    let source = 'v1'
    await rb.read('k', () => source)
    b.chaos.down()
    assert.equal(b.cache.stats().bus?.healthy, false)
    // A's change cannot reach B now; B must not serve v1 from L1.
    source = 'v2'
    await a.cache.set('k', 'v2')
    await settle()
    assert.equal(await rb.read('k', () => source), 'v2', 'answered from L2, not from the stale L1 copy')
    b.chaos.up()
    assert.equal(b.cache.stats().bus?.healthy, true)
    assert.ok((b.cache.stats().bus?.l1Flushes ?? 0) >= 2, 'flushed on down and on up')
    assert.equal(await rb.read('k', () => source), 'v2')
    await w.close()
  })

  test('while the bus is down no L1 copy is served, not even one filled during the outage (getOrSet with and without options)', async () => {
    const w = world()
    const a = await w.proc()
    const b = await w.proc()
    const rb = reader(b)
    let source = 'v1'
    b.chaos.down()
    // Filled during the outage: L1 may hold it, but must not answer from it.
    assert.equal(await rb.read('k', () => source), 'v1')
    assert.equal(await b.cache.getOrSet('o', () => source, { ttl: '1m' }), 'v1')
    source = 'v2'
    await a.cache.set('k', 'v2')
    await a.cache.set('o', 'v2')
    await settle()
    assert.equal(await rb.read('k', () => source), 'v2', 'read from L2, not from the L1 copy')
    assert.equal(await b.cache.getOrSet('o', () => source, { ttl: '1m' }), 'v2')
    b.chaos.up()
    assert.equal(await rb.read('k', () => source), 'v2')
    await w.close()
  })

  test('a lost message: B serves the old value at most until A’s next heartbeat (≤ 1 s), then flushes (bus_gaps)', async () => {
    const w = world()
    const a = await w.proc()
    const b = await w.proc()
    await w.advance(1_000)
    const rb = reader(b)
    let source = 'v1'
    await rb.read('k', () => source)
    b.chaos.dropNext(1)
    source = 'v2'
    await a.cache.set('k', 'v2')
    await settle()
    assert.equal(await rb.read('k', () => source), 'v1', 'the stale window: the message was lost')
    await w.advance(1_000)
    assert.equal(await rb.read('k', () => source), 'v2', 'closed by the heartbeat')
    assert.equal(b.cache.stats().bus?.gaps, 1)
    assert.ok((b.cache.stats().bus?.flushes ?? 0) >= 1)
    await w.close()
  })

  test('a fill that raced a remote delete is returned but not kept in L1', async () => {
    const w = world(false)
    const a = await w.proc()
    const b = await w.proc()
    const gate = deferred<string>()
    let calls = 0
    const pending = b.cache.getOrSet('k', () => {
      calls++
      return gate.promise
    })
    await settle()
    await a.cache.delete('k') // the source changed while B was reading it
    await settle()
    gate.resolve('read-before-the-change')
    assert.equal(await pending, 'read-before-the-change')
    assert.equal(b.cache.stats().bus?.fillsSkipped, 1)
    assert.equal(await b.cache.getOrSet('k', () => (calls++, 'fresh')), 'fresh', 'recomputed, not served from L1')
    assert.equal(calls, 2)
    await w.close()
  })

  test('with no bus, passive resync through L2 tag versions still works', async () => {
    const clock = new ManualClock(1_000_000)
    const store = memoryStore({ clock })
    const a = createCache<string>({ clock, store })
    const b = createCache<string>({ clock, store })
    let n = 0
    await a.getOrSet('k', () => `v${++n}`, { tags: ['t'] })
    clock.advance(10) // versions of two processes compare only beyond their clock skew
    await b.invalidateTags(['t'])
    const c = createCache<string>({ clock, store })
    assert.equal(await c.getOrSet('k', () => `v${++n}`, { tags: ['t'] }), 'v2', 'a process that never saw a message reads the tag version from L2')
    assert.equal(a.stats().bus, undefined)
    await Promise.all([a.close(), b.close(), c.close()])
  })
})

describe('cache + bus: options and metrics', () => {
  test('bus must be a Bus: ERR_INVALID_OPTIONS naming bus', () => {
    assert.throws(
      () => createCache({ bus: {} as Bus }),
      (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && /\bbus\b/.test((err as Error).message),
    )
    assert.throws(
      () => createCache({ bus: memoryBus({ hub: new MemoryBusHub() }), namespace: 'a:b' }),
      (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && /namespace/.test((err as Error).message),
    )
  })

  test('a Bus that closed with its last cache is not reused silently: a new cache on it throws ERR_CLOSED', async () => {
    const bus = memoryBus({ hub: new MemoryBusHub() })
    const first = createCache<number>({ memory: { maxEntries: 10 }, bus })
    await first.set('k', 1)
    await first.close()
    // Was accepted: the new cache's L1 stayed bypassed for ever and its changes went nowhere.
    assert.throws(() => createCache<number>({ memory: { maxEntries: 10 }, bus }), (err: unknown) => isCacheError(err, 'ERR_CLOSED'))
  })

  test('Prometheus export carries the bus counters and gauges', async () => {
    const w = world(false)
    const a = await w.proc()
    const b = await w.proc()
    await w.advance(1_000)
    b.chaos.dropNext(1)
    await a.cache.set('k', 'v')
    await a.cache.set('k', 'v2')
    await settle()
    const text = await registerMetrics(b.cache).metrics()
    assert.match(text, /stratacache_bus_gaps_total\{cache="default"\} 1/)
    assert.match(text, /stratacache_bus_flushes_total\{cache="default"\} [1-9]/)
    assert.match(text, /stratacache_bus_received_total\{cache="default"\} [1-9]/)
    assert.match(text, /stratacache_bus_healthy\{cache="default"\} 1/)
    assert.match(text, /stratacache_bus_queued\{cache="default"\} 0/)
    const textA = await registerMetrics(a.cache).metrics()
    assert.match(textA, /stratacache_bus_published_total\{cache="default"\} 2/)
    const plain = await registerMetrics(createCache()).metrics()
    assert.doesNotMatch(plain, /bus_/, 'no bus metrics without a bus')
    await w.close()
  })
})

describe('cache + bus: hostile input', () => {
  test('a tags message with a tag this cache refuses flushes L1 (cannot tell what it meant) and is reported, not thrown', async () => {
    const w = world(false)
    const b = await w.proc()
    await w.advance(2_000)
    await b.cache.set('held', 'v')
    const errors: unknown[] = []
    b.bus.onError((e) => errors.push(e))
    const { encodeMessage } = await import('../../src/bus/message.js')
    const fake = memoryTransport({ hub: w.hub })
    await fake.publish('stratacache', encodeMessage({ sender: 'x', epoch: 1, seq: 0, body: { kind: 'heartbeat' } }))
    await fake.publish('stratacache', encodeMessage({ sender: 'x', epoch: 1, seq: 1, body: { kind: 'tags', namespace: 'cache', tags: [{ tag: 'ok', version: 5, mode: 'hard' }, { tag: 'bad::tag', version: 6, mode: 'hard' }] } }))
    await settle()
    assert.equal(await b.cache.get('held'), undefined, 'L1 flushed')
    assert.ok(errors.some((e) => isCacheError(e, 'ERR_INVALID_TAG')), 'reported on the bus error channel')
    assert.equal(b.cache.stats().bus?.tagsObserved, 1, 'the valid tag was still applied')
    await fake.close()
    await w.close()
  })
})
