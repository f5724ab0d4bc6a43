/**
 * A self-healing link to a RabbitMQ broker, shared by the AMQP bus transport and the AMQP
 * change feed. The one file that imports `amqplib`.
 *
 * - One connection, opened by `start()` and kept open until `close()`: a lost connection
 *   (broker killed, socket cut, missed heartbeats, a channel error) is re-opened after
 *   100 ms, doubling to 5 s, forever.
 * - Publishing goes through a confirm channel: `publish` resolves once the broker took
 *   the message, rejects at once while disconnected, and after `timeoutMs` otherwise.
 * - Each consumer gets its own channel and an exclusive, auto-delete, server-named queue
 *   bound to its exchange with its binding keys. The broker drops the queue with the
 *   connection, so after a reconnect every consumer is declared again; in between it
 *   missed messages, which is why it hears 'down' on loss and 'up' once consuming again.
 * - Any failure while (re)declaring closes the whole connection and starts over: one
 *   recovery path instead of one per channel.
 */
import amqp from 'amqplib'
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib'
import { clockOption, type Clock, type TimerHandle } from '../core/clock.js'
import { toMs, type Duration } from '../core/duration.js'
import { type CacheError, ClosedError, InvalidOptionsError } from '../core/errors.js'
import { systemClock } from '../core/system-clock.js'
import { backoffPolicy, type Backoff, type ReconnectOptions } from '../core/backoff.js'
import { mathRandom, type Random, randomOption } from '../core/random.js'
import { bounded } from './bounded.js'

export interface AmqpLinkOptions {
  /** Broker URL. @default 'amqp://guest:guest@127.0.0.1:5672' */
  url?: string
  /**
   * AMQP heartbeat: a broker silent for about twice this is taken as lost. Sent as the
   * URL's `heartbeat` parameter unless the URL has one. @default '5s'
   */
  heartbeat?: Duration
  /** How long opening a connection may take. @default '5s' */
  connectTimeout?: Duration
  /** Reconnect delays (core/backoff.ts): `initial` doubling per failed attempt up to `max`, each jittered ±`jitter`. @default { initial: '100ms', max: '5s', jitter: 0.25 } */
  reconnect?: ReconnectOptions
  /** @default systemClock */
  clock?: Clock
  /** Source of the reconnect jitter. @default mathRandom */
  random?: Random
}

export interface ExchangeSpec {
  readonly name: string
  /** Survives a broker restart (must match an existing exchange's setting). */
  readonly durable: boolean
}

export interface ConsumerSpec {
  readonly exchange: ExchangeSpec
  readonly bindings: readonly string[]
  onMessage(routingKey: string, content: Uint8Array): void
  onState(state: 'up' | 'down'): void
}

export interface AmqpConsumer {
  /** Resolves the first time the consumer is receiving. */
  readonly ready: Promise<void>
  cancel(): Promise<void>
}

interface Consumer {
  readonly spec: ConsumerSpec
  channel: Channel | undefined
  up: boolean
  active: boolean
  markReady: () => void
}

export class AmqpLink {
  readonly #url: string
  readonly #connectTimeoutMs: number
  readonly #backoff: Backoff
  readonly #clock: Clock
  /** Names the link in error messages (`amqp`, `amqp feed`). */
  readonly #label: string
  readonly #unavailable: (message: string, cause: unknown) => CacheError
  readonly #consumers = new Set<Consumer>()
  readonly #exchanges = new Map<string, ExchangeSpec>()
  /** Channels we close on purpose (a cancelled consumer): their 'close' is no failure. */
  readonly #closing = new WeakSet<Channel>()
  #model: ChannelModel | undefined
  #publisher: ConfirmChannel | undefined
  #up = false
  #started = false
  #closed = false
  #connecting = false
  #retry: TimerHandle | undefined
  #upWaiters = new Set<() => void>()
  /** Connections lost since start (for stats). */
  reconnects = 0
  /** The last connection failure, for error messages. */
  lastError: unknown

  /**
   * `prefix`: how option names are reported (`bus`, `feed`); `label`: the link's name in
   * errors; `unavailable`: the error for "broker not reachable" (the bus's or the feed's code).
   */
  constructor(options: AmqpLinkOptions, prefix: string, label: string, unavailable: (message: string, cause: unknown) => CacheError) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError(prefix, 'expected an object')
    this.#label = label
    this.#unavailable = unavailable
    const url = options.url ?? 'amqp://guest:guest@127.0.0.1:5672'
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch (err) {
      throw new InvalidOptionsError(`${prefix}.url`, `expected an amqp:// or amqps:// URL, got ${JSON.stringify(url)}`, { cause: err })
    }
    if (parsed.protocol !== 'amqp:' && parsed.protocol !== 'amqps:') throw new InvalidOptionsError(`${prefix}.url`, `expected an amqp:// or amqps:// URL, got ${JSON.stringify(url)}`)
    const heartbeat = toMs(options.heartbeat ?? '5s', `${prefix}.heartbeat`)
    if (!(heartbeat >= 1000 && Number.isFinite(heartbeat))) throw new InvalidOptionsError(`${prefix}.heartbeat`, 'expected a finite duration >= 1s (AMQP counts heartbeats in seconds)')
    if (!parsed.searchParams.has('heartbeat')) parsed.searchParams.set('heartbeat', String(Math.round(heartbeat / 1000)))
    this.#url = parsed.toString()
    this.#connectTimeoutMs = toMs(options.connectTimeout ?? '5s', `${prefix}.connectTimeout`)
    if (!(this.#connectTimeoutMs > 0 && Number.isFinite(this.#connectTimeoutMs))) throw new InvalidOptionsError(`${prefix}.connectTimeout`, 'expected a finite duration > 0')
    this.#backoff = backoffPolicy(options.reconnect, `${prefix}.reconnect`, randomOption(options.random, `${prefix}.random`, mathRandom)).attempts()
    this.#clock = clockOption(options.clock, systemClock, `${prefix}.clock`)
  }

  get up(): boolean {
    return this.#up
  }

  /** Starts connecting in the background (idempotent). */
  start(): void {
    if (this.#started || this.#closed) return
    this.#started = true
    void this.#connect()
  }

  /** Resolves once connected; rejects after `timeoutMs`. */
  whenUp(timeoutMs: number): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError(`The ${this.#label} link is closed`))
    this.start()
    if (this.#up) return Promise.resolve()
    return this.#bounded(new Promise<void>((resolve) => this.#upWaiters.add(resolve)), timeoutMs, 'could not connect')
  }

  /** Declares `exchange` now (if connected) and after every reconnect. */
  async declare(exchange: ExchangeSpec): Promise<void> {
    this.#exchanges.set(exchange.name, exchange)
    const publisher = this.#publisher
    if (this.#up && publisher !== undefined) await publisher.assertExchange(exchange.name, 'topic', { durable: exchange.durable })
  }

  /** Publishes with a broker confirm; rejects at once while disconnected. */
  publish(exchange: string, routingKey: string, payload: Uint8Array, timeoutMs: number): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError(`The ${this.#label} link is closed`))
    const ch = this.#publisher
    if (!this.#up || ch === undefined) return Promise.reject(this.#unavailable(`${this.#label}: not connected to the broker${this.#why()}`, this.lastError))
    const confirmed = new Promise<void>((resolve, reject) => {
      try {
        ch.publish(exchange, routingKey, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), {}, (err: unknown) => (err === null || err === undefined ? resolve() : reject(err instanceof Error ? err : new Error(String(err)))))
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)))
      }
    })
    return this.#bounded(confirmed, timeoutMs, 'publish was not confirmed')
  }

  /** Adds a consumer; it is (re)declared on every connection until cancelled. */
  consume(spec: ConsumerSpec): AmqpConsumer {
    let markReady!: () => void
    const ready = new Promise<void>((resolve) => (markReady = resolve))
    const consumer: Consumer = { spec, channel: undefined, up: false, active: true, markReady }
    this.#consumers.add(consumer)
    this.start()
    const model = this.#model
    if (this.#up && model !== undefined) {
      this.#setUpConsumer(model, consumer).then(
        () => this.#consumerUp(consumer),
        (err: unknown) => this.#fail(model, err),
      )
    }
    return {
      ready,
      cancel: async () => {
        if (!consumer.active) return
        consumer.active = false
        this.#consumers.delete(consumer)
        const ch = consumer.channel
        consumer.channel = undefined
        if (ch !== undefined) {
          this.#closing.add(ch)
          await ch.close().catch(() => {})
        }
      },
    }
  }

  /** Cuts the current connection; the link recovers as from a failure (the transport's resubscribe()). */
  async drop(): Promise<void> {
    const model = this.#model
    if (model !== undefined) await model.close().catch(() => {})
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#retry !== undefined) this.#clock.clearTimeout(this.#retry)
    for (const c of this.#consumers) c.active = false
    this.#consumers.clear()
    this.#up = false
    const model = this.#model
    this.#model = undefined
    this.#publisher = undefined
    if (model !== undefined) await model.close().catch(() => {})
  }

  #why(): string {
    const e = this.lastError
    return e === undefined ? '' : ` (${e instanceof Error ? e.message : String(e)})`
  }

  async #connect(): Promise<void> {
    this.#retry = undefined
    // A retry that fires while an attempt runs: that attempt reschedules if it fails.
    if (this.#closed || this.#connecting) return
    this.#connecting = true
    let model: ChannelModel | undefined
    try {
      model = await amqp.connect(this.#url, { timeout: this.#connectTimeoutMs })
      if (this.#closed) {
        await model.close().catch(() => {})
        return
      }
      const m = model
      m.on('error', (err: unknown) => {
        this.lastError = err
      })
      m.on('close', () => this.#lost(m))
      const publisher = await m.createConfirmChannel()
      this.#watchChannel(m, publisher)
      for (const ex of this.#exchanges.values()) await publisher.assertExchange(ex.name, 'topic', { durable: ex.durable })
      this.#model = m
      this.#publisher = publisher
      for (const c of this.#consumers) await this.#setUpConsumer(m, c)
      if (this.#closed || this.#model !== m) return
      this.#up = true
      this.#backoff.reset()
      this.lastError = undefined
      for (const wake of this.#upWaiters) wake()
      this.#upWaiters.clear()
      for (const c of this.#consumers) this.#consumerUp(c)
    } catch (err) {
      this.lastError = err
      if (model !== undefined) await model.close().catch(() => {})
    } finally {
      this.#connecting = false
      if (!this.#up && !this.#closed) {
        this.#model = undefined
        this.#publisher = undefined
        this.#schedule()
      }
    }
  }

  async #setUpConsumer(model: ChannelModel, c: Consumer): Promise<void> {
    const ch = await model.createChannel()
    this.#watchChannel(model, ch)
    if (!c.active) {
      this.#closing.add(ch)
      await ch.close().catch(() => {})
      return
    }
    c.channel = ch
    const ex = c.spec.exchange
    try {
      await ch.assertExchange(ex.name, 'topic', { durable: ex.durable })
      const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true, durable: false })
      for (const key of c.spec.bindings) await ch.bindQueue(queue, ex.name, key)
      await ch.consume(
        queue,
        (msg: ConsumeMessage | null) => {
          // null: the broker cancelled the consumer (queue deleted): recover like a loss.
          if (msg === null) {
            if (c.active && !this.#closing.has(ch)) this.#fail(model, new Error('consumer cancelled by the broker'))
          } else if (c.active) c.spec.onMessage(msg.fields.routingKey, msg.content)
        },
        { noAck: true },
      )
    } catch (err) {
      // Cancelled while being declared: its channel was closed under it, nothing failed.
      if (!c.active) return
      throw err
    }
  }

  #consumerUp(c: Consumer): void {
    if (!c.active || c.up) return
    c.up = true
    c.markReady()
    notify(c, 'up')
  }

  /** A channel closed under a live connection (a channel error): recover the whole connection. */
  #watchChannel(model: ChannelModel, ch: Channel): void {
    ch.on('error', (err: unknown) => {
      this.lastError = err
    })
    ch.on('close', () => {
      if (!this.#closed && this.#model === model && !this.#closing.has(ch)) this.#fail(model, this.lastError ?? new Error('channel closed'))
    })
  }

  #fail(model: ChannelModel, err: unknown): void {
    this.lastError = err
    model.close().catch(() => {})
    // 'close' on the model calls #lost; if it had closed already, make sure we recover.
    this.#lost(model)
  }

  #lost(model: ChannelModel): void {
    if (this.#closed || this.#model !== model) return
    this.#model = undefined
    this.#publisher = undefined
    this.#up = false
    this.reconnects++
    for (const c of this.#consumers) {
      c.channel = undefined
      if (c.up) {
        c.up = false
        notify(c, 'down')
      }
    }
    this.#schedule()
  }

  #schedule(): void {
    if (this.#closed || this.#retry !== undefined) return
    this.#retry = this.#clock.setTimeout(() => void this.#connect(), this.#backoff.next(), { unref: true })
  }

  /** `promise`, or the unavailable error (saying `what` and the link's last failure) after `timeoutMs`. */
  within(promise: Promise<void>, timeoutMs: number, what: string): Promise<void> {
    return this.#bounded(promise, timeoutMs, what)
  }

  #bounded(promise: Promise<void>, timeoutMs: number, what: string): Promise<void> {
    return bounded(
      this.#clock,
      promise,
      timeoutMs,
      () => this.#unavailable(`${this.#label}: ${what} within ${timeoutMs} ms${this.#why()}`, this.lastError),
      (err) => this.#unavailable(`${this.#label}: ${what}: ${err instanceof Error ? err.message : String(err)}`, err),
    )
  }
}

function notify(c: Consumer, state: 'up' | 'down'): void {
  try {
    c.spec.onState(state)
  } catch {
    // A subscriber's failure is its own.
  }
}
