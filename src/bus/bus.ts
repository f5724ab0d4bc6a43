/**
 * The invalidation bus: keeps every process's L1 honest when data changes elsewhere.
 *
 * Pub/sub is fire-and-forget, so the Bus notices what it may have lost instead of
 * trusting delivery (Zoocache admits a node that misses a message stays stale until TTL):
 *
 * - Sequence. Each Bus stamps its data messages with its `epoch` and a `seq` (1, 2, …).
 *   A receiver tracks, per sender, the last seq it applied. A gap (seq jumps), or a
 *   heartbeat announcing a seq it never received, means a message was lost: every
 *   attached cache flushes its L1 (it cannot tell which keys the lost message named).
 *   Duplicates and late messages (seq already applied, or an older epoch) are discarded
 *   (LoomCache). A sender seen for the first time is trusted from that message on.
 * - Heartbeats. Every Bus publishes a heartbeat each `heartbeatInterval`, carrying its
 *   last data seq. It also hears its own messages (the transport delivers them back), so
 *   a Bus that has not heard its own heartbeat for `deadAfter` knows its subscription is
 *   silently dead: it flushes and reports itself unhealthy (the caches then bypass L1)
 *   until its own messages come back, when it flushes once more.
 * - Connection. The transport's 'down' (subscription may have missed messages) does the
 *   same at once; 'up' flushes again and restores health (kz_cache flushes on AMQP
 *   reconnect; Redis client-side caching flushes on connection loss).
 * - Publishing while the broker is down: messages wait in a bounded queue, merged per
 *   namespace (deletes and tag versions coalesce, a clear supersedes both), and are sent in
 *   order with backoff from 100 ms doubling to 5 s. Seq numbers are given at send time,
 *   so merging never looks like a gap. A queue that overflows is replaced by one clear per
 *   namespace: receivers flush instead of missing an invalidation silently.
 *
 * Stale-read bound: an L1 entry changed elsewhere is dropped when the message arrives
 * (measured on loopback: see the README); when messages are lost, within one
 * `heartbeatInterval` plus delivery; when the subscription dies silently, within
 * `deadAfter` plus one `heartbeatInterval`.
 */
import { randomBytes } from 'node:crypto'
import type { Clock, TimerHandle } from '../core/clock.js'
import { toMs, type Duration } from '../core/duration.js'
import { ClosedError, InvalidOptionsError, type CacheError, isCacheError, StoreUnavailableError } from '../core/errors.js'
import { systemClock } from '../core/system-clock.js'
import { decodeMessage, encodeMessage, type BusBody, type BusMessage, type TagVersion } from './message.js'
import type { BusTransport } from './types.js'

export interface BusOptions {
  transport: BusTransport
  /** The channel (subject, routing key) every process of one application shares. @default 'stratacache' */
  channel?: string
  /** How often this process says it is alive. @default '1s' */
  heartbeatInterval?: Duration
  /** Not hearing its own heartbeat this long, a process declares its subscription dead. @default '5s' */
  deadAfter?: Duration
  /** Keys and tags waiting while the broker is down; past it, the queue becomes one clear per namespace. @default 10_000 */
  queueSize?: number
  /** @default systemClock */
  clock?: Clock
}

/** What an attached cache does with the messages of its namespace. */
export interface BusListener {
  delete(keys: readonly string[]): void
  tags(tags: readonly TagVersion[]): void
  clear(): void
  /** Messages may have been lost: drop everything held in L1. */
  flush(reason: FlushReason): void
  /** False while the subscription cannot be trusted: serve nothing from L1. */
  health(healthy: boolean): void
}

export type FlushReason = 'gap' | 'subscription-lost' | 'subscription-silent' | 'reconnected' | 'sender-restarted'

export interface BusStats {
  readonly healthy: boolean
  readonly published: number
  readonly received: number
  /** Lost messages noticed (seq gaps, heartbeats ahead of what was received). */
  readonly gaps: number
  /** L1 flushes caused by the bus (gaps, subscription loss, reconnects). */
  readonly flushes: number
  readonly duplicates: number
  readonly late: number
  /** Payloads that were not bus messages. */
  readonly malformed: number
  /** Keys and tags waiting in the publish queue. */
  readonly queued: number
  /** Times the publish queue overflowed and became clears. */
  readonly overflows: number
  readonly publishFailures: number
}

interface SenderState {
  epoch: number
  seq: number
  seenAt: number
}

type Queued = { kind: 'delete'; namespace: string; keys: Set<string> } | { kind: 'tags'; namespace: string; tags: Map<string, TagVersion> } | { kind: 'clear'; namespace: string }

export class Bus {
  /** This process's id on the bus. */
  readonly id = randomBytes(8).toString('hex')
  readonly #transport: BusTransport
  readonly #channel: string
  readonly #clock: Clock
  readonly #heartbeatMs: number
  readonly #deadAfterMs: number
  readonly #queueSize: number
  readonly #epoch: number
  #seq = 0
  readonly #senders = new Map<string, SenderState>()
  readonly #listeners = new Map<string, Set<BusListener>>()
  readonly #errorListeners = new Set<(error: CacheError) => void>()
  readonly #queue: Queued[] = []
  #queuedItems = 0
  #inFlight: Queued | undefined
  #sending = false
  #retryTimer: TimerHandle | undefined
  #retryDelay = 100
  #heartbeatTimer: TimerHandle | undefined
  #unsubscribe: (() => Promise<void>) | undefined
  #healthy = false
  #transportDown = false
  #ownSeenAt = 0
  #started: Promise<void> | undefined
  #closed = false
  #published = 0
  #received = 0
  #gaps = 0
  #flushes = 0
  #duplicates = 0
  #late = 0
  #malformed = 0
  #overflows = 0
  #publishFailures = 0

  constructor(options: BusOptions) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('bus', 'expected an object')
    const t = options.transport
    if (t === null || typeof t !== 'object' || typeof t.publish !== 'function' || typeof t.subscribe !== 'function') throw new InvalidOptionsError('bus.transport', 'expected a BusTransport')
    this.#transport = t
    this.#channel = options.channel ?? 'stratacache'
    if (typeof this.#channel !== 'string' || !/^[A-Za-z0-9_.-]{1,200}$/.test(this.#channel)) throw new InvalidOptionsError('bus.channel', 'expected 1-200 characters of [A-Za-z0-9_.-]')
    this.#clock = options.clock ?? systemClock
    this.#heartbeatMs = toMs(options.heartbeatInterval ?? '1s', 'bus.heartbeatInterval')
    this.#deadAfterMs = toMs(options.deadAfter ?? '5s', 'bus.deadAfter')
    if (!(this.#heartbeatMs > 0 && this.#heartbeatMs !== Infinity)) throw new InvalidOptionsError('bus.heartbeatInterval', 'expected a finite duration > 0')
    if (!(this.#deadAfterMs > this.#heartbeatMs)) throw new InvalidOptionsError('bus.deadAfter', 'expected a duration longer than heartbeatInterval')
    const queueSize = options.queueSize ?? 10_000
    if (!Number.isSafeInteger(queueSize) || queueSize < 1) throw new InvalidOptionsError('bus.queueSize', `expected a positive integer, got ${String(queueSize)}`)
    this.#queueSize = queueSize
    // Start time plus a random fraction: a restarted process has a larger epoch, and two
    // processes started in the same millisecond still differ.
    this.#epoch = this.#clock.now() + Math.random()
  }

  get healthy(): boolean {
    return this.#healthy
  }

  /** Subscribes and starts heartbeats; resolves when messages can flow. Idempotent. */
  start(): Promise<void> {
    this.#started ??= this.#start()
    return this.#started
  }

  /** Receives the messages of `namespace`. Returns `detach`. */
  attach(namespace: string, listener: BusListener): () => void {
    let set = this.#listeners.get(namespace)
    if (set === undefined) this.#listeners.set(namespace, (set = new Set()))
    set.add(listener)
    listener.health(this.#healthy)
    return () => {
      set.delete(listener)
      if (set.size === 0) this.#listeners.delete(namespace)
    }
  }

  /** Failures the bus handled (publish retried, malformed payloads). */
  onError(listener: (error: CacheError) => void): () => void {
    this.#errorListeners.add(listener)
    return () => void this.#errorListeners.delete(listener)
  }

  /**
   * Sends a change to every other process. Resolves once the broker accepted it, or once
   * it is queued because the broker is down (then it goes out on reconnect). Never rejects
   * for a broker failure; rejects with `ERR_CLOSED` after `close()`.
   */
  async publish(body: Exclude<BusBody, { kind: 'heartbeat' }>): Promise<void> {
    if (this.#closed) throw new ClosedError('The bus is closed')
    this.#enqueue(body)
    await this.#drain()
  }

  stats(): BusStats {
    return {
      healthy: this.#healthy,
      published: this.#published,
      received: this.#received,
      gaps: this.#gaps,
      flushes: this.#flushes,
      duplicates: this.#duplicates,
      late: this.#late,
      malformed: this.#malformed,
      queued: this.#queuedItems,
      overflows: this.#overflows,
      publishFailures: this.#publishFailures,
    }
  }

  /** Stops heartbeats and the subscription; the transport is closed by its owner. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#heartbeatTimer !== undefined) this.#clock.clearTimeout(this.#heartbeatTimer)
    if (this.#retryTimer !== undefined) this.#clock.clearTimeout(this.#retryTimer)
    const unsubscribe = this.#unsubscribe
    this.#unsubscribe = undefined
    if (unsubscribe !== undefined) await unsubscribe().catch(() => {})
  }

  // ---- receiving ---------------------------------------------------------------------

  async #start(): Promise<void> {
    this.#unsubscribe = await this.#transport.subscribe(
      this.#channel,
      (payload) => this.#receive(payload),
      (state) => this.#onState(state),
    )
    this.#ownSeenAt = this.#clock.now()
    this.#setHealthy(true)
    this.#scheduleHeartbeat()
  }

  #onState(state: 'up' | 'down'): void {
    if (this.#closed) return
    if (state === 'down') {
      if (this.#transportDown) return
      this.#transportDown = true
      this.#flush('subscription-lost')
      this.#setHealthy(false)
      return
    }
    if (!this.#transportDown) return
    this.#transportDown = false
    // What arrived while we were away is unknown: start every sender afresh.
    this.#senders.clear()
    this.#ownSeenAt = this.#clock.now()
    this.#flush('reconnected')
    this.#setHealthy(true)
    void this.#drain()
  }

  #receive(payload: Uint8Array): void {
    if (this.#closed) return
    let m: BusMessage
    try {
      m = decodeMessage(payload)
    } catch (err) {
      this.#malformed++
      this.#report(err)
      return
    }
    const now = this.#clock.now()
    if (m.sender === this.id) {
      this.#ownSeenAt = now
      if (!this.#healthy && !this.#transportDown) {
        // Our own messages flow again after a silent spell: flush what may have gone stale.
        this.#flush('subscription-silent')
        this.#setHealthy(true)
      }
      return
    }
    this.#received++
    const heartbeat = m.body.kind === 'heartbeat'
    const st = this.#senders.get(m.sender)
    if (st === undefined) {
      this.#senders.set(m.sender, { epoch: m.epoch, seq: m.seq, seenAt: now })
      if (!heartbeat) this.#apply(m.body)
      return
    }
    st.seenAt = now
    if (m.epoch < st.epoch) {
      this.#late++
      return
    }
    if (m.epoch > st.epoch) {
      // The sender restarted. Its first data message is seq 1; anything later means we
      // missed some of its new life.
      const missed = heartbeat ? m.seq > 0 : m.seq !== 1
      st.epoch = m.epoch
      st.seq = m.seq
      if (missed) {
        this.#gaps++
        this.#flush('sender-restarted')
      }
      if (!heartbeat) this.#apply(m.body)
      return
    }
    if (heartbeat) {
      if (m.seq > st.seq) {
        this.#gaps++
        st.seq = m.seq
        this.#flush('gap')
      }
      return
    }
    if (m.seq <= st.seq) {
      this.#duplicates++
      return
    }
    if (m.seq > st.seq + 1) {
      this.#gaps++
      this.#flush('gap')
    }
    st.seq = m.seq
    this.#apply(m.body)
  }

  #apply(body: BusBody): void {
    if (body.kind === 'heartbeat') return
    const listeners = this.#listeners.get(body.namespace)
    if (listeners === undefined) return
    for (const l of listeners) {
      try {
        if (body.kind === 'delete') l.delete(body.keys)
        else if (body.kind === 'tags') l.tags(body.tags)
        else l.clear()
      } catch (err) {
        this.#report(err)
      }
    }
  }

  #flush(reason: FlushReason): void {
    this.#flushes++
    for (const set of this.#listeners.values()) {
      for (const l of set) {
        try {
          l.flush(reason)
        } catch (err) {
          this.#report(err)
        }
      }
    }
  }

  #setHealthy(healthy: boolean): void {
    if (this.#healthy === healthy) return
    this.#healthy = healthy
    for (const set of this.#listeners.values()) for (const l of set) l.health(healthy)
  }

  #scheduleHeartbeat(): void {
    if (this.#closed) return
    this.#heartbeatTimer = this.#clock.setTimeout(() => this.#tick(), this.#heartbeatMs, { unref: true })
  }

  #tick(): void {
    if (this.#closed) return
    const now = this.#clock.now()
    if (this.#healthy && now - this.#ownSeenAt > this.#deadAfterMs) {
      // Our own heartbeats stopped coming back: the subscription is silently dead.
      this.#flush('subscription-silent')
      this.#setHealthy(false)
    }
    // Forget senders long gone (restarted processes leave their old ids behind).
    for (const [id, st] of this.#senders) if (now - st.seenAt > 10 * this.#deadAfterMs) this.#senders.delete(id)
    const beat = encodeMessage({ sender: this.id, epoch: this.#epoch, seq: this.#seq, body: { kind: 'heartbeat' } })
    this.#transport.publish(this.#channel, beat).catch(() => {
      // A missed heartbeat is what heartbeats are for; the queue retries data messages.
    })
    this.#scheduleHeartbeat()
  }

  // ---- publishing --------------------------------------------------------------------

  #enqueue(body: Exclude<BusBody, { kind: 'heartbeat' }>): void {
    // The message being sent right now is frozen: nothing merges into it or removes it.
    const tail = this.#queue[this.#queue.length - 1]
    const last = tail === this.#inFlight ? undefined : tail
    if (body.kind === 'clear') {
      // A clear supersedes every queued change of its namespace.
      for (let i = this.#queue.length - 1; i >= 0; i--) {
        const q = this.#queue[i] as Queued
        if (q.namespace === body.namespace && q !== this.#inFlight) {
          this.#queuedItems -= size(q)
          this.#queue.splice(i, 1)
        }
      }
      this.#queue.push({ kind: 'clear', namespace: body.namespace })
      this.#queuedItems += 1
    } else if (body.kind === 'delete') {
      if (last?.kind === 'delete' && last.namespace === body.namespace) {
        const before = last.keys.size
        for (const k of body.keys) last.keys.add(k)
        this.#queuedItems += last.keys.size - before
      } else {
        this.#queue.push({ kind: 'delete', namespace: body.namespace, keys: new Set(body.keys) })
        this.#queuedItems += body.keys.length
      }
    } else {
      if (last?.kind === 'tags' && last.namespace === body.namespace) {
        const before = last.tags.size
        for (const t of body.tags) {
          const had = last.tags.get(t.tag)
          if (had === undefined || had.version < t.version || (had.version === t.version && t.mode === 'hard')) last.tags.set(t.tag, t)
        }
        this.#queuedItems += last.tags.size - before
      } else {
        this.#queue.push({ kind: 'tags', namespace: body.namespace, tags: new Map(body.tags.map((t) => [t.tag, t])) })
        this.#queuedItems += body.tags.length
      }
    }
    if (this.#queuedItems > this.#queueSize) {
      // Too much to remember: tell everyone to flush instead of losing an invalidation.
      this.#overflows++
      const namespaces = [...new Set(this.#queue.map((q) => q.namespace))]
      this.#queue.length = 0
      for (const namespace of namespaces) this.#queue.push({ kind: 'clear', namespace })
      this.#queuedItems = namespaces.length
    }
  }

  /** Sends queued messages in order; on failure keeps them and retries with backoff. */
  async #drain(): Promise<void> {
    if (this.#sending) return this.#waitDrained()
    this.#sending = true
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const q = this.#queue[0] as Queued
        this.#inFlight = q
        const seq = this.#seq + 1
        const body: BusBody =
          q.kind === 'delete' ? { kind: 'delete', namespace: q.namespace, keys: [...q.keys] } : q.kind === 'tags' ? { kind: 'tags', namespace: q.namespace, tags: [...q.tags.values()] } : q
        try {
          await this.#transport.publish(this.#channel, encodeMessage({ sender: this.id, epoch: this.#epoch, seq, body }))
        } catch (err) {
          this.#publishFailures++
          this.#report(err)
          this.#scheduleRetry()
          return
        } finally {
          this.#inFlight = undefined
        }
        this.#seq = seq
        this.#published++
        // By identity: an overflow may have replaced the queue while this one was out.
        const at = this.#queue.indexOf(q)
        if (at !== -1) {
          this.#queue.splice(at, 1)
          this.#queuedItems -= size(q)
        }
        this.#retryDelay = 100
      }
    } finally {
      this.#sending = false
      const waiters = this.#drainWaiters
      this.#drainWaiters = []
      for (const w of waiters) w()
    }
  }

  #drainWaiters: Array<() => void> = []

  /** A publish made while another drain runs resolves when that drain stops (sent or queued). */
  #waitDrained(): Promise<void> {
    return new Promise((resolve) => this.#drainWaiters.push(resolve))
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retryTimer !== undefined) return
    const delay = this.#retryDelay
    this.#retryDelay = Math.min(5_000, this.#retryDelay * 2)
    this.#retryTimer = this.#clock.setTimeout(
      () => {
        this.#retryTimer = undefined
        void this.#drain()
      },
      delay,
      { unref: true },
    )
  }

  #report(err: unknown): void {
    const error = isCacheError(err) ? err : new StoreUnavailableError(`Bus transport ${this.#transport.name} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    for (const l of this.#errorListeners) {
      try {
        l(error)
      } catch {
        // A throwing listener must not break the bus.
      }
    }
  }
}

function size(q: Queued): number {
  return q.kind === 'delete' ? q.keys.size : q.kind === 'tags' ? q.tags.size : 1
}

/** Creates a bus; call `start()` (the cache does it) before publishing. */
export function createBus(options: BusOptions): Bus {
  return new Bus(options)
}
