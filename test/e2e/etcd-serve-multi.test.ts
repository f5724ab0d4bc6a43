/**
 * Several `stratacache serve --store etcd://…` nodes on ONE namespace, as real processes in
 * front of a real 3-member etcd cluster (decision 0263): read-modify-write increments with
 * If-Match through different nodes lose nothing (each write is one etcd compare-and-swap);
 * a write acknowledged by node A is read through node B at once (linearizable: no node
 * serves from an in-process tier); a near-cache client on node B sees A's write invalidated
 * (B's /v1/watch publishes what it sees on etcd's watch); a member killed mid-run changes
 * nothing acknowledged (quorum); quorum loss fails closed with a typed error (503), and the
 * nodes serve again once the members are back.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { createClient } from '../../src/client/index.js'
import { startEtcdCluster, waitForLeader, type EtcdCluster } from '../support/etcd-server.js'
import { startChildNode, type ChildNode } from '../support/node-fixture.js'
import { until as untilWithin } from '../support/until.js'

let cluster: EtcdCluster
let nodes: ChildNode[] = []

before(async () => {
  cluster = await startEtcdCluster()
  const url = `etcd://${cluster.members.map((m) => `127.0.0.1:${m.clientPort}`).join(',')}/multi`
  nodes = await Promise.all([0, 1, 2].map(() => startChildNode(['--store', url, '--store-timeout', '3s', '--log-level', 'silent'])))
})
after(async () => {
  await Promise.all(nodes.map((n) => n.stop()))
  await cluster?.stop()
})

const until = (what: string | (() => string), ok: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> => untilWithin(what, ms, ok, 20)

/** One increment through `node`: GET, then PUT value+1 with If-Match; retried on 412. Returns 'ok', or 'unknown' (a 503: the write may or may not have landed). */
async function increment(node: ChildNode, key: string): Promise<'ok' | 'unknown'> {
  for (let attempt = 0; attempt < 500; attempt++) {
    const got = await fetch(`${node.url}/v1/keys/${key}`)
    if (got.status === 503) {
      await got.body?.cancel()
      continue
    }
    assert.equal(got.status, 200)
    const etag = got.headers.get('etag')!
    const n = Number(await got.text())
    const put = await fetch(`${node.url}/v1/keys/${key}`, { method: 'PUT', body: String(n + 1), headers: { 'if-match': etag } })
    await put.body?.cancel()
    if (put.status === 200) return 'ok'
    if (put.status === 503) return 'unknown'
    assert.equal(put.status, 412, `PUT answered ${put.status}`)
  }
  throw new Error('500 conflicts in a row')
}

async function read(node: ChildNode, key: string): Promise<string | undefined> {
  const res = await fetch(`${node.url}/v1/keys/${key}`)
  if (res.status === 404) {
    await res.body?.cancel()
    return undefined
  }
  assert.equal(res.status, 200)
  return res.text()
}

describe('serve --store etcd://: several nodes on one namespace', () => {
  test('a write through one node is read through another at once (no stale in-process tier)', async () => {
    for (let i = 0; i < 30; i++) {
      const writer = nodes[i % 3]!
      const reader = nodes[(i + 1) % 3]!
      const put = await fetch(`${writer.url}/v1/keys/lin`, { method: 'PUT', body: `v${i}` })
      assert.equal(put.status, 200)
      await put.body?.cancel()
      assert.equal(await read(reader, 'lin'), `v${i}`, `write ${i} through node ${i % 3}, read through node ${(i + 1) % 3}`)
    }
    const del = await fetch(`${nodes[2]!.url}/v1/keys/lin`, { method: 'DELETE' })
    await del.body?.cancel()
    assert.equal(await read(nodes[0]!, 'lin'), undefined, 'a delete through C is seen through A')
  })

  test('a near-cache client on node B sees a write through node A invalidated', async () => {
    const a = createClient({ nodes: [nodes[0]!.url] })
    const b = createClient({ nodes: [nodes[1]!.url], nearCache: { maxEntries: 100, ttl: '60s' } })
    try {
      await a.set('near:x', 'one')
      await until('B stream live', () => b.nearCacheStats()!.state === 'live')
      // The invalidation of A's write reaches B's stream through etcd's watch some ms after
      // the write: an entry cached before it arrives is dropped once, then reads hit.
      await until('a near hit on B', async () => {
        assert.equal((await b.get('near:x'))?.value.toString(), 'one')
        return b.nearCacheStats()!.hits >= 1
      })
      const before = b.nearCacheStats()!.invalidations
      await a.set('near:x', 'two')
      await until('the invalidation from node A, through etcd, on node B', () => b.nearCacheStats()!.invalidations > before)
      assert.equal((await b.get('near:x'))?.value.toString(), 'two')
    } finally {
      await b.close()
      await a.close()
    }
  })

  test('concurrent If-Match increments through 3 nodes lose nothing, with an etcd member killed mid-run', async () => {
    const put = await fetch(`${nodes[0]!.url}/v1/keys/counter`, { method: 'PUT', body: '0' })
    await put.body?.cancel()
    const leader = await waitForLeader(cluster)
    const victim = cluster.members.find((m) => m !== leader)!
    let acked = 0
    let unknown = 0
    const workers: Promise<void>[] = []
    let done = 0
    for (let w = 0; w < 9; w++) {
      workers.push(
        (async () => {
          for (let i = 0; i < 6; i++) {
            const outcome = await increment(nodes[w % 3]!, 'counter')
            if (outcome === 'ok') acked++
            else unknown++
            done++
          }
        })(),
      )
    }
    await until('a third of the increments', () => done >= 18, 30_000)
    await victim.kill()
    await Promise.all(workers)
    const final = Number(await read(nodes[2]!, 'counter'))
    assert.equal(acked + unknown, 54)
    assert.ok(final >= acked && final <= acked + unknown, `final ${final}: ${acked} acknowledged, ${unknown} unknown (503)`)
    assert.ok(unknown <= 3, `a follower's death is nearly invisible (${unknown} unknown outcomes)`)
    await victim.restart()
  })

  test('quorum loss fails closed with a typed 503; the nodes serve again once it is back', async () => {
    await waitForLeader(cluster)
    const put = await fetch(`${nodes[0]!.url}/v1/keys/q`, { method: 'PUT', body: 'before' })
    assert.equal(put.status, 200)
    await put.body?.cancel()
    const [m0, m1] = cluster.members
    await m0!.kill()
    await m1!.kill()
    try {
      for (const node of nodes) {
        const w = await fetch(`${node.url}/v1/keys/q`, { method: 'PUT', body: 'during' })
        assert.equal(w.status, 503)
        const body = (await w.json()) as { code: string }
        assert.ok(body.code === 'ERR_STORE_UNAVAILABLE' || body.code === 'ERR_STORE_TIMEOUT', body.code)
        const r = await fetch(`${node.url}/v1/keys/q`)
        assert.equal(r.status, 503, 'a linearizable read without a quorum is refused, never answered stale')
        await r.body?.cancel()
      }
    } finally {
      await m0!.restart()
      await m1!.restart()
    }
    await waitForLeader(cluster)
    await until('writes again', async () => {
      const w = await fetch(`${nodes[1]!.url}/v1/keys/q`, { method: 'PUT', body: 'after' })
      await w.body?.cancel()
      return w.status === 200
    }, 30_000)
    const back = performance.now()
    for (const node of nodes) {
      let last = ''
      await until(() => `reads again through ${node.url} (last answer: ${last})`, async () => {
        const r = await fetch(`${node.url}/v1/keys/q`)
        last = `${r.status} ${await r.text()}`
        return r.status === 200
      }, 30_000)
      assert.equal(await read(node, 'q'), 'after')
    }
    console.log(`# all nodes read again ${Math.round(performance.now() - back)} ms after the first write succeeded`)
  })
})
