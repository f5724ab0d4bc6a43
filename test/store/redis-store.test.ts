/**
 * redisStore against real redis-server processes (started on free loopback ports by
 * test/support/redis-server.ts; never the system Redis on 6379): the shared conformance
 * suite, then what is specific to Redis (key mapping, auto-pipelining, cross-connection
 * locks and wake-ups, options, ownership of the client), then faults (frozen, killed and
 * restarted server).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import fc from 'fast-check'
import { Redis } from 'ioredis'
import { isCacheError } from '../../src/core/errors.js'
import type { ManualClock } from '../../src/core/manual-clock.js'
import { storeConformance } from '../../src/store/conformance.js'
import { keyTag, redisKeys, redisStore } from '../../src/store/redis-store.js'
import { refTimersAfter, watchTimers } from '../support/held-timers.js'
import { freePort, RedisServer, startRedisSentinel, startRedisServer } from '../support/redis-server.js'
import { REAL_TIME_UNIT_MS, stallMeter } from '../support/stall-meter.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)
const text = (value: Uint8Array | undefined): string | undefined => (value === undefined ? undefined : new TextDecoder().decode(value))

/** Inverse of keyTag, to prove the mapping reversible (hence injective). */
function untag(tag: string): string {
  if (tag === '%') return ''
  return tag.replace(/%u([0-9A-F]{4})|%([0-9A-F]{2})/g, (_m, u: string | undefined, b: string | undefined) => String.fromCharCode(parseInt(u ?? b ?? '', 16)))
}

let server: RedisServer
let prefixes = 0
/** A fresh namespace per store, as the conformance suite asks. */
const freshPrefix = (): string => `t${process.pid}-${++prefixes}:`

before(async () => {
  server = await startRedisServer()
})
after(async () => {
  await server?.stop()
})

storeConformance({
  name: 'redis (standalone)',
  open: async () => redisStore({ url: server.url, prefix: freshPrefix() }),
  advance: sleep,
  minTtlMs: REAL_TIME_UNIT_MS,
})

describe('redisStore: key mapping', () => {
  const tricky = ['', '%', '%25', '%7B', '{', '}', '{}', '}{', '{a}', 'a{b}c:{}', '%u', '\uD83D', '\uDE00', '\uD83D\uDE00', '🚀', 'x\u0000y', '*', '\\']

  test('tags are brace-free and reversible for tricky keys and for arbitrary strings', () => {
    const tags = new Set<string>()
    for (const key of tricky) {
      const tag = keyTag(key)
      assert.ok(!/[{}]/.test(tag), `tag of ${JSON.stringify(key)} has no brace`)
      assert.ok(tag.length > 0, 'a tag is never empty (Redis ignores {})')
      assert.equal(untag(tag), key)
      tags.add(tag)
    }
    assert.equal(tags.size, tricky.length, 'distinct keys, distinct tags')
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
        assert.equal(untag(keyTag(a)), a)
        assert.ok(!/[{}\uD800-\uDFFF]/.test(keyTag(a)), 'no brace and no surrogate: the Redis key is exact UTF-8')
        // Per code unit, so clear(prefix) can match by tag prefix.
        if (a !== '' && b !== '') assert.equal(keyTag(a + b), keyTag(a) + keyTag(b))
      }),
      { numRuns: 500 },
    )
  })

  test('data, lock and fence keys share one hash tag and never collide across keys or kinds', () => {
    const all = new Set<string>()
    for (const key of tricky) {
      const k = redisKeys('sc:', key)
      const tagOf = (name: string): string => name.slice(name.indexOf('{') + 1, name.indexOf('}'))
      assert.equal(tagOf(k.lock), tagOf(k.data))
      assert.equal(tagOf(k.fence), tagOf(k.data))
      for (const name of [k.data, k.lock, k.fence]) all.add(name)
    }
    assert.equal(all.size, 3 * tricky.length)
  })

  test('the server holds exactly one data key per cache key, named by the mapping', async () => {
    const prefix = freshPrefix()
    const store = redisStore({ url: server.url, prefix })
    const raw = new Redis(server.url)
    try {
      for (const [i, key] of tricky.entries()) await store.set(key, bytes(`v${i}`), 60_000)
      const names = (await raw.keys(`${prefix}*`)).sort()
      assert.deepEqual(names, tricky.map((k) => redisKeys(prefix, k).data).sort())
      for (const [i, key] of tricky.entries()) assert.equal(text(await store.get(key)), `v${i}`)
    } finally {
      raw.disconnect()
      await store.close()
    }
  })
})

describe('redisStore: Redis specifics', () => {
  test('1000 concurrent gets share round trips (auto-pipelining): few server reads, right answers', async () => {
    const store = redisStore({ url: server.url, prefix: freshPrefix() })
    try {
      await store.setMany(Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: bytes(`v${i}`), ttlMs: 60_000 })))
      await store.get('warm-up') // connected and ready before we count
      const readsBefore = await totalReads(server)
      const pending = Array.from({ length: 1000 }, (_, i) => store.get(`k${i % 120}`))
      assert.ok(store.client.autoPipelineQueueSize > 0, 'the gets wait in the auto-pipeline queue, not one write each')
      const values = await Promise.all(pending)
      const readsAfter = await totalReads(server)
      values.forEach((v, i) => assert.equal(text(v), i % 120 < 100 ? `v${i % 120}` : undefined))
      // INFO total_reads_processed counts read events on client sockets; the INFO calls add
      // one each. 1000 commands sent one by one would show up as hundreds of reads.
      const reads = readsAfter - readsBefore
      assert.ok(reads <= 50, `1000 gets took ${reads} server read events`)
    } finally {
      await store.close()
    }
  })

  test('getMany is one MGET and deleteMany one UNLINK on a standalone server', async () => {
    const store = redisStore({ url: server.url, prefix: freshPrefix() })
    try {
      const keys = Array.from({ length: 50 }, (_, i) => `m${i}`)
      await store.setMany(keys.map((key) => ({ key, value: bytes(key), ttlMs: 60_000 })))
      const before = await commandCalls(server)
      const got = await store.getMany(keys)
      assert.deepEqual(got.map(text), keys)
      assert.equal(await store.deleteMany(keys), 50)
      const after = await commandCalls(server)
      assert.equal((after.get('mget') ?? 0) - (before.get('mget') ?? 0), 1)
      assert.equal((after.get('get') ?? 0) - (before.get('get') ?? 0), 0)
      assert.equal((after.get('unlink') ?? 0) - (before.get('unlink') ?? 0), 1)
    } finally {
      await store.close()
    }
  })

  test('TTLs reach Redis as PX (rounded up) and Infinity as no expiry; touch(Infinity) is true for a key that had none', async () => {
    const prefix = freshPrefix()
    const store = redisStore({ url: server.url, prefix })
    const raw = new Redis(server.url)
    try {
      await store.set('finite', bytes('f'), 10_000.2)
      const pttl = await raw.pttl(redisKeys(prefix, 'finite').data)
      assert.ok(pttl > 9_000 && pttl <= 10_001, `pttl ${pttl}`)
      await store.set('forever', bytes('p'), Infinity)
      assert.equal(await raw.pttl(redisKeys(prefix, 'forever').data), -1)
      assert.equal(await store.touch('forever', Infinity), true, 'PERSIST alone would answer 0 here')
      assert.equal(await store.touch('finite', Infinity), true)
      assert.equal(await raw.pttl(redisKeys(prefix, 'finite').data), -1)
      assert.equal(await store.touch('nope', Infinity), false)
      for (const bad of [0, -5, Number.NaN]) {
        await assert.rejects(store.set('bad', bytes('x'), bad), (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS'))
      }
    } finally {
      raw.disconnect()
      await store.close()
    }
  })

  test("clear('') removes this store's data keys only: other prefixes, foreign keys and fencing state stay", async () => {
    const prefix = freshPrefix()
    const store = redisStore({ url: server.url, prefix, scanCount: 7 })
    const neighbour = redisStore({ url: server.url, prefix: freshPrefix() })
    const raw = new Redis(server.url)
    try {
      await store.setMany(Array.from({ length: 120 }, (_, i) => ({ key: `k${i}`, value: bytes('x'), ttlMs: 60_000 })))
      await neighbour.set('k1', bytes('neighbour'), 60_000)
      await raw.set(`${prefix}foreign`, 'not ours')
      const grant = await store.locks.acquire('k1', 'tok', 60_000)
      assert.ok(grant !== undefined)
      await store.clear('')
      assert.deepEqual((await raw.keys(`${prefix}{*}`)).length, 0, 'no data key left (in batches of a small SCAN COUNT)')
      assert.equal(text(await neighbour.get('k1')), 'neighbour')
      assert.equal(await raw.get(`${prefix}foreign`), 'not ours')
      assert.equal(await store.locks.acquire('k1', 'other', 60_000), undefined, 'the lock survived clear')
      assert.equal(await store.locks.release('k1', 'tok'), true)
      const next = await store.locks.acquire('k1', 'tok2', 60_000)
      assert.ok(next !== undefined && next.fence > grant.fence, 'fences keep growing after clear')
    } finally {
      raw.disconnect()
      await neighbour.close()
      await store.close()
    }
  })

  test('fencing across connections: a holder whose lease expired cannot overwrite the newer grant', async () => {
    const prefix = freshPrefix()
    const a = redisStore({ url: server.url, prefix })
    const b = redisStore({ url: server.url, prefix })
    try {
      const grantA = await a.locks.acquire('job', 'A', 100)
      assert.ok(grantA !== undefined)
      assert.equal(await b.locks.acquire('job', 'B', 100), undefined, 'held by A')
      await sleep(250) // A "pauses" past its lease
      const grantB = await b.locks.acquire('job', 'B', 10_000)
      assert.ok(grantB !== undefined && grantB.fence > grantA.fence)
      assert.equal(await b.locks.setFenced('job', bytes('from B'), 60_000, grantB.fence), true)
      assert.equal(await a.locks.setFenced('job', bytes('stale A'), 60_000, grantA.fence), false)
      assert.equal(await a.locks.extend('job', 'A', 10_000), false)
      assert.equal(text(await a.get('job')), 'from B')
    } finally {
      await a.close()
      await b.close()
    }
  })

  test('waitForRelease wakes within milliseconds when another connection releases or writes', async () => {
    const prefix = freshPrefix()
    const waiterStore = redisStore({ url: server.url, prefix })
    const holder = redisStore({ url: server.url, prefix })
    try {
      const grant = await holder.locks.acquire('w', 'H', 30_000)
      assert.ok(grant !== undefined)
      // An older value exists while the holder refreshes it: that alone must not wake (no spinning waiter).
      await holder.set('w', bytes('old value'), 60_000)
      let woke = 0
      const waiting = waiterStore.locks.waitForRelease('w', 30_000).then(() => (woke = performance.now()))
      await sleep(150) // well subscribed by now
      assert.equal(woke, 0, 'still waiting while held')
      const meter = stallMeter()
      const released = performance.now()
      assert.equal(await holder.locks.release('w', 'H'), true)
      await waiting
      meter.stop()
      assert.ok(woke - released < 500 + meter.stalledMs, `woke ${(woke - released).toFixed(1)} ms after the release (${meter.stalledMs.toFixed(0)} ms of it this process stalled)`)

      // A fenced write by the holder wakes waiters too.
      const again = await holder.locks.acquire('w', 'H2', 30_000)
      assert.ok(again !== undefined)
      const second = waiterStore.locks.waitForRelease('w', 30_000)
      await sleep(100)
      const meter2 = stallMeter()
      const t0 = performance.now()
      await holder.locks.setFenced('w', bytes('v'), 60_000, again.fence)
      await second
      meter2.stop()
      // The lease ends in 30 s: waking within a second of the write is the notification's doing.
      assert.ok(performance.now() - t0 < 1_000 + meter2.stalledMs, 'the setFenced notification woke the waiter')
    } finally {
      await waiterStore.close()
      await holder.close()
    }
  })

  test('close() resolves pending waiters, is idempotent, and later calls fail with ERR_CLOSED', async () => {
    const store = redisStore({ url: server.url, prefix: freshPrefix() })
    assert.ok((await store.locks.acquire('w', 't', 30_000)) !== undefined)
    const waiting = store.locks.waitForRelease('w', 30_000)
    await sleep(50)
    const t0 = performance.now()
    await Promise.all([store.close(), store.close()])
    await waiting
    assert.ok(performance.now() - t0 < 2_000)
    assert.equal(store.client.status, 'end')
    await assert.rejects(store.get('w'), (err: unknown) => isCacheError(err, 'ERR_CLOSED'))
  })

  test('close() leaves no timer behind that keeps the process alive (no ioredis disconnect timer after QUIT)', async () => {
    const store = redisStore({ url: server.url, prefix: freshPrefix() })
    await store.set('k', bytes('v'), 60_000)
    // Every timer created during close() and still pending after it: a ref'd one holds the process up.
    assert.deepEqual(await refTimersAfter(() => store.close()), [], 'a ref\'d timer outlives close()')
  })

  test('close() while the wake-up subscriber is still connecting leaves no timer behind either', async () => {
    const prefix = freshPrefix()
    const holder = redisStore({ url: server.url, prefix })
    const store = redisStore({ url: server.url, prefix })
    try {
      assert.ok((await holder.locks.acquire('w', 't', 30_000)) !== undefined)
      await store.get('x')
      const timers = watchTimers()
      try {
        // The wait opens the subscriber connection; close() comes while it connects.
        const waiting = store.locks.waitForRelease('w', 30_000)
        await new Promise((resolve) => setImmediate(resolve))
        await store.close()
        await waiting
        // The connection's own failure handling (ready check, subscribe) runs after close().
        await sleep(30)
      } finally {
        timers.stop()
      }
      const held = timers.pending().filter((p) => p.timer.hasRef() && !p.stack.includes('at sleep '))
      assert.deepEqual(held.map((p) => p.stack), [], 'a ref\'d timer outlives close()')
    } finally {
      await holder.close()
      await store.close()
    }
  })

  test('close() while the client itself is still connecting answers the queued call and leaves no timer behind', async () => {
    // Each delay lands close() in another phase of the set-up (connecting, ready check).
    for (const delay of [0, 1, 2, 5]) {
      const timers = watchTimers()
      let got: unknown
      try {
        const store = redisStore({ url: server.url, prefix: freshPrefix() })
        const read = store.get('k').then(text, (err: unknown) => err)
        if (delay === 0) await new Promise((resolve) => setImmediate(resolve))
        else await sleep(delay)
        await store.close()
        got = await read
        await sleep(30)
      } finally {
        timers.stop()
      }
      assert.equal(got, undefined, `delay ${delay} ms: the read queued before close() is answered (a miss), not failed`)
      const held = timers.pending().filter((p) => p.timer.hasRef() && p.stack.includes('ioredis'))
      assert.deepEqual(held.map((p) => p.stack), [], `delay ${delay} ms: a ref'd timer outlives close()`)
    }
  })

  test('close() with Redis down resolves at once and leaves no long timer behind (the process exits)', async () => {
    const own = await startRedisServer()
    const store = redisStore({ url: own.url, prefix: freshPrefix() })
    try {
      await store.set('k', bytes('v'), 60_000)
      await own.kill()
      const deadline = Date.now() + 10_000
      while (store.client.status !== 'reconnecting' && Date.now() < deadline) await sleep(10)
      assert.equal(store.client.status, 'reconnecting')
      const timers = watchTimers()
      const meter = stallMeter()
      const started = performance.now()
      try {
        // Before: QUIT raced an unref'd 1 s bound and no 'end' ever came, so with nothing else
        // running close() never resolved; here the test's own handles let it end after 1 s.
        await store.close()
      } finally {
        timers.stop()
        meter.stop()
      }
      const spent = performance.now() - started
      assert.ok(spent < 500 + meter.stalledMs, `close() took ${spent.toFixed(0)} ms (${meter.stalledMs.toFixed(0)} ms of it this process stalled)`)
      // ioredis' disconnect() of a closed socket arms a ref'd timer nothing clears: 2 s by default.
      const held = timers.pending().filter((p) => p.timer.hasRef() && p.stack.includes('ioredis') && p.ms > 100)
      assert.deepEqual(held.map((p) => p.stack), [], 'a long ref\'d timer outlives close()')
    } finally {
      await store.close()
      await own.stop()
    }
  })

  test('a user-supplied client is used as is and left open by close()', async () => {
    const client = new Redis(server.url)
    try {
      const store = redisStore({ client, prefix: freshPrefix() })
      await store.set('k', bytes('v'), 60_000)
      assert.equal(text(await store.get('k')), 'v')
      assert.equal(store.client, client)
      await store.close()
      assert.equal(await client.ping(), 'PONG', 'still usable after the store closed')
    } finally {
      client.disconnect()
    }
  })

  test('invalid options fail at construction with InvalidOptionsError naming the option', () => {
    const expectOption = (option: string, fn: () => unknown): void => {
      assert.throws(fn, (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && (err as { option?: string }).option === option)
    }
    expectOption('redis.url', () => redisStore({}))
    expectOption('redis.url', () => redisStore({ url: '' }))
    // ioredis takes a URL of another scheme for a unix socket path ("connect ENOENT //host:port").
    expectOption('redis.url', () => redisStore({ url: `http://127.0.0.1:${server.port}` }))
    expectOption('redis.url', () => redisStore({ url: `tcp://127.0.0.1:${server.port}` }))
    // ioredis threw its raw TypeError 'Invalid URL' for these.
    expectOption('redis.url', () => redisStore({ url: 'redis://127.0.0.1:99999' }))
    expectOption('redis.url', () => redisStore({ url: 'redis://[::1' }))
    expectOption('redis.url', () => redisStore({ url: ' redis://127.0.0.1:1' }))
    expectOption('redis.cluster', () => redisStore({ url: server.url, cluster: { nodes: [{ host: '127.0.0.1', port: server.port }] } }))
    expectOption('redis.cluster.nodes', () => redisStore({ cluster: { nodes: [] } }))
    expectOption('redis.name', () => redisStore({ sentinels: [{ host: '127.0.0.1', port: 26379 }] }))
    expectOption('redis.prefix', () => redisStore({ url: server.url, prefix: 'a{b' }))
    expectOption('redis.commandTimeout', () => redisStore({ url: server.url, commandTimeout: 'soon' as '1s' }))
    expectOption('redis.maxRetriesPerRequest', () => redisStore({ url: server.url, maxRetriesPerRequest: -1 }))
    expectOption('redis.scanCount', () => redisStore({ url: server.url, scanCount: 0 }))
    // Checked before the client exists: onError: 5 threw node's raw ERR_INVALID_ARG_TYPE and left
    // a connected client behind, reconnecting and logging "Unhandled error event" for ever.
    expectOption('redis.onError', () => redisStore({ url: server.url, onError: 5 as unknown as () => void }))
    expectOption('redis.clock', () => redisStore({ url: server.url, clock: 5 as unknown as ManualClock }))
    expectOption('redis.redisOptions', () => redisStore({ url: server.url, redisOptions: 5 as unknown as object }))
    // Were spread and ignored ([], 5), or named an option that does not exist (redis.reconnect.random).
    expectOption('redis.redisOptions', () => redisStore({ url: server.url, redisOptions: [] as unknown as object }))
    expectOption('redis.cluster.options', () => redisStore({ cluster: { nodes: [{ host: '127.0.0.1', port: server.port }], options: 5 as unknown as object } }))
    expectOption('redis.random', () => redisStore({ url: server.url, random: {} as unknown as ManualClock as never }))
    expectOption('redis.cluster.nodes', () => redisStore({ cluster: { nodes: [5 as unknown as { host: string; port: number }] } }))
    expectOption('redis.sentinels', () => redisStore({ sentinels: [5 as unknown as { host: string; port: number }], name: 'm' }))
    expectOption('redis.reconnect.initial', () => redisStore({ url: server.url, reconnect: { initial: 0 } }))
    expectOption('redis.reconnect.max', () => redisStore({ url: server.url, reconnect: { initial: '5s' } }))
    expectOption('redis.reconnect.jitter', () => redisStore({ url: server.url, reconnect: { jitter: 1.5 } }))
    expectOption('redis.client', () => redisStore({ client: {} as Redis }))
    const prefixed = new Redis(server.url, { keyPrefix: 'app:', lazyConnect: true })
    expectOption('redis.client', () => redisStore({ client: prefixed }))
    prefixed.disconnect()
  })
})

describe('redisStore: an unreachable server (bad input: the conformance suite)', () => {
  test('nothing listening: every call, scan and clear included, rejects with ERR_STORE_UNAVAILABLE naming the address', async () => {
    const port = await freePort()
    const store = redisStore({ url: `redis://127.0.0.1:${port}`, prefix: freshPrefix() })
    try {
      const calls: [string, () => Promise<unknown>][] = [
        ['get', () => store.get('k')],
        ['set', () => store.set('k', bytes('v'), 1000)],
        ['clear', () => store.clear('')],
        ['scan', () => store.scan()],
        ['scan(prefix)', () => store.scan({ prefix: 'p', limit: 10 })],
        // The lock scripts rejected with ioredis's raw MaxRetriesPerRequestError.
        ['acquire', () => store.locks.acquire('k', 't', 1000)],
        ['extend', () => store.locks.extend('k', 't', 1000)],
        ['release', () => store.locks.release('k', 't')],
        ['drawFence', () => store.locks.drawFence('k')],
        ['setFenced', () => store.locks.setFenced('k', bytes('v'), 1000, 1)],
        ['setAbove', () => store.locks.setAbove('k', bytes('v'), 1000)],
        ['deleteAbove', () => store.locks.deleteAbove('k')],
      ]
      for (const [name, call] of calls) {
        await assert.rejects(withDeadline(call(), 5_000), (err: unknown) => {
          assert.ok(isCacheError(err, 'ERR_STORE_UNAVAILABLE'), `${name}: ${String(err)}`)
          assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`))
          return true
        })
      }
    } finally {
      await store.close()
    }
  })
})

describe('redisStore: Sentinel', () => {
  let sentinel: RedisServer
  before(async () => {
    sentinel = await startRedisSentinel(server, 'primary')
  })
  after(async () => {
    await sentinel?.stop()
  })

  test('sentinels + name: the store finds the master through Sentinel; locks and wake-ups work', async () => {
    const prefix = freshPrefix()
    const viaSentinel = redisStore({ sentinels: [{ host: sentinel.host, port: sentinel.port }], name: 'primary', prefix })
    const direct = redisStore({ url: server.url, prefix })
    try {
      await viaSentinel.set('k', bytes('through sentinel'), 60_000)
      assert.equal(text(await direct.get('k')), 'through sentinel', 'it wrote to the monitored master')
      const grant = await direct.locks.acquire('l', 'D', 30_000)
      assert.ok(grant !== undefined)
      const waiting = viaSentinel.locks.waitForRelease('l', 30_000)
      await sleep(100)
      const meter = stallMeter()
      const t0 = performance.now()
      assert.equal(await direct.locks.release('l', 'D'), true)
      await waiting
      meter.stop()
      assert.ok(performance.now() - t0 < 1_000 + meter.stalledMs, 'the release woke the waiter (its lease ends in 30 s)')
    } finally {
      await viaSentinel.close()
      await direct.close()
    }
  })
})

describe('redisStore: faults (own server)', () => {
  let faulty: RedisServer
  before(async () => {
    faulty = await startRedisServer()
  })
  after(async () => {
    // Thaw first: a stopped process still dies on SIGKILL, but be explicit.
    faulty?.thaw()
    await faulty?.stop()
  })

  test('frozen server: a get rejects at commandTimeout instead of hanging; after thaw it works again', async () => {
    const store = redisStore({ url: faulty.url, prefix: freshPrefix(), commandTimeout: 300 })
    try {
      await store.set('k', bytes('v'), 60_000)
      faulty.freeze()
      const meter = stallMeter()
      const t0 = performance.now()
      await assert.rejects(store.get('k'), /timed out/i)
      const spent = performance.now() - t0
      meter.stop()
      assert.ok(spent >= 250 && spent < 2_000 + meter.stalledMs, `rejected after ${spent.toFixed(0)} ms (${meter.stalledMs.toFixed(0)} ms of it this process stalled)`)
      faulty.thaw()
      assert.equal(text(await store.get('k')), 'v')
    } finally {
      faulty.thaw()
      await store.close()
    }
  })

  test('killed server: operations reject (not hang); after restart the same store works again', async () => {
    const store = redisStore({ url: faulty.url, prefix: freshPrefix() })
    try {
      await store.set('k', bytes('v'), 60_000)
      assert.ok((await store.locks.acquire('w', 't', 60_000)) !== undefined)
      const waiting = store.locks.waitForRelease('w', 30_000)
      await sleep(100)
      await faulty.kill()
      const t0 = performance.now()
      await assert.rejects(withDeadline(store.get('k'), 5_000))
      await assert.rejects(withDeadline(store.set('k', bytes('x'), 60_000), 5_000))
      assert.ok(performance.now() - t0 < 5_000)
      await faulty.restart()
      // ioredis reconnects with backoff; the store is not recreated.
      const deadline = performance.now() + 10_000
      for (;;) {
        try {
          await store.set('k', bytes('after restart'), 60_000)
          break
        } catch (err) {
          if (performance.now() > deadline) throw err
          await sleep(100)
        }
      }
      assert.equal(text(await store.get('k')), 'after restart', 'data did not survive (no persistence); new writes do')
      // The waiter's release was lost with the server: the subscriber's reconnect wakes it.
      await withDeadline(waiting, 10_000)
    } finally {
      await store.close()
    }
  })

  test('close() of a store whose server is frozen returns promptly', async () => {
    const store = redisStore({ url: faulty.url, prefix: freshPrefix() })
    await store.set('k', bytes('v'), 60_000)
    faulty.freeze()
    try {
      const t0 = performance.now()
      await store.close()
      assert.ok(performance.now() - t0 < 3_000)
    } finally {
      faulty.thaw()
    }
  })
})

/** Rejects if `promise` has not settled within `ms`: a hang fails the test instead of stalling it. */
function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms)
  })
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer))
}

async function info(s: RedisServer, section: string): Promise<string> {
  const reply = await s.command('INFO', section)
  assert.equal(typeof reply, 'string')
  return reply as string
}

async function totalReads(s: RedisServer): Promise<number> {
  const m = /total_reads_processed:(\d+)/.exec(await info(s, 'stats'))
  assert.ok(m !== null)
  return Number(m[1])
}

async function commandCalls(s: RedisServer): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const m of (await info(s, 'commandstats')).matchAll(/cmdstat_(\w+):calls=(\d+)/g)) out.set(m[1], Number(m[2]))
  return out
}

describe('redisStore: out of memory (own server)', () => {
  let small: RedisServer
  before(async () => {
    small = await startRedisServer()
  })
  after(async () => {
    await small?.stop()
  })

  test('past maxmemory (noeviction) writes and lock grants are refused with ERR_STORE_FULL; reads and deletes still work', async () => {
    const store = redisStore({ url: small.url, prefix: freshPrefix() })
    try {
      await store.set('early', bytes('kept'), 600_000)
      const used = Number(/used_memory:(\d+)/.exec(String(await small.command('INFO', 'memory')))?.[1])
      assert.equal(await small.command('CONFIG', 'SET', 'maxmemory', String(used + 512 * 1024)), 'OK')
      assert.equal(await small.command('CONFIG', 'SET', 'maxmemory-policy', 'noeviction'), 'OK')
      const chunk = new Uint8Array(64 * 1024).fill(1)
      let full: unknown
      for (let i = 0; i < 64 && full === undefined; i++) await store.set(`fill${i}`, chunk, 600_000).catch((err: unknown) => (full = err))
      assert.ok(isCacheError(full, 'ERR_STORE_FULL'), `expected ERR_STORE_FULL, got ${String(full)}`)
      // The refusal above came while the refused command's own 64 KB query buffer counted in
      // used_memory; once Redis freed it, memory can sit just below the limit and a small
      // write (a lock grant) would pass. Keep the server over its limit for the rest.
      const usedNow = Number(/used_memory:(\d+)/.exec(String(await small.command('INFO', 'memory')))?.[1])
      assert.equal(await small.command('CONFIG', 'SET', 'maxmemory', String(usedNow - 128 * 1024)), 'OK')
      await assert.rejects(store.setMany([{ key: 'm1', value: chunk, ttlMs: 600_000 }, { key: 'm2', value: chunk, ttlMs: 600_000 }]), (err: unknown) => isCacheError(err, 'ERR_STORE_FULL'))
      assert.deepEqual(await store.getMany(['m1', 'm2']), [undefined, undefined], 'the refused batch wrote nothing')
      // Lock grants write too (the lease and the fence counter): refused the same way.
      await assert.rejects(store.locks.acquire('F', 'tok', 60_000), (err: unknown) => isCacheError(err, 'ERR_STORE_FULL'))
      await assert.rejects(store.locks.setFenced('F', chunk, 600_000, 1), (err: unknown) => isCacheError(err, 'ERR_STORE_FULL'))
      assert.equal(text(await store.get('early')), 'kept', 'reads still work')
      assert.equal(await store.delete('fill0'), true, 'deletes still work')
    } finally {
      await small.command('CONFIG', 'SET', 'maxmemory', '0')
      await store.close()
    }
  })
})

describe('redisStore: scan', () => {
  test('keys come back exactly (the key mapping reversed), lock records are not keys, and only SCAN is used (never KEYS)', async () => {
    const store = redisStore({ url: server.url, prefix: freshPrefix() })
    const admin = new Redis(server.url)
    try {
      const tricky = ['', '%', '%25', '%7B', '{', '}', '{}', '}{', '{a}', 'a{b}c:{}', '%u', '\uD83D', '\uDE00', '\uD83D\uDE00', '🚀', 'x\u0000y', '*', '\\', 'ns:a', 'ns:b']
      await store.setMany(tricky.map((key) => ({ key, value: bytes('v'), ttlMs: 600_000 })))
      assert.ok((await store.locks.acquire('only-a-lock', 'tok', 600_000)) !== undefined)
      const stats = async (): Promise<{ keys: number; scan: number }> => {
        const info = String(await admin.info('commandstats'))
        const calls = (name: string): number => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)?.[1] ?? 0)
        return { keys: calls('keys'), scan: calls('scan') }
      }
      const before = await stats()
      const all: string[] = []
      let cursor: string | undefined
      do {
        const page = await store.scan({ cursor, limit: 3 })
        assert.ok(page.keys.length <= 3)
        all.push(...page.keys)
        cursor = page.cursor
      } while (cursor !== undefined)
      assert.deepEqual([...new Set(all)].sort(), [...tricky].sort())
      const { keys: ns } = await store.scan({ prefix: 'ns:', limit: 100 })
      assert.deepEqual([...ns].sort(), ['ns:a', 'ns:b'])
      const after = await stats()
      assert.equal(after.keys, before.keys, 'KEYS was never sent')
      assert.ok(after.scan > before.scan, 'SCAN was')
    } finally {
      admin.disconnect()
      await store.close()
    }
  })

  test('a cursor from another master set restarts the walk: keys repeat, none is lost', async () => {
    const store = redisStore({ url: server.url, prefix: freshPrefix() })
    try {
      const keys = Array.from({ length: 40 }, (_, i) => `k${i}`)
      await store.setMany(keys.map((key) => ({ key, value: bytes('v'), ttlMs: 600_000 })))
      const first = await store.scan({ limit: 5 })
      assert.ok(first.cursor !== undefined)
      // As if the master set changed since: the digest differs and the walk was "past the end".
      const state = JSON.parse(Buffer.from(first.cursor, 'base64url').toString('utf8')) as Record<string, unknown>
      const stale = Buffer.from(JSON.stringify({ ...state, n: 1, c: '0', m: 'another-master-set' })).toString('base64url')
      const seen = new Set(first.keys)
      let cursor: string | undefined = stale
      do {
        const page: { keys: readonly string[]; cursor: string | undefined } = await store.scan({ cursor, limit: 5 })
        for (const k of page.keys) seen.add(k)
        cursor = page.cursor
      } while (cursor !== undefined)
      assert.deepEqual([...seen].sort(), [...keys].sort())
    } finally {
      await store.close()
    }
  })
})
