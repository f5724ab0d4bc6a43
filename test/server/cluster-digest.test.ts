// GET /v1/cluster/digest on in-process nodes: 3 clustered nodes (2 regions) with an auth
// token; after puts (one expiring), a delete, a prefix clear and a tag invalidation, every
// node answers the same root, count and meta (within a bound), ranges at depth 5 add up to
// the count; the route needs the token, takes GET only and depth 0..5; a solo node answers
// 404 (no replicas to compare).
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import type { NodeHandle } from '../../src/server/index.js'
import { FAST_CLUSTER_OPTIONS } from '../support/cluster-process.js'
import { waitUntil } from '../support/server-process.js'
import { errorCode, nodeTestbed, send } from '../support/node-fixtures.js'

const bed = nodeTestbed()
after(() => bed.close())

const SECRET = 'a-cluster-secret-of-32-bytes-xyz'
const AUTH = { authorization: 'Bearer tok' }
/** Everything written at ack=all is on every node when answered; the expiring record's state is the same everywhere at once. */
const BOUND_MS = 3000

interface DigestAnswer {
  self: string
  digest: string
  count: number
  meta: string
  depth: number
  ranges: Array<{ index: number; digest: string; count: number }>
}

async function digest(node: NodeHandle, depth?: number): Promise<DigestAnswer> {
  const r = await send(node.url, 'GET', `/v1/cluster/digest${depth === undefined ? '' : `?depth=${depth}`}`, undefined, AUTH)
  assert.equal(r.status, 200, r.body.toString())
  return JSON.parse(r.body.toString()) as DigestAnswer
}

describe('GET /v1/cluster/digest', () => {
  test('converged replicas answer equal digests (expired records and tombstones included); token, method and depth checked', async () => {
    const dirs = [bed.dir(), bed.dir(), bed.dir()]
    const base = { ...FAST_CLUSTER_OPTIONS, clusterSecret: SECRET, authToken: 'tok' }
    const a = await bed.start({ ...base, dataDir: dirs[0].path, region: 'london', nodeId: 'a1' })
    const b = await bed.start({ ...base, dataDir: dirs[1].path, region: 'london', nodeId: 'a2', seeds: `127.0.0.1:${a.port}` })
    const c = await bed.start({ ...base, dataDir: dirs[2].path, region: 'paris', nodeId: 'b1', seeds: `127.0.0.1:${a.port}` })
    const nodes = [a, b, c]
    await waitUntil(async () => {
      for (const n of nodes) {
        const v = JSON.parse((await send(n.url, 'GET', '/v1/cluster', undefined, AUTH)).body.toString()) as { regions: Array<{ members: Array<{ status: string }> }> }
        if (v.regions.flatMap((g) => g.members).filter((m) => m.status === 'alive').length !== 3) return false
      }
      return true
    }, 10_000, () => 'all 3 alive', 50)

    const empty = await digest(a)
    assert.deepEqual({ ...empty, self: '' }, { self: '', digest: '0000000000000000', count: 0, meta: '0000000000000000', depth: 0, ranges: [] })
    for (let i = 0; i < 20; i++) assert.equal((await send(nodes[i % 3]!.url, 'PUT', `/v1/keys/k${i}?ack=all`, `v${i}`, AUTH)).status, 200)
    assert.equal((await send(b.url, 'PUT', '/v1/keys/short?ack=all&ttl=1', 'x', AUTH)).status, 200)
    assert.equal((await send(c.url, 'DELETE', '/v1/keys/k3?ack=all', undefined, AUTH)).status, 200)
    assert.equal((await send(a.url, 'PUT', '/v1/keys/p%3A1?ack=all&tags=red', 'x', AUTH)).status, 200)
    assert.equal((await send(c.url, 'DELETE', '/v1/keys?prefix=p%3A&ack=all', undefined, { ...AUTH, 'x-confirm': 'clear-all' })).status, 200)
    assert.equal((await send(b.url, 'POST', '/v1/invalidate?ack=all', JSON.stringify({ tags: ['red'] }), { ...AUTH, 'content-type': 'application/json' })).status, 200)
    // Past the expiry of `short`: it counts as the tombstone of its version on every node.
    await new Promise((r) => setTimeout(r, 1100))
    let last: DigestAnswer[] = []
    await waitUntil(async () => {
      last = await Promise.all(nodes.map((n) => digest(n)))
      return last.every((d) => d.digest === last[0]!.digest && d.count === last[0]!.count && d.meta === last[0]!.meta)
    }, BOUND_MS, () => `digests differ: ${JSON.stringify(last)}`, 50)
    assert.deepEqual(last.map((d) => d.self), ['a1', 'a2', 'b1'])
    assert.equal(last[0]!.count, 21, '20 puts and short; k3 is a tombstone; the cleared p:1 is gone')
    assert.notEqual(last[0]!.meta, empty.meta, 'the prefix tombstone and the invalidation')
    const deep = await digest(c, 5)
    assert.equal(deep.depth, 5)
    assert.equal(deep.digest, last[0]!.digest)
    assert.equal(deep.ranges.reduce((n, r) => n + r.count, 0), 21)
    assert.deepEqual((await digest(a, 5)).ranges, deep.ranges)

    // Admission and validation.
    const noToken = await send(a.url, 'GET', '/v1/cluster/digest')
    assert.equal(noToken.status, 401)
    const post = await send(a.url, 'POST', '/v1/cluster/digest', '', AUTH)
    assert.equal(post.status, 405)
    assert.equal(post.headers.allow, 'GET')
    for (const bad of ['6', '-1', 'x', '1.5']) {
      const r = await send(a.url, 'GET', `/v1/cluster/digest?depth=${bad}`, undefined, AUTH)
      assert.equal(r.status, 400, bad)
      assert.equal(errorCode(r.body), 'ERR_BAD_REQUEST')
    }
    // Unknown or repeated query parameters are refused, as on every route (node guide: strict validation).
    for (const path of ['/v1/cluster/digest?depth=1&x=1', '/v1/cluster/digest?depth=1&depth=2', '/v1/cluster?x=1', '/v1/cluster/state?x=1']) {
      const r = await send(a.url, 'GET', path, undefined, AUTH)
      assert.equal(r.status, 400, path)
      assert.equal(errorCode(r.body), 'ERR_BAD_REQUEST', path)
    }
  })

  test('a solo node answers 404: it has no replicas to compare', async () => {
    const solo = await bed.start({})
    const r = await send(solo.url, 'GET', '/v1/cluster/digest')
    assert.equal(r.status, 404)
    assert.equal(errorCode(r.body), 'ERR_NOT_FOUND')
  })
})
