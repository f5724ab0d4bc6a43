/**
 * Clustered nodes for tests, with short failure-detection settings: `ClusterProcess`, one
 * node as a real child process (`npm start`'s entry) on loopback, for the multi-process
 * tests (replication e2e, the client's ladder over 6 nodes; each file keeps its own list to
 * kill in `after`); `FAST_CLUSTER_OPTIONS`, `waitAllAlive` and `startSlowReplicaCluster` for
 * in-process nodes.
 */
import { fileURLToPath } from 'node:url'
import { send, slowStore, type NodeTestbed } from './node-fixtures.js'
import { awaitReady, killProcess, spawnServer, waitUntil, type Spawned } from './server-process.js'
import type { NodeHandle, NodeOptions } from '../../src/server/index.js'
import { lmdbStore } from '../../src/store/lmdb-store.js'

const ENTRY = fileURLToPath(new URL('../../src/cli/serve-main.js', import.meta.url))

/** Detection in about a second on loopback (heartbeat 250 ms), discovery every 500 ms. */
export const FAST_CLUSTER_FLAGS: readonly string[] = ['--heartbeat-interval', '250', '--acceptable-pause', '500', '--min-std-deviation', '250', '--indirect-timeout', '250', '--suspicion-timeout', '750', '--discovery-interval', '500', '--prune-after', '30s']

export class ClusterProcess {
  proc: Spawned | undefined
  readonly url: string
  constructor(
    readonly id: string,
    readonly region: string,
    readonly port: number,
    readonly dataDir: string,
    readonly seeds: string,
    readonly secret: string,
    /** A fixed cluster port (default: a free one each start), the port peers are told to dial (a proxy in front of it), more flags. */
    readonly more: { readonly clusterPort?: number; readonly advertiseClusterPort?: number; readonly extra?: readonly string[] } = {},
  ) {
    this.url = `http://127.0.0.1:${port}`
  }

  /** Starts (or restarts) the process and waits for `/readyz`. */
  async start(): Promise<void> {
    const args = ['--id', this.id, '--region', this.region, '--port', String(this.port), '--data-dir', this.dataDir, '--cluster-port', String(this.more.clusterPort ?? 0), '--disk', '64mb', '--log-level', 'warn', '--seeds', this.seeds, ...FAST_CLUSTER_FLAGS]
    if (this.more.advertiseClusterPort !== undefined) args.push('--advertise-cluster-port', String(this.more.advertiseClusterPort))
    args.push(...(this.more.extra ?? []))
    const proc = spawnServer(process.execPath, [ENTRY, ...args], { env: { ...process.env, STRATACACHE_CLUSTER_SECRET: this.secret } })
    this.proc = proc
    await awaitReady(proc, { name: this.id, ready: async () => (await send(this.url, 'GET', '/readyz', undefined, {}, 1000)).status === 200, timeoutMs: 30_000, describe: () => `${this.id} not ready`, cleanup: () => this.kill(), logLines: 40 })
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.proc
    if (proc === undefined || proc.exit() !== undefined) return
    await killProcess(proc, signal)
  }

  /** Members this node's `/v1/cluster` calls alive. */
  async aliveCount(): Promise<number> {
    const r = await send(this.url, 'GET', '/v1/cluster', undefined, {}, 2000)
    const v = JSON.parse(r.body.toString()) as { regions: Array<{ members: Array<{ status: string }> }> }
    return v.regions.flatMap((g) => g.members).filter((m) => m.status === 'alive').length
  }
}

/** In-process clustered nodes (`startNode`): the same short detection settings as FAST_CLUSTER_FLAGS, tighter. */
export const FAST_CLUSTER_OPTIONS: Readonly<NodeOptions> = { heartbeatInterval: 100, acceptablePause: 200, minStdDeviation: 20, indirectTimeout: 150, suspicionTimeout: 300, discoveryInterval: 300, leaveTimeout: 300 }

/** Waits until every node's `/v1/cluster` calls exactly `n` members alive (10 s at most). */
export async function waitAllAlive(nodes: ReadonlyArray<{ readonly url: string }>, n: number): Promise<void> {
  await waitUntil(
    async () => {
      for (const node of nodes) {
        const r = await send(node.url, 'GET', '/v1/cluster')
        const v = JSON.parse(r.body.toString()) as { regions: Array<{ members: Array<{ status: string }> }> }
        if (v.regions.flatMap((g) => g.members).filter((m) => m.status === 'alive').length !== n) return false
      }
      return true
    },
    10_000,
    () => 'the nodes do not all see each other alive',
    50,
  )
}

/**
 * Three clustered in-process nodes in two regions, all alive in every view: a1 and b1 in
 * london, c1 in paris; b1's store answers every operation `slowMs` late, so a write
 * replicated to b1 lands there well after a1 answered it (the session tests' reader).
 */
export async function startSlowReplicaCluster(bed: NodeTestbed, secret: string, slowMs = 40): Promise<{ a: NodeHandle; b: NodeHandle; c: NodeHandle }> {
  const dirs = [bed.dir(), bed.dir(), bed.dir()]
  const a = await bed.start({ ...FAST_CLUSTER_OPTIONS, dataDir: dirs[0]!.path, clusterSecret: secret, region: 'london', nodeId: 'a1' })
  const b = await bed.start({ ...FAST_CLUSTER_OPTIONS, dataDir: dirs[1]!.path, store: slowStore(lmdbStore({ path: dirs[1]!.path }), slowMs), clusterSecret: secret, region: 'london', nodeId: 'b1', seeds: `127.0.0.1:${a.port}` })
  const c = await bed.start({ ...FAST_CLUSTER_OPTIONS, dataDir: dirs[2]!.path, clusterSecret: secret, region: 'paris', nodeId: 'c1', seeds: `127.0.0.1:${a.port}` })
  await waitAllAlive([a, b, c], 3)
  return { a, b, c }
}
