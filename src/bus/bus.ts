/**
 * The invalidation bus: keeps every process's L1 honest when data changes elsewhere.
 *
 * Pub/sub is fire-and-forget, so the Bus notices what it may have lost instead of
 * trusting delivery (Zoocache admits a node that misses a message stays stale until TTL):
 *
 * - Sequence. Each Bus stamps its data messages with its `epoch` and a `seq` (1, 2, …).
 *   A receiver tracks, per sender, the highest seq it applied and which of the 32 seqs
 *   below it arrived. A gap (seq jumps), or a heartbeat announcing a seq it never received,
 *   means a message was lost: every attached cache flushes its L1 (it cannot tell which
 *   keys the lost message named). Messages at or below the highest seq are discarded: a
 *   duplicate if that seq already arrived, late otherwise (its gap was already flushed) —
 *   LoomCache's rule. A message of an older epoch is late; a newer epoch (the same sender
 *   id restarted) is trusted from seq 1, a later seq is a gap. A sender seen for the first
 *   time is trusted from that message on during a warm-up of 1.5 heartbeat intervals after
 *   each (re)subscription, which ends with a flush; after it, a new sender first heard at
 *   seq > 0 costs a flush (its earlier messages may be lost).
 * - Heartbeats. Every Bus publishes a heartbeat each `heartbeatInterval`, carrying its
 *   last data seq, so a lost last message is noticed even when nothing follows it. It
 *   also hears its own messages (the transport delivers them back): a Bus that has not
 *   heard itself for `deadAfter` knows its subscription is silently dead — it flushes,
 *   reports itself unhealthy (attached caches then bypass L1) and asks the transport to
 *   reconnect; when its own messages flow again it flushes once more and is healthy. A
 *   known sender not heard for `deadAfter` may have died right after a lost message: it is
 *   forgotten with one flush (a sender that closes says goodbye and costs nothing).
 * - Connection. The transport's 'down' flushes and makes the Bus unhealthy at once; 'up'
 *   flushes again (what was published meanwhile is unknown) and restores health (kz_cache
 *   flushes on AMQP reconnect; Redis client-side caching flushes on connection loss).
 * - Publishing. `publish` applies the change at once to the other caches attached to this
 *   Bus in this process, then queues it for the broker. The queue is merged per namespace
 *   (keys and tag versions coalesce; a clear supersedes both — every message only drops
 *   things, so order between them does not matter), sent one message at a time, and kept
 *   while the broker is down (retried with the shared backoff, core/backoff.ts: 100 ms
 *   doubling to 5 s, ±25 % jitter; and at once on reconnect). Seq numbers are given at send time, so merging never looks like a gap.
 *   A queue past `queueSize` keys and tags becomes one clear per namespace: receivers
 *   flush instead of missing an invalidation silently.
 *
 * Stale-read bounds (a value changed in process A, read from L1 in process B):
 * - delivered: until the message arrives (measured on loopback: see docs/guide/bus.md and docs/benchmarks.md);
 * - message lost: until A's next heartbeat arrives, ≤ heartbeatInterval + delivery;
 * - B's subscription lost visibly: none (flush and L1 bypass at once);
 * - B's subscription silently dead: ≤ deadAfter + heartbeatInterval (defaults: 5 s);
 * - A crashed after a lost message: ≤ deadAfter + heartbeatInterval;
 * - broker down while A publishes: B's subscription is down too, so B bypasses L1 until it
 *   is back, and flushes then.
 */
import { randomBytes } from 'node:crypto'
import { backoffPolicy, type Backoff, type ReconnectOptions } from '../core/backoff.js'
import { clockOption, type Clock, type TimerHandle } from '../core/clock.js'
import { toMs, type Duration } from '../core/duration.js'
import { BusUnavailableError, ClosedError, InvalidOptionsError, type CacheError, isCacheError } from '../core/errors.js'
import { optionNames, rejectUnknown } from '../core/known-options.js'
import { mathRandom, type Random, randomOption } from '../core/random.js'
import { PeerLiveness } from '../core/peer-liveness.js'
import { systemClock } from '../core/system-clock.js'
import { decodeMessage, encodeMessage, type BusBody, type BusMessage, type TagVersion } from './message.js'
import type { BusTransport } from './types.js'
import { busPublishChannel, busReceiveChannel, type BusTrace, isTraced, traceAsync, traceSync } from '../core/tracing.js'

/** The Bus's own settings; every `xxxBus(options)` adapter factory accepts them too. */
export interface BusSettings {
  /** The channel (subject, routing key) every process of one application shares. @default 'stratacache' */
  channel?: string
  /** How often this process says it is alive (and announces its last seq). @default '1s' */
  heartbeatInterval?: Duration
  /**
   * Not hearing itself this long, a process declares its subscription dead; not hearing a
   * known sender this long, it forgets the sender with one flush. Longer than
   * `heartbeatInterval`. Silent-subscription bound: `deadAfter + heartbeatInterval`.
   * @default '4s'
   */
  deadAfter?: Duration
  /** Keys and tags waiting while the broker is down; past it, the queue becomes one clear per namespace. @default 10_000 */
  queueSize?: number
  /**
   * Delays of the Bus's own retries (subscribing at start, publishes the broker refused),
   * core/backoff.ts: `initial` doubling per failure up to `max`, each jittered ±`jitter`.
   * An adapter (`redisBus`, `natsBus`, `amqpBus`) gives the same value to its transport's
   * reconnects. @default { initial: '100ms', max: '5s', jitter: 0.25 }
   */
  reconnect?: ReconnectOptions
  /** @default systemClock */
  clock?: Clock
  /** For the epoch's random fraction and the retry jitter. @default mathRandom */
  random?: Random
}

export interface BusOptions extends BusSettings {
  /** Moves the bytes: `memoryTransport()`, `redisTransport({ url })`, or yours. Owned (closed) by the Bus. */
  transport: BusTransport
}

/** The `BusSettings` names, held to the type: an adapter's options are these and its transport's. */
export const BUS_SETTING_NAMES = optionNames<BusSettings>({ channel: true, heartbeatInterval: true, deadAfter: true, queueSize: true, reconnect: true, clock: true, random: true })
/** createBus's option names: another is refused, not ignored (core/known-options.ts). */
const BUS_OPTIONS = [...BUS_SETTING_NAMES, 'transport']

/** The `BusSettings` fields of an adapter's options (the rest belongs to its transport). */
export function pickBusSettings(options: BusSettings): BusSettings {
  const given = options as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const name of BUS_SETTING_NAMES) if (given[name] !== undefined) out[name] = given[name]
  return out as BusSettings
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

export type FlushReason = 'gap' | 'subscription-lost' | 'subscription-silent' | 'reconnected' | 'sender-restarted' | 'sender-silent' | 'sender-joined' | 'started' | 'warmed'

/** A change to publish (the data messages). */
export type BusChange = Exclude<BusBody, { kind: 'heartbeat' } | { kind: 'bye' }>

export interface BusStats {
  readonly healthy: boolean
  /** Data messages sent to the broker. */
  readonly published: number
  /** Messages from other processes received (heartbeats included). */
  readonly received: number
  /** Lost messages noticed (seq gaps, heartbeats ahead of what was received). */
  readonly gaps: number
  /** L1 flushes caused by the bus (gaps, subscription loss, reconnects, silent senders). */
  readonly flushes: number
  readonly duplicates: number
  /** Messages older than what was already applied (out of order or an old epoch), discarded. */
  readonly late: number
  /** Payloads that were not bus messages. */
  readonly malformed: number
  /** Keys and tags waiting in the publish queue now. */
  readonly queued: number
  /** Times the publish queue overflowed and became clears. */
  readonly overflows: number
  readonly publishFailures: number
  /** Times the subscription was found silently dead (own heartbeats not coming back). */
  readonly silences: number
}

type QueuedBody = { kind: 'delete'; namespace: string; keys: Set<string> } | { kind: 'tags'; namespace: string; tags: Map<string, TagVersion> } | { kind: 'clear'; namespace: string }
type Queued = QueuedBody & { waiters: Array<() => void> }

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
  /** Per-sender seq tracking and silence (the pure liveness module). */
  readonly #senders: PeerLiveness
  readonly #listeners = new Map<string, Set<BusListener>>()
  readonly #errorListeners = new Set<(error: CacheError) => void>()
  readonly #queue: Queued[] = []
  #queuedItems = 0
  #inFlight: Queued | undefined
  #sending = false
  #retryTimer: TimerHandle | undefined
  /** Backoff of publishes the broker refused. */
  readonly #publishRetry: Backoff
  #heartbeatTimer: TimerHandle | undefined
  #warmTimer: TimerHandle | undefined
  /** Until then, senders heard for the first time are trusted without a flush (see #warm). */
  #warmUntil = 0
  #subscribeTimer: TimerHandle | undefined
  /** Backoff of the first subscribe. */
  readonly #subscribeRetry: Backoff
  #unsubscribe: (() => Promise<void>) | undefined
  #subscribed = false
  #healthy = false
  #transportDown = false
  #silent = false
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
  #silences = 0

  constructor(options: BusOptions) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('bus', 'expected an object')
    rejectUnknown(options, BUS_OPTIONS, 'bus')
    const t = options.transport
    if (t === null || typeof t !== 'object' || typeof t.publish !== 'function' || typeof t.subscribe !== 'function' || typeof t.close !== 'function') {
      throw new InvalidOptionsError('bus.transport', 'expected a BusTransport')
    }
    this.#transport = t
    this.#channel = options.channel ?? 'stratacache'
    if (typeof this.#channel !== 'string' || !/^[A-Za-z0-9_.-]{1,200}$/.test(this.#channel)) throw new InvalidOptionsError('bus.channel', 'expected 1-200 characters of [A-Za-z0-9_.-]')
    this.#clock = clockOption(options.clock, systemClock, 'bus.clock')
    this.#heartbeatMs = toMs(options.heartbeatInterval ?? '1s', 'bus.heartbeatInterval')
    this.#deadAfterMs = toMs(options.deadAfter ?? '4s', 'bus.deadAfter')
    if (!(this.#heartbeatMs > 0 && this.#heartbeatMs !== Infinity)) throw new InvalidOptionsError('bus.heartbeatInterval', 'expected a finite duration > 0')
    if (!(this.#deadAfterMs > this.#heartbeatMs && this.#deadAfterMs !== Infinity)) throw new InvalidOptionsError('bus.deadAfter', 'expected a finite duration longer than heartbeatInterval')
    const queueSize = options.queueSize ?? 10_000
    if (!Number.isSafeInteger(queueSize) || queueSize < 1) throw new InvalidOptionsError('bus.queueSize', `expected a positive integer, got ${String(queueSize)}`)
    this.#queueSize = queueSize
    this.#senders = new PeerLiveness(this.#deadAfterMs)
    const random = randomOption(options.random, 'bus.random', mathRandom)
    // Start time plus a random fraction: a restarted process has a larger epoch, and two
    // processes started in the same millisecond still differ.
    this.#epoch = Math.floor(this.#clock.now()) + random.next()
    const backoff = backoffPolicy(options.reconnect, 'bus.reconnect', random)
    this.#publishRetry = backoff.attempts()
    this.#subscribeRetry = backoff.attempts()
  }

  get healthy(): boolean {
    return this.#healthy
  }

  /** How many listeners (caches) are attached. */
  get attached(): number {
    let n = 0
    for (const set of this.#listeners.values()) n += set.size
    return n
  }

  /** The transport's name (`'redis'`, `'memory'`, …). */
  get transportName(): string {
    return this.#transport.name
  }

  /**
   * Subscribes and starts heartbeats. Resolves when messages can flow; while the broker
   * cannot be reached it keeps retrying (backoff `reconnect`: 100 ms doubling to 5 s, ±25 %) and the
   * returned promise waits. Idempotent. Never rejects, except `ERR_CLOSED` after `close()`.
   */
  start(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('The bus is closed'))
    this.#started ??= new Promise<void>((resolve, reject) => this.#subscribe(resolve, reject))
    return this.#started
  }

  /**
   * The L2 store a cache on this bus must use, or undefined when any will do (every bus that
   * carries messages). A bus that learns of changes from the store itself (etcdBus: etcd's
   * watch of its keys) names that store: a cache on another would never be heard.
   */
  requiredStore(): object | undefined {
    return undefined
  }

  /** Receives the messages of `namespace`. Returns `detach`. Throws `ERR_CLOSED` after `close()` (a bus closes with the last cache attached). */
  attach(namespace: string, listener: BusListener): () => void {
    if (this.#closed) throw new ClosedError('The bus is closed (it closed with the last cache attached to it): create a new one')
    if (typeof namespace !== 'string') throw new InvalidOptionsError('namespace', 'expected a string')
    let set = this.#listeners.get(namespace)
    if (set === undefined) this.#listeners.set(namespace, (set = new Set()))
    set.add(listener)
    try {
      listener.health(this.#healthy)
    } catch (err) {
      this.#report(err)
    }
    return () => {
      set.delete(listener)
      if (set.size === 0 && this.#listeners.get(namespace) === set) this.#listeners.delete(namespace)
    }
  }

  /** Failures the bus handled (publishes retried, malformed payloads, listener errors). */
  onError(listener: (error: CacheError) => void): () => void {
    this.#errorListeners.add(listener)
    return () => void this.#errorListeners.delete(listener)
  }

  /**
   * Sends a change to every other process, and applies it at once to the other caches
   * attached here (not to `origin`, the cache that made it). Resolves once the broker
   * accepted it, or once it waits in the queue because the broker is down (it goes out on
   * reconnect). Never rejects for a broker failure; rejects with `ERR_CLOSED` after
   * `close()`.
   */
  async publish(change: BusChange, origin?: BusListener): Promise<void> {
    if (this.#closed) throw new ClosedError('The bus is closed')
    this.#applyLocally(change, origin)
    let done!: () => void
    const waiter = new Promise<void>((resolve) => (done = resolve))
    this.#enqueue(change, done)
    // The broker is known to be failing (a retry is scheduled) or we are not subscribed
    // yet: the change waits in the queue, the caller does not.
    if (this.#retryTimer !== undefined || !this.#subscribed) done()
    else void this.#drain()
    return waiter
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
      silences: this.#silences,
    }
  }

  /**
   * Says goodbye (so nobody flushes for our silence), stops heartbeats and the
   * subscription, releases publish waiters, and closes the transport. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    if (this.#subscribed && !this.#transportDown) {
      const bye = encodeMessage({ sender: this.id, epoch: this.#epoch, seq: this.#seq, body: { kind: 'bye' } })
      await this.#transport.publish(this.#channel, bye).catch(() => {})
    }
    this.#closed = true
    for (const t of [this.#heartbeatTimer, this.#retryTimer, this.#subscribeTimer, this.#warmTimer]) if (t !== undefined) this.#clock.clearTimeout(t)
    this.#setHealthy(false)
    for (const q of this.#queue) for (const w of q.waiters.splice(0)) w()
    const unsubscribe = this.#unsubscribe
    this.#unsubscribe = undefined
    if (unsubscribe !== undefined) await unsubscribe().catch(() => {})
    await this.#transport.close().catch(() => {})
  }

  // ---- receiving ---------------------------------------------------------------------

  #subscribe(resolve: () => void, reject: (err: unknown) => void): void {
    if (this.#closed) {
      reject(new ClosedError('The bus is closed'))
      return
    }
    this.#transport
      .subscribe(
        this.#channel,
        (payload) => this.#receive(payload),
        (state) => this.#onState(state),
      )
      .then(
        (unsubscribe) => {
          if (this.#closed) {
            void unsubscribe().catch(() => {})
            reject(new ClosedError('The bus is closed'))
            return
          }
          this.#unsubscribe = unsubscribe
          this.#subscribed = true
          this.#ownSeenAt = this.#clock.now()
          // Whatever attached caches hold was read while nobody listened for changes.
          this.#flush('started')
          this.#warm()
          this.#setHealthy(true)
          this.#tick()
          void this.#drain()
          resolve()
        },
        (err: unknown) => {
          this.#report(err)
          if (this.#closed) {
            reject(new ClosedError('The bus is closed'))
            return
          }
          const delay = this.#subscribeRetry.next()
          this.#subscribeTimer = this.#clock.setTimeout(
            () => {
              this.#subscribeTimer = undefined
              this.#subscribe(resolve, reject)
            },
            delay,
            { unref: true },
          )
        },
      )
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
    this.#silent = false
    // What was published while we were away is unknown: start every sender afresh.
    this.#senders.reset()
    this.#ownSeenAt = this.#clock.now()
    this.#flush('reconnected')
    this.#warm()
    this.#setHealthy(true)
    // The broker is back: send what waits now rather than at the next backoff step.
    if (this.#retryTimer !== undefined) {
      this.#clock.clearTimeout(this.#retryTimer)
      this.#retryTimer = undefined
    }
    this.#publishRetry.reset()
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
      if (this.#silent && !this.#transportDown) {
        // Our own messages flow again after a silent spell: flush what may have gone stale.
        this.#silent = false
        this.#senders.reset()
        this.#flush('subscription-silent')
        this.#warm()
        this.#setHealthy(true)
      }
      return
    }
    this.#received++
    const kind = m.body.kind
    const control = kind === 'heartbeat' || kind === 'bye'
    if (kind === 'bye' && !this.#senders.has(m.sender)) return
    const verdict = this.#senders.onMessage(m.sender, m.epoch, m.seq, now, control ? 'heartbeat' : 'data')
    switch (verdict) {
      case 'joined':
        // Past the warm-up, a sender first heard at seq > 0 sent messages since we listen
        // that we may have lost (its first heartbeat, at seq 0, was lost too).
        if (now >= this.#warmUntil && m.seq > 0) this.#flush('sender-joined')
        break
      case 'late':
        this.#late++
        return
      case 'duplicate':
        this.#duplicates++
        return
      case 'restarted-gap':
        // The same sender id restarted and we missed some of its new life.
        this.#gaps++
        this.#flush('sender-restarted')
        break
      case 'gap':
        // A seq jumped, or a heartbeat names a message we never received.
        this.#gaps++
        this.#flush('gap')
        break
      case 'restarted':
      case 'alive':
        break
    }
    if (kind === 'bye') this.#senders.forget(m.sender)
    else if (!control) {
      if (isTraced(busReceiveChannel)) {
        const body = m.body as BusChange
        traceSync(busReceiveChannel, this.#traceContext(body, payload.byteLength, m.seq), () => this.#apply(body))
      } else this.#apply(m.body)
    }
  }

  /** The context of a bus trace (core/tracing.ts): what the message is about, not its keys. */
  #traceContext(body: BusChange, bytes: number, seq: number): BusTrace {
    const count = body.kind === 'delete' ? body.keys.length : body.kind === 'tags' ? body.tags.length : 0
    return { namespace: body.namespace, kind: body.kind, count, bytes, seq, transport: this.#transport.name }
  }

  #apply(body: BusBody): void {
    if (body.kind === 'heartbeat' || body.kind === 'bye') return
    const listeners = this.#listeners.get(body.namespace)
    if (listeners === undefined) return
    for (const l of listeners) this.#deliver(l, body)
  }

  #applyLocally(change: BusChange, origin: BusListener | undefined): void {
    const listeners = this.#listeners.get(change.namespace)
    if (listeners === undefined) return
    for (const l of listeners) if (l !== origin) this.#deliver(l, change)
  }

  #deliver(l: BusListener, body: BusChange): void {
    try {
      if (body.kind === 'delete') l.delete(body.keys)
      else if (body.kind === 'tags') l.tags(body.tags)
      else l.clear()
    } catch (err) {
      this.#report(err)
    }
  }

  /**
   * Warm-up after (re)subscribing: for 1.5 heartbeat intervals, every live sender is heard
   * for the first time and trusted from there on — but a message it sent after we
   * subscribed and before that first contact may have been lost unnoticed. So the warm-up
   * ends with one flush, and a sender heard first after it, at seq > 0, costs one flush.
   * An entry filled during the warm-up is thus served for at most the warm-up: inside the
   * lost-message bound.
   */
  #warm(): void {
    const ms = 1.5 * this.#heartbeatMs
    this.#warmUntil = this.#clock.now() + ms
    if (this.#warmTimer !== undefined) this.#clock.clearTimeout(this.#warmTimer)
    this.#warmTimer = this.#clock.setTimeout(
      () => {
        this.#warmTimer = undefined
        if (!this.#closed && this.#healthy) this.#flush('warmed')
      },
      ms,
      { unref: true },
    )
  }

  #flush(reason: FlushReason): void {
    if (reason !== 'started' && reason !== 'warmed') this.#flushes++
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
    for (const set of this.#listeners.values()) {
      for (const l of set) {
        try {
          l.health(healthy)
        } catch (err) {
          this.#report(err)
        }
      }
    }
  }

  /** Heartbeat: check our own subscription and the senders we know, then say we are alive. */
  #tick(): void {
    this.#heartbeatTimer = undefined
    if (this.#closed) return
    const now = this.#clock.now()
    if (!this.#transportDown && !this.#silent && now - this.#ownSeenAt > this.#deadAfterMs) {
      // Our own heartbeats stopped coming back: the subscription is silently dead.
      this.#silent = true
      this.#silences++
      this.#flush('subscription-silent')
      this.#setHealthy(false)
      try {
        this.#transport.resubscribe?.()
      } catch (err) {
        this.#report(err)
      }
    }
    if (this.#healthy) {
      // A sender gone quiet may have died right after a message we lost: forget it, once.
      if (this.#senders.onTick(now).length > 0) this.#flush('sender-silent')
    }
    const beat = encodeMessage({ sender: this.id, epoch: this.#epoch, seq: this.#seq, body: { kind: 'heartbeat' } })
    this.#transport.publish(this.#channel, beat).catch(() => {
      // A missed heartbeat is what heartbeats are for; the queue retries data messages.
    })
    this.#heartbeatTimer = this.#clock.setTimeout(() => this.#tick(), this.#heartbeatMs, { unref: true })
  }

  // ---- publishing --------------------------------------------------------------------

  #enqueue(change: BusChange, waiter: () => void): void {
    const ns = change.namespace
    // The message being sent right now is frozen: nothing merges into it or removes it.
    const open = (q: Queued): boolean => q !== this.#inFlight && q.namespace === ns
    const clear = this.#queue.find((q) => open(q) && q.kind === 'clear')
    if (clear !== undefined) {
      // A queued clear already covers any change of its namespace.
      clear.waiters.push(waiter)
      return
    }
    if (change.kind === 'clear') {
      const waiters = [waiter]
      for (let i = this.#queue.length - 1; i >= 0; i--) {
        const q = this.#queue[i] as Queued
        if (open(q)) {
          this.#queuedItems -= size(q)
          waiters.push(...q.waiters)
          this.#queue.splice(i, 1)
        }
      }
      this.#queue.push({ kind: 'clear', namespace: ns, waiters })
      this.#queuedItems += 1
    } else if (change.kind === 'delete') {
      const same = this.#queue.find((q): q is Queued & { kind: 'delete' } => open(q) && q.kind === 'delete')
      if (same !== undefined) {
        const before = same.keys.size
        for (const k of change.keys) same.keys.add(k)
        this.#queuedItems += same.keys.size - before
        same.waiters.push(waiter)
      } else {
        const keys = new Set(change.keys)
        this.#queue.push({ kind: 'delete', namespace: ns, keys, waiters: [waiter] })
        this.#queuedItems += keys.size
      }
    } else {
      let same = this.#queue.find((q): q is Queued & { kind: 'tags' } => open(q) && q.kind === 'tags')
      if (same === undefined) {
        same = { kind: 'tags', namespace: ns, tags: new Map(), waiters: [] }
        this.#queue.push(same)
      }
      const before = same.tags.size
      for (const t of change.tags) {
        // Per tag and mode, the newest version is all a receiver needs.
        const id = `${t.mode}:${t.tag}`
        const had = same.tags.get(id)
        if (had === undefined || had.version < t.version) same.tags.set(id, t)
      }
      this.#queuedItems += same.tags.size - before
      same.waiters.push(waiter)
    }
    if (this.#queuedItems > this.#queueSize) this.#overflow()
  }

  /** Too much to remember: tell everyone to flush instead of losing an invalidation. */
  #overflow(): void {
    this.#overflows++
    const waiters: Array<() => void> = []
    const namespaces = new Set<string>()
    for (const q of this.#queue) {
      if (q === this.#inFlight) continue
      namespaces.add(q.namespace)
      waiters.push(...q.waiters)
    }
    const kept = this.#inFlight !== undefined && this.#queue.includes(this.#inFlight) ? [this.#inFlight] : []
    this.#queue.length = 0
    this.#queue.push(...kept)
    this.#queuedItems = kept.reduce((n, q) => n + size(q), 0)
    for (const namespace of namespaces) {
      this.#queue.push({ kind: 'clear', namespace, waiters: [] })
      this.#queuedItems += 1
    }
    // Their changes are now covered by the clears: the callers need not wait for them.
    for (const w of waiters) w()
  }

  /** Sends queued messages in order; on failure keeps them and retries with backoff. */
  async #drain(): Promise<void> {
    if (this.#sending || this.#closed || !this.#subscribed) return
    this.#sending = true
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const q = this.#queue[0] as Queued
        this.#inFlight = q
        const seq = this.#seq + 1
        const body: BusChange =
          q.kind === 'delete'
            ? { kind: 'delete', namespace: q.namespace, keys: [...q.keys] }
            : q.kind === 'tags'
              ? { kind: 'tags', namespace: q.namespace, tags: [...q.tags.values()] }
              : { kind: 'clear', namespace: q.namespace }
        try {
          const payload = encodeMessage({ sender: this.id, epoch: this.#epoch, seq, body })
          if (isTraced(busPublishChannel)) await traceAsync(busPublishChannel, this.#traceContext(body, payload.byteLength, seq), () => this.#transport.publish(this.#channel, payload))
          else await this.#transport.publish(this.#channel, payload)
        } catch (err) {
          this.#publishFailures++
          this.#report(err)
          // Kept for later; callers are released: their change waits here, not in their call.
          for (const item of this.#queue) for (const w of item.waiters.splice(0)) w()
          this.#scheduleRetry()
          return
        } finally {
          this.#inFlight = undefined
        }
        this.#seq = seq
        this.#published++
        this.#publishRetry.reset()
        const at = this.#queue.indexOf(q)
        if (at !== -1) {
          this.#queue.splice(at, 1)
          this.#queuedItems -= size(q)
        }
        for (const w of q.waiters.splice(0)) w()
      }
    } finally {
      this.#sending = false
    }
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retryTimer !== undefined) return
    const delay = this.#publishRetry.next()
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
    const error = isCacheError(err) ? err : new BusUnavailableError(`Bus transport ${this.#transport.name} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    for (const l of this.#errorListeners) {
      try {
        l(error)
      } catch {
        // A throwing listener must not break the bus.
      }
    }
  }
}

function size(q: QueuedBody): number {
  return q.kind === 'delete' ? q.keys.size : q.kind === 'tags' ? q.tags.size : 1
}

/** Creates a bus over any transport; the cache starts it (`start()`) when attached. */
export function createBus(options: BusOptions): Bus {
  return new Bus(options)
}
