// Replication wired into in-process nodes on loopback (decision 0217): 3 nodes in 2
// regions; a PUT at ack=all answers x-stratacache-replicas: 3 and is readable on every
// node at once; at ack=one it is readable everywhere within a stated bound (2 s); deletes,
// clears and invalidations replicate; every answer of a clustered node carries the session
// token, a lone node's none; a GET naming a version the node does not hold answers 409
// ERR_STALE_READ; ack=all with a member stopped (still "alive" in the views) answers 504
// ERR_ACK_TIMEOUT with the replicas that applied. mset and the Zerocache routes take
// ?ack= as well.
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import type { NodeHandle } from '../../src/server/index.js'
import { FAST_CLUSTER_OPTIONS, waitAllAlive } from '../support/cluster-process.js'
import { waitUntil } from '../support/server-process.js'
import { errorCode, nodeTestbed, send } from '../support/node-fixtures.js'
import { createClient } from '../../src/client/client.js'
import { isCacheError } from '../../src/core/errors.js'

const bed = nodeTestbed()
after(() => bed.close())

const SECRET = 'a-cluster-secret-of-32-bytes-xyz'
const JSON_HEADERS = { 'content-type': 'application/json' }


async function readEverywhere(nodes: NodeHandle[], path: string, expected: string | 404, withinMs: number): Promise<void> {
  await waitUntil(
    async () => {
      for (const node of nodes) {
        const r = await send(node.url, 'GET', path)
        if (expected === 404 ? r.status !== 404 : r.status !== 200 || r.body.toString() !== expected) return false
      }
      return true
    },
    withinMs,
    () => `${path} is not ${expected} on every node within ${withinMs} ms`,
    20,
  )
}

describe('replication in the node', () => {
  test('3 nodes, 2 regions: ack levels, replica counts, session tokens, stale reads, deletes, clears, invalidations', async () => {
    const dirs = [bed.dir(), bed.dir(), bed.dir()]
    const a = await bed.start({ ...FAST_CLUSTER_OPTIONS, dataDir: dirs[0].path, clusterSecret: SECRET, region: 'london', nodeId: 'a1' })
    const b = await bed.start({ ...FAST_CLUSTER_OPTIONS, dataDir: dirs[1].path, clusterSecret: SECRET, region: 'london', nodeId: 'b1', seeds: `127.0.0.1:${a.port}` })
    const c = await bed.start({ ...FAST_CLUSTER_OPTIONS, dataDir: dirs[2].path, clusterSecret: SECRET, region: 'paris', nodeId: 'c1', seeds: `127.0.0.1:${a.port}` })
    const nodes = [a, b, c]
    await waitAllAlive(nodes, 3)

    const all = await send(a.url, 'PUT', '/v1/keys/k1?ack=all', 'v1')
    assert.equal(all.status, 200, all.body.toString())
    assert.equal(all.headers['x-stratacache-replicas'], '3')
    const token = Number(all.headers['x-stratacache-token'])
    assert.ok(token > 0, 'the session token')
    for (const n of nodes) assert.equal((await send(n.url, 'GET', '/v1/keys/k1')).body.toString(), 'v1', 'ack=all: readable everywhere at once')

    const region = await send(c.url, 'PUT', '/v1/keys/k2?ack=region&ttl=600', 'v2')
    assert.equal(region.headers['x-stratacache-replicas'], '1', 'c is alone in paris')
    const one = await send(b.url, 'PUT', '/v1/keys/k3', 'v3')
    assert.equal(one.headers['x-stratacache-replicas'], '1')
    await readEverywhere(nodes, '/v1/keys/k3', 'v3', 2000)
    await readEverywhere(nodes, '/v1/keys/k2', 'v2', 2000)
    const ttl = Number((await send(a.url, 'GET', '/v1/keys/k2')).headers['x-ttl'])
    assert.ok(ttl > 590 && ttl <= 600, `the expiry travels with the record (${ttl})`)

    // A token merged: the next write on another node is versioned after it.
    const after1 = await send(c.url, 'PUT', '/v1/keys/k1?ack=all', 'v1b', { 'x-stratacache-token': String(Number(one.headers['x-stratacache-token']) + 1000) })
    assert.ok(Number(String(after1.headers.etag).replace(/"/g, '')) > Number(one.headers['x-stratacache-token']))

    // Session reads: a version the node does not hold yet answers 409; one it holds, 200.
    const stale = await send(a.url, 'GET', '/v1/keys/k1', undefined, { 'x-stratacache-min-version': String(Number.MAX_SAFE_INTEGER - 1) })
    assert.equal(stale.status, 409)
    assert.equal(errorCode(stale.body), 'ERR_STALE_READ')
    const fresh = await send(a.url, 'GET', '/v1/keys/k1', undefined, { 'x-stratacache-min-version': String(after1.headers.etag).replace(/"/g, '') })
    assert.equal(fresh.status, 200)

    assert.equal((await send(b.url, 'DELETE', '/v1/keys/k3?ack=all')).headers['x-stratacache-replicas'], '3')
    for (const n of nodes) assert.equal((await send(n.url, 'GET', '/v1/keys/k3')).status, 404)
    await send(a.url, 'PUT', '/v1/keys/p%3A1?ack=all', 'x')
    await send(a.url, 'PUT', '/v1/keys/t1?ack=all&tags=red', 'x')
    assert.equal((await send(c.url, 'DELETE', '/v1/keys?prefix=p%3A&ack=all', undefined, { 'x-confirm': 'clear-all' })).status, 200)
    assert.equal((await send(b.url, 'POST', '/v1/invalidate?ack=all', JSON.stringify({ tags: ['red'] }), JSON_HEADERS)).status, 200)
    for (const n of nodes) {
      assert.equal((await send(n.url, 'GET', '/v1/keys/p%3A1')).status, 404)
      assert.equal((await send(n.url, 'GET', '/v1/keys/t1')).status, 404)
    }
    assert.equal((await send(a.url, 'PUT', '/v1/keys/x?ack=most', 'x')).status, 400)
    const metrics = (await send(b.url, 'GET', '/metrics')).body.toString()
    for (const name of ['stratacache_replication_lag_ms_bucket{peer="a1",le="+Inf"}', 'stratacache_replication_lag_ms_count{peer="c1"}', 'stratacache_replication_hints_queued ', 'stratacache_replication_anti_entropy_rounds_total', 'stratacache_replication_ranges_repaired_total', 'stratacache_replication_records_repaired_total', 'stratacache_replication_tombstones ', 'stratacache_replication_writes_total']) {
      assert.ok(metrics.includes(name), `metrics show ${name}`)
    }
    assert.match(metrics, /# TYPE stratacache_replication_lag_ms histogram/)

    // The client's ack option is sent as ?ack=.
    const client = createClient({ nodes: [a.url] })
    try {
      await client.set('from-client', 'cv', { ack: 'all' })
      for (const n of nodes) assert.equal((await send(n.url, 'GET', '/v1/keys/from-client')).body.toString(), 'cv')
      assert.equal(await client.delete('from-client', { ack: 'all' }), true)
      for (const n of nodes) assert.equal((await send(n.url, 'GET', '/v1/keys/from-client')).status, 404)
      await assert.rejects(client.set('x', 'y', { ack: 'most' as never }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
      const versions = await client.mset([{ key: 'cm1', value: 'm1' }, { key: 'cm2', value: 'm2', ttl: '10m' }], { ack: 'all' })
      assert.equal(versions.length, 2)
      for (const n of nodes) assert.equal((await send(n.url, 'GET', '/v1/keys/cm2')).body.toString(), 'm2', 'client mset at ack=all: on every node at once')
      await assert.rejects(client.mset([{ key: 'x', value: 'y' }], { ack: 'most' as never }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    } finally {
      await client.close()
    }

    // mset and the Zerocache routes take ?ack= too; the batch reports the fewest replicas of its entries.
    const mset = await send(b.url, 'POST', '/v1/mset?ack=all', JSON.stringify({ entries: [{ key: 'm1', value: Buffer.from('a').toString('base64') }, { key: 'm2', value: Buffer.from('b').toString('base64'), tags: ['blue'] }] }), JSON_HEADERS)
    assert.equal(mset.status, 200, mset.body.toString())
    assert.equal(mset.headers['x-stratacache-replicas'], '3')
    for (const n of nodes) {
      assert.equal((await send(n.url, 'GET', '/v1/keys/m1')).body.toString(), 'a', 'mset at ack=all: on every node at once')
      assert.equal((await send(n.url, 'GET', '/v1/keys/m2')).body.toString(), 'b')
    }
    assert.equal((await send(a.url, 'POST', '/v1/mset?ack=most', JSON.stringify({ entries: [] }), JSON_HEADERS)).status, 400)
    const zput = await send(c.url, 'PUT', '/london/zk?expiry=600&ack=all', 'zv')
    assert.equal(zput.status, 200, zput.body.toString())
    assert.equal(zput.headers['x-stratacache-replicas'], '3')
    for (const n of nodes) assert.equal((await send(n.url, 'GET', '/london/zk')).body.toString(), 'zv', 'Zerocache PUT at ack=all: on every node at once')
    const zdel = await send(a.url, 'DELETE', '/london/zk?ack=all')
    assert.equal(zdel.status, 200)
    assert.equal(zdel.headers['x-stratacache-replicas'], '3')
    for (const n of nodes) assert.equal((await send(n.url, 'GET', '/london/zk')).status, 404)
    assert.equal((await send(a.url, 'PUT', '/london/zk?ack=most', 'x')).status, 400)

    // ack=all with c stopped hard (its view entry still alive for a moment): 504 with what applied.
    await c.close()
    const timedOut = await send(a.url, 'PUT', '/v1/keys/k4?ack=all', 'v4')
    if (timedOut.status === 504) {
      assert.equal(errorCode(timedOut.body), 'ERR_ACK_TIMEOUT')
      assert.equal(timedOut.headers['x-stratacache-replicas'], '2')
    } else {
      // The leave was seen first: c is no longer required.
      assert.equal(timedOut.status, 200)
      assert.equal(timedOut.headers['x-stratacache-replicas'], '2')
    }
    assert.equal((await send(b.url, 'GET', '/v1/keys/k4')).body.toString(), 'v4')
    const msetTimedOut = await send(a.url, 'POST', '/v1/mset?ack=all', JSON.stringify({ entries: [{ key: 'm3', value: Buffer.from('c').toString('base64') }, { key: 'm4', value: Buffer.from('d').toString('base64') }] }), JSON_HEADERS)
    if (msetTimedOut.status === 504) assert.equal(errorCode(msetTimedOut.body), 'ERR_ACK_TIMEOUT')
    else assert.equal(msetTimedOut.status, 200, msetTimedOut.body.toString())
    assert.equal(msetTimedOut.headers['x-stratacache-replicas'], '2')
    assert.equal((await send(b.url, 'GET', '/v1/keys/m4')).body.toString(), 'd', 'a batch that missed its ack level is committed and converges')
  })

  test('a lone node sends no session token and accepts ?ack= trivially', async () => {
    const node = await bed.start({})
    const r = await send(node.url, 'PUT', '/v1/keys/a?ack=all', 'x')
    assert.equal(r.status, 200)
    assert.equal(r.headers['x-stratacache-token'], undefined)
    assert.equal(r.headers['x-stratacache-replicas'], undefined)
    assert.equal((await send(node.url, 'GET', '/v1/keys/a')).headers['x-stratacache-token'], undefined)
    const mset = await send(node.url, 'POST', '/v1/mset?ack=all', JSON.stringify({ entries: [{ key: 'b', value: Buffer.from('y').toString('base64') }] }), JSON_HEADERS)
    assert.equal(mset.status, 200, mset.body.toString())
    assert.equal(mset.headers['x-stratacache-replicas'], undefined, 'a lone node sends no replica count for mset either')
  })
})
