// The node under attack (issue 14, items 10-15), over real sockets: slow uploads, silent
// TLS sockets, cross-site requests, the body byte budget, and the smaller admission holes.
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { after, describe, test } from 'node:test'
import { startNode, type NodeHandle, type NodeOptions } from '../../src/server/index.js'
import { errorCode, send, tempDir } from '../support/node-fixtures.js'

const silent: NonNullable<NodeOptions['logger']> = { info: () => undefined, warn: () => undefined, error: () => undefined }
const dirs: Array<{ remove: () => void }> = []
const nodes: NodeHandle[] = []
after(async () => {
  for (const n of nodes) await n.close()
  for (const d of dirs) d.remove()
})

async function start(options: NodeOptions = {}): Promise<NodeHandle> {
  const d = tempDir()
  dirs.push(d)
  const n = await startNode({ port: 0, logger: silent, disk: '64mb', dataDir: d.path, ...options })
  nodes.push(n)
  return n
}

interface Raw {
  socket: Socket
  received: Promise<string>
}

/** A raw TCP connection to the node; `received` is everything read until it closes. */
function raw(node: NodeHandle, localAddress?: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port: node.port, host: node.host, localAddress })
    const chunks: Buffer[] = []
    const received = new Promise<string>((done) => {
      socket.on('data', (c: Buffer) => chunks.push(c))
      socket.on('close', () => done(Buffer.concat(chunks).toString('latin1')))
    })
    socket.on('error', () => undefined)
    socket.once('connect', () => resolve({ socket, received }))
    socket.once('error', reject)
  })
}

function statusOf(reply: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1] ?? 0)
}

function bodyOf(reply: string): string {
  return reply.slice(reply.indexOf('\r\n\r\n') + 4)
}

function headerOf(reply: string, name: string): string | undefined {
  const head = reply.slice(0, reply.indexOf('\r\n\r\n'))
  return new RegExp(`\\r\\n${name}: ([^\\r\\n]*)`, 'i').exec(head)?.[1]
}

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
    const n = await start({ authToken: 'tok-1', rateLimit: 1, rateBurst: 3 })
    assert.equal((await send(n.url, 'PUT', '/v1/keys/a', 'v', { authorization: 'bearer tok-1' })).status, 200)
    assert.equal((await send(n.url, 'GET', '/v1/keys/a', undefined, { authorization: 'BEARER tok-1' })).status, 200)
    // One token left in the bucket: a guess spends it, the next guess is refused before auth runs.
    const guess = await send(n.url, 'GET', '/v1/keys/a', undefined, { authorization: 'Bearer guess-1' })
    assert.equal(guess.status, 401)
    const limited = await send(n.url, 'GET', '/v1/keys/a', undefined, { authorization: 'Bearer guess-2' })
    assert.equal(limited.status, 429)
    assert.equal(errorCode(limited.body), 'ERR_RATE_LIMITED')
    // Other schemes and a missing token are still refused.
    await sleep(1100)
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
