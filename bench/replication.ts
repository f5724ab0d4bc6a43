/**
 * The `replication` suite (issue P9, "Benchmarks"), three parts, each with its reference
 * measured in the same run:
 *
 * 1. Anti-entropy cost, simulated (no sockets, independent of machine load): node n2
 *    missed `missed` of `keys` records (down with hints overflowing); n1 and n2 run Merkle
 *    anti-entropy on SimNetwork (1-10 ms links) until their trees agree. Bytes of every
 *    anti-entropy message (tree, sum, recs, meta; JSON frames as the transport carries them)
 *    against the bytes of the changed records themselves (their wire tuples: what shipping
 *    exactly them would cost, the floor); rounds; simulated time to converge; and the CPU
 *    time of the repair in this process. The two stores are filled directly, so only the
 *    repair is measured.
 * 2. Write throughput, real node processes (`npm start`'s entry) on loopback: a 3-node
 *    region at `ack=one` against a lone node, both running for the whole suite, measured in
 *    alternating rounds (lone, one-member cluster, region, per pass); the ratio is the
 *    median of the per-pass ratios. Load: autocannon in its own process
 *    (bench/replication-load.ts), PUTs of 100-byte values, every key distinct, the same
 *    number of connections in total, spread evenly over the region's 3 nodes. Every node's
 *    CPU (user + system, from /proc/<pid>/stat) is read around each round: CPU per write at
 *    the node that took it, and the region's total CPU (every node, fan-out applies
 *    included) per acknowledged write. The "one-member cluster" row is a node with a
 *    cluster secret and no peers: the replication machine on the write path, no fan-out.
 * 3. Replication lag, real processes: 6 nodes in 3 regions (2 each), writes at half the
 *    cluster's measured max write rate (autocannon, closed loop, just before), round-robin
 *    over the 6 nodes; per write, the time from its send until each other node's
 *    `/v1/watch` stream reported it (bench/replication-load.ts).
 *
 * `BENCH_CPU_PROF=<dir>`: the node processes run with `--cpu-prof` into that directory
 * (profiles are written when they stop at the end of each part).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { jsonCodec, type MessageCodec } from '../src/cluster/kernel.js'
import { MemoryReplicaStore, Replication, type ReplicationMessage, toWire, type ReplicaRecord } from '../src/cluster/replication/index.js'
import { SeededRandom } from '../src/core/random.js'
import { SimNetwork } from '../src/testing/index.js'
import { send, tempDir } from '../test/support/node-fixtures.js'
import { awaitReady, freePort, killProcess, spawnServer, waitUntil, type Spawned } from '../test/support/server-process.js'
import type { CannonJob, CannonResult, LagJob, LagResult } from './replication-load.js'
import { fmtCount, fmtOps, fmtRatio, median, type Table } from './harness.js'

// ---- 1. anti-entropy ---------------------------------------------------------------------

export interface AntiEntropyResult {
  readonly keys: number
  readonly missed: number
  readonly valueBytes: number
  readonly converged: boolean
  readonly changedBytes: number
  readonly bytes: number
  readonly bytesByKind: Readonly<Record<string, number>>
  readonly messagesByKind: Readonly<Record<string, number>>
  readonly recordsShipped: number
  readonly recordsRepaired: number
  readonly rounds: number
  readonly rangesCompared: number
  readonly simulatedMs: number
  readonly repairCpuMs: number
  readonly repairWallMs: number
}

/** n2 missed `missed` of `keys` records; n1 and n2 repair by anti-entropy on SimNetwork. */
export function antiEntropy(keys: number, missed: number, valueBytes = 100, budget = 10_000): AntiEntropyResult {
  const T0 = 1_700_000_000_000
  const json = jsonCodec<ReplicationMessage>()
  const bytesByKind: Record<string, number> = {}
  const messagesByKind: Record<string, number> = {}
  const counting: MessageCodec<ReplicationMessage> = {
    encode: (m) => {
      const b = json.encode(m)
      bytesByKind[m.kind] = (bytesByKind[m.kind] ?? 0) + b.byteLength
      messagesByKind[m.kind] = (messagesByKind[m.kind] ?? 0) + 1
      return b
    },
    decode: (b) => json.decode(b),
  }
  const a = new MemoryReplicaStore()
  const b = new MemoryReplicaStore()
  const random = new SeededRandom(42)
  // A value is base64 on the wire: valueBytes of payload take 4/3 as many characters.
  const value = 'x'.repeat(Math.ceil((valueBytes * 4) / 3))
  const skip = new Set<number>()
  while (skip.size < missed) skip.add(Math.floor(random.next() * keys))
  let changedBytes = 0
  for (let i = 0; i < keys; i++) {
    const r: ReplicaRecord = { key: `user:${i}`, version: { hlc: (T0 - 60_000 + (i % 50_000)) * 2048, nodeId: 'n1' }, value, expiresAt: 0, tags: [] }
    a.apply(r, T0)
    if (skip.has(i)) changedBytes += JSON.stringify(toWire(r)).length + 1
    else b.apply(r, T0)
  }
  const net = new SimNetwork<ReplicationMessage>({ seed: 1, codec: counting, link: { latency: { min: 1, max: 10 } } })
  const topology = (): { clusterState: 'ACTIVE'; members: Array<{ id: string; region: string; status: 'alive' }> } => ({
    clusterState: 'ACTIVE',
    members: [
      { id: 'n1', region: 'r', status: 'alive' },
      { id: 'n2', region: 'r', status: 'alive' },
    ],
  })
  const machines = new Map<string, Replication>()
  for (const [id, store] of [['n1', a], ['n2', b]] as const) {
    net.addNode(id, (me) => {
      const m = new Replication({ id: me, store, topology, random: new SeededRandom(me === 'n1' ? 1 : 2), antiEntropyIntervalMs: 1_000, antiEntropyFollowUpMs: 20, maxRepairRecordsPerRound: budget, maxRepairBytesPerRound: 64 * 1024 * 1024 })
      machines.set(me, m)
      return m
    })
  }
  const root = { depth: 0, index: 0 }
  const cpu0 = process.cpuUsage()
  const wall0 = performance.now()
  // The first round starts within the first interval (1 s plus jitter): time to converge counts from it.
  let firstRound = -1
  const converged = net.runUntil(
    () => {
      if (firstRound < 0 && [...machines.values()].some((m) => m.stats.antiEntropy.rounds > 0)) firstRound = net.clock.now()
      return a.summary(root, 0).digest === b.summary(root, 0).digest
    },
    600_000,
    1,
  )
  const cpu = process.cpuUsage(cpu0)
  const s = [...machines.values()].map((m) => m.stats.antiEntropy)
  return {
    keys,
    missed,
    valueBytes,
    converged,
    changedBytes,
    bytes: Object.values(bytesByKind).reduce((x, y) => x + y, 0),
    bytesByKind,
    messagesByKind,
    recordsShipped: s.reduce((x, y) => x + y.recordsShipped, 0),
    recordsRepaired: s.reduce((x, y) => x + y.recordsRepaired, 0),
    rounds: s.reduce((x, y) => x + y.rounds, 0),
    rangesCompared: s.reduce((x, y) => x + y.rangesCompared, 0),
    simulatedMs: net.clock.now() - (firstRound < 0 ? 0 : firstRound),
    repairCpuMs: (cpu.user + cpu.system) / 1000,
    repairWallMs: performance.now() - wall0,
  }
}

// ---- node processes ------------------------------------------------------------------------

const ENTRY = fileURLToPath(new URL('../src/cli/serve-main.js', import.meta.url))
const SECRET = 'bench-replication-secret-0123456789'
const CLK_TCK = 100

/** One node (`npm start`'s entry) as a child process on loopback, with the default cluster settings. */
export class NodeProcess {
  proc: Spawned | undefined
  readonly url: string
  readonly #dir = tempDir('stratacache-bench-rep-')
  constructor(
    readonly id: string,
    readonly region: string,
    readonly port: number,
    /** undefined: solo (no secret, no seeds); '': a one-member cluster; else the seeds. */
    readonly seeds: string | undefined,
  ) {
    this.url = `http://127.0.0.1:${port}`
  }

  async start(): Promise<void> {
    const prof = process.env.BENCH_CPU_PROF
    const node = prof === undefined || prof === '' ? [] : ['--cpu-prof', '--cpu-prof-dir', prof, '--cpu-prof-name', `${this.id}-${Date.now()}.cpuprofile`]
    const cluster = this.seeds === undefined ? [] : ['--id', this.id, '--region', this.region, '--cluster-port', '0', ...(this.seeds === '' ? [] : ['--seeds', this.seeds])]
    const args = [...node, ENTRY, '--port', String(this.port), '--data-dir', this.#dir.path, '--log-level', 'warn', ...cluster]
    const env = { ...process.env, ...(this.seeds === undefined ? {} : { STRATACACHE_CLUSTER_SECRET: SECRET }) }
    const proc = spawnServer(process.execPath, args, { env })
    this.proc = proc
    await awaitReady(proc, { name: this.id, ready: async () => (await send(this.url, 'GET', '/readyz', undefined, {}, 1000)).status === 200, timeoutMs: 60_000, describe: () => `${this.id} not ready`, cleanup: () => this.stop(), logLines: 40 })
  }

  /** CPU time (user + system) of the process so far, µs (10 ms resolution). */
  cpuMicros(): number {
    const pid = this.proc?.child.pid
    if (pid === undefined) return NaN
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK
  }

  async aliveCount(): Promise<number> {
    const r = await send(this.url, 'GET', '/v1/cluster', undefined, {}, 2000)
    const v = JSON.parse(r.body.toString()) as { regions: Array<{ members: Array<{ status: string }> }> }
    return v.regions.flatMap((g) => g.members).filter((m) => m.status === 'alive').length
  }

  /** SIGTERM (a clean stop, so a --cpu-prof profile is written), then the data dir goes. */
  async stop(): Promise<void> {
    if (this.proc !== undefined && this.proc.exit() === undefined) await killProcess(this.proc, 'SIGTERM', 15_000)
    this.#dir.remove()
  }
}

/** Starts nodes (layout: [id, region]); all clustered with the first node of each region as seeds, or one solo node. */
export async function startCluster(layout: ReadonlyArray<readonly [string, string]>): Promise<NodeProcess[]> {
  const ports = await Promise.all(layout.map(() => freePort()))
  const firsts = [...new Set(layout.map(([, r]) => r))].map((r) => layout.findIndex(([, x]) => x === r))
  const seeds = firsts.map((i) => `127.0.0.1:${ports[i]!}`).join(',')
  const nodes = layout.map(([id, region], i) => new NodeProcess(id, region, ports[i]!, seeds))
  await Promise.all(nodes.map((n) => n.start()))
  await waitUntil(async () => (await Promise.all(nodes.map((n) => n.aliveCount()))).every((c) => c === nodes.length), 60_000, () => `the ${nodes.length} nodes did not all see each other alive`, 200)
  return nodes
}

// ---- the load process -----------------------------------------------------------------------

export class Load {
  readonly #child: ChildProcess
  private constructor(child: ChildProcess) {
    this.#child = child
  }

  static async start(): Promise<Load> {
    const child = fork(fileURLToPath(new URL('./replication-load.js', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve())
      child.once('exit', (code) => reject(new Error(`the load process exited with ${code}`)))
    })
    return new Load(child)
  }

  run(job: CannonJob): Promise<CannonResult>
  run(job: LagJob): Promise<LagResult>
  run(job: CannonJob | LagJob): Promise<CannonResult | LagResult> {
    return new Promise((resolve, reject) => {
      this.#child.once('message', (m: CannonResult | LagResult | { kind: 'error'; message: string }) => (m.kind === 'error' ? reject(new Error(`load: ${m.message}`)) : resolve(m)))
      this.#child.send(job)
    })
  }

  async stop(): Promise<void> {
    const exited = new Promise((r) => this.#child.once('exit', r))
    this.#child.send('stop')
    await exited
  }
}

// ---- 2. write throughput ----------------------------------------------------------------------

/** Connections in total, whatever the number of nodes they are spread over. */
const CONNECTIONS = 60

interface Round {
  /** Acknowledged writes per second, all targets. */
  readonly rps: number
  readonly writes: number
  readonly errors: number
  readonly p50: number
  readonly p99: number
  /** CPU of every node of the subject (fan-out applies included) per acknowledged write, µs. */
  readonly cpuPerWriteTotal: number
  /** The same divided by the subject's nodes: what one node spends per cluster write, µs. */
  readonly cpuPerWritePerNode: number
  /** CPU of all the subject's nodes over the round / its length: cores kept busy. */
  readonly cores: number
}

export async function round(load: Load, nodes: readonly NodeProcess[], seconds: number, prefix: string): Promise<Round> {
  const per = Math.floor(CONNECTIONS / nodes.length)
  const cpu0 = nodes.map((n) => n.cpuMicros())
  const r = await load.run({ mode: 'cannon', targets: nodes.map((n) => ({ url: n.url, connections: per })), seconds, prefix, ack: 'one' })
  const used = nodes.map((n, i) => n.cpuMicros() - cpu0[i]!)
  const writes = r.ok.reduce((a, b) => a + b, 0)
  const total = used.reduce((a, b) => a + b, 0)
  return { rps: writes / r.seconds, writes, errors: r.errors, p50: r.p50, p99: r.p99, cpuPerWriteTotal: total / writes, cpuPerWritePerNode: total / writes / nodes.length, cores: total / 1e6 / r.seconds }
}

type Subject = 'lone' | 'member' | 'region'

async function throughput(load: Load, seconds: number, passes: number): Promise<Record<Subject, Round[]>> {
  const lone = new NodeProcess('lone', 'r', await freePort(), undefined)
  const member = new NodeProcess('member', 'r', await freePort(), '')
  const out: Record<Subject, Round[]> = { lone: [], member: [], region: [] }
  let region: NodeProcess[] = []
  try {
    await Promise.all([lone.start(), member.start()])
    region = await startCluster([
      ['a1', 'r'],
      ['a2', 'r'],
      ['a3', 'r'],
    ])
    const subjects: Array<[Subject, NodeProcess[]]> = [
      ['lone', [lone]],
      ['member', [member]],
      ['region', region],
    ]
    // Untimed warm-up of every subject (JIT, connections, LMDB maps).
    for (const [name, nodes] of subjects) await round(load, nodes, 1, `warm-${name}`)
    for (let p = 0; p < passes; p++) {
      // Alternate the order from pass to pass so that neither subject always runs first.
      const order = p % 2 === 0 ? subjects : [...subjects].reverse()
      for (const [name, nodes] of order) {
        out[name].push(await round(load, nodes, seconds, `p${p}-${name}`))
        process.stderr.write('.')
      }
    }
  } finally {
    await Promise.all([lone.stop(), member.stop(), ...region.map((n) => n.stop())])
  }
  return out
}

// ---- 3. replication lag ------------------------------------------------------------------------

/** The q-quantile (0..1) of `xs`, nearest rank. */
function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN
}

interface LagFigures {
  readonly nodes: number
  readonly regions: number
  readonly maxRps: number
  readonly cpuPerWriteTotal: number
  readonly lag: Omit<LagResult, 'ack' | 'sameRegion' | 'remoteRegion' | 'everywhere'>
  readonly rows: Record<'ack' | 'sameRegion' | 'remoteRegion' | 'everywhere', { n: number; p50: number; p99: number; max: number }>
}

async function lag(load: Load, maxSeconds: number, lagSeconds: number): Promise<LagFigures> {
  const layout = [
    ['a1', 'london'],
    ['a2', 'london'],
    ['b1', 'paris'],
    ['b2', 'paris'],
    ['c1', 'tokyo'],
    ['c2', 'tokyo'],
  ] as const
  let nodes: NodeProcess[] = []
  try {
    nodes = await startCluster(layout)
    await round(load, nodes, 1, 'lag-warm')
    const max = await round(load, nodes, maxSeconds, 'lag-max')
    const r = await load.run({ mode: 'lag', nodes: nodes.map((n) => ({ url: n.url, region: n.region })), rate: Math.max(10, Math.round(max.rps / 2)), seconds: lagSeconds, drainMs: 5_000, prefix: 'lag' })
    const fig = (xs: readonly number[]): { n: number; p50: number; p99: number; max: number } => ({ n: xs.length, p50: quantile(xs, 0.5), p99: quantile(xs, 0.99), max: Math.max(...xs) })
    const { ack, sameRegion, remoteRegion, everywhere, ...rest } = r
    return { nodes: nodes.length, regions: 3, maxRps: max.rps, cpuPerWriteTotal: max.cpuPerWriteTotal, lag: rest, rows: { ack: fig(ack), sameRegion: fig(sameRegion), remoteRegion: fig(remoteRegion), everywhere: fig(everywhere) } }
  } finally {
    await Promise.all(nodes.map((n) => n.stop()))
  }
}

// ---- the suite -------------------------------------------------------------------------------

const us = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(0)} µs` : '-')
const ms = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(1)} ms` : '-')

export async function replicationSuite(c: { quick: boolean; passes: number }): Promise<{ params: Readonly<Record<string, unknown>>; results: Readonly<Record<string, unknown>>; tables: Table[] }> {
  const aeKeys = c.quick ? 100_000 : 1_000_000
  const aeMissed = c.quick ? 1_000 : 10_000
  const seconds = c.quick ? 2 : 5
  const passes = c.quick ? 1 : Math.max(3, Math.min(c.passes, 5))
  const lagSeconds = c.quick ? 3 : 10

  const ae = antiEntropy(aeKeys, aeMissed)
  process.stderr.write('.')
  const load = await Load.start()
  let tp: Record<Subject, Round[]>
  let lg: LagFigures
  try {
    tp = await throughput(load, seconds, passes)
    lg = await lag(load, seconds, lagSeconds)
  } finally {
    await load.stop()
  }

  const aeRatio = ae.bytes / ae.changedBytes
  const kinds = Object.keys(ae.bytesByKind)
    .map((k) => `${k} ${fmtCount(ae.bytesByKind[k]!)} B in ${ae.messagesByKind[k]}`)
    .join(', ')
  const paired = (a: Subject, b: Subject): number => median(tp[a].map((x, i) => x.rps / tp[b][i]!.rps))
  const ratios = { regionVsLone: paired('region', 'lone'), memberVsLone: paired('member', 'lone'), regionVsMember: paired('region', 'member') }
  const pick = (rs: readonly Round[]): Round => ({
    rps: median(rs.map((r) => r.rps)),
    writes: rs.reduce((a, r) => a + r.writes, 0),
    errors: rs.reduce((a, r) => a + r.errors, 0),
    p50: median(rs.map((r) => r.p50)),
    p99: median(rs.map((r) => r.p99)),
    cpuPerWriteTotal: median(rs.map((r) => r.cpuPerWriteTotal)),
    cpuPerWritePerNode: median(rs.map((r) => r.cpuPerWritePerNode)),
    cores: median(rs.map((r) => r.cores)),
  })
  const m = { lone: pick(tp.lone), member: pick(tp.member), region: pick(tp.region) }
  const cpuRatio = m.region.cpuPerWriteTotal / m.lone.cpuPerWriteTotal
  // With one machine per node and CPU the bound, the region takes writes at 1 / (its CPU per write per node).
  const perMachineRatio = m.lone.cpuPerWriteTotal / m.region.cpuPerWritePerNode
  const row = (name: string, x: Round, ratio: string, target = ''): string[] => [name, fmtOps(x.rps), us(x.cpuPerWritePerNode), us(x.cpuPerWriteTotal), x.cores.toFixed(2), `${x.p50.toFixed(1)} ms`, `${x.p99.toFixed(1)} ms`, ratio, String(x.errors), target]
  const regionTarget = `>= 0.7x lone: ${ratios.regionVsLone >= 0.7 ? 'met' : 'NOT met'}`
  const lagRow = (name: string, f: { n: number; p50: number; p99: number; max: number }): string[] => [name, String(f.n), ms(f.p50), ms(f.p99), ms(f.max)]
  const tables: Table[] = [
    {
      title: `replication: anti-entropy after a node missed ${fmtCount(aeMissed)} of ${fmtCount(aeKeys)} keys (100-byte values, SimNetwork 1-10 ms, simulated time)`,
      columns: ['changed records (wire bytes)', 'anti-entropy bytes', 'ratio', 'target', 'records shipped', 'rounds', 'ranges compared', 'time to converge (simulated)', 'repair CPU'],
      align: 'rrrlrrrrr',
      rows: [[fmtCount(ae.changedBytes), fmtCount(ae.bytes), fmtRatio(aeRatio), `<= 3x: ${aeRatio <= 3 ? 'met' : 'NOT met'}`, String(ae.recordsShipped), String(ae.rounds), String(ae.rangesCompared), `${ae.simulatedMs} ms`, `${(ae.repairCpuMs / 1000).toFixed(1)} s`]],
      notes: [
        `Anti-entropy bytes: every anti-entropy frame both ways, JSON as the transport carries it (${kinds}); changed records: the wire tuples of exactly the missed records (the floor). ${ae.converged ? 'Converged: both Merkle roots equal.' : 'DID NOT CONVERGE within 600 simulated s.'}`,
        'Time to converge: simulated, from the first anti-entropy round to equal roots (link latency only: it does not include computing time, which the repair CPU column gives — the CPU of both machines in this process, comparing trees and applying records).',
      ],
    },
    {
      title: `replication: write throughput, ack=one, PUT of 100-byte values, every key distinct, ${CONNECTIONS} connections (autocannon ${seconds} s per round, ${passes} pass(es))`,
      columns: ['subject', 'writes/s (median)', 'node CPU / write (per node)', 'CPU / acked write, all nodes', 'cores busy (all nodes)', 'p50', 'p99', 'ratio (median of passes)', 'errors', 'target'],
      align: 'lrrrrrrrrl',
      rows: [
        row('lone node (solo, no cluster)', m.lone, '1.00x lone'),
        row('one-member cluster (replication machine, no peers)', m.member, `${fmtRatio(ratios.memberVsLone)} lone`),
        row(`3-node region on this one 2-core machine (its nodes share the CPU), load spread evenly (${CONNECTIONS / 3} connections per node)`, m.region, `${fmtRatio(ratios.regionVsLone)} lone`, regionTarget),
        ['3-node region, one machine per node, CPU-bound (derived: lone CPU / write ÷ region node CPU / write)', '', '', '', '', '', '', fmtRatio(perMachineRatio), '', `>= 0.7x lone: ${perMachineRatio >= 0.7 ? 'met' : 'NOT met'}`],
      ],
      notes: [
        'Real node processes (`npm start`\'s entry, LMDB store, default cluster settings) on loopback; autocannon in its own process. All subjects run for the whole part and are measured in alternating rounds; ratios are the median of per-pass ratios of rounds run back to back.',
        `On this 2-core machine the 3 nodes of the region, the load generator and everything else running share the same 2 cores: a write's fan-out to 2 peers costs CPU that a real region spends on other machines. CPU / acked write, all nodes: user + system time of every node of the subject (the region: all 3, applying each other's fan-out included) per write acknowledged to the client; it does not depend on other load. Node CPU / write (per node): that total divided by the subject's nodes. Cores busy: the subject's nodes' CPU time over the round's length (2 at most here, less what the load generator takes). Region / lone total CPU per write: ${fmtRatio(cpuRatio)}. The derived row is what the region would reach with each node on its own machine while CPU is the bound: a node there spends its node CPU / write per cluster write, a lone node its own (decision 0307).`,
      ],
    },
    {
      title: `replication: lag at 50 % of the max write load, ${lg.nodes} nodes in ${lg.regions} regions (2 per region), ack=one, ${lagSeconds} s`,
      columns: ['from the write\'s send until', 'samples', 'p50', 'p99', 'max'],
      align: 'lrrrr',
      rows: [lagRow('its answer (ack=one, at the receiving node)', lg.rows.ack), lagRow('visible on the other node of its region', lg.rows.sameRegion), lagRow('visible on a node of another region', lg.rows.remoteRegion), lagRow('visible on every node', lg.rows.everywhere)],
      notes: [
        `Max write load: ${fmtOps(lg.maxRps)} writes/s (autocannon, closed loop, ${CONNECTIONS} connections over the 6 nodes, just before; ${us(lg.cpuPerWriteTotal)} of CPU per write over all 6 nodes); the lag run sends ${fmtOps(lg.lag.rate)} writes/s open loop, round-robin over the 6 nodes (${lg.lag.acked} acknowledged, ${lg.lag.failed} failed, ${lg.lag.missing} (write, node) pairs not reported within 5 s).`,
        `Visible: the node's /v1/watch stream (SSE, one per node, held by the load process) reported the key; every time is taken in that one process. Remote region: both nodes of each other region (one gets the write directly, the other through its region's relay). The measuring process's event-loop delay was p50 ${ms(lg.lag.loopDelayP50)}, p99 ${ms(lg.lag.loopDelayP99)}: the resolution of these times. 6 node processes share 2 cores with the load generator.`,
      ],
    },
  ]
  return {
    params: { antiEntropy: { keys: aeKeys, missed: aeMissed, valueBytes: 100, link: '1-10 ms' }, throughput: { connections: CONNECTIONS, seconds, passes, valueBytes: 100, ack: 'one' }, lag: { nodes: 6, regions: 3, seconds: lagSeconds, rate: 'half of max' } },
    results: { antiEntropy: { ...ae, ratio: aeRatio }, throughput: { ...m, passes: tp, ratios, cpuRatio, perMachineRatio }, lag: lg },
    tables,
  }
}
