// The node's HTTP API in process: requests injected without sockets, on a ManualClock.
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { isCacheError } from '../../src/core/errors.js'
import { ManualClock } from '../../src/core/manual-clock.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { startNode, type NodeHandle, type NodeOptions } from '../../src/server/index.js'
import type { ApiResponse } from '../../src/server/http-api.js'
import type { Store } from '../../src/store/types.js'
import { survivingStore } from '../support/node-fixtures.js'

interface Logged {
  level: string
  fields: object
  message: string
}

function quietLogger(lines: Logged[] = []): NonNullable<NodeOptions['logger']> {
  return {
    info: (fields, message) => void lines.push({ level: 'info', fields, message }),
    warn: (fields, message) => void lines.push({ level: 'warn', fields, message }),
    error: (fields, message) => void lines.push({ level: 'error', fields, message }),
  }
}

const open: NodeHandle[] = []
after(async () => {
  for (const n of open) await n.close()
})

async function node(options: NodeOptions = {}): Promise<{ node: NodeHandle; clock: ManualClock; logs: Logged[] }> {
  const clock = (options.clock as ManualClock | undefined) ?? new ManualClock()
  const logs: Logged[] = []
  const n = await startNode({ port: 0, clock, store: memoryStore({ clock }), logger: quietLogger(logs), ...options })
  open.push(n)
  return { node: n, clock, logs }
}

function bodyText(r: ApiResponse): string {
  return typeof r.body === 'string' ? r.body : Buffer.from(r.body).toString('utf8')
}

function json(r: ApiResponse): Record<string, unknown> {
  return JSON.parse(bodyText(r)) as Record<string, unknown>
}

function code(r: ApiResponse): unknown {
  return json(r).code
}

describe('node API (injected)', () => {
  test('PUT then GET: value, version in ETag, remaining TTL, tags; binary-safe', async () => {
    const { node: n, clock } = await node()
    const value = Buffer.from([0, 255, 1, 254, 10, 13, 0])
    const put = await n.inject({ method: 'PUT', url: '/v1/keys/bin%2Fkey?ttl=60&tags=org:1,user:42', body: value })
    assert.equal(put.status, 200)
    const { version, ttl } = json(put) as { version: number; ttl: number }
    assert.equal(ttl, 60)
    assert.ok(Number.isSafeInteger(version) && version > 0)
    assert.equal(put.headers.etag, `"${version}"`)
    clock.advance(10_500)
    const get = await n.inject({ method: 'GET', url: '/v1/keys/bin%2Fkey' })
    assert.equal(get.status, 200)
    assert.deepEqual(Buffer.from(get.body), value)
    assert.equal(get.headers.etag, `"${version}"`)
    assert.equal(get.headers['x-ttl'], '50')
    assert.equal(get.headers['x-tags'], 'org:1,user:42')
    assert.equal(get.headers['content-type'], 'application/octet-stream')
  })

  test('the empty value is a value; default TTL is 3600 s; ttl=none never expires', async () => {
    const { node: n, clock } = await node()
    assert.equal(json(await n.inject({ method: 'PUT', url: '/v1/keys/empty', body: '' })).ttl, 3600)
    const got = await n.inject({ method: 'GET', url: '/v1/keys/empty' })
    assert.equal(got.status, 200)
    assert.equal(Buffer.from(got.body).byteLength, 0)
    assert.equal(json(await n.inject({ method: 'PUT', url: '/v1/keys/forever?ttl=none', body: 'x' })).ttl, null)
    clock.advance(3600_000)
    assert.equal((await n.inject({ method: 'GET', url: '/v1/keys/empty' })).status, 404)
    const forever = await n.inject({ method: 'GET', url: '/v1/keys/forever' })
    assert.equal(forever.status, 200)
    assert.equal(forever.headers['x-ttl'], 'none')
  })

  test('TTL range is 1..99,999,999 s; everything else is ERR_INVALID_OPTIONS', async () => {
    const { node: n } = await node()
    for (const ttl of ['1', '99999999']) assert.equal((await n.inject({ method: 'PUT', url: `/v1/keys/k?ttl=${ttl}`, body: 'v' })).status, 200, ttl)
    // A leading zero is refused too: whole seconds are written one way ('010' is not 8 nor 10).
    for (const ttl of ['0', '-1', '1.5', '1e3', '100000000', '', 'abc', '%20', 'NONE', '0x10', '01', '010', '00']) {
      const r = await n.inject({ method: 'PUT', url: `/v1/keys/k?ttl=${ttl}`, body: 'v' })
      assert.equal(r.status, 400, ttl)
      assert.equal(code(r), 'ERR_INVALID_OPTIONS', ttl)
      const zerocache = await n.inject({ method: 'PUT', url: `/london/k?expiry=${ttl}`, body: 'v' })
      assert.equal(zerocache.status, 400, `expiry=${ttl}`)
      assert.equal(code(zerocache), 'ERR_INVALID_OPTIONS', `expiry=${ttl}`)
    }
  })

  test('expired entries are gone at their deadline', async () => {
    const { node: n, clock } = await node()
    await n.inject({ method: 'PUT', url: '/v1/keys/short?ttl=1', body: 'v' })
    clock.advance(999)
    assert.equal((await n.inject({ method: 'GET', url: '/v1/keys/short' })).status, 200)
    clock.advance(1)
    const r = await n.inject({ method: 'GET', url: '/v1/keys/short' })
    assert.equal(r.status, 404)
    assert.equal(code(r), 'ERR_NOT_FOUND')
  })

  test('versions strictly increase per key, across deletes', async () => {
    const { node: n } = await node()
    let last = 0
    for (let i = 0; i < 5; i++) {
      const v = json(await n.inject({ method: 'PUT', url: '/v1/keys/v', body: String(i) })).version as number
      assert.ok(v > last)
      last = v
      if (i === 2) assert.deepEqual(json(await n.inject({ method: 'DELETE', url: '/v1/keys/v' })), { deleted: true })
    }
    // Concurrent writes to one key: every acknowledged version distinct, the stored one the highest.
    const puts = await Promise.all(Array.from({ length: 20 }, (_, i) => n.inject({ method: 'PUT', url: '/v1/keys/v', body: `c${i}` })))
    const versions = puts.map((p) => json(p).version as number)
    assert.equal(new Set(versions).size, 20)
    const top = Math.max(...versions)
    const got = await n.inject({ method: 'GET', url: '/v1/keys/v' })
    assert.equal(got.headers.etag, `"${top}"`)
    assert.equal(bodyText(got), `c${versions.indexOf(top)}`)
  })

  test('If-Match: matching version writes, other versions and absent keys answer 412', async () => {
    const { node: n } = await node()
    const v1 = json(await n.inject({ method: 'PUT', url: '/v1/keys/cas', body: 'a' })).version as number
    const ok = await n.inject({ method: 'PUT', url: '/v1/keys/cas', body: 'b', headers: { 'if-match': `"${v1}"` } })
    assert.equal(ok.status, 200)
    const stale = await n.inject({ method: 'PUT', url: '/v1/keys/cas', body: 'c', headers: { 'if-match': `"${v1}"` } })
    assert.equal(stale.status, 412)
    assert.equal(code(stale), 'ERR_PRECONDITION_FAILED')
    assert.equal(bodyText(await n.inject({ method: 'GET', url: '/v1/keys/cas' })), 'b')
    assert.equal((await n.inject({ method: 'PUT', url: '/v1/keys/cas', body: 'd', headers: { 'if-match': '*' } })).status, 200)
    assert.equal((await n.inject({ method: 'PUT', url: '/v1/keys/absent', body: 'd', headers: { 'if-match': '*' } })).status, 412)
    const badDel = await n.inject({ method: 'DELETE', url: '/v1/keys/cas', headers: { 'if-match': '"1"' } })
    assert.equal(badDel.status, 412)
    // Unbalanced quotes too ('"5' was read as 5), as X-Stratacache-Min-Version refuses them.
    for (const bad of ['"abc"', '"1", "2"', '""', '-3', '"0"', `"${v1}`, `${v1}"`, `W/${v1}"`]) {
      const r = await n.inject({ method: 'PUT', url: '/v1/keys/cas', body: 'e', headers: { 'if-match': bad } })
      assert.equal(r.status, 400, bad)
      assert.equal(code(r), 'ERR_BAD_REQUEST', bad)
    }
    // Concurrent compare-and-set on one version: exactly one wins.
    const cur = Number(String((await n.inject({ method: 'GET', url: '/v1/keys/cas' })).headers.etag).replaceAll('"', ''))
    const racers = await Promise.all(Array.from({ length: 10 }, (_, i) => n.inject({ method: 'PUT', url: '/v1/keys/cas', body: `r${i}`, headers: { 'if-match': `"${cur}"` } })))
    assert.equal(racers.filter((r) => r.status === 200).length, 1)
    assert.equal(racers.filter((r) => r.status === 412).length, 9)
  })

  test('DELETE answers whether a live entry was there', async () => {
    const { node: n } = await node()
    await n.inject({ method: 'PUT', url: '/v1/keys/d', body: 'v' })
    assert.deepEqual(json(await n.inject({ method: 'DELETE', url: '/v1/keys/d' })), { deleted: true })
    assert.deepEqual(json(await n.inject({ method: 'DELETE', url: '/v1/keys/d' })), { deleted: false })
    assert.equal((await n.inject({ method: 'GET', url: '/v1/keys/d' })).status, 404)
  })

  test('keys: percent-decoding, limits (400 for empty/undecodable, 413 over 1024 bytes)', async () => {
    const { node: n } = await node({ maxKeyBytes: 1024 })
    assert.equal((await n.inject({ method: 'PUT', url: `/v1/keys/${encodeURIComponent('ключ/🔑 ?&=')}`, body: 'u' })).status, 200)
    assert.equal(bodyText(await n.inject({ method: 'GET', url: `/v1/keys/${encodeURIComponent('ключ/🔑 ?&=')}` })), 'u')
    assert.equal((await n.inject({ method: 'PUT', url: `/v1/keys/${'k'.repeat(1024)}`, body: 'u' })).status, 200)
    const long = await n.inject({ method: 'PUT', url: `/v1/keys/${'k'.repeat(1025)}`, body: 'u' })
    assert.equal(long.status, 413)
    assert.equal(code(long), 'ERR_TOO_LARGE')
    const multibyte = await n.inject({ method: 'PUT', url: `/v1/keys/${encodeURIComponent('é'.repeat(513))}`, body: 'u' })
    assert.equal(multibyte.status, 413)
    for (const bad of ['/v1/keys/', '/v1/keys/%E0%A4%A', '/v1/keys/%ZZ', '/v1/keys/%ED%A0%80']) {
      const r = await n.inject({ method: 'GET', url: bad })
      assert.equal(r.status, 400, bad)
      assert.equal(code(r), 'ERR_INVALID_KEY', bad)
    }
    assert.equal(code(await n.inject({ method: 'GET', url: '/v1/keys/a/b' })), 'ERR_BAD_REQUEST')
  })

  test('value and body limits answer 413 ERR_TOO_LARGE', async () => {
    const { node: n } = await node({ maxValueBytes: 1000, maxBodyBytes: 2000, maxBatch: 3 })
    assert.equal((await n.inject({ method: 'PUT', url: '/v1/keys/v', body: Buffer.alloc(1000) })).status, 200)
    assert.equal(code(await n.inject({ method: 'PUT', url: '/v1/keys/v', body: Buffer.alloc(1001) })), 'ERR_TOO_LARGE')
    assert.equal(code(await n.inject({ method: 'POST', url: '/v1/mget', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keys: ['x'.repeat(2000)] }) })), 'ERR_TOO_LARGE')
    assert.equal(code(await n.inject({ method: 'POST', url: '/v1/mget', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keys: ['a', 'b', 'c', 'd'] }) })), 'ERR_TOO_LARGE')
    const big = Buffer.alloc(1001).toString('base64')
    assert.equal(code(await n.inject({ method: 'POST', url: '/v1/mset', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ entries: [{ key: 'a', value: big }] }) })), 'ERR_TOO_LARGE')
  })

  test('tags: validated; invalidate reaches descendants; survives nothing it should not', async () => {
    const { node: n } = await node()
    await n.inject({ method: 'PUT', url: '/v1/keys/u42?tags=org:1:user:42', body: 'a' })
    await n.inject({ method: 'PUT', url: '/v1/keys/u43?tags=org:2:user:43', body: 'b' })
    await n.inject({ method: 'PUT', url: '/v1/keys/plain', body: 'c' })
    for (const bad of ['a::b', ':a', 'a b', 'a*', 'x'.repeat(257), Array.from({ length: 65 }, (_, i) => `t${i}`).join(',')]) {
      const r = await n.inject({ method: 'PUT', url: `/v1/keys/t?tags=${encodeURIComponent(bad)}`, body: 'v' })
      assert.equal(r.status, 400, bad)
      assert.equal(code(r), 'ERR_INVALID_TAG', bad)
    }
    const inv = await n.inject({ method: 'POST', url: '/v1/invalidate', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tags: ['org:1'] }) })
    assert.deepEqual(json(inv), { invalidated: 1 })
    assert.equal((await n.inject({ method: 'GET', url: '/v1/keys/u42' })).status, 404)
    assert.equal((await n.inject({ method: 'GET', url: '/v1/keys/u43' })).status, 200)
    assert.equal((await n.inject({ method: 'GET', url: '/v1/keys/plain' })).status, 200)
    // Written after the invalidation: valid.
    await n.inject({ method: 'PUT', url: '/v1/keys/u42?tags=org:1:user:42', body: 'a2' })
    assert.equal(bodyText(await n.inject({ method: 'GET', url: '/v1/keys/u42' })), 'a2')
    for (const body of ['{"tags":"org"}', '{"tags":["a::b"]}', '{}', '{"tags":["a"],"mode":"medium"}', '{"tags":["a"],"mode":null}', '[]', 'nope']) {
      const r = await n.inject({ method: 'POST', url: '/v1/invalidate', headers: { 'content-type': 'application/json' }, body })
      assert.equal(r.status, 400, body)
      assert.match(String(code(r)), /^ERR_(BAD_REQUEST|INVALID_TAG)$/, body)
    }
    assert.equal((await n.inject({ method: 'POST', url: '/v1/invalidate', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tags: ['org:2'], mode: 'soft' }) })).status, 200)
    assert.equal((await n.inject({ method: 'GET', url: '/v1/keys/u43' })).status, 404)
  })

  test('mget and mset: order, nulls for misses, base64 values, validation before any write', async () => {
    const { node: n } = await node()
    const ms = await n.inject({
      method: 'POST',
      url: '/v1/mset',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ entries: [{ key: 'a', value: Buffer.from([1, 2]).toString('base64') }, { key: 'b', value: '', ttl: null, tags: ['t:1'] }, { key: 'a', value: 'AA==', ttl: 'none' }] }),
    })
    assert.equal(ms.status, 200)
    const versions = json(ms).versions as number[]
    assert.equal(versions.length, 3)
    assert.ok(versions[2] > versions[0])
    const mg = json(await n.inject({ method: 'POST', url: '/v1/mget', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keys: ['a', 'zz', 'b'] }) }))
    assert.deepEqual(mg, {
      entries: [
        { key: 'a', value: 'AA==', version: versions[2], ttl: null, tags: [] },
        null,
        { key: 'b', value: '', version: versions[1], ttl: null, tags: ['t:1'] },
      ],
    })
    const bad = [
      { entries: [{ key: 'ok', value: 'AA==' }, { key: 'x', value: 'not base64!' }] },
      { entries: [{ key: 'ok', value: 'AA==' }, { key: '', value: 'AA==' }] },
      { entries: [{ key: 'ok', value: 'AA==' }, { key: 'x', value: 'AA==', ttl: 0 }] },
      { entries: [{ key: 'ok', value: 'AA==' }, { key: 'x', value: 'AA==', extra: 1 }] },
      { entries: [{ key: 'ok', value: 'AA==' }, 'x'] },
      { entries: {} },
      // Unknown top-level fields are refused, as unknown entry fields are (a typo must not pass unnoticed).
      { entries: [{ key: 'ok', value: 'AA==' }], ack: 'all' },
    ]
    for (const b of bad) {
      const r = await n.inject({ method: 'POST', url: '/v1/mset', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) })
      assert.equal(r.status, 400, JSON.stringify(b))
    }
    assert.equal((await n.inject({ method: 'GET', url: '/v1/keys/ok' })).status, 404, 'a refused mset wrote nothing')
    for (const b of ['{"keys":"a"}', '{"keys":[1]}', '{"keys":[""]}', '{', '{"keys":["a"],"key":"b"}']) assert.equal((await n.inject({ method: 'POST', url: '/v1/mget', headers: { 'content-type': 'application/json' }, body: b })).status, 400, b)
    const typo = await n.inject({ method: 'POST', url: '/v1/invalidate', headers: { 'content-type': 'application/json' }, body: '{"tags":["t:1"],"mdoe":"soft"}' })
    assert.equal(typo.status, 400)
    assert.equal(json(typo).code, 'ERR_BAD_REQUEST')
    assert.match(String(json(typo).message), /mdoe/)
  })

  test('clear is guarded by X-Confirm', async () => {
    const { node: n } = await node()
    await n.inject({ method: 'PUT', url: '/v1/keys/a', body: 'v' })
    const refused = await n.inject({ method: 'DELETE', url: '/v1/keys' })
    assert.equal(refused.status, 400)
    assert.equal(code(refused), 'ERR_BAD_REQUEST')
    assert.equal((await n.inject({ method: 'GET', url: '/v1/keys/a' })).status, 200)
    assert.deepEqual(json(await n.inject({ method: 'DELETE', url: '/v1/keys', headers: { 'x-confirm': 'clear-all' } })), { cleared: true })
    assert.equal((await n.inject({ method: 'GET', url: '/v1/keys/a' })).status, 404)
  })

  test('clear by prefix removes exactly the keys under it, from memory and store', async () => {
    const clock = new ManualClock()
    const store = memoryStore({ clock })
    const { node: n } = await node({ clock, store: survivingStore(store) })
    for (const k of ['app:1', 'app:2', 'apple', 'other', 'ap']) await n.inject({ method: 'PUT', url: `/v1/keys/${encodeURIComponent(k)}`, body: k })
    assert.equal((await n.inject({ method: 'DELETE', url: '/v1/keys?prefix=app%3A' })).status, 400, 'guarded like a full clear')
    const cleared = await n.inject({ method: 'DELETE', url: '/v1/keys?prefix=app%3A', headers: { 'x-confirm': 'clear-all' } })
    assert.deepEqual(json(cleared), { cleared: true })
    const live = async (k: string): Promise<number> => (await n.inject({ method: 'GET', url: `/v1/keys/${encodeURIComponent(k)}` })).status
    assert.equal(await live('app:1'), 404)
    assert.equal(await live('app:2'), 404)
    assert.equal(await live('apple'), 200)
    assert.equal(await live('other'), 200)
    assert.equal(await live('ap'), 200)
    assert.equal((json(await n.inject({ method: 'POST', url: '/v1/mget', headers: { 'content-type': 'application/json' }, body: '{"keys":["app:1","apple"]}' })).entries as unknown[])[0], null)
    assert.equal((await n.inject({ method: 'PUT', url: '/v1/keys/app%3A1', body: 'v', headers: { 'if-match': '*' } })).status, 412, 'a cleared key does not match *')
    // Written after the clear: live.
    assert.equal((await n.inject({ method: 'PUT', url: '/v1/keys/app%3A3', body: 'new' })).status, 200)
    assert.equal(await live('app:3'), 200)
    await n.close()
    // And from the store after a restart.
    const { node: again } = await node({ clock, store: survivingStore(store) })
    const after = async (k: string): Promise<number> => (await again.inject({ method: 'GET', url: `/v1/keys/${encodeURIComponent(k)}` })).status
    assert.deepEqual(await Promise.all(['app:1', 'app:2', 'app:3', 'apple', 'other'].map(after)), [404, 404, 200, 200, 200])
    assert.equal(code(await again.inject({ method: 'DELETE', url: `/v1/keys?prefix=${'p'.repeat(1025)}`, headers: { 'x-confirm': 'clear-all' } })), 'ERR_TOO_LARGE')
  })

  test('Zerocache routes share the keyspace; /ping', async () => {
    const { node: n } = await node()
    const put = await n.inject({ method: 'PUT', url: '/london/foo?expiry=42', body: 'bar' })
    assert.equal(put.status, 200)
    assert.equal(bodyText(put), 'OK')
    assert.equal(bodyText(await n.inject({ method: 'GET', url: '/london/foo' })), 'bar')
    const v1 = await n.inject({ method: 'GET', url: '/v1/keys/london%2Ffoo' })
    assert.equal(bodyText(v1), 'bar')
    assert.equal(v1.headers['x-ttl'], '42')
    assert.equal(code(await n.inject({ method: 'PUT', url: '/london/foo?expiry=0', body: 'x' })), 'ERR_INVALID_OPTIONS')
    assert.equal(code(await n.inject({ method: 'PUT', url: '/london/foo?ttl=5', body: 'x' })), 'ERR_BAD_REQUEST')
    assert.equal(bodyText(await n.inject({ method: 'DELETE', url: '/london/foo' })), 'OK')
    assert.equal(code(await n.inject({ method: 'GET', url: '/london/foo' })), 'ERR_NOT_FOUND')
    assert.equal(bodyText(await n.inject({ method: 'GET', url: '/ping' })), 'pong')
    assert.equal(code(await n.inject({ method: 'GET', url: '/a/b/c' })), 'ERR_NOT_FOUND')
  })

  test('Zerocache PUT / DELETE honour If-Match as the v1 routes do (it was ignored: a conditional write overwrote)', async () => {
    const { node: n } = await node()
    const put = await n.inject({ method: 'PUT', url: '/london/cond', body: 'one' })
    const etag = put.headers.etag!
    assert.match(etag, /^"\d+"$/)
    const stale = await n.inject({ method: 'PUT', url: '/london/cond', body: 'two', headers: { 'if-match': '"1"' } })
    assert.equal(stale.status, 412)
    assert.equal(code(stale), 'ERR_PRECONDITION_FAILED')
    assert.equal(bodyText(await n.inject({ method: 'GET', url: '/london/cond' })), 'one')
    assert.equal(code(await n.inject({ method: 'PUT', url: '/london/absent', body: 'x', headers: { 'if-match': '*' } })), 'ERR_PRECONDITION_FAILED')
    assert.equal(code(await n.inject({ method: 'PUT', url: '/london/cond', body: 'x', headers: { 'if-match': 'nonsense' } })), 'ERR_BAD_REQUEST')
    assert.equal(code(await n.inject({ method: 'DELETE', url: '/london/cond', headers: { 'if-match': '"1"' } })), 'ERR_PRECONDITION_FAILED')
    assert.equal(bodyText(await n.inject({ method: 'GET', url: '/london/cond' })), 'one')
    const ok = await n.inject({ method: 'PUT', url: '/london/cond', body: 'two', headers: { 'if-match': etag } })
    assert.equal(ok.status, 200)
    assert.equal(bodyText(ok), 'OK')
    assert.equal(bodyText(await n.inject({ method: 'DELETE', url: '/london/cond', headers: { 'if-match': ok.headers.etag! } })), 'OK')
    assert.equal(code(await n.inject({ method: 'GET', url: '/london/cond' })), 'ERR_NOT_FOUND')
  })

  test('unknown routes 404, wrong methods 405 with Allow, unknown query parameters 400', async () => {
    const { node: n } = await node()
    assert.equal(code(await n.inject({ method: 'GET', url: '/v2/keys/a' })), 'ERR_NOT_FOUND')
    assert.equal(code(await n.inject({ method: 'GET', url: '/v1/nothing' })), 'ERR_NOT_FOUND')
    const m = await n.inject({ method: 'PATCH', url: '/v1/keys/a' })
    assert.equal(m.status, 405)
    assert.equal(m.headers.allow, 'GET, PUT, DELETE')
    assert.equal((await n.inject({ method: 'GET', url: '/v1/mget' })).status, 405)
    assert.equal(code(await n.inject({ method: 'PUT', url: '/v1/keys/a?ttl=5&ttl=6', body: 'v' })), 'ERR_BAD_REQUEST')
    assert.equal(code(await n.inject({ method: 'PUT', url: '/v1/keys/a?color=red', body: 'v' })), 'ERR_BAD_REQUEST')
    assert.equal(code(await n.inject({ method: 'GET', url: '/v1/keys/a?ttl=5' })), 'ERR_BAD_REQUEST')
  })

  test('healthz, readyz, stats and metrics', async () => {
    const { node: n } = await node()
    assert.equal(bodyText(await n.inject({ method: 'GET', url: '/healthz' })), 'ok')
    assert.equal(bodyText(await n.inject({ method: 'GET', url: '/readyz' })), 'ready')
    await n.inject({ method: 'PUT', url: '/v1/keys/a', body: 'v' })
    await n.inject({ method: 'GET', url: '/v1/keys/a' })
    const stats = json(await n.inject({ method: 'GET', url: '/v1/stats' })) as { node: { ready: boolean }; cache: { hits: number; size: number }; store: string; requests: { total: number } }
    assert.equal(stats.node.ready, true)
    assert.equal(stats.cache.hits, 1)
    assert.equal(stats.cache.size, 1)
    assert.equal(stats.store, 'memory')
    assert.ok(stats.requests.total >= 5)
    const metrics = await n.inject({ method: 'GET', url: '/metrics' })
    assert.equal(metrics.status, 200)
    assert.match(String(metrics.headers['content-type']), /text\/plain/)
    assert.match(bodyText(metrics), /^stratacache_hits_total\{cache="node"\} 1$/m)
    assert.match(bodyText(metrics), /^stratacache_node_requests_total \d+$/m)
    assert.match(bodyText(metrics), /^stratacache_node_in_flight 1$/m)
  })

  test('bearer auth: timing-safe check, probes exempt', async () => {
    const { node: n } = await node({ authToken: 's3cret-token' })
    for (const auth of [undefined, 'Bearer wrong', 'Bearer s3cret-toke', 'Basic s3cret-token', 'Bearer s3cret-token2', 'Bearers3cret-token']) {
      const r = await n.inject({ method: 'GET', url: '/v1/keys/a', headers: auth === undefined ? {} : { authorization: auth } })
      assert.equal(r.status, 401, String(auth))
      assert.equal(code(r), 'ERR_UNAUTHORIZED')
      assert.equal(r.headers['www-authenticate'], 'Bearer')
    }
    assert.equal((await n.inject({ method: 'GET', url: '/metrics' })).status, 401)
    const ok = await n.inject({ method: 'PUT', url: '/v1/keys/a', body: 'v', headers: { authorization: 'Bearer s3cret-token' } })
    assert.equal(ok.status, 200)
    // The scheme is case-insensitive (RFC 7235 §2.1); the token is not.
    assert.equal((await n.inject({ method: 'GET', url: '/v1/keys/a', headers: { authorization: 'bearer s3cret-token' } })).status, 200)
    for (const probe of ['/healthz', '/readyz', '/ping']) assert.equal((await n.inject({ method: 'GET', url: probe })).status, 200, probe)
    assert.equal((json(await n.inject({ method: 'GET', url: '/v1/stats', headers: { authorization: 'Bearer s3cret-token' } })) as { requests: { unauthorized: number } }).requests.unauthorized, 7)
  })

  test('per-client token bucket: 429 with Retry-After, refills with time, per address', async () => {
    const { node: n, clock } = await node({ rateLimit: 2, rateBurst: 3 })
    const get = (ip: string): Promise<ApiResponse> => n.inject({ method: 'GET', url: '/v1/keys/x', remoteAddress: ip })
    for (let i = 0; i < 3; i++) assert.equal((await get('10.0.0.1')).status, 404)
    const limited = await get('10.0.0.1')
    assert.equal(limited.status, 429)
    assert.equal(code(limited), 'ERR_RATE_LIMITED')
    assert.equal(limited.headers['retry-after'], '1')
    assert.equal((await get('10.0.0.2')).status, 404, 'another client has its own bucket')
    assert.equal((await n.inject({ method: 'GET', url: '/healthz', remoteAddress: '10.0.0.1' })).status, 200, 'probes are not limited')
    clock.advance(500)
    assert.equal((await get('10.0.0.1')).status, 404, 'one token after 0.5 s at 2/s')
    assert.equal((await get('10.0.0.1')).status, 429)
  })

  test('concurrency bound: past maxInFlight, 503 ERR_BUSY with Retry-After at once', async () => {
    const clock = new ManualClock()
    const inner = memoryStore({ clock })
    let unblock!: () => void
    const gate = new Promise<void>((resolve) => {
      unblock = resolve
    })
    // A store whose reads wait for the gate: requests stay in flight.
    const blocking: Store = { ...survivingStore(inner), get: async (k) => (k.startsWith('node:') && (await gate), inner.get(k)) }
    const { node: n } = await node({ clock, store: blocking, maxInFlight: 4 })
    const held = Array.from({ length: 4 }, (_, i) => n.inject({ method: 'GET', url: `/v1/keys/k${i}` }))
    await new Promise((r) => setImmediate(r))
    const busy = await n.inject({ method: 'GET', url: '/v1/keys/other' })
    assert.equal(busy.status, 503)
    assert.equal(code(busy), 'ERR_BUSY')
    assert.equal(busy.headers['retry-after'], '1')
    assert.equal((await n.inject({ method: 'GET', url: '/healthz' })).status, 200, 'probes are not bounded')
    unblock()
    for (const r of await Promise.all(held)) assert.equal(r.status, 404)
    assert.equal((await n.inject({ method: 'GET', url: '/v1/keys/other' })).status, 404, 'admitted again once the bound frees')
  })

  test('a delete is kept as a tombstone for tombstoneTtl (not counted as an entry), then forgotten', async () => {
    const clock = new ManualClock()
    const store = memoryStore({ clock })
    const { node: n } = await node({ clock, store, tombstoneTtl: '1h' })
    assert.equal((await n.inject({ method: 'PUT', url: '/v1/keys/k', body: 'v' })).status, 200)
    assert.equal((await n.inject({ method: 'DELETE', url: '/v1/keys/k' })).status, 200)
    assert.notEqual(await store.get('tomb:k'), undefined)
    assert.equal(n.stats().cache.size, 0)
    clock.advance(3600_000 - 1)
    assert.notEqual(await store.get('tomb:k'), undefined, 'kept within the grace')
    clock.advance(1)
    assert.equal(await store.get('tomb:k'), undefined, 'forgotten at the end of the grace')
  })

  test('restart on the same store: data, TTL, tags, invalidations and versions survive', async () => {
    const clock = new ManualClock()
    const store = memoryStore({ clock })
    const first = await startNode({ port: 0, clock, store: survivingStore(store), logger: quietLogger() })
    const v1 = json(await first.inject({ method: 'PUT', url: '/v1/keys/keep?ttl=100&tags=team:a', body: 'kept' })).version as number
    await first.inject({ method: 'PUT', url: '/v1/keys/gone?tags=team:b', body: 'x' })
    await first.inject({ method: 'POST', url: '/v1/invalidate', headers: { 'content-type': 'application/json' }, body: '{"tags":["team:b"]}' })
    await first.close()
    clock.advance(40_000)
    const { node: second } = await node({ clock, store: survivingStore(store) })
    const got = await second.inject({ method: 'GET', url: '/v1/keys/keep' })
    assert.equal(bodyText(got), 'kept')
    assert.equal(got.headers.etag, `"${v1}"`)
    assert.equal(got.headers['x-ttl'], '60')
    assert.equal(got.headers['x-tags'], 'team:a')
    assert.equal((await second.inject({ method: 'GET', url: '/v1/keys/gone' })).status, 404, 'an invalidation survives the restart')
    // Even with the clock stepped back, versions keep increasing.
    const back = new ManualClock(clock.now() - 3_600_000)
    await second.close()
    const { node: third } = await node({ clock: back, store: survivingStore(store) })
    const v2 = json(await third.inject({ method: 'PUT', url: '/v1/keys/keep', body: 'newer' })).version as number
    assert.ok(v2 > v1, `${v2} > ${v1}`)
  })

  test('inject with a request that is not { method, url, headers?, body? } is ERR_INVALID_OPTIONS naming request, not a TypeError', async () => {
    const { node: n } = await node()
    for (const bad of [null, 5, {}, { method: 'GET' }, { url: '/healthz' }, { method: 1, url: '/healthz' }, { method: 'GET', url: '/healthz', headers: 'x' }, { method: 'PUT', url: '/v1/keys/a', body: 5 }]) {
      await assert.rejects(n.inject(bad as never), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === 'request', JSON.stringify(bad))
    }
    assert.equal((await n.inject({ method: 'GET', url: '/healthz' })).status, 200)
  })

  test('bad options are refused with ERR_INVALID_OPTIONS naming the option', async () => {
    for (const [options, name] of [
      [{ port: 70000 }, 'port'],
      [{ maxInFlight: 0 }, 'maxInFlight'],
      [{ rateLimit: -1 }, 'rateLimit'],
      [{ memory: 'lots' }, 'memory'],
      [{ drainTimeout: '0s' }, 'drainTimeout'],
      [{ tlsCert: '/x.pem' }, 'tlsKey'],
      [{ logLevel: 'loud' }, 'logLevel'],
      [{ authToken: '' }, 'authToken'],
      // A token no client can send in a header (control or non-ASCII characters), or that the HTTP parser trims off (edge spaces): every request would be 401.
      [{ authToken: 'tok\u0000en' }, 'authToken'],
      [{ authToken: 't\u00f8ken' }, 'authToken'],
      [{ authToken: 'token ' }, 'authToken'],
      [{ tombstoneTtl: '0s' }, 'tombstoneTtl'],
      // Past Node's longest timer: node:http's raw RangeError ERR_OUT_OF_RANGE at start (keepAliveTimeout,
      // requestTimeout past 2^53), or a timer silently cut to ~24.8 days.
      [{ keepAliveTimeout: 1e20 }, 'keepAliveTimeout'],
      [{ requestTimeout: 1e20 }, 'requestTimeout'],
      [{ headersTimeout: '30d' }, 'headersTimeout'],
      // A name the node does not know was ignored (prot: 7701 served on 7700, maxInflight left the default bound).
      [{ prot: 7701 }, 'prot'],
      [{ maxInflight: 5 }, 'maxInflight'],
      [{ cluster_secret: 'x'.repeat(32) }, 'cluster_secret'],
    ] as const) {
      await assert.rejects(
        startNode({ ...(options as NodeOptions), store: memoryStore(), logger: quietLogger() }),
        (err: unknown) => (err as { code?: string; option?: string }).code === 'ERR_INVALID_OPTIONS' && (err as { option?: string }).option === name,
        name,
      )
    }
  })

  test('graceful close: readyz 503 while draining, new requests 503, in-flight finish', async () => {
    const clock = new ManualClock()
    const inner = memoryStore({ clock })
    let unblock!: () => void
    const gate = new Promise<void>((resolve) => {
      unblock = resolve
    })
    const blocking: Store = { ...survivingStore(inner), set: async (k, v, t) => (await gate, inner.set(k, v, t)) }
    const logs: Logged[] = []
    const n = await startNode({ port: 0, clock, store: blocking, logger: quietLogger(logs) })
    const inflight = n.inject({ method: 'PUT', url: '/v1/keys/slow', body: 'v' })
    await new Promise((r) => setImmediate(r))
    const closing = n.close()
    await new Promise((r) => setImmediate(r))
    assert.equal((await n.inject({ method: 'GET', url: '/readyz' })).status, 503)
    assert.equal(code(await n.inject({ method: 'GET', url: '/v1/keys/slow' })), 'ERR_BUSY')
    unblock()
    assert.equal((await inflight).status, 200, 'the in-flight write completes')
    await closing
    assert.equal(await inner.get('node:slow') !== undefined, true, 'the acknowledged write is in the store')
    assert.deepEqual(
      logs.map((l) => l.message),
      ['started', 'draining', 'stopped'],
    )
  })
})
