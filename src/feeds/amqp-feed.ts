/**
 * Change notices from RabbitMQ, as kazoo's kz_cache listens to CouchDB document changes:
 * an exclusive auto-delete queue bound to a topic exchange, one notice per message, read
 * from the routing key (`doc.accounts.user.42`; see notice.ts). The message body is not
 * read. Connection, heartbeats and reconnects (100 ms doubling to 5 s) are the AmqpLink's;
 * the queue is declared again on every reconnect, so notices sent while disconnected are
 * lost — which is why the cache flushes the feed's scope then.
 */
import type { Clock } from '../core/clock.js'
import { toMs, type Duration } from '../core/duration.js'
import { ClosedError, FeedUnavailableError, InvalidOptionsError } from '../core/errors.js'
import { optionNames, rejectUnknown } from '../core/known-options.js'
import { AmqpLink, type AmqpConsumer } from '../bus/amqp-link.js'
import type { ReconnectOptions } from '../core/backoff.js'
import type { Random } from '../core/random.js'
import { parseRoutingKey, scopeOfBinding } from './notice.js'
import { FeedCounters } from './feed-counters.js'
import type { ChangeFeed, ChangeNotice, FeedSink, FeedStats } from './types.js'

export interface AmqpFeedOptions {
  /** Broker URL. @default 'amqp://guest:guest@127.0.0.1:5672' */
  url?: string
  /** The topic exchange the notices are published on (declared if missing). @default 'configuration' (kazoo's) */
  exchange?: string
  /** Declare the exchange durable; must match an existing exchange. @default false */
  durable?: boolean
  /**
   * Topic binding keys: which notices to hear. They also define the feed's scope (what is
   * flushed on reconnect): `doc.accounts.#` covers db accounts only.
   * @default ['doc.#', 'doc_created.#', 'doc_edited.#', 'doc_deleted.#'] (both routing-key forms)
   */
  bindings?: readonly string[]
  /** AMQP heartbeat (a silent broker is taken as lost after about twice this). @default '5s' */
  heartbeat?: Duration
  /** How long `start` waits for the first connection. @default '5s' */
  connectTimeout?: Duration
  /** Reconnect delays (core/backoff.ts): `initial` doubling per failed attempt up to `max`, each jittered ±`jitter`. @default { initial: '100ms', max: '5s', jitter: 0.25 } */
  reconnect?: ReconnectOptions
  /** @default systemClock */
  clock?: Clock
  /** Source of the reconnect jitter. @default mathRandom */
  random?: Random
}

const DEFAULT_BINDINGS = ['doc.#', 'doc_created.#', 'doc_edited.#', 'doc_deleted.#']
const BINDING = /^(?:[^.*#\s]+|\*|#)(?:\.(?:[^.*#\s]+|\*|#))*$/

/** amqpFeed's option names: another is refused, not ignored (core/known-options.ts). */
const AMQP_FEED_OPTIONS = optionNames<AmqpFeedOptions>({ url: true, exchange: true, durable: true, bindings: true, heartbeat: true, connectTimeout: true, reconnect: true, clock: true, random: true })

export class AmqpFeed implements ChangeFeed {
  readonly name = 'amqp'
  readonly scope: readonly ChangeNotice[]
  readonly #link: AmqpLink
  readonly #exchange: string
  readonly #durable: boolean
  readonly #bindings: readonly string[]
  readonly #connectTimeoutMs: number
  readonly #counters = new FeedCounters()
  #consumer: AmqpConsumer | undefined
  #started = false

  constructor(options: AmqpFeedOptions = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('feed', 'expected an object')
    rejectUnknown(options, AMQP_FEED_OPTIONS, 'feed')
    this.#exchange = options.exchange ?? 'configuration'
    if (typeof this.#exchange !== 'string' || !/^[A-Za-z0-9_.:-]{1,200}$/.test(this.#exchange)) throw new InvalidOptionsError('feed.exchange', 'expected 1-200 characters of [A-Za-z0-9_.:-]')
    this.#durable = options.durable ?? false
    if (typeof this.#durable !== 'boolean') throw new InvalidOptionsError('feed.durable', 'expected a boolean')
    const bindings = options.bindings ?? DEFAULT_BINDINGS
    if (!Array.isArray(bindings) || bindings.length === 0 || bindings.some((b) => typeof b !== 'string' || b.length > 255 || !BINDING.test(b))) {
      throw new InvalidOptionsError('feed.bindings', 'expected a non-empty list of AMQP topic binding keys (words separated by dots, * and # as wildcards)')
    }
    this.#bindings = [...bindings]
    this.scope = this.#bindings.map(scopeOfBinding)
    this.#connectTimeoutMs = toMs(options.connectTimeout ?? '5s', 'feed.connectTimeout')
    if (!(this.#connectTimeoutMs > 0 && Number.isFinite(this.#connectTimeoutMs))) throw new InvalidOptionsError('feed.connectTimeout', 'expected a finite duration > 0')
    this.#link = new AmqpLink({ url: options.url, heartbeat: options.heartbeat, connectTimeout: options.connectTimeout, reconnect: options.reconnect, clock: options.clock, random: options.random }, 'feed', 'amqp feed', (message, cause) => new FeedUnavailableError(message, { cause }))
  }

  async start(sink: FeedSink): Promise<void> {
    if (this.#counters.state === 'closed') throw new ClosedError('The AMQP feed is closed')
    if (this.#started) throw new InvalidOptionsError('feed', 'this feed is already started (a feed serves one cache)')
    this.#started = true
    this.#counters.sink = sink
    const consumer = this.#link.consume({
      exchange: { name: this.#exchange, durable: this.#durable },
      bindings: this.#bindings,
      onMessage: (routingKey) => {
        const notice = parseRoutingKey(routingKey)
        if (typeof notice === 'string') this.#counters.malformed()
        else this.#counters.notice(notice)
      },
      onState: (state) => this.#counters.transition(state),
    })
    this.#consumer = consumer
    try {
      await this.#link.within(consumer.ready, this.#connectTimeoutMs, `could not listen on exchange ${JSON.stringify(this.#exchange)}`)
    } catch (err) {
      await this.close()
      throw err
    }
  }

  stats(): FeedStats {
    return this.#counters.stats(this.#link.reconnects)
  }

  async close(): Promise<void> {
    if (this.#counters.state === 'closed') return
    this.#counters.close()
    await this.#consumer?.cancel()
    await this.#link.close()
  }
}

/** A change feed from RabbitMQ (see AmqpFeedOptions). */
export function amqpFeed(options?: AmqpFeedOptions): AmqpFeed {
  return new AmqpFeed(options)
}
