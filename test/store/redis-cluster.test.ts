/**
 * redisStore on a real 3-master Redis Cluster (own processes on free loopback ports): the
 * shared conformance suite, plus batches over many slots, clear across every master, and
 * locks whose Lua scripts must keep to one slot per key.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Cluster, Redis } from 'ioredis'
import { storeConformance } from '../../src/store/conformance.js'
import { redisKeys, redisStore } from '../../src/store/redis-store.js'
import { startRedisCluster, type RedisCluster } from '../support/redis-server.js'
import { REAL_TIME_UNIT_MS, stallMeter } from '../support/stall-meter.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)
const text = (value: Uint8Array | undefined): string | undefined => (value === undefined ? undefined : new TextDecoder().decode(value))

let cluster: RedisCluster
let prefixes = 0
const freshPrefix = (): string => `c${process.pid}-${++prefixes}:`
const open = (prefix = freshPrefix()) => redisStore({ cluster: { nodes: cluster.nodes }, prefix })

before(async () => {
  cluster = await startRedisCluster({ masters: 3 })
})
after(async () => {
  await cluster?.stop()
})

storeConformance({
  name: 'redis (cluster, 3 masters)',
  open: async () => open(),
  advance: sleep,
  minTtlMs: REAL_TIME_UNIT_MS,
})

/** Data keys of `prefix` on each master, read with SCAN straight from each server. */
async function dataKeysPerServer(prefix: string): Promise<number[]> {
  return Promise.all(
    cluster.servers.map(async (s) => {
      let cursor = '0'
      let n = 0
      const raw = new Redis(s.url)
      try {
        do {
          const [next, keys] = await raw.scan(cursor, 'MATCH', `${prefix}{*}`, 'COUNT', 1000)
          cursor = next
          n += keys.length
        } while (cursor !== '0')
      } finally {
        raw.disconnect()
      }
      return n
    }),
  )
}

describe('redisStore on Cluster', () => {
  test('setMany/getMany/deleteMany over 600 keys spread over every master, in order', async () => {
    const prefix = freshPrefix()
    const store = open(prefix)
    try {
      const keys = Array.from({ length: 600 }, (_, i) => `item:${i}`)
      await store.setMany(keys.map((key, i) => ({ key, value: bytes(`v${i}`), ttlMs: i % 2 === 0 ? 60_000 : Infinity })))
      const perServer = await dataKeysPerServer(prefix)
      assert.equal(perServer.reduce((a, b) => a + b, 0), 600)
      assert.ok(perServer.every((n) => n > 100), `keys spread over all masters: ${perServer.join(', ')}`)
      const asked = [...keys].reverse().concat(['missing', keys[0]])
      const got = await store.getMany(asked)
      assert.deepEqual(got.map(text), asked.map((k) => (k === 'missing' ? undefined : `v${k.slice(5)}`)))
      assert.equal(await store.deleteMany([...keys.slice(0, 300), 'missing', keys[0]]), 300)
      assert.deepEqual(await dataKeysPerServer(prefix).then((c) => c.reduce((a, b) => a + b, 0)), 300)
    } finally {
      await store.close()
    }
  })

  test('clear(prefix) removes matching keys on every master and nothing else', async () => {
    const prefix = freshPrefix()
    const store = open(prefix)
    const neighbour = open()
    try {
      await store.setMany(Array.from({ length: 300 }, (_, i) => ({ key: `user:${i}`, value: bytes('u'), ttlMs: 60_000 })))
      await store.setMany(Array.from({ length: 100 }, (_, i) => ({ key: `post:${i}`, value: bytes('p'), ttlMs: 60_000 })))
      await neighbour.set('user:1', bytes('neighbour'), 60_000)
      const before = await dataKeysPerServer(prefix)
      assert.ok(before.every((n) => n > 0))
      await store.clear('user:')
      const after = await dataKeysPerServer(prefix)
      assert.equal(after.reduce((a, b) => a + b, 0), 100, 'only post:* left')
      assert.ok(after.every((n) => n > 0), 'the kept keys are still spread over the masters')
      assert.deepEqual((await store.getMany(['user:0', 'user:299', 'post:0'])).map(text), [undefined, undefined, 'p'])
      assert.equal(text(await neighbour.get('user:1')), 'neighbour')
      await store.clear('')
      assert.deepEqual(await dataKeysPerServer(prefix), [0, 0, 0])
    } finally {
      await store.close()
      await neighbour.close()
    }
  })

  test('locks and setFenced on keys in many slots, braces included: scripts stay in one slot', async () => {
    const prefix = freshPrefix()
    const a = open(prefix)
    const b = open(prefix)
    const keys = [...Array.from({ length: 40 }, (_, i) => `job:${i}`), '{user}:1', 'a}b{c', '{', '}', '', 'x{}y']
    try {
      // The server agrees that each key's data, lock and fence keys share a slot.
      const client = a.client as Cluster
      for (const key of keys) {
        const k = redisKeys(prefix, key)
        const slots = await Promise.all([k.data, k.lock, k.fence].map((name) => client.cluster('KEYSLOT', name)))
        assert.equal(new Set(slots).size, 1, `one slot for ${JSON.stringify(key)}`)
      }
      const grants = await Promise.all(keys.map((key) => a.locks.acquire(key, 'A', 100)))
      assert.ok(grants.every((g) => g !== undefined))
      await sleep(250) // every A lease expires
      for (const [i, key] of keys.entries()) {
        const grantB = await b.locks.acquire(key, 'B', 10_000)
        assert.ok(grantB !== undefined && grantB.fence > (grants[i]?.fence ?? Infinity))
        assert.equal(await b.locks.setFenced(key, bytes(`B${i}`), 60_000, grantB.fence), true)
        assert.equal(await a.locks.setFenced(key, bytes('stale'), 60_000, grants[i]?.fence ?? 0), false)
        assert.equal(await a.locks.release(key, 'A'), false)
        assert.equal(await b.locks.release(key, 'B'), true)
      }
      assert.deepEqual((await a.getMany(keys)).map(text), keys.map((_, i) => `B${i}`))
    } finally {
      await a.close()
      await b.close()
    }
  })

  test('the harness can also join a cluster by hand (CLUSTER MEET + ADDSLOTSRANGE), and the store works on it', async () => {
    const manual = await startRedisCluster({ masters: 3, join: 'manual' })
    const store = redisStore({ cluster: { nodes: manual.nodes } })
    try {
      const keys = Array.from({ length: 30 }, (_, i) => `k${i}`)
      await store.setMany(keys.map((key) => ({ key, value: bytes(key), ttlMs: 60_000 })))
      assert.deepEqual((await store.getMany(keys)).map(text), keys)
    } finally {
      await store.close()
      await manual.stop()
    }
  })

  test('waitForRelease wakes when another client releases on another node', async () => {
    const prefix = freshPrefix()
    const waiter = open(prefix)
    const holder = open(prefix)
    try {
      const keys = ['w:1', 'w:2', 'w:3', 'w:4', 'w:5', 'w:6']
      for (const key of keys) assert.ok((await holder.locks.acquire(key, 'H', 30_000)) !== undefined)
      const woke = new Map<string, number>()
      const waits = keys.map((key) => waiter.locks.waitForRelease(key, 30_000).then(() => woke.set(key, performance.now())))
      await sleep(300)
      assert.equal(woke.size, 0, 'all held')
      const meter = stallMeter()
      const t0 = performance.now()
      for (const key of keys) assert.equal(await holder.locks.release(key, 'H'), true)
      await Promise.all(waits)
      meter.stop()
      for (const [key, at] of woke) assert.ok(at - t0 < 1_000 + meter.stalledMs, `${key} woke ${(at - t0).toFixed(1)} ms after the releases began (${meter.stalledMs.toFixed(0)} ms of it this process stalled)`)
    } finally {
      await waiter.close()
      await holder.close()
    }
  })
})
