/**
 * The read ladder against 6 real clustered node processes in 3 regions on loopback (short
 * heartbeats): a client in london under read load. kill -9 of its preferred node: zero
 * failed reads, and once the node is quarantined no request but the background probes goes
 * to it. Then the rest of london dies: every read is answered by another region within
 * the ladder's deadline, and once both london nodes are quarantined, reads go to the
 * rank-1 region.
 */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { createClient } from '../../src/client/index.js'
import { undiciTransport } from '../../src/client/undici-transport.js'
import type { HttpRequest, Transport } from '../../src/client/transport.js'
import { tempDir } from '../support/node-fixtures.js'
import { freePort, waitUntil } from '../support/server-process.js'
import { ClusterProcess } from '../support/cluster-process.js'
import { stallMeter } from '../support/stall-meter.js'

const SECRET = 'ladder-cluster-secret-0123456789abcdef'
/**
 * The ladder's deadline with its default rungs (0.5 + 0.5 + 0.75 + 1 s), plus loopback slack
 * on a loaded machine. Each read's bound also allows what this process was stalled during it
 * (test/support/stall-meter.ts): 7 processes share 2 cores here.
 */
const LADDER_BOUND_MS = 2750 + 250

const dirs: Array<{ remove: () => void }> = []
const all: ClusterProcess[] = []
after(async () => {
  await Promise.all(all.map((n) => n.kill()))
  for (const d of dirs) d.remove()
})


test('6 nodes, 3 regions: kill -9 of the preferred node, then of the whole local region, under read load', { timeout: 90_000 }, async () => {
  const layout: Array<[string, string]> = [['l1', 'london'], ['l2', 'london'], ['p1', 'paris'], ['p2', 'paris'], ['t1', 'tokyo'], ['t2', 'tokyo']]
  const ports = await Promise.all(layout.map(() => freePort()))
  const seeds = `127.0.0.1:${ports[0]},127.0.0.1:${ports[2]}`
  const nodes = layout.map(([id, region], i) => {
    const d = tempDir(`stratacache-ladder-${id}-`)
    dirs.push(d)
    const n = new ClusterProcess(id, region, ports[i]!, d.path, seeds, SECRET)
    all.push(n)
    return n
  })
  await Promise.all(nodes.map((n) => n.start()))
  await waitUntil(async () => (await Promise.all(nodes.map((n) => n.aliveCount()))).every((c) => c === 6), 20_000, () => 'all 6 joined', 100)
  const byUrl = new Map(nodes.map((n) => [n.url, n]))

  // Counts every request but the probes, per node; records which node answered each read.
  const sent = new Map<string, number>()
  const inner = undiciTransport({ connections: 4, maxResponseBytes: 1 << 20, keepAliveMs: 4000 })
  let answeredBy: string | undefined
  const counting: Transport = {
    async request(origin: string, req: HttpRequest) {
      if (req.path !== '/healthz') sent.set(origin, (sent.get(origin) ?? 0) + 1)
      const res = await inner.request(origin, req)
      if (req.path.startsWith('/v1/keys/') && res.status === 200) answeredBy = origin
      return res
    },
    close: () => inner.close(),
  }
  const client = createClient({ nodes: [nodes[0]!.url], region: 'london', transport: counting, eject: { after: 2, probeInterval: '1s' }, ladder: { topologyRefresh: '1s' } })
  const meter = stallMeter()
  try {
    await client.set('k', 'v', { ack: 'all' })
    await waitUntil(async () => client.topology().source === 'cluster' && client.topology().local.length === 2 && client.topology().remote.length === 2, 10_000, () => `topology ${JSON.stringify(client.topology())}`, 50)
    const [preferred, other] = client.topology().local as [string, string]

    // Phase 1: kill -9 the preferred node under read load.
    let failures = 0
    let reads = 0
    let quarantinedAt: number | undefined
    let sentAtQuarantine = 0
    const slowAfter: number[] = []
    let t = performance.now()
    // 4 s of reads, and at least 300 (a starved machine reads fewer per second; at most 20 s).
    while ((performance.now() - t < 4000 || reads <= 300) && performance.now() - t < 20_000) {
      if (reads === 100) await byUrl.get(preferred)!.kill()
      const s0 = meter.stalledMs
      const t0 = performance.now()
      try {
        assert.equal((await client.get('k'))?.value.toString(), 'v')
      } catch {
        failures++
      }
      reads++
      const ms = performance.now() - t0
      if (quarantinedAt !== undefined && ms - (meter.stalledMs - s0) > 250) slowAfter.push(ms)
      if (quarantinedAt === undefined && client.nodes().some((s) => s.node === preferred && !s.inRotation)) {
        quarantinedAt = performance.now()
        sentAtQuarantine = sent.get(preferred) ?? 0
      }
    }
    assert.ok(reads > 300, `reads ran (${reads})`)
    assert.equal(failures, 0, 'no read failed while the preferred node died')
    assert.ok(quarantinedAt !== undefined, 'the dead node was quarantined')
    assert.equal(sent.get(preferred) ?? 0, sentAtQuarantine, 'no request went to the quarantined node (probes aside)')
    assert.deepEqual(slowAfter, [], 'no read waited on it after quarantine')
    console.log(`# phase 1: ${reads} reads, 0 failed; quarantined ${Math.round(quarantinedAt - t)} ms into the run`)

    // Phase 2: the whole local region dies.
    await byUrl.get(other)!.kill()
    // Per read: its milliseconds less those this process was stalled during it.
    const latencies: number[] = []
    // Per read: who answered, and the rank-1 region of the client's view when it started
    // (ranks come from the answering node's RTTs, which may reorder on loopback between refreshes).
    const answered: Array<{ by: string; rank1: readonly string[] }> = []
    failures = 0
    t = performance.now()
    while (performance.now() - t < 4000) {
      const rank1Now = client.topology().remote[0] ?? []
      const s0 = meter.stalledMs
      const t0 = performance.now()
      try {
        answeredBy = undefined
        assert.equal((await client.get('k'))?.value.toString(), 'v')
        answered.push({ by: answeredBy!, rank1: rank1Now })
      } catch {
        failures++
      }
      latencies.push(performance.now() - t0 - (meter.stalledMs - s0))
    }
    assert.equal(failures, 0, 'no read failed with london down')
    const worst = Math.max(...latencies)
    assert.ok(worst <= LADDER_BOUND_MS, `every read within the ladder's bound: worst ${worst.toFixed(0)} ms`)
    assert.ok(answered.every((a) => byUrl.get(a.by)!.region !== 'london'), 'answered by other regions')
    const tail = answered.slice(-50)
    const offRank1 = tail.filter((a) => !a.rank1.includes(a.by))
    assert.ok(offRank1.length <= 2, `after detection the rank-1 region answers (a view refresh mid-read aside): ${JSON.stringify(offRank1.slice(0, 3))}`)
    assert.ok(latencies.slice(-50).every((ms) => ms < 250), 'after detection no read waits on london')
    console.log(`# phase 2: ${latencies.length} reads, 0 failed, worst ${worst.toFixed(0)} ms; ${tail.length - offRank1.length}/${tail.length} of the last reads from the rank-1 region`)
  } finally {
    meter.stop()
    await client.close()
  }
})
