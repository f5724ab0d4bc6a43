/**
 * Origins and change feeds as the facade uses them (moved out of cache.ts): the origin index
 * (origins -> keys, created on first use, kept in step with L1 by listeners on every way an
 * entry leaves), the feeds attached to the cache, and what a notice does: erase the keys it
 * names from L1, L2 and the other processes (bus), and invalidate its origin tags so entries
 * this L1 does not hold are never served either.
 */
import { isCacheError } from '../core/errors.js'
import type { MemoryCache } from '../memory/memory-cache.js'
import { OriginIndex } from '../feeds/origin-index.js'
import { checkFeed, FeedAttachment, type AttachFeedOptions } from '../feeds/feed-attachment.js'
import type { ChangeFeed, ChangeNotice, OriginDescriptor } from '../feeds/types.js'
import { noticeTags } from '../feeds/origin-tags.js'
import type { Envelope } from '../tier/envelope.js'
import type { L2Tier } from '../tier/l2-tier.js'
import type { BusLink } from './bus-link.js'
import type { ErrorChannel } from './error-channel.js'

/** What the origin link shares with the cache. */
export interface OriginLinkContext<V> {
  readonly l1: MemoryCache<string, V | Envelope<V>>
  readonly l2: L2Tier<V> | undefined
  readonly bus: BusLink | undefined
  readonly errors: ErrorChannel
  /** With L2 or a bus, origins also become tags, and notices invalidate them (origin-tags.ts). */
  readonly originTags: boolean
  /** Invalidates validated tags here, in L2 and on the bus (Cache#invalidate). */
  readonly invalidateTags: (tags: readonly string[], mode: 'hard' | 'soft') => Promise<void>
  readonly isClosed: () => boolean
}

export class OriginLink<V = unknown> {
  readonly #l1: MemoryCache<string, V | Envelope<V>>
  readonly #l2: L2Tier<V> | undefined
  readonly #bus: BusLink | undefined
  readonly #errors: ErrorChannel
  readonly #originTags: boolean
  readonly #invalidateTags: (tags: readonly string[], mode: 'hard' | 'soft') => Promise<void>
  readonly #isClosed: () => boolean
  /** Origins -> keys, created when origins or a feed are first used. */
  #origins: OriginIndex | undefined
  readonly #feeds = new Set<FeedAttachment>()

  constructor(c: OriginLinkContext<V>) {
    this.#l1 = c.l1
    this.#l2 = c.l2
    this.#bus = c.bus
    this.#errors = c.errors
    this.#originTags = c.originTags
    this.#invalidateTags = c.invalidateTags
    this.#isClosed = c.isClosed
  }

  /** Whether the index exists (origins or a feed were used): stores then keep it in step. */
  get used(): boolean {
    return this.#origins !== undefined
  }

  /** The index's size, once origins are used (`stats().origins`). */
  stats(): { readonly keys: number; readonly descriptors: number } | undefined {
    return this.#origins === undefined ? undefined : { keys: this.#origins.keys, descriptors: this.#origins.descriptors }
  }

  /** Closes every attached feed and empties the index (the cache's close). */
  async close(): Promise<void> {
    const feeds = [...this.#feeds]
    this.#feeds.clear()
    await Promise.all(feeds.map((a) => a.feed.close().catch(() => {})))
    this.#origins?.clear()
  }

  /** The origin index, created on first use with the L1 listeners that keep it in step. */
  index(): OriginIndex {
    if (this.#origins === undefined) {
      const index = new OriginIndex()
      // Every way an entry leaves L1 takes it out of the index (overwrites: see #store).
      const drop = (e: { key: string }): void => index.remove(e.key)
      for (const type of ['expire', 'evict', 'erase', 'flush'] as const) this.#l1.on(type, drop)
      this.#origins = index
    }
    return this.#origins
  }

  /** Indexes a stored key under its origins (none: out of the index), if L1 kept it. */
  assign(key: string, origins: readonly OriginDescriptor[] | undefined): void {
    if (origins === undefined) this.#origins?.remove(key)
    else if (this.#l1.has(key)) this.index().assign(key, origins)
  }

  /**
   * A feed's erasure: from L1 now; then from L2 and, with a bus, announced to the other
   * processes (which may hold the entry without origins, read from L2), in the background.
   */
  #erase(keys: readonly string[]): void {
    for (const key of keys) this.#l1.delete(key)
    const l2 = this.#l2
    const bus = this.#bus
    if (l2 === undefined && bus === undefined) return
    void (async () => {
      if (l2 !== undefined) {
        await Promise.all(
          keys.map((key) =>
            l2.delete(key).catch((err: unknown) => {
              if (isCacheError(err)) this.#errors.emit(err, key)
            }),
          ),
        )
      }
      // After L2: a process that re-reads on the message must not find the old value.
      await bus?.deleted(keys)
    })().catch(() => {
      // Only a closed bus rejects; the erasure in L1 and L2 stands.
    })
  }

  /**
   * A notice's origin tags, invalidated hard here, in L2 and on the bus (in the background),
   * so that entries with matching origins that this L1 does not hold are never served.
   */
  #invalidateNotice(notice: ChangeNotice): void {
    if (!this.#originTags || this.#isClosed()) return
    this.#invalidateTags(noticeTags(notice), 'hard').catch(() => {
      // Only a closed bus rejects; the versions are recorded here and in L2.
    })
  }

  /** `Cache.attachFeed` (the cache checked it is open). */
  async attach(feed: ChangeFeed, options?: AttachFeedOptions): Promise<() => Promise<void>> {
    const attachment = new FeedAttachment(feed, { index: () => this.index(), erase: (keys) => this.#erase(keys), invalidate: (notice) => this.#invalidateNotice(notice) }, checkFeed(feed, options))
    this.#feeds.add(attachment)
    try {
      await feed.start(attachment)
    } catch (err) {
      this.#feeds.delete(attachment)
      throw err
    }
    if (this.#isClosed()) await feed.close()
    return async () => {
      if (this.#feeds.delete(attachment)) await feed.close()
    }
  }
}
