/**
 * `etcdBus({ store })`: the invalidation bus of caches whose L2 is an `etcdStore`, driven by
 * etcd's own watch stream of the store's data instead of messages the caches publish.
 *
 * Every write to the store (by any process, any node, or a tool writing the keys) is an
 * event in etcd's history, and a watch delivers each revision once and in order: while the
 * stream holds, no change can be missed, so there are no sequence numbers, heartbeats or
 * gap flushes to run. The caches still call `publish` (it applies the change at once to the
 * other caches attached here, in this process); nothing goes to the network — the watch
 * brings the change to the other processes.
 *
 * Mapping (the facade's L2 layout, tier/l2-tier.ts): a change of store key `ns:K` drops K
 * from the L1 of the caches attached under namespace `ns`; a change of `ns#h:T` / `ns#s:T`
 * (a tag version written) observes that version, hard or soft; an unreadable one empties those
 * caches' L1 (what it covered is unknown). A tag version's deletion (its key expired in L2)
 * invalidates nothing and is ignored.
 *
 * Loss (Redis client-side caching's rule): when the stream breaks or etcd cancels the watch
 * (the revision to resume from was compacted), every attached L1 is flushed and bypassed
 * (`healthy` false: reads go to L2), and flushed once more when the watch is back (`synced`):
 * an L1 never serves across a period it could not hear. A silently dead connection is
 * noticed by gRPC keepalive (~15 s, see etcdStore).
 *
 * Own writes come back too (the watch does not know who wrote): a cache's own `set` drops
 * its fresh L1 entry a few ms later, and the next read refills it from L2. Correct, one miss.
 */
import { Bus, type BusChange, type BusListener, type BusStats, type FlushReason } from '../bus/bus.js'
import type { TagVersion } from '../bus/message.js'
import { memoryTransport } from '../bus/memory-transport.js'
import { ClosedError, InvalidOptionsError } from '../core/errors.js'
import { optionNames, rejectUnknown } from '../core/known-options.js'
import type { EtcdChange, EtcdStore, EtcdWatch } from '../store/etcd-store.js'

export interface EtcdBusOptions {
  /** The etcd store the caches use as L2: its watch stream drives the invalidations. Not closed by the bus. */
  store: EtcdStore
}

/** etcdBus's one option: another (a setting of createBus, which does not apply here) is refused, not ignored. */
const ETCD_BUS_OPTIONS = optionNames<EtcdBusOptions>({ store: true })

const TAG_KEY = /^([^:#]+)#([hs]):(.*)$/s
const DATA_KEY = /^([^:#]+):(.*)$/s
const decoder = new TextDecoder()

/** A Bus whose messages come from etcd's watch of the store (see the file comment). */
export class EtcdBus extends Bus {
  readonly #store: EtcdStore
  readonly #listeners = new Map<string, Set<BusListener>>()
  #watch: EtcdWatch | undefined
  #started: Promise<void> | undefined
  #healthy = false
  #synced = false
  #closed = false
  #received = 0
  #flushes = 0
  #losses = 0
  #published = 0

  constructor(options: EtcdBusOptions) {
    // The base Bus is never started: its transport only satisfies its constructor.
    super({ transport: memoryTransport() })
    if (options === null || typeof options !== 'object' || options.store === null || typeof options.store !== 'object' || typeof options.store.watchChanges !== 'function') {
      throw new InvalidOptionsError('bus.store', 'expected an etcdStore(...)')
    }
    rejectUnknown(options, ETCD_BUS_OPTIONS, 'bus')
    this.#store = options.store
  }

  override get healthy(): boolean {
    return this.#healthy
  }

  override get attached(): number {
    let n = 0
    for (const set of this.#listeners.values()) n += set.size
    return n
  }

  override get transportName(): string {
    return 'etcd'
  }

  /** Starts the watch; resolves once it is in place (never rejects, but `ERR_CLOSED` after close). */
  override start(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('The bus is closed'))
    this.#started ??= (async () => {
      this.#watch = this.#store.watchChanges((change) => this.#onChange(change))
      await this.#watch.ready
    })()
    return this.#started
  }

  /** The etcdStore whose watch drives this bus: the L2 every cache on it must use. */
  override requiredStore(): EtcdStore {
    return this.#store
  }

  override attach(namespace: string, listener: BusListener): () => void {
    if (this.#closed) throw new ClosedError('The bus is closed (it closed with the last cache attached to it): create a new one')
    if (typeof namespace !== 'string') throw new InvalidOptionsError('namespace', 'expected a string')
    let set = this.#listeners.get(namespace)
    if (set === undefined) this.#listeners.set(namespace, (set = new Set()))
    set.add(listener)
    listener.health(this.#healthy)
    return () => {
      set.delete(listener)
      if (set.size === 0 && this.#listeners.get(namespace) === set) this.#listeners.delete(namespace)
    }
  }

  /** Applies the change to the other caches attached here at once; the other processes hear it from etcd. */
  override async publish(change: BusChange, origin?: BusListener): Promise<void> {
    if (this.#closed) throw new ClosedError('The bus is closed')
    this.#published++
    for (const l of this.#listeners.get(change.namespace) ?? []) {
      if (l === origin) continue
      if (change.kind === 'delete') l.delete(change.keys)
      else if (change.kind === 'tags') l.tags(change.tags)
      else l.clear()
    }
  }

  override stats(): BusStats {
    return {
      healthy: this.#healthy,
      published: this.#published,
      received: this.#received,
      gaps: this.#losses,
      flushes: this.#flushes,
      duplicates: 0,
      late: 0,
      malformed: 0,
      queued: 0,
      overflows: 0,
      publishFailures: 0,
      silences: 0,
    }
  }

  /** Stops the watch (the store stays open: it is the caller's). Idempotent. */
  override async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#setHealthy(false)
    await this.#watch?.close()
    await super.close()
  }

  #onChange(change: EtcdChange): void {
    if (this.#closed) return
    if (change.kind === 'lost') {
      this.#losses++
      this.#flush('subscription-lost')
      this.#setHealthy(false)
    } else if (change.kind === 'synced') {
      // Whatever changed while the watch was away was not heard: flush, then trust again.
      this.#flush(this.#synced ? 'reconnected' : 'started')
      this.#synced = true
      this.#setHealthy(true)
    } else {
      this.#received++
      for (const { key, value } of change.entries) this.#apply(key, value)
    }
  }

  #apply(key: string, value: Uint8Array | undefined): void {
    const tag = TAG_KEY.exec(key)
    if (tag !== null) {
      const listeners = this.#listeners.get(tag[1] as string)
      if (listeners === undefined || value === undefined) return
      const version = Number(decoder.decode(value))
      const tags: TagVersion[] = [{ tag: tag[3] as string, version, mode: tag[2] === 'h' ? 'hard' : 'soft' }]
      for (const l of listeners) {
        try {
          if (Number.isFinite(version)) l.tags(tags)
          else l.clear()
        } catch {
          l.clear()
        }
      }
      return
    }
    const data = DATA_KEY.exec(key)
    if (data === null) return
    for (const l of this.#listeners.get(data[1] as string) ?? []) l.delete([data[2] as string])
  }

  #flush(reason: FlushReason): void {
    this.#flushes++
    for (const set of this.#listeners.values()) for (const l of set) l.flush(reason)
  }

  #setHealthy(healthy: boolean): void {
    if (this.#healthy === healthy) return
    this.#healthy = healthy
    for (const set of this.#listeners.values()) for (const l of set) l.health(healthy)
  }
}

/** A bus for caches on `store` (an `etcdStore`): L1 kept coherent by etcd's watch stream. */
export function etcdBus(options: EtcdBusOptions): EtcdBus {
  return new EtcdBus(options)
}
