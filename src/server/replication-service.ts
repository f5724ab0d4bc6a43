/**
 * `ReplicationService`: the replication machine (cluster/replication/) running in a node.
 * It owns the machine, its `KeyspaceReplicaStore` over the node's keyspace and a
 * `KernelRunner` on the replication channel of the cluster transport (ChannelMux, bulk),
 * and gives the node's HTTP layer one call, `request`, for a write (or a read check) as a
 * client would send it. Design: docs/decisions/0217-replication-in-the-node.md.
 *
 * Data flow of a write: the HTTP layer calls `request({ op: 'put', … }, { ack, token,
 * deadlineMs })`; the service steps the machine with a `req` message from the local
 * pseudo-client `LOCAL_CLIENT`; the machine versions it (the token merged first), applies
 * it to the store (index now, keyspace queued) and returns its fan-out and, for `ack=one`,
 * the answer. The runner's `beforeSend` awaits the store's barrier taken at that step
 * (the step's writes and every earlier one are on disk; later steps' are not waited for),
 * fills lazy values, takes the answers to `LOCAL_CLIENT` out of the batch (they resolve the
 * HTTP requests) and sends the rest. For `region`/`all` the answer comes on a later step,
 * when the acks are in or the deadline passed (ERR_ACK_TIMEOUT).
 *
 * Membership enters through `topology()` (the ClusterService's view); the machine also
 * hears the transport's unreachable reports. Every record a peer sends is applied through
 * the same store, so the keyspace's `watch` (the node's invalidation stream) sees it.
 */
import type { Clock } from '../core/clock.js'
import { AckTimeoutError, BadRequestError, type CacheError, ClosedError, InternalError, InvalidOptionsError, PreconditionFailedError } from '../core/errors.js'
import { mathRandom, type Random } from '../core/random.js'
import { KernelRunner, type OutgoingMessage } from '../cluster/kernel-runner.js'
import { jsonCodec, type MessageCodec } from '../cluster/kernel.js'
import type { MessageTransport, NodeId } from '../cluster/transport.js'
import { Replication, replicaDigest, type ReplicaDigest, type ReplicaTopology, type ReplicationOptions, type ReplicationStats } from '../cluster/replication/replication.js'
import { type AckLevel, type Change, changeBytes, type ClientOp, type ClientResponse, type ReplicationMessage } from '../cluster/replication/messages.js'
import type { Registry } from 'prom-client'
import { registerLabeledReadings, registerReadings } from '../metrics/prometheus.js'
import { LAG_BUCKETS_MS } from '../cluster/replication/replication.js'
import { HEADER_TOKEN } from '../protocol/wire.js'
import type { Keyspace } from './keyspace.js'
import type { NodeLogger } from './logger.js'
import { KeyspaceReplicaStore } from './keyspace-replica-store.js'

/** The id the node's HTTP layer uses as the machine's client (never a node id: ids have no '~'). */
export const LOCAL_CLIENT = '~http'

/**
 * Fan-out batching (decision 0306): the changes of `rep` frames without an ack request that
 * go to one peer within one event-loop turn leave as one frame, up to this many changes …
 */
export const MAX_BATCH_CHANGES = 512
/** … or about this many bytes (`changeBytes`), whichever comes first. */
export const MAX_BATCH_BYTES = 256 * 1024

/** Machine settings the node may tune (the rest are the machine's defaults). */
export type ReplicationTuning = Partial<Omit<ReplicationOptions, 'id' | 'store' | 'topology' | 'random' | 'onApply'>>

export interface ReplicationServiceOptions {
  readonly id: NodeId
  readonly keyspace: Keyspace
  readonly clock: Clock
  /** The replication channel of the cluster transport. */
  readonly transport: MessageTransport
  readonly topology: () => ReplicaTopology
  /** Must equal the keyspace's. @default 86_400_000 */
  readonly tombstoneTtlMs?: number
  /** @default mathRandom */
  readonly random?: Random
  readonly tuning?: ReplicationTuning
  /** Failures the runner survived (a failed keyspace write, a bad frame). */
  readonly onError?: (error: unknown) => void
}

export interface RequestOptions {
  /** @default 'one' */
  readonly ack?: AckLevel
  /** Session token: the highest node clock the client has seen. */
  readonly token?: number
  /** How long the write may wait for acks, ms. @default the machine's (2 s) */
  readonly deadlineMs?: number
}

export class ReplicationService {
  readonly #machine: Replication
  readonly #store: KeyspaceReplicaStore
  readonly #runner: KernelRunner<ReplicationMessage>
  readonly #waiting = new Map<number, { resolve: (res: ClientResponse) => void; reject: (err: unknown) => void }>()
  readonly #transport: MessageTransport
  readonly #codec: MessageCodec<ReplicationMessage> = jsonCodec()
  readonly #onError: (error: unknown) => void
  /** Per peer and relay flag (`<peer>\u0000r` or `\u0000p`): changes of ack-less `rep` frames waiting for the end of the turn. */
  /** One keyspace barrier per step with sends, taken at the step, awaited by its beforeSend. */
  readonly #barriers: Promise<void>[] = []
  readonly #outbox = new Map<string, { to: NodeId; relay: boolean; changes: Change[]; bytes: number }>()
  #outboxScheduled = false
  #batchedFrames = 0
  #batchedChanges = 0
  #rid = 0
  #closed = false

  private constructor(options: ReplicationServiceOptions, store: KeyspaceReplicaStore) {
    this.#store = store
    this.#transport = options.transport
    this.#onError = options.onError ?? (() => undefined)
    this.#machine = new Replication({ ...options.tuning, id: options.id, store, topology: options.topology, random: options.random ?? mathRandom })
    const machine = this.#machine
    this.#runner = new KernelRunner<ReplicationMessage>({
      // A step that sends takes the store's barrier at once: its sends wait for the keyspace
      // writes queued so far, not for those of later steps (decision 0307). The runner calls
      // beforeSend once per step with sends, in step order, so the queue stays in step.
      machine: {
        step: (event, now) => {
          const actions = machine.step(event, now)
          if (actions.some((a) => a.type === 'send')) {
            const barrier = store.barrier()
            barrier.catch(() => undefined) // awaited in #beforeSend; never an unhandled rejection meanwhile
            this.#barriers.push(barrier)
          }
          return actions
        },
      },
      transport: options.transport,
      clock: options.clock,
      codec: jsonCodec(),
      // Hints, pending acks and round bookkeeping are memory only (decision 0210): nothing to persist.
      disk: { load: () => new Map(), write: () => undefined },
      onError: options.onError,
      beforeSend: (messages) => this.#beforeSend(messages),
    })
  }

  /** Builds the store's index from the keyspace and starts the machine. */
  static async start(options: ReplicationServiceOptions): Promise<ReplicationService> {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object')
    const store = await KeyspaceReplicaStore.open({ keyspace: options.keyspace, clock: options.clock, tombstoneTtlMs: options.tombstoneTtlMs })
    const service = new ReplicationService(options, store)
    service.#runner.start()
    return service
  }

  /** The machine's hybrid clock now: the session token a response carries. */
  get clock(): number {
    return this.#machine.clock
  }

  get stats(): ReplicationStats {
    return this.#machine.stats
  }

  get store(): KeyspaceReplicaStore {
    return this.#store
  }

  /** Fan-out batching: frames sent from the outbox, and the changes they carried. */
  get batching(): { readonly frames: number; readonly changes: number } {
    return { frames: this.#batchedFrames, changes: this.#batchedChanges }
  }

  /**
   * This replica's digests as anti-entropy compares them (`replicaDigest`), at `now`: the
   * Merkle root and count, the meta digest, and the non-empty ranges at `depth` (0..5).
   * Dead records past their grace are purged from the index first, as before a round.
   */
  digest(now: number, depth = 0): ReplicaDigest {
    return replicaDigest(this.#store, now, depth)
  }

  /**
   * Steps the machine with `op` from the local client and resolves with its answer, once
   * the write is durable here and the ack level is met. Rejects with the answer's typed
   * error: ERR_ACK_TIMEOUT (applied/required), ERR_PRECONDITION_FAILED, ERR_STALE_READ,
   * ERR_CLOCK_DRIFT, ERR_BAD_REQUEST; ERR_CLOSED after `close`.
   */
  async request(op: ClientOp, options: RequestOptions = {}): Promise<ClientResponse> {
    if (this.#closed) throw new ClosedError('Replication is closed')
    const rid = ++this.#rid
    const answer = new Promise<ClientResponse>((resolve, reject) => this.#waiting.set(rid, { resolve, reject }))
    // Not `{ ...op, kind, rid, … }`: on Node 20 a spread followed by properties the source
    // lacks takes V8's slow path, about 1 µs per added property (decision 0308).
    const message = Object.assign({ kind: 'req', rid, ack: options.ack, token: options.token, deadlineMs: options.deadlineMs }, op) as { kind: 'req'; rid: number; ack?: AckLevel; token?: number; deadlineMs?: number }
    message.kind = 'req'
    message.rid = rid
    message.ack = options.ack
    message.token = options.token
    message.deadlineMs = options.deadlineMs
    this.#runner.step({ type: 'message', from: LOCAL_CLIENT, message: message as ReplicationMessage })
    const res = await answer
    if (!res.ok) throw errorOf(res, options.ack ?? 'one')
    return res
  }

  /**
   * Registers the replication figures in the node's registry: lag histogram per origin peer
   * (`stratacache_replication_lag_ms`), hint queue depth, anti-entropy rounds, ranges and
   * records repaired, tombstones held, writes, ack timeouts, stale reads, store write failures.
   */
  registerMetrics(registry: Registry): void {
    // One reading of the machine's figures serves a whole scrape: reading them walks the
    // store's records (tombstone counts), and a scrape reads them once per metric, all in
    // one synchronous pass (prom-client calls every collect before it awaits any).
    let memo: ReplicationStats | undefined
    const stats = (): ReplicationStats => {
      if (memo === undefined) {
        memo = this.#machine.stats
        queueMicrotask(() => (memo = undefined))
      }
      return memo
    }
    registry.registerMetric(lagHistogram(() => stats().lag) as never)
    registerReadings(registry, [
      { name: 'stratacache_replication_writes_total', help: 'Writes this node versioned and replicated (puts, deletes, clears, invalidations).', type: 'counter', read: () => stats().writes },
      { name: 'stratacache_replication_applied_total', help: 'Changes from peers applied here (fan-out, relay, hint replay, repair).', type: 'counter', read: () => stats().applied },
      { name: 'stratacache_replication_ack_timeouts_total', help: 'Writes answered ERR_ACK_TIMEOUT (their ack level not met by the deadline).', type: 'counter', read: () => stats().ackTimeouts },
      { name: 'stratacache_replication_hints_queued', help: 'Hinted changes waiting for unreachable peers (all peers).', type: 'gauge', read: () => stats().hints.depth },
      { name: 'stratacache_replication_anti_entropy_rounds_total', help: 'Anti-entropy rounds this node started.', type: 'counter', read: () => stats().antiEntropy.rounds },
      { name: 'stratacache_replication_ranges_repaired_total', help: 'Key-hash ranges this node shipped records for in anti-entropy.', type: 'counter', read: () => stats().antiEntropy.rangesRepaired },
      { name: 'stratacache_replication_records_repaired_total', help: 'Records received by anti-entropy that changed this replica.', type: 'counter', read: () => stats().antiEntropy.recordsRepaired },
      { name: 'stratacache_replication_records_shipped_total', help: 'Records this node shipped for repair.', type: 'counter', read: () => stats().antiEntropy.recordsShipped },
      { name: 'stratacache_replication_hint_overflows_total', help: 'Times a peer\'s hint queue overflowed (its hints dropped, the peer marked for anti-entropy).', type: 'counter', read: () => stats().hints.overflows },
      { name: 'stratacache_replication_tombstones', help: 'Tombstones held (deleted keys and expired records within their grace).', type: 'gauge', read: () => stats().store.tombstones },
      { name: 'stratacache_replication_store_write_failures_total', help: 'Replicated keyspace writes that failed (nothing of their step was sent).', type: 'counter', read: () => this.#store.stats.writeFailures },
    ])
    registerLabeledReadings(registry, [
      {
        name: 'stratacache_replication_hints_queued_by_peer',
        help: 'Hinted changes waiting for each unreachable peer.',
        type: 'gauge',
        labelNames: ['peer'],
        read: () => Object.entries(stats().hints.perPeer).map(([peer, n]) => [{ peer }, n] as const),
      },
    ])
  }

  /** Stops the machine (pending requests are answered ERR_CLOSED) and flushes the store. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#runner.stop()
    await this.#runner.idle()
    this.#flushOutbox()
    for (const w of this.#waiting.values()) w.reject(new ClosedError('Replication closed before the request was answered (a write may still converge)'))
    this.#waiting.clear()
    await this.#store.flush().catch(() => undefined)
  }

  #settle(rid: number, res: ClientResponse): void {
    const w = this.#waiting.get(rid)
    this.#waiting.delete(rid)
    w?.resolve(res)
  }

  async #beforeSend(messages: ReadonlyArray<OutgoingMessage<ReplicationMessage>>): Promise<ReadonlyArray<OutgoingMessage<ReplicationMessage>>> {
    try {
      await (this.#barriers.shift() ?? this.#store.flush())
    } catch (err) {
      // Not durable: nothing of the step goes out, and its local answers say so.
      for (const m of messages) {
        if (m.to !== LOCAL_CLIENT || m.message.kind !== 'res') continue
        const w = this.#waiting.get(m.message.rid)
        this.#waiting.delete(m.message.rid)
        w?.reject(err)
      }
      throw err
    }
    const out: OutgoingMessage<ReplicationMessage>[] = []
    for (const m of messages) {
      if (m.to === LOCAL_CLIENT) {
        if (m.message.kind === 'res') this.#settle(m.message.rid, m.message)
        continue
      }
      const message = m.message
      if (message.kind === 'rep' && message.ack === undefined) {
        this.#batch(m.to, message.relay === true, message.changes)
        continue
      }
      // Anything else to a peer leaves after the changes batched for it before (per-peer order kept).
      this.#flushPeer(m.to)
      out.push({ to: m.to, message: await this.#store.prepare(message) })
    }
    return out
  }

  /** Queues ack-less fan-out changes for `to`; the outbox is sent at the end of the turn, or at once when a batch is full. */
  #batch(to: NodeId, relay: boolean, changes: readonly Change[]): void {
    const id = `${to}\u0000${relay ? 'r' : 'p'}`
    let entry = this.#outbox.get(id)
    if (entry === undefined) this.#outbox.set(id, (entry = { to, relay, changes: [], bytes: 0 }))
    for (const c of changes) {
      entry.changes.push(c)
      entry.bytes += changeBytes(c)
    }
    if (entry.changes.length >= MAX_BATCH_CHANGES || entry.bytes >= MAX_BATCH_BYTES) {
      this.#outbox.delete(id)
      this.#sendBatch(entry)
    }
    if (!this.#outboxScheduled && this.#outbox.size > 0) {
      this.#outboxScheduled = true
      setImmediate(() => {
        this.#outboxScheduled = false
        this.#flushOutbox()
      })
    }
  }

  #flushPeer(to: NodeId): void {
    for (const relay of [false, true]) {
      const id = `${to}\u0000${relay ? 'r' : 'p'}`
      const entry = this.#outbox.get(id)
      if (entry === undefined) continue
      this.#outbox.delete(id)
      this.#sendBatch(entry)
    }
  }

  #flushOutbox(): void {
    const entries = [...this.#outbox.values()]
    this.#outbox.clear()
    for (const e of entries) this.#sendBatch(e)
  }

  #sendBatch(entry: { to: NodeId; relay: boolean; changes: Change[] }): void {
    const message: ReplicationMessage = entry.relay ? { kind: 'rep', changes: entry.changes, relay: true } : { kind: 'rep', changes: entry.changes }
    try {
      this.#transport.send(entry.to, this.#codec.encode(message))
      this.#batchedFrames++
      this.#batchedChanges += entry.changes.length
    } catch (err) {
      try {
        this.#onError(err)
      } catch {
        // A throwing listener must not break the node.
      }
    }
  }
}

/** The typed error of a refused answer (the HTTP layer maps codes to statuses). */
function errorOf(res: ClientResponse, level: AckLevel): CacheError {
  const e = res.error ?? { code: 'ERR_INTERNAL', message: 'Replication refused the request' }
  switch (e.code) {
    case 'ERR_ACK_TIMEOUT':
      return new AckTimeoutError(e.applied ?? res.applied ?? 1, e.required ?? res.required ?? 1, level)
    case 'ERR_PRECONDITION_FAILED':
      return new PreconditionFailedError(e.message)
    case 'ERR_BAD_REQUEST':
      return new BadRequestError(e.message)
    case 'ERR_CLOCK_DRIFT':
      // Only a request's session token is checked here: bad input from the client (400), not a failure of the node (500, which a client retries and charges to the node).
      return new BadRequestError(`${HEADER_TOKEN}: ${e.message} (more than maxDrift ahead of this node's clock; refused, nothing written)`)
    case 'ERR_CLOSED':
      return new ClosedError(e.message)
    default:
      return new InternalError(`${e.code}: ${e.message}`)
  }
}

/** `start` for the node: failures the runner survived are logged (the first 10, then every 1000th). */
export function startReplication(options: Omit<ReplicationServiceOptions, 'onError'> & { readonly log: NodeLogger }): Promise<ReplicationService> {
  let errors = 0
  return ReplicationService.start({
    ...options,
    onError: (err) => {
      errors++
      if (errors <= 10 || errors % 1000 === 0) options.log.warn({ err, errors }, 'replication: a step failed (the node keeps going)')
    },
  })
}

/** A prom-client metric (its `get()` contract) exposing the machine's lag buckets as a Prometheus histogram, by origin peer. */
function lagHistogram(read: () => ReplicationStats['lag']): { name: string; help: string; type: 'histogram'; aggregator: 'sum'; get: () => Promise<unknown>; reset: () => void } {
  const name = 'stratacache_replication_lag_ms'
  const help = "Replication lag by origin peer: from a version's physical time to its apply here, ms (clock skew included)."
  return {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    reset: () => undefined,
    get: () => {
      const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = []
      for (const [peer, hist] of Object.entries(read())) {
        let cumulative = 0
        LAG_BUCKETS_MS.forEach((le, i) => {
          cumulative += hist.buckets[i] ?? 0
          values.push({ metricName: `${name}_bucket`, labels: { peer, le: le === Infinity ? '+Inf' : le }, value: cumulative })
        })
        values.push({ metricName: `${name}_sum`, labels: { peer }, value: hist.sumMs })
        values.push({ metricName: `${name}_count`, labels: { peer }, value: hist.count })
      }
      return Promise.resolve({ name, help, type: 'histogram', aggregator: 'sum', values })
    },
  }
}
