/**
 * Tracing channels (src/core/tracing.ts): a subscriber on each `node:diagnostics_channel`
 * tracing channel sees start/end/asyncStart/asyncEnd (and error) with the documented context
 * for a getOrSet hit, a miss with its factory, a factory error, L2 reads and writes on a real
 * memoryStore, a bus message over the in-process hub, and node requests (injected and over a
 * loopback socket, including the synchronous GET-hit path). No context ever holds a value;
 * nothing is published while nobody subscribes; a subscriber that throws never fails the
 * operation it observes (Node reports it as an uncaught exception, caught here).
 */
import assert from 'node:assert/strict'
import { AsyncLocalStorage } from 'node:async_hooks'
import { tracingChannel, type Channel } from 'node:diagnostics_channel'
import { after, describe, test } from 'node:test'
import { createBus } from '../../src/bus/bus.js'
import { MemoryBusHub, memoryTransport } from '../../src/bus/memory-transport.js'
import { createCache, ManualClock, TRACING_CHANNELS } from '../../src/index.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { startNode, type NodeHandle, type NodeOptions } from '../../src/server/index.js'
import { routeOf } from '../../src/server/request-tracing.js'
import { redisStore } from '../../src/store/redis-store.js'
import { FlakyStore } from '../support/flaky-store.js'
import { startRedisServer } from '../support/redis-server.js'

const EVENTS = ['start', 'end', 'asyncStart', 'asyncEnd', 'error'] as const
type EventName = (typeof EVENTS)[number]

interface Seen {
  event: EventName
  context: Record<string, unknown>
}

/** Subscribes to every event of the tracing channel `name`; `off()` unsubscribes. */
function listen(name: string) {
  const seen: Seen[] = []
  const handlers = Object.fromEntries(EVENTS.map((event) => [event, (message: unknown) => void seen.push({ event, context: message as Record<string, unknown> })])) as Record<EventName, (m: unknown) => void>
  const channel = tracingChannel(name)
  channel.subscribe(handlers)
  return {
    seen,
    events: () => seen.map((s) => s.event),
    contexts: () => [...new Set(seen.map((s) => s.context))],
    off: () => void channel.unsubscribe(handlers),
  }
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve))
}

/** A value no context may contain (checked on the JSON of every context seen). */
const SECRET = 'the-cached-value-7f3a'

function assertNoValue(contexts: readonly Record<string, unknown>[]): void {
  for (const c of contexts) {
    assert.equal('result' in c, false, 'no result field')
    assert.equal(JSON.stringify(c, (_k, v: unknown) => (v instanceof Error ? v.message : v)).includes(SECRET), false, `no value in ${JSON.stringify(c)}`)
  }
}

const quiet: NonNullable<NodeOptions['logger']> = { info: () => undefined, warn: () => undefined, error: () => undefined }
const nodes: NodeHandle[] = []
after(async () => {
  for (const n of nodes) await n.close()
})

describe('tracing channels', () => {
  test('the documented names', () => {
    assert.deepEqual(TRACING_CHANNELS, {
      getOrSet: 'stratacache:cache:getOrSet',
      factory: 'stratacache:cache:factory',
      store: 'stratacache:store',
      busPublish: 'stratacache:bus:publish',
      busReceive: 'stratacache:bus:receive',
      nodeRequest: 'stratacache:node:request',
    })
  })

  test('getOrSet hit: start, end, asyncStart, asyncEnd with key, namespace and outcome hit', async () => {
    const cache = createCache<string>({ clock: new ManualClock(), namespace: 'app' })
    await cache.set('k', SECRET)
    const t = listen(TRACING_CHANNELS.getOrSet)
    try {
      assert.equal(await cache.getOrSet('k', () => 'other'), SECRET)
      assert.deepEqual(t.events(), ['start', 'end', 'asyncStart', 'asyncEnd'])
      assert.equal(t.contexts().length, 1, 'one context object for all events')
      assert.deepEqual({ ...t.contexts()[0] }, { key: 'k', namespace: 'app', outcome: 'hit' })
      assertNoValue(t.contexts())
    } finally {
      t.off()
      await cache.close()
    }
  })

  test('a miss runs the factory inside the getOrSet span: both traced, async context propagated', async () => {
    const cache = createCache<string>({ clock: new ManualClock() })
    const g = listen(TRACING_CHANNELS.getOrSet)
    const f = listen(TRACING_CHANNELS.factory)
    // What an OpenTelemetry subscriber does: bind its context store to the start channel.
    const als = new AsyncLocalStorage<unknown>()
    const start = tracingChannel(TRACING_CHANNELS.getOrSet).start as Channel<unknown, object>
    start.bindStore(als, (context) => context)
    let seenInFactory: unknown
    try {
      const v = await cache.getOrSet('m', async () => {
        await Promise.resolve()
        seenInFactory = als.getStore()
        return SECRET
      })
      assert.equal(v, SECRET)
      assert.deepEqual(g.events(), ['start', 'end', 'asyncStart', 'asyncEnd'])
      assert.deepEqual({ ...g.contexts()[0] }, { key: 'm', namespace: 'cache', outcome: 'miss' })
      assert.deepEqual(f.events(), ['start', 'end', 'asyncStart', 'asyncEnd'])
      assert.deepEqual({ ...f.contexts()[0] }, { key: 'm', namespace: 'cache', refresh: false, fallback: false })
      assert.equal(seenInFactory, g.contexts()[0], "the factory runs in the getOrSet span's context")
      assertNoValue([...g.contexts(), ...f.contexts()])
      // Now a hit: the factory channel hears nothing more.
      await cache.getOrSet('m', () => 'x')
      assert.equal(f.seen.length, 4)
      assert.equal(g.contexts()[1]?.outcome, 'hit')
    } finally {
      start.unbindStore(als)
      g.off()
      f.off()
      await cache.close()
    }
  })

  test('a factory error: error events on the factory and getOrSet channels, with the error', async () => {
    const cache = createCache<string>({ clock: new ManualClock() })
    const g = listen(TRACING_CHANNELS.getOrSet)
    const f = listen(TRACING_CHANNELS.factory)
    const boom = new Error('source down')
    try {
      await assert.rejects(
        cache.getOrSet('e', () => Promise.reject(boom)),
        (err) => err === boom,
      )
      assert.deepEqual(f.events(), ['start', 'end', 'error', 'asyncStart', 'asyncEnd'])
      assert.equal(f.contexts()[0]?.error, boom)
      assert.deepEqual(g.events(), ['start', 'end', 'error', 'asyncStart', 'asyncEnd'])
      assert.equal(g.contexts()[0]?.error, boom)
      assert.equal(g.contexts()[0]?.outcome, 'miss')
      // A factory that throws synchronously: the same.
      await assert.rejects(cache.getOrSet('s', () => {
        throw boom
      }))
      assert.equal(f.contexts()[1]?.error, boom)
      // A refused call (bad key) is an error with no outcome.
      await assert.rejects(cache.getOrSet('', () => 'x'), { code: 'ERR_INVALID_KEY' })
      const refused = g.contexts()[2]
      assert.equal(refused?.outcome, undefined)
      assert.equal((refused?.error as { code?: string }).code, 'ERR_INVALID_KEY')
    } finally {
      g.off()
      f.off()
      await cache.close()
    }
  })

  test('a stale fallback: the failed refresh is a miss whose factory span has the error; the backoff serves stale', async () => {
    const clock = new ManualClock()
    const cache = createCache<string>({ clock, defaults: { ttl: 1000, grace: '1h', graceBackoff: '10s' } })
    await cache.getOrSet('k', () => SECRET)
    clock.advance(2000)
    const g = listen(TRACING_CHANNELS.getOrSet)
    const f = listen(TRACING_CHANNELS.factory)
    try {
      // Past its TTL: the factory runs (with a fallback at hand), fails, the stale value is served.
      assert.equal(await cache.getOrSet('k', () => Promise.reject(new Error('down'))), SECRET)
      assert.equal(g.contexts()[0]?.outcome, 'miss')
      assert.equal(g.contexts()[0]?.error, undefined)
      assert.equal(f.contexts()[0]?.fallback, true)
      assert.equal((f.contexts()[0]?.error as Error).message, 'down')
      // Within the backoff: served stale at once, no factory run.
      assert.equal(await cache.getOrSet('k', () => 'never'), SECRET)
      assert.equal(g.contexts()[1]?.outcome, 'stale')
      assert.equal(f.contexts().length, 1)
    } finally {
      g.off()
      f.off()
      await cache.close()
    }
  })

  test('L2 on a real memoryStore: get (found or not, bytes read) and set (bytes written)', async () => {
    const clock = new ManualClock()
    const store = memoryStore({ clock })
    const a = createCache<string>({ clock, store, closeStore: false })
    const b = createCache<string>({ clock, store, closeStore: false })
    const s = listen(TRACING_CHANNELS.store)
    try {
      await a.getOrSet('k', () => SECRET)
      const ops = s.contexts().map((c) => ({ op: c.op, store: c.store, found: c.found }))
      assert.deepEqual(ops, [
        { op: 'get', store: 'memory', found: false },
        { op: 'set', store: 'memory', found: undefined },
      ])
      const [get, set] = s.contexts()
      assert.match(String(get?.key), /k$/)
      assert.equal(set?.key, get?.key)
      assert.ok(typeof set?.bytes === 'number' && set.bytes > SECRET.length, `set bytes ${String(set?.bytes)}`)
      assert.deepEqual(s.events().slice(0, 4), ['start', 'end', 'asyncStart', 'asyncEnd'])
      // B's L1 is cold: its read finds the entry, with as many bytes as were written.
      assert.equal(await b.getOrSet('k', () => 'never'), SECRET)
      const read = s.contexts()[2]
      assert.equal(read?.op, 'get')
      assert.equal(read?.found, true)
      assert.equal(read?.bytes, set?.bytes)
      assertNoValue(s.contexts())
    } finally {
      s.off()
      await a.close()
      await b.close()
      await store.close()
    }
  })

  test('L2 failures are store spans with the typed error; the getOrSet still succeeds', async () => {
    const clock = new ManualClock()
    const store = new FlakyStore(clock)
    store.health = 'down'
    const cache = createCache<string>({ clock, store, l2: { retry: { attempts: 0 } } })
    const s = listen(TRACING_CHANNELS.store)
    const g = listen(TRACING_CHANNELS.getOrSet)
    try {
      assert.equal(await cache.getOrSet('k', () => SECRET), SECRET)
      const [get] = s.contexts()
      assert.equal(get?.op, 'get')
      assert.equal(get?.store, 'flaky')
      assert.equal((get?.error as { code?: string }).code, 'ERR_STORE_UNAVAILABLE')
      assert.deepEqual(s.events().slice(0, 5), ['start', 'end', 'error', 'asyncStart', 'asyncEnd'])
      assert.equal(g.contexts()[0]?.error, undefined)
      assertNoValue(s.contexts())
    } finally {
      s.off()
      g.off()
      await cache.close()
    }
  })

  test('L2 on a real Redis: store spans named redis, the read and the write with their bytes', async (t) => {
    let server
    try {
      server = await startRedisServer()
    } catch (err) {
      t.skip(`no redis-server: ${err instanceof Error ? err.message : String(err)}`)
      return
    }
    const cache = createCache<string>({ store: redisStore({ url: server.url, prefix: 'trace-test:' }) })
    const s = listen(TRACING_CHANNELS.store)
    try {
      assert.equal(await cache.getOrSet('k', () => SECRET), SECRET)
      const contexts = s.contexts()
      assert.ok(contexts.every((c) => c.store === 'redis' && c.error === undefined), JSON.stringify(contexts))
      assert.equal(contexts[0]?.op, 'get')
      assert.equal(contexts[0]?.found, false)
      const write = contexts.find((c) => c.op === 'set')
      assert.ok(write !== undefined && typeof write.bytes === 'number' && write.bytes > SECRET.length, JSON.stringify(contexts))
      assertNoValue(contexts)
    } finally {
      s.off()
      await cache.close()
      await server.stop()
    }
  })

  test('a bus message: publish in the sender, receive in the other process, with kind, count and bytes', async () => {
    const clock = new ManualClock(1_000_000)
    const hub = new MemoryBusHub()
    const busA = createBus({ transport: memoryTransport({ hub }), clock })
    const busB = createBus({ transport: memoryTransport({ hub }), clock })
    const a = createCache<string>({ clock, bus: busA })
    const b = createCache<string>({ clock, bus: busB })
    await busA.start()
    await busB.start()
    await settle()
    const p = listen(TRACING_CHANNELS.busPublish)
    const r = listen(TRACING_CHANNELS.busReceive)
    try {
      await a.set('k', SECRET)
      await settle()
      assert.deepEqual(p.events(), ['start', 'end', 'asyncStart', 'asyncEnd'])
      const sent = p.contexts()[0] as Record<string, unknown>
      assert.deepEqual({ ...sent, bytes: typeof sent.bytes }, { namespace: 'cache', kind: 'delete', count: 1, bytes: 'number', seq: 1, transport: 'memory' })
      // Only B hears it (a bus ignores its own messages); heartbeats are not traced.
      assert.deepEqual(r.events(), ['start', 'end'])
      assert.deepEqual({ ...r.contexts()[0] }, { ...sent })
      assertNoValue([...p.contexts(), ...r.contexts()])
    } finally {
      p.off()
      r.off()
      await a.close()
      await b.close()
    }
  })

  test('node requests: injected, and over a socket (the synchronous GET hit included), with route and status', async () => {
    const n = await startNode({ host: '127.0.0.1', port: 0, store: memoryStore(), logger: quiet })
    nodes.push(n)
    const t = listen(TRACING_CHANNELS.nodeRequest)
    try {
      const put = await n.inject({ method: 'PUT', url: '/v1/keys/user%3A1?ttl=60', body: SECRET })
      assert.ok(put.status < 300)
      assert.deepEqual(t.events(), ['start', 'end', 'asyncStart', 'asyncEnd'])
      assert.deepEqual({ ...t.contexts()[0] }, { method: 'PUT', path: '/v1/keys/user%3A1', route: '/v1/keys/:key', node: n.id, status: put.status })
      // Over a socket: the span ends with the response (the socket's 'close').
      const nextEnd = () =>
        new Promise<Record<string, unknown>>((resolve) => {
          const asyncEnd = tracingChannel(TRACING_CHANNELS.nodeRequest).asyncEnd
          const onEnd = (m: unknown): void => {
            asyncEnd.unsubscribe(onEnd)
            resolve(m as Record<string, unknown>)
          }
          asyncEnd.subscribe(onEnd)
        })
      const ended = nextEnd()
      const res = await fetch(`${n.url}/v1/keys/user%3A1`)
      assert.equal(res.status, 200)
      assert.equal(await res.text(), SECRET)
      const got = await ended
      assert.deepEqual({ ...got }, { method: 'GET', path: '/v1/keys/user%3A1', route: '/v1/keys/:key', node: n.id, status: 200 })
      assert.deepEqual(t.seen.filter((s) => s.context === got).map((s) => s.event), ['start', 'end', 'asyncStart', 'asyncEnd'])
      // A miss over the socket: 404, still one span.
      const missed = nextEnd()
      const missing = await fetch(`${n.url}/v1/keys/absent`)
      await missing.arrayBuffer()
      const last = await missed
      assert.equal(last?.route, '/v1/keys/:key')
      assert.equal(last?.status, 404)
      assertNoValue(t.contexts())
    } finally {
      t.off()
    }
  })

  test('route templates are bounded: keys and unknown paths never become a route', () => {
    assert.equal(routeOf('/v1/keys/abc'), '/v1/keys/:key')
    assert.equal(routeOf('/v1/keys'), '/v1/keys')
    assert.equal(routeOf('/v1/mget'), '/v1/mget')
    assert.equal(routeOf('/healthz'), '/healthz')
    assert.equal(routeOf('/dashboard'), '/dashboard')
    assert.equal(routeOf('/v1/cluster/state'), '/v1/cluster/*')
    assert.equal(routeOf('/eu/some-key'), '/:region/:key')
    assert.equal(routeOf('/v1/nope/x'), '(other)')
    assert.equal(routeOf('/a/b/c'), '(other)')
  })

  test('nothing is published while nobody subscribes', async () => {
    const names = Object.values(TRACING_CHANNELS)
    const calls: string[] = []
    const patched: Array<Record<string, unknown>> = []
    for (const name of names) {
      const tc = tracingChannel(name) as unknown as Record<EventName, Record<string, unknown>>
      for (const event of EVENTS) {
        const ch = tc[event] as Record<string, unknown> & { hasSubscribers: boolean }
        assert.equal(ch.hasSubscribers, false, `${name}:${event} has no subscriber left`)
        ch.publish = () => void calls.push(`${name}:${event} publish`)
        ch.runStores = (_c: unknown, fn: () => unknown) => {
          calls.push(`${name}:${event} runStores`)
          return fn()
        }
        patched.push(ch)
      }
    }
    const clock = new ManualClock(1_000_000)
    const hub = new MemoryBusHub()
    const store = memoryStore({ clock })
    const a = createCache<string>({ clock, store, closeStore: false, bus: createBus({ transport: memoryTransport({ hub }), clock }) })
    const b = createCache<string>({ clock, store, closeStore: false, bus: createBus({ transport: memoryTransport({ hub }), clock }) })
    const n = await startNode({ host: '127.0.0.1', port: 0, store: memoryStore(), logger: quiet })
    nodes.push(n)
    try {
      await settle()
      await a.getOrSet('k', () => 'v')
      await a.getOrSet('k', () => 'v')
      await a.getOrSet('e', () => Promise.reject(new Error('x'))).catch(() => undefined)
      await b.getOrSet('k', () => 'w')
      await a.set('k', 'v2')
      await settle()
      await n.inject({ method: 'PUT', url: '/v1/keys/a', body: 'x' })
      await (await fetch(`${n.url}/v1/keys/a`)).text()
      assert.deepEqual(calls, [])
    } finally {
      for (const ch of patched) {
        delete ch.publish
        delete ch.runStores
      }
      await a.close()
      await b.close()
      await store.close()
    }
  })

  test('a subscriber that throws never fails the operation it observes', async () => {
    const cache = createCache<string>({ clock: new ManualClock() })
    const channel = tracingChannel(TRACING_CHANNELS.getOrSet)
    const thrower = () => {
      throw new Error('subscriber bug')
    }
    const handlers = { start: thrower, end: thrower, asyncStart: thrower, asyncEnd: thrower, error: thrower }
    // Node reports a throwing subscriber as an uncaught exception on a later tick: held here
    // (the test runner's own listener would fail the test).
    const saved = process.listeners('uncaughtException')
    process.removeAllListeners('uncaughtException')
    const reported: unknown[] = []
    process.on('uncaughtException', (err) => void reported.push(err))
    channel.subscribe(handlers)
    try {
      assert.equal(await cache.getOrSet('k', () => 'v'), 'v')
      assert.equal(await cache.getOrSet('k', () => 'w'), 'v')
      await assert.rejects(cache.getOrSet('', () => 'v'), { code: 'ERR_INVALID_KEY' })
      await settle()
      assert.ok(reported.length >= 8, `reported ${reported.length}`)
      assert.ok(reported.every((e) => e instanceof Error && e.message === 'subscriber bug'))
    } finally {
      channel.unsubscribe(handlers)
      process.removeAllListeners('uncaughtException')
      for (const l of saved) process.on('uncaughtException', l)
      await cache.close()
    }
  })
})
