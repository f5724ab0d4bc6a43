/**
 * The `ladder` suite (issue P10, "Benchmarks"): read latency along the client's fallback
 * ladder with its first local node dead, on real node processes: 3 clustered nodes on
 * loopback (`npm start`'s entry, short failure-detection flags), 2 in the client's region
 * `london` and 1 in `paris`; the client uses the default ladder (tries of 0.5 / 0.5 / 0.75 /
 * 1.0 s, deadline 2.75 s) and the default `eject` options: a try abandoned by its timeout
 * quarantines its node at once (`eject.onTimeout`, decision 0314), other failures after
 * `eject.after` 3 in a row; a quarantined node is probed back in from 1 s on. A second
 * client with `eject.onTimeout: false` (a timeout is one of the 3 failures: the behaviour
 * before 0314) runs the same trials, interleaved with the first's.
 *
 * Per trial: reads of one key in a loop; then london node l1 is made unresponsive with
 * SIGSTOP (its sockets stay open and its kernel still accepts connections, so a try to it
 * costs the whole first timeout, the worst case), and reads go on:
 * - before detection: every read from the SIGSTOP until the client has quarantined l1
 *   (round-robin starts every other read at l1, so about half of them pay the 0.5 s try);
 *   "first try to the dead node" are those alone (seen by a counting transport);
 * - after detection: the next reads (l1 skipped).
 * Then SIGCONT, and the next trial begins once l1 is back in both clients' rotations and
 * every node sees 3 members alive. Trials alternate: default client, then the
 * `onTimeout: false` one. A last trial uses kill -9 instead: the kernel refuses
 * connections to a dead process at once, so before detection costs a refused connection,
 * not a timeout.
 */
import { createClient, type Client } from '../src/client/index.js'
import { undiciTransport } from '../src/client/undici-transport.js'
import type { HttpRequest, Transport } from '../src/client/transport.js'
import { ClusterProcess } from '../test/support/cluster-process.js'
import { tempDir } from '../test/support/node-fixtures.js'
import { freePort, waitUntil } from '../test/support/server-process.js'
import { pct } from './near-cache.js'
import type { Table } from './harness.js'

const SECRET = 'bench-ladder-cluster-secret-0123456789'
const TIMEOUTS_MS = [500, 500, 750, 1000]
const EJECT_AFTER = 3

interface Sizes {
  readonly stopTrials: number
  readonly afterReads: number
}
const FULL: Sizes = { stopTrials: 6, afterReads: 500 }
const QUICK: Sizes = { stopTrials: 2, afterReads: 100 }

const ms = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(1)} ms` : '-')

export async function ladderSuite(c: { quick: boolean }): Promise<{ params: Readonly<Record<string, unknown>>; results: Readonly<Record<string, unknown>>; tables: Table[] }> {
  const s = c.quick ? QUICK : FULL
  const layout: Array<[string, string]> = [['l1', 'london'], ['l2', 'london'], ['p1', 'paris']]
  const ports = await Promise.all(layout.map(() => freePort()))
  const seeds = `127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}`
  const dirs = layout.map(([id]) => tempDir(`stratacache-bench-ladder-${id}-`))
  const nodes = layout.map(([id, region], i) => new ClusterProcess(id, region, ports[i]!, dirs[i]!.path, seeds, SECRET))
  const inner = undiciTransport({ connections: 4, maxResponseBytes: 1 << 20, keepAliveMs: 4000 })
  let firstTry: string | undefined
  const counting: Transport = {
    request(origin: string, req: HttpRequest) {
      if (req.path.startsWith('/v1/keys/')) firstTry ??= origin
      return inner.request(origin, req)
    },
    close: () => inner.close(),
  }
  const mk = (onTimeout: boolean): Client => createClient({ nodes: [nodes[1]!.url], region: 'london', transport: counting, ladder: { timeouts: TIMEOUTS_MS, topologyRefresh: '1s' }, eject: { after: EJECT_AFTER, probeInterval: '1s', onTimeout } })
  const client = mk(true)
  const counted = mk(false)
  const target = nodes[0]!
  const inRotation = (c: Client, url: string): boolean => c.nodes().some((n) => n.node === url && n.inRotation)
  /** Reads of `c` may still try `url`: in its rotation and in the local list of its topology. */
  const tried = (c: Client, url: string): boolean => inRotation(c, url) && c.topology().local.includes(url)
  const detectedBy: string[] = []
  try {
    await Promise.all(nodes.map((n) => n.start()))
    await waitUntil(async () => (await Promise.all(nodes.map((n) => n.aliveCount()))).every((k) => k === 3), 30_000, () => '3 nodes joined', 100)
    await client.set('k', 'v', { ack: 'all' })
    for (const c of [client, counted]) await waitUntil(() => c.topology().source === 'cluster' && c.topology().local.length === 2, 10_000, () => `topology ${JSON.stringify(c.topology())}`, 50)

    const runs = { quarantine: { before: [] as number[], beforeDead: [] as number[], after: [] as number[], detectMs: [] as number[] }, counted: { before: [] as number[], beforeDead: [] as number[], after: [] as number[], detectMs: [] as number[] } }
    let failures = 0
    const read = async (c: Client): Promise<{ ms: number; first: string | undefined }> => {
      firstTry = undefined
      const t0 = performance.now()
      try {
        if ((await c.get('k'))?.value.toString() !== 'v') failures++
      } catch {
        failures++
      }
      return { ms: performance.now() - t0, first: firstTry }
    }
    const trial = async (c: Client, kind: 'SIGSTOP' | 'SIGKILL'): Promise<{ before: number[]; beforeDead: number[]; after: number[]; detect: number }> => {
      for (let i = 0; i < 20; i++) await read(c)
      const out = { before: [] as number[], beforeDead: [] as number[], after: [] as number[], detect: NaN }
      if (kind === 'SIGSTOP') target.proc!.child.kill('SIGSTOP')
      else await target.kill('SIGKILL')
      const t0 = performance.now()
      while (tried(c, target.url)) {
        if (performance.now() - t0 > 30_000) throw new Error('the dead node was never quarantined')
        const r = await read(c)
        out.before.push(r.ms)
        if (r.first === target.url) out.beforeDead.push(r.ms)
      }
      out.detect = performance.now() - t0
      detectedBy.push(inRotation(c, target.url) ? 'topology' : 'quarantine')
      for (let i = 0; i < s.afterReads; i++) out.after.push((await read(c)).ms)
      if (kind === 'SIGSTOP') {
        target.proc!.child.kill('SIGCONT')
        for (const d of [client, counted]) await waitUntil(() => tried(d, target.url), 60_000, () => 'l1 back in rotation', 50)
        await waitUntil(async () => (await Promise.all(nodes.map((n) => n.aliveCount()))).every((k) => k === 3), 60_000, () => '3 nodes alive again', 100)
      }
      process.stderr.write('.')
      return out
    }
    for (let t = 0; t < s.stopTrials; t++) {
      for (const [c, run] of [[client, runs.quarantine], [counted, runs.counted]] as const) {
        const r = await trial(c, 'SIGSTOP')
        run.before.push(...r.before)
        run.beforeDead.push(...r.beforeDead)
        run.after.push(...r.after)
        run.detectMs.push(r.detect)
      }
    }
    const killed = await trial(client, 'SIGKILL')
    const slow = (xs: number[]): number => xs.filter((x) => x >= TIMEOUTS_MS[0]! * 0.9).length
    const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b)
    const row = (name: string, xs: number[]): string[] => {
      const ys = sorted(xs)
      return [name, String(ys.length), String(slow(ys)), ms(pct(ys, 50)), ms(pct(ys, 99)), ms(ys[ys.length - 1] ?? NaN)]
    }
    const stop = (r: typeof runs.quarantine) => ({ trials: s.stopTrials, before: summary(r.before), beforeFirstTryDead: summary(r.beforeDead), slowReads: slow(r.before), after: summary(r.after), slowAfter: slow(r.after), detectionMs: summary(r.detectMs) })
    const q = runs.quarantine
    const k = runs.counted
    const results = {
      sigstop: stop(q),
      sigstopOnTimeoutFalse: stop(k),
      sigkill: { before: summary(killed.before), beforeFirstTryDead: summary(killed.beforeDead), after: summary(killed.after), detectionMs: killed.detect },
      failures,
      detectedBy,
    }
    const tables: Table[] = [
      {
        title: `read ladder with the first local node dead: 3 node processes (london l1, l2; paris p1), loopback; tries ${TIMEOUTS_MS.map((x) => x / 1000).join(' / ')} s, eject.after ${EJECT_AFTER}`,
        columns: ['reads', 'n', `slow (>= ${TIMEOUTS_MS[0]! * 0.9} ms)`, 'p50', 'p99', 'max'],
        align: 'lrrrrr',
        rows: [
          row(`SIGSTOP l1, before detection: every read (${s.stopTrials} trials)`, q.before),
          row('SIGSTOP l1, before detection: reads whose first try went to l1', q.beforeDead),
          row('SIGSTOP l1, after detection (l1 skipped)', q.after),
          row(`eject.onTimeout false, SIGSTOP l1, before detection: every read (${s.stopTrials} trials)`, k.before),
          row('eject.onTimeout false, SIGSTOP l1, after detection', k.after),
          row('kill -9 l1, before detection: every read (1 trial)', killed.before),
          row('kill -9 l1, after detection', killed.after),
        ],
        notes: [
          `Detection = the client quarantining l1: default (a timed-out try quarantines at once) SIGSTOP ${ms(pct(sorted(q.detectMs), 50))} median after the stop (${q.detectMs.map((x) => Math.round(x)).join(', ')} ms); \`eject.onTimeout: false\` (${EJECT_AFTER} failed tries in a row) ${ms(pct(sorted(k.detectMs), 50))} (${k.detectMs.map((x) => Math.round(x)).join(', ')} ms); kill -9 ${ms(killed.detect)}. Trials alternate between the two clients. Detected by: ${detectedBy.join(', ')} (quarantine: the client's own failures; topology: \`/v1/cluster\` already listed l1 as not alive). Failed reads: ${failures}.`,
          "A SIGSTOPped node keeps its sockets and its kernel accepts connections, so a try to it waits the whole first timeout (0.5 s) and the next rung answers; a kill -9'd node refuses at once. Wall-clock latency on a loaded machine: the 0.5 s timeouts dominate, the sub-millisecond rows move with the load.",
        ],
      },
    ]
    return { params: { nodes: 3, layout, timeoutsMs: TIMEOUTS_MS, ejectAfter: EJECT_AFTER, ejectOnTimeout: [true, false], probeInterval: '1s', topologyRefresh: '1s', ...s }, results, tables }
  } finally {
    await client.close()
    await counted.close()
    for (const n of nodes) {
      n.proc?.child.kill('SIGCONT')
      await n.kill()
    }
    for (const d of dirs) d.remove()
  }
}

function summary(xs: readonly number[]): { n: number; p50: number; p99: number; max: number } {
  const ys = [...xs].sort((a, b) => a - b)
  return { n: ys.length, p50: pct(ys, 50), p99: pct(ys, 99), max: ys[ys.length - 1] ?? NaN }
}
