// The client against the real node: in process (startNode) and as a child process
// (`stratacache serve` through the CLI dispatcher), over real sockets.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { createClient, type Client } from '../../src/client/client.js'
import { isCacheError } from '../../src/core/errors.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { startChildNode, startTestNode, type TestNode } from '../support/node-fixture.js'
import { slowStore } from '../support/node-fixtures.js'
import { stallMeter } from '../support/stall-meter.js'
import { until } from '../support/until.js'

const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))

describe('client against an in-process node', () => {
  let node: TestNode
  let client: Client
  before(async () => {
    node = await startTestNode()
    client = createClient({ nodes: [node.url] })
  })
  after(async () => {
    await client?.close()
    await node?.stop()
  })

  test('binary values round-trip exactly: every byte, empty, 1 MiB, text', async () => {
    const big = Buffer.alloc(1024 * 1024)
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff
    for (const [key, value] of [['bin', allBytes], ['empty', Buffer.alloc(0)], ['big', big], ['text', Buffer.from('héllo wörld')]] as const) {
      await client.set(key, value)
      const entry = await client.get(key)
      assert.ok(entry !== undefined, key)
      assert.ok(entry.value.equals(value), `${key} bytes`)
    }
    const [a, b, c] = await client.mget(['bin', 'missing', 'empty'])
    assert.ok(a?.value.equals(allBytes))
    assert.equal(b, undefined)
    assert.equal(c?.value.length, 0)
  })

  test('keys with slashes, spaces, unicode and percent signs are exact', async () => {
    const keys = ['a/b', 'a b', 'ü/ñ?#', '100%', 'a%2Fb', '{x}:*']
    for (const k of keys) await client.set(k, k)
    for (const k of keys) assert.equal((await client.get(k))?.value.toString(), k)
  })

  test('versions grow per write; ifVersion writes only on a match; * needs existence', async () => {
    const v1 = (await client.set('ver', 'one')).version
    const v2 = (await client.set('ver', 'two')).version
    assert.ok(v2 > v1)
    assert.equal((await client.get('ver'))?.version, v2)
    await assert.rejects(client.set('ver', 'stale', { ifVersion: v1 }), (e) => isCacheError(e, 'ERR_PRECONDITION_FAILED'))
    const v3 = (await client.set('ver', 'three', { ifVersion: v2 })).version
    assert.ok(v3 > v2)
    await assert.rejects(client.set('nope', 'x', { ifVersion: '*' }), (e) => isCacheError(e, 'ERR_PRECONDITION_FAILED'))
    await assert.rejects(client.delete('ver', { ifVersion: v1 }), (e) => isCacheError(e, 'ERR_PRECONDITION_FAILED'))
    assert.equal(await client.delete('ver', { ifVersion: v3 }), true)
    assert.equal(await client.delete('ver'), false)
  })

  test('TTLs come back: seconds rounded up, none for no expiry, default 3600 s', async () => {
    const r = await client.set('ttl', 'x', { ttl: '90s' })
    assert.equal(r.ttlMs, 90_000)
    const e = await client.get('ttl')
    assert.ok(e !== undefined && e.ttlMs > 85_000 && e.ttlMs <= 90_000, `ttl ${e?.ttlMs}`)
    assert.equal((await client.set('forever', 'x', { ttl: Infinity })).ttlMs, Infinity)
    assert.equal((await client.get('forever'))?.ttlMs, Infinity)
    assert.equal((await client.set('default', 'x')).ttlMs, 3_600_000)
    assert.equal((await client.set('rounded', 'x', { ttl: 1001 })).ttlMs, 2000)
  })

  test('tags: invalidate drops every entry under a tag prefix; soft invalidation too', async () => {
    await client.set('u1', 'a', { tags: ['org:1:user:1'] })
    await client.set('u2', 'b', { tags: ['org:1:user:2'] })
    await client.set('u3', 'c', { tags: ['org:2:user:3'] })
    assert.deepEqual((await client.get('u1'))?.tags, ['org:1:user:1'])
    assert.equal(await client.invalidate(['org:1']), 1)
    assert.deepEqual((await client.mget(['u1', 'u2', 'u3'])).map((e) => e?.value.toString()), [undefined, undefined, 'c'])
    await client.set('u1', 'again', { tags: ['org:1:user:1'] })
    assert.equal((await client.get('u1'))?.value.toString(), 'again', 'a write after the invalidation is valid')
    await client.invalidate(['org:2'], { mode: 'soft' })
    assert.equal(await client.get('u3'), undefined, 'a soft-invalidated entry is not served as fresh by the node')
  })

  test('mset writes in order with per-entry TTL and tags; versions in order', async () => {
    const versions = await client.mset([
      { key: 'm1', value: allBytes, ttl: Infinity },
      { key: 'm2', value: 'two', ttl: '30s', tags: ['grp:a'] },
      { key: 'm1', value: 'last wins' },
    ])
    assert.equal(versions.length, 3)
    assert.ok(versions[2] > versions[0])
    const [m1, m2] = await client.mget(['m1', 'm2'])
    assert.equal(m1?.value.toString(), 'last wins')
    assert.equal(m1?.version, versions[2])
    assert.ok(m2 !== undefined && m2.ttlMs <= 30_000 && m2.ttlMs > 25_000)
    assert.deepEqual(m2?.tags, ['grp:a'])
  })

  test('a key is the Zerocache route key: <region>/<key>', async () => {
    await client.set('london/foo', 'bar')
    const res = await fetch(`${node.url}/london/foo`)
    assert.equal(res.status, 200)
    assert.equal(await res.text(), 'bar')
  })

  test('stats, ping, nodes, clear', async () => {
    const stats = await client.stats()
    assert.equal(typeof stats.node, 'object')
    assert.equal(typeof (stats.requests as { total: number }).total, 'number')
    const [ping] = await client.ping()
    assert.equal(ping.ok, true)
    assert.equal(client.nodes()[0].inRotation, true)
    await client.set('before-clear', 'x')
    await client.clear()
    assert.equal(await client.get('before-clear'), undefined)
  })

  test('a value over the node limit and a long key are refused with typed errors', async () => {
    const small = await startTestNode({ maxValueBytes: 1024 })
    const c = createClient({ nodes: [small.url] })
    try {
      await assert.rejects(c.set('k', Buffer.alloc(2048)), (e) => isCacheError(e, 'ERR_TOO_LARGE'))
      await assert.rejects(c.set('x'.repeat(2000), 'v'), (e) => isCacheError(e, 'ERR_TOO_LARGE'))
      assert.equal((await c.set('k', Buffer.alloc(1024))).version > 0, true)
    } finally {
      await c.close()
      await small.stop()
    }
  })
})

describe('client against protected nodes', () => {
  test('auth: no token is ERR_UNAUTHORIZED, the right token works', async () => {
    const node = await startTestNode({ authToken: 'tok-123' })
    const anonymous = createClient({ nodes: [node.url] })
    const authed = createClient({ nodes: [node.url], token: 'tok-123' })
    try {
      await assert.rejects(anonymous.get('k'), (e) => isCacheError(e, 'ERR_UNAUTHORIZED'))
      await authed.set('k', 'v')
      assert.equal((await authed.get('k'))?.value.toString(), 'v')
    } finally {
      await anonymous.close()
      await authed.close()
      await node.stop()
    }
  })

  test('a saturated node answers 503 + Retry-After; the client waits it out and every write lands', async () => {
    const node = await startTestNode({ store: slowStore(memoryStore(), 150), maxInFlight: 1 })
    const client = createClient({ nodes: [node.url], retry: { maxElapsed: '30s' }, timeout: '5s' })
    try {
      const results = await Promise.all(Array.from({ length: 4 }, (_, i) => client.set(`busy:${i}`, `v${i}`)))
      assert.equal(results.length, 4)
      const stats = await client.stats()
      assert.ok((stats.requests as { busy: number }).busy > 0, 'the node did answer busy')
      const values = await client.mget(Array.from({ length: 4 }, (_, i) => `busy:${i}`))
      assert.deepEqual(values.map((v) => v?.value.toString()), ['v0', 'v1', 'v2', 'v3'])
    } finally {
      await client.close()
      await node.stop()
    }
  })

  test('a node that stays saturated fails the call with ERR_BUSY within maxElapsed', async () => {
    const node = await startTestNode({ store: slowStore(memoryStore(), 1800), maxInFlight: 1 })
    const hog = createClient({ nodes: [node.url], retry: false, timeout: '10s' })
    const client = createClient({ nodes: [node.url], retry: { maxElapsed: '1200ms' } })
    try {
      const holding = hog.set('hog', 'x').catch(() => undefined)
      // The hog's PUT holds the node's one slot (for the slow store's 1.8 s) before the call starts.
      await until('the hog to hold the slot', 5000, () => node.node.stats().node.inFlight === 1)
      const meter = stallMeter()
      const t0 = Date.now()
      await assert.rejects(client.get('k'), (e) => isCacheError(e, 'ERR_BUSY'))
      meter.stop()
      assert.ok(Date.now() - t0 < 3500 + meter.stalledMs, `gave up after ${Date.now() - t0} ms (stalled ${meter.stalledMs.toFixed(0)})`)
      await holding
    } finally {
      await client.close()
      await hog.close()
      await node.stop()
    }
  })
})

describe('client across two real nodes', () => {
  test('a stopped node is ejected while the other serves; restarted on its port, it is probed back in', async () => {
    const a = await startTestNode()
    const b = await startTestNode()
    const port = a.node.port
    const client = createClient({ nodes: [a.url, b.url], timeout: '2s', retry: { baseDelay: 10, maxDelay: 50 }, eject: { after: 2, probeInterval: '200ms', maxProbeInterval: '400ms' } })
    let restarted: TestNode | undefined
    try {
      await client.set('k', 'v', { ttl: Infinity })
      await a.node.close() // keep its data dir: it comes back below
      for (let i = 0; i < 10; i++) await client.stats()
      const ejected = client.nodes().find((s) => s.node === a.url)
      assert.equal(ejected?.inRotation, false, 'the stopped node left the rotation')
      assert.ok((ejected?.ejections ?? 0) >= 1)
      restarted = await startTestNode({ port, dataDir: a.dataDir })
      const deadline = Date.now() + 5000
      while (client.nodes().find((s) => s.node === a.url)?.inRotation !== true && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      assert.equal(client.nodes().find((s) => s.node === a.url)?.inRotation, true, 'probed back in')
      const answered = new Set<string>()
      for (let i = 0; i < 4; i++) answered.add(String(((await client.stats()).node as { address: string }).address))
      assert.equal(answered.size, 2, 'round-robin over both nodes again')
    } finally {
      await client.close()
      await restarted?.node.close()
      await b.stop()
      await a.stop().catch(() => undefined)
    }
  })
})

describe('client against a node in a child process (stratacache serve)', () => {
  test('round trip, then SIGTERM exits 0', async () => {
    const child = await startChildNode(['--log-level', 'warn'])
    const client = createClient({ nodes: [child.url] })
    try {
      const { version } = await client.set('child', allBytes, { ttl: '1h', tags: ['t:1'] })
      const entry = await client.get('child')
      assert.ok(entry?.value.equals(allBytes))
      assert.equal(entry?.version, version)
      assert.equal(await client.invalidate(['t']), 1)
      assert.equal(await client.get('child'), undefined)
    } finally {
      await client.close()
      assert.equal(await child.stop(), 0)
    }
  })
})
