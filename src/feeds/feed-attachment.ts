/**
 * The cache's side of a change feed: turns notices into erasures through the origin
 * index, and connection losses into flushes of the feed's scope.
 *
 * Flush policy (`flushOnReconnect`, default on): when the feed reports 'down', notices
 * may be missed from then on, so the entries in its scope are erased at once; when it is
 * back ('up' after 'down'), they are erased again — entries stored during the outage may
 * have changed unheard. Without it, an entry changed during an outage stays until its TTL.
 */
import { InvalidOptionsError } from '../core/errors.js'
import type { OriginIndex } from './origin-index.js'
import type { ChangeFeed, ChangeNotice, FeedSink } from './types.js'

export interface AttachFeedOptions {
  /** Erase the feed's scope when its connection is lost and again when it is back. @default true */
  flushOnReconnect?: boolean
}

export interface FeedHost {
  /** The cache's origin index (created on first use). */
  index(): OriginIndex
  /** Erases keys from every tier. */
  erase(keys: readonly string[]): void
}

export class FeedAttachment implements FeedSink {
  readonly feed: ChangeFeed
  readonly #host: FeedHost
  readonly #flushOnReconnect: boolean

  constructor(feed: ChangeFeed, host: FeedHost, flushOnReconnect: boolean) {
    this.feed = feed
    this.#host = host
    this.#flushOnReconnect = flushOnReconnect
  }

  notice(notice: ChangeNotice): number {
    const keys = this.#host.index().match(notice)
    if (keys.length > 0) this.#host.erase(keys)
    return keys.length
  }

  state(_state: 'up' | 'down'): number {
    if (!this.#flushOnReconnect) return 0
    let n = 0
    for (const scope of this.feed.scope) n += this.notice(scope)
    return n
  }
}

/** Validates `attachFeed`'s arguments once; returns the flush setting. */
export function checkFeed(feed: unknown, options: AttachFeedOptions | undefined): boolean {
  const f = feed as Partial<ChangeFeed> | null
  if (f === null || typeof f !== 'object' || typeof f.start !== 'function' || typeof f.close !== 'function' || typeof f.stats !== 'function' || !Array.isArray(f.scope)) {
    throw new InvalidOptionsError('feed', 'expected a ChangeFeed (amqpFeed(...), pgFeed(...))')
  }
  if (options !== undefined && (options === null || typeof options !== 'object')) throw new InvalidOptionsError('options', 'expected an object')
  const flush = options?.flushOnReconnect ?? true
  if (typeof flush !== 'boolean') throw new InvalidOptionsError('flushOnReconnect', 'expected a boolean')
  return flush
}
