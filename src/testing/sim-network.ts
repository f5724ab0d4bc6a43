/**
 * A deterministic simulated network for the cluster kernel: state machines (cluster/
 * kernel.ts) run on real `KernelRunner`s, over simulated transports and disks, on one
 * `ManualClock`, with every random choice drawn from one `SeededRandom`. Same seed, same
 * calls: the same run, event for event (`traceHash()` proves it). FoundationDB's and
 * TigerBeetle's simulation testing, applied to etcd-raft-style machines.
 *
 * Faults: per-link latency distributions, loss, duplication and reordering; symmetric and
 * one-way partitions; node pause (its inbound messages and timers wait, then run in order
 * on resume, like SIGSTOP/SIGCONT), crash (in-flight messages to it and its timers are
 * lost; its disk kept or wiped) and restart (a fresh machine from the node's factory,
 * started with what the disk holds); per-node clock skew.
 *
 * Time moves only through `run(ms)` / `runUntil(...)`; every delivery and timer is a timer
 * of the ManualClock, so events at the same instant run in scheduling order.
 */
import { createHash, type Hash } from 'node:crypto'
import type { Clock, TimerHandle } from '../core/clock.js'
import { ClosedError, InvalidOptionsError, PeerUnreachableError, ValueTooLargeError } from '../core/errors.js'
import { ManualClock } from '../core/manual-clock.js'
import { type Random, SeededRandom } from '../core/random.js'
import { jsonCodec, type KernelDisk, type MessageCodec, type PersistAction, type StateMachine } from '../cluster/kernel.js'
import { KernelRunner } from '../cluster/kernel-runner.js'
import { DEFAULT_MAX_FRAME_BYTES, HandlerSlot, type MessageTransport, type NodeId, validateNodeId } from '../cluster/transport.js'

/** One-way latency of a link, ms: fixed, uniform in [min, max], or drawn by a function of the run's Random. */
export type LatencyModel = number | { readonly min: number; readonly max: number } | ((random: Random) => number)

export interface LinkOptions {
  /** @default { min: 1, max: 10 } */
  latency?: LatencyModel
  /** Probability a message is lost. @default 0 */
  loss?: number
  /** Probability a message is delivered twice (the copy with its own latency). @default 0 */
  duplicate?: number
  /** Probability a message is held back up to `reorderWindow` ms more, so later ones overtake it. @default 0 */
  reorder?: number
  /** @default 50 */
  reorderWindow?: number
}

export interface SimNetworkOptions<M> {
  /** Seed of the run's SeededRandom (ignored when `random` is given). @default 1 */
  seed?: number
  random?: Random
  /** @default new ManualClock() */
  clock?: ManualClock
  /** How messages become frames. @default jsonCodec() */
  codec?: MessageCodec<M>
  /** Every link's default. */
  link?: LinkOptions
  /** @default DEFAULT_MAX_FRAME_BYTES */
  maxFrameBytes?: number
  /** Keep the readable trace (`trace`) besides its hash. @default false */
  recordTrace?: boolean
}

export interface SimNetworkStats {
  readonly sent: number
  readonly delivered: number
  readonly lost: number
  readonly duplicated: number
  readonly cut: number
  readonly unreachable: number
}

interface ResolvedLink {
  readonly latency: LatencyModel
  readonly loss: number
  readonly duplicate: number
  readonly reorder: number
  readonly reorderWindow: number
}

interface SimNode<M> {
  readonly id: NodeId
  readonly create: (id: NodeId) => StateMachine<M>
  readonly disk: Map<string, Uint8Array>
  /** Bumped by every crash: work scheduled for an older life is dropped. */
  life: number
  state: 'up' | 'paused' | 'crashed'
  skewMs: number
  lastNow: number
  machine: StateMachine<M> | undefined
  runner: KernelRunner<M> | undefined
  transport: SimTransport<M> | undefined
  /** Work that came due while paused, run in order on resume. */
  readonly backlog: Array<() => void>
  readonly errors: unknown[]
}

const DEFAULT_LINK: ResolvedLink = { latency: { min: 1, max: 10 }, loss: 0, duplicate: 0, reorder: 0, reorderWindow: 50 }

export class SimNetwork<M> {
  readonly clock: ManualClock
  readonly random: Random
  readonly #codec: MessageCodec<M>
  readonly #maxFrameBytes: number
  readonly #nodes = new Map<NodeId, SimNode<M>>()
  readonly #links = new Map<string, ResolvedLink>()
  /** Cut links (`from>to`) → whether the sender hears `unreachable` (refused) or nothing (silent). */
  readonly #cuts = new Map<string, boolean>()
  #default: ResolvedLink
  readonly #hash: Hash = createHash('sha256')
  readonly #trace: string[] | undefined
  #sent = 0
  #delivered = 0
  #lost = 0
  #duplicated = 0
  #cut = 0
  #unreachable = 0

  constructor(options: SimNetworkOptions<M> = {}) {
    this.clock = options.clock ?? new ManualClock()
    this.random = options.random ?? new SeededRandom(options.seed ?? 1)
    this.#codec = options.codec ?? jsonCodec<M>()
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    this.#default = resolveLink(options.link ?? {}, DEFAULT_LINK)
    this.#trace = options.recordTrace === true ? [] : undefined
  }

  // ---- nodes -------------------------------------------------------------------------

  /** Adds node `id` running `create(id)`, and starts it with an empty disk. */
  addNode(id: NodeId, create: (id: NodeId) => StateMachine<M>, options: { skewMs?: number } = {}): void {
    validateNodeId(id, 'id')
    if (this.#nodes.has(id)) throw new InvalidOptionsError('id', `node ${id} already exists`)
    const node: SimNode<M> = { id, create, disk: new Map(), life: 0, state: 'crashed', skewMs: options.skewMs ?? 0, lastNow: 0, machine: undefined, runner: undefined, transport: undefined, backlog: [], errors: [] }
    this.#nodes.set(id, node)
    this.#boot(node)
  }

  /** The node's current state machine (a new one after each restart). */
  machine(id: NodeId): StateMachine<M> {
    const m = this.#node(id).machine
    if (m === undefined) throw new InvalidOptionsError('id', `node ${id} is crashed`)
    return m
  }

  /** Ids of every node, in the order they were added. */
  get nodeIds(): NodeId[] {
    return [...this.#nodes.keys()]
  }

  /** Whether the node is up, paused or crashed. */
  status(id: NodeId): 'up' | 'paused' | 'crashed' {
    return this.#node(id).state
  }

  /** What the node's disk holds. */
  disk(id: NodeId): ReadonlyMap<string, Uint8Array> {
    return this.#node(id).disk
  }

  /** Failures the node's runner survived (throwing machine, undecodable frame, refused send). */
  errors(id: NodeId): readonly unknown[] {
    return this.#node(id).errors
  }

  /** Freezes the node: its inbound messages and timers wait until `resume`. */
  pause(id: NodeId): void {
    const node = this.#node(id)
    if (node.state !== 'up') return
    node.state = 'paused'
    this.#record(`pause ${id}`)
  }

  resume(id: NodeId): void {
    const node = this.#node(id)
    if (node.state !== 'paused') return
    node.state = 'up'
    this.#record(`resume ${id}`)
    const life = node.life
    for (const work of node.backlog.splice(0)) {
      if (node.life !== life || node.state !== 'up') break
      work()
    }
  }

  /** Kills the node: its timers and the messages in flight to it are lost; `keepDisk: false` wipes its disk. */
  crash(id: NodeId, options: { keepDisk?: boolean } = {}): void {
    const node = this.#node(id)
    if (node.state === 'crashed') return
    node.runner?.stop()
    node.transport?.closeNow()
    node.life++
    node.state = 'crashed'
    node.machine = undefined
    node.runner = undefined
    node.transport = undefined
    node.backlog.length = 0
    if (options.keepDisk === false) node.disk.clear()
    this.#record(`crash ${id} ${options.keepDisk === false ? 'wiped' : 'kept'}`)
  }

  /** Starts a crashed node again: a fresh machine from its factory, started with its disk. */
  restart(id: NodeId): void {
    const node = this.#node(id)
    if (node.state !== 'crashed') throw new InvalidOptionsError('id', `node ${id} is not crashed`)
    this.#boot(node)
  }

  /** Sets the node's clock offset from the network's clock (its clock never goes backwards). */
  skew(id: NodeId, ms: number): void {
    this.#node(id).skewMs = ms
    this.#record(`skew ${id} ${ms}`)
  }

  // ---- links -------------------------------------------------------------------------

  /** Every link's default from now on. */
  setDefaultLink(options: LinkOptions): void {
    this.#default = resolveLink(options, DEFAULT_LINK)
  }

  /** Overrides the link `from` → `to` (one direction; call twice for both). */
  setLink(from: NodeId, to: NodeId, options: LinkOptions): void {
    this.#links.set(`${from}>${to}`, resolveLink(options, this.#default))
  }

  /**
   * Cuts every link from a node of `a` to a node of `b`, and back unless `oneWay` (then `b`
   * still reaches `a`). Messages on a cut link are lost silently; with `refuse`, the sender
   * also hears `unreachable` about a round trip later, as the TCP transport reports a
   * connection refused, reset or timed out by a firewall.
   */
  partition(a: readonly NodeId[], b: readonly NodeId[], options: { oneWay?: boolean; refuse?: boolean } = {}): void {
    const refuse = options.refuse === true
    for (const x of a) {
      for (const y of b) {
        this.#cuts.set(`${x}>${y}`, refuse)
        if (options.oneWay !== true) this.#cuts.set(`${y}>${x}`, refuse)
      }
    }
    this.#record(`partition ${a.join(',')} ${options.oneWay === true ? '->' : '<->'}${refuse ? ' refused' : ''} ${b.join(',')}`)
  }

  /** Heals every partition. */
  heal(): void {
    this.#cuts.clear()
    this.#record('heal')
  }

  // ---- time --------------------------------------------------------------------------

  /** Runs the simulation for `ms` of network time. */
  run(ms: number): void {
    this.clock.advance(ms)
  }

  /** Runs in `stepMs` slices until `done()` or `maxMs` passed; returns whether `done()` held. */
  runUntil(done: () => boolean, maxMs: number, stepMs = 10): boolean {
    const end = this.clock.now() + maxMs
    while (!done()) {
      if (this.clock.now() >= end) return false
      this.clock.advance(Math.min(stepMs, end - this.clock.now()))
    }
    return true
  }

  // ---- evidence ----------------------------------------------------------------------

  get stats(): SimNetworkStats {
    return { sent: this.#sent, delivered: this.#delivered, lost: this.#lost, duplicated: this.#duplicated, cut: this.#cut, unreachable: this.#unreachable }
  }

  /** SHA-256 over every event so far: equal for two runs exactly when they went the same way. */
  traceHash(): string {
    return this.#hash.copy().digest('hex')
  }

  /** The readable trace (only with `recordTrace`). */
  get trace(): readonly string[] {
    return this.#trace ?? []
  }

  // ---- internals ---------------------------------------------------------------------

  #node(id: NodeId): SimNode<M> {
    const node = this.#nodes.get(id)
    if (node === undefined) throw new InvalidOptionsError('id', `no node ${String(id)}`)
    return node
  }

  #boot(node: SimNode<M>): void {
    node.state = 'up'
    const transport = new SimTransport<M>(this, node.id, this.#maxFrameBytes)
    const clock = this.#nodeClock(node)
    const disk: KernelDisk = {
      load: () => new Map(node.disk),
      write: (changes: readonly PersistAction[]) => {
        for (const c of changes) {
          if (c.value === undefined) node.disk.delete(c.key)
          else node.disk.set(c.key, c.value)
          this.#record(`persist ${node.id} ${c.key}`, c.value)
        }
      },
    }
    const machine = node.create(node.id)
    node.machine = machine
    node.transport = transport
    node.runner = new KernelRunner<M>({ machine, transport, clock, disk, codec: this.#codec, onError: (err) => void node.errors.push(err) })
    this.#record(`boot ${node.id} life=${node.life}`)
    node.runner.start()
  }

  /** The node's view of time: skewed, monotonic, its timers held while paused and dropped after a crash. */
  #nodeClock(node: SimNode<M>): Clock {
    const life = node.life
    return {
      now: () => {
        const t = Math.max(node.lastNow, this.clock.now() + node.skewMs)
        node.lastNow = t
        return t
      },
      setTimeout: (fn: () => void, ms: number): TimerHandle => this.clock.setTimeout(() => this.#atNode(node, life, fn), ms),
      clearTimeout: (handle: TimerHandle) => this.clock.clearTimeout(handle),
    }
  }

  /** Runs `work` on the node if it is still in life `life`: now, or on resume when paused. */
  #atNode(node: SimNode<M>, life: number, work: () => void): boolean {
    if (node.life !== life || node.state === 'crashed') return false
    if (node.state === 'paused') node.backlog.push(work)
    else work()
    return true
  }

  /** Called by a node's transport. */
  send(from: NodeId, to: NodeId, payload: Uint8Array): void {
    this.#sent++
    const target = this.#nodes.get(to)
    const link = this.#links.get(`${from}>${to}`) ?? this.#default
    const sender = this.#node(from)
    const senderLife = sender.life
    this.#record(`send ${from}>${to}`, payload)
    if (target === undefined || target.state === 'crashed') {
      // Connection refused: the sender hears of it after about a round trip.
      this.#unreachable++
      const delay = 2 * this.#latency(link)
      this.clock.setTimeout(() => {
        this.#atNode(sender, senderLife, () => {
          this.#record(`unreachable ${from}>${to}`)
          sender.transport?.reportUnreachable(new PeerUnreachableError(to, `Peer ${to} is ${target === undefined ? 'unknown' : 'down'}`))
        })
      }, delay)
      return
    }
    const cut = this.#cuts.get(`${from}>${to}`)
    if (cut !== undefined) {
      this.#cut++
      this.#record(`cut ${from}>${to}`)
      if (cut) {
        this.#unreachable++
        this.clock.setTimeout(() => {
          this.#atNode(sender, senderLife, () => {
            this.#record(`unreachable ${from}>${to}`)
            sender.transport?.reportUnreachable(new PeerUnreachableError(to, `Peer ${to} is cut off`))
          })
        }, 2 * this.#latency(link))
      }
      return
    }
    if (link.loss > 0 && this.random.next() < link.loss) {
      this.#lost++
      this.#record(`lost ${from}>${to}`)
      return
    }
    const copies = link.duplicate > 0 && this.random.next() < link.duplicate ? 2 : 1
    if (copies === 2) this.#duplicated++
    for (let i = 0; i < copies; i++) {
      let delay = this.#latency(link)
      if (link.reorder > 0 && this.random.next() < link.reorder) delay += this.random.next() * link.reorderWindow
      const life = target.life
      const bytes = payload.slice()
      this.clock.setTimeout(() => {
        const ran = this.#atNode(target, life, () => {
          // A partition raised while the message was in flight also stops it.
          if (this.#cuts.has(`${from}>${to}`)) {
            this.#cut++
            this.#record(`cut-in-flight ${from}>${to}`)
            return
          }
          this.#delivered++
          this.#record(`deliver ${from}>${to}`, bytes)
          target.transport?.deliver(from, bytes)
        })
        if (!ran) {
          this.#lost++
          this.#record(`lost-crashed ${from}>${to}`)
        }
      }, delay)
    }
  }

  #latency(link: ResolvedLink): number {
    const l = link.latency
    const ms = typeof l === 'number' ? l : typeof l === 'function' ? l(this.random) : l.min + this.random.next() * (l.max - l.min)
    return Number.isFinite(ms) && ms > 0 ? ms : 0
  }

  #record(event: string, payload?: Uint8Array): void {
    const line = `${this.clock.now()} ${event}`
    this.#hash.update(line)
    if (payload !== undefined) this.#hash.update(payload)
    this.#trace?.push(line)
  }
}

/** The transport a simulated node's runner uses. */
class SimTransport<M> implements MessageTransport {
  readonly self: NodeId
  readonly maxFrameBytes: number
  readonly #net: SimNetwork<M>
  readonly #receive = new HandlerSlot<(from: NodeId, payload: Uint8Array) => void>()
  readonly #unreachable = new HandlerSlot<(error: PeerUnreachableError) => void>()
  #closed = false

  constructor(net: SimNetwork<M>, self: NodeId, maxFrameBytes: number) {
    this.#net = net
    this.self = self
    this.maxFrameBytes = maxFrameBytes
  }

  send(to: NodeId, payload: Uint8Array): void {
    if (this.#closed) throw new ClosedError(`The transport of node ${this.self} is closed`)
    validateNodeId(to, 'to')
    if (payload.byteLength > this.maxFrameBytes) throw new ValueTooLargeError(payload.byteLength, this.maxFrameBytes, 'cluster frame')
    this.#net.send(this.self, to, payload)
  }

  onReceive(handler: (from: NodeId, payload: Uint8Array) => void): () => void {
    return this.#receive.set(handler)
  }

  onUnreachable(handler: (error: PeerUnreachableError) => void): () => void {
    return this.#unreachable.set(handler)
  }

  close(): Promise<void> {
    this.closeNow()
    return Promise.resolve()
  }

  closeNow(): void {
    this.#closed = true
    this.#receive.current = undefined
    this.#unreachable.current = undefined
  }

  deliver(from: NodeId, payload: Uint8Array): void {
    this.#receive.current?.(from, payload)
  }

  reportUnreachable(error: PeerUnreachableError): void {
    this.#unreachable.current?.(error)
  }
}

function resolveLink(o: LinkOptions, base: ResolvedLink): ResolvedLink {
  if (o === null || typeof o !== 'object') throw new InvalidOptionsError('link', 'expected an object')
  const p = (name: 'loss' | 'duplicate' | 'reorder'): number => {
    const v = o[name] ?? base[name]
    if (!(typeof v === 'number' && v >= 0 && v <= 1)) throw new InvalidOptionsError(`link.${name}`, 'expected a probability in [0, 1]')
    return v
  }
  const latency = o.latency ?? base.latency
  if (typeof latency === 'number' ? !(latency >= 0) : typeof latency === 'object' ? !(latency.min >= 0 && latency.max >= latency.min) : typeof latency !== 'function') {
    throw new InvalidOptionsError('link.latency', 'expected ms >= 0, { min, max } with 0 <= min <= max, or a function')
  }
  const reorderWindow = o.reorderWindow ?? base.reorderWindow
  if (!(reorderWindow >= 0)) throw new InvalidOptionsError('link.reorderWindow', 'expected ms >= 0')
  return { latency, loss: p('loss'), duplicate: p('duplicate'), reorder: p('reorder'), reorderWindow }
}

/** A seeded scenario failed: `seed` replays it. */
export class SeedFailure extends Error {
  readonly seed: number
  constructor(seed: number, cause: unknown) {
    super(`Scenario failed with seed ${seed} (replay: run it with seed ${seed}): ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
    this.name = 'SeedFailure'
    this.seed = seed
  }
}

/**
 * Runs `scenario(seed)` for each seed (`count` seeds from `first`, or the list given) and
 * stops at the first failure: prints the seed to stderr and throws `SeedFailure` naming
 * it, so the failing run can be replayed alone.
 */
export async function runSeeds(seeds: number | readonly number[], scenario: (seed: number) => void | Promise<void>, options: { first?: number; log?: (line: string) => void } = {}): Promise<number> {
  const list = typeof seeds === 'number' ? Array.from({ length: seeds }, (_, i) => (options.first ?? 1) + i) : seeds
  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`))
  for (const seed of list) {
    try {
      await scenario(seed)
    } catch (err) {
      const failure = new SeedFailure(seed, err)
      log(failure.message)
      throw failure
    }
  }
  return list.length
}
