/**
 * How the facade computes a miss (moved out of cache.ts): the strategy (single-flight or
 * not, stored in the background or not), L2 read first with a second tier, the distributed
 * lock protocol (lock-protocol.ts) when configured, then the factory under its timeouts with
 * the fail-safe fallback, and its result stored through the EntryWriter. Refresh-ahead goes
 * the same way. Invariant: every promise made here is returned or has a rejection handler.
 */
import type { Clock } from '../core/clock.js'
import { toMs } from '../core/duration.js'
import { InvalidOptionsError } from '../core/errors.js'
import { neverAbortedSignal } from '../core/never-aborted-signal.js'
import type { SingleFlight } from '../singleflight/single-flight.js'
import type { TagTrie } from '../tags/tag-trie.js'
import type { Envelope } from '../tier/envelope.js'
import type { L2Tier } from '../tier/l2-tier.js'
import type { BusLink } from './bus-link.js'
import type { EntryWriter, FacadeCounts } from './entry-writer.js'
import { failSafeTimers } from './fail-safe-timers.js'
import type { LockProtocol } from './lock-protocol.js'
import { positive, type Resolved } from './resolve-options.js'
import type { Factory, FactoryContext } from './types.js'
import { factoryChannel, isTraced, traceAsync } from '../core/tracing.js'

/** How #run (and #load before it) computes: the fallback, in the background or not, the fence. */
interface RunOptions<V> {
  /** The fail-safe fallback: a stale entry served if the factory fails or is slow. */
  readonly stale: Envelope<V> | undefined
  /** Store the result after returning it (strategies `async`, `stampede-async`). */
  readonly background: boolean
  /** Write L2 under this fence (lock protocol); `false`: not ordered after a holder's write, so no L2 write. */
  readonly fence?: number | false
  /** A refresh-ahead run (for the trace context). */
  readonly refresh?: boolean
}

/** What the computation shares with the cache. */
export interface ComputationContext<V> {
  readonly clock: Clock
  readonly flight: SingleFlight<string, V>
  readonly tags: TagTrie
  readonly bus: BusLink | undefined
  readonly l2: L2Tier<V> | undefined
  /** The lock protocol, with a distributed lock. */
  readonly lock: LockProtocol | undefined
  readonly writer: EntryWriter<V>
  readonly counts: FacadeCounts
  /** Whether the cache was closed (a result computed after close is not stored). */
  readonly isClosed: () => boolean
  /** The cache's namespace, for trace contexts. */
  readonly namespace: string
}

export class Computation<V> {
  readonly #clock: Clock
  readonly #flight: SingleFlight<string, V>
  readonly #tags: TagTrie
  readonly #bus: BusLink | undefined
  readonly #l2: L2Tier<V> | undefined
  readonly #lock: LockProtocol | undefined
  readonly #distributedLock: boolean
  readonly #writer: EntryWriter<V>
  readonly #counts: FacadeCounts
  readonly #isClosed: () => boolean
  readonly #namespace: string

  constructor(c: ComputationContext<V>) {
    this.#clock = c.clock
    this.#flight = c.flight
    this.#tags = c.tags
    this.#bus = c.bus
    this.#l2 = c.l2
    this.#lock = c.lock
    this.#distributedLock = c.lock !== undefined
    this.#writer = c.writer
    this.#counts = c.counts
    this.#isClosed = c.isClosed
    this.#namespace = c.namespace
  }

  compute(key: string, factory: Factory<V>, o: Resolved<V>, stale: Envelope<V> | undefined): Promise<V> {
    const run = this.#l2 === undefined ? this.#run : this.#load
    switch (o.strategy) {
      case 'none':
        return run.call(this, key, factory, o, { stale, background: false })
      case 'async':
        return run.call(this, key, factory, o, { stale, background: true })
      case 'stampede':
      case 'stampede-async':
        // keepAlive: callers who leave never cancel the factory; its result is stored for
        // the others and the next readers (so the flight's own signal never aborts).
        return this.#flight.run(key, () => run.call(this, key, factory, o, { stale, background: o.strategy === 'stampede-async' }), {
          signal: o.signal,
          keepAlive: true,
        })
    }
  }

  /**
   * A miss in L1 with a second tier: read L2 first (one read per key across concurrent
   * callers under `stampede`); compute only if L2 has no fresh, valid value, under the
   * distributed lock when configured. An L2 value past its freshness but within grace
   * becomes the fail-safe fallback.
   */
  async #load(key: string, factory: Factory<V>, o: Resolved<V>, run: RunOptions<V>): Promise<V> {
    let stale = run.stale
    const l2 = this.#l2 as L2Tier<V>
    // getOrSetMany has just read this key in its batch.
    const mark = this.#bus?.mark()
    const found = o.l2Checked?.has(key) === true ? undefined : await l2.read(key)
    if (found !== undefined) {
      if (this.#writer.unchanged(key, mark) && this.#writer.adopt(key, found, o)) return found.value
      if (stale === undefined && found.tagSig === o.tagSig && this.#writer.state(key, found) !== 'invalid') stale = found
    }
    if (this.#distributedLock) return this.#runLocked(key, factory, o, stale)
    return this.#run(key, factory, o, { stale, background: run.background })
  }

  /** A miss (or refresh) under the distributed lock protocol (lock-protocol.ts). */
  #runLocked(key: string, factory: Factory<V>, o: Resolved<V>, stale: Envelope<V> | undefined, refresh = false): Promise<V> {
    const l2 = this.#l2 as L2Tier<V>
    return (this.#lock as LockProtocol).run<V>({
      key,
      lockKey: l2.lockKey(key),
      lease: o.lockLease,
      wait: o.lockWait,
      reread: async () => {
        const mark = this.#bus?.mark()
        const found = await l2.read(key)
        return found !== undefined && this.#writer.unchanged(key, mark) && this.#writer.adopt(key, found, o) ? found : undefined
      },
      compute: (fence) => this.#run(key, factory, o, { stale, background: false, fence, refresh }),
    })
  }

  /**
   * Runs the factory once with timeouts and fail-safe; stores its result. `fence`: write L2
   * under it (lock protocol); `false`: the write could not be ordered after a lock holder's,
   * so L2 is not written.
   */
  #run(key: string, factory: Factory<V>, o: Resolved<V>, run: RunOptions<V>): Promise<V> {
    const { stale, background, fence } = run
    // Only a hard timeout can abort a factory; creating a controller costs microseconds.
    const controller = o.hard === Infinity ? undefined : new AbortController()
    let ttl = o.ttl
    let tags: readonly string[] | undefined
    let skipped = false
    const ctx: FactoryContext<V> = {
      key,
      stale: stale?.value,
      signal: controller?.signal ?? neverAbortedSignal(),
      setTtl: (d) => {
        ttl = positive(toMs(d, 'ttl'), 'ttl')
      },
      setTags: (t) => {
        if (!Array.isArray(t)) throw new InvalidOptionsError('tags', 'expected an array of tags')
        for (const tag of t) this.#tags.validate(tag)
        tags = t
      },
      skip: () => {
        skipped = true
      },
    }
    this.#counts.factoryCalls++
    // Taken before the factory reads its source: an invalidation that lands while it runs
    // must invalidate what it returns.
    // (No later than the tag version: entries with origins are capped from here.)
    const startedAt = this.#clock.now()
    const tagVersion = this.#tags.currentVersion()
    const busMark = this.#bus?.mark()
    let produced: Promise<V>
    try {
      produced = isTraced(factoryChannel)
        ? traceAsync(factoryChannel, { key, namespace: this.#namespace, refresh: run.refresh === true, fallback: stale !== undefined }, () => Promise.resolve(factory(ctx)))
        : Promise.resolve(factory(ctx))
    } catch (err) {
      produced = Promise.reject(err)
    }
    const stored = produced.then(
      (value) => {
        if (!skipped && !this.#isClosed() && this.#writer.unchanged(key, busMark)) {
          if (background) queueMicrotask(() => this.#writer.storeQuietly(key, value, o, { ttl, tags, tagVersion, since: startedAt }))
          else {
            // With L2 the store is awaited (it never rejects: L2 failures are queued).
            const written = this.#writer.store(key, value, o, { ttl, tags, tagVersion, fence, since: startedAt })
            if (written !== undefined) return written.then(() => value)
          }
        }
        return value
      },
      (err: unknown) => {
        this.#counts.factoryErrors++
        throw err
      },
    )
    // A refresh-ahead serves nobody (its hit was counted in hits): its fallback is no stale hit.
    const served = run.refresh !== true
    if (o.soft === Infinity && o.hard === Infinity) {
      return stale === undefined ? stored : stored.catch(() => this.#writer.fallBack(key, stale, o, served))
    }
    return failSafeTimers(stored, {
      clock: this.#clock,
      key,
      stale,
      soft: o.soft,
      hard: o.hard,
      controller,
      fallBack: (stale) => this.#writer.fallBack(key, stale, o, served),
      onSoft: () => {
        if (served) this.#counts.staleHits++
      },
      onHard: () => this.#counts.factoryTimeouts++,
    })
  }

  refresh(key: string, factory: Factory<V>, o: Resolved<V>, env: Envelope<V>): void {
    if (this.#flight.inFlight(key)) return
    this.#counts.refreshes++
    // Under the lock protocol like a miss: one refresh in the cluster, written fenced, so a
    // holder granted earlier cannot overwrite the refreshed value (nor it a newer one).
    const refresh = this.#distributedLock ? () => this.#runLocked(key, factory, o, env, true) : () => this.#run(key, factory, o, { stale: env, background: false, refresh: true })
    this.#flight.run(key, refresh, { keepAlive: true }).catch(() => {
      // Counted as a factory error; the current value stays until it expires.
    })
  }
}
