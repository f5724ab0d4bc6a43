/**
 * The link between one cache and an invalidation `Bus`: it applies what other processes
 * changed to this cache's L1 and tag trie, publishes this cache's own changes, and tells the
 * facade when L1 cannot be trusted.
 *
 * - A remote `delete` drops the keys from L1; `tags` observes the versions into the trie
 *   (ratcheting it, as a passive resync from L2 would) and also invalidates the tags
 *   locally: the message arrived after the change, so every entry held now is older than
 *   it, whatever two clocks say (the sender's version may be lower than a local snapshot
 *   taken in the same millisecond or within clock skew); `clear` and every flush the Bus
 *   decides (gap, lost or silent subscription, silent sender) empty L1.
 * - While the Bus is unhealthy, `bypass` is true and the facade serves nothing from L1
 *   (reads go to L2 or the factory); the Bus flushes again when it recovers.
 * - Fills racing an invalidation. A process may read an old value (from L2 or the source)
 *   just before another process's change, and receive the change's message before it puts
 *   that value into L1 — where the message can no longer remove it. So the facade takes a
 *   `mark()` before it reads, and writes L1 only if `unchanged(key, mark)`: no delete of
 *   that key, no clear, no flush and no tag invalidation arrived since. (Tag invalidations
 *   count for every key: a remote version may be older than the local snapshot when clocks
 *   skew, so the snapshot alone cannot be trusted for a fill already under way.) A skipped
 *   write costs a later miss, never a stale read.
 */
import type { Bus, BusListener, BusStats, FlushReason } from '../bus/bus.js'
import type { TagVersion } from '../bus/message.js'

export interface BusLinkHooks {
  deleteKeys(keys: readonly string[]): void
  clearL1(): void
  observeTag(tag: string, version: number, mode: 'hard' | 'soft'): void
  /** Called with true while L1 must be bypassed. */
  bypass(bypass: boolean): void
}

/** The bus figures in `cache.stats().bus`: the Bus's own (shared by the caches attached to it) plus this cache's. */
export interface CacheBusStats extends BusStats {
  /** Times this cache's L1 was emptied by the bus (flushes and remote clears). */
  readonly l1Flushes: number
  /** Keys dropped from this cache's L1 by remote deletes. */
  readonly keysDropped: number
  /** Tag versions received and observed into this cache's trie. */
  readonly tagsObserved: number
  /** L1 writes skipped because an invalidation arrived while the value was being read. */
  readonly fillsSkipped: number
}

/** Past this many remembered keys, a delete counts as a clear for in-flight fills. */
const MAX_REMEMBERED_KEYS = 10_000

export class BusLink implements BusListener {
  readonly #bus: Bus
  readonly #namespace: string
  readonly #hooks: BusLinkHooks
  readonly #detach: () => void
  /** Bumped by every invalidation received. */
  #gen = 0
  /** The generation of the last clear, flush or tag invalidation. */
  #floor = 0
  /** Generation of the last remote delete of each key (forgotten when too many: see floor). */
  readonly #keyGen = new Map<string, number>()
  #l1Flushes = 0
  #keysDropped = 0
  #tagsObserved = 0
  #fillsSkipped = 0
  #closed = false

  constructor(bus: Bus, namespace: string, hooks: BusLinkHooks) {
    this.#bus = bus
    this.#namespace = namespace
    this.#hooks = hooks
    this.#detach = bus.attach(namespace, this)
    // Never rejects but for ERR_CLOSED (a bus closed under us): L1 then stays bypassed.
    bus.start().catch(() => {})
  }

  // ---- BusListener (messages from other processes, flush decisions of the Bus) -------

  delete(keys: readonly string[]): void {
    const gen = ++this.#gen
    if (this.#keyGen.size + keys.length > MAX_REMEMBERED_KEYS) {
      this.#keyGen.clear()
      this.#floor = gen
    } else for (const k of keys) this.#keyGen.set(k, gen)
    this.#keysDropped += keys.length
    this.#hooks.deleteKeys(keys)
  }

  tags(tags: readonly TagVersion[]): void {
    this.#floor = ++this.#gen
    this.#keyGen.clear()
    let failure: unknown
    for (const t of tags) {
      try {
        this.#hooks.observeTag(t.tag, t.version, t.mode)
        this.#tagsObserved++
      } catch (err) {
        failure ??= err
      }
    }
    if (failure !== undefined) {
      // A tag this process refuses (malformed, from a corrupt or foreign sender): what it
      // invalidates is unknown, so nothing held can be trusted. The Bus reports the error.
      this.#drop()
      throw failure
    }
  }

  clear(): void {
    this.#drop()
  }

  flush(reason: FlushReason): void {
    // The flushes that start and end a subscription's warm-up are routine, not losses:
    // not counted.
    this.#drop(reason !== 'started' && reason !== 'warmed')
  }

  #drop(count = true): void {
    this.#floor = ++this.#gen
    this.#keyGen.clear()
    if (count) this.#l1Flushes++
    this.#hooks.clearL1()
  }

  health(healthy: boolean): void {
    this.#hooks.bypass(!healthy)
  }

  // ---- used by the facade -------------------------------------------------------------

  /** Taken before reading a value from L2 or the source. */
  mark(): number {
    return this.#gen
  }

  /** Whether a value read after `mark` may go into L1 (nothing invalidated it since). */
  unchanged(key: string, mark: number): boolean {
    if (this.#gen === mark) return true
    if (this.#floor > mark || (this.#keyGen.get(key) ?? 0) > mark) {
      this.#fillsSkipped++
      return false
    }
    return true
  }

  /** Tells the other processes (and the other caches on this Bus) that keys changed. */
  deleted(keys: readonly string[]): Promise<void> {
    return this.#publish({ kind: 'delete', namespace: this.#namespace, keys })
  }

  invalidated(tags: readonly TagVersion[]): Promise<void> {
    return this.#publish({ kind: 'tags', namespace: this.#namespace, tags })
  }

  cleared(): Promise<void> {
    return this.#publish({ kind: 'clear', namespace: this.#namespace })
  }

  stats(): CacheBusStats {
    return { ...this.#bus.stats(), l1Flushes: this.#l1Flushes, keysDropped: this.#keysDropped, tagsObserved: this.#tagsObserved, fillsSkipped: this.#fillsSkipped }
  }

  /** Detaches from the Bus; the Bus closes with the last cache attached to it. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#detach()
    if (this.#bus.attached === 0) await this.#bus.close()
  }

  async #publish(change: Parameters<Bus['publish']>[0]): Promise<void> {
    if (this.#closed) return
    try {
      await this.#bus.publish(change, this)
    } catch {
      // Only ERR_CLOSED: a bus closed by its owner publishes nothing more.
    }
  }
}
