// client.keys / keysAll: the wire (GET /v1/keys), the cursor pinned to the node that answered
// the first page, and local refusals — on a scripted transport (no sockets, ManualClock).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { createClient } from '../../src/client/client.js'
import { isCacheError } from '../../src/core/errors.js'
import { ManualClock } from '../../src/core/manual-clock.js'
import { respond, ScriptedTransport, wireError } from '../support/scripted-transport.js'

/** Two nodes sharing 7 keys; each answers pages of `limit` from its own position cursor `n:<index>`. */
function twoNodes(): ScriptedTransport {
  const keys = ['a:1', 'a:2', 'a:3', 'a:4', 'a:5', 'a:6', 'a:7']
  return new ScriptedTransport(new ManualClock(0), (origin, req) => {
    const url = new URL(req.path, origin)
    if (url.pathname !== '/v1/keys') return respond(404)
    const cursor = url.searchParams.get('cursor')
    if (cursor !== null && !cursor.startsWith(`${origin}|`)) return wireError(400, 'ERR_BAD_REQUEST')
    const from = cursor === null ? 0 : Number(cursor.split('|')[1])
    const limit = Number(url.searchParams.get('limit') ?? '100')
    const page = keys.slice(from, from + limit)
    const next = from + limit < keys.length ? `${origin}|${from + limit}` : null
    return respond(200, { keys: page, cursor: next }, { 'content-type': 'application/json' })
  })
}

describe('client.keys', () => {
  test('sends GET /v1/keys with prefix and limit; every next page goes to the node of the first', async () => {
    const transport = twoNodes()
    const client = createClient({ nodes: ['http://n1:1', 'http://n2:1'], transport, clock: new ManualClock(0) })
    const first = await client.keys({ prefix: 'a:', limit: 3 })
    assert.deepEqual(first.keys, ['a:1', 'a:2', 'a:3'])
    assert.equal(typeof first.cursor, 'string')
    const pinned = transport.requests[0].origin
    const second = await client.keys({ prefix: 'a:', limit: 3, cursor: first.cursor })
    const third = await client.keys({ prefix: 'a:', limit: 3, cursor: second.cursor })
    assert.deepEqual([...second.keys, ...third.keys], ['a:4', 'a:5', 'a:6', 'a:7'])
    assert.equal(third.cursor, undefined)
    assert.deepEqual(transport.requests.map((r) => r.origin), [pinned, pinned, pinned], 'round-robin would have alternated')
    assert.equal(transport.requests[0].path, '/v1/keys?prefix=a%3A&limit=3')
    assert.match(transport.requests[1].path, /^\/v1\/keys\?prefix=a%3A&cursor=[^&]+&limit=3$/)
    assert.equal(transport.requests[0].method, 'GET')
    await client.close()
  })

  test('keysAll iterates every key page by page; no options is a bare GET /v1/keys', async () => {
    const transport = twoNodes()
    const client = createClient({ nodes: ['http://n1:1', 'http://n2:1'], transport, clock: new ManualClock(0) })
    const seen: string[] = []
    for await (const key of client.keysAll({ limit: 2 })) seen.push(key)
    assert.deepEqual(seen, ['a:1', 'a:2', 'a:3', 'a:4', 'a:5', 'a:6', 'a:7'])
    assert.equal(transport.requests.length, 4)
    await client.keys()
    assert.equal(transport.requests.at(-1)!.path, '/v1/keys')
    await client.close()
  })

  test('refused locally: bad limit, a cursor not of ours, a cursor naming another host (the token would go there)', async () => {
    const transport = twoNodes()
    const client = createClient({ nodes: ['http://n1:1'], transport, clock: new ManualClock(0), token: 'secret' })
    const invalid = (e: unknown): boolean => isCacheError(e, 'ERR_INVALID_OPTIONS')
    for (const limit of [0, 1001, 1.5, Number.NaN]) await assert.rejects(client.keys({ limit }), invalid, `limit ${limit}`)
    for (const cursor of ['', 'garbage', Buffer.from('[1,2]').toString('base64url'), Buffer.from('["http://n1:1",""]').toString('base64url')]) {
      await assert.rejects(client.keys({ cursor }), invalid, `cursor ${cursor}`)
    }
    const forged = Buffer.from(JSON.stringify(['http://evil:1', 'x'])).toString('base64url')
    await assert.rejects(client.keys({ cursor: forged }), (e: unknown) => invalid(e) && /not a node of this client/.test((e as Error).message))
    await assert.rejects(client.keys({ prefix: 7 as unknown as string }), invalid)
    assert.equal(transport.requests.length, 0, 'nothing was sent')
    await client.close()
  })

  test('a prefix that is not well-formed Unicode is refused locally by keys, keysAll and clear (a lone surrogate cannot be percent-encoded)', async () => {
    const transport = twoNodes()
    const client = createClient({ nodes: ['http://n1:1'], transport, clock: new ManualClock(0) })
    const invalid = (e: unknown): boolean => isCacheError(e, 'ERR_INVALID_OPTIONS') && /prefix/.test((e as Error).message)
    for (const prefix of ['\uD800', 'a:\uDC00', 'x\uD83D']) {
      // URLSearchParams would send U+FFFD (listing other keys); encodeURIComponent throws a bare URIError.
      await assert.rejects(client.keys({ prefix }), invalid, `keys ${JSON.stringify(prefix)}`)
      await assert.rejects(client.keysAll({ prefix }).next(), invalid, `keysAll ${JSON.stringify(prefix)}`)
      await assert.rejects(client.clear({ prefix }), invalid, `clear ${JSON.stringify(prefix)}`)
    }
    assert.equal(transport.requests.length, 0, 'nothing was sent')
    await client.keys({ prefix: 'a:\uD83D\uDE00' })
    assert.equal(transport.requests[0].path, '/v1/keys?prefix=a%3A%F0%9F%98%80', 'a surrogate pair is fine')
    await client.close()
  })

  test('a malformed answer is ERR_BAD_RESPONSE', async () => {
    const bad = [{ keys: 'x', cursor: null }, { keys: [1], cursor: null }, { keys: ['a', 'b', 'c'], cursor: null }, { keys: [], cursor: '' }, { keys: [] }]
    for (const body of bad) {
      const transport = new ScriptedTransport(new ManualClock(0), () => respond(200, body, { 'content-type': 'application/json' }))
      const client = createClient({ nodes: ['http://n1:1'], transport, clock: new ManualClock(0) })
      await assert.rejects(client.keys({ limit: 2 }), (e: unknown) => isCacheError(e, 'ERR_BAD_RESPONSE'), JSON.stringify(body))
      await client.close()
    }
  })
})
