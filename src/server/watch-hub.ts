/**
 * The node's invalidation stream (`GET /v1/watch`, protocol/watch.ts): every change the
 * keyspace applies — put, delete, clear, tag invalidation, local or replicated — goes out
 * to every subscriber as one message with `(sourceId, sequence)`.
 *
 * - `sourceId` is random per hub, so per node boot: a client that sees a new one knows
 *   every sequence restarted and flushes.
 * - One sequence per partition (`watchPartition(key)`, 271 partitions) and one global
 *   sequence for clears and tag invalidations, which concern every key. Sequences count
 *   from the hub's start whether or not anyone listens, so a subscriber's `hello` is
 *   comparable with what it saw before a reconnect to the same boot.
 * - Every `metaIntervalMs` while anyone listens: a `meta` message with every sequence, so
 *   a client finds a lost message even on a quiet stream (Hazelcast's metadata fetch,
 *   pushed instead of pulled). The timer parks when no one listens.
 * - A subscriber that does not keep up (more than `maxBufferBytes` written and not yet
 *   flushed to its socket) is cut: a write never waits for a subscriber. The client sees
 *   its stream end, bypasses its near cache and resyncs on reconnect.
 *
 * The hub writes to `WatchSubscriber`s (the node wraps a ServerResponse), so it is tested
 * without sockets, on a ManualClock.
 */
import { randomUUID } from 'node:crypto'
import type { Clock, TimerHandle } from '../core/clock.js'
import { encodeWatchEvent, WATCH_GLOBAL, WATCH_PARTITIONS, watchPartition, type WatchHello, type WatchMessage } from '../protocol/watch.js'
import type { KeyspaceChange } from './keyspace.js'

/** Where the hub writes one subscriber's stream. */
export interface WatchSubscriber {
  /** Writes one encoded event (never blocks). */
  write(chunk: string): void
  /** Bytes written and not yet flushed to the network. */
  buffered(): number
  /** Ends the stream (the subscriber was too slow, or the hub closes). */
  close(): void
}

export interface WatchHubOptions {
  readonly clock: Clock
  /** Interval of `meta` messages, ms. @default 1000 */
  readonly metaIntervalMs?: number
  /** Most bytes queued for one subscriber before it is cut. @default 1 MiB */
  readonly maxBufferBytes?: number
  /** Fixed source id (tests). @default a random UUID */
  readonly sourceId?: string
}

export interface WatchHubStats {
  readonly subscribers: number
  /** Messages produced (one per applied change), whether or not anyone listened. */
  readonly changes: number
  /** Subscribers cut because their buffer passed the bound. */
  readonly slowDisconnects: number
}

export class WatchHub {
  /** Random per hub (per node boot). */
  readonly sourceId: string
  readonly #clock: Clock
  readonly #intervalMs: number
  readonly #maxBuffer: number
  readonly #seqs: number[] = new Array<number>(WATCH_PARTITIONS + 1).fill(0)
  readonly #subs = new Set<WatchSubscriber>()
  #timer: TimerHandle | undefined
  #changes = 0
  #slow = 0
  #closed = false

  constructor(options: WatchHubOptions) {
    this.#clock = options.clock
    this.#intervalMs = options.metaIntervalMs ?? 1000
    this.#maxBuffer = options.maxBufferBytes ?? 1024 * 1024
    this.sourceId = options.sourceId ?? randomUUID()
  }

  /** The metadata interval, ms. */
  get metaIntervalMs(): number {
    return this.#intervalMs
  }

  /** The `hello` a new subscriber gets: the current sequences. */
  hello(): WatchHello {
    return { t: 'hello', s: this.sourceId, seqs: [...this.#seqs], interval: this.#intervalMs }
  }

  /** Feeds one applied change (the keyspace's `watch` listener). */
  onChange(change: KeyspaceChange): void {
    this.#changes++
    let message: WatchMessage
    if (change.kind === 'key') {
      const p = watchPartition(change.key)
      message = { t: 'key', s: this.sourceId, p, q: ++this.#seqs[p]!, k: change.key }
    } else if (change.kind === 'clear') {
      message = { t: 'all', s: this.sourceId, q: ++this.#seqs[WATCH_GLOBAL]!, why: 'clear', prefix: change.prefix }
    } else {
      message = { t: 'all', s: this.sourceId, q: ++this.#seqs[WATCH_GLOBAL]!, why: 'tags', tags: change.tags }
    }
    if (this.#subs.size > 0) this.#broadcast(encodeWatchEvent(message))
  }

  /** Adds a subscriber: writes its `hello` at once. Returns the function that removes it. */
  subscribe(sub: WatchSubscriber): () => void {
    if (this.#closed) {
      sub.close()
      return () => undefined
    }
    this.#subs.add(sub)
    sub.write(encodeWatchEvent(this.hello()))
    if (this.#timer === undefined) this.#arm()
    return () => {
      this.#subs.delete(sub)
    }
  }

  stats(): WatchHubStats {
    return { subscribers: this.#subs.size, changes: this.#changes, slowDisconnects: this.#slow }
  }

  /** Ends every stream and stops the timer. Idempotent. */
  close(): void {
    this.#closed = true
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
    for (const s of [...this.#subs]) s.close()
    this.#subs.clear()
  }

  #broadcast(chunk: string): void {
    for (const s of this.#subs) {
      if (s.buffered() + chunk.length > this.#maxBuffer) {
        this.#subs.delete(s)
        this.#slow++
        s.close()
      } else s.write(chunk)
    }
  }

  #arm(): void {
    this.#timer = this.#clock.setTimeout(() => this.#tick(), this.#intervalMs, { unref: true })
  }

  #tick(): void {
    this.#timer = undefined
    if (this.#closed || this.#subs.size === 0) return
    this.#broadcast(encodeWatchEvent({ t: 'meta', s: this.sourceId, seqs: [...this.#seqs] }))
    if (this.#subs.size > 0) this.#arm()
  }
}
