/**
 * Self-flushing from change feeds (kz_cache): entries name where their value came from
 * (`origins`), and a feed of document-change notices erases the entries a change
 * concerns.
 *
 * Matching, precisely. An origin descriptor and a change notice each name some of three
 * fields: `db`, `type`, `id`. They MATCH when they agree on every field that BOTH name.
 * A field only one of them names is a wildcard:
 *
 * | origin of the entry              | erased by a notice about doc accounts/user/42 when |
 * |----------------------------------|----------------------------------------------------|
 * | `{ db: 'accounts', type: 'user', id: '42' }` | always (that document)                 |
 * | `{ db: 'accounts', id: '42' }`   | always (that document, whatever its type)           |
 * | `{ type: 'user', id: '42' }`     | always (user 42 in any db)                          |
 * | `{ db: 'accounts', type: 'user' }` | always (any user of that db)                      |
 * | `{ db: 'accounts' }`             | always (anything in that db)                        |
 * | `{ type: 'user' }`               | always (any user anywhere)                          |
 * | `{ db: 'accounts', id: '7' }`    | never (another document)                            |
 * | `{ db: 'billing' }`              | never (another db)                                  |
 *
 * A notice that names fewer fields is broader: `{ db: 'accounts' }` (say, the db was
 * dropped) erases every entry whose origin is in db accounts, and also entries whose
 * origin names no db (`{ type: 'user', id: '7' }`: it might live there). When in doubt an
 * entry is erased — a cache may forget, it must not lie.
 */

/** Where an entry's value came from. At least one field; values are non-empty strings. */
export interface OriginDescriptor {
  readonly db?: string
  readonly type?: string
  readonly id?: string
}

/** One entry's origins: one descriptor, several, or computed from the stored value. */
export type OriginsOption<V> = OriginDescriptor | readonly OriginDescriptor[] | ((value: V) => OriginDescriptor | readonly OriginDescriptor[])

/** What changed. A notice from a feed names at least one field. */
export interface ChangeNotice {
  readonly db?: string
  readonly type?: string
  readonly id?: string
}

/** Where a feed delivers what it hears (the cache's side of an attachment). */
export interface FeedSink {
  /** A document changed: erase the matching entries; returns how many. */
  notice(notice: ChangeNotice): number
  /**
   * 'down': notices may be missed from now on. 'up': listening again (after a 'down').
   * Returns how many entries were flushed because of it.
   */
  state(state: 'up' | 'down'): number
}

export interface FeedStats {
  /** 'connecting' until first listening, 'up', 'down' while reconnecting, 'closed'. */
  readonly state: 'connecting' | 'up' | 'down' | 'closed'
  /** Notices applied. */
  readonly notices: number
  /** Notices that could not be understood (counted and ignored). */
  readonly malformed: number
  /** Entries erased by notices. */
  readonly erased: number
  /** Connections lost (each one followed by a reconnect attempt). */
  readonly reconnects: number
  /** Entries erased because the connection was lost or restored. */
  readonly flushed: number
}

/**
 * An adapter to an external source of change notices (`amqpFeed`, `pgFeed`, or yours).
 * A feed serves one cache: `cache.attachFeed(feed)` starts it, `detach()` or the cache's
 * `close()` closes it.
 */
export interface ChangeFeed {
  /** A short name for errors and stats (`'amqp'`, `'postgres'`). */
  readonly name: string
  /**
   * What the feed can report, as notices: the entries matching one of them are the ones
   * a lost connection leaves unguarded (flushed on reconnect). `[{}]`: everything.
   */
  readonly scope: readonly ChangeNotice[]
  /**
   * Starts listening and delivering to `sink`. Resolves once listening; rejects
   * (`ERR_FEED_UNAVAILABLE`) when the source cannot be reached within the feed's connect
   * timeout, leaving nothing running. Once started, a lost connection is re-established
   * with backoff (100 ms doubling to 5 s) and reported through `sink.state`.
   */
  start(sink: FeedSink): Promise<void>
  stats(): FeedStats
  /** Stops listening and reconnecting. Idempotent. */
  close(): Promise<void>
}
