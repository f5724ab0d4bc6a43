/**
 * `redisTransport` / `redisBus`: the invalidation bus on Redis pub/sub, through ioredis.
 *
 * Connections. One dedicated subscriber connection (a connection in subscribe mode can do
 * nothing else) and one publishing connection, reused by every publish of the process's
 * bus (auto-pipelined, so concurrent publishes share round trips). With `client`, the
 * user's client publishes (never closed by us) and the subscriber is its `duplicate()`.
 *
 * Reconnects. Both connections reconnect with the shared backoff (core/backoff.ts: 100 ms
 * doubling to 5 s, ±25 % jitter, so that the processes of a fleet do not all dial a
 * restarted Redis at the same instant); ioredis calls our `retryStrategy`. The
 * subscriber does not let ioredis resubscribe silently: on a lost connection every
 * subscription hears 'down' at once; once the connection is ready again we subscribe every
 * channel ourselves and only then report 'up' — so the Bus flushes after, never before, the
 * subscription is receiving again. (A silent resubscribe would hide the messages missed
 * while disconnected, which is exactly what Redis pub/sub loses.)
 *
 * A publish never waits in ioredis's offline queue (disabled on the publishing connection
 * we create): it is accepted by Redis now or fails, and the Bus keeps and retries it. With
 * your own `client`, its offline queue may still send a publish that already failed here;
 * the Bus's retry carries the same seq, so receivers discard the second copy.
 *
 * Timeouts. `publish` and `subscribe` race a clock timer (`publishTimeout`,
 * `connectTimeout`) and reject with `ERR_BUS_UNAVAILABLE`: they never hang on a dead or
 * frozen server, and the Bus keeps (and retries) what could not be sent.
 */
import { Redis, type RedisOptions } from 'ioredis'
import { backoffPolicy, type ReconnectOptions } from '../core/backoff.js'
import { clockOption, type Clock, type TimerHandle } from '../core/clock.js'
import { toMs, type Duration } from '../core/duration.js'
import { BusUnavailableError, ClosedError, InvalidOptionsError } from '../core/errors.js'
import { DISCONNECT_TIMEOUT_MS, quitRedis } from '../core/redis-quit.js'
import { checkRedisUrl } from '../core/redis-url.js'
import { optionNames, rejectUnknown } from '../core/known-options.js'
import { mathRandom, type Random, randomOption } from '../core/random.js'
import { systemClock } from '../core/system-clock.js'
import { BUS_SETTING_NAMES, createBus, pickBusSettings, type Bus, type BusSettings } from './bus.js'
import { checkChannel, checkPayload, checkSubscription } from './transport-input.js'
import type { BusTransport } from './types.js'

export interface RedisTransportOptions {
  /** `redis://[user:pass@]host:port[/db]` or `rediss://...`: we create (and close) both connections. */
  url?: string
  /** A standalone client you own: it publishes (and is never closed by us); its `duplicate()` subscribes. */
  client?: Redis
  /** Extra ioredis options for the connections we create (not `retryStrategy`: see `reconnect`). @default none */
  redisOptions?: RedisOptions
  /** How long a publish may wait for Redis before it fails (the Bus queues it). @default '2s' */
  publishTimeout?: Duration
  /** How long a subscribe may wait for the connection before it fails (the Bus retries). @default '5s' */
  connectTimeout?: Duration
  /** Reconnect delays of both connections (core/backoff.ts): `initial` doubling per failed attempt up to `max`, each jittered ±`jitter`. @default { initial: '100ms', max: '5s', jitter: 0.25 } */
  reconnect?: ReconnectOptions
  /** Time source of the timeouts. @default systemClock */
  clock?: Clock
  /** Source of the reconnect jitter. @default mathRandom */
  random?: Random
  /** Connection errors (each reconnect failure); publishes and subscribes reject on their own. @default ignored */
  onError?: (error: Error) => void
}


/** redisBus's option names (its transport's and the bus settings): another is refused, not ignored (core/known-options.ts). */
const REDIS_BUS_OPTIONS = [
  ...BUS_SETTING_NAMES,
  ...optionNames<RedisTransportOptions>({ url: true, client: true, redisOptions: true, publishTimeout: true, connectTimeout: true, reconnect: true, clock: true, random: true, onError: true }),
]

interface Listener {
  readonly onMessage: (payload: Uint8Array) => void
  readonly onState: (state: 'up' | 'down') => void
}

function positiveMs(d: Duration | undefined, fallback: Duration, option: string): number {
  const ms = toMs(d ?? fallback, option)
  if (!(ms > 0 && Number.isFinite(ms))) throw new InvalidOptionsError(option, 'expected a finite duration > 0')
  return ms
}

class RedisTransport implements BusTransport {
  readonly name = 'redis'
  readonly #publisher: Redis
  readonly #ownsPublisher: boolean
  readonly #subscriber: Redis
  readonly #clock: Clock
  readonly #publishTimeoutMs: number
  readonly #connectTimeoutMs: number
  readonly #onError: (error: Error) => void
  /** The server, as errors name it (`host:port`, or the socket path). */
  readonly #where: string
  /** Active subscriptions per channel. */
  readonly #channels = new Map<string, Set<Listener>>()
  /** False from a lost connection until every channel is subscribed again. */
  #up = true
  #closed = false

  constructor(options: RedisTransportOptions) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('bus', 'expected an options object')
    rejectUnknown(options, REDIS_BUS_OPTIONS, 'bus')
    if ((options.url === undefined) === (options.client === undefined)) throw new InvalidOptionsError('bus.url', 'expected exactly one of url or client')
    if (options.url !== undefined) checkRedisUrl(options.url, 'bus.url')
    if (options.client !== undefined && !(options.client instanceof Redis)) throw new InvalidOptionsError('bus.client', 'expected an ioredis Redis instance (standalone)')
    if (options.onError !== undefined && typeof options.onError !== 'function') throw new InvalidOptionsError('bus.onError', 'expected a function')
    const extra: unknown = options.redisOptions
    if (extra !== undefined && (typeof extra !== 'object' || extra === null || Array.isArray(extra))) throw new InvalidOptionsError('bus.redisOptions', 'expected an object of ioredis options')
    this.#clock = clockOption(options.clock, systemClock, 'bus.clock')
    this.#publishTimeoutMs = positiveMs(options.publishTimeout, '2s', 'bus.publishTimeout')
    this.#connectTimeoutMs = positiveMs(options.connectTimeout, '5s', 'bus.connectTimeout')
    this.#onError = options.onError ?? (() => {})
    const policy = backoffPolicy(options.reconnect, 'bus.reconnect', randomOption(options.random, 'bus.random', mathRandom))
    const ours: RedisOptions = {
      // ioredis counts attempts from 1 and resets them on a successful connection; never gives up.
      retryStrategy: (attempt: number) => policy.delay(attempt - 1),
      // A command waiting for a connection fails through our own timer, not ioredis retries.
      maxRetriesPerRequest: null,
      enableOfflineQueue: true,
      lazyConnect: false,
      // The timer ioredis leaves behind a disconnect of a closed socket (core/redis-quit.ts).
      disconnectTimeout: DISCONNECT_TIMEOUT_MS,
    }
    if (options.client !== undefined) {
      this.#publisher = options.client
      this.#ownsPublisher = false
      this.#subscriber = options.client.duplicate({ ...ours, autoResubscribe: false })
    } else {
      // No offline queue and no resend: a publish that failed or timed out must not be sent
      // later behind the Bus's back (the Bus retries it, with the same seq).
      this.#publisher = new Redis(options.url as string, {
        ...ours,
        enableAutoPipelining: true,
        ...options.redisOptions,
        retryStrategy: ours.retryStrategy,
        enableOfflineQueue: false,
        autoResendUnfulfilledCommands: false,
        maxRetriesPerRequest: 0,
      })
      this.#ownsPublisher = true
      this.#publisher.on('error', this.#onError)
      this.#subscriber = new Redis(options.url as string, { ...options.redisOptions, ...ours, autoResubscribe: false })
    }
    const o = this.#subscriber.options
    this.#where = o.path !== undefined && o.path !== null ? o.path : `${o.host ?? '127.0.0.1'}:${o.port ?? 6379}`
    this.#subscriber.on('error', this.#onError)
    this.#subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => this.#deliver(channel.toString(), message))
    this.#subscriber.on('close', () => this.#lost())
    this.#subscriber.on('ready', () => void this.#resubscribe())
  }

  async publish(channel: string, payload: Uint8Array): Promise<void> {
    if (this.#closed) throw new ClosedError('The redis bus transport is closed')
    checkChannel(channel)
    checkPayload(payload)
    // A copy: the caller may reuse its buffer before auto-pipelining writes the command.
    const data = Buffer.from(payload)
    const publisher = this.#publisher
    if (publisher.status === 'ready' || !this.#ownsPublisher) {
      await this.#bounded(publisher.publish(channel, data), this.#publishTimeoutMs, 'publish')
      return
    }
    // Not connected (yet): wait for the connection, within the timeout, and never send after
    // the caller was told it failed.
    let expired = false
    const ready = this.#whenReady(publisher)
    const sent = ready.promise.then(() => {
      if (expired) throw new BusUnavailableError(`Redis bus publish (${this.#where}) timed out before the connection was ready`)
      return publisher.publish(channel, data)
    })
    try {
      await this.#bounded(sent, this.#publishTimeoutMs, 'publish')
    } finally {
      expired = true
      // A timed-out wait must not keep its listeners: during an outage the Bus publishes a
      // heartbeat every interval, and each would leave a 'ready' and an 'end' listener
      // behind until the connection came back.
      ready.cancel()
    }
  }

  async subscribe(channel: string, onMessage: (payload: Uint8Array) => void, onState: (state: 'up' | 'down') => void): Promise<() => Promise<void>> {
    if (this.#closed) throw new ClosedError('The redis bus transport is closed')
    checkSubscription(channel, onMessage, onState)
    // Always SUBSCRIBE (idempotent in Redis): it proves the connection is up now.
    await this.#bounded(this.#subscriber.subscribe(channel), this.#connectTimeoutMs, 'subscribe')
    if (this.#closed) throw new ClosedError('The redis bus transport is closed')
    const listener: Listener = { onMessage, onState }
    let set = this.#channels.get(channel)
    if (set === undefined) this.#channels.set(channel, (set = new Set()))
    set.add(listener)
    let done = false
    return async () => {
      if (done) return
      done = true
      const current = this.#channels.get(channel)
      if (current === undefined) return
      current.delete(listener)
      if (current.size > 0) return
      this.#channels.delete(channel)
      // Only on a live connection: a lost one took the subscription with it, and a reconnect
      // subscribes to the channels still listened to; queued, it waited connectTimeout (5 s)
      // for a server that is down, and so did every cache's close() then.
      if (!this.#closed && this.#subscriber.status === 'ready') await this.#bounded(this.#subscriber.unsubscribe(channel), this.#connectTimeoutMs, 'unsubscribe').catch(() => {})
    }
  }

  /**
   * Resolves at the connection's next 'ready' (the publish timeout bounds the wait);
   * `cancel()` removes its listeners (the promise then never settles).
   */
  #whenReady(client: Redis): { promise: Promise<void>; cancel(): void } {
    let onReady = (): void => {}
    let onEnd = (): void => {}
    const promise = new Promise<void>((resolve, reject) => {
      onReady = (): void => {
        client.off('end', onEnd)
        resolve()
      }
      onEnd = (): void => {
        client.off('ready', onReady)
        reject(new ClosedError('The redis bus transport is closed'))
      }
      client.once('ready', onReady)
      client.once('end', onEnd)
    })
    return {
      promise,
      cancel: () => {
        client.off('ready', onReady)
        client.off('end', onEnd)
      },
    }
  }

  resubscribe(): void {
    if (this.#closed) return
    // Drop the connection (reported as 'down'); ioredis reconnects and 'ready' resubscribes.
    this.#subscriber.disconnect(true)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#channels.clear()
    await Promise.all([quitRedis(this.#subscriber, this.#clock), this.#ownsPublisher ? quitRedis(this.#publisher, this.#clock) : undefined])
  }

  #deliver(channel: string, message: Buffer): void {
    const set = this.#channels.get(channel)
    if (set === undefined || this.#closed) return
    for (const l of set) {
      // Each listener gets its own copy: the parser's Buffer may be a view of a larger chunk.
      const copy = new Uint8Array(message)
      try {
        l.onMessage(copy)
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  #lost(): void {
    if (this.#closed || !this.#up) return
    this.#up = false
    this.#state('down')
  }

  async #resubscribe(): Promise<void> {
    if (this.#closed || this.#up) return
    const channels = [...this.#channels.keys()]
    try {
      if (channels.length > 0) await this.#bounded(this.#subscriber.subscribe(...channels), this.#connectTimeoutMs, 'subscribe')
    } catch (err) {
      // The connection failed again: its next 'ready' retries.
      this.#onError(err instanceof Error ? err : new Error(String(err)))
      return
    }
    if (this.#closed || this.#up) return
    this.#up = true
    this.#state('up')
  }

  #state(state: 'up' | 'down'): void {
    for (const set of this.#channels.values()) {
      for (const l of set) {
        try {
          l.onState(state)
        } catch {
          // A listener's failure is its own.
        }
      }
    }
  }

  /** Races `op` against a timer; any failure becomes ERR_BUS_UNAVAILABLE. */
  #bounded<T>(op: Promise<T>, ms: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timer: TimerHandle | undefined = this.#clock.setTimeout(
        () => {
          timer = undefined
          reject(new BusUnavailableError(`Redis bus ${what} (${this.#where}) got no reply within ${ms} ms`))
        },
        ms,
        { unref: true },
      )
      op.then(
        (value) => {
          if (timer === undefined) return
          this.#clock.clearTimeout(timer)
          resolve(value)
        },
        (err: unknown) => {
          if (timer === undefined) return
          this.#clock.clearTimeout(timer)
          reject(this.#closed ? new ClosedError('The redis bus transport is closed') : new BusUnavailableError(`Redis bus ${what} (${this.#where}) failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err }))
        },
      )
    })
  }
}

/** A `BusTransport` on Redis pub/sub (see the top of this file). */
export function redisTransport(options: RedisTransportOptions): BusTransport {
  return new RedisTransport(options)
}

export interface RedisBusOptions extends BusSettings, RedisTransportOptions {}

/** `createCache({ bus: redisBus({ url }) })`: a Bus on Redis pub/sub. */
export function redisBus(options: RedisBusOptions): Bus {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('bus', 'expected an options object')
  const transport = redisTransport(options)
  try {
    return createBus({ ...pickBusSettings(options), transport })
  } catch (err) {
    // Invalid bus settings: do not leave the transport's connections behind.
    void transport.close().catch(() => {})
    throw err
  }
}
