import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { createClient, type Client } from '../../src/client/client.js'
import { clientStore } from '../../src/client/client-store.js'
import { createCache } from '../../src/cache/cache.js'
import { ManualClock } from '../../src/core/manual-clock.js'
import { storeConformance } from '../../src/store/conformance.js'
import { startTestNode, type TestNode } from '../support/node-fixture.js'
import { respond, ScriptedTransport } from '../support/scripted-transport.js'

// One real node in this process, on a ManualClock: the suite moves the node's time (TTLs in
// whole seconds) without sleeping; the client keeps real time for its own timeouts.
const clock = new ManualClock(Date.now())
let node: TestNode
let client: Client

before(async () => {
  node = await startTestNode({ clock })
  client = createClient({ nodes: [node.url], timeout: '5s' })
})
after(async () => {
  await client?.close()
  await node?.stop()
})

storeConformance({
  name: 'clientStore over a real node (in process, ManualClock)',
  async open() {
    // The store owns the whole node: a fresh namespace is an empty node.
    await client.clear()
    return clientStore(client)
  },
  async advance(ms) {
    clock.advance(ms)
  },
  minTtlMs: 1000,
})

describe('clientStore clear(prefix)', () => {
  test('clears exactly the prefix on the node, and nothing else', async () => {
    await client.clear()
    const store = clientStore(client)
    await store.set('a:1', new Uint8Array([1]), 60_000)
    await store.set('b:1', new Uint8Array([2]), 60_000)
    await store.clear('a:')
    assert.deepEqual((await store.getMany(['a:1', 'b:1'])).map((v) => v?.[0]), [undefined, 2])
  })

  test('on a node without prefix clears (it refuses the parameter): the whole node (default) or ERR_STORE_UNAVAILABLE', async () => {
    const fakeClock = new ManualClock(0)
    const transport = new ScriptedTransport(fakeClock, (_o, req) => (req.path.includes('?prefix=') ? respond(400, { code: 'ERR_BAD_REQUEST', message: 'Unknown query parameter "prefix"' }) : respond(200, { cleared: true })))
    const old = createClient({ nodes: ['http://old:1'], transport, clock: fakeClock })
    await assert.rejects(clientStore(old, { prefixFallback: 'error' }).clear('a:'), (e: unknown) => (e as { code?: string }).code === 'ERR_STORE_UNAVAILABLE')
    assert.deepEqual(transport.requests.map((r) => r.path), ['/v1/keys?prefix=a%3A'], 'nothing else was sent')
    const store = clientStore(old)
    await store.clear('a:')
    await store.clear('b:')
    assert.deepEqual(transport.requests.slice(1).map((r) => r.path), ['/v1/keys?prefix=a%3A', '/v1/keys', '/v1/keys'], 'after one refusal it clears the whole node without asking again')
    await old.close()
  })

  test('asks the node for DELETE /v1/keys?prefix= with the confirmation header', async () => {
    const fakeClock = new ManualClock(0)
    const transport = new ScriptedTransport(fakeClock, () => respond(200, { cleared: true }))
    const fake = createClient({ nodes: ['http://n:1'], transport, clock: fakeClock })
    await clientStore(fake).clear('user:{1}')
    assert.equal(transport.requests[0].method, 'DELETE')
    assert.equal(transport.requests[0].path, '/v1/keys?prefix=user%3A%7B1%7D')
    assert.equal(transport.requests[0].headers['x-confirm'], 'clear-all')
    await fake.close()
  })
})

describe('clientStore as the L2 of createCache', () => {
  test('a value written through one cache is read by another (shared L2), tags invalidate across', async () => {
    const store = clientStore(client)
    const a = createCache<unknown>({ store, clock, defaults: { ttl: '1m' } })
    const b = createCache<unknown>({ store, clock, defaults: { ttl: '1m' } })
    let calls = 0
    const load = async () => ({ id: 1, name: 'ada', at: new Date(0), big: 10n ** 20n, calls: ++calls })
    const first = await a.getOrSet('user:1', load, { tags: ['org:1:user:1'] })
    const second = await b.getOrSet('user:1', load, { tags: ['org:1:user:1'] })
    assert.deepEqual(second, first)
    assert.equal(calls, 1, 'b read the value from the node, not its factory')
    await a.invalidateTags(['org:1'])
    // A process with a cold L1 (b's L1 would need the bus) reads L2 and its tag versions.
    const c = createCache<unknown>({ store, clock, defaults: { ttl: '1m' } })
    const third = await c.getOrSet('user:1', load, { tags: ['org:1:user:1'] })
    assert.equal((third as { calls: number }).calls, 2, 'the invalidation in a reached c through the tag versions kept on the node')
    await Promise.all([a.close(), b.close(), c.close()])
  })

  test('the store has no locks, so lock: distributed is refused', () => {
    const store = clientStore(client)
    assert.equal(store.locks, undefined)
    assert.throws(() => createCache({ store, lock: 'distributed' }), (e: unknown) => (e as { code?: string }).code === 'ERR_INVALID_OPTIONS')
  })
})
