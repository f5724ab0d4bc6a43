// Real node processes (`npm start`'s entry) clustering on loopback: 6 nodes in 3 regions,
// joined through static seeds and through a discovery file; kill -9 of one is `dead` (or
// pruned) in every other node's GET /v1/cluster within detectionBoundMs; the restarted node
// rejoins with a higher incarnation; SIGTERM is `left` at once and exits 0. mDNS where
// multicast works on loopback (else skipped with the reason). Short heartbeats keep it fast.
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { detectionBoundMs, MdnsDiscovery, type ClusterView } from '../../src/cluster/index.js'
import { send, tempDir } from '../support/node-fixtures.js'
import { awaitReady, exitsWithin, freePort, killProcess, spawnServer, waitUntil, type Spawned } from '../support/server-process.js'

const ENTRY = fileURLToPath(new URL('../../src/cli/serve-main.js', import.meta.url))
const SECRET = 'e2e-cluster-secret-0123456789abcdef'
/** Membership timings for the test (flags) and the same as options (for the bound). */
// The std-dev floor is above what scheduling jitter gives on a loaded 2-core machine, so the bound (computed for a steady
// history at the floor) holds for these processes too.
const TIMING = { heartbeatIntervalMs: 250, acceptablePauseMs: 500, minStdDeviationMs: 250, indirectTimeoutMs: 250, suspicionTimeoutMs: 750 }
const FLAGS = [
  '--heartbeat-interval', String(TIMING.heartbeatIntervalMs),
  '--acceptable-pause', String(TIMING.acceptablePauseMs),
  '--min-std-deviation', String(TIMING.minStdDeviationMs),
  '--indirect-timeout', String(TIMING.indirectTimeoutMs),
  '--suspicion-timeout', String(TIMING.suspicionTimeoutMs),
  '--discovery-interval', '500',
  '--prune-after', '30s',
]
/** The detection bound for these settings, with 500 ms of delivery slack (6 node processes share a loaded machine). */
const BOUND = Math.ceil(detectionBoundMs({
  heartbeatIntervalMs: TIMING.heartbeatIntervalMs,
  phi: { acceptableHeartbeatPauseMs: TIMING.acceptablePauseMs, minStdDeviationMs: TIMING.minStdDeviationMs, firstHeartbeatEstimateMs: TIMING.heartbeatIntervalMs },
  indirectTimeoutMs: TIMING.indirectTimeoutMs,
  suspicionTimeoutMs: TIMING.suspicionTimeoutMs,
}, 500))
/** How often views are polled (added to the bound: the poll can see a verdict that late). */
const POLL_MS = 50
/**
 * What the check allows past the bound. The bound assumes timers fire on time; with the
 * machine's load average above twice its cores (7 helpers on 2 cores here), every timer
 * hop of the detection (tick, indirect probe, suspicion, gossip) runs late, so the check
 * allows half the bound more and says so in the diagnostic.
 */
const OVERLOADED = loadavg()[0] > 2 * cpus().length
const ALLOWANCE = POLL_MS * 2 + (OVERLOADED ? Math.ceil(BOUND / 2) : 0)

const dirs: Array<{ remove: () => void }> = []
const all: ClusterNode[] = []
after(async () => {
  await Promise.all(all.map((n) => n.kill()))
  for (const d of dirs) d.remove()
})

class ClusterNode {
  proc: Spawned | undefined
  readonly url: string
  constructor(readonly id: string, readonly region: string, readonly port: number, readonly dataDir: string, readonly extra: string[]) {
    this.url = `http://127.0.0.1:${port}`
    all.push(this)
  }

  async start(): Promise<void> {
    const args = ['--id', this.id, '--region', this.region, '--port', String(this.port), '--data-dir', this.dataDir, '--cluster-port', '0', '--disk', '64mb', '--log-level', 'warn', ...FLAGS, ...this.extra]
    const proc = spawnServer(process.execPath, [ENTRY, ...args], { env: { ...process.env, STRATACACHE_CLUSTER_SECRET: SECRET } })
    this.proc = proc
    await awaitReady(proc, { name: this.id, ready: async () => (await send(this.url, 'GET', '/readyz', undefined, {}, 1000)).status === 200, timeoutMs: 30_000, describe: () => `${this.id} not ready`, cleanup: () => this.kill(), logLines: 40 })
  }

  async view(): Promise<ClusterView> {
    const r = await send(this.url, 'GET', '/v1/cluster', undefined, {}, 2000)
    if (r.status !== 200) throw new Error(`${this.id}: HTTP ${r.status}`)
    return JSON.parse(r.body.toString()) as ClusterView
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.proc
    if (proc === undefined || proc.exit() !== undefined) return
    await killProcess(proc, signal)
  }
}

function statusIn(view: ClusterView, id: string): { status: string; incarnation: number } | undefined {
  for (const r of view.regions) for (const m of r.members) if (m.id === id) return { status: m.status, incarnation: m.incarnation }
  return undefined
}

/** Waits until every node of `among` sees every id of `ids` with a status `ok` accepts. */
async function allSee(among: ClusterNode[], ids: string[], ok: (s: string | undefined) => boolean, timeoutMs: number, what: string): Promise<void> {
  let last = ''
  await waitUntil(
    async () => {
      const views = await Promise.all(among.map((n) => n.view()))
      for (let i = 0; i < views.length; i++) {
        for (const id of ids) {
          const s = statusIn(views[i], id)?.status
          if (!ok(s)) {
            last = `${among[i].id} sees ${id} ${s ?? 'absent'}`
            return false
          }
        }
      }
      return true
    },
    timeoutMs,
    () => `${what} (${last})`,
    POLL_MS,
  )
}

async function cluster(make: (ports: number[]) => string[][]): Promise<ClusterNode[]> {
  const layout: Array<[string, string]> = [['a1', 'london'], ['a2', 'london'], ['b1', 'paris'], ['b2', 'paris'], ['c1', 'tokyo'], ['c2', 'tokyo']]
  const ports = await Promise.all(layout.map(() => freePort()))
  const extra = make(ports)
  const nodes = layout.map(([id, region], i) => {
    const d = tempDir(`stratacache-${id}-`)
    dirs.push(d)
    return new ClusterNode(id, region, ports[i], d.path, extra[i])
  })
  await Promise.all(nodes.map((n) => n.start()))
  return nodes
}

const alive = (s: string | undefined): boolean => s === 'alive'
const goneOrDead = (s: string | undefined): boolean => s === 'dead' || s === undefined

describe('cluster membership with real processes on loopback', () => {
  test(`static seeds, 6 nodes in 3 regions: kill -9 is dead everywhere within the bound (${BOUND} ms), restart rejoins with a higher incarnation, SIGTERM is left at once`, async (t) => {
    // Everyone seeds through a1 and b1 (HTTP addresses); a1 and b1 through each other.
    const nodes = await cluster((ports) => ports.map(() => ['--seeds', `127.0.0.1:${ports[0]},127.0.0.1:${ports[2]}`]))
    const ids = nodes.map((n) => n.id)
    await allSee(nodes, ids, alive, 15_000, 'all 6 joined')
    const v = await nodes[0].view()
    assert.deepEqual(v.regions.map((r) => r.region)[0], 'london', 'own region first')
    assert.deepEqual(v.regions.map((r) => r.rank), [0, 1, 2])
    assert.ok(v.regions.every((r) => r.members.length === 2))

    // kill -9 c2: no leave; the others' detectors must find it.
    const victim = nodes[5]
    const before = statusIn(await nodes[0].view(), victim.id)?.incarnation ?? -1
    const others = nodes.filter((n) => n !== victim)
    const killedAt = Date.now()
    await victim.kill('SIGKILL')
    await allSee(others, [victim.id], goneOrDead, BOUND + 5_000, 'c2 dead everywhere')
    const took = Date.now() - killedAt
    t.diagnostic(`kill -9: dead in every view after ${took} ms (bound ${BOUND} ms, allowance ${ALLOWANCE} ms, load average ${loadavg()[0].toFixed(1)} on ${cpus().length} cores)`)
    assert.ok(took <= BOUND + ALLOWANCE, `dead everywhere after ${took} ms; the bound is ${BOUND} ms (+${ALLOWANCE} ms allowance)`)

    // Restart: same id, same data dir, a new cluster port; a higher incarnation beats the verdict.
    await victim.start()
    await allSee(nodes, ids, alive, 10_000, 'c2 rejoined')
    for (const n of others) {
      const inc = statusIn(await n.view(), victim.id)?.incarnation ?? -1
      assert.ok(inc > before, `${n.id} sees c2 at incarnation ${inc} > ${before}`)
    }
    assert.ok((await victim.view()).incarnation > before)

    // SIGTERM b2: it announces its leave; left in every view at once, then exits 0.
    const leaver = nodes[3]
    const staying = nodes.filter((n) => n !== leaver)
    const proc = leaver.proc as Spawned
    const termAt = Date.now()
    proc.child.kill('SIGTERM')
    await allSee(staying, [leaver.id], (s) => s === 'left', 2_000, 'b2 left everywhere')
    const leftIn = Date.now() - termAt
    t.diagnostic(`SIGTERM: left in every view after ${leftIn} ms`)
    assert.ok(leftIn < TIMING.heartbeatIntervalMs * 4, `left everywhere after ${leftIn} ms (failure detection would need ${BOUND} ms)`)
    assert.ok(await exitsWithin(proc, 10_000), 'b2 exited')
    assert.equal(proc.exit(), '0', 'exit code 0 after a graceful leave')
    await Promise.all(nodes.map((n) => n.kill()))
  })

  test('file discovery: 6 nodes find each other through a file listing HTTP addresses; a dead node is found dead', async (t) => {
    const d = tempDir('stratacache-disco-')
    dirs.push(d)
    const file = join(d.path, 'peers.txt')
    const nodes = await cluster((ports) => {
      writeFileSync(file, `# the cluster\n${ports.map((p) => `127.0.0.1:${p}`).join('\n')}\n`)
      return ports.map(() => ['--discovery', 'file', '--discovery-file', file])
    })
    const ids = nodes.map((n) => n.id)
    await allSee(nodes, ids, alive, 15_000, 'all 6 joined through the file')
    const victim = nodes[2]
    const killedAt = Date.now()
    await victim.kill('SIGKILL')
    await allSee(nodes.filter((n) => n !== victim), [victim.id], goneOrDead, BOUND + 5_000, 'b1 dead everywhere')
    const took = Date.now() - killedAt
    t.diagnostic(`kill -9: dead in every view after ${took} ms (bound ${BOUND} ms, allowance ${ALLOWANCE} ms, load average ${loadavg()[0].toFixed(1)} on ${cpus().length} cores)`)
    assert.ok(took <= BOUND + ALLOWANCE, `dead everywhere after ${took} ms; the bound is ${BOUND} ms (+${ALLOWANCE} ms allowance)`)
    await Promise.all(nodes.map((n) => n.kill()))
  })

  test('mDNS discovery (where multicast works on loopback)', async (t) => {
    // First a cheap check that multicast loops back here at all (two browsers publishing on 127.0.0.1).
    const type = `sc-e2e-${process.pid % 100000}`
    const probes = [new MdnsDiscovery({ nodeId: 'probe-1', port: 1, serviceType: `${type}-p`, interface: '127.0.0.1' }), new MdnsDiscovery({ nodeId: 'probe-2', port: 2, serviceType: `${type}-p`, interface: '127.0.0.1' })]
    let heard = false
    for (let i = 0; i < 20 && !heard; i++) {
      await new Promise((r) => setTimeout(r, 200))
      heard = (await probes[0].discover()).length > 0 || (await probes[1].discover()).length > 0
    }
    await Promise.all(probes.map((p) => p.close()))
    if (!heard) {
      t.skip('multicast DNS on the loopback interface found nothing within 4 s (loopback carries no multicast here; tests never multicast on a real interface)')
      return
    }
    const ports = await Promise.all([0, 1, 2].map(() => freePort()))
    const nodes = ports.map((p, i) => {
      const dd = tempDir('stratacache-mdns-')
      dirs.push(dd)
      return new ClusterNode(`m${i + 1}`, ['london', 'paris', 'tokyo'][i], p, dd.path, ['--discovery', 'mdns', '--mdns-interface', '127.0.0.1', '--mdns-service-type', type])
    })
    await Promise.all(nodes.map((n) => n.start()))
    try {
      await allSee(nodes, nodes.map((n) => n.id), alive, 15_000, 'joined through mDNS')
    } finally {
      await Promise.all(nodes.map((n) => n.kill()))
    }
  })
})
