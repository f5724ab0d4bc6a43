/**
 * Monotonic reads (`session: { monotonic: true }`) across real clustered nodes on loopback:
 * 3 in-process nodes in 2 regions, node B's store 40 ms late, as in session-cluster.test.ts.
 * Another client writes through A; the reader reads the key through A, then at once through
 * B (a routing transport picks the node of each GET). With monotonic reads the second read
 * never goes back to an older version (B answers ERR_STALE_READ until it has caught up);
 * without, it does.
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import type { NodeHandle } from '../../src/server/index.js'
import { startSlowReplicaCluster } from '../support/cluster-process.js'
import { nodeTestbed } from '../support/node-fixtures.js'
import { createClient } from '../../src/client/client.js'
import { undiciTransport } from '../../src/client/undici-transport.js'
import type { HttpRequest, Transport } from '../../src/client/transport.js'

const bed = nodeTestbed()
after(() => bed.close())

const SECRET = 'a-cluster-secret-of-32-bytes-xyz'
const ROUNDS = 25

/** Every key GET goes to `via.node`; everything else where the client sent it. */
function routing(via: { node: string }): Transport & { reads: Array<{ node: string; headers: Readonly<Record<string, string>> }> } {
  const inner = undiciTransport({ connections: 4, maxResponseBytes: 1 << 20, keepAliveMs: 4000 })
  const reads: Array<{ node: string; headers: Readonly<Record<string, string>> }> = []
  return {
    reads,
    request(origin: string, req: HttpRequest) {
      if (req.method === 'GET' && req.path.startsWith('/v1/keys/')) {
        reads.push({ node: via.node, headers: req.headers })
        return inner.request(via.node, req)
      }
      return inner.request(origin, req)
    },
    close: () => inner.close(),
  }
}

describe('monotonic reads against clustered nodes', () => {
  let a: NodeHandle
  let b: NodeHandle

  test('setup: 3 clustered nodes, B slow to apply', async () => {
    const nodes = await startSlowReplicaCluster(bed, SECRET)
    a = nodes.a
    b = nodes.b
  })

  /** Rounds of: another client writes through A; the reader reads through A, then through B. Returns how many B reads went back. */
  async function rounds(key: string, session: boolean | { monotonic: boolean }): Promise<{ backwards: number; reads: Array<{ node: string; headers: Readonly<Record<string, string>> }> }> {
    const writer = createClient({ nodes: [a.url] })
    const via = { node: a.url }
    const transport = routing(via)
    const reader = createClient({ nodes: [a.url], transport, session })
    let backwards = 0
    try {
      await writer.set(key, 'initial', { ack: 'all' })
      for (let i = 0; i < ROUNDS; i++) {
        await writer.set(key, `v${i}`)
        via.node = a.url
        const first = await reader.get(key)
        assert.equal(first?.value.toString(), `v${i}`, `round ${i}: A holds the write it answered`)
        via.node = b.url
        const second = await reader.get(key)
        if (second === undefined || second.version < first!.version) backwards++
      }
      return { backwards, reads: transport.reads }
    } finally {
      await reader.close()
      await writer.close()
    }
  }

  test('monotonic: a read through B never returns an older version than the read through A before it', async () => {
    const { backwards, reads } = await rounds('mono', { monotonic: true })
    assert.equal(backwards, 0)
    const toB = reads.filter((r) => r.node === b.url)
    assert.ok(toB.every((r) => Number(r.headers['x-stratacache-min-version']) > 0), 'every read through B names the version read before')
    console.log(`monotonic: ${ROUNDS} rounds, ${toB.length} GETs to B (${toB.length - ROUNDS} after ERR_STALE_READ), 0 went back`)
  })

  test('default session (read-your-writes only): reads through B go back to older versions', async () => {
    const { backwards, reads } = await rounds('plain', true)
    const toB = reads.filter((r) => r.node === b.url)
    assert.equal(toB.length, ROUNDS, 'one GET per read: nothing asked of B')
    assert.ok(toB.every((r) => r.headers['x-stratacache-min-version'] === undefined))
    console.log(`default session: ${backwards}/${ROUNDS} reads through B went back`)
    assert.ok(backwards > 0, 'with B 40 ms slow to apply, some read through B goes back')
  })
})
