/**
 * The built-in transport's pools over real loopback sockets: a node the cluster topology no
 * longer lists has its pool closed (soak finding: one idle undici Pool, ~19 KB, was kept per
 * node ever reached, for the client's life — one more per cluster node replaced).
 */
import assert from 'node:assert/strict'
import { createServer, type RequestListener, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, test } from 'node:test'
import { createClient } from '../../src/client/index.js'
import { poolCount, undiciTransport } from '../../src/client/undici-transport.js'
import { until } from '../support/until.js'

const servers: Server[] = []
after(() => {
  for (const s of servers) s.close()
})

async function listen(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler)
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** A node of a cluster whose view lists `members()` (alive, all in london); any other request is answered 200. */
function clusterAnswer(members: () => readonly string[]): RequestListener {
  return (req, res) => {
    if (req.url === '/v1/cluster') {
      const view = { self: 'a', region: 'london', regions: [{ region: 'london', rank: 0, members: members().map((address, i) => ({ id: `n${i}`, region: 'london', address, status: 'alive', phi: 0, rttMs: 1 })) }] }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(view))
    } else res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}')
  }
}

test('a member the topology drops has its pool closed; the configured node keeps its own', async () => {
  let members: string[] = []
  const answer = clusterAnswer(() => members)
  const a = await listen(answer)
  const b = await listen(answer)
  const c = await listen(answer)
  members = [a, b, c]
  const transport = undiciTransport({ connections: 2, maxResponseBytes: 1 << 20, keepAliveMs: 60_000 })
  const client = createClient({ nodes: [`http://${a}`], region: 'london', ladder: { topologyRefresh: 50 }, transport })
  try {
    await until('the topology lists a, b and c', 5_000, () => client.topology().local.length === 3)
    // Writes go round-robin over the rotation: every node is reached.
    for (let i = 0; i < 6; i++) await client.set(`k${i}`, 'v').catch(() => undefined)
    assert.equal(poolCount(transport), 3, 'a pool each for a, b and c')
    members = [a, c]
    await until('the topology drops b', 5_000, () => client.topology().local.length === 2)
    assert.deepEqual(client.nodes().map((n) => n.node).sort(), [`http://${a}`, `http://${c}`].sort())
    assert.equal(poolCount(transport), 2, 'b\'s pool is closed once b left the topology')
    for (let i = 0; i < 6; i++) await client.set(`k${i}`, 'v').catch(() => undefined)
    assert.equal(poolCount(transport), 2, 'nothing reaches b any more')
  } finally {
    await client.close()
  }
})

test('a lone view (a node restarting, or cut off from its cluster) forgets no node: the others may be the cluster', async () => {
  // Review finding: a lone view pruned every learned node, so writes and every call off the
  // ladder went to the one node that had not joined, and the client never asked the others again.
  let members: string[] = []
  const answer = clusterAnswer(() => members)
  let toB = 0
  const a = await listen(answer)
  const b = await listen((req, res) => {
    if (req.url !== '/v1/cluster') toB++
    answer(req, res)
  })
  members = [a, b]
  const transport = undiciTransport({ connections: 2, maxResponseBytes: 1 << 20, keepAliveMs: 60_000 })
  const client = createClient({ nodes: [`http://${a}`], region: 'london', ladder: { topologyRefresh: 50 }, transport })
  try {
    await until('the topology lists a and b', 5_000, () => client.topology().local.length === 2)
    for (let i = 0; i < 4; i++) await client.set(`k${i}`, 'v').catch(() => undefined)
    assert.equal(poolCount(transport), 2)
    // a restarts: its view lists only itself until it has joined again.
    members = [a]
    await until('the topology is flat', 5_000, () => client.topology().local.length === 1)
    assert.deepEqual(client.nodes().map((n) => n.node).sort(), [`http://${a}`, `http://${b}`].sort(), 'b stays in the rotation')
    assert.equal(poolCount(transport), 2, "b's pool stays open")
    const before = toB
    for (let i = 0; i < 4; i++) await client.set(`k${i}`, 'v').catch(() => undefined)
    assert.ok(toB > before, 'writes still go round the rotation, b included')
  } finally {
    await client.close()
  }
})
