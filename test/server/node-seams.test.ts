// The cluster seams: the in-process network transport, and the replicator that sees every
// acknowledged write with its version and absolute expiry.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ManualClock } from '../../src/core/manual-clock.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { InProcessNetwork, startNode, type PeerAddress, type WriteEvent } from '../../src/server/index.js'
import { KeyedMutex } from '../../src/server/keyed-mutex.js'
import { TokenBucketLimiter } from '../../src/server/token-bucket.js'
import { VersionClock } from '../../src/server/version-clock.js'
import { errorCode, survivingStore, tempDir } from '../support/node-fixtures.js'

const peer = (id: string): PeerAddress => ({ id, host: '127.0.0.1', port: 1, region: 'r' })
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined }

describe('node seams', () => {
  test('InProcessNetwork: delivery, replies, partitions both ways, unknown peers', async () => {
    const net = new InProcessNetwork()
    const a = net.transport(peer('a'))
    const b = net.transport(peer('b'))
    b.listen(async (from, m) => ({ type: 'echo', body: { from: from.id, got: m.body } }))
    assert.deepEqual(await a.send(peer('b'), { type: 'ping', body: 1 }), { type: 'echo', body: { from: 'a', got: 1 } })
    net.partition('a', 'b')
    await assert.rejects(a.send(peer('b'), { type: 'ping', body: 2 }), /unreachable/)
    net.partition('a', 'b', false)
    assert.equal((await a.send(peer('b'), { type: 'ping', body: 3 })).type, 'echo')
    await assert.rejects(a.send(peer('c'), { type: 'ping', body: 4 }), /unreachable/)
    await b.close()
    await assert.rejects(a.send(peer('b'), { type: 'ping', body: 5 }), /unreachable/)
  })

  test('the replicator sees every acknowledged write with version and absolute expiry', async () => {
    const clock = new ManualClock()
    const events: WriteEvent[] = []
    const node = await startNode({ port: 0, clock, store: memoryStore({ clock }), logger: silent, replicator: { onWrite: (e) => void events.push(e), close: async () => undefined } })
    try {
      const put = JSON.parse(String((await node.inject({ method: 'PUT', url: '/v1/keys/a?ttl=10&tags=t:1', body: 'v' })).body)) as { version: number }
      await node.inject({ method: 'PUT', url: '/v1/keys/a?ttl=0', body: 'refused' })
      await node.inject({ method: 'DELETE', url: '/v1/keys/a' })
      await node.inject({ method: 'DELETE', url: '/v1/keys/a' })
      await node.inject({ method: 'POST', url: '/v1/invalidate', headers: { 'content-type': 'application/json' }, body: '{"tags":["t"]}' })
      assert.deepEqual(
        events.map((e) => e.type),
        ['put', 'delete', 'invalidate'],
        'refused writes and deletes of absent keys are not offered',
      )
      assert.equal(events[0].version, put.version)
      assert.equal(events[0].expiresAt, clock.now() + 10_000)
      assert.deepEqual(events[0].tags, ['t:1'])
    } finally {
      await node.close()
    }
  })

  test('a replicator that throws does not fail the write', async () => {
    const node = await startNode({ port: 0, store: memoryStore(), logger: silent, replicator: { onWrite: () => { throw new Error('boom') }, close: async () => undefined } })
    try {
      assert.equal((await node.inject({ method: 'PUT', url: '/v1/keys/a', body: 'v' })).status, 200)
    } finally {
      await node.close()
    }
  })

  test('VersionClock: strictly increasing under concurrency; the persisted mark bounds a restart; a failed mark write fails the draw', async () => {
    const clock = new ManualClock()
    const store = memoryStore({ clock })
    const v = await VersionClock.open(store, 'mark', clock)
    const drawn = await Promise.all(Array.from({ length: 2000 }, () => v.next()))
    for (let i = 1; i < drawn.length; i++) assert.ok(drawn[i] > drawn[i - 1])
    const reopened = await VersionClock.open(store, 'mark', new ManualClock(clock.now() - 86_400_000))
    assert.ok((await reopened.next()) > drawn[drawn.length - 1])
    const failing = { ...survivingStore(store), set: async () => { throw new Error('disk gone') } }
    const fresh = await VersionClock.open(failing, 'other', clock)
    await assert.rejects(fresh.next(), (err: unknown) => (err as { code?: string }).code === 'ERR_STORE_UNAVAILABLE' && (err as Error).cause instanceof Error)
  })

  test('a store write that fails is not acknowledged: 503 ERR_STORE_UNAVAILABLE, the old value is still served, nothing waits for a replay', async () => {
    const inner = memoryStore()
    let broken = false
    const store: typeof inner = { ...survivingStore(inner), set: (k, v, t) => (broken && k.startsWith('node:') ? Promise.reject(new Error('disk gone')) : inner.set(k, v, t)) }
    const node = await startNode({ port: 0, store, logger: silent })
    try {
      assert.equal((await node.inject({ method: 'PUT', url: '/v1/keys/a', body: 'old' })).status, 200)
      broken = true
      const failed = await node.inject({ method: 'PUT', url: '/v1/keys/a', body: 'new' })
      assert.equal(failed.status, 503)
      assert.equal(errorCode(failed.body), 'ERR_STORE_UNAVAILABLE')
      const read = await node.inject({ method: 'GET', url: '/v1/keys/a' })
      assert.equal(read.status, 200)
      assert.equal(Buffer.from(read.body).toString(), 'old', 'the refused value is not served from memory')
      broken = false
      assert.equal((await node.inject({ method: 'PUT', url: '/v1/keys/a', body: 'newer' })).status, 200)
      assert.equal(Buffer.from((await node.inject({ method: 'GET', url: '/v1/keys/a' })).body).toString(), 'newer')
    } finally {
      await node.close()
      await inner.close()
    }
  })

  test('a full disk: 507 ERR_STORE_FULL, earlier values intact, also after a restart', async () => {
    const dir = tempDir()
    const value = 'x'.repeat(100_000)
    const open: Array<Awaited<ReturnType<typeof startNode>>> = []
    try {
      const first = await startNode({ port: 0, dataDir: dir.path, disk: '1mb', logger: silent })
      open.push(first)
      let stored = 0
      let full: Awaited<ReturnType<typeof first.inject>> | undefined
      for (let i = 0; i < 40 && full === undefined; i++) {
        const r = await first.inject({ method: 'PUT', url: `/v1/keys/k${i}`, body: value })
        if (r.status === 200) stored++
        else full = r
      }
      assert.ok(full !== undefined, 'the store filled up')
      assert.equal(full.status, 507)
      assert.equal(errorCode(full.body), 'ERR_STORE_FULL')
      assert.ok(stored > 0)
      assert.equal((await first.inject({ method: 'GET', url: `/v1/keys/k${stored}` })).status, 404, 'the refused write is not served')
      await open.pop()?.close()
      const second = await startNode({ port: 0, dataDir: dir.path, disk: '1mb', logger: silent })
      open.push(second)
      for (let i = 0; i < stored; i++) {
        const r = await second.inject({ method: 'GET', url: `/v1/keys/k${i}` })
        assert.equal(r.status, 200, `k${i} survived`)
        assert.equal(Buffer.from(r.body).length, value.length)
      }
    } finally {
      for (const n of open) await n.close()
      dir.remove()
    }
  })

  test('KeyedMutex runs one task per key at a time and forgets idle keys', async () => {
    const m = new KeyedMutex()
    const order: string[] = []
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const first = m.run('k', async () => (await gate, order.push('first')))
    const second = m.run('k', async () => void order.push('second'))
    const other = m.run('j', async () => void order.push('other'))
    await other
    assert.deepEqual(order, ['other'])
    release()
    await Promise.all([first, second])
    assert.deepEqual(order, ['other', 'first', 'second'])
    await assert.rejects(m.run('k', async () => { throw new Error('task failed') }), /task failed/)
    assert.equal(await m.run('k', async () => 'next runs'), 'next runs')
    assert.equal(m.size, 0)
  })

  test('TokenBucketLimiter: burst, refill, bounded table', () => {
    const clock = new ManualClock()
    const l = new TokenBucketLimiter(clock, 10, 2, 3)
    assert.equal(l.take('a'), 0)
    assert.equal(l.take('a'), 0)
    assert.equal(l.take('a'), 1)
    clock.advance(100)
    assert.equal(l.take('a'), 0)
    for (const c of ['b', 'c', 'd', 'e']) l.take(c)
    assert.equal(l.size, 3)
  })
})
