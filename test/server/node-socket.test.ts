// The node over real sockets: the embedded LMDB store, restarts, slow and malformed
// clients, connection limits, TLS.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { startNode } from '../../src/server/index.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { bodyOf, errorCode, nodeTestbed, raw, send, silentLogger, statusOf } from '../support/node-fixtures.js'

const testbed = nodeTestbed()
after(() => testbed.close())
const start = testbed.start

describe('node over sockets', () => {
  test('binary values round-trip through the embedded LMDB store; keep-alive fetch', async () => {
    const n = await start()
    const value = randomBytes(200_000)
    const put = await fetch(`${n.url}/v1/keys/blob?ttl=none`, { method: 'PUT', body: value })
    assert.equal(put.status, 200)
    const got = await fetch(`${n.url}/v1/keys/blob`)
    assert.equal(got.status, 200)
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), value)
    assert.equal(got.headers.get('x-ttl'), 'none')
    const stats = (await (await fetch(`${n.url}/v1/stats`)).json()) as { store: string }
    assert.equal(stats.store, 'lmdb')
  })

  test('a GET hit answers a key sent as is (printable ASCII, no %) and percent-encoded alike, as the general path does', async () => {
    const n = await start()
    const chars = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)).filter((c) => !'/?#%'.includes(c))
    for (const c of chars) {
      const key = `k${c}x`
      const put = await send(n.url, 'PUT', `/v1/keys/${encodeURIComponent(key)}?ttl=none`, `value ${c}`)
      assert.equal(put.status, 200, key)
      const etag = put.headers.etag
      const injected = await n.inject({ method: 'GET', url: `/v1/keys/${encodeURIComponent(key)}` })
      assert.equal(injected.status, 200, key)
      for (const path of [`/v1/keys/${key}`, `/v1/keys/${encodeURIComponent(key)}`]) {
        const got = await send(n.url, 'GET', path)
        assert.equal(got.status, 200, path)
        assert.equal(got.body.toString(), `value ${c}`, path)
        assert.equal(got.headers.etag, etag, path)
        assert.equal(got.headers['x-ttl'], 'none', path)
        assert.equal(got.headers['content-type'], injected.headers['content-type'], path)
      }
    }
    // Past the key limit, sent as is: the general path's typed 413, as before.
    const long = await send(n.url, 'GET', `/v1/keys/${'a'.repeat(1100)}`)
    assert.equal(long.status, 413)
    assert.equal(errorCode(long.body), 'ERR_TOO_LARGE')
  })

  test('GET with If-None-Match naming the current version (strong, weak, or *) answers 304 with its metadata and no body; any other answers 200', async () => {
    const n = await start()
    const put = await send(n.url, 'PUT', '/v1/keys/cond?ttl=none&tags=a', 'value-1')
    const etag = String(put.headers.etag)
    for (const inm of [etag, `W/${etag}`, '*', `"1", ${etag}`]) {
      const r = await send(n.url, 'GET', '/v1/keys/cond', undefined, { 'if-none-match': inm })
      assert.equal(r.status, 304, inm)
      assert.equal(r.body.byteLength, 0, inm)
      assert.equal(r.headers.etag, etag, inm)
      assert.equal(r.headers['x-ttl'], 'none', inm)
      assert.equal(r.headers['x-tags'], 'a', inm)
      assert.equal(r.headers['content-length'], undefined, `${inm}: no Content-Length stating an empty body`)
      assert.equal(r.headers['content-type'], undefined, inm)
    }
    for (const inm of ['"1"', 'W/"1"', '"not-a-version"', '']) {
      const r = await send(n.url, 'GET', '/v1/keys/cond', undefined, { 'if-none-match': inm })
      assert.equal(r.status, 200, JSON.stringify(inm))
      assert.equal(r.body.toString(), 'value-1')
    }
    // A new version: the old tag no longer matches. Keep-alive: the 304 leaves the connection usable.
    await send(n.url, 'PUT', '/v1/keys/cond?ttl=none', 'value-2')
    const first = await fetch(`${n.url}/v1/keys/cond`, { headers: { 'if-none-match': etag } })
    assert.equal(first.status, 200)
    const current = first.headers.get('etag')!
    assert.equal(await first.text(), 'value-2')
    const second = await fetch(`${n.url}/v1/keys/cond`, { headers: { 'if-none-match': current } })
    assert.equal(second.status, 304)
    assert.equal((await second.arrayBuffer()).byteLength, 0)
    const third = await fetch(`${n.url}/v1/keys/cond`)
    assert.equal(await third.text(), 'value-2', 'the same connection answers the next request')
    const absent = await send(n.url, 'GET', '/v1/keys/nothing-here', undefined, { 'if-none-match': '*' })
    assert.equal(absent.status, 404)
    assert.equal(errorCode(absent.body), 'ERR_NOT_FOUND')
  })

  test('restart on the same data directory: everything stored reads back, versions keep increasing', async () => {
    const d = testbed.dir()
    const first = await startNode({ port: 0, logger: silentLogger, dataDir: d.path, disk: '64mb' })
    const versions = new Map<string, number>()
    for (let i = 0; i < 50; i++) {
      const r = await send(first.url, 'PUT', `/v1/keys/k${i}?ttl=600${i % 5 === 0 ? '&tags=group:' + (i % 2) : ''}`, `value-${i}-${'x'.repeat(i)}`)
      assert.equal(r.status, 200)
      versions.set(`k${i}`, (JSON.parse(r.body.toString()) as { version: number }).version)
    }
    await send(first.url, 'DELETE', '/v1/keys/k7')
    await first.close()
    const second = await start({ dataDir: d.path })
    for (let i = 0; i < 50; i++) {
      const r = await send(second.url, 'GET', `/v1/keys/k${i}`)
      if (i === 7) {
        assert.equal(r.status, 404)
        continue
      }
      assert.equal(r.status, 200, `k${i}`)
      assert.equal(r.body.toString(), `value-${i}-${'x'.repeat(i)}`)
      assert.equal(r.headers.etag, `"${versions.get(`k${i}`)}"`)
      assert.ok(Number(r.headers['x-ttl']) > 590)
    }
    const highest = Math.max(...versions.values())
    const again = await send(second.url, 'PUT', '/v1/keys/k7', 'back')
    assert.ok((JSON.parse(again.body.toString()) as { version: number }).version > highest)
  })

  test('slow headers and slow bodies are cut with a JSON 408 (slowloris)', async () => {
    const n = await start({ headersTimeout: '300ms', requestTimeout: '600ms' })
    const t0 = Date.now()
    const slowHeaders = await raw(n)
    slowHeaders.socket.write('GET /v1/keys/a HTTP/1.1\r\nHost: 127.0.0.1\r\n')
    const slowBody = await raw(n)
    slowBody.socket.write('PUT /v1/keys/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0123456789')
    const [h, b] = await Promise.all([slowHeaders.received, slowBody.received])
    const elapsed = Date.now() - t0
    assert.equal(statusOf(h), 408, h)
    assert.equal(errorCode(bodyOf(h)), 'ERR_BAD_REQUEST')
    assert.equal(statusOf(b), 408, b)
    assert.ok(elapsed < 5000, `cut within the timeouts (+ the check interval), took ${elapsed} ms`)
    assert.equal((await send(n.url, 'GET', '/healthz')).status, 200)
  })

  test('a chunked body over the limit is refused with 413 and the connection closed', async () => {
    const n = await start({ maxValueBytes: 1000 })
    const c = await raw(n)
    c.socket.write('PUT /v1/keys/big HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n')
    const chunk = 'a'.repeat(600)
    c.socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`)
    c.socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`)
    const reply = await c.received
    assert.equal(statusOf(reply), 413, reply)
    assert.equal(errorCode(bodyOf(reply)), 'ERR_TOO_LARGE')
    const declared = await send(n.url, 'PUT', '/v1/keys/big', Buffer.alloc(5000))
    assert.equal(declared.status, 413)
    assert.equal((await send(n.url, 'GET', '/v1/keys/big')).status, 404)
  })

  test('a body refused before it is read (413, 401) is drained, not reset: a client still writing it reads the answer', async () => {
    // Closing a socket with unread bytes sends a RST: a client still writing a large body
    // got EPIPE / ECONNRESET instead of the answer (the client then saw an unreachable node,
    // and ejected it, for a value that was only too large).
    const n = await start({ maxValueBytes: 1000, authToken: 'secret-token' })
    const size = 32 * 1024 * 1024
    for (const [headers, status, code] of [['Authorization: Bearer secret-token\r\n', 413, 'ERR_TOO_LARGE'], ['', 401, 'ERR_UNAUTHORIZED']] as const) {
      const c = await raw(n)
      const errors: string[] = []
      c.socket.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message))
      c.socket.write(`PUT /v1/keys/big HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}Content-Length: ${size}\r\n\r\n`)
      const written = new Promise<string | undefined>((resolve) => c.socket.write(Buffer.alloc(size), (err) => resolve(err === undefined || err === null ? undefined : ((err as NodeJS.ErrnoException).code ?? err.message))))
      const reply = await c.received
      assert.equal(await written, undefined, `the body write failed (${errors.join(', ')})`)
      assert.deepEqual(errors, [])
      assert.equal(statusOf(reply), status, reply)
      assert.equal(errorCode(bodyOf(reply)), code)
    }
  })

  test('a request pipelined behind a body refused unread is not run: its connection is closing and its answer would never be sent', async () => {
    const n = await start({ maxValueBytes: 1000 })
    const c = await raw(n)
    c.socket.write(`PUT /v1/keys/big HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n${'a'.repeat(5000)}`)
    c.socket.write('PUT /v1/keys/pipelined HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc')
    const reply = await c.received
    assert.equal(statusOf(reply), 413, reply)
    assert.equal((await send(n.url, 'GET', '/v1/keys/pipelined')).status, 404)
  })

  test('an Expect other than 100-continue gets a JSON 417 ERR_BAD_REQUEST (node:http answered a bare 417 with no body)', async () => {
    const n = await start()
    const c = await raw(n)
    c.socket.write('PUT /v1/keys/e HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: something-else\r\nContent-Length: 1\r\n\r\nx')
    const reply = await c.received
    assert.equal(statusOf(reply), 417, reply)
    assert.equal(errorCode(bodyOf(reply)), 'ERR_BAD_REQUEST')
    assert.equal((await send(n.url, 'GET', '/v1/keys/e')).status, 404)
    const continued = await send(n.url, 'PUT', '/v1/keys/e', 'v', { expect: '100-continue' })
    assert.equal(continued.status, 200)
  })

  test('malformed HTTP gets a JSON 400; oversized headers a JSON 413', async () => {
    const n = await start()
    for (const garbage of ['\x00\x01\x02 nonsense\r\n\r\n', 'GET /v1/keys/a HTTP/9.9\r\n\r\n', 'GET /v1/keys/a HTTP/1.1\r\nContent-Length: -5\r\n\r\n', 'GET /v1/keys/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n']) {
      const c = await raw(n)
      c.socket.end(garbage)
      const reply = await c.received
      assert.equal(statusOf(reply), 400, JSON.stringify(garbage))
      assert.equal(errorCode(bodyOf(reply)), 'ERR_BAD_REQUEST')
    }
    const c = await raw(n)
    c.socket.write(`GET /v1/keys/a HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`)
    const reply = await c.received
    assert.equal(statusOf(reply), 413)
    assert.equal(errorCode(bodyOf(reply)), 'ERR_TOO_LARGE')
  })

  test('per-IP connection limit: the extra connection gets 503 ERR_BUSY and is closed', async () => {
    const n = await start({ maxConnectionsPerIp: 3, keepAliveTimeout: '30s' })
    const held = [await raw(n), await raw(n), await raw(n)]
    const extra = await raw(n)
    const reply = await extra.received
    assert.equal(statusOf(reply), 503, reply)
    assert.equal(errorCode(bodyOf(reply)), 'ERR_BUSY')
    for (const h of held) h.socket.destroy()
    await Promise.all(held.map((h) => h.received))
    // The server sees the closes a moment after the client does: admitted again within 2 s.
    let ok = await send(n.url, 'GET', '/v1/stats')
    for (let i = 0; i < 40 && ok.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 50))
      ok = await send(n.url, 'GET', '/v1/stats')
    }
    assert.equal(ok.status, 200)
    assert.ok((JSON.parse(ok.body.toString()) as { requests: { connectionsRefused: number } }).requests.connectionsRefused >= 1)
  })

  test('a host this machine cannot listen on is ERR_INVALID_OPTIONS naming host, not a raw socket error', async () => {
    // 10.255.255.1 is no address of this machine: bind fails at once (EADDRNOTAVAIL), nothing is sent.
    await assert.rejects(
      startNode({ port: 0, host: '10.255.255.1', store: memoryStore(), logger: silentLogger }),
      (e: Error & { code?: string; option?: string }) => e.code === 'ERR_INVALID_OPTIONS' && e.option === 'host' && /10\.255\.255\.1/.test(e.message),
    )
  })

  test('node-wide connection limit: past it, a connection from any address gets 503 ERR_BUSY and is closed', async () => {
    await assert.rejects(startNode({ port: 0, maxConnections: 0, logger: silentLogger }), (e: Error & { code?: string }) => e.code === 'ERR_INVALID_OPTIONS' && /maxConnections/.test(e.message))
    // Two client addresses (all of 127/8 is loopback on Linux), each under its per-IP limit.
    const n = await start({ maxConnections: 3, maxConnectionsPerIp: 2, keepAliveTimeout: '30s' })
    const held = [await raw(n, '127.0.0.1'), await raw(n, '127.0.0.1'), await raw(n, '127.0.0.2')]
    for (const from of ['127.0.0.2', '127.0.0.3']) {
      const extra = await raw(n, from)
      const reply = await extra.received
      assert.equal(statusOf(reply), 503, `${from}: ${reply}`)
      assert.equal(errorCode(bodyOf(reply)), 'ERR_BUSY')
      assert.match(bodyOf(reply), /bound of open connections/)
    }
    // A held connection still works: the limit refuses new connections, it does not cut open ones.
    held[2].socket.write('GET /v1/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
    const reply = await held[2].received
    assert.equal(statusOf(reply), 200, reply)
    assert.equal((JSON.parse(bodyOf(reply)) as { requests: { connectionsRefused: number } }).requests.connectionsRefused, 2)
    // One slot free again (the server sees the close a moment later): a new address gets in.
    const fromThird = async (): Promise<string> => {
      const c = await raw(n, '127.0.0.3')
      c.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
      return c.received
    }
    let again = await fromThird()
    for (let i = 0; i < 40 && statusOf(again) !== 200; i++) {
      await new Promise((r) => setTimeout(r, 50))
      again = await fromThird()
    }
    assert.equal(statusOf(again), 200, again)
    for (const h of held) h.socket.destroy()
  })

  test('uploads per IP: at most maxUploadsPerIp bodies from one address arrive at once', async () => {
    // Three slots: without the per-IP bound, three slow uploads from one address would hold them all.
    const n = await start({ maxInFlight: 3, maxUploadsPerIp: 2, keepAliveTimeout: '30s' })
    const slowPut = async (from: string, key: string): Promise<{ socket: Socket; received: Promise<string> }> => {
      const c = await raw(n, from)
      c.socket.write(`PUT /v1/keys/${key} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\nConnection: close\r\n\r\n12345`)
      return c
    }
    const a = await slowPut('127.0.0.1', 'a')
    const b = await slowPut('127.0.0.1', 'b')
    // Let the node see both requests (they are receiving; a body arriving holds no in-flight slot).
    for (let i = 0; i < 100 && n.stats().node.receiving < 2; i++) await new Promise((r) => setTimeout(r, 10))
    assert.equal(n.stats().node.receiving, 2)
    assert.equal(n.stats().node.inFlight, 0)
    // A third slow upload from the same address is refused at once.
    const c = await slowPut('127.0.0.1', 'c')
    const refused = await c.received
    assert.equal(statusOf(refused), 503, refused)
    assert.equal(errorCode(bodyOf(refused)), 'ERR_BUSY')
    assert.match(refused, /Retry-After: 1/i)
    assert.match(bodyOf(refused), /bodies still arriving/)
    // Another address still gets slots: the bound was not exhausted by the slow uploads.
    const other = await slowPut('127.0.0.2', 'd')
    other.socket.write('67890')
    assert.equal(statusOf(await other.received), 200)
    // The slow uploads complete normally, and their address may upload again.
    a.socket.write('67890')
    assert.equal(statusOf(await a.received), 200)
    const again = await slowPut('127.0.0.1', 'e')
    again.socket.write('67890')
    assert.equal(statusOf(await again.received), 200)
    b.socket.write('67890')
    assert.equal(statusOf(await b.received), 200)
    assert.equal(n.stats().node.inFlight, 0)
    assert.equal((await n.inject({ method: 'GET', url: '/v1/keys/e' })).status, 200)
  })

  test('mset with large values: a 12 MB base64 value is validated without a stack overflow (was 500 past ~3.2 MB)', async () => {
    const n = await start({ maxValueBytes: '16mb', maxBodyBytes: '40mb', memory: '64mb', disk: '128mb' })
    const value = randomBytes(9 * 1024 * 1024)
    const body = JSON.stringify({ entries: [{ key: 'big', value: value.toString('base64') }] })
    const r = await send(n.url, 'POST', '/v1/mset', body, { 'content-type': 'application/json' })
    assert.equal(r.status, 200, r.body.toString().slice(0, 200))
    const got = await send(n.url, 'GET', '/v1/keys/big')
    assert.equal(got.status, 200)
    assert.ok(Buffer.compare(got.body, value) === 0, 'the value round-trips')
    // Malformed base64 of the same size is still a typed 400, not a 500.
    const bad = JSON.stringify({ entries: [{ key: 'bad', value: `${value.toString('base64').slice(0, -4)}*AAA` }] })
    const refused = await send(n.url, 'POST', '/v1/mset', bad, { 'content-type': 'application/json' })
    assert.equal(refused.status, 400)
    assert.equal(errorCode(refused.body), 'ERR_BAD_REQUEST')
  })

  test('bearer auth over the wire', async () => {
    const n = await start({ authToken: 'tok-123' })
    const denied = await send(n.url, 'PUT', '/v1/keys/a', 'v')
    assert.equal(denied.status, 401)
    assert.equal(errorCode(denied.body), 'ERR_UNAUTHORIZED')
    assert.equal((await send(n.url, 'PUT', '/v1/keys/a', 'v', { authorization: 'Bearer tok-123' })).status, 200)
    assert.equal((await send(n.url, 'GET', '/readyz')).status, 200)
  })

  test('graceful close over sockets: in-flight requests finish, new connections are refused', async () => {
    const n = await start({ drainTimeout: '5s' })
    // A request whose body is still arriving when the shutdown starts.
    const c = await raw(n)
    c.socket.write('PUT /v1/keys/late HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n01234')
    await new Promise((r) => setTimeout(r, 50))
    const closing = n.close()
    await new Promise((r) => setTimeout(r, 50))
    c.socket.write('56789')
    const reply = await c.received
    assert.equal(statusOf(reply), 200, reply)
    assert.match(reply, /connection: close/i)
    await closing
    await assert.rejects(send(n.url, 'GET', '/healthz', undefined, {}, 2000))
  })

  test('TLS: HTTPS with a self-signed certificate (openssl)', async (t) => {
    let hasOpenssl = true
    try {
      execFileSync('openssl', ['version'], { stdio: 'ignore' })
    } catch {
      hasOpenssl = false
    }
    if (!hasOpenssl) {
      assert.fail('openssl is not installed: the TLS test cannot generate a certificate (install openssl to run it)')
    }
    const d = testbed.dir('stratacache-tls-')
    const cert = join(d.path, 'cert.pem')
    const key = join(d.path, 'key.pem')
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
    const n = await start({ tlsCert: cert, tlsKey: key, authToken: 'tls-token' })
    assert.match(n.url, /^https:\/\//)
    const ca = readFileSync(cert)
    const call = (method: string, path: string, body?: string, auth = true): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = httpsRequest({ host: n.host, port: n.port, method, path, ca, headers: auth ? { authorization: 'Bearer tls-token' } : {}, agent: false }, (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
        })
        req.on('error', reject)
        req.end(body)
      })
    assert.equal((await call('PUT', '/v1/keys/secure', 'over tls')).status, 200)
    assert.deepEqual(await call('GET', '/v1/keys/secure'), { status: 200, body: 'over tls' })
    assert.equal((await call('GET', '/v1/keys/secure', undefined, false)).status, 401)
    // A plain-HTTP client cannot talk to it.
    await assert.rejects(send(`http://${n.host}:${n.port}`, 'GET', '/healthz', undefined, {}, 2000).then((r) => {
      if (r.status === 200) throw new Error('unreachable')
      throw new Error(`status ${r.status}`)
    }))
    t.diagnostic('TLS served with a self-signed certificate generated by openssl')
  })
})
