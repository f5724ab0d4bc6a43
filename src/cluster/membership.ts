/**
 * Cluster membership as a pure state machine on the kernel (kernel.ts): SWIM (Das et al.,
 * 2002) with phi-accrual detection (phi-accrual.ts) deciding when to start suspecting,
 * and Lifeguard's habit of asking other peers before believing a link over a node.
 *
 * Every `heartbeatIntervalMs` a node pings each member it believes alive or suspect; the
 * ack is that peer's heartbeat (its inter-arrival times feed the peer's phi detector, its
 * round trip the peer's RTT). Pings and acks carry the sender's own record (id, region,
 * address, incarnation), the cluster state, what the sender believes of the receiver
 * (`you`), and a few membership deltas from the bounded broadcast queue (piggybacked
 * gossip, no extra messages). When a peer's phi passes the threshold, the node asks
 * `indirectProbes` other members to ping it (ping-req); an ack relayed back (ind-ack) is
 * evidence enough. Without one within `indirectTimeoutMs`, the peer becomes `suspect`
 * at its incarnation and the suspicion spreads; if the peer does not refute it within
 * `suspicionTimeoutMs`, it becomes `dead`. A node that hears itself suspected or dead
 * at an incarnation >= its own refutes by bumping its incarnation (persisted), and the
 * higher incarnation wins everywhere. Precedence of two facts about a member: the higher
 * incarnation; at equal incarnation left > dead > suspect > alive.
 *
 * Joining: a node pings its seeds asking for the full member list (and keeps doing so
 * while it knows no live member); the seed adds it on the spot and gossips it. Every
 * `syncEveryTicks` a node also exchanges full lists with a random member and pings the
 * seeds it does not see alive, and each tick it pings one dead member: that is how
 * the two halves of a healed partition find each other (each side refutes the other's
 * verdict). Dead and left members leave the view `pruneAfterMs` after the verdict; a
 * tombstone (id and incarnation) remains so stale gossip cannot resurrect them.
 *
 * Leaving: `leave()` marks the node `left` and tells every member directly (left beats
 * alive at the same incarnation, so it is `left` at once wherever the message arrives);
 * afterwards the machine only answers a late message with its leave again (for whoever
 * lost the first one). A restart (the kernel's `start` with what this machine
 * persisted) resumes the same id at the persisted incarnation + 1, so the rejoin beats
 * any verdict about the previous life; a wiped disk starts at 0 and refutes upwards.
 *
 * Runtime join (`join(ids)`): the node learned peers' ids after start (discovery resolved
 * an address to an id); they become seeds, pinged for the full list at once and, like
 * every seed, again every `syncEveryTicks` while not seen alive. Unlike a configured seed,
 * an id joined at runtime is forgotten once it has not been in the view (never seen, or
 * pruned) for `pruneAfterMs` since its join: a node killed for good, or replaced under a
 * fresh id, is not pinged for the rest of the process. Discovery joins it again if it is
 * back at an address it lists.
 *
 * Each record carries two addresses: `address` (where clients reach the node, its HTTP
 * API) and `clusterAddress` (what peers dial for this protocol); the node's transport
 * learns peers' cluster addresses from `peers()` after each step.
 *
 * Cluster state (`ACTIVE` / `NO_MIGRATION` / `PASSIVE`) is a register versioned by
 * (version, origin node id): every message carries it, the higher wins, and a node
 * persists it when it changes, so it survives restarts.
 *
 * Commands from the node (`setClusterState`, `leave`) are queued and applied at the next
 * tick; the caller may apply them at once by stepping a `timer` event named `command`.
 *
 * Detection bound (`detectionBoundMs`): a silently dead peer's last ack arrived at most
 * one interval before it died; phi passes the threshold `phiCrossingMs` later; the next
 * tick (<= one interval) notices and starts indirect probes; `indirectTimeoutMs` later it
 * is suspect, `suspicionTimeoutMs` later dead; the verdict reaches every other member on
 * its next ping or ack (<= one interval + latency), if they did not reach it themselves.
 * With the defaults: 4.52 + 1 + 0.5 + 3 + 1 s (+ latency) ~ 10.1 s after the kill, on links with a
 * steady history; lossy links make phi (deliberately) more patient.
 */
import { InvalidOptionsError } from '../core/errors.js'
import { randomOption, type Random } from '../core/random.js'
import { BroadcastQueue } from './broadcast-queue.js'
import type { KernelAction, KernelEvent, StateMachine } from './kernel.js'
import { type PhiAccrualOptions, PhiAccrualDetector, phiCrossingMs, type ResolvedPhiOptions, resolvePhiOptions } from './phi-accrual.js'
import { type NodeId, validateNodeId } from './transport.js'

export type MemberStatus = 'alive' | 'suspect' | 'dead' | 'left'

export const CLUSTER_STATES = ['ACTIVE', 'NO_MIGRATION', 'PASSIVE'] as const
export type ClusterState = (typeof CLUSTER_STATES)[number]

/** One fact about a member, as gossiped. */
export interface MemberRecord {
  readonly id: NodeId
  readonly region: string
  /** Where clients reach it (host:port of its HTTP API), as it advertises itself. */
  readonly address: string
  /** Where peers dial it for the cluster protocol (host:port); absent when it is the same as `address` or unknown. */
  readonly clusterAddress?: string
  readonly incarnation: number
  readonly status: MemberStatus
}

export interface ClusterStateRecord {
  readonly state: ClusterState
  readonly version: number
  /** Node that set it ('' for the initial ACTIVE): breaks ties between equal versions set concurrently. */
  readonly origin: NodeId
}

export type MembershipMessageKind = 'ping' | 'ack' | 'ping-req' | 'ind-ack' | 'leave'

/** The one message shape on the wire (JSON). */
export interface MembershipMessage {
  readonly kind: MembershipMessageKind
  /** The sender's own record. */
  readonly from: MemberRecord
  readonly cs: ClusterStateRecord
  readonly gossip: readonly MemberRecord[]
  /** ping/ack: probe sequence; ping-req/ind-ack: the origin's sequence. */
  readonly seq?: number
  /** ping-req/ind-ack: the member to probe / that answered. */
  readonly target?: NodeId
  /** What the sender believes of the receiver: [incarnation, status]. */
  readonly you?: readonly [number, MemberStatus]
  /** ping: please answer with your full member list. */
  readonly wantFull?: boolean
  /** Full member list (join and periodic sync). */
  readonly full?: readonly MemberRecord[]
}

export interface MembershipOptions {
  readonly id: NodeId
  /** @default 'default' */
  readonly region?: string
  /** Advertised client address (host:port of the HTTP API). @default '' */
  readonly address?: string
  /** Advertised cluster address (host:port peers dial). @default '' (not sent) */
  readonly clusterAddress?: string
  /** Members to announce to when joining. @default [] */
  readonly seeds?: readonly NodeId[]
  /** Jitter and peer choice (SeededRandom in simulations). */
  readonly random: Random
  /** How often each member is pinged; also the tick. @default 1000 */
  readonly heartbeatIntervalMs?: number
  readonly phi?: PhiAccrualOptions
  /** Members asked to probe a silent peer before suspecting it (k). @default 3 */
  readonly indirectProbes?: number
  /** How long to wait for an indirect ack. @default 500 */
  readonly indirectTimeoutMs?: number
  /** How long a suspect has to refute before it is dead. @default 3000 */
  readonly suspicionTimeoutMs?: number
  /** Dead and left members leave the view this long after the verdict. @default 60000 */
  readonly pruneAfterMs?: number
  /** Full-list exchange with a random member (and the seeds not seen alive) every this many ticks. @default 10 */
  readonly syncEveryTicks?: number
  /** Each delta is piggybacked retransmitMult * ceil(log10(n + 1)) times. @default 4 */
  readonly retransmitMult?: number
  /** Deltas per message. @default 8 */
  readonly maxPiggyback?: number
  /** Broadcast queue bound. @default 1024 */
  readonly maxBroadcasts?: number
  /** Pruned members remembered (incarnation only) against resurrection. @default 10000 */
  readonly maxTombstones?: number
}

export interface MemberView {
  readonly id: NodeId
  readonly region: string
  readonly address: string
  /** Cluster protocol address (host:port peers dial); absent when unknown (a node that does not cluster). */
  readonly clusterAddress?: string
  readonly status: MemberStatus
  readonly incarnation: number
  /** Current suspicion level (null for self); capped at 1000. */
  readonly phi: number | null
  /** Smoothed probe round trip, ms (null for self or before the first ack). */
  readonly rttMs: number | null
  readonly self: boolean
}

export interface RegionView {
  readonly region: string
  /** 0 for the node's own region; 1, 2, … for the others by average RTT (unmeasured last, by name). */
  readonly rank: number
  /** Average of the region's members' RTTs, ms (null when none measured). */
  readonly rttMs: number | null
  readonly members: readonly MemberView[]
}

/** The node's view of the cluster: what `GET /v1/cluster` returns. */
export interface ClusterView {
  readonly self: NodeId
  readonly region: string
  readonly incarnation: number
  readonly status: 'alive' | 'left'
  readonly state: ClusterStateRecord
  /** Own region first, then by rank. */
  readonly regions: readonly RegionView[]
}

interface Member {
  id: NodeId
  region: string
  address: string
  clusterAddress: string
  incarnation: number
  status: MemberStatus
  statusSince: number
  detector: PhiAccrualDetector
  rttMs: number | undefined
}

interface Pending {
  readonly target: NodeId
  readonly sentAt: number
  /** Set when this ping is on behalf of `origin`'s ping-req. */
  readonly relay?: { readonly origin: NodeId; readonly seq: number }
}

type Command = { readonly type: 'state'; readonly state: ClusterState } | { readonly type: 'leave' } | { readonly type: 'join'; readonly ids: readonly NodeId[] }

/** What the node's transport needs to know of a member (see `peers()`). */
export interface PeerRecord {
  readonly id: NodeId
  readonly clusterAddress: string
  readonly status: MemberStatus
}

type Action = KernelAction<MembershipMessage>

const RANK: Record<MemberStatus, number> = { alive: 0, suspect: 1, dead: 2, left: 3 }
const STATUSES = new Set<string>(Object.keys(RANK))
/** A region name; the same rule as REGION_NAME (src/protocol/wire.ts), which the node's options and the client check (src/cluster/ imports only core). */
const REGION = /^[A-Za-z0-9_.-]{1,64}$/
const PERSIST_KEY = 'membership'
const RTT_WEIGHT = 0.2
const encoder = new TextEncoder()
const decoder = new TextDecoder()

interface Resolved {
  readonly heartbeatIntervalMs: number
  readonly phi: ResolvedPhiOptions
  readonly indirectProbes: number
  readonly indirectTimeoutMs: number
  readonly suspicionTimeoutMs: number
  readonly pruneAfterMs: number
  readonly syncEveryTicks: number
  readonly retransmitMult: number
  readonly maxPiggyback: number
  readonly maxBroadcasts: number
  readonly maxTombstones: number
}

function resolve(o: MembershipOptions): Resolved {
  const num = (name: keyof MembershipOptions, value: unknown, fallback: number, min: number, integer = false): number => {
    if (value === undefined) return fallback
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
      throw new InvalidOptionsError(name, `expected ${integer ? 'an integer' : 'a finite number'} >= ${min}`)
    }
    return value
  }
  return {
    heartbeatIntervalMs: num('heartbeatIntervalMs', o.heartbeatIntervalMs, 1000, 1),
    phi: resolvePhiOptions(o.phi ?? {}),
    indirectProbes: num('indirectProbes', o.indirectProbes, 3, 0, true),
    indirectTimeoutMs: num('indirectTimeoutMs', o.indirectTimeoutMs, 500, 1),
    suspicionTimeoutMs: num('suspicionTimeoutMs', o.suspicionTimeoutMs, 3000, 1),
    pruneAfterMs: num('pruneAfterMs', o.pruneAfterMs, 60_000, 0),
    syncEveryTicks: num('syncEveryTicks', o.syncEveryTicks, 10, 1, true),
    retransmitMult: num('retransmitMult', o.retransmitMult, 4, 1, true),
    maxPiggyback: num('maxPiggyback', o.maxPiggyback, 8, 0, true),
    maxBroadcasts: num('maxBroadcasts', o.maxBroadcasts, 1024, 1, true),
    maxTombstones: num('maxTombstones', o.maxTombstones, 10_000, 0, true),
  }
}

/**
 * Worst case from a silent death to `dead` in every live member's view, ms, for these
 * options on links with a steady history (see the file comment), plus `latencyMs` of
 * one-way delivery slack.
 */
export function detectionBoundMs(options: Omit<MembershipOptions, 'id' | 'random'> = {}, latencyMs = 100): number {
  const r = resolve({ id: 'x', random: { next: () => 0 }, ...options })
  const interval = r.heartbeatIntervalMs
  return phiCrossingMs(r.phi, interval) + interval + r.indirectTimeoutMs + r.suspicionTimeoutMs + interval + latencyMs
}

export class Membership implements StateMachine<MembershipMessage> {
  readonly #id: NodeId
  readonly #region: string
  readonly #address: string
  readonly #clusterAddress: string
  readonly #seeds: NodeId[]
  readonly #random: Random
  readonly #o: Resolved
  readonly #members = new Map<NodeId, Member>()
  readonly #tombstones = new Map<NodeId, { incarnation: number; status: MemberStatus }>()
  readonly #pending = new Map<number, Pending>()
  readonly #indirect = new Map<NodeId, number>()
  readonly #queue: BroadcastQueue<MemberRecord>
  readonly #commands: Command[] = []
  /** Seeds added by `join` (not configured), with when they were joined: forgotten once out of the view for pruneAfterMs. */
  readonly #joined = new Map<NodeId, number>()
  #incarnation = 0
  #left = false
  #started = false
  #cs: ClusterStateRecord
  #seq = 0
  #ticks = 0
  #now = 0

  constructor(options: MembershipOptions) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object')
    validateNodeId(options.id, 'id')
    const region = options.region ?? 'default'
    if (typeof region !== 'string' || !REGION.test(region)) throw new InvalidOptionsError('region', 'expected 1-64 characters of [A-Za-z0-9_.-]')
    const address = options.address ?? ''
    if (typeof address !== 'string' || address.length > 256) throw new InvalidOptionsError('address', 'expected a string of at most 256 characters')
    const clusterAddress = options.clusterAddress ?? ''
    if (typeof clusterAddress !== 'string' || clusterAddress.length > 256) throw new InvalidOptionsError('clusterAddress', 'expected a string of at most 256 characters')
    const seeds = options.seeds ?? []
    if (!Array.isArray(seeds)) throw new InvalidOptionsError('seeds', 'expected an array of node ids')
    seeds.forEach((s, i) => validateNodeId(s, `seeds[${i}]`))
    randomOption(options.random, 'random')
    this.#o = resolve(options)
    this.#id = options.id
    this.#region = region
    this.#address = address
    this.#clusterAddress = clusterAddress
    this.#seeds = seeds.filter((s) => s !== options.id)
    this.#random = options.random
    this.#cs = { state: 'ACTIVE', version: 0, origin: '' }
    this.#queue = new BroadcastQueue({ maxSize: this.#o.maxBroadcasts, retransmitMult: this.#o.retransmitMult })
  }

  get id(): NodeId {
    return this.#id
  }

  get incarnation(): number {
    return this.#incarnation
  }

  get clusterState(): ClusterStateRecord {
    return this.#cs
  }

  /** The status of member `id` in this view (`alive` for self until it leaves); undefined when unknown or pruned. */
  status(id: NodeId): MemberStatus | undefined {
    if (id === this.#id) return this.#left ? 'left' : 'alive'
    return this.#members.get(id)?.status
  }

  /** Ids in this view (self included), any status. */
  memberIds(): NodeId[] {
    return [this.#id, ...this.#members.keys()]
  }

  /** Queues a cluster-state change (applied at the next tick, or at once on a `command` timer event). */
  setClusterState(state: ClusterState): void {
    if (!CLUSTER_STATES.includes(state)) throw new InvalidOptionsError('state', `expected one of ${CLUSTER_STATES.join(', ')}`)
    this.#commands.push({ type: 'state', state })
  }

  /**
   * Queues a join through peers learned after start (applied like `setClusterState`): each
   * id becomes a seed, is pinged for the full member list at once, and again every
   * `syncEveryTicks` while it is not seen alive. Ids already seeds, and this node's own, are skipped.
   */
  join(ids: readonly NodeId[]): void {
    if (!Array.isArray(ids)) throw new InvalidOptionsError('ids', 'expected an array of node ids')
    ids.forEach((id, i) => validateNodeId(id, `ids[${i}]`))
    this.#commands.push({ type: 'join', ids: [...ids] })
  }

  /** Whether `id` is a seed: configured, joined (a queued join included), and not forgotten since. */
  isSeed(id: NodeId): boolean {
    return this.#seeds.includes(id) || this.#commands.some((c) => c.type === 'join' && c.ids.includes(id) && id !== this.#id)
  }

  /** Every member in this view but self, with its cluster address and status (what the transport dials). */
  peers(): PeerRecord[] {
    const out: PeerRecord[] = []
    for (const m of this.#members.values()) out.push({ id: m.id, clusterAddress: m.clusterAddress, status: m.status })
    return out
  }

  /** Queues a graceful leave (applied like `setClusterState`). */
  leave(): void {
    this.#commands.push({ type: 'leave' })
  }

  /** The topology snapshot at `now` (default: the time of the last step). */
  view(now = this.#now): ClusterView {
    const byRegion = new Map<string, MemberView[]>()
    const add = (m: MemberView): void => {
      const list = byRegion.get(m.region) ?? []
      list.push(m)
      byRegion.set(m.region, list)
    }
    const withCluster = (v: MemberView, clusterAddress: string): MemberView => (clusterAddress === '' ? v : { ...v, clusterAddress })
    add(withCluster({ id: this.#id, region: this.#region, address: this.#address, status: this.#left ? 'left' : 'alive', incarnation: this.#incarnation, phi: null, rttMs: null, self: true }, this.#clusterAddress))
    for (const m of this.#members.values()) {
      const phi = Math.min(1000, m.detector.phi(now))
      add(withCluster({ id: m.id, region: m.region, address: m.address, status: m.status, incarnation: m.incarnation, phi: Math.round(phi * 100) / 100, rttMs: m.rttMs === undefined ? null : Math.round(m.rttMs * 10) / 10, self: false }, m.clusterAddress))
    }
    const regions = [...byRegion.entries()].map(([region, members]) => {
      members.sort((a, b) => (a.id < b.id ? -1 : 1))
      const rtts = members.filter((m) => m.rttMs !== null && (m.status === 'alive' || m.status === 'suspect')).map((m) => m.rttMs as number)
      const rttMs = rtts.length === 0 ? null : Math.round((rtts.reduce((a, b) => a + b, 0) / rtts.length) * 10) / 10
      return { region, rank: 0, rttMs, members }
    })
    const others = regions.filter((r) => r.region !== this.#region)
    others.sort((a, b) => (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity) || (a.region < b.region ? -1 : 1))
    const own = regions.find((r) => r.region === this.#region)
    const ranked: RegionView[] = own === undefined ? [] : [own]
    others.forEach((r, i) => ranked.push({ ...r, rank: i + 1 }))
    return { self: this.#id, region: this.#region, incarnation: this.#incarnation, status: this.#left ? 'left' : 'alive', state: this.#cs, regions: ranked }
  }

  step(event: KernelEvent<MembershipMessage>, now: number): Action[] {
    this.#now = now
    const actions: Action[] = []
    switch (event.type) {
      case 'start':
        this.#start(event.persisted, now, actions)
        break
      case 'timer':
        this.#timer(event.name, now, actions)
        break
      case 'message':
        if (!this.#started || !isMessage(event.message) || event.message.from.id !== event.from || event.from === this.#id) break
        // A left node answers whoever missed its leave (a lost message) with the leave again, and nothing else.
        if (this.#left) actions.push(this.#message(event.from, 'leave'))
        else this.#receive(event.from, event.message, now, actions)
        break
      case 'unreachable':
        // Detection rests on phi and probes alone: a refused connection and a partition look the same to it.
        break
    }
    return actions
  }

  // ---- lifecycle ---------------------------------------------------------------------

  #start(persisted: ReadonlyMap<string, Uint8Array>, now: number, actions: Action[]): void {
    const saved = parseSaved(persisted.get(PERSIST_KEY))
    this.#started = true
    this.#incarnation = saved === undefined ? 0 : saved.incarnation + 1
    if (saved?.cs !== undefined) this.#cs = saved.cs
    actions.push(this.#persist())
    for (const seed of this.#seeds) actions.push(this.#message(seed, 'ping', { wantFull: true }))
    // A random first tick keeps members from probing in lockstep.
    actions.push({ type: 'timer', name: 'tick', afterMs: Math.floor(this.#random.next() * this.#o.heartbeatIntervalMs) + 1 })
  }

  #timer(name: string, now: number, actions: Action[]): void {
    if (!this.#started || this.#left) return
    if (name === 'tick') this.#tick(now, actions)
    else if (name === 'command') this.#applyCommands(actions)
    else if (name.startsWith('indirect:')) this.#indirectExpired(name.slice(9), now, actions)
    else if (name.startsWith('suspect:')) this.#suspicionExpired(name.slice(8), now, actions)
  }

  #applyCommands(actions: Action[]): void {
    for (const c of this.#commands.splice(0)) {
      if (this.#left) break
      if (c.type === 'join') {
        for (const id of c.ids) {
          if (id === this.#id || this.#seeds.includes(id)) continue
          this.#seeds.push(id)
          this.#joined.set(id, this.#now)
          actions.push(this.#message(id, 'ping', { wantFull: true }))
        }
      } else if (c.type === 'state') {
        if (c.state === this.#cs.state) continue
        this.#cs = { state: c.state, version: this.#cs.version + 1, origin: this.#id }
        actions.push(this.#persist())
      } else {
        this.#left = true
        for (const m of this.#members.values()) {
          if (m.status === 'alive' || m.status === 'suspect') actions.push(this.#message(m.id, 'leave'))
        }
        for (const name of ['tick', ...[...this.#members.keys()].flatMap((id) => [`indirect:${id}`, `suspect:${id}`])]) actions.push({ type: 'cancel', name })
      }
    }
  }

  // ---- the protocol period -------------------------------------------------------------

  #tick(now: number, actions: Action[]): void {
    this.#ticks++
    this.#applyCommands(actions)
    if (this.#left) return
    const o = this.#o
    const dead: Member[] = []
    const live: Member[] = []
    for (const m of this.#members.values()) {
      if (m.status === 'alive' || m.status === 'suspect') live.push(m)
      else if (m.status === 'dead') dead.push(m)
    }
    for (const m of live) actions.push(this.#probe(m.id, now))
    for (const m of live) {
      if (m.status !== 'alive' || this.#indirect.has(m.id) || m.detector.phi(now) <= o.phi.threshold) continue
      this.#indirect.set(m.id, now)
      const helpers = this.#pick(live.filter((h) => h.id !== m.id && h.status === 'alive'), o.indirectProbes)
      for (const h of helpers) actions.push(this.#message(h.id, 'ping-req', { seq: this.#seq, target: m.id }))
      actions.push({ type: 'timer', name: `indirect:${m.id}`, afterMs: o.indirectTimeoutMs })
    }
    // One dead member per tick: if it is back (a healed partition), it hears its verdict and refutes.
    const [ghost] = this.#pick(dead, 1)
    if (ghost !== undefined) actions.push(this.#probe(ghost.id, now, true))
    const alone = live.length === 0
    if (alone || this.#ticks % o.syncEveryTicks === 0) {
      const [partner] = this.#pick(live, 1)
      if (partner !== undefined) actions.push(this.#probe(partner.id, now, true))
      const unseen = this.#seeds.filter((s) => { const st = this.#members.get(s)?.status; return st !== 'alive' && st !== 'suspect' })
      for (const s of unseen) actions.push(this.#message(s, 'ping', { wantFull: true }))
    }
    this.#prune(now)
    actions.push({ type: 'timer', name: 'tick', afterMs: o.heartbeatIntervalMs })
  }

  #probe(target: NodeId, now: number, wantFull = false): Action {
    const seq = ++this.#seq
    this.#pending.set(seq, { target, sentAt: now })
    return this.#message(target, 'ping', { seq, wantFull: wantFull || undefined })
  }

  #indirectExpired(id: NodeId, now: number, actions: Action[]): void {
    const startedAt = this.#indirect.get(id)
    this.#indirect.delete(id)
    const m = this.#members.get(id)
    if (startedAt === undefined || m === undefined || m.status !== 'alive') return
    if ((m.detector.lastHeartbeat ?? -Infinity) >= startedAt) return
    this.#setStatus(m, m.incarnation, 'suspect', now, actions)
  }

  #suspicionExpired(id: NodeId, now: number, actions: Action[]): void {
    const m = this.#members.get(id)
    if (m === undefined || m.status !== 'suspect') return
    if (now - m.statusSince < this.#o.suspicionTimeoutMs) {
      actions.push({ type: 'timer', name: `suspect:${id}`, afterMs: this.#o.suspicionTimeoutMs - (now - m.statusSince) })
      return
    }
    this.#setStatus(m, m.incarnation, 'dead', now, actions)
  }

  #prune(now: number): void {
    for (const m of [...this.#members.values()]) {
      if ((m.status === 'dead' || m.status === 'left') && now - m.statusSince >= this.#o.pruneAfterMs) {
        this.#members.delete(m.id)
        this.#tomb(m.id, m.incarnation, m.status)
      }
    }
    for (const [id, at] of this.#joined) {
      if (this.#members.has(id) || now - at < this.#o.pruneAfterMs) continue
      this.#joined.delete(id)
      this.#seeds.splice(this.#seeds.indexOf(id), 1)
    }
    const stale = now - 10 * this.#o.heartbeatIntervalMs
    for (const [seq, p] of this.#pending) {
      if (p.sentAt >= stale) break
      this.#pending.delete(seq)
    }
  }

  #tomb(id: NodeId, incarnation: number, status: MemberStatus): void {
    this.#tombstones.delete(id)
    this.#tombstones.set(id, { incarnation, status })
    while (this.#tombstones.size > this.#o.maxTombstones) {
      const oldest = this.#tombstones.keys().next().value as NodeId
      this.#tombstones.delete(oldest)
    }
  }

  // ---- messages ----------------------------------------------------------------------

  #receive(from: NodeId, msg: MembershipMessage, now: number, actions: Action[]): void {
    this.#merge(msg.from, now, actions)
    for (const r of msg.gossip) this.#merge(r, now, actions)
    if (msg.full !== undefined) for (const r of msg.full) this.#merge(r, now, actions)
    this.#mergeState(msg.cs, actions)
    if (msg.you !== undefined) this.#merge({ id: this.#id, region: this.#region, address: this.#address, incarnation: msg.you[0], status: msg.you[1] }, now, actions)
    switch (msg.kind) {
      case 'ping':
        actions.push(this.#message(from, 'ack', { seq: msg.seq, full: msg.wantFull === true ? this.#fullList() : undefined }))
        break
      case 'ack': {
        const p = msg.seq === undefined ? undefined : this.#pending.get(msg.seq)
        if (p === undefined || p.target !== from) break
        this.#pending.delete(msg.seq as number)
        if (p.relay !== undefined) {
          actions.push(this.#message(p.relay.origin, 'ind-ack', { seq: p.relay.seq, target: from }))
          break
        }
        const m = this.#members.get(from)
        if (m === undefined) break
        m.detector.heartbeat(now)
        const rtt = Math.max(0, now - p.sentAt)
        m.rttMs = m.rttMs === undefined ? rtt : m.rttMs + RTT_WEIGHT * (rtt - m.rttMs)
        break
      }
      case 'ping-req': {
        // Only on behalf of a member we know as live: a peer cannot make us ping arbitrary ids.
        const status = msg.target === undefined ? undefined : this.#members.get(msg.target)?.status
        if (msg.target === undefined || msg.seq === undefined || (status !== 'alive' && status !== 'suspect')) break
        const seq = ++this.#seq
        this.#pending.set(seq, { target: msg.target, sentAt: now, relay: { origin: from, seq: msg.seq } })
        actions.push(this.#message(msg.target, 'ping', { seq }))
        break
      }
      case 'ind-ack': {
        const m = msg.target === undefined ? undefined : this.#members.get(msg.target)
        if (m === undefined) break
        // Someone reached it: a heartbeat by proxy (this is what saves a node behind one bad link).
        m.detector.heartbeat(now)
        if (this.#indirect.delete(m.id)) actions.push({ type: 'cancel', name: `indirect:${m.id}` })
        break
      }
      case 'leave':
        break
    }
  }

  /** Applies one gossiped fact if it beats what this view holds. */
  #merge(r: MemberRecord, now: number, actions: Action[]): void {
    if (r.id === this.#id) {
      // Refute: anything but `alive` at >= my incarnation (or any higher incarnation) is news about a life I must outlive.
      if (this.#left) return
      if ((r.status !== 'alive' && r.incarnation >= this.#incarnation) || r.incarnation > this.#incarnation) {
        this.#incarnation = Math.max(this.#incarnation, r.incarnation) + 1
        actions.push(this.#persist())
        this.#queue.push(this.#id, this.#selfRecord())
      }
      return
    }
    const m = this.#members.get(r.id)
    if (m === undefined) {
      const tomb = this.#tombstones.get(r.id)
      if (tomb !== undefined && !beats(r, tomb)) return
      if (r.status === 'dead' || r.status === 'left') {
        // A verdict about someone we never saw: remember it against stale gossip, show nothing.
        this.#tomb(r.id, r.incarnation, r.status)
        return
      }
      this.#tombstones.delete(r.id)
      const fresh: Member = { id: r.id, region: r.region, address: r.address, clusterAddress: r.clusterAddress ?? '', incarnation: r.incarnation, status: 'alive', statusSince: now, detector: new PhiAccrualDetector(this.#o.phi), rttMs: undefined }
      // Learning of a member counts as its first heartbeat, so one that never answers is still judged.
      fresh.detector.heartbeat(now)
      this.#members.set(r.id, fresh)
      this.#queue.push(r.id, this.#record(fresh))
      if (r.status === 'suspect') this.#setStatus(fresh, r.incarnation, 'suspect', now, actions)
      return
    }
    if (!beats(r, m)) return
    m.region = r.region
    m.address = r.address
    m.clusterAddress = r.clusterAddress ?? m.clusterAddress
    this.#setStatus(m, r.incarnation, r.status, now, actions)
  }

  #setStatus(m: Member, incarnation: number, status: MemberStatus, now: number, actions: Action[]): void {
    const was = m.status
    m.incarnation = incarnation
    m.status = status
    m.statusSince = now
    if (status === 'alive' && (was === 'dead' || was === 'left')) {
      // A new life: its old history says nothing about it.
      m.detector = new PhiAccrualDetector(this.#o.phi)
      m.detector.heartbeat(now)
      m.rttMs = undefined
    }
    if (status === 'suspect') actions.push({ type: 'timer', name: `suspect:${m.id}`, afterMs: this.#o.suspicionTimeoutMs })
    else if (was === 'suspect') actions.push({ type: 'cancel', name: `suspect:${m.id}` })
    if (status !== 'alive' && this.#indirect.delete(m.id)) actions.push({ type: 'cancel', name: `indirect:${m.id}` })
    this.#queue.push(m.id, this.#record(m))
  }

  #mergeState(cs: ClusterStateRecord, actions: Action[]): void {
    const mine = this.#cs
    if (cs.version > mine.version || (cs.version === mine.version && cs.origin > mine.origin && cs.state !== mine.state)) {
      this.#cs = { state: cs.state, version: cs.version, origin: cs.origin }
      actions.push(this.#persist())
    }
  }

  #message(to: NodeId, kind: MembershipMessageKind, extra: { seq?: number; target?: NodeId; wantFull?: boolean; full?: MemberRecord[] } = {}): Action {
    // What we believe of the receiver; a tombstone too, so a pruned member that is back hears its verdict and refutes it.
    const m = this.#members.get(to) ?? this.#tombstones.get(to)
    const message: MembershipMessage = {
      kind,
      from: this.#selfRecord(),
      cs: this.#cs,
      gossip: kind === 'leave' ? [] : this.#queue.take(this.#o.maxPiggyback, this.#members.size + 1),
      ...(extra.seq === undefined ? {} : { seq: extra.seq }),
      ...(extra.target === undefined ? {} : { target: extra.target }),
      ...(m === undefined ? {} : { you: [m.incarnation, m.status] as const }),
      ...(extra.wantFull === true ? { wantFull: true } : {}),
      ...(extra.full === undefined ? {} : { full: extra.full }),
    }
    return { type: 'send', to, message }
  }

  #fullList(): MemberRecord[] {
    return [...this.#members.values()].map((m) => this.#record(m))
  }

  #selfRecord(): MemberRecord {
    const self: MemberRecord = { id: this.#id, region: this.#region, address: this.#address, incarnation: this.#incarnation, status: this.#left ? 'left' : 'alive' }
    return this.#clusterAddress === '' ? self : { ...self, clusterAddress: this.#clusterAddress }
  }

  #record(m: Member): MemberRecord {
    const r: MemberRecord = { id: m.id, region: m.region, address: m.address, incarnation: m.incarnation, status: m.status }
    return m.clusterAddress === '' ? r : { ...r, clusterAddress: m.clusterAddress }
  }

  #persist(): Action {
    return { type: 'persist', key: PERSIST_KEY, value: encoder.encode(JSON.stringify({ incarnation: this.#incarnation, cs: this.#cs })) }
  }

  /** Up to `n` distinct members of `from`, chosen with the machine's Random. */
  #pick<T>(from: readonly T[], n: number): T[] {
    const pool = [...from]
    const out: T[] = []
    while (out.length < n && pool.length > 0) out.push(pool.splice(Math.floor(this.#random.next() * pool.length), 1)[0])
    return out
  }
}

function beats(a: { incarnation: number; status: MemberStatus }, b: { incarnation: number; status: MemberStatus }): boolean {
  return a.incarnation > b.incarnation || (a.incarnation === b.incarnation && RANK[a.status] > RANK[b.status])
}

function parseSaved(bytes: Uint8Array | undefined): { incarnation: number; cs: ClusterStateRecord | undefined } | undefined {
  if (bytes === undefined) return undefined
  try {
    const v = JSON.parse(decoder.decode(bytes)) as { incarnation?: unknown; cs?: unknown }
    if (typeof v.incarnation !== 'number' || !Number.isSafeInteger(v.incarnation) || v.incarnation < 0) return undefined
    return { incarnation: v.incarnation, cs: isClusterState(v.cs) ? v.cs : undefined }
  } catch {
    return undefined
  }
}

function isRecord(r: unknown): r is MemberRecord {
  if (r === null || typeof r !== 'object') return false
  const o = r as Record<string, unknown>
  return (
    typeof o.id === 'string' &&
    typeof o.region === 'string' &&
    REGION.test(o.region) &&
    typeof o.address === 'string' &&
    o.address.length <= 256 &&
    (o.clusterAddress === undefined || (typeof o.clusterAddress === 'string' && o.clusterAddress.length <= 256)) &&
    typeof o.incarnation === 'number' &&
    Number.isSafeInteger(o.incarnation) &&
    o.incarnation >= 0 &&
    typeof o.status === 'string' &&
    STATUSES.has(o.status)
  )
}

function isClusterState(c: unknown): c is ClusterStateRecord {
  if (c === null || typeof c !== 'object') return false
  const o = c as Record<string, unknown>
  return typeof o.state === 'string' && (CLUSTER_STATES as readonly string[]).includes(o.state) && typeof o.version === 'number' && Number.isSafeInteger(o.version) && o.version >= 0 && typeof o.origin === 'string'
}

/** A frame from an authenticated peer is still checked: a malformed one is ignored, never half-applied. */
function isMessage(m: unknown): m is MembershipMessage {
  if (m === null || typeof m !== 'object') return false
  const o = m as Record<string, unknown>
  if (!['ping', 'ack', 'ping-req', 'ind-ack', 'leave'].includes(o.kind as string)) return false
  if (!isRecord(o.from) || !isClusterState(o.cs) || !Array.isArray(o.gossip) || !o.gossip.every(isRecord)) return false
  if (o.full !== undefined && (!Array.isArray(o.full) || !o.full.every(isRecord))) return false
  if (o.seq !== undefined && !Number.isSafeInteger(o.seq)) return false
  if (o.target !== undefined && typeof o.target !== 'string') return false
  if (o.you !== undefined) {
    const y = o.you as unknown[]
    if (!Array.isArray(y) || y.length !== 2 || !Number.isSafeInteger(y[0]) || (y[0] as number) < 0 || !STATUSES.has(y[1] as string)) return false
  }
  return true
}
