// The client over real sockets against fault-injecting node:http servers: hangs, resets,
// 503s, refused connections, oversized answers; and keep-alive reuse. Real time, bounded.
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, describe, test } from 'node:test'
import { createClient } from '../../src/client/client.js'
import { isCacheError } from '../../src/core/errors.js'
import { freePort } from '../support/node-fixture.js'

interface FaultServer {
  readonly url: string
  readonly server: Server
  hits: number
  connections: number
  close(): Promise<void>
}

const servers: FaultServer[] = []
after(async () => {
  await Promise.all(servers.map((s) => s.close()))
})

async function fault(handler: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<FaultServer> {
  const state = { hits: 0, connections: 0 }
  const server = createServer((req, res) => {
    const n = state.hits++
    req.resume()
    req.on('end', () => handler(req, res, n))
  })
  server.on('connection', () => state.connections++)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const s: FaultServer = {
    url: `http://127.0.0.1:${port}`,
    server,
    get hits() {
      return state.hits
    },
    get connections() {
      return state.connections
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
  servers.push(s)
  return s
}

const entry = (res: ServerResponse, body = 'ok'): void => {
  res.writeHead(200, { etag: '"1"', 'x-ttl': '60', 'content-type': 'application/octet-stream' })
  res.end(body)
}

describe('client over real sockets with injected faults', () => {
  test('a node that never answers: ERR_REQUEST_TIMEOUT after the timeout, no hang', async () => {
    const s = await fault(() => undefined)
    const client = createClient({ nodes: [s.url], timeout: 300, retry: false })
    const t0 = Date.now()
    await assert.rejects(client.get('k'), (e) => isCacheError(e, 'ERR_REQUEST_TIMEOUT'))
    const took = Date.now() - t0
    assert.ok(took >= 250 && took < 3000, `took ${took} ms`)
    await client.close()
  })

  test('a hanging node is retried for a read but not for a plain write', async () => {
    const s = await fault(() => undefined)
    const client = createClient({ nodes: [s.url], timeout: 200, retry: { baseDelay: 10, maxDelay: 20 }, eject: { after: 100 } })
    await assert.rejects(client.get('k'), (e) => isCacheError(e, 'ERR_REQUEST_TIMEOUT'))
    assert.equal(s.hits, 4)
    await assert.rejects(client.set('k', 'v'), (e) => isCacheError(e, 'ERR_REQUEST_TIMEOUT'))
    assert.equal(s.hits, 5)
    await client.close()
  })

  test('a reset connection is ERR_NODE_UNREACHABLE; writes are not repeated', async () => {
    const s = await fault((req) => req.socket.destroy())
    const client = createClient({ nodes: [s.url], retry: { baseDelay: 10, maxDelay: 20 }, eject: { after: 100 } })
    await assert.rejects(client.set('k', 'v'), (e) => isCacheError(e, 'ERR_NODE_UNREACHABLE'))
    assert.equal(s.hits, 1)
    await assert.rejects(client.get('k'), (e) => isCacheError(e, 'ERR_NODE_UNREACHABLE'))
    assert.equal(s.hits, 5)
    await client.close()
  })

  test('503 with Retry-After: the client waits about that long, then succeeds', async () => {
    const s = await fault((_req, res, n) => {
      if (n === 0) {
        res.writeHead(503, { 'retry-after': '1', 'content-type': 'application/json' })
        res.end(JSON.stringify({ code: 'ERR_BUSY', message: 'busy' }))
      } else entry(res, 'after busy')
    })
    const client = createClient({ nodes: [s.url] })
    const t0 = Date.now()
    const got = await client.get('k')
    const took = Date.now() - t0
    assert.equal(got?.value.toString(), 'after busy')
    assert.ok(took >= 950 && took < 4000, `took ${took} ms`)
    await client.close()
  })

  test('a refused node fails over to the next one at once and leaves the rotation', async () => {
    const good = await fault((_req, res) => entry(res))
    const dead = `http://127.0.0.1:${await freePort()}`
    const client = createClient({ nodes: [dead, good.url], retry: { baseDelay: 5, maxDelay: 10 }, eject: { after: 2, probeInterval: '1h' } })
    for (let i = 0; i < 6; i++) assert.equal((await client.get('k'))?.value.toString(), 'ok')
    const state = client.nodes()
    assert.equal(state[0].inRotation, false)
    assert.equal(state[1].inRotation, true)
    // Even a plain write is retried after a refused connection: it never reached a node.
    await client.close()
    const writer = createClient({ nodes: [dead, good.url], retry: { baseDelay: 5, maxDelay: 10 } })
    good.server.removeAllListeners('request')
    good.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      req.resume()
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ version: 5, ttl: 60 }))
      })
    })
    assert.deepEqual(await writer.set('k', 'v'), { version: 5, ttlMs: 60_000 })
    await writer.close()
  })

  test('keep-alive: sequential requests reuse their socket', async () => {
    const s = await fault((_req, res) => entry(res))
    const client = createClient({ nodes: [s.url] })
    for (let i = 0; i < 20; i++) await client.get('k')
    assert.equal(s.hits, 20)
    // undici may open a second socket while the first finishes its previous response.
    assert.ok(s.connections <= 2, `${s.connections} connections for 20 requests`)
    await client.close()
  })

  test('an answer whose Content-Length is over maxResponseBytes (as the node declares them) fails the call, not the process', async () => {
    const body = 'z'.repeat(2048)
    const declared = await fault((_req, res) => {
      res.writeHead(200, { etag: '"1"', 'x-ttl': '60', 'content-length': String(body.length) })
      res.end(body)
    })
    const uncaught: unknown[] = []
    const onUncaught = (err: unknown): void => void uncaught.push(err)
    process.on('uncaughtException', onUncaught)
    try {
      const client = createClient({ nodes: [declared.url], maxResponseBytes: '1kb', retry: false })
      for (let i = 0; i < 3; i++) await assert.rejects(client.get('k'), (e) => isCacheError(e, 'ERR_BAD_RESPONSE') && /maxResponseBytes/.test((e as Error).message))
      // The destroyed body reports its abort a tick later: give it the time to.
      await new Promise((resolve) => setTimeout(resolve, 50))
      await client.close()
    } finally {
      process.off('uncaughtException', onUncaught)
    }
    assert.deepEqual(uncaught.map(String), [], 'no error escaped the client')
  })

  test('an answer over maxResponseBytes fails at once: not retried, and its node stays in rotation (it answered; the bound is the client\'s)', async () => {
    // It was retried as a failure (the whole answer read again each time) and ejected a healthy node.
    const big = await fault((_req, res) => entry(res, 'x'.repeat(300_000)))
    const client = createClient({ nodes: [big.url], maxResponseBytes: '64kb', eject: { after: 1 } })
    await assert.rejects(client.get('k'), (e) => isCacheError(e, 'ERR_BAD_RESPONSE') && /maxResponseBytes/.test((e as Error).message))
    assert.equal(big.hits, 1)
    assert.deepEqual(client.nodes().map((n) => [n.inRotation, n.ejections]), [[true, 0]])
    await client.close()
  })

  test('on the read ladder (region) too, an answer over maxResponseBytes fails at once and ejects no node', async () => {
    const big = await fault((req, res) => {
      if (req.url === '/v1/cluster') {
        res.writeHead(404, { 'content-type': 'application/json' })
        res.end('{"code":"ERR_NOT_FOUND","message":"No route"}')
      } else entry(res, 'x'.repeat(300_000))
    })
    const client = createClient({ nodes: [big.url], maxResponseBytes: '64kb', region: 'default', eject: { after: 1 } })
    await assert.rejects(client.get('k'), (e) => isCacheError(e, 'ERR_BAD_RESPONSE') && /maxResponseBytes/.test((e as Error).message))
    assert.deepEqual(client.nodes().map((n) => [n.inRotation, n.ejections]), [[true, 0]])
    await client.close()
  })

  test('a 404 that is not the node\'s (no ERR_NOT_FOUND body: a web server or proxy at the address) is ERR_BAD_RESPONSE, not a miss', async () => {
    // get answered undefined and delete false: a misrouted client saw an empty cache, silently.
    const web = await fault((_req, res) => {
      res.writeHead(404, { 'content-type': 'text/html' })
      res.end('<h1>Not Found</h1>')
    })
    const client = createClient({ nodes: [web.url], retry: false })
    const notProtocol = (e: unknown): boolean => isCacheError(e, 'ERR_BAD_RESPONSE') && (e as { status?: number }).status === 404
    await assert.rejects(client.get('k'), notProtocol, 'get')
    await assert.rejects(client.delete('k'), notProtocol, 'delete')
    await assert.rejects(client.mget(['k']), notProtocol, 'mget')
    await client.close()
    const node = await fault((_req, res) => {
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end('{"code":"ERR_NOT_FOUND","message":"No live entry under this key"}')
    })
    const c2 = createClient({ nodes: [node.url], retry: false })
    assert.equal(await c2.get('k'), undefined)
    assert.equal(await c2.delete('k'), false)
    await c2.close()
  })

  test('an answer over maxResponseBytes is ERR_BAD_RESPONSE; a non-protocol answer too', async () => {
    const big = await fault((_req, res) => entry(res, 'x'.repeat(300_000)))
    const client = createClient({ nodes: [big.url], maxResponseBytes: '64kb', retry: false })
    await assert.rejects(client.get('k'), (e) => isCacheError(e, 'ERR_BAD_RESPONSE'))
    await client.close()
    const chunked = await fault((_req, res) => {
      res.writeHead(200, { etag: '"1"', 'x-ttl': '60', 'transfer-encoding': 'chunked' })
      for (let i = 0; i < 10; i++) res.write('y'.repeat(16_384))
      res.end()
    })
    const c1 = createClient({ nodes: [chunked.url], maxResponseBytes: '64kb', retry: false })
    await assert.rejects(c1.get('k'), (e) => isCacheError(e, 'ERR_BAD_RESPONSE'), 'a streamed answer is cut at the limit too')
    await c1.close()
    const proxy = await fault((_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' })
      res.end('<html>bad gateway</html>')
    })
    const c2 = createClient({ nodes: [proxy.url], retry: false })
    await assert.rejects(c2.get('k'), (e) => isCacheError(e, 'ERR_BAD_RESPONSE') && (e as { status?: number }).status === 502)
    await c2.close()
  })
})
