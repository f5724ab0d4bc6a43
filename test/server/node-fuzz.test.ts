// Fuzz: seeded random requests — malformed paths, headers, bodies, huge and empty values,
// invalid TTLs and tags — for a bounded time, in process and over raw sockets. The node
// must never crash, answer every request with success or a typed JSON error whose status
// matches its code, never answer 500, and still serve correctly afterwards.
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, describe, test } from 'node:test'
import { SeededRandom } from '../../src/core/random.js'
import { STATUS_OF_CODE } from '../../src/protocol/wire.js'
import { startNode, type NodeHandle, type NodeOptions } from '../../src/server/index.js'
import type { ErrorCode } from '../../src/core/errors.js'
import { send, tempDir } from '../support/node-fixtures.js'

const SEED = Number(process.env.STRATACACHE_FUZZ_SEED ?? 20261201)
const INJECT_MS = Number(process.env.STRATACACHE_FUZZ_MS ?? 5000)
const SOCKET_MS = Math.round(INJECT_MS * 0.6)

const errors: string[] = []
const logger: NonNullable<NodeOptions['logger']> = {
  info: () => undefined,
  warn: () => undefined,
  error: (fields, message) => void errors.push(`${message} ${JSON.stringify(fields, (_k, v: unknown) => (v instanceof Error ? v.stack : v))}`),
}
const dir = tempDir('stratacache-fuzz-')
let node: NodeHandle
after(async () => {
  await node?.close()
  dir.remove()
})

const rnd = new SeededRandom(SEED)
const int = (n: number): number => Math.floor(rnd.next() * n)
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]
const chance = (p: number): boolean => rnd.next() < p

const KEY_CHARS = 'abcxyz019_-.~ %/?#&=+:é🔑\u0000\u007f\\"\''
const METHODS = ['GET', 'PUT', 'DELETE', 'POST', 'PATCH', 'HEAD', 'OPTIONS', 'get', 'X-CUSTOM']
const TTLS = ['1', '60', '99999999', '100000000', '0', '-1', '1.5', '1e3', '', 'none', 'None', 'abc', '%00', '9'.repeat(30), '  5', '0x1f', 'Infinity', 'NaN']
const TAGS = ['a', 'org:1', 'org:1:user:42', 'a::b', ':a', 'a:', 'a b', 'x'.repeat(300), 'é', '*', 'a,b,c', ',,', '%2C', 'a:b:c:d:e:f:g:h:i:j:k:l:m:n:o:p:q:r:s:t:u:v:w:x:y:z:1:2:3:4:5:6:7']

function randomText(max: number, alphabet = KEY_CHARS): string {
  // By code point: a random half of '🔑' would be a lone surrogate, which no URL can carry.
  const chars = Array.from(alphabet)
  const n = int(max + 1)
  let s = ''
  for (let i = 0; i < n; i++) s += chars[int(chars.length)] ?? 'a'
  return s
}

function randomSegment(): string {
  const r = int(10)
  if (r === 0) return ''
  if (r === 1) return '%' + randomText(3, '0123456789ABCDEFZ%')
  if (r === 2) return 'k'.repeat(pick([1023, 1024, 1025, 4000]))
  if (r === 3) return encodeURIComponent('é'.repeat(pick([100, 512, 513])))
  if (r === 4) return '%ED%A0%80' // a lone surrogate, encoded
  const raw = `f${randomText(12)}`
  return chance(0.7) ? encodeURIComponent(raw) : raw.replaceAll('#', '').replaceAll('?', '')
}

function randomPath(): string {
  const base = pick([
    () => `/v1/keys/${randomSegment()}`,
    () => `/v1/keys`,
    () => `/v1/${pick(['mget', 'mset', 'invalidate', 'stats', 'nope', 'keys/'])}`,
    () => `/${randomSegment()}/${randomSegment()}`,
    () => `/${pick(['healthz', 'readyz', 'metrics', 'ping', 'v1', '', 'x'])}`,
    () => `/${randomSegment()}/${randomSegment()}/${randomSegment()}`,
    () => `/v1/keys/${randomSegment()}/${randomSegment()}`,
  ])()
  const params: string[] = []
  const n = int(4)
  for (let i = 0; i < n; i++) {
    const name = pick(['ttl', 'tags', 'expiry', 'ttl', 'tags', 'x', '', '%zz'])
    const value = name === 'tags' ? Array.from({ length: int(5) }, () => encodeURIComponent(pick(TAGS))).join(pick([',', ';', ',,'])) : encodeURIComponent(pick(TTLS))
    params.push(chance(0.1) ? name : `${name}=${value}`)
  }
  return params.length === 0 ? base : `${base}?${params.join(pick(['&', '&&', ';']))}`
}

function randomJson(): string {
  const keys = Array.from({ length: int(6) }, () => (chance(0.2) ? pick([1, null, {}, [], '']) : `f${randomText(6)}`))
  const entries = Array.from({ length: int(6) }, () => {
    if (chance(0.1)) return pick([null, 'x', 3, []])
    const e: Record<string, unknown> = { key: chance(0.9) ? `f${randomText(6)}` : pick([null, 7, '']) }
    if (chance(0.9)) e.value = chance(0.8) ? Buffer.from(randomText(20)).toString('base64') : pick(['not base64', '===', 5, 'QQ'])
    if (chance(0.5)) e.ttl = pick([60, 0, -1, 1.5, null, 'none', '60', 1e12, true])
    if (chance(0.4)) e.tags = chance(0.8) ? Array.from({ length: int(4) }, () => pick(TAGS)) : pick(['org', 3, [1]])
    if (chance(0.05)) e.extra = 1
    return e
  })
  const bodies: unknown[] = [
    { keys },
    { entries },
    { tags: Array.from({ length: int(4) }, () => pick(TAGS)), mode: pick(['hard', 'soft', 'medium', undefined, 3]) },
    { keys: 'a' },
    { keys: Array.from({ length: pick([999, 1000, 1001]) }, (_, i) => `k${i}`) },
    [],
    null,
    'str',
    42,
  ]
  const text = JSON.stringify(pick(bodies)) ?? 'null'
  if (chance(0.15)) return text.slice(0, int(text.length))
  if (chance(0.05)) return '{"keys":' + '['.repeat(5000)
  return text
}

function randomBody(): Uint8Array | string | undefined {
  const r = int(9)
  if (r === 0) return undefined
  if (r === 1) return ''
  if (r === 2) return Buffer.alloc(pick([65_535, 65_536, 65_537, 200_000]), int(256))
  if (r === 3) return Buffer.from(Array.from({ length: int(64) }, () => int(256)))
  if (r <= 6) return randomJson()
  return randomText(100)
}

function randomHeaders(): Record<string, string> {
  const h: Record<string, string> = {}
  if (chance(0.3)) h['if-match'] = pick(['*', '"1"', '"abc"', '', '"1", "2"', 'W/"5"', '"99999999999999999999"', '"0"', '-1'])
  if (chance(0.1)) h['x-confirm'] = pick(['clear', 'yes', '', 'CLEAR-ALL'])
  if (chance(0.7)) h['content-type'] = chance(0.85) ? 'application/json' : pick(['text/plain', '\u00ff', 'application/json; charset=utf-8', 'APPLICATION/JSON'])
  if (chance(0.05)) h.authorization = pick(['Bearer x', 'Basic y', ''])
  return h
}

function checkReply(status: number, contentType: string | undefined, body: Buffer | string, what: string): void {
  assert.ok(status >= 200 && status < 600, `${what}: status ${status}`)
  assert.notEqual(status, 500, `${what}: 500 ${String(body)}`)
  if (status < 300) return
  assert.match(String(contentType), /application\/json/, `${what}: error content type`)
  const parsed = JSON.parse(typeof body === 'string' ? body : body.toString('utf8')) as { code: ErrorCode; message: string }
  assert.match(parsed.code, /^ERR_[A-Z_]+$/, what)
  assert.equal(typeof parsed.message, 'string', what)
  const expected = STATUS_OF_CODE[parsed.code]
  if (status !== 408) assert.equal(status, expected, `${what}: ${parsed.code} answered ${status}`)
}

describe('node fuzz', () => {
  test(`seeded fuzz (seed ${SEED}): no crash, typed errors only, correct afterwards`, async (t) => {
    node = await startNode({ port: 0, dataDir: dir.path, disk: '256mb', maxValueBytes: 65_536, maxBodyBytes: 128 * 1024, maxBatch: 1000, logger, headersTimeout: '2s', requestTimeout: '3s' })
    // Control data the fuzzer cannot name (its keys start with 'f', it never sends the clear guard).
    const control = new Map<string, number>()
    for (let i = 0; i < 20; i++) {
      const r = await node.inject({ method: 'PUT', url: `/v1/keys/control%2F${i}?ttl=none`, body: `control-${i}` })
      control.set(`control/${i}`, (JSON.parse(String(Buffer.from(r.body))) as { version: number }).version)
    }
    const statuses = new Map<number, number>()
    let injected = 0
    const t0 = Date.now()
    while (Date.now() - t0 < INJECT_MS) {
      // A quarter of the requests are well-formed, so the success paths run under the same fire.
      const valid = chance(0.25)
      const key = encodeURIComponent(`f${int(50)}`)
      const method = valid ? pick(['GET', 'PUT', 'PUT', 'DELETE']) : pick(METHODS)
      const url = valid ? `/v1/keys/${key}${method === 'PUT' ? `?ttl=${pick(['1', '60', 'none'])}&tags=${pick(['org:1', 'org:2:u', 'a,b'])}` : ''}` : randomPath()
      const body = valid ? (method === 'PUT' ? Buffer.alloc(int(2000), int(256)) : undefined) : randomBody()
      const r = await node.inject({ method, url, headers: randomHeaders(), body })
      checkReply(r.status, r.headers['content-type'], typeof r.body === 'string' ? r.body : Buffer.from(r.body), `${method} ${url.slice(0, 120)}`)
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
      injected++
    }
    // Over raw sockets: random request lines and headers, also broken framing.
    let sockets = 0
    const t1 = Date.now()
    while (Date.now() - t1 < SOCKET_MS) {
      const batch = Array.from({ length: 8 }, () => rawRequest())
      const replies = await Promise.all(batch.map((req) => exchange(node, req)))
      for (let i = 0; i < batch.length; i++) {
        const reply = replies[i]
        sockets++
        if (reply === '') continue // the client broke framing and the node closed: allowed only for aborted input
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1])
        const head = reply.slice(0, reply.indexOf('\r\n\r\n'))
        const contentType = /\r\ncontent-type: ([^\r\n]*)/i.exec(head)?.[1]
        checkReply(status, contentType, reply.slice(reply.indexOf('\r\n\r\n') + 4), JSON.stringify(batch[i].slice(0, 100)))
        statuses.set(status, (statuses.get(status) ?? 0) + 1)
      }
    }
    t.diagnostic(`${injected} injected and ${sockets} raw requests; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`)
    assert.deepEqual(errors, [], 'no unexpected errors were logged')
    assert.ok(injected > 200, 'the fuzzer ran')
    assert.ok((statuses.get(200) ?? 0) > 0 && [...statuses.keys()].some((s) => s >= 400), 'both successes and errors were exercised')
    // Still correct: control data intact, a fresh write/read/delete cycle behaves.
    for (const [key, version] of control) {
      const r = await send(node.url, 'GET', `/v1/keys/${encodeURIComponent(key)}`)
      assert.equal(r.status, 200, key)
      assert.equal(r.body.toString(), `control-${key.split('/')[1]}`)
      assert.equal(r.headers.etag, `"${version}"`)
    }
    const put = await send(node.url, 'PUT', '/v1/keys/after?ttl=30&tags=z:1', Buffer.from([0, 1, 2]))
    assert.equal(put.status, 200)
    assert.ok((JSON.parse(put.body.toString()) as { version: number }).version > Math.max(...control.values()))
    assert.deepEqual((await send(node.url, 'GET', '/v1/keys/after')).body, Buffer.from([0, 1, 2]))
    assert.equal((await send(node.url, 'POST', '/v1/invalidate', '{"tags":["z"]}', { 'content-type': 'application/json' })).status, 200)
    assert.equal((await send(node.url, 'GET', '/v1/keys/after')).status, 404)
    assert.equal((await send(node.url, 'GET', '/readyz')).status, 200)
  })
})

describe('node fuzz: large values on the JSON routes', () => {
  test(`seeded (seed ${SEED}): multi-megabyte strings in every JSON field get success or a typed error over sockets, never 500`, async (t) => {
    const d = tempDir('stratacache-fuzz-large-')
    const big = await startNode({ port: 0, dataDir: d.path, disk: '256mb', memory: '64mb', maxValueBytes: '8mb', maxBodyBytes: '24mb', logger })
    try {
      const huge = (n: number, alphabet: string): string => {
        const unit = Array.from({ length: 64 }, () => alphabet[int(alphabet.length)]).join('')
        return unit.repeat(Math.ceil(n / 64)).slice(0, n)
      }
      const sizes = [3_300_000, 4_500_000, 8 * 1024 * 1024, 11_500_000, 20_000_000]
      const bodies: Array<() => string> = [
        // base64 values around and past the old stack overflow (4.47 M characters) and the value limit
        () => JSON.stringify({ entries: [{ key: 'fbig', value: Buffer.alloc(Math.floor((pick(sizes) * 3) / 4), int(256)).toString('base64') }] }),
        // the same lengths, not base64
        () => JSON.stringify({ entries: [{ key: 'fbad', value: huge(pick(sizes), 'ab+/=*é') }] }),
        () => JSON.stringify({ entries: [{ key: huge(pick(sizes), 'abc/é'), value: 'QQ==' }] }),
        () => JSON.stringify({ entries: [{ key: 'ftag', value: 'QQ==', tags: [huge(pick(sizes), 'ab:')] }] }),
        () => JSON.stringify({ entries: [{ key: 'fttl', value: 'QQ==', ttl: huge(pick(sizes), '0123456789') }] }),
        () => JSON.stringify({ keys: [huge(pick(sizes), 'ab\u0000"')] }),
        () => JSON.stringify({ keys: Array.from({ length: 1000 }, (_, i) => `k${i}${huge(1000, 'xy')}`) }),
        () => JSON.stringify({ tags: [huge(pick(sizes), 'a:b')], mode: huge(1_000_000, 'h') }),
        () => JSON.stringify({ [huge(4_000_000, 'zq')]: 1 }),
        () => `{"entries":[{"key":"fesc","value":"${'\\u0041'.repeat(700_000)}"}]}`,
        () => `{"keys":${'['.repeat(2_000_000)}`,
      ]
      const statuses = new Map<number, number>()
      for (let i = 0; i < 24; i++) {
        const which = i < bodies.length ? i : int(bodies.length)
        const body = bodies[which]()
        const path = pick(['/v1/mset', '/v1/mget', '/v1/invalidate'])
        const r = await send(big.url, 'POST', path, body, { 'content-type': 'application/json' }, 60_000)
        checkReply(r.status, r.headers['content-type'] as string | undefined, r.body, `body #${which} (${body.length} chars) to ${path}`)
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
      }
      t.diagnostic(`statuses ${JSON.stringify(Object.fromEntries(statuses))}`)
      assert.deepEqual(errors, [], 'no unexpected errors were logged')
      assert.equal((await send(big.url, 'GET', '/readyz')).status, 200)
    } finally {
      await big.close()
      d.remove()
    }
  })
})

function rawRequest(): string {
  const r = int(8)
  const path = randomPath().replaceAll(' ', '%20').replace(/[\r\n]/g, '')
  const method = pick(['GET', 'PUT', 'POST', 'DELETE', 'BREW', 'G\u00e9T'])
  if (r === 0) return `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${pick(['abc', '-1', '1 1', '99999999999999999999'])}\r\n\r\n`
  if (r === 1) return `${randomText(40)}\r\n\r\n`
  if (r === 2) return `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n${pick(['zz', '5\r\nabc', 'ffffffffffff\r\n'])}\r\n0\r\n\r\n`
  if (r === 3) return `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${randomText(10, 'abcX-:')}: ${randomText(20, 'abc\u0001\u007f ')}\r\n\r\n`
  const body = String(randomBody() ?? '')
  return `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${chance(0.7) ? 'Content-Type: application/json\r\n' : ''}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
}

function exchange(n: NodeHandle, request: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(n.port, n.host)
    const chunks: Buffer[] = []
    const timer = setTimeout(() => socket.destroy(), 5000)
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', () => undefined)
    socket.on('close', () => {
      clearTimeout(timer)
      const text = Buffer.concat(chunks).toString('latin1')
      // Only the first response matters (pipelined garbage may produce a second).
      const next = text.indexOf('HTTP/1.1 ', 1)
      resolve(next === -1 ? text : text.slice(0, next))
    })
    socket.end(request, 'latin1')
  })
}
