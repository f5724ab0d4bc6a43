/**
 * The `membership` suite (issue P8, "Benchmarks"): the pure SWIM + phi-accrual machine
 * (src/cluster/membership.ts) on SimNetwork (src/testing/), in simulated time — no sockets,
 * no wall clock, so the figures are deterministic for a seed and do not depend on the load
 * of the machine.
 *
 * - Detection: per phi threshold, a 6-node cluster joins, runs 3–4 s, then one node (drawn
 *   from the seed) is crashed silently; detection time = from the crash until every live
 *   node's view holds it `dead`. p50/p99 over the seeds, next to `detectionBoundMs` for
 *   those options (latency 1–30 ms per message).
 * - False positives: per phi threshold, 6 live nodes for `fpHours` simulated hours on links
 *   that lose 10 % of messages (1–60 ms latency); every time a node's view moves a live
 *   peer from alive to suspect (resp. to dead) is one false suspicion (resp. false death),
 *   counted at the machine's step, per node-hour.
 * - Gossip bytes: 6 and 60 nodes, after the join and 20 settling seconds, the bytes of every
 *   message sent (JSON frames as the transport carries them, before loss) per node per
 *   second over a window, and messages per node per second.
 */
import { SeededRandom } from '../src/core/random.js'
import { jsonCodec, type KernelAction, type KernelEvent, type StateMachine } from '../src/cluster/kernel.js'
import { detectionBoundMs, Membership, type MembershipMessage, type MembershipOptions, type MemberStatus } from '../src/cluster/membership.js'
import { type LinkOptions, SimNetwork } from '../src/testing/index.js'
import { median, type Table } from './harness.js'

type Net = SimNetwork<MembershipMessage>
type Extra = Partial<Omit<MembershipOptions, 'id' | 'random'>>

/** Phi thresholds compared (8 is the default). */
export const THRESHOLDS = [1, 4, 8, 12] as const
const JITTER: LinkOptions = { latency: { min: 1, max: 30 } }
const LOSSY: LinkOptions = { latency: { min: 1, max: 60 }, loss: 0.1 }

/** A Membership whose status changes about its peers are reported as they happen. */
class Watched implements StateMachine<MembershipMessage> {
  readonly inner: Membership
  readonly #peers: readonly string[]
  readonly #last = new Map<string, MemberStatus | undefined>()
  readonly #onChange: (peer: string, from: MemberStatus | undefined, to: MemberStatus | undefined) => void

  constructor(inner: Membership, peers: readonly string[], onChange: (peer: string, from: MemberStatus | undefined, to: MemberStatus | undefined) => void) {
    this.inner = inner
    this.#peers = peers
    this.#onChange = onChange
  }

  step(event: KernelEvent<MembershipMessage>, now: number): readonly KernelAction<MembershipMessage>[] {
    const actions = this.inner.step(event, now)
    for (const p of this.#peers) {
      const s = this.inner.status(p)
      const was = this.#last.get(p)
      if (s !== was) {
        this.#last.set(p, s)
        this.#onChange(p, was, s)
      }
    }
    return actions
  }
}

interface Built {
  readonly net: Net
  readonly ids: readonly string[]
  /** Bytes of every frame sent so far (counted at encoding, before loss). */
  bytes(): number
}

function build(seed: number, n: number, link: LinkOptions, extra: Extra, watch?: (node: string, peer: string, from: MemberStatus | undefined, to: MemberStatus | undefined) => void): Built {
  const json = jsonCodec<MembershipMessage>()
  let bytes = 0
  const codec = {
    encode: (m: MembershipMessage): Uint8Array => {
      const b = json.encode(m)
      bytes += b.byteLength
      return b
    },
    decode: (b: Uint8Array): MembershipMessage => json.decode(b),
  }
  const net: Net = new SimNetwork<MembershipMessage>({ seed, link, codec })
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`)
  for (const id of ids) {
    net.addNode(id, (me) => {
      const m = new Membership({ id: me, region: 'r1', address: `${me}.sim:7700`, seeds: ['n1', 'n2'], random: new SeededRandom(Math.floor(net.random.next() * 2 ** 32)), ...extra })
      return watch === undefined ? m : new Watched(m, ids, (peer, from, to) => watch(me, peer, from, to))
    })
  }
  return { net, ids, bytes: () => bytes }
}

const machineOf = (net: Net, id: string): Membership => {
  const m = net.machine(id)
  return m instanceof Watched ? m.inner : (m as Membership)
}
const live = (net: Net): string[] => net.nodeIds.filter((id) => net.status(id) === 'up')
const converged = (net: Net): boolean => {
  const up = live(net)
  return up.every((x) => up.every((y) => machineOf(net, x).status(y) === 'alive'))
}

function join(net: Net, maxMs: number): void {
  if (!net.runUntil(() => converged(net), maxMs, 100)) throw new Error(`the cluster did not converge within ${maxMs} simulated ms`)
}

/** The q-quantile (0..1) of `xs`, nearest rank. */
function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN
}

interface Detection {
  readonly threshold: number
  readonly seeds: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly boundMs: number
}

export function detection(threshold: number, seeds: number): Detection {
  const extra: Extra = { phi: { threshold } }
  const bound = detectionBoundMs(extra)
  const times: number[] = []
  for (let seed = 1; seed <= seeds; seed++) {
    const { net } = build(seed, 6, JITTER, extra)
    join(net, 10_000)
    net.run(3_000 + Math.floor(net.random.next() * 1_000))
    const victim = `n${1 + Math.floor(net.random.next() * 6)}`
    net.crash(victim)
    const start = net.clock.now()
    const others = live(net)
    const seen = net.runUntil(() => others.every((x) => machineOf(net, x).status(victim) === 'dead'), 4 * bound, 10)
    if (!seen) throw new Error(`seed ${seed}, threshold ${threshold}: ${victim} not dead everywhere within ${4 * bound} ms`)
    times.push(net.clock.now() - start)
  }
  return { threshold, seeds, p50Ms: quantile(times, 0.5), p99Ms: quantile(times, 0.99), maxMs: Math.max(...times), boundMs: Math.round(bound) }
}

interface FalsePositives {
  readonly threshold: number
  readonly nodeHours: number
  readonly suspicionsPerNodeHour: number
  readonly deathsPerNodeHour: number
}

export function falsePositives(threshold: number, hours: number, seed: number, phi: Extra['phi'] = {}): FalsePositives {
  let suspicions = 0
  let deaths = 0
  let counting = false
  const { net, ids } = build(seed, 6, LOSSY, { phi: { ...phi, threshold } }, (_node, _peer, from, to) => {
    if (!counting || from !== 'alive') return
    if (to === 'suspect') suspicions++
    else if (to === 'dead') deaths++
  })
  join(net, 30_000)
  counting = true
  net.run(hours * 3_600_000)
  const nodeHours = ids.length * hours
  return { threshold, nodeHours, suspicionsPerNodeHour: suspicions / nodeHours, deathsPerNodeHour: deaths / nodeHours }
}

interface Gossip {
  readonly nodes: number
  readonly windowS: number
  readonly bytesPerNodeS: number
  readonly messagesPerNodeS: number
}

export function gossip(nodes: number, windowS: number, seed: number, settleS = 20): Gossip {
  const { net, bytes } = build(seed, nodes, JITTER, {})
  join(net, 60_000)
  net.run(settleS * 1000)
  const b0 = bytes()
  const m0 = net.stats.sent
  net.run(windowS * 1000)
  return { nodes, windowS, bytesPerNodeS: (bytes() - b0) / nodes / windowS, messagesPerNodeS: (net.stats.sent - m0) / nodes / windowS }
}

/** Runs the suite; `quick` shrinks seeds and simulated hours (a smoke test). */
export async function membershipSuite(c: { quick: boolean }): Promise<{ params: Readonly<Record<string, unknown>>; results: Readonly<Record<string, unknown>>; tables: Table[] }> {
  // Sized for about a minute on a loaded 2-core machine (--quick: about ten seconds).
  const seeds = c.quick ? 5 : 20
  const fpHours = c.quick ? 0.1 : 0.5
  const windowS = c.quick ? 5 : 10
  const detections = THRESHOLDS.map((t) => detection(t, seeds))
  const fps = THRESHOLDS.map((t) => falsePositives(t, fpHours, 7))
  const gossips = [gossip(6, windowS, 11), gossip(60, windowS, 13)]
  const tables: Table[] = [
    {
      title: `membership: detection of a silent crash, 6 nodes, latency 1-30 ms, ${seeds} seeds per threshold (simulated time)`,
      columns: ['phi threshold', 'p50', 'p99', 'max', 'bound (detectionBoundMs)'],
      align: 'rrrrr',
      rows: detections.map((d) => [String(d.threshold), `${(d.p50Ms / 1000).toFixed(2)} s`, `${(d.p99Ms / 1000).toFixed(2)} s`, `${(d.maxMs / 1000).toFixed(2)} s`, `${(d.boundMs / 1000).toFixed(2)} s`]),
      notes: ['From the crash until every live node holds the victim dead; other options at their defaults (1 s heartbeat, 3 probes, 500 ms indirect timeout, 3 s suspicion).'],
    },
    {
      title: `membership: false positives under 10 % loss (latency 1-60 ms), 6 live nodes, ${fpHours} simulated h per threshold`,
      columns: ['phi threshold', 'node-hours', 'false suspicions / node-hour', 'false deaths / node-hour'],
      align: 'rrrr',
      rows: fps.map((f) => [String(f.threshold), String(f.nodeHours), f.suspicionsPerNodeHour.toFixed(2), f.deathsPerNodeHour.toFixed(2)]),
      notes: ['A false suspicion: a node moves a live peer from alive to suspect (it is refuted); a false death: to dead. 0.00 means none in that many node-hours: the 3 s acceptable heartbeat pause and the indirect probes absorb 10 % loss at every threshold (the same run with a 100 ms pause at threshold 1 counts about 70 false suspicions per node-hour).'],
    },
    {
      title: `membership: gossip traffic in steady state (${windowS} simulated s after 20 settling s)`,
      columns: ['nodes', 'bytes / node / s', 'messages / node / s'],
      align: 'rrr',
      rows: gossips.map((g) => [String(g.nodes), String(Math.round(g.bytesPerNodeS)), g.messagesPerNodeS.toFixed(1)]),
      notes: ['Bytes of the JSON frames every node sends (pings, acks, indirect probes, syncs; piggybacked deltas included), before loss; every member pings every member each heartbeat, so traffic per node grows with the cluster.'],
    },
  ]
  return {
    params: { thresholds: THRESHOLDS, seeds, fpHours, windowS, detectionLink: JITTER, lossyLink: LOSSY },
    results: { detection: detections, falsePositives: fps, gossip: gossips, medianDetectionMsAtDefault: median(detections.filter((d) => d.threshold === 8).map((d) => d.p50Ms)) },
    tables,
  }
}
