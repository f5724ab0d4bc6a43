// The node under attack (issue 14, items 10-15), over real sockets: slow uploads, silent
// TLS sockets, cross-site requests, the body byte budget, and the smaller admission holes.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { Agent, request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { after, describe, test } from 'node:test'
import { createClient } from '../../src/client/index.js'
import type { NodeHandle } from '../../src/server/index.js'
import { bodyOf, errorCode, headerOf, nodeTestbed, raw, send, statusOf, type RawConnection } from '../support/node-fixtures.js'
import { until as untilWithin } from '../support/until.js'

const testbed = nodeTestbed()
after(() => testbed.close())
const start = testbed.start

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('node under attack: admission details (item 15)', () => {
  test('a connection-limit 503 carries Retry-After', async () => {
    const n = await start({ maxConnectionsPerIp: 1, keepAliveTimeout: '30s' })
    const held = await raw(n)
    const extra = await raw(n)
    const reply = await extra.received
    assert.equal(statusOf(reply), 503, reply)
    assert.equal(errorCode(bodyOf(reply)), 'ERR_BUSY')
    assert.equal(headerOf(reply, 'retry-after'), '1')
    held.socket.destroy()
  })

  test('the Bearer scheme is case-insensitive (RFC 7235), and wrong tokens are rate-limited', async () => {
    // One token per 4 s: the four requests below must not see a refill, even on a machine that stalls for a second.
    const n = await start({ authToken: 'tok-1', rateLimit: 0.25, rateBurst: 3 })
    assert.equal((await send(n.url, 'PUT', '/v1/keys/a', 'v', { authorization: 'bearer tok-1' })).status, 200)
    assert.equal((await send(n.url, 'GET', '/v1/keys/a', undefined, { authorization: 'BEARER tok-1' })).status, 200)
    // One token left in the bucket: a guess spends it, the next guess is refused before auth runs.
    const guess = await send(n.url, 'GET', '/v1/keys/a', undefined, { authorization: 'Bearer guess-1' })
    assert.equal(guess.status, 401)
    const limited = await send(n.url, 'GET', '/v1/keys/a', undefined, { authorization: 'Bearer guess-2' })
    assert.equal(limited.status, 429)
    assert.equal(errorCode(limited.body), 'ERR_RATE_LIMITED')
    // Other schemes and a missing token are still refused.
    await sleep(4100)
    assert.equal((await send(n.url, 'GET', '/v1/keys/a', undefined, { authorization: 'Basic dG9rLTE=' })).status, 401)
  })

  test('error answers are JSON also without Host, for CONNECT, and for paths named like Object.prototype members', async () => {
    const n = await start()
    const noHost = await raw(n)
    noHost.socket.write('GET /v1/stats HTTP/1.1\r\n\r\n')
    const a = await noHost.received
    assert.equal(statusOf(a), 400, a)
    assert.equal(errorCode(bodyOf(a)), 'ERR_BAD_REQUEST')
    const tunnel = await raw(n)
    tunnel.socket.write(`CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n`)
    const b = await tunnel.received
    assert.equal(statusOf(b), 400, b)
    assert.equal(errorCode(bodyOf(b)), 'ERR_BAD_REQUEST')
    for (const url of ['constructor', '__proto__', 'toString', 'hasOwnProperty', '/__proto__', '/v1/__proto__']) {
      const r = await n.inject({ method: 'GET', url })
      assert.equal(r.status, 404, `${url}: ${String(r.body)}`)
      assert.equal(errorCode(String(r.body)), 'ERR_NOT_FOUND')
    }
  })
})

/** Starts a PUT whose body (of `length` declared bytes) is sent only in part: a slow upload. */
async function slowPut(n: NodeHandle, from: string, key: string, length = 100, sent = '0123456789'): Promise<RawConnection> {
  const c = await raw(n, from)
  c.socket.write(`PUT /v1/keys/${key} HTTP/1.1\r\nHost: ${n.host}:${n.port}\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n${sent}`)
  return c
}

const until = (what: string, check: () => boolean, ms = 5000): Promise<void> => untilWithin(`timed out waiting for ${what}`, ms, check)

describe('node under attack: slow uploads (item 10)', () => {
  test('8 addresses x 32 slow uploads (the default bounds) do not lock other clients out', async () => {
    const n = await start({ keepAliveTimeout: '60s', bodyTimeout: '60s' })
    const uploads: RawConnection[] = []
    for (let a = 1; a <= 8; a++) {
      for (let i = 0; i < 32; i++) uploads.push(await slowPut(n, `127.0.0.${10 + a}`, `slow-${a}-${i}`))
    }
    // The attack as the audit ran it: every upload seen by the node and receiving its body.
    await until('the node to see the 256 uploads', () => n.stats().requests.total === 256)
    assert.equal(n.stats().node.receiving, 256)
    const put = await send(n.url, 'PUT', '/v1/keys/honest', 'value', {}, 5000)
    assert.equal(put.status, 200, put.body.toString())
    for (let i = 0; i < 20; i++) {
      const get = await send(n.url, 'GET', '/v1/keys/honest', undefined, {}, 5000)
      assert.equal(get.status, 200, `GET ${i} from another address: ${get.body.toString()}`)
    }
    for (const u of uploads) u.socket.destroy()
  })

  test('a body that does not keep up with minBodyRate is cut with a JSON 408 after bodyTimeout', async () => {
    const n = await start({ bodyTimeout: '300ms', minBodyRate: '1kb', requestTimeout: '30s' })
    const t0 = Date.now()
    const slow = await slowPut(n, '127.0.0.1', 'slow', 100)
    const reply = await slow.received
    const elapsed = Date.now() - t0
    assert.equal(statusOf(reply), 408, reply)
    assert.equal(errorCode(bodyOf(reply)), 'ERR_BAD_REQUEST')
    assert.ok(elapsed < 3000, `cut after about bodyTimeout (+10 ms for its 10 bytes), not requestTimeout: ${elapsed} ms`)
    // A body trickling at the minimum rate earns its time: 2 kb in 4 pieces over ~600 ms.
    const steady = await raw(n)
    steady.socket.write(`PUT /v1/keys/steady HTTP/1.1\r\nHost: ${n.host}:${n.port}\r\nContent-Length: 2048\r\nConnection: close\r\n\r\n`)
    for (let i = 0; i < 4; i++) {
      steady.socket.write('x'.repeat(512))
      await sleep(200)
    }
    assert.equal(statusOf(await steady.received), 200)
    assert.equal(n.stats().node.bufferedBodyBytes, 0)
  })

  test('one node-wide body timer: stalled bodies begun at different times are each cut at their own deadline, bodies in between are answered', async () => {
    const n = await start({ bodyTimeout: '300ms', minBodyRate: '1kb', requestTimeout: '30s' })
    const stalled = async (key: string): Promise<{ reply: Promise<string>; t0: number }> => {
      const c = await raw(n)
      c.socket.write(`PUT /v1/keys/${key} HTTP/1.1\r\nHost: ${n.host}:${n.port}\r\nContent-Length: 100\r\nConnection: close\r\n\r\nabc`)
      return { reply: c.received, t0: Date.now() }
    }
    const first = await stalled('first')
    await sleep(150)
    // Begun while the timer is armed for the first: its deadline is later, so it is found when the timer re-arms.
    const second = await stalled('second')
    const quick = await send(n.url, 'PUT', '/v1/keys/quick', 'v')
    assert.equal(quick.status, 200)
    for (const s of [first, second]) {
      const reply = await s.reply
      const elapsed = Date.now() - s.t0
      assert.equal(statusOf(reply), 408, reply)
      assert.ok(elapsed >= 250 && elapsed < 3000, `cut at about its own bodyTimeout: ${elapsed} ms`)
    }
    // A body begun after the timer went quiet arms it again.
    const third = await stalled('third')
    assert.equal(statusOf(await third.reply), 408)
    assert.ok(Date.now() - third.t0 >= 250)
    assert.equal(n.stats().node.bufferedBodyBytes, 0)
    assert.equal(n.stats().node.receiving, 0)
  })

  test('one node-wide body timer: a body begun while the timer waits for a far deadline (earned by bytes) is still cut at its own', async () => {
    const n = await start({ bodyTimeout: '300ms', minBodyRate: '1kb', requestTimeout: '30s' })
    // 10,000 bytes at once earn ~9.8 s at 1 kb/s: once the timer first fires (300 ms), it re-arms that far.
    const big = await raw(n)
    big.socket.write(`PUT /v1/keys/big HTTP/1.1\r\nHost: ${n.host}:${n.port}\r\nContent-Length: 20000\r\nConnection: close\r\n\r\n${'x'.repeat(10_000)}`)
    await sleep(500)
    big.socket.write('x'.repeat(10_000))
    assert.equal(statusOf(await big.received), 200)
    const c = await raw(n)
    const t0 = Date.now()
    c.socket.write(`PUT /v1/keys/stalled HTTP/1.1\r\nHost: ${n.host}:${n.port}\r\nContent-Length: 100\r\nConnection: close\r\n\r\nabc`)
    const reply = await c.received
    assert.equal(statusOf(reply), 408, reply)
    assert.ok(Date.now() - t0 < 3000, `cut at about its own bodyTimeout, not the earlier body's: ${Date.now() - t0} ms`)
    assert.equal(n.stats().node.receiving, 0)
  })
})

describe('node under attack: the body byte budget (item 14)', () => {
  test('bodies in flight are bounded node-wide by maxBufferedBodyBytes: past it 503 with Retry-After at once', async () => {
    await assert.rejects(start({ maxBufferedBodyBytes: '1mb', maxValueBytes: '2mb' }), (e: Error & { code?: string }) => e.code === 'ERR_INVALID_OPTIONS' && /maxBufferedBodyBytes/.test(e.message))
    const n = await start({ maxBufferedBodyBytes: '1mb', maxValueBytes: '600kb', maxBodyBytes: '600kb', keepAliveTimeout: '30s', bodyTimeout: '30s' })
    const first = await slowPut(n, '127.0.0.1', 'first', 600 * 1024)
    await until('the first upload to reserve its bytes', () => n.stats().node.bufferedBodyBytes === 600 * 1024)
    // A second 600 kb body would pass the budget: refused at once, unread.
    const t0 = Date.now()
    const second = await slowPut(n, '127.0.0.2', 'second', 600 * 1024)
    const refused = await second.received
    assert.ok(Date.now() - t0 < 2000, 'refused at once, not after a timeout')
    assert.equal(statusOf(refused), 503, refused)
    assert.equal(errorCode(bodyOf(refused)), 'ERR_BUSY')
    assert.equal(headerOf(refused, 'retry-after'), '1')
    assert.match(bodyOf(refused), /bytes of request bodies/)
    // A chunked body is counted as it arrives: past the budget it is cut the same way.
    const chunked = await raw(n, '127.0.0.3')
    chunked.socket.write(`PUT /v1/keys/chunked HTTP/1.1\r\nHost: ${n.host}:${n.port}\r\nTransfer-Encoding: chunked\r\n\r\n`)
    const piece = 'c'.repeat(100 * 1024)
    for (let i = 0; i < 5 && !chunked.socket.destroyed; i++) chunked.socket.write(`${piece.length.toString(16)}\r\n${piece}\r\n`)
    const cut = await chunked.received
    assert.equal(statusOf(cut), 503, cut.slice(0, 300))
    // What fits is served; GETs need no budget.
    assert.equal((await send(n.url, 'PUT', '/v1/keys/small', Buffer.alloc(100 * 1024, 1))).status, 200)
    assert.equal((await send(n.url, 'GET', '/v1/keys/small')).status, 200)
    // The budget comes back when the first body completes.
    first.socket.write(Buffer.alloc(600 * 1024 - 10, 2))
    assert.equal(statusOf(await first.received), 200)
    assert.equal(n.stats().node.bufferedBodyBytes, 0)
    assert.equal((await send(n.url, 'PUT', '/v1/keys/second', Buffer.alloc(600 * 1024, 3))).status, 200)
  })
})

/** A self-signed certificate for 127.0.0.1 (openssl), in a temporary directory. */
function selfSigned(): { cert: string; key: string; ca: Buffer } {
  const d = testbed.dir('stratacache-tls-')
  const cert = join(d.path, 'cert.pem')
  const key = join(d.path, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  return { cert, key, ca: readFileSync(cert) }
}

function httpsGet(n: NodeHandle, path: string, ca: Buffer): Promise<{ status: number; body: string; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: n.host, port: n.port, path, ca, agent: false, headers: { connection: 'close' } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), retryAfter: res.headers['retry-after'] as string | undefined }))
    })
    req.setTimeout(5000, () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end()
  })
}

describe('node under attack: TLS (items 11, 15)', () => {
  test('connections that never send a ClientHello are cut at the headers deadline, so they cannot hold maxConnections', async () => {
    const { cert, key, ca } = selfSigned()
    const n = await start({ tlsCert: cert, tlsKey: key, maxConnections: 5, headersTimeout: '500ms' })
    const silentSockets = await Promise.all(Array.from({ length: 5 }, () => raw(n)))
    await until('the node to count the silent sockets', () => n.stats().node.connections === 5)
    const closed = await Promise.race([Promise.all(silentSockets.map((c) => c.received)).then(() => true), sleep(4000).then(() => false)])
    assert.ok(closed, 'every silent socket was closed by the node within 4 s')
    await until('the node to release them', () => n.stats().node.connections === 0)
    assert.equal((await httpsGet(n, '/healthz', ca)).status, 200)
  })

  test('a TLS connection past the connection limit reads a JSON 503 with Retry-After (it was closed without a word)', async () => {
    const { cert, key, ca } = selfSigned()
    const n = await start({ tlsCert: cert, tlsKey: key, maxConnectionsPerIp: 1, keepAliveTimeout: '30s' })
    const held = await new Promise<Socket>((resolve, reject) => {
      const s = tlsConnect({ host: n.host, port: n.port, ca }, () => resolve(s))
      s.on('error', reject)
    })
    await until('the node to count the held connection', () => n.stats().node.connections === 1)
    const refused = await httpsGet(n, '/v1/stats', ca)
    assert.equal(refused.status, 503, refused.body)
    assert.equal(errorCode(refused.body), 'ERR_BUSY')
    assert.equal(refused.retryAfter, '1')
    held.destroy()
  })
})

describe('node under attack: cross-site requests to a local node (item 13)', () => {
  test('JSON routes refuse other content types with 415 ERR_UNSUPPORTED_MEDIA_TYPE (a page can POST text/plain without a preflight)', async () => {
    const n = await start()
    assert.equal((await send(n.url, 'PUT', '/v1/keys/a?tags=t', 'v')).status, 200)
    for (const type of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined]) {
      for (const path of ['/v1/invalidate', '/v1/mset', '/v1/mget']) {
        const r = await send(n.url, 'POST', path, '{"tags":["t"]}', type === undefined ? {} : { 'content-type': type })
        assert.equal(r.status, 415, `${path} ${String(type)}`)
        assert.equal(errorCode(r.body), 'ERR_UNSUPPORTED_MEDIA_TYPE')
      }
    }
    assert.equal((await send(n.url, 'GET', '/v1/keys/a')).status, 200, 'nothing was invalidated')
    assert.equal((await send(n.url, 'POST', '/v1/invalidate', '{"tags":["t"]}', { 'content-type': 'Application/JSON; charset=utf-8' })).status, 200)
    assert.equal((await send(n.url, 'GET', '/v1/keys/a')).status, 404)
  })

  test('without a token, a Host that is not the node (DNS rebinding) is refused with 403 ERR_FORBIDDEN; with a token it is not checked', async () => {
    const n = await start()
    for (const host of ['attacker.example', `attacker.example:${n.port}`, `127.0.0.1.attacker.example:${n.port}`]) {
      const r = await send(n.url, 'GET', '/v1/stats', undefined, { host })
      assert.equal(r.status, 403, host)
      assert.equal(errorCode(r.body), 'ERR_FORBIDDEN')
    }
    for (const host of [`127.0.0.1:${n.port}`, `localhost:${n.port}`, 'LOCALHOST', `[::1]:${n.port}`, '10.1.2.3']) {
      assert.equal((await send(n.url, 'GET', '/v1/stats', undefined, { host })).status, 200, host)
    }
    assert.equal((await send(n.url, 'GET', '/healthz', undefined, { host: 'attacker.example' })).status, 200, 'probes stay open')
    const withToken = await start({ authToken: 'tok' })
    assert.equal((await send(withToken.url, 'GET', '/v1/stats', undefined, { host: 'cache.internal.example', authorization: 'Bearer tok' })).status, 200)
  })

  test('cross-origin browser requests (Origin of another site, Sec-Fetch-Site cross-site or same-site) are refused with 403', async () => {
    const n = await start()
    const own = `http://127.0.0.1:${n.port}`
    for (const headers of [{ origin: 'http://attacker.example' }, { origin: 'null' }, { origin: `http://127.0.0.1:${n.port + 1}` }, { 'sec-fetch-site': 'cross-site' }, { 'sec-fetch-site': 'same-site' }]) {
      const r = await send(n.url, 'POST', '/v1/invalidate', '{"tags":["t"]}', { 'content-type': 'application/json', ...headers })
      assert.equal(r.status, 403, JSON.stringify(headers))
      assert.equal(errorCode(r.body), 'ERR_FORBIDDEN')
      assert.equal((await send(n.url, 'GET', '/v1/stats', undefined, headers)).status, 403, `GET ${JSON.stringify(headers)}`)
    }
    assert.equal((await send(n.url, 'GET', '/v1/stats', undefined, { origin: own, 'sec-fetch-site': 'same-origin' })).status, 200)
    assert.equal((await send(n.url, 'GET', '/v1/stats', undefined, { 'sec-fetch-site': 'none' })).status, 200)
  })

  test("the project's client still works against a tokenless node", async () => {
    const n = await start()
    const client = createClient({ nodes: [n.url] })
    try {
      await client.mset([{ key: 'a', value: 'x', tags: ['g'] }, { key: 'b', value: 'y' }])
      assert.deepEqual((await client.mget(['a', 'b'])).map((e) => (e === undefined ? undefined : Buffer.from(e.value).toString())), ['x', 'y'])
      assert.equal(await client.invalidate(['g']), 1)
      assert.equal(await client.get('a'), undefined)
      await client.set('c', 'z')
      assert.equal(Buffer.from((await client.get('c'))?.value ?? []).toString(), 'z')
    } finally {
      await client.close()
    }
  })
})

describe('node under attack: shutdown under load (item 15)', () => {
  test('close() under keep-alive load answers requests already on the wire with 503 instead of resetting them', async () => {
    const n = await start({ keepAliveTimeout: '30s', drainTimeout: '5s' })
    await send(n.url, 'PUT', '/v1/keys/k', 'v')
    const agent = new Agent({ keepAlive: true, maxSockets: 32 })
    const outcomes = new Map<string, number>()
    const note = (what: string): void => void outcomes.set(what, (outcomes.get(what) ?? 0) + 1)
    const get = (): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = httpRequest({ host: n.host, port: n.port, path: '/v1/keys/k', agent }, (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode ?? 0))
          res.on('error', reject)
        })
        req.on('error', (err) => reject(Object.assign(err, { reused: req.reusedSocket })))
        req.end()
      })
    const loop = async (): Promise<void> => {
      for (;;) {
        try {
          const status = await get()
          note(String(status))
          if (status !== 200) return
        } catch (err) {
          // Refused: the request never left (the node had stopped listening). Anything else
          // (reset, hang up) cut a request the client had sent. Each client stops at its first
          // answer other than 200 (a 503 while draining), as a client with other nodes would.
          note((err as { code?: string }).code === 'ECONNREFUSED' ? 'refused' : `cut: ${(err as Error).message}${(err as { reused?: boolean }).reused === true ? ' (reused socket)' : ''}`)
          return
        }
      }
    }
    const loops = Array.from({ length: 32 }, () => loop())
    await sleep(400)
    const closing = n.close()
    await Promise.all(loops)
    await closing
    agent.destroy()
    const cut = [...outcomes].filter(([k]) => k.startsWith('cut'))
    assert.deepEqual(cut, [], `outcomes ${JSON.stringify(Object.fromEntries(outcomes))}`)
    assert.ok((outcomes.get('200') ?? 0) > 0)
  })
})
