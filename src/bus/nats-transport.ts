/**
 * The bus over NATS core pub/sub (no JetStream: the Bus notices lost messages itself).
 * The one file that imports `nats`.
 *
 * - One connection per transport, opened on first use. A channel is a subject.
 * - `publish` resolves once the server has processed the message: publishes of one tick
 *   share one flush (PING/PONG), so a burst costs one round trip. While disconnected it
 *   rejects at once (`ERR_BUS_UNAVAILABLE`) instead of letting the client buffer:
 *   queuing is the Bus's job. A flush that takes longer than `publishTimeout` rejects.
 * - Reconnect is the client's, paced by the shared backoff (core/backoff.ts: 100 ms
 *   doubling per dial attempt to 5 s, ±25 % jitter, reset on success, never giving up). A disconnect reports 'down' to every subscriber; after a
 *   reconnect the client re-sends its subscriptions and we flush once before reporting
 *   'up', so 'up' means "receiving again".
 * - If the client ever closes by itself (fatal error), we open a new connection with the
 *   same backoff and subscribe everything again.
 */
import { isIPv6 } from 'node:net'
import { connect, type ConnectionOptions, type NatsConnection, type Subscription } from 'nats'
import { clockOption, type Clock, type TimerHandle } from '../core/clock.js'
import { toMs, type Duration } from '../core/duration.js'
import { BusUnavailableError, ClosedError, InvalidOptionsError } from '../core/errors.js'
import { optionNames, rejectUnknown } from '../core/known-options.js'
import { systemClock } from '../core/system-clock.js'
import { backoffPolicy, type Backoff, type ReconnectOptions } from '../core/backoff.js'
import { mathRandom, type Random, randomOption } from '../core/random.js'
import { bounded } from './bounded.js'
import { checkChannel, checkPayload, checkSubscription, deliverTo } from './transport-input.js'
import type { BusTransport } from './types.js'
import { BUS_SETTING_NAMES, createBus, pickBusSettings, type Bus, type BusSettings } from './bus.js'

export interface NatsTransportOptions {
  /** Server URL(s). @default 'nats://127.0.0.1:4222' */
  servers?: string | readonly string[]
  /**
   * Further `nats` connection options (credentials, TLS, name, …). The reconnect settings
   * are the transport's own and cannot be overridden here. Unless given here, a server
   * that stops answering is taken as lost after 2 unanswered pings 5 s apart (the client's
   * own default would wait minutes). @default { pingInterval: 5000, maxPingOut: 2 }
   */
  connection?: Omit<ConnectionOptions, 'servers' | 'reconnect' | 'maxReconnectAttempts' | 'reconnectDelayHandler' | 'waitOnFirstConnect'>
  /** How long a publish (or a subscribe) may wait for the server's confirmation. @default '2s' */
  publishTimeout?: Duration
  /** How long opening the connection may take. @default '5s' */
  connectTimeout?: Duration
  /** Reconnect delays (core/backoff.ts): `initial` doubling per dial attempt up to `max`, each jittered ±`jitter`. @default { initial: '100ms', max: '5s', jitter: 0.25 } */
  reconnect?: ReconnectOptions
  /** @default systemClock */
  clock?: Clock
  /** Source of the reconnect jitter. @default mathRandom */
  random?: Random
}

interface Sub {
  readonly channel: string
  readonly onMessage: (payload: Uint8Array) => void
  readonly onState: (state: 'up' | 'down') => void
  nats: Subscription | undefined
  active: boolean
}

/** A channel is a literal NATS subject: no wildcards (`*`, `>`), no whitespace, no empty token. */
function checkSubject(channel: unknown, option = 'channel'): asserts channel is string {
  checkChannel(channel)
  if (!/^[^\s*>.]+(\.[^\s*>.]+)*$/.test(channel)) throw new InvalidOptionsError(option, `expected a NATS subject without wildcards or whitespace, got ${JSON.stringify(channel.slice(0, 100))}`)
}

/** A server address the `nats` client dials: `[nats|tls://]host[:port]` with a valid host and port. */
function isNatsServer(server: string): boolean {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(server)
  if (scheme !== null && !/^(nats|tls)$/i.test(scheme[1] as string)) return false
  const rest = scheme === null ? server : server.slice(scheme[0].length)
  if (isIPv6(rest)) return true // the client brackets a bare IPv6 address itself
  try {
    return new URL(`nats://${rest}`).hostname !== ''
  } catch {
    return false
  }
}

/** natsBus's option names (its transport's and the bus settings): another is refused, not ignored (core/known-options.ts). */
const NATS_BUS_OPTIONS = [
  ...BUS_SETTING_NAMES,
  ...optionNames<NatsTransportOptions>({ servers: true, connection: true, publishTimeout: true, connectTimeout: true, reconnect: true, clock: true, random: true }),
]

export class NatsTransport implements BusTransport {
  readonly name = 'nats'
  readonly #servers: string[]
  readonly #connection: NatsTransportOptions['connection']
  readonly #timeoutMs: number
  readonly #connectTimeoutMs: number
  readonly #backoff: Backoff
  readonly #clock: Clock
  readonly #subs = new Set<Sub>()
  #nc: Promise<NatsConnection> | undefined
  #up = false
  #closed = false
  #retry: TimerHandle | undefined
  #batch: Promise<void> | undefined

  constructor(options: NatsTransportOptions = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('bus', 'expected an object')
    rejectUnknown(options, NATS_BUS_OPTIONS, 'bus')
    const servers = options.servers ?? 'nats://127.0.0.1:4222'
    if (typeof servers !== 'string' && !Array.isArray(servers)) throw new InvalidOptionsError('bus.servers', 'expected a URL or a non-empty list of URLs')
    this.#servers = typeof servers === 'string' ? [servers] : [...(servers as readonly string[])]
    if (this.#servers.length === 0 || this.#servers.some((s) => typeof s !== 'string' || s.length === 0)) throw new InvalidOptionsError('bus.servers', 'expected a URL or a non-empty list of URLs')
    // The client strips any scheme and parses the rest when it dials: a bad URL was a retried ERR_BUS_UNAVAILABLE.
    const bad = this.#servers.find((s) => !isNatsServer(s))
    if (bad !== undefined) throw new InvalidOptionsError('bus.servers', `expected nats://host:port (or tls://, or host:port), got ${JSON.stringify(bad.slice(0, 100))}`)
    if (options.connection !== undefined && (options.connection === null || typeof options.connection !== 'object')) throw new InvalidOptionsError('bus.connection', 'expected an object')
    this.#connection = options.connection
    this.#timeoutMs = toMs(options.publishTimeout ?? '2s', 'bus.publishTimeout')
    if (!(this.#timeoutMs > 0 && Number.isFinite(this.#timeoutMs))) throw new InvalidOptionsError('bus.publishTimeout', 'expected a finite duration > 0')
    this.#connectTimeoutMs = toMs(options.connectTimeout ?? '5s', 'bus.connectTimeout')
    if (!(this.#connectTimeoutMs > 0 && Number.isFinite(this.#connectTimeoutMs))) throw new InvalidOptionsError('bus.connectTimeout', 'expected a finite duration > 0')
    this.#backoff = backoffPolicy(options.reconnect, 'bus.reconnect', randomOption(options.random, 'bus.random', mathRandom)).attempts()
    this.#clock = clockOption(options.clock, systemClock, 'bus.clock')
  }

  async publish(channel: string, payload: Uint8Array): Promise<void> {
    checkSubject(channel)
    checkPayload(payload)
    const nc = await this.#connected()
    if (!this.#up) throw new BusUnavailableError('nats: not connected (reconnecting)')
    try {
      nc.publish(channel, payload)
    } catch (err) {
      throw new BusUnavailableError(`nats: publish failed: ${String(err)}`, { cause: err })
    }
    // One flush for every publish of this tick: the PING goes after all their PUBs.
    this.#batch ??= Promise.resolve().then(() => {
      this.#batch = undefined
      return nc.flush()
    })
    await this.#bounded(this.#batch, 'publish was not confirmed')
  }

  async subscribe(channel: string, onMessage: (payload: Uint8Array) => void, onState: (state: 'up' | 'down') => void): Promise<() => Promise<void>> {
    checkSubscription(channel, onMessage, onState)
    checkSubject(channel)
    const sub: Sub = { channel, onMessage, onState, nats: undefined, active: true }
    const nc = await this.#connected()
    this.#attach(nc, sub)
    this.#subs.add(sub)
    try {
      await this.#bounded(nc.flush(), 'subscription was not confirmed')
    } catch (err) {
      sub.active = false
      this.#subs.delete(sub)
      sub.nats?.unsubscribe()
      throw err
    }
    return async () => {
      if (!sub.active) return
      sub.active = false
      this.#subs.delete(sub)
      sub.nats?.unsubscribe()
    }
  }

  /** Drops and re-opens the connection (the Bus asks when its subscription went silent). */
  resubscribe(): void {
    const nc = this.#nc
    if (nc === undefined || this.#closed) return
    nc.then((c) => c.reconnect()).catch(() => {
      // Not connected now: the client is reconnecting anyway.
    })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#retry !== undefined) this.#clock.clearTimeout(this.#retry)
    for (const sub of this.#subs) sub.active = false
    this.#subs.clear()
    const pending = this.#nc
    this.#nc = undefined
    if (pending === undefined) return
    try {
      const nc = await pending
      await nc.close()
    } catch {
      // Never connected or already closed: nothing to release.
    }
  }

  #attach(nc: NatsConnection, sub: Sub): void {
    sub.nats = nc.subscribe(sub.channel, {
      callback: (err, msg) => {
        // A throw here would close the client's reader: the connection would hang for ever.
        if (err === null && sub.active) deliverTo(sub.onMessage, msg.data)
      },
    })
  }

  /** The live connection, opening it on first use (a failed open is retried by the next call). */
  #connected(): Promise<NatsConnection> {
    if (this.#closed) return Promise.reject(new ClosedError('The NATS transport is closed'))
    if (this.#nc === undefined) {
      const opening = this.#open()
      this.#nc = opening
      opening.catch(() => {
        if (this.#nc === opening) this.#nc = undefined
      })
    }
    return this.#nc
  }

  async #open(): Promise<NatsConnection> {
    let nc: NatsConnection
    try {
      nc = await connect({
        timeout: this.#connectTimeoutMs,
        pingInterval: 5_000,
        maxPingOut: 2,
        ...this.#connection,
        servers: this.#servers,
        reconnect: true,
        maxReconnectAttempts: -1,
        waitOnFirstConnect: false,
        // The client asks for the delay on every turn of its dial loop, not once per dial:
        // the delay doubles per dial attempt instead (its 'reconnecting' event, below).
        reconnectDelayHandler: () => this.#backoff.current(),
      })
    } catch (err) {
      throw new BusUnavailableError(`nats: cannot connect to ${this.#servers.join(', ')}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    }
    if (this.#closed) {
      await nc.close().catch(() => {})
      throw new ClosedError('The NATS transport is closed')
    }
    this.#up = true
    this.#backoff.reset()
    void this.#watch(nc)
    return nc
  }

  /** Turns the client's status events into 'down'/'up' for every subscriber. */
  async #watch(nc: NatsConnection): Promise<void> {
    const closed = nc.closed().then(() => this.#lost(nc))
    try {
      for await (const status of nc.status()) {
        if (this.#closed) break
        if (status.type === 'disconnect') this.#down()
        else if (status.type === 'reconnecting') this.#backoff.next()
        else if (status.type === 'reconnect') {
          this.#backoff.reset()
          // The client re-sent our SUBs on reconnect; a round trip proves they are active.
          nc.flush().then(
            () => this.#upAgain(),
            () => {},
          )
        }
      }
    } catch {
      // The status iterator ends with the connection; `closed` handles that.
    }
    await closed
  }

  #down(): void {
    if (!this.#up) return
    this.#up = false
    for (const sub of this.#subs) notify(sub, 'down')
  }

  #upAgain(): void {
    if (this.#up || this.#closed) return
    this.#up = true
    for (const sub of this.#subs) notify(sub, 'up')
  }

  /** The client gave up on this connection (fatal error): open a new one and subscribe again. */
  #lost(nc: NatsConnection): void {
    if (this.#closed) return
    this.#down()
    this.#nc = undefined
    const attempt = (): void => {
      this.#retry = undefined
      if (this.#closed) return
      this.#connected().then(
        (fresh) => {
          if (fresh === nc) return
          for (const sub of this.#subs) this.#attach(fresh, sub)
          fresh.flush().then(
            () => {
              this.#up = false
              this.#upAgain()
            },
            () => {},
          )
        },
        () => {
          this.#retry = this.#clock.setTimeout(attempt, this.#backoff.next(), { unref: true })
        },
      )
    }
    this.#retry = this.#clock.setTimeout(attempt, this.#backoff.next(), { unref: true })
  }

  /** Waits for `promise` at most publishTimeout. */
  #bounded(promise: Promise<void>, what: string): Promise<void> {
    return bounded(
      this.#clock,
      promise,
      this.#timeoutMs,
      () => new BusUnavailableError(`nats: ${what} within ${this.#timeoutMs} ms`),
      (err) => new BusUnavailableError(`nats: ${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err }),
    )
  }
}

function notify(sub: Sub, state: 'up' | 'down'): void {
  try {
    sub.onState(state)
  } catch {
    // A subscriber's failure is its own.
  }
}

/** A NATS bus transport (see NatsTransportOptions). */
export function natsTransport(options?: NatsTransportOptions): NatsTransport {
  return new NatsTransport(options)
}

export interface NatsBusOptions extends BusSettings, NatsTransportOptions {}

/** `createCache({ bus: natsBus({ servers }) })`: a Bus on NATS core pub/sub. */
export function natsBus(options: NatsBusOptions = {}): Bus {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('bus', 'expected an options object')
  // The Bus allows 'a..b' or '.a', which NATS refuses as a subject: every subscribe would fail, retried for ever.
  if (typeof options.channel === 'string' && options.channel !== '') checkSubject(options.channel, 'bus.channel')
  const transport = natsTransport(options)
  try {
    return createBus({ ...pickBusSettings(options), transport })
  } catch (err) {
    // Invalid bus settings: do not leave the transport's connection behind.
    void transport.close().catch(() => {})
    throw err
  }
}
