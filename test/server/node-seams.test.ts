// The cluster seams: the peer transport a node holds, and the replicator that sees every
// acknowledged write with its version and absolute expiry.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ManualClock } from '../../src/core/manual-clock.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { type MessageTransport, startNode, type WriteEvent } from '../../src/server/index.js'
import { KeyedMutex } from '../../src/server/keyed-mutex.js'
import { TokenBucketLimiter } from '../../src/server/token-bucket.js'
import { openNodeClock } from '../../src/server/node-clock.js'
import { resolveNodeOptions } from '../../src/server/node-options.js'
import { noTickerClock, systemClock } from '../../src/core/system-clock.js'
import { errorCode, survivingStore, tempDir } from '../support/node-fixtures.js'

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined }

describe('node seams', () => {
  test("the node's default clock reads Date.now() and starts no ticker thread (decision 0360); a given clock is kept", () => {
    const clock = resolveNodeOptions({ dataDir: '/nonexistent' }).clock
    assert.equal(clock, noTickerClock())
    assert.notEqual(clock, systemClock)
    const manual = new ManualClock()
    assert.equal(resolveNodeOptions({ dataDir: '/nonexistent', clock: manual }).clock, manual)
  })

  test('the node takes a cluster MessageTransport and closes it with itself', async () => {
    let closed = 0
    const transport: MessageTransport = {
      self: 'n1',
      maxFrameBytes: 1024,
      send: () => undefined,
      onReceive: () => () => undefined,
      onUnreachable: () => () => undefined,
      close: async () => void closed++,
    }
    const node = await startNode({ port: 0, store: memoryStore(), logger: silent, transport })
    assert.equal(node.transport, transport)
    await node.close()
    assert.equal(closed, 1)
    await assert.rejects(startNode({ port: 0, store: memoryStore(), logger: silent, transport: { send: () => undefined } as unknown as MessageTransport }), (e: unknown) => (e as { code?: string }).code === 'ERR_INVALID_OPTIONS')
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
      assert.ok(events[1].version! > put.version, 'a delete carries its tombstone version')
      assert.ok(events[2].version! > events[1].version!, 'an invalidation carries its version')
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

  test('node clock: strictly increasing under concurrency; the persisted mark bounds a restart; a failed mark write fails the draw', async () => {
    const clock = new ManualClock()
    const store = memoryStore({ clock })
    const v = await openNodeClock(store, 'mark', clock)
    const drawn = await Promise.all(Array.from({ length: 2000 }, () => v.nextDurable()))
    for (let i = 1; i < drawn.length; i++) assert.ok(drawn[i] > drawn[i - 1])
    const reopened = await openNodeClock(store, 'mark', new ManualClock(clock.now() - 86_400_000))
    assert.ok((await reopened.nextDurable()) > drawn[drawn.length - 1])
    const failing = { ...survivingStore(store), set: async () => { throw new Error('disk gone') } }
    const fresh = await openNodeClock(failing, 'other', clock)
    await assert.rejects(fresh.nextDurable(), (err: unknown) => (err as { code?: string }).code === 'ERR_STORE_UNAVAILABLE' && (err as Error).cause instanceof Error)
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
