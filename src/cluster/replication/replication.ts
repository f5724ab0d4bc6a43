/**
 * Replication as a pure state machine on the cluster kernel (kernel.ts): Zerocache's
 * spread (every local node, one node per remote region which spreads it in its own)
 * made solid with versions, hinted handoff, Merkle anti-entropy and session tokens.
 * Design and alternatives: docs/decisions/0210-0214; guarantees: docs/guide/replication.md.
 *
 * The machine owns no data: it reads and writes a synchronous `ReplicaStore`
 * (replica-store.ts) whose every call is durable on return (the node's adapter flushes
 * its write-behind queue before a step's messages go out: the kernel's persist-before-send
 * rule). It learns who is live from `topology()` (the membership view: members with
 * region and status, and the cluster state) and from the transport's `unreachable`
 * reports. No I/O, no clock but the `now` of each step, randomness only from `random`.
 *
 * Write path. A client request (`req` message) is versioned by the receiving node's
 * hybrid clock after merging the request's session token, checked (`ifVersion`) against
 * the node's own state, committed to the store, then fanned out: `rep` to every live node
 * of the region and, with `relay`, to one live node per remote region, which applies it
 * and spreads it in its region. A peer that is not live gets the change in its hint queue
 * instead (every member of a remote region without a live member, each its own hint); a
 * dead peer never stops the fan-out. Ack levels: `one` answers after the local commit;
 * `region` waits for every live node of the region, `all` for every live node (the
 * set fixed when the write is accepted), counting `ack` messages; missing acks are
 * re-sent directly every `ackRetryMs`; past the deadline the client gets ERR_ACK_TIMEOUT
 * with applied/required — the write stays committed and converges anyway.
 *
 * Anti-entropy. Every `antiEntropyIntervalMs` (jittered), and at once with a peer that
 * (re)joins or whose hints overflowed, and after a start, a node sends a peer the root of
 * its Merkle tree (digest.ts) with a fresh salt and a digest of its prefix tombstones and
 * tag invalidations. Both sides then run one symmetric, stateless rule on every `tree`
 * message: for each range whose digest differs, ship everything when the other side has
 * nothing there, let the other side ship when this one has nothing, swap record summaries
 * when both hold few records (<= `leafRecords`), else answer with the 4 children's
 * digests. Summaries name each record by key hash, hlc and a 16-bit check; a side ships
 * only the records the other lacks or holds older. A lost message ends that branch; the
 * next round finds it again. Records expired at the sender travel as tombstones of their
 * version (the value is never shipped; the replicas still agree, and no older write can
 * come back), tombstones past their grace not at all. Repair shipping is throttled per
 * round (`maxRepairRecordsPerRound`, `maxRepairBytesPerRound`); a round that shipped,
 * received or was cut short is followed by another after `antiEntropyFollowUpMs`.
 * `NO_MIGRATION` pauses anti-entropy and hint replay (both directions).
 *
 * Session tokens. Every response carries the node's clock (`token`); a request with one
 * merges it first, so the session's next write is versioned after everything it saw. A
 * read with `atLeast` (the newest version of that key the session saw) is answered only
 * when the node holds at least that version, else ERR_STALE_READ (retryable).
 */
import type { Clock } from '../../core/clock.js'
import { InvalidOptionsError } from '../../core/errors.js'
import { compareVersions, HybridLogicalClock, msOfVersion, type Version } from '../../core/hlc.js'
import { randomOption, type Random } from '../../core/random.js'
import type { KernelAction, KernelEvent, StateMachine } from '../kernel.js'
import { type NodeId, validateNodeId } from '../transport.js'
import { BUCKET_DEPTH, childrenOf, FANOUT, keyHash, MAX_DEPTH, packRange, recordHash, type TreeRange, unpackRange } from './digest.js'
import { HintQueue, type HintQueueStats } from './hint-queue.js'
import {
  ACK_LEVELS,
  type AckLevel,
  type Change,
  changeBytes,
  type ClientError,
  type ClientRequest,
  type ClientResponse,
  parseRecord,
  type ReplicationMessage,
  toWire,
  validChange,
  versionOf,
  type WireRecord,
} from './messages.js'
import { graceOver, isDead, metaHex, prefixMetaHash, type ReplicaRecord, type ReplicaStore, tagMetaHash } from './replica-store.js'

export type ReplicaMemberStatus = 'alive' | 'suspect' | 'dead' | 'left'

/** What replication needs of the membership view (`topologyFromView` adapts a Membership ClusterView). */
export interface ReplicaTopology {
  readonly clusterState: 'ACTIVE' | 'NO_MIGRATION' | 'PASSIVE'
  /** Every known member, this node included. */
  readonly members: ReadonlyArray<{ readonly id: NodeId; readonly region: string; readonly status: ReplicaMemberStatus }>
}

/** The topology of a Membership `view()` (cluster/membership.ts). */
export function topologyFromView(view: { readonly state: { readonly state: 'ACTIVE' | 'NO_MIGRATION' | 'PASSIVE' }; readonly regions: ReadonlyArray<{ readonly members: ReadonlyArray<{ readonly id: NodeId; readonly region: string; readonly status: ReplicaMemberStatus }> }> }): ReplicaTopology {
  return { clusterState: view.state.state, members: view.regions.flatMap((r) => r.members.map((m) => ({ id: m.id, region: m.region, status: m.status }))) }
}

export interface ReplicationOptions {
  readonly id: NodeId
  readonly store: ReplicaStore
  /** The current membership view (called during steps; must not do I/O). */
  readonly topology: () => ReplicaTopology
  readonly random: Random
  /** Housekeeping tick: ack deadlines and retries, hint replay, rejoin detection. @default 100 */
  readonly tickMs?: number
  /** Period of anti-entropy rounds (jittered ±10 %). @default 10000 */
  readonly antiEntropyIntervalMs?: number
  /** Delay of the next round after one that repaired something or was throttled. @default 200 */
  readonly antiEntropyFollowUpMs?: number
  /** Records this node ships for repair per round. @default 1000 */
  readonly maxRepairRecordsPerRound?: number
  /** Bytes (approximate) this node ships for repair per round. @default 1048576 */
  readonly maxRepairBytesPerRound?: number
  /** Ranges holding at most this many records on both sides are compared record by record. @default 4 */
  readonly leafRecords?: number
  /** @default 10000 */
  readonly maxHintsPerPeer?: number
  /** Hints replayed per peer per tick. @default 500 */
  readonly hintReplayBatch?: number
  /** Re-send a write to a replica whose ack is missing after this long. @default 300 */
  readonly ackRetryMs?: number
  /** A write's ack deadline when the request names none, ms. @default 2000 */
  readonly defaultDeadlineMs?: number
  /** A peer reported unreachable is skipped (its changes hinted) for this long, unless it speaks first. @default 5000 */
  readonly downMs?: number
  /** Largest lead of a remote version over local time accepted (hlc maxDrift). @default 60000 */
  readonly maxDriftMs?: number
  /** Called with every change this node applied (its own and replicated ones) and its sequence number: the node's invalidation stream (P10). Must not throw; its exceptions are swallowed. */
  readonly onApply?: (change: Change, seq: number) => void
}

/** Upper bounds (ms) of the replication-lag histogram buckets (last: +Inf). */
/** How long a write at ack `region`/`all` waits for its replicas when the request names no deadline (the client's ACK_DEADLINE_MS, src/protocol/wire.ts, is this value). */
export const DEFAULT_DEADLINE_MS = 2000
export const LAG_BUCKETS_MS: readonly number[] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, Infinity]

export interface LagHistogram {
  /** Counts per `LAG_BUCKETS_MS` bucket (not cumulative). */
  readonly buckets: readonly number[]
  readonly count: number
  readonly sumMs: number
}

export interface ReplicationStats {
  /** Writes this node versioned (client puts, deletes, clears, invalidations). */
  readonly writes: number
  /** Remote changes applied here (fan-out, relay, hint replay and repair). */
  readonly applied: number
  /** Remote changes refused because their version was too far ahead (clock drift). */
  readonly driftRefusals: number
  readonly relayed: number
  readonly ackTimeouts: number
  readonly staleReads: number
  readonly preconditionFailures: number
  readonly hints: HintQueueStats
  readonly antiEntropy: {
    readonly rounds: number
    /** Rounds skipped in NO_MIGRATION. */
    readonly paused: number
    readonly rangesCompared: number
    /** Ranges this node shipped records for. */
    readonly rangesRepaired: number
    readonly recordsShipped: number
    /** Records received by anti-entropy that changed this replica. */
    readonly recordsRepaired: number
    /** Times a round's shipping was cut by the throttle. */
    readonly throttled: number
  }
  /** Replication lag per origin node: time from a version's physical time to its apply here (clock skew included). */
  readonly lag: Readonly<Record<string, LagHistogram>>
  readonly store: { readonly records: number; readonly tombstones: number; readonly prefixTombstones: number; readonly tags: number }
}

type Action = KernelAction<ReplicationMessage>

interface Resolved {
  readonly tickMs: number
  readonly aeInterval: number
  readonly aeFollowUp: number
  readonly maxRecords: number
  readonly maxBytes: number
  readonly leaf: number
  readonly maxHints: number
  readonly hintBatch: number
  readonly ackRetry: number
  readonly deadline: number
  readonly downMs: number
  readonly maxDrift: number
}

interface PendingWrite {
  readonly client: NodeId
  readonly rid: number
  readonly level: AckLevel
  readonly change: Change
  readonly version: Version
  /** A put's absolute expiry (0: none), echoed in the answer. */
  readonly expiresAt: number | undefined
  readonly required: ReadonlySet<NodeId>
  readonly applied: Set<NodeId>
  readonly deadline: number
  lastSend: number
}

const MAX_RECS_PER_MESSAGE = 512
const MAX_REC_BYTES_PER_MESSAGE = 512 * 1024

function resolve(o: ReplicationOptions): Resolved {
  const num = (name: keyof ReplicationOptions, fallback: number, min: number, integer = false): number => {
    const v = o[name]
    if (v === undefined) return fallback
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) throw new InvalidOptionsError(name, `expected ${integer ? 'an integer' : 'a finite number'} >= ${min}`)
    return v
  }
  return {
    tickMs: num('tickMs', 100, 1),
    aeInterval: num('antiEntropyIntervalMs', 10_000, 1),
    aeFollowUp: num('antiEntropyFollowUpMs', 200, 1),
    maxRecords: num('maxRepairRecordsPerRound', 1000, 1, true),
    maxBytes: num('maxRepairBytesPerRound', 1024 * 1024, 1),
    leaf: num('leafRecords', 4, 0, true),
    maxHints: num('maxHintsPerPeer', 10_000, 0, true),
    hintBatch: num('hintReplayBatch', 500, 1, true),
    ackRetry: num('ackRetryMs', 300, 1),
    deadline: num('defaultDeadlineMs', DEFAULT_DEADLINE_MS, 0),
    downMs: num('downMs', 5000, 0),
    maxDrift: num('maxDriftMs', 60_000, 0),
  }
}

const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0')

/** The digest of a store's kept prefix tombstones and tag invalidations (16 hex digits): what anti-entropy's `meta` compares. */
export function metaDigest(store: Pick<ReplicaStore, 'prefixTombstones' | 'tagInvalidations' | 'metaDigest'>, now: number): string {
  // A store that keeps the XOR as its meta changes answers at once (MemoryReplicaStore).
  if (typeof store.metaDigest === 'function') return store.metaDigest(now)
  let a = 0
  let b = 0
  for (const p of store.prefixTombstones(now)) {
    const [x, y] = prefixMetaHash(p.prefix, p.version)
    a ^= x
    b ^= y
  }
  for (const t of store.tagInvalidations()) {
    const [x, y] = tagMetaHash(`${t.mode}:${t.tag}`, t.hlc)
    a ^= x
    b ^= y
  }
  return metaHex(a, b)
}

/** A replica's digests as anti-entropy compares them (`replicaDigest`; the node's `GET /v1/cluster/digest`). */
export interface ReplicaDigest {
  /** The Merkle root: XOR of every record's and tombstone's hash (16 hex digits). */
  readonly digest: string
  /** Records and tombstones (expired records within their grace included) under the root. */
  readonly count: number
  /** Prefix tombstones and tag invalidations (`metaDigest`). */
  readonly meta: string
  /** The depth of `ranges` (0..BUCKET_DEPTH). */
  readonly depth: number
  /** The non-empty ranges at `depth`, by index (empty at depth 0: the root is the one range). */
  readonly ranges: ReadonlyArray<{ readonly index: number; readonly digest: string; readonly count: number }>
}

/**
 * A store's digests at `now`, treated as anti-entropy treats them: dead records past their
 * grace are purged first (as before every round); a live record whose expiry passed counts
 * as the tombstone of its version (it already hashes the same); prefix tombstones and tag
 * invalidations are in `meta`, not in the tree. Two replicas anti-entropy calls equal give
 * equal answers. `depth` 0..5 (the maintained levels) lists that level's non-empty ranges.
 */
export function replicaDigest(store: ReplicaStore, now: number, depth = 0): ReplicaDigest {
  if (!Number.isInteger(depth) || depth < 0 || depth > BUCKET_DEPTH) throw new InvalidOptionsError('depth', `expected an integer 0..${BUCKET_DEPTH}`)
  store.purge(now)
  const root = store.summary({ depth: 0, index: 0 }, 0)
  const ranges: Array<{ index: number; digest: string; count: number }> = []
  if (depth > 0) {
    for (let index = 0; index < FANOUT ** depth; index++) {
      const s = store.summary({ depth, index }, 0)
      if (s.count !== 0 || s.digest !== '0000000000000000') ranges.push({ index, digest: s.digest, count: s.count })
    }
  }
  return { digest: root.digest, count: root.count, meta: metaDigest(store, now), depth, ranges }
}
/** A record's summary: key hash (8), hlc (14), check (4) hex digits. */
function summaryOf(r: ReplicaRecord): string {
  return hex(keyHash(r.key), 8) + hex(r.version.hlc, 14) + hex(recordHash(r.key, r.version)[1] & 0xffff, 4)
}
const SUMMARY = 26

export class Replication implements StateMachine<ReplicationMessage> {
  readonly #id: NodeId
  readonly #store: ReplicaStore
  readonly #topology: () => ReplicaTopology
  readonly #random: Random
  readonly #o: Resolved
  readonly #onApply: ((change: Change, seq: number) => void) | undefined
  readonly #hints: HintQueue<Change>
  readonly #pending = new Map<number, PendingWrite>()
  /** Peers reported unreachable, until when. */
  readonly #down = new Map<NodeId, number>()
  /** Peers owed an anti-entropy round (rejoined, overflowed, or this node started). */
  readonly #owed = new Set<NodeId>()
  /** When this node last started a round with each peer. */
  readonly #myRounds = new Map<NodeId, number>()
  /** Per peer: records (key@hlc) shipped for repair recently, not shipped again until `at` + the window. */
  readonly #shipped = new Map<NodeId, { at: number; keys: Set<string> }>()
  #live = new Set<NodeId>()
  /** The topology read during this step (read once per step), with members by id. */
  #topo: { readonly t: ReplicaTopology; readonly byId: Map<NodeId, ReplicaTopology['members'][number]> } | undefined
  #lastTopo: { readonly t: ReplicaTopology; readonly byId: Map<NodeId, ReplicaTopology['members'][number]> } | undefined
  #hlc: HybridLogicalClock | undefined
  #now = 0
  #started = false
  #seq = 0
  #budgetRecords = 0
  #budgetBytes = 0
  #dirty = false
  #lastRoundAt = -Infinity
  #ownRegion = ''
  // stats
  #writes = 0
  #applied = 0
  #driftRefusals = 0
  #relayed = 0
  #ackTimeouts = 0
  #staleReads = 0
  #preconditionFailures = 0
  #rounds = 0
  #paused = 0
  #rangesCompared = 0
  #rangesRepaired = 0
  #recordsShipped = 0
  #recordsRepaired = 0
  #throttled = 0
  readonly #lag = new Map<string, { buckets: number[]; count: number; sumMs: number }>()
  /** The view's members as of the last tick: a member that leaves it takes its lag histogram along. */
  #prevById: ReadonlyMap<NodeId, unknown> | undefined

  constructor(options: ReplicationOptions) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object')
    validateNodeId(options.id, 'id')
    if (typeof options.store?.apply !== 'function') throw new InvalidOptionsError('store', 'expected a ReplicaStore')
    if (typeof options.topology !== 'function') throw new InvalidOptionsError('topology', 'expected a function returning the membership topology')
    randomOption(options.random, 'random')
    if (options.onApply !== undefined && typeof options.onApply !== 'function') throw new InvalidOptionsError('onApply', 'expected a function')
    this.#o = resolve(options)
    this.#id = options.id
    this.#store = options.store
    this.#topology = options.topology
    this.#random = options.random
    this.#onApply = options.onApply
    this.#hints = new HintQueue<Change>(this.#o.maxHints)
    this.#budgetRecords = this.#o.maxRecords
    this.#budgetBytes = this.#o.maxBytes
  }

  get id(): NodeId {
    return this.#id
  }

  /** The node's clock (the token its responses carry); 0 before start. */
  get clock(): number {
    return this.#hlc?.current() ?? 0
  }

  get stats(): ReplicationStats {
    const lag: Record<string, LagHistogram> = {}
    for (const [origin, h] of this.#lag) lag[origin] = { buckets: [...h.buckets], count: h.count, sumMs: h.sumMs }
    return {
      writes: this.#writes,
      applied: this.#applied,
      driftRefusals: this.#driftRefusals,
      relayed: this.#relayed,
      ackTimeouts: this.#ackTimeouts,
      staleReads: this.#staleReads,
      preconditionFailures: this.#preconditionFailures,
      hints: this.#hints.stats,
      antiEntropy: {
        rounds: this.#rounds,
        paused: this.#paused,
        rangesCompared: this.#rangesCompared,
        rangesRepaired: this.#rangesRepaired,
        recordsShipped: this.#recordsShipped,
        recordsRepaired: this.#recordsRepaired,
        throttled: this.#throttled,
      },
      lag,
      store: this.#store.counts(this.#now),
    }
  }

  step(event: KernelEvent<ReplicationMessage>, now: number): Action[] {
    if (now > this.#now) this.#now = now
    this.#topo = undefined
    const actions: Action[] = []
    if (event.type === 'start') {
      this.#start(actions)
      return actions
    }
    if (!this.#started) return actions
    if (event.type === 'timer') {
      if (event.name === 'tick') this.#tick(actions)
      else if (event.name === 'ae') this.#antiEntropyTimer(actions)
    } else if (event.type === 'unreachable') {
      this.#down.set(event.peer, this.#now + this.#o.downMs)
    } else if (event.type === 'message') {
      const msg = event.message
      if (msg === null || typeof msg !== 'object') return actions
      if (this.#down.delete(event.from) && this.#live.has(event.from)) this.#rejoined(event.from)
      try {
        this.#receive(event.from, msg, actions)
      } catch (err) {
        // A malformed message from one peer must not stop the node; only bugs reach here.
        if (err instanceof InvalidOptionsError) return actions
        throw err
      }
    }
    return actions
  }

  // ---- lifecycle ---------------------------------------------------------------------

  #start(actions: Action[]): void {
    // The hybrid clock reads the time of the current step; it never sets timers.
    const clock: Clock = {
      now: () => this.#now,
      setTimeout: () => {
        throw new Error('the replication clock sets no timers')
      },
      clearTimeout: () => undefined,
    }
    this.#hlc = new HybridLogicalClock(clock, { maxDrift: this.#o.maxDrift, floor: this.#store.maxHlc() })
    this.#started = true
    this.#live = this.#liveSet()
    // A (re)started node catches up at once with a random live peer.
    const peers = [...this.#live]
    if (peers.length > 0) this.#owed.add(peers[Math.floor(this.#random.next() * peers.length)]!)
    actions.push({ type: 'timer', name: 'tick', afterMs: this.#o.tickMs })
    actions.push({ type: 'timer', name: 'ae', afterMs: this.#jitter(this.#o.aeInterval) })
  }

  #tick(actions: Action[]): void {
    actions.push({ type: 'timer', name: 'tick', afterMs: this.#o.tickMs })
    const topo = this.#view().t
    const live = this.#liveSet(topo)
    for (const peer of live) if (!this.#live.has(peer)) this.#rejoined(peer)
    for (const m of topo.members) {
      if (m.status !== 'left') continue
      this.#hints.drop(m.id)
      this.#owed.delete(m.id)
    }
    // A member pruned from the view (dead for pruneAfterMs: killed and never back) is
    // forgotten as a left one is: its hints would otherwise be held for the rest of the
    // process, one queue per member lost. Should it come back, it rejoins the live set and
    // is owed a full round (#rejoined), which brings it everything the hints held.
    const { byId } = this.#view()
    for (const peer of [...this.#hints.peers(), ...this.#owed]) {
      if (byId.has(peer) || peer === this.#id) continue
      this.#hints.drop(peer)
      this.#owed.delete(peer)
    }
    for (const peer of this.#myRounds.keys()) if (!byId.has(peer)) this.#myRounds.delete(peer)
    for (const peer of this.#shipped.keys()) if (!byId.has(peer)) this.#shipped.delete(peer)
    // Its lag histogram too (one /metrics series per node ever seen otherwise); back, it
    // starts a new one. Only on leaving the view: histograms of origins never in it (tag
    // invalidations' '?', records of long-gone nodes repaired here) are kept as before.
    const prev = this.#prevById
    if (prev !== byId) {
      if (prev !== undefined) for (const id of prev.keys()) if (!byId.has(id)) this.#lag.delete(id)
      this.#prevById = byId
    }
    this.#live = live
    for (const [peer, until] of this.#down) if (until <= this.#now) this.#down.delete(peer)
    this.#checkPending(actions)
    if (topo.clusterState === 'NO_MIGRATION') return
    for (const peer of this.#hints.peers()) {
      if (!this.#reachable(peer)) continue
      const batch = this.#hints.take(peer, this.#o.hintBatch)
      if (batch.length > 0) actions.push(this.#send(peer, { kind: 'rep', changes: batch }))
    }
    // Peers owed a round (rejoined, overflowed, throttled, or us just started): one at a
    // time, rounds at least `antiEntropyFollowUpMs` apart (with the per-round budget, that
    // bounds repair traffic to maxRepairRecordsPerRound per follow-up period). An owed peer
    // that is unreachable stays owed.
    if (this.#now - this.#lastRoundAt < this.#o.aeFollowUp) return
    for (const peer of this.#owed) {
      if (!this.#reachable(peer)) continue
      this.#owed.delete(peer)
      this.#round(peer, actions)
      break
    }
  }

  /**
   * A peer came back into the live set (joined, rejoined, or seen alive again after a cut):
   * it is owed a round, and a down mark left by the transport's reports during its absence is
   * dropped — membership just heard from it, and a mark kept would hold its hints and that
   * round back for up to `downMs` after it is reachable again (the next failed send sets it anew).
   */
  #rejoined(peer: NodeId): void {
    this.#owed.add(peer)
    this.#down.delete(peer)
  }

  // ---- client requests ---------------------------------------------------------------

  #request(from: NodeId, req: ClientRequest, actions: Action[]): void {
    const hlc = this.#hlc!
    const answer = (res: Omit<ClientResponse, 'kind' | 'rid' | 'token'>): void => void actions.push(this.#send(from, { kind: 'res', rid: req.rid, token: hlc.now(), ...res }))
    const fail = (error: ClientError): void => answer({ ok: false, error })
    if (!Number.isSafeInteger(req.rid)) return
    if (req.token !== undefined) {
      if (!(typeof req.token === 'number' && Number.isSafeInteger(req.token) && req.token >= 0)) return fail({ code: 'ERR_BAD_REQUEST', message: 'token: expected a safe integer >= 0' })
      if (!hlc.tryObserve(req.token)) return fail({ code: 'ERR_CLOCK_DRIFT', message: `Session token ${req.token} is ahead of the drift limit` })
    }
    const level = req.ack ?? 'one'
    if (!ACK_LEVELS.includes(level)) return fail({ code: 'ERR_BAD_REQUEST', message: `ack: expected one of ${ACK_LEVELS.join(', ')}` })
    switch (req.op) {
      case 'get': {
        if (typeof req.key !== 'string') return fail({ code: 'ERR_BAD_REQUEST', message: 'key: expected a string' })
        const r = this.#store.get(req.key)
        const need = req.atLeast ?? 0
        if (need > 0 && (r === undefined || r.version.hlc < need)) {
          this.#staleReads++
          return fail({ code: 'ERR_STALE_READ', message: `The node holds version ${r?.version.hlc ?? 0} of the key, older than the session's ${need}; retry`, have: r?.version.hlc ?? 0, need, retryable: true })
        }
        if (r === undefined) return answer({ ok: true, found: false })
        if (isDead(r, this.#now) || this.#store.hidden(r as Extract<ReplicaRecord, { deleted?: false }>, this.#now)) return answer({ ok: true, found: false, version: r.version })
        const e = r as Extract<ReplicaRecord, { deleted?: false }>
        return answer({ ok: true, found: true, version: e.version, value: e.value, expiresAt: e.expiresAt, tags: e.tags })
      }
      case 'put':
      case 'del': {
        if (typeof req.key !== 'string') return fail({ code: 'ERR_BAD_REQUEST', message: 'key: expected a string' })
        if (req.ifVersion !== undefined) {
          const cur = this.#store.get(req.key)
          const live = cur !== undefined && !isDead(cur, this.#now) && !this.#store.hidden(cur as Extract<ReplicaRecord, { deleted?: false }>, this.#now) ? cur : undefined
          if (live?.version.hlc !== req.ifVersion) {
            this.#preconditionFailures++
            return fail({ code: 'ERR_PRECONDITION_FAILED', message: `If-Match ${req.ifVersion} != ${live?.version.hlc ?? 'absent'} on node ${this.#id}` })
          }
        }
        const version = { hlc: hlc.next(), nodeId: this.#id }
        let record: ReplicaRecord
        if (req.op === 'del') record = { key: req.key, version, deleted: true }
        else {
          if (typeof req.value !== 'string') return fail({ code: 'ERR_BAD_REQUEST', message: 'value: expected a string' })
          const expiresAt = req.expiresAt ?? (req.ttlMs === undefined ? 0 : this.#now + req.ttlMs)
          if (!(typeof expiresAt === 'number' && expiresAt >= 0 && Number.isFinite(expiresAt))) return fail({ code: 'ERR_BAD_REQUEST', message: 'ttlMs/expiresAt: expected ms >= 0' })
          record = { key: req.key, version, value: req.value, expiresAt, tags: req.tags ?? [] }
        }
        return this.#write(from, req, level, { t: 'r', r: toWire(record) }, version, answer, actions, record.deleted === true ? undefined : record.expiresAt)
      }
      case 'clear': {
        if (typeof req.prefix !== 'string') return fail({ code: 'ERR_BAD_REQUEST', message: 'prefix: expected a string' })
        const version = { hlc: hlc.next(), nodeId: this.#id }
        return this.#write(from, req, level, { t: 'c', p: req.prefix, h: version.hlc, n: this.#id }, version, answer, actions)
      }
      case 'inv': {
        if (!Array.isArray(req.tags) || !req.tags.every((t) => typeof t === 'string' && t !== '')) return fail({ code: 'ERR_BAD_REQUEST', message: 'tags: expected non-empty strings' })
        const h = hlc.next()
        const mode = req.mode ?? 'hard'
        // One version for all tags of the request; each tag replicates as its own change.
        const changes: Change[] = req.tags.map((g) => ({ t: 'i', g, m: mode, h }))
        if (changes.length === 0) return fail({ code: 'ERR_BAD_REQUEST', message: 'tags: expected at least one' })
        // Acks are tracked on the first tag's change; the others spread alongside it.
        for (const c of changes.slice(1)) {
          this.#apply(c, true)
          this.#fanOut([c], undefined, actions)
        }
        return this.#write(from, req, level, changes[0]!, { hlc: h, nodeId: this.#id }, answer, actions)
      }
      default:
        return fail({ code: 'ERR_BAD_REQUEST', message: 'op: expected get, put, del, clear or inv' })
    }
  }

  #write(client: NodeId, req: ClientRequest, level: AckLevel, change: Change, version: Version, answer: (res: Omit<ClientResponse, 'kind' | 'rid' | 'token'>) => void, actions: Action[], expiresAt?: number): void {
    this.#writes++
    this.#apply(change, true)
    const topo = this.#view().t
    const required = new Set<NodeId>([this.#id])
    if (level !== 'one') {
      for (const m of topo.members) {
        if (m.id === this.#id || !this.#reachable(m.id)) continue
        if (level === 'all' || m.region === this.#ownRegion) required.add(m.id)
      }
    }
    const ack = required.size > 1 ? { to: this.#id, v: version.hlc } : undefined
    this.#fanOut([change], ack, actions, topo)
    if (required.size === 1) {
      answer({ ok: true, version, applied: 1, required: 1, ...(expiresAt === undefined ? {} : { expiresAt }) })
      return
    }
    const deadlineMs = typeof req.deadlineMs === 'number' && req.deadlineMs >= 0 ? req.deadlineMs : this.#o.deadline
    this.#pending.set(version.hlc, { client, rid: req.rid, level, change, version, expiresAt, required, applied: new Set([this.#id]), deadline: this.#now + deadlineMs, lastSend: this.#now })
  }

  #checkPending(actions: Action[]): void {
    for (const [v, p] of this.#pending) {
      if (p.applied.size >= p.required.size) continue
      if (this.#now >= p.deadline) {
        this.#pending.delete(v)
        this.#ackTimeouts++
        actions.push(this.#send(p.client, { kind: 'res', rid: p.rid, token: this.#hlc!.now(), ok: false, version: p.version, ...(p.expiresAt === undefined ? {} : { expiresAt: p.expiresAt }), applied: p.applied.size, required: p.required.size, error: { code: 'ERR_ACK_TIMEOUT', message: `Ack level ${p.level}: ${p.applied.size} of ${p.required.size} replicas applied the write before its deadline (it is committed and will converge)`, applied: p.applied.size, required: p.required.size } }))
        continue
      }
      if (this.#now - p.lastSend >= this.#o.ackRetry) {
        p.lastSend = this.#now
        for (const peer of p.required) if (!p.applied.has(peer)) actions.push(this.#send(peer, { kind: 'rep', changes: [p.change], ack: { to: this.#id, v } }))
      }
    }
  }

  #acked(from: NodeId, v: number, actions: Action[]): void {
    const p = this.#pending.get(v)
    if (p === undefined || !p.required.has(from)) return
    p.applied.add(from)
    if (p.applied.size < p.required.size) return
    this.#pending.delete(v)
    actions.push(this.#send(p.client, { kind: 'res', rid: p.rid, token: this.#hlc!.now(), ok: true, version: p.version, ...(p.expiresAt === undefined ? {} : { expiresAt: p.expiresAt }), applied: p.applied.size, required: p.required.size }))
  }

  // ---- fan-out -----------------------------------------------------------------------

  /** Sends `changes` to every live local peer and one live peer per remote region (relaying); hints for the rest. */
  #fanOut(changes: Change[], ack: { to: NodeId; v: number } | undefined, actions: Action[], topo = this.#view().t): void {
    const remote = new Map<string, NodeId[]>()
    const remoteDown = new Map<string, NodeId[]>()
    for (const m of topo.members) {
      if (m.id === this.#id || m.status === 'left') continue
      if (m.region === this.#ownRegion) {
        if (this.#reachable(m.id)) actions.push(this.#send(m.id, { kind: 'rep', changes, ...(ack ? { ack } : {}) }))
        else this.#hint(m.id, changes)
        continue
      }
      const into = this.#reachable(m.id) ? remote : remoteDown
      const list = into.get(m.region) ?? []
      list.push(m.id)
      into.set(m.region, list)
    }
    for (const [, ids] of remote) {
      const relay = ids[Math.floor(this.#random.next() * ids.length)]!
      actions.push(this.#send(relay, { kind: 'rep', changes, relay: true, ...(ack ? { ack } : {}) }))
    }
    for (const [region, ids] of remoteDown) if (!remote.has(region)) for (const id of ids) this.#hint(id, changes)
  }

  #hint(peer: NodeId, changes: Change[]): void {
    for (const c of changes) {
      if (!this.#hints.push(peer, c)) {
        // Overflowed: the peer gets a full anti-entropy round when it is back.
        this.#owed.add(peer)
        return
      }
    }
  }

  #replicate(from: NodeId, msg: Extract<ReplicationMessage, { kind: 'rep' }>, actions: Action[]): void {
    if (!Array.isArray(msg.changes)) return
    let held = true
    const valid: Change[] = []
    for (const c of msg.changes) {
      if (!validChange(c)) continue
      valid.push(c)
      if (this.#apply(c, false) === 'refused') held = false
    }
    if (msg.relay === true && valid.length > 0) {
      this.#relayed++
      const topo = this.#view().t
      for (const m of topo.members) {
        if (m.id === this.#id || m.id === from || m.region !== this.#ownRegion || m.status === 'left') continue
        if (this.#reachable(m.id)) actions.push(this.#send(m.id, { kind: 'rep', changes: valid, ...(msg.ack ? { ack: msg.ack } : {}) }))
        else this.#hint(m.id, valid)
      }
    }
    const ack = msg.ack
    if (held && ack !== undefined && typeof ack.to === 'string' && Number.isSafeInteger(ack.v)) {
      if (ack.to === this.#id) this.#acked(this.#id, ack.v, actions)
      else actions.push(this.#send(ack.to, { kind: 'ack', v: ack.v }))
    }
  }

  /**
   * Applies one change to the store. 'applied': it changed the replica; 'held': the replica
   * already had it or something newer; 'refused': its version is too far ahead (drift).
   */
  #apply(c: Change, local: boolean): 'applied' | 'held' | 'refused' {
    const v = versionOf(c)
    if (!local && !this.#hlc!.tryObserve(v.hlc)) {
      this.#driftRefusals++
      return 'refused'
    }
    let changed: boolean
    if (c.t === 'r') changed = this.#store.apply(parseRecord(c.r)!, this.#now)
    else if (c.t === 'c') changed = this.#store.clear(c.p, v, this.#now)
    else changed = this.#store.invalidate({ tag: c.g, mode: c.m, hlc: c.h })
    if (!changed) return 'held'
    if (!local) {
      this.#applied++
      const origin = v.nodeId === '' ? '?' : v.nodeId
      this.#observeLag(origin, Math.max(0, this.#now - msOfVersion(v.hlc)))
    }
    this.#seq++
    if (this.#onApply !== undefined) {
      try {
        this.#onApply(c, this.#seq)
      } catch {
        // The listener's failure is its own.
      }
    }
    return 'applied'
  }

  #observeLag(origin: string, ms: number): void {
    let h = this.#lag.get(origin)
    if (h === undefined) this.#lag.set(origin, (h = { buckets: new Array<number>(LAG_BUCKETS_MS.length).fill(0), count: 0, sumMs: 0 }))
    let i = 0
    while (ms > LAG_BUCKETS_MS[i]!) i++
    h.buckets[i]!++
    h.count++
    h.sumMs += ms
  }

  // ---- anti-entropy ------------------------------------------------------------------

  #antiEntropyTimer(actions: Action[]): void {
    const followUp = this.#dirty
    this.#dirty = false
    actions.push({ type: 'timer', name: 'ae', afterMs: followUp ? this.#o.aeFollowUp : this.#jitter(this.#o.aeInterval) })
    if (this.#view().t.clusterState === 'NO_MIGRATION') {
      this.#paused++
      return
    }
    this.#store.purge(this.#now)
    const peers = [...this.#live].filter((p) => this.#reachable(p))
    if (peers.length === 0) return
    this.#round(peers[Math.floor(this.#random.next() * peers.length)]!, actions)
  }

  /** Starts a round with `peer`: a fresh budget and salt, our root digest and meta digest. */
  #round(peer: NodeId, actions: Action[]): void {
    this.#rounds++
    this.#lastRoundAt = this.#now
    this.#budgetRecords = this.#o.maxRecords
    this.#budgetBytes = this.#o.maxBytes
    const salt = Math.floor(this.#random.next() * 2 ** 32)
    this.#myRounds.set(peer, this.#now)
    const root = { depth: 0, index: 0 }
    const s = this.#store.summary(root, salt)
    actions.push(this.#send(peer, { kind: 'tree', salt, nodes: [[packRange(root), s.digest, s.count.toString(36)]], meta: this.#metaDigest() }))
  }

  #tree(from: NodeId, msg: Extract<ReplicationMessage, { kind: 'tree' }>, actions: Action[]): void {
    if (!Array.isArray(msg.nodes) || !Number.isSafeInteger(msg.salt)) return
    const salt = msg.salt
    if (typeof msg.meta === 'string') {
      // A root: the peer started a round with us. When both sides started one at once, the
      // smaller id's round goes on alone (two would ship everything twice).
      const mine = this.#myRounds.get(from)
      if (mine !== undefined && this.#now - mine < 2 * this.#o.aeFollowUp + 1_000 && this.#id < from) return
      this.#myRounds.delete(from)
      this.#owed.delete(from)
      if (msg.meta !== this.#metaDigest()) actions.push(this.#send(from, this.#meta(true)))
    }
    const reply: Array<readonly [number, string, string]> = []
    const sums: Array<readonly [number, string]> = []
    const ship: ReplicaRecord[] = []
    for (const node of msg.nodes) {
      if (!Array.isArray(node)) continue
      const parent = unpackRange(node[0])
      const [, digests, counts] = node
      if (parent === undefined || typeof digests !== 'string' || typeof counts !== 'string') continue
      const countList = counts.split(',').map((c) => parseInt(c, 36))
      let ranges: TreeRange[]
      if (countList.length === 1) ranges = [parent]
      else if (countList.length === FANOUT && parent.depth < MAX_DEPTH) ranges = childrenOf(parent)
      else continue
      const width = ranges[0]!.depth <= BUCKET_DEPTH ? 16 : 8
      if (digests.length !== width * ranges.length || !countList.every((c) => Number.isSafeInteger(c) && c >= 0)) continue
      ranges.forEach((range, i) => {
        this.#rangesCompared++
        const digest = digests.slice(i * width, (i + 1) * width)
        const count = countList[i]!
        const mine = this.#store.summary(range, salt)
        if (mine.digest === digest) return
        const packed = packRange(range)
        if (count === 0) {
          // The peer holds nothing here: everything we hold is news to it.
          const recs = this.#store.records(range)
          if (recs.length > 0) this.#rangesRepaired++
          ship.push(...recs)
        } else if (mine.count === 0) {
          reply.push([packed, mine.digest, '0'])
        } else if ((count <= this.#o.leaf && mine.count <= this.#o.leaf) || range.depth >= MAX_DEPTH) {
          // Few records on both sides: the side holding fewer sends its summaries (it most
          // likely lacks something), so one summary usually settles the range.
          if (mine.count > count && range.depth < MAX_DEPTH) reply.push([packed, mine.digest, mine.count.toString(36)])
          else sums.push([packed, this.#store.records(range).map(summaryOf).join('')])
        } else {
          let ds = ''
          const cs: string[] = []
          for (const child of childrenOf(range)) {
            const c = this.#store.summary(child, salt)
            ds += c.digest
            cs.push(c.count.toString(36))
          }
          reply.push([packed, ds, cs.join(',')])
        }
      })
    }
    if (reply.length > 0) actions.push(this.#send(from, { kind: 'tree', salt, nodes: reply }))
    if (sums.length > 0) actions.push(this.#send(from, { kind: 'sum', salt, ranges: sums, back: true }))
    this.#ship(from, ship, actions)
  }

  #sum(from: NodeId, msg: Extract<ReplicationMessage, { kind: 'sum' }>, actions: Action[]): void {
    if (!Array.isArray(msg.ranges)) return
    const ship: ReplicaRecord[] = []
    const back: Array<readonly [number, string]> = []
    for (const entry of msg.ranges) {
      if (!Array.isArray(entry)) continue
      const range = unpackRange(entry[0])
      const packed = entry[1]
      if (range === undefined || typeof packed !== 'string' || packed.length % SUMMARY !== 0) continue
      // Theirs: key hash -> [hlc, check][]
      const theirs = new Map<string, Array<[number, string]>>()
      for (let i = 0; i < packed.length; i += SUMMARY) {
        const kh = packed.slice(i, i + 8)
        const list = theirs.get(kh) ?? []
        list.push([parseInt(packed.slice(i + 8, i + 22), 16), packed.slice(i + 22, i + 26)])
        theirs.set(kh, list)
      }
      const mine = this.#store.records(range)
      const mineByHash = new Map<string, ReplicaRecord[]>()
      let shipped = false
      for (const r of mine) {
        const s = summaryOf(r)
        const kh = s.slice(0, 8)
        const list = mineByHash.get(kh) ?? []
        list.push(r)
        mineByHash.set(kh, list)
        const t = theirs.get(kh)
        // Ship unless they hold this exact version or a newer one of a key with this hash.
        if (t === undefined || !t.some(([h, check]) => h > r.version.hlc || (h === r.version.hlc && check === s.slice(22)))) {
          ship.push(r)
          shipped = true
        }
      }
      if (shipped) this.#rangesRepaired++
      if (msg.back) {
        // Do they hold something we lack or hold older? Then they should ship it.
        let need = false
        for (const [kh, list] of theirs) {
          const m = mineByHash.get(kh)
          if (m === undefined || list.some(([h, check]) => !m.some((r) => r.version.hlc > h || (r.version.hlc === h && summaryOf(r).slice(22) === check)))) {
            need = true
            break
          }
        }
        if (need) back.push([entry[0], mine.map(summaryOf).join('')])
      }
    }
    if (back.length > 0) actions.push(this.#send(from, { kind: 'sum', salt: msg.salt, ranges: back, back: false }))
    this.#ship(from, ship, actions)
  }

  /** Ships records for repair within the round's budget; expired ones as tombstones, those past grace not at all. */
  #ship(to: NodeId, records: ReplicaRecord[], actions: Action[]): void {
    if (records.length === 0) return
    let batch: WireRecord[] = []
    let bytes = 0
    const flush = (): void => {
      if (batch.length === 0) return
      actions.push(this.#send(to, { kind: 'recs', records: batch }))
      batch = []
      bytes = 0
    }
    const ttl = this.#store.tombstoneTtlMs
    // Overlapping rounds (ours and the peer's, records still in flight) would ship a record
    // twice: what went to this peer in the last second is not sent again.
    let recent = this.#shipped.get(to)
    if (recent === undefined || this.#now - recent.at > 1_000) this.#shipped.set(to, (recent = { at: this.#now, keys: new Set() }))
    for (const r of records) {
      const dead = isDead(r, this.#now)
      if (dead && graceOver(r.version, ttl, this.#now)) continue
      const id = `${r.version.hlc}@${r.key}`
      if (recent.keys.has(id)) continue
      const wire = toWire(r, dead)
      const size = changeBytes({ t: 'r', r: wire })
      if (this.#budgetRecords <= 0 || this.#budgetBytes < size) {
        this.#throttled++
        this.#dirty = true
        this.#owed.add(to)
        break
      }
      this.#budgetRecords--
      this.#budgetBytes -= size
      recent.keys.add(id)
      this.#recordsShipped++
      batch.push(wire)
      bytes += size
      if (batch.length >= MAX_RECS_PER_MESSAGE || bytes >= MAX_REC_BYTES_PER_MESSAGE) flush()
    }
    flush()
    this.#dirty = true
  }

  #recs(msg: Extract<ReplicationMessage, { kind: 'recs' }>): void {
    if (!Array.isArray(msg.records)) return
    for (const w of msg.records) {
      if (parseRecord(w) === undefined) continue
      if (this.#apply({ t: 'r', r: w }, false) === 'applied') this.#recordsRepaired++
    }
    this.#dirty = true
  }

  #metaDigest(): string {
    return metaDigest(this.#store, this.#now)
  }

  #meta(back: boolean): ReplicationMessage {
    return {
      kind: 'meta',
      p: this.#store.prefixTombstones(this.#now).map((p) => [p.prefix, p.version.hlc, p.version.nodeId] as const),
      g: this.#store.tagInvalidations().map((t) => [t.tag, t.mode, t.hlc] as const),
      back,
    }
  }

  #metaReceived(from: NodeId, msg: Extract<ReplicationMessage, { kind: 'meta' }>, actions: Action[]): void {
    if (!Array.isArray(msg.p) || !Array.isArray(msg.g)) return
    for (const p of msg.p) {
      const c: Change = { t: 'c', p: p[0], h: p[1], n: p[2] }
      if (validChange(c)) this.#apply(c, false)
    }
    for (const g of msg.g) {
      const c: Change = { t: 'i', g: g[0], m: g[1], h: g[2] }
      if (validChange(c)) this.#apply(c, false)
    }
    if (msg.back === true) actions.push(this.#send(from, this.#meta(false)))
  }

  // ---- plumbing ----------------------------------------------------------------------

  #receive(from: NodeId, msg: ReplicationMessage, actions: Action[]): void {
    const paused = (): boolean => this.#view().t.clusterState === 'NO_MIGRATION'
    switch (msg.kind) {
      case 'req':
        return this.#request(from, msg, actions)
      case 'rep':
        return this.#replicate(from, msg, actions)
      case 'ack':
        if (Number.isSafeInteger(msg.v)) this.#acked(from, msg.v, actions)
        return
      case 'tree':
        if (!paused()) this.#tree(from, msg, actions)
        return
      case 'sum':
        if (!paused()) this.#sum(from, msg, actions)
        return
      case 'recs':
        if (!paused()) this.#recs(msg)
        return
      case 'meta':
        if (!paused()) this.#metaReceived(from, msg, actions)
        return
      default:
        return
    }
  }

  #liveSet(topo = this.#view().t): Set<NodeId> {
    const live = new Set<NodeId>()
    for (const m of topo.members) {
      if (m.id === this.#id) {
        this.#ownRegion = m.region
        continue
      }
      if (m.status === 'alive' || m.status === 'suspect') live.add(m.id)
    }
    return live
  }

  /**
   * The topology for this step (one call of `topology()` per step). Its index by id is kept
   * while `topology()` returns the same object (the node's ClusterService hands out one
   * object per membership change: decision 0308).
   */
  #view(): { readonly t: ReplicaTopology; readonly byId: Map<NodeId, ReplicaTopology['members'][number]> } {
    if (this.#topo === undefined) {
      const t = this.#topology()
      const last = this.#lastTopo
      this.#topo = last !== undefined && last.t === t ? last : { t, byId: new Map(t.members.map((m) => [m.id, m])) }
      this.#lastTopo = this.#topo
    }
    return this.#topo
  }

  #reachable(peer: NodeId): boolean {
    if (this.#down.has(peer)) return false
    const m = this.#view().byId.get(peer)
    return m !== undefined && (m.status === 'alive' || m.status === 'suspect')
  }

  #send(to: NodeId, message: ReplicationMessage): Action {
    return { type: 'send', to, message }
  }

  #jitter(ms: number): number {
    return Math.max(1, Math.round(ms * (0.9 + 0.2 * this.#random.next())))
  }
}

/** True when two versions are equal. */
export function sameVersion(a: Version | undefined, b: Version | undefined): boolean {
  return a !== undefined && b !== undefined && compareVersions(a, b) === 0
}
