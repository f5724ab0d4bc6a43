/**
 * Chaos on a real Redis, real time: two caches with their own Redis connections stand for
 * two processes (A writes, B reads). Faults: a fraction of B's bus messages dropped at
 * random, the Redis server killed and restarted, B's bus connection silently blocked by a
 * paused TCP proxy. For each, the stale-read window — how long B keeps serving the old
 * value after A's write resolved — is measured and must stay within the stated bound
 * (plus a margin for this shared machine), and the fault shows in B's stats.
 *
 * The margin: the bounds are sums of timer periods, and a timer fires late by however long
 * this process was starved of CPU. So each check allows MARGIN_MS plus the event-loop
 * stalls measured in this process during the window (test/support/stall-meter.ts): a loaded CI
 * machine stretches the allowance by what it actually took, while a broken detection (no
 * flush at all, or one several heartbeats late on an idle loop) still fails.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { createBus, type Bus } from '../../src/bus/bus.js'
import { ChaosTransport } from '../../src/bus/chaos-transport.js'
import { redisTransport } from '../../src/bus/redis-transport.js'
import { type Cache, createCache } from '../../src/index.js'
import { redisStore } from '../../src/store/redis-store.js'
import type { Store } from '../../src/store/types.js'
import { RedisServer, startRedisServer } from '../support/redis-server.js'
import { stallMeter } from '../support/stall-meter.js'
import { TcpProxy } from '../support/tcp-proxy.js'
import { until } from '../support/until.js'

const HEARTBEAT_MS = 200
const DEAD_AFTER_MS = 800
/** Scheduling noise allowed on a loaded 2-core machine, on top of each stated bound. */
const MARGIN_MS = 1_000

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

let server: RedisServer
let channels = 0

before(async () => {
  server = await startRedisServer()
})
after(async () => {
  await server?.stop()
})

interface Proc {
  cache: Cache<string>
  bus: Bus
  chaos: ChaosTransport
  store: Store
  close(): Promise<void>
}

async function proc(channel: string, busUrl = server.url): Promise<Proc> {
  const store = redisStore({ url: server.url, prefix: `chaos${process.pid}:` })
  const chaos = new ChaosTransport(redisTransport({ url: busUrl, publishTimeout: '500ms', connectTimeout: '1s' }))
  const bus = createBus({ transport: chaos, channel, heartbeatInterval: HEARTBEAT_MS, deadAfter: DEAD_AFTER_MS })
  // A short breaker so L2 comes back soon after a restart.
  const cache = createCache<string>({ store, bus, l2: { timeout: '300ms', breaker: { openFor: '300ms' } } })
  await bus.start()
  return {
    cache,
    bus,
    chaos,
    store,
    close: async () => {
      await cache.close()
      await store.close()
    },
  }
}

/** A sets `value`; once A's message has reached B, B reads it into its L1 (then holds it). */
async function warm(a: Proc, b: Proc, key: string, value: string): Promise<void> {
  const dropped = b.cache.stats().bus?.keysDropped ?? 0
  await a.cache.set(key, value)
  // Wait for the message (unless dropped by chaos), so it cannot remove what B reads next.
  const deadline = Date.now() + 300
  while ((b.cache.stats().bus?.keysDropped ?? 0) === dropped && Date.now() < deadline) await sleep(5)
  await until('B holds the value', 5_000, async () => (await b.cache.get(key)) === value)
}


/** Milliseconds until `check` holds, polled on every turn of the event loop; Infinity past `limitMs`. */
async function msUntil(check: () => boolean, limitMs: number): Promise<number> {
  const start = performance.now()
  for (;;) {
    if (check()) return performance.now() - start
    if (performance.now() - start > limitMs) return Infinity
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/**
 * How long B keeps serving `old` for `key`: polls until it serves something else than the
 * old value or a miss (a cache may forget; it must not lie).
 */
async function staleWindow(b: Proc, key: string, old: string, limitMs = 10_000): Promise<{ ms: number; last: string | undefined }> {
  const start = performance.now()
  for (;;) {
    const v = await b.cache.get(key)
    if (v !== old && v !== undefined) return { ms: performance.now() - start, last: v }
    if (performance.now() - start > limitMs) return { ms: Infinity, last: v }
    await new Promise((resolve) => setImmediate(resolve))
  }
}

describe('bus chaos on real Redis', () => {
  test(`30% of B's messages dropped at random: every stale window ≤ deadAfter + heartbeatInterval (${DEAD_AFTER_MS + HEARTBEAT_MS} ms) + margin, counted as gaps`, async () => {
    const channel = `chaos-drop-${process.pid}-${++channels}`
    const a = await proc(channel)
    const b = await proc(channel)
    try {
      await sleep(2 * HEARTBEAT_MS) // they hear each other
      b.chaos.dropRate = 0.3
      const windows: number[] = []
      const stalls: number[] = []
      for (let i = 0; i < 15; i++) {
        const old = `v${i}`
        await warm(a, b, 'k', old)
        const meter = stallMeter()
        await a.cache.set('k', `v${i + 1}`)
        const w = await staleWindow(b, 'k', old)
        meter.stop()
        assert.equal(w.last, `v${i + 1}`, 'never anything but the old or the new value')
        windows.push(w.ms)
        stalls.push(meter.stalledMs)
      }
      console.log(`# drop 30%: stale windows (ms) ${windows.map((w) => w.toFixed(0)).join(' ')}; event-loop stalls (ms) ${stalls.map((s) => s.toFixed(0)).join(' ')}; dropped ${b.chaos.dropped}, gaps ${b.bus.stats().gaps}, flushes ${b.bus.stats().flushes}`)
      for (const [i, w] of windows.entries()) {
        const allowed = DEAD_AFTER_MS + HEARTBEAT_MS + MARGIN_MS + (stalls[i] as number)
        assert.ok(w <= allowed, `window ${i}: ${w.toFixed(0)} ms > ${allowed.toFixed(0)} ms allowed (bound + margin + ${(stalls[i] as number).toFixed(0)} ms stalled)`)
      }
      assert.ok(b.chaos.dropped > 0, 'messages were dropped')
      assert.ok(b.bus.stats().gaps + b.bus.stats().flushes > 0, 'and the losses were noticed')
      assert.equal(b.cache.stats().bus?.gaps, b.bus.stats().gaps, 'visible in cache.stats()')
    } finally {
      await a.close()
      await b.close()
    }
  })

  test('Redis killed and restarted: B never serves the old value (L1 bypassed while down), flushes on reconnect; A’s queued message goes out', async () => {
    const channel = `chaos-kill-${process.pid}-${++channels}`
    const a = await proc(channel)
    const b = await proc(channel)
    try {
      await warm(a, b, 'k', 'old')
      await server.kill()
      await until('B notices the lost subscription', 5_000, () => b.bus.healthy === false)
      const setting = a.cache.set('k', 'new') // L2 write and publish both queue
      const seen = new Set<string | undefined>()
      const outageEnd = Date.now() + 500
      while (Date.now() < outageEnd) {
        seen.add(await b.cache.get('k'))
        await sleep(10)
      }
      await setting
      assert.ok(!seen.has('old'), `B served ${[...seen].join(', ')} during the outage, never the old value`)
      await server.restart()
      await until('B healthy again', 20_000, () => b.bus.healthy)
      await until('A’s queued bus message sent', 20_000, () => a.bus.stats().queued === 0)
      for (let i = 0; i < 20; i++) {
        const v = await b.cache.get('k')
        assert.notEqual(v, 'old', 'never the old value after the restart either (L2 came back empty or with the replayed write)')
        await sleep(10)
      }
      const s = b.cache.stats().bus
      assert.ok((s?.flushes ?? 0) >= 2, 'flushed on down and on reconnect')
      assert.ok((s?.l1Flushes ?? 0) >= 2)
    } finally {
      await a.close()
      await b.close()
    }
  })

  test(`B's bus connection silently blocked (paused TCP proxy): B stops serving the old value within deadAfter + heartbeatInterval + margin, counted as a silence; recovers after`, async () => {
    const channel = `chaos-block-${process.pid}-${++channels}`
    const proxy = await TcpProxy.start(server.port)
    const a = await proc(channel)
    const b = await proc(channel, proxy.url)
    try {
      await sleep(2 * HEARTBEAT_MS) // past B's warm-up flush (1.5 heartbeats after subscribing)
      await warm(a, b, 'k', 'old')
      const meter = stallMeter()
      proxy.pause()
      const pausedAt = performance.now()
      await a.cache.set('k', 'new')
      const w = await staleWindow(b, 'k', 'old')
      assert.equal(w.last, 'new', 'then B reads L2 directly')
      // The window ends with the first of two detections of the same blocked connection:
      // B finds its own heartbeats missing ('subscription-silent'), or — one tick earlier,
      // when A's last message reached B before B's own last heartbeat — B forgets the
      // silent sender A ('sender-silent', B still healthy; see the ManualClock test in
      // test/bus/bus.test.ts). Either way B must then declare its subscription dead, within
      // the same bound counted from the pause.
      // Polled on every turn of the loop, so this over- rather than under-states the time.
      await msUntil(() => b.bus.stats().silences >= 1, 10_000)
      const silentAfter = performance.now() - pausedAt
      meter.stop()
      const allowed = DEAD_AFTER_MS + HEARTBEAT_MS + MARGIN_MS + meter.stalledMs
      console.log(`# blocked subscriber: stale window ${w.ms.toFixed(0)} ms, silence declared ${silentAfter.toFixed(0)} ms after the pause (bound ${DEAD_AFTER_MS + HEARTBEAT_MS} ms + margin ${MARGIN_MS} ms + ${meter.stalledMs.toFixed(0)} ms stalled)`)
      assert.ok(w.ms <= allowed, `window ${w.ms.toFixed(0)} ms > ${allowed.toFixed(0)} ms allowed`)
      assert.ok(silentAfter <= allowed, `silence declared ${silentAfter.toFixed(0)} ms after the pause > ${allowed.toFixed(0)} ms allowed`)
      assert.ok(b.bus.stats().silences >= 1)
      assert.equal(b.bus.healthy, false, 'unhealthy while blocked: L1 bypassed')
      assert.ok(b.chaos.resubscribes >= 1, 'the Bus asked the transport to reconnect')
      proxy.resume()
      await until('B healthy again after the block', 20_000, () => b.bus.healthy)
      await a.cache.set('k', 'after')
      await until('B follows changes again', 5_000, async () => (await b.cache.get('k')) === 'after')
    } finally {
      proxy.resume()
      await a.close()
      await b.close()
      await proxy.close()
    }
  })
})
