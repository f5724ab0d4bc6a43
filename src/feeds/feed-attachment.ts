/**
 * The cache's side of a change feed: turns notices into erasures through the origin
 * index, and connection losses into flushes of the feed's scope.
 *
 * Flush policy (`flushOnReconnect`, default on): when the feed reports 'down', notices
 * may be missed from then on, so the entries in its scope are erased at once; when it is
 * back ('up' after 'down'), they are erased again — entries stored during the outage may
 * have changed unheard. Without it, an entry changed during an outage stays until its TTL.
 *
 * What the flush reaches: the entries THIS process holds in L1 (erased from L1, deleted
 * from L2, announced on the bus). It does not invalidate the scope's origin tags in L2:
 * a lost connection says nothing about which notices were missed, or whether another
 * process's feed heard them — and a flapping connection in one process would wipe every
 * entry with origins cluster-wide at each flap. So the bound: a notice heard by at least
 * one attached feed reaches every tier and process (origin-tags.ts); a notice that NO
 * feed in the cluster heard (all down at once) leaves the L2 records in scope that no
 * process held in L1 stale until their TTL. Invalidating `noticeTags(scope)` on 'up'
 * would bound that by the outage instead, at the price above.
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
  /** Invalidates the notice's origin tags (see origin-tags.ts) in every tier and process. */
  invalidate(notice: ChangeNotice): void
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
    // Eagerly from this L1 (erase events, memory freed), then through the origin tags for
    // the entries only L2 or other processes hold.
    const n = this.#erase(notice)
    this.#host.invalidate(notice)
    return n
  }

  state(_state: 'up' | 'down'): number {
    if (!this.#flushOnReconnect) return 0
    let n = 0
    for (const scope of this.feed.scope) n += this.#erase(scope)
    return n
  }

  #erase(notice: ChangeNotice): number {
    const keys = this.#host.index().match(notice)
    if (keys.length > 0) this.#host.erase(keys)
    return keys.length
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
