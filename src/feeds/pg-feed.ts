/**
 * Change notices from PostgreSQL LISTEN/NOTIFY: a trigger runs
 * `pg_notify('stratacache_changes', json_build_object('db', 'accounts', 'type', 'user', 'id', NEW.id)::text)`
 * and every attached cache erases the matching entries. The one file that imports `pg`.
 *
 * - One dedicated connection (LISTEN holds it). A payload is one JSON object (notice.ts);
 *   anything else is counted as malformed and ignored.
 * - PostgreSQL has no heartbeat of its own: a `SELECT 1` every `pingInterval` (bounded by
 *   the same interval) tells a frozen server or a half-open socket from a quiet one.
 * - A lost connection ('error', 'end', a failed ping) reports 'down', and a new one is
 *   opened after 100 ms, doubling to 5 s; 'up' once it LISTENs again. NOTIFYs sent in
 *   between are lost (PostgreSQL keeps none for absent listeners): the cache flushes.
 */
import pg from 'pg'
import type { ClientConfig } from 'pg'
import { clockOption, type Clock, type TimerHandle } from '../core/clock.js'
import { toMs, type Duration } from '../core/duration.js'
import { FeedUnavailableError, ClosedError, InvalidOptionsError } from '../core/errors.js'
import { optionNames, rejectUnknown } from '../core/known-options.js'
import { systemClock } from '../core/system-clock.js'
import { backoffPolicy, type Backoff, type ReconnectOptions } from '../core/backoff.js'
import { mathRandom, type Random, randomOption } from '../core/random.js'
import { descriptorList } from './origin-index.js'
import { FeedCounters } from './feed-counters.js'
import { parseJsonNotice } from './notice.js'
import type { ChangeFeed, ChangeNotice, FeedSink, FeedStats } from './types.js'

/**
 * Further settings of the `pg` client (its `ClientConfig` without `connectionString` and
 * `connectionTimeoutMillis`, which the feed sets). Declared here so that stratacache's
 * types need no `@types/pg`; every field is passed to `new pg.Client()` as given.
 */
export interface PgConnectionSettings {
  user?: string
  password?: string | (() => string | Promise<string>)
  database?: string
  host?: string
  port?: number
  ssl?: boolean | object
  application_name?: string
  [setting: string]: unknown
}

export interface PgFeedOptions {
  /** Connection string. @default 'postgres://127.0.0.1:5432/postgres' */
  url?: string
  /** Further `pg` client settings (user, password, ssl, …). @default {} */
  connection?: PgConnectionSettings
  /** The NOTIFY channel (an SQL identifier). @default 'stratacache_changes' */
  channel?: string
  /**
   * What the channel reports, as notices: flushed when the connection is lost and when it
   * is back. `[{ db: 'accounts' }]` if the triggers only cover that db. @default [{}] (everything)
   */
  scope?: readonly ChangeNotice[]
  /** How long a connection attempt (and `start`) may take. @default '5s' */
  connectTimeout?: Duration
  /** How often the connection is checked with `SELECT 1` (which must answer within it). @default '5s' */
  pingInterval?: Duration
  /** Reconnect delays (core/backoff.ts): `initial` doubling per failed attempt up to `max`, each jittered ±`jitter`. @default { initial: '100ms', max: '5s', jitter: 0.25 } */
  reconnect?: ReconnectOptions
  /** @default systemClock */
  clock?: Clock
  /** Source of the reconnect jitter. @default mathRandom */
  random?: Random
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

/** Whether pg can parse `url` as a connection string (as pg-connection-string does: spaces encoded, an empty host allowed). */
function parsesAsPgUrl(url: string): boolean {
  const text = / |%[^a-f0-9]|%[a-f0-9][^a-f0-9]/i.test(url) ? encodeURI(url).replace(/%25(\d\d)/g, '%$1') : url
  for (const candidate of [text, text.replace('@/', '@___DUMMY___/')]) {
    try {
      new URL(candidate, 'postgres://base')
      return true
    } catch {
      // try the next form
    }
  }
  return false
}

/** pgFeed's option names: another is refused, not ignored (core/known-options.ts). */
const PG_FEED_OPTIONS = optionNames<PgFeedOptions>({ url: true, connection: true, channel: true, scope: true, connectTimeout: true, pingInterval: true, reconnect: true, clock: true, random: true })

export class PgFeed implements ChangeFeed {
  readonly name = 'postgres'
  readonly scope: readonly ChangeNotice[]
  readonly #config: ClientConfig
  readonly #channel: string
  readonly #connectTimeoutMs: number
  readonly #pingMs: number
  readonly #backoff: Backoff
  readonly #clock: Clock
  readonly #counters = new FeedCounters()
  #client: pg.Client | undefined
  #retry: TimerHandle | undefined
  #ping: TimerHandle | undefined
  #reconnects = 0
  #started = false
  #lastError: unknown

  constructor(options: PgFeedOptions = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('feed', 'expected an object')
    rejectUnknown(options, PG_FEED_OPTIONS, 'feed')
    const url = options.url ?? 'postgres://127.0.0.1:5432/postgres'
    if (typeof url !== 'string' || !/^postgres(ql)?:\/\//.test(url)) throw new InvalidOptionsError('feed.url', `expected a postgres:// URL, got ${JSON.stringify(url)}`)
    // pg parses it only when it connects: a port of 99999 or a bad host was a retried ERR_FEED_UNAVAILABLE.
    if (!parsesAsPgUrl(url)) throw new InvalidOptionsError('feed.url', `expected a postgres:// URL, got one that does not parse (${JSON.stringify(url.replace(/\/\/[^@/]*@/, '//***@').slice(0, 100))})`)
    if (options.connection !== undefined && (options.connection === null || typeof options.connection !== 'object')) throw new InvalidOptionsError('feed.connection', 'expected an object')
    this.#channel = options.channel ?? 'stratacache_changes'
    if (typeof this.#channel !== 'string' || !IDENTIFIER.test(this.#channel)) throw new InvalidOptionsError('feed.channel', 'expected an SQL identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63 characters)')
    const scope = options.scope ?? [{}]
    if (!Array.isArray(scope) || scope.length === 0) throw new InvalidOptionsError('feed.scope', 'expected a non-empty list of notices ([{}] for everything)')
    for (const s of scope) if (!(s !== null && typeof s === 'object' && Object.keys(s).length === 0)) descriptorList(s, 'feed.scope')
    this.scope = [...scope]
    this.#connectTimeoutMs = positive(options.connectTimeout ?? '5s', 'feed.connectTimeout')
    this.#pingMs = positive(options.pingInterval ?? '5s', 'feed.pingInterval')
    this.#backoff = backoffPolicy(options.reconnect, 'feed.reconnect', randomOption(options.random, 'feed.random', mathRandom)).attempts()
    this.#clock = clockOption(options.clock, systemClock, 'feed.clock')
    this.#config = { ...(options.connection as ClientConfig | undefined), connectionString: url, connectionTimeoutMillis: this.#connectTimeoutMs }
  }

  async start(sink: FeedSink): Promise<void> {
    if (this.#counters.state === 'closed') throw new ClosedError('The PostgreSQL feed is closed')
    if (this.#started) throw new InvalidOptionsError('feed', 'this feed is already started (a feed serves one cache)')
    this.#started = true
    this.#counters.sink = sink
    try {
      await this.#connect()
    } catch (err) {
      await this.close()
      throw new FeedUnavailableError(`postgres feed: cannot LISTEN on ${this.#channel}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    }
  }

  stats(): FeedStats {
    return this.#counters.stats(this.#reconnects)
  }

  /** The last connection failure (diagnostics). */
  get lastError(): unknown {
    return this.#lastError
  }

  /** The server process id of the listening connection (tests cut it with pg_terminate_backend). */
  get backendPid(): number | undefined {
    return (this.#client as unknown as { processID?: number } | undefined)?.processID
  }

  async close(): Promise<void> {
    if (this.#counters.state === 'closed') return
    this.#counters.close()
    if (this.#retry !== undefined) this.#clock.clearTimeout(this.#retry)
    if (this.#ping !== undefined) this.#clock.clearTimeout(this.#ping)
    const client = this.#client
    this.#client = undefined
    if (client !== undefined) await client.end().catch(() => {})
  }

  /** Opens a connection and LISTENs; rejects if that fails (the caller decides what next). */
  async #connect(): Promise<void> {
    const client = new pg.Client(this.#config)
    let lost = false
    const onLost = (err?: unknown): void => {
      if (lost) return
      lost = true
      if (err !== undefined) this.#lastError = err
      this.#lost(client)
    }
    client.on('error', onLost)
    client.on('end', () => onLost())
    client.on('notification', (msg) => {
      if (this.#client !== client || msg.channel !== this.#channel) return
      const notice = msg.payload === undefined ? 'empty payload' : parseJsonNotice(msg.payload)
      if (typeof notice === 'string') this.#counters.malformed()
      else this.#counters.notice(notice)
    })
    try {
      await client.connect()
      await client.query(`LISTEN "${this.#channel}"`)
    } catch (err) {
      lost = true
      client.end().catch(() => {})
      throw err
    }
    if (this.#counters.state === 'closed') {
      lost = true
      await client.end().catch(() => {})
      return
    }
    this.#client = client
    this.#backoff.reset()
    this.#schedulePing(client)
    this.#counters.transition('up')
  }

  #lost(client: pg.Client): void {
    if (this.#client !== client || this.#counters.state === 'closed') return
    this.#client = undefined
    this.#reconnects++
    if (this.#ping !== undefined) this.#clock.clearTimeout(this.#ping)
    client.end().catch(() => {})
    this.#counters.transition('down')
    this.#scheduleReconnect()
  }

  #scheduleReconnect(): void {
    if (this.#counters.state === 'closed') return
    this.#retry = this.#clock.setTimeout(
      () => {
        this.#retry = undefined
        this.#connect().catch((err: unknown) => {
          this.#lastError = err
          this.#scheduleReconnect()
        })
      },
      this.#backoff.next(),
      { unref: true },
    )
  }

  #schedulePing(client: pg.Client): void {
    this.#ping = this.#clock.setTimeout(
      () => {
        if (this.#client !== client) return
        let answered = false
        const deadline = this.#clock.setTimeout(
          () => {
            if (!answered) this.#lost(client)
          },
          this.#pingMs,
          { unref: true },
        )
        client.query('SELECT 1').then(
          () => {
            answered = true
            this.#clock.clearTimeout(deadline)
            this.#schedulePing(client)
          },
          (err: unknown) => {
            answered = true
            this.#clock.clearTimeout(deadline)
            this.#lastError = err
            this.#lost(client)
          },
        )
      },
      this.#pingMs,
      { unref: true },
    )
  }
}

function positive(value: Duration, option: string): number {
  const ms = toMs(value, option)
  if (!(ms > 0 && Number.isFinite(ms))) throw new InvalidOptionsError(option, 'expected a finite duration > 0')
  return ms
}

/** A change feed from PostgreSQL LISTEN/NOTIFY (see PgFeedOptions). */
export function pgFeed(options?: PgFeedOptions): PgFeed {
  return new PgFeed(options)
}
