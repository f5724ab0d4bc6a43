// clientStore on a scripted transport: touch's read + conditional re-write under races.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { createClient } from '../../src/client/client.js'
import { clientStore } from '../../src/client/client-store.js'
import { ManualClock } from '../../src/core/manual-clock.js'
import { respond, ScriptedTransport, wireError, type Handler } from '../support/scripted-transport.js'

function setup(handler: Handler) {
  const clock = new ManualClock(0)
  const transport = new ScriptedTransport(clock, handler)
  const client = createClient({ nodes: ['http://n:1'], clock, transport, retry: false })
  return { transport, client, store: clientStore(client) }
}

const entry = (version: number) => respond(200, 'v', { etag: `"${version}"`, 'x-ttl': '10', 'x-tags': 'a:b,c' })

describe('clientStore.touch', () => {
  test('re-writes the same bytes and tags with If-Match on the version read, ttl rounded up', async () => {
    const { transport, store, client } = setup((_o, req) => (req.method === 'GET' ? entry(5) : respond(200, { version: 6, ttl: 3 })))
    assert.equal(await store.touch('k', 2500), true)
    const put = transport.requests[1]
    assert.equal(put.method, 'PUT')
    assert.equal(put.path, '/v1/keys/k?ttl=3&tags=a%3Ab%2Cc')
    assert.equal(put.headers['if-match'], '"5"')
    assert.equal(put.body?.toString(), 'v')
    await client.close()
  })

  test('a concurrent write between read and re-write: reads again; a delete in between: false', async () => {
    let gets = 0
    const raced = setup((_o, req) => {
      if (req.method === 'GET') return entry(++gets)
      return gets < 2 ? wireError(412, 'ERR_PRECONDITION_FAILED') : respond(200, { version: 9, ttl: 1 })
    })
    assert.equal(await raced.store.touch('k', 1000), true)
    assert.deepEqual(raced.transport.requests.map((r) => r.method), ['GET', 'PUT', 'GET', 'PUT'])
    await raced.client.close()
    let n = 0
    const deleted = setup((_o, req) => (req.method === 'GET' ? (n++ === 0 ? entry(1) : respond(404, { code: 'ERR_NOT_FOUND', message: 'gone' })) : wireError(412, 'ERR_PRECONDITION_FAILED')))
    assert.equal(await deleted.store.touch('k', 1000), false)
    await deleted.client.close()
  })

  test('losing every race leaves the newer writes in place and reports the key exists', async () => {
    const { transport, store, client } = setup((_o, req) => (req.method === 'GET' ? entry(1) : wireError(412, 'ERR_PRECONDITION_FAILED')))
    assert.equal(await store.touch('k', 1000), true)
    assert.equal(transport.requests.filter((r) => r.method === 'PUT').length, 3)
    await client.close()
  })

  test('other failures propagate typed; Infinity is ttl=none; invalid prefixFallback is refused', async () => {
    const failing = setup((_o, req) => (req.method === 'GET' ? entry(1) : wireError(401, 'ERR_UNAUTHORIZED')))
    await assert.rejects(failing.store.touch('k', 1000), (e: unknown) => (e as { code?: string }).code === 'ERR_UNAUTHORIZED')
    await failing.client.close()
    const forever = setup((_o, req) => (req.method === 'GET' ? entry(1) : respond(200, { version: 2, ttl: null })))
    await forever.store.touch('k', Infinity)
    assert.match(forever.transport.requests[1].path, /\?ttl=none&/)
    assert.throws(() => clientStore(forever.client, { prefixFallback: 'maybe' as 'all' }), (e: unknown) => (e as { code?: string }).code === 'ERR_INVALID_OPTIONS')
    // A misspelt name was ignored: closeclient left the client open after close().
    assert.throws(() => clientStore(forever.client, { closeclient: true } as never), (e: unknown) => (e as { code?: string }).code === 'ERR_INVALID_OPTIONS' && /clientStore\.closeclient.*closeClient/.test((e as Error).message))
    assert.throws(() => clientStore(forever.client, null as never), (e: unknown) => (e as { code?: string }).code === 'ERR_INVALID_OPTIONS')
    await forever.client.close()
  })
})
