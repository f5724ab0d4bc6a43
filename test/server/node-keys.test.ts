// GET /v1/keys: a bounded listing of live keys with an opaque cursor — injected (ManualClock)
// and over a real socket (auth as for reads).
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { ManualClock } from '../../src/core/manual-clock.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { startNode, type NodeHandle } from '../../src/server/index.js'
import type { ApiResponse } from '../../src/server/http-api.js'
import { errorCode, send, silentLogger } from '../support/node-fixtures.js'

const open: NodeHandle[] = []
after(async () => {
  for (const n of open) await n.close()
})

async function node(options: { authToken?: string } = {}): Promise<{ node: NodeHandle; clock: ManualClock }> {
  const clock = new ManualClock(1_700_000_000_000)
  const n = await startNode({ host: '127.0.0.1', port: 0, clock, store: memoryStore({ clock }), logger: silentLogger, ...options })
  open.push(n)
  return { node: n, clock }
}

function body(r: ApiResponse): Record<string, unknown> {
  return JSON.parse(typeof r.body === 'string' ? r.body : Buffer.from(r.body).toString('utf8')) as Record<string, unknown>
}

interface Page {
  keys: string[]
  cursor: string | null
}

async function list(n: NodeHandle, query: string): Promise<Page> {
  const r = await n.inject({ method: 'GET', url: `/v1/keys${query === '' ? '' : `?${query}`}` })
  assert.equal(r.status, 200, `GET /v1/keys?${query}: ${String(r.body)}`)
  const b = body(r) as unknown as Page
  assert.ok(Array.isArray(b.keys))
  assert.ok(b.cursor === null || (typeof b.cursor === 'string' && b.cursor !== ''))
  return b
}

/** Every page of a listing; `between` runs after each page that has a next one. */
async function listAll(n: NodeHandle, prefix: string, limit: number, between?: (page: number) => Promise<void>): Promise<string[]> {
  const keys: string[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const q = new URLSearchParams({ prefix, limit: String(limit) })
    if (cursor !== null) q.set('cursor', cursor)
    const page = await list(n, q.toString())
    assert.ok(page.keys.length <= limit, `a page holds at most limit keys (${page.keys.length} > ${limit})`)
    keys.push(...page.keys)
    cursor = page.cursor
    assert.ok(++pages < 1000, 'the listing ends')
    if (cursor !== null) await between?.(pages)
  } while (cursor !== null)
  return keys
}

async function put(n: NodeHandle, key: string, query = 'ttl=none'): Promise<void> {
  const r = await n.inject({ method: 'PUT', url: `/v1/keys/${encodeURIComponent(key)}?${query}`, body: Buffer.from('v') })
  assert.equal(r.status, 200)
}

describe('GET /v1/keys (injected)', () => {
  test('an empty node: no keys, no cursor', async () => {
    const { node: n } = await node()
    assert.deepEqual(await list(n, ''), { keys: [], cursor: null })
    assert.deepEqual(await list(n, 'prefix=a'), { keys: [], cursor: null })
  })

  test('lists the live keys of the prefix only, in key order, in pages of at most limit', async () => {
    const { node: n } = await node()
    const a = Array.from({ length: 250 }, (_, i) => `a:${String(i).padStart(3, '0')}`)
    for (const k of [...a, 'ab', 'b:1', 'a:ü ✓/x', 'x*?']) await put(n, k)
    const expected = [...a, 'a:ü ✓/x'].sort()
    for (const limit of [1, 7, 100, 1000]) assert.deepEqual(await listAll(n, 'a:', limit), expected, `limit ${limit}`)
    assert.deepEqual(await listAll(n, 'x*', 10), ['x*?'], 'no glob: the prefix is literal')
    const first = await list(n, 'prefix=a%3A')
    assert.equal(first.keys.length, 100, 'the default page is 100 keys')
    assert.deepEqual(first.keys, expected.slice(0, 100))
    const all = await list(n, 'limit=1000')
    assert.equal(all.keys.length, 254)
    assert.equal(all.cursor, null)
  })

  test('deleted, expired and tag-invalidated keys are not listed; stable keys all are while others churn between pages', async () => {
    const { node: n, clock } = await node()
    const stable = Array.from({ length: 150 }, (_, i) => `s:${String(i).padStart(3, '0')}`)
    const doomed = Array.from({ length: 60 }, (_, i) => `s:${String(i * 2).padStart(3, '0')}d`)
    const short = Array.from({ length: 40 }, (_, i) => `s:${String(i * 3).padStart(3, '0')}e`)
    for (const k of stable) await put(n, k)
    for (const k of doomed) await put(n, k)
    for (const k of short) await put(n, k, 'ttl=5')
    await put(n, 's:tagged', 'ttl=none&tags=org:1')
    const inv = await n.inject({ method: 'POST', url: '/v1/invalidate', headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ tags: ['org:1'] })) })
    assert.equal(inv.status, 200)
    let born = 0
    const got = await listAll(n, 's:', 9, async (page) => {
      // Between pages: deletes, expiries (the clock passes the short TTLs), new keys, overwrites.
      for (const k of doomed.splice(0, 6)) assert.equal((await n.inject({ method: 'DELETE', url: `/v1/keys/${k}` })).status, 200)
      if (page === 2) clock.advance(6_000)
      await put(n, `s:${String(page * 11).padStart(3, '0')}n${born++}`)
      await put(n, stable[(page * 13) % stable.length])
    })
    const seen = new Set(got)
    assert.equal(seen.size, got.length, 'key order: no key twice')
    for (const k of stable) assert.ok(seen.has(k), `stable key ${k} listed`)
    for (const k of got) assert.ok(k.startsWith('s:'))
    assert.ok(!seen.has('s:tagged'), 'a tag-invalidated key is not live')
    // After the churn, a fresh listing holds exactly what a GET serves.
    const now = await listAll(n, 's:', 50)
    assert.ok(!now.some((k) => k.endsWith('e')), 'expired keys are not listed')
    assert.ok(!now.some((k) => k.endsWith('d')), 'deleted keys are not listed')
    for (const k of now) assert.equal((await n.inject({ method: 'GET', url: `/v1/keys/${encodeURIComponent(k)}` })).status, 200, `${k} is served`)
    assert.equal(now.length, stable.length + born)
  })

  test('a page skips tombstones of a cleared prefix and a cursor survives the deletion of its last key', async () => {
    const { node: n } = await node()
    for (let i = 0; i < 30; i++) await put(n, `c:${String(i).padStart(2, '0')}`)
    const first = await list(n, 'prefix=c%3A&limit=10')
    assert.deepEqual(first.keys, Array.from({ length: 10 }, (_, i) => `c:${String(i).padStart(2, '0')}`))
    assert.equal((await n.inject({ method: 'DELETE', url: '/v1/keys/c%3A09' })).status, 200)
    const q = new URLSearchParams({ prefix: 'c:', limit: '10', cursor: first.cursor! })
    const second = await list(n, q.toString())
    assert.deepEqual(second.keys, Array.from({ length: 10 }, (_, i) => `c:${String(i + 10).padStart(2, '0')}`))
    const cleared = await n.inject({ method: 'DELETE', url: '/v1/keys?prefix=c%3A', headers: { 'x-confirm': 'clear-all' } })
    assert.equal(cleared.status, 200)
    assert.deepEqual(await listAll(n, 'c:', 10), [])
  })

  test('bad parameters: ERR_BAD_REQUEST with a message saying what is wrong', async () => {
    const { node: n } = await node()
    for (let i = 0; i < 5; i++) await put(n, `k${i}`)
    const good = await list(n, 'limit=2')
    assert.ok(good.cursor !== null)
    const bad: [string, RegExp][] = [
      ['limit=0', /limit.*1 to 1000/],
      ['limit=1001', /limit.*1 to 1000/],
      ['limit=-1', /limit/],
      ['limit=1.5', /limit/],
      ['limit=abc', /limit/],
      ['limit=', /limit/],
      ['limit=01', /limit/],
      ['cursor=', /cursor.*empty/],
      ['cursor=not-a-cursor', /cursor/],
      ['cursor=%7B%7D', /cursor/],
      [`cursor=${Buffer.from(JSON.stringify({ p: '', k: '1' })).toString('base64url')}`, /cursor/],
      [`cursor=${Buffer.from(JSON.stringify({ p: '', k: '0:garbage' })).toString('base64url')}`, /cursor/],
      [`prefix=other&cursor=${encodeURIComponent(good.cursor!)}`, /another prefix/],
      ['limit=5&limit=6', /more than once/],
      ['offset=3', /Unknown query parameter/],
    ]
    for (const [query, message] of bad) {
      const r = await n.inject({ method: 'GET', url: `/v1/keys?${query}` })
      assert.equal(r.status, 400, `${query}: ${String(r.body)}`)
      assert.equal(body(r).code, 'ERR_BAD_REQUEST', query)
      assert.match(String(body(r).message), message, query)
    }
    const long = await n.inject({ method: 'GET', url: `/v1/keys?prefix=${'x'.repeat(2000)}` })
    assert.equal(long.status, 413)
    // The key route is untouched; other methods on /v1/keys still answer 405 with Allow.
    assert.equal((await n.inject({ method: 'GET', url: '/v1/keys/k1' })).status, 200)
    const post = await n.inject({ method: 'POST', url: '/v1/keys' })
    assert.equal(post.status, 405)
    assert.equal(post.headers.allow, 'GET, DELETE')
    // Clearing still needs its confirmation; a GET never clears.
    assert.equal((await n.inject({ method: 'DELETE', url: '/v1/keys' })).status, 400)
    assert.equal((await list(n, 'limit=1000')).keys.length, 5)
  })
})

describe('a prefix that is not valid percent-encoded UTF-8', () => {
  test('GET and DELETE /v1/keys refuse it with 400 ERR_INVALID_KEY, as the key route does, and list or clear nothing', async () => {
    const { node: n } = await node()
    // Keys the lenient decoding of a bad prefix would have matched: "%ZZ" read literally, invalid UTF-8 read as U+FFFD.
    for (const key of ['%ZZ:1', '\uFFFD:1', '\uFFFD\uFFFD\uFFFD:1', 'other']) await put(n, key)
    for (const prefix of ['%ZZ', '%E9', '%ED%A0%80', 'a%', '%C3']) {
      const listed = await n.inject({ method: 'GET', url: `/v1/keys?prefix=${prefix}` })
      assert.equal(listed.status, 400, `GET prefix=${prefix}: ${String(listed.body)}`)
      assert.equal(body(listed).code, 'ERR_INVALID_KEY', prefix)
      assert.match(String(body(listed).message), /[Pp]refix.*percent-encoded UTF-8/, prefix)
      const cleared = await n.inject({ method: 'DELETE', url: `/v1/keys?prefix=${prefix}`, headers: { 'x-confirm': 'clear-all' } })
      assert.equal(cleared.status, 400, `DELETE prefix=${prefix}: ${String(cleared.body)}`)
      assert.equal(body(cleared).code, 'ERR_INVALID_KEY', prefix)
    }
    assert.deepEqual((await list(n, '')).keys.sort(), ['%ZZ:1', 'other', '\uFFFD:1', '\uFFFD\uFFFD\uFFFD:1'].sort(), 'nothing was cleared')
    // Well-formed encodings of the same characters still work: %25 is "%", %EF%BF%BD is U+FFFD, + is a space.
    assert.deepEqual((await list(n, 'prefix=%25ZZ')).keys, ['%ZZ:1'])
    assert.deepEqual((await list(n, 'prefix=%EF%BF%BD%3A')).keys, ['\uFFFD:1'])
    const ok = await n.inject({ method: 'DELETE', url: '/v1/keys?prefix=%25ZZ', headers: { 'x-confirm': 'clear-all' } })
    assert.equal(ok.status, 200)
    assert.deepEqual((await list(n, 'prefix=%25')).keys, [])
  })
})

describe('GET /v1/keys (socket)', () => {
  test('same auth as reads; pages follow the cursor over the wire', async () => {
    const { node: n } = await node({ authToken: 'tok-keys' })
    const auth = { authorization: 'Bearer tok-keys' }
    for (let i = 0; i < 25; i++) {
      const r = await send(n.url, 'PUT', `/v1/keys/w%3A${String(i).padStart(2, '0')}`, 'v', auth)
      assert.equal(r.status, 200)
    }
    const denied = await send(n.url, 'GET', '/v1/keys')
    assert.equal(denied.status, 401)
    assert.equal(errorCode(denied.body), 'ERR_UNAUTHORIZED')
    const keys: string[] = []
    let cursor: string | null = null
    do {
      const q = new URLSearchParams({ prefix: 'w:', limit: '10' })
      if (cursor !== null) q.set('cursor', cursor)
      const r = await send(n.url, 'GET', `/v1/keys?${q.toString()}`, undefined, auth)
      assert.equal(r.status, 200)
      assert.match(String(r.headers['content-type']), /application\/json/)
      const page = JSON.parse(r.body.toString('utf8')) as Page
      keys.push(...page.keys)
      cursor = page.cursor
    } while (cursor !== null)
    assert.deepEqual(keys, Array.from({ length: 25 }, (_, i) => `w:${String(i).padStart(2, '0')}`))
    const bad = await send(n.url, 'GET', '/v1/keys?limit=0', undefined, auth)
    assert.equal(bad.status, 400)
    assert.equal(errorCode(bad.body), 'ERR_BAD_REQUEST')
  })
})
