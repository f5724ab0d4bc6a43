/**
 * The built-in transport's pools over real loopback sockets: a node the cluster topology no
 * longer lists has its pool closed (soak finding: one idle undici Pool, ~19 KB, was kept per
 * node ever reached, for the client's life — one more per cluster node replaced).
 */
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
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

test('a member the topology drops has its pool closed; the configured node keeps its own', async () => {
  let members: string[] = []
  const answer: Parameters<typeof createServer>[1] = (req, res) => {
    if (req.url === '/v1/cluster') {
      const view = { self: 'a', region: 'london', regions: [{ region: 'london', rank: 0, members: members.map((address, i) => ({ id: `n${i}`, region: 'london', address, status: 'alive', phi: 0, rttMs: 1 })) }] }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(view))
    } else res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}')
  }
  const a = await listen(answer)
  const b = await listen(answer)
  members = [a, b]
  const transport = undiciTransport({ connections: 2, maxResponseBytes: 1 << 20, keepAliveMs: 60_000 })
  const client = createClient({ nodes: [`http://${a}`], region: 'london', ladder: { topologyRefresh: 50 }, transport })
  try {
    await until('the topology lists a and b', 5_000, () => client.topology().local.length === 2)
    // Writes go round-robin over the rotation: both nodes are reached.
    for (let i = 0; i < 4; i++) await client.set(`k${i}`, 'v').catch(() => undefined)
    assert.equal(poolCount(transport), 2, 'a pool each for a and b')
    members = [a]
    await until('the topology drops b', 5_000, () => client.topology().local.length === 1)
    assert.deepEqual(client.nodes().map((n) => n.node), [`http://${a}`])
    assert.equal(poolCount(transport), 1, 'b\'s pool is closed once b left the topology')
    for (let i = 0; i < 4; i++) await client.set(`k${i}`, 'v').catch(() => undefined)
    assert.equal(poolCount(transport), 1, 'nothing reaches b any more')
  } finally {
    await client.close()
  }
})
