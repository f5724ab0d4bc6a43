/**
 * `ChannelMux`: several state machines (membership, replication) over one
 * `MessageTransport` (the node's one TcpTransport, which allows one receive handler).
 * Each channel is itself a `MessageTransport`; a frame carries its channel's tag as its
 * first byte, and the mux hands a received frame (tag stripped) to that channel's receiver.
 * Unreachable reports go to every channel (a peer that cannot be reached is unreachable to
 * all of them). Design: docs/decisions/0216-one-transport-two-channels.md.
 *
 * Priority. A `control` channel (membership) sends straight to the transport. A `bulk`
 * channel (replication: fan-out, hint replay, anti-entropy) queues its frames per peer in
 * the mux and releases them only while the transport holds less than `bulkHighWaterBytes`
 * for that peer (`queuedBytes`, which TcpTransport reports); the rest wait in the mux and
 * are pumped every `pumpMs`. So a heartbeat is never queued behind more than
 * `bulkHighWaterBytes` + one frame of replication traffic in the transport, however much
 * repair traffic waits — membership is not starved. A transport that cannot report its
 * queue (`queuedBytes` absent) gets at most `bulkHighWaterBytes` of bulk frames per peer
 * per pump instead (a rate bound). A bulk queue over `maxBulkQueuedBytes` drops new frames
 * (counted) and reports the peer unreachable to the bulk channel once, as the transport
 * contract says a full queue does; replication then hints instead.
 *
 * Inbound limits. Peers are authenticated, but a buggy or flooding member must not starve
 * the node: frames received from each peer pass a token bucket per kind — control frames by
 * count (`inboundControlFramesPerSec`, far above a member's heartbeats and gossip: about 10
 * frames/s per peer), bulk frames by bytes (`inboundBulkBytesPerSec`) — each with one
 * second of burst. A frame over its bucket is dropped and counted (`inboundDropped`); the
 * protocols above already survive loss (SWIM probes again, replication hints and repairs),
 * and one peer's flood never consumes another peer's budget.
 */
import type { Clock, TimerHandle } from '../core/clock.js'
import { ClosedError, InvalidOptionsError, PeerUnreachableError, ValueTooLargeError } from '../core/errors.js'
import { HandlerSlot, type MessageTransport, type NodeId } from './transport.js'

/** A transport that can say how many bytes wait for a peer (TcpTransport does). */
export interface QueueReporting {
  queuedBytes(peer: NodeId): number
}

export interface ChannelMuxOptions {
  readonly transport: MessageTransport & Partial<QueueReporting>
  readonly clock: Clock
  /** Bulk bytes the transport may hold per peer before more are released. @default 262144 (256 KiB) */
  readonly bulkHighWaterBytes?: number
  /** Bulk bytes the mux queues per peer before dropping. @default 33554432 (32 MiB) */
  readonly maxBulkQueuedBytes?: number
  /** Period of the pump while bulk frames wait, ms. @default 5 */
  readonly pumpMs?: number
  /** Control (membership) frames accepted per second from one peer; more are dropped. @default 2000 */
  readonly inboundControlFramesPerSec?: number
  /** Bulk (replication) bytes accepted per second from one peer; more are dropped. @default 67108864 (64 MiB) */
  readonly inboundBulkBytesPerSec?: number
}

export interface ChannelOptions {
  /** `control`: sent at once (membership). `bulk`: queued behind the high-water mark (replication). @default 'control' */
  readonly kind?: 'control' | 'bulk'
}

export interface ChannelMuxStats {
  /** Bulk frames waiting in the mux, all peers. */
  readonly bulkQueuedFrames: number
  readonly bulkQueuedBytes: number
  /** Bulk frames dropped because a peer's mux queue was full. */
  readonly bulkDropped: number
  /** Received frames with no channel of their tag (or empty). */
  readonly unrouted: number
  /** Received frames dropped by the per-peer inbound limits, by kind. */
  readonly inboundDropped: { readonly control: number; readonly bulk: number }
}

/** A token bucket refilled at `rate` per second up to one second's worth. */
interface Bucket {
  tokens: number
  at: number
}

interface BulkQueue {
  /** Waiting frames from `head` on (a head index, not `shift`: shifting a long array copies it). */
  frames: Array<Uint8Array | undefined>
  head: number
  bytes: number
  overflowReported: boolean
}

class Channel implements MessageTransport {
  readonly receive = new HandlerSlot<(from: NodeId, payload: Uint8Array) => void>()
  readonly unreachable = new HandlerSlot<(error: PeerUnreachableError) => void>()
  closed = false
  constructor(
    readonly self: NodeId,
    readonly maxFrameBytes: number,
    readonly tag: number,
    readonly bulk: boolean,
    readonly mux: ChannelMux,
  ) {}

  send(to: NodeId, payload: Uint8Array): void {
    if (this.closed) throw new ClosedError(`Channel ${this.tag} of node ${this.self} is closed`)
    if (!(payload instanceof Uint8Array)) throw new InvalidOptionsError('payload', 'expected a Uint8Array')
    if (payload.byteLength > this.maxFrameBytes) throw new ValueTooLargeError(payload.byteLength, this.maxFrameBytes, 'cluster frame')
    const frame = new Uint8Array(payload.byteLength + 1)
    frame[0] = this.tag
    frame.set(payload, 1)
    this.mux.dispatch(this, to, frame)
  }

  onReceive(handler: (from: NodeId, payload: Uint8Array) => void): () => void {
    return this.receive.set(handler)
  }

  onUnreachable(handler: (error: PeerUnreachableError) => void): () => void {
    return this.unreachable.set(handler)
  }

  /** Closes this channel only (the transport is the mux owner's). */
  close(): Promise<void> {
    this.closed = true
    this.receive.current = undefined
    this.unreachable.current = undefined
    return Promise.resolve()
  }
}

export class ChannelMux {
  readonly #transport: MessageTransport & Partial<QueueReporting>
  readonly #clock: Clock
  readonly #highWater: number
  readonly #maxQueued: number
  readonly #pumpMs: number
  readonly #channels = new Map<number, Channel>()
  readonly #bulk = new Map<NodeId, BulkQueue>()
  readonly #removers: Array<() => void>
  #timer: TimerHandle | undefined
  readonly #controlRate: number
  readonly #bulkRate: number
  readonly #inbound = new Map<NodeId, { control: Bucket; bulk: Bucket }>()
  #dropped = 0
  #unrouted = 0
  #inboundDropped = { control: 0, bulk: 0 }

  constructor(options: ChannelMuxOptions) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object')
    if (typeof options.transport?.send !== 'function') throw new InvalidOptionsError('transport', 'expected a MessageTransport')
    if (typeof options.clock?.setTimeout !== 'function') throw new InvalidOptionsError('clock', 'expected a Clock')
    const positive = (name: keyof ChannelMuxOptions, v: unknown, fallback: number): number => {
      if (v === undefined) return fallback
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new InvalidOptionsError(name, 'expected a positive integer')
      return v
    }
    this.#transport = options.transport
    this.#clock = options.clock
    this.#highWater = positive('bulkHighWaterBytes', options.bulkHighWaterBytes, 256 * 1024)
    this.#maxQueued = positive('maxBulkQueuedBytes', options.maxBulkQueuedBytes, 32 * 1024 * 1024)
    this.#pumpMs = positive('pumpMs', options.pumpMs, 5)
    this.#controlRate = positive('inboundControlFramesPerSec', options.inboundControlFramesPerSec, 2000)
    this.#bulkRate = positive('inboundBulkBytesPerSec', options.inboundBulkBytesPerSec, 64 * 1024 * 1024)
    this.#removers = [
      this.#transport.onReceive((from, payload) => this.#receive(from, payload)),
      this.#transport.onUnreachable((error) => {
        for (const ch of this.#channels.values()) ch.unreachable.current?.(error)
      }),
    ]
  }

  /** The channel of `tag` (0-255), created on first call; one per tag. */
  channel(tag: number, options: ChannelOptions = {}): MessageTransport {
    if (!Number.isInteger(tag) || tag < 0 || tag > 255) throw new InvalidOptionsError('tag', 'expected an integer 0-255')
    const kind = options.kind ?? 'control'
    if (kind !== 'control' && kind !== 'bulk') throw new InvalidOptionsError('kind', "expected 'control' or 'bulk'")
    let ch = this.#channels.get(tag)
    if (ch === undefined) {
      ch = new Channel(this.#transport.self, this.#transport.maxFrameBytes - 1, tag, kind === 'bulk', this)
      this.#channels.set(tag, ch)
    }
    return ch
  }

  get stats(): ChannelMuxStats {
    let frames = 0
    let bytes = 0
    for (const q of this.#bulk.values()) {
      frames += q.frames.length - q.head
      bytes += q.bytes
    }
    return { bulkQueuedFrames: frames, bulkQueuedBytes: bytes, bulkDropped: this.#dropped, unrouted: this.#unrouted, inboundDropped: { ...this.#inboundDropped } }
  }

  /** Peers whose inbound buckets are held (those heard from within about the last second). */
  get inboundPeers(): number {
    return this.#inbound.size
  }

  /** Bulk bytes waiting in the mux for `peer`. */
  bulkQueuedBytes(peer: NodeId): number {
    return this.#bulk.get(peer)?.bytes ?? 0
  }

  /** @internal A channel's frame (tag byte first). */
  dispatch(channel: Channel, to: NodeId, frame: Uint8Array): void {
    if (!channel.bulk || to === this.#transport.self) {
      this.#transport.send(to, frame)
      return
    }
    let q = this.#bulk.get(to)
    if (q === undefined) this.#bulk.set(to, (q = { frames: [], head: 0, bytes: 0, overflowReported: false }))
    if (q.bytes + frame.byteLength > this.#maxQueued) {
      this.#dropped++
      if (!q.overflowReported) {
        q.overflowReported = true
        const error = new PeerUnreachableError(to, `The replication queue to peer ${to} is full (${q.bytes} bytes); messages are dropped until it drains`)
        queueMicrotask(() => channel.unreachable.current?.(error))
      }
      return
    }
    q.frames.push(frame)
    q.bytes += frame.byteLength
    this.#pump(to, q)
    this.#schedule()
  }

  /** Stops routing and drops waiting bulk frames (the transport stays open: the caller owns it). */
  close(): void {
    for (const remove of this.#removers.splice(0)) remove()
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
    this.#bulk.clear()
    this.#inbound.clear()
    for (const ch of this.#channels.values()) void ch.close()
  }

  #pump(peer: NodeId, q: BulkQueue): void {
    const reporting = typeof this.#transport.queuedBytes === 'function'
    let released = 0
    while (q.head < q.frames.length) {
      const held = reporting ? this.#transport.queuedBytes!(peer) : released
      if (held >= this.#highWater) break
      const frame = q.frames[q.head]!
      q.frames[q.head++] = undefined
      q.bytes -= frame.byteLength
      released += frame.byteLength
      try {
        this.#transport.send(peer, frame)
      } catch {
        // The transport is closed or the id malformed: the frame is gone, as a send that failed.
      }
    }
    if (q.head === q.frames.length) {
      this.#bulk.delete(peer)
      return
    }
    if (q.head >= 1024 && q.head * 2 >= q.frames.length) {
      // Compacted once the sent part is half the array: amortised O(1) per frame.
      q.frames = q.frames.slice(q.head)
      q.head = 0
    }
    if (q.bytes <= this.#maxQueued / 2) q.overflowReported = false
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#bulk.size === 0) return
    this.#timer = this.#clock.setTimeout(
      () => {
        this.#timer = undefined
        for (const [peer, q] of [...this.#bulk]) this.#pump(peer, q)
        this.#schedule()
      },
      this.#pumpMs,
      { unref: true },
    )
  }

  #receive(from: NodeId, payload: Uint8Array): void {
    const ch = payload.byteLength === 0 ? undefined : this.#channels.get(payload[0]!)
    const receive = ch?.receive.current
    if (ch === undefined || receive === undefined) {
      this.#unrouted++
      return
    }
    if (!this.#admit(from, ch.bulk, payload.byteLength)) {
      this.#inboundDropped[ch.bulk ? 'bulk' : 'control']++
      return
    }
    receive(from, payload.subarray(1))
  }

  /** Takes `bytes` (bulk) or one frame (control) from `peer`'s bucket; false when it is empty. */
  #admit(peer: NodeId, bulk: boolean, bytes: number): boolean {
    const now = this.#clock.now()
    let buckets = this.#inbound.get(peer)
    if (buckets === undefined) {
      // Peers heard from within the last second: a pair left idle a second has refilled
      // whole, the state a new pair starts in, so it is forgotten (peers gone for good leave
      // nothing behind) without changing any answer.
      for (const [p, b] of this.#inbound) if (now - Math.max(b.control.at, b.bulk.at) >= 1_000) this.#inbound.delete(p)
      buckets = { control: { tokens: this.#controlRate, at: now }, bulk: { tokens: this.#bulkRate, at: now } }
      this.#inbound.set(peer, buckets)
    }
    const b = bulk ? buckets.bulk : buckets.control
    const rate = bulk ? this.#bulkRate : this.#controlRate
    b.tokens = Math.min(rate, b.tokens + (Math.max(0, now - b.at) * rate) / 1000)
    b.at = now
    const cost = bulk ? bytes : 1
    // A frame bigger than a whole second's budget passes when the bucket is full (it would
    // never fit otherwise) and empties it.
    if (b.tokens < cost && b.tokens < rate) return false
    b.tokens = Math.max(0, b.tokens - cost)
    return true
  }
}
