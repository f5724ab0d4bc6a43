/**
 * The bus over RabbitMQ: a topic exchange, the channel name as routing key, and per
 * subscriber an exclusive auto-delete queue bound to it (every subscriber gets every
 * message; the broker drops the queue with the connection). Connection handling,
 * confirms, heartbeats and reconnects (100 ms doubling to 5 s) are the `AmqpLink`'s.
 *
 * - `publish` resolves on the broker's confirm; rejects at once while disconnected
 *   (`ERR_BUS_UNAVAILABLE`), after `publishTimeout` otherwise.
 * - A lost connection reports 'down' to every subscriber; once its queue is declared,
 *   bound and consumed again, 'up' (messages in between are lost: the Bus flushes).
 */
import type { Clock } from '../core/clock.js'
import { toMs, type Duration } from '../core/duration.js'
import { BusUnavailableError, ClosedError, InvalidOptionsError } from '../core/errors.js'
import { optionNames, rejectUnknown } from '../core/known-options.js'
import { AmqpLink } from './amqp-link.js'
import type { ReconnectOptions } from '../core/backoff.js'
import type { Random } from '../core/random.js'
import { checkChannel, checkPayload, checkSubscription, deliverTo } from './transport-input.js'
import type { BusTransport } from './types.js'
import { BUS_SETTING_NAMES, createBus, pickBusSettings, type Bus, type BusSettings } from './bus.js'

export interface AmqpTransportOptions {
  /** Broker URL. @default 'amqp://guest:guest@127.0.0.1:5672' */
  url?: string
  /** The topic exchange (declared non-durable if missing; an existing one must match `durable`). @default 'stratacache.bus' */
  exchange?: string
  /** Declare the exchange durable. @default false */
  durable?: boolean
  /** How long a publish may wait for the broker's confirm, and a subscribe for its queue. @default '2s' */
  publishTimeout?: Duration
  /** AMQP heartbeat (a silent broker is taken as lost after about twice this). @default '5s' */
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

/** amqpBus's option names (its transport's and the bus settings): another is refused, not ignored (core/known-options.ts). */
const AMQP_BUS_OPTIONS = [
  ...BUS_SETTING_NAMES,
  ...optionNames<AmqpTransportOptions>({ url: true, exchange: true, durable: true, publishTimeout: true, heartbeat: true, connectTimeout: true, reconnect: true, clock: true, random: true }),
]

export class AmqpTransport implements BusTransport {
  readonly name = 'amqp'
  readonly #link: AmqpLink
  readonly #exchange: string
  readonly #durable: boolean
  readonly #timeoutMs: number
  #declared: Promise<void> | undefined
  #closed = false

  constructor(options: AmqpTransportOptions = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('bus', 'expected an object')
    rejectUnknown(options, AMQP_BUS_OPTIONS, 'bus')
    this.#exchange = options.exchange ?? 'stratacache.bus'
    if (typeof this.#exchange !== 'string' || !/^[A-Za-z0-9_.:-]{1,200}$/.test(this.#exchange)) throw new InvalidOptionsError('bus.exchange', 'expected 1-200 characters of [A-Za-z0-9_.:-]')
    this.#durable = options.durable ?? false
    if (typeof this.#durable !== 'boolean') throw new InvalidOptionsError('bus.durable', 'expected a boolean')
    this.#timeoutMs = toMs(options.publishTimeout ?? '2s', 'bus.publishTimeout')
    if (!(this.#timeoutMs > 0 && Number.isFinite(this.#timeoutMs))) throw new InvalidOptionsError('bus.publishTimeout', 'expected a finite duration > 0')
    this.#link = new AmqpLink({ url: options.url, heartbeat: options.heartbeat, connectTimeout: options.connectTimeout, reconnect: options.reconnect, clock: options.clock, random: options.random }, 'bus', 'amqp', (message, cause) => new BusUnavailableError(message, { cause }))
  }

  async publish(channel: string, payload: Uint8Array): Promise<void> {
    checkChannel(channel)
    checkPayload(payload)
    await this.#ready()
    await this.#link.publish(this.#exchange, channel, payload, this.#timeoutMs)
  }

  async subscribe(channel: string, onMessage: (payload: Uint8Array) => void, onState: (state: 'up' | 'down') => void): Promise<() => Promise<void>> {
    checkSubscription(channel, onMessage, onState)
    await this.#ready()
    // Topic bindings treat '*' and '#' as wildcards: a channel is a literal routing key.
    if (/[*#]/.test(channel)) throw new InvalidOptionsError('channel', `expected no AMQP wildcards, got ${JSON.stringify(channel)}`)
    let first = true
    const consumer = this.#link.consume({
      exchange: { name: this.#exchange, durable: this.#durable },
      bindings: [channel],
      onMessage: (routingKey, content) => {
        if (routingKey === channel) deliverTo(onMessage, content)
      },
      onState: (state) => {
        // The first 'up' is the subscription becoming active, not a reconnect.
        if (first && state === 'up') {
          first = false
          return
        }
        first = false
        onState(state)
      },
    })
    try {
      await this.#link.within(consumer.ready, this.#timeoutMs, `subscription to ${JSON.stringify(channel)} was not active`)
    } catch (err) {
      await consumer.cancel()
      throw err
    }
    return () => consumer.cancel()
  }

  /** Drops and re-opens the connection (the Bus asks when its subscription went silent). */
  resubscribe(): void {
    if (!this.#closed) void this.#link.drop()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#link.close()
  }

  /** Connects and declares the exchange once (a failure is retried by the next call). */
  #ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('The AMQP transport is closed'))
    if (this.#declared === undefined) {
      const declared = this.#link.whenUp(this.#timeoutMs).then(() => this.#link.declare({ name: this.#exchange, durable: this.#durable }))
      this.#declared = declared
      declared.catch(() => {
        if (this.#declared === declared) this.#declared = undefined
      })
    }
    return this.#declared
  }
}

/** A RabbitMQ bus transport (see AmqpTransportOptions). */
export function amqpTransport(options?: AmqpTransportOptions): AmqpTransport {
  return new AmqpTransport(options)
}

export interface AmqpBusOptions extends BusSettings, AmqpTransportOptions {}

/** `createCache({ bus: amqpBus({ url }) })`: a Bus on a RabbitMQ topic exchange. */
export function amqpBus(options: AmqpBusOptions = {}): Bus {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('bus', 'expected an options object')
  const transport = amqpTransport(options)
  try {
    return createBus({ ...pickBusSettings(options), transport })
  } catch (err) {
    // Invalid bus settings: do not leave the transport's connection behind.
    void transport.close().catch(() => {})
    throw err
  }
}
