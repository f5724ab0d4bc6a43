/**
 * The node's keyspace: what the HTTP API reads and writes, independent of HTTP.
 *
 * Design. Entries are `NodeRecord`s (value bytes, version, absolute expiry, tags) kept by
 * the library's own facade (`Cache`): L1 is the in-process engine bounded by bytes, L2 the
 * node's persistent store (LMDB by default), tags and their invalidations are the
 * facade's versioned trie with tag versions persisted in the store (so an invalidation
 * survives a restart and a record read back from disk is checked against it). The node
 * adds what a server needs on top:
 * - versions from the node's hybrid logical clock (node-clock.ts: node-wide, high-water
 *   mark persisted in the store);
 * - every write of a key runs under a per-key `KeyedMutex`, so `If-Match` checks and the
 *   write are atomic, and the stored value always carries the highest version drawn;
 * - remaining TTL from the record's absolute expiry (the facade expires it at the same
 *   instant: both are computed from one `clock.now()`).
 * An acknowledged write has been awaited through L1 and the store write. The facade runs
 * with `l2.strictWrites`: a store write that does not land (full, failed, timed out) fails
 * the request with its typed error and drops the L1 copy, instead of being queued for a
 * replay that a crash would lose.
 *
 * Clearing by prefix (`DELETE /v1/keys?prefix=`, what `clientStore.clear(prefix)` needs):
 * the store range is removed at once; the in-process tier cannot be scanned through the
 * facade, so the clear leaves a tombstone `(prefix, V)` with V the last version handed out.
 * An L1 record under a tombstoned prefix with a version <= V is suspect: it is served only
 * if the store still holds the key (a write that landed after the range removal), else
 * dropped. Records never share a version, so the check is exact. Tombstones are bounded:
 * past `MAX_TOMBSTONES` they fold into one `('', max V)`, which stays exact and only costs a
 * store read on hits of older records.
 */
import type { Clock } from '../core/clock.js'
import { PreconditionFailedError } from '../core/errors.js'
import { Cache } from '../cache/cache.js'
import type { Store } from '../store/types.js'
import type { HybridLogicalClock } from '../core/hlc.js'
import { KeyedMutex } from './keyed-mutex.js'
import { openNodeClock } from './node-clock.js'
import { noReplication, type Replicator } from './replicator.js'

/** A store that counts its entries by prefix synchronously (`lmdbStore`). */
interface CountingStore extends Store {
  count(prefix: string): number
}

/** What the node stores per key (inside the facade's envelope). */
export interface NodeRecord {
  /** The value bytes. */
  readonly v: Uint8Array
  /** Version. */
  readonly n: number
  /** Absolute expiry in ms since the epoch; 0 = none. */
  readonly e: number
  /** Tags (validated). */
  readonly t: readonly string[]
}

/** An entry as the API returns it. */
export interface EntryView {
  readonly value: Uint8Array
  readonly version: number
  /** Remaining TTL in whole seconds (rounded up), `null` for no expiry. */
  readonly ttl: number | null
  readonly tags: readonly string[]
}

export interface EngineWrite {
  readonly key: string
  readonly value: Uint8Array
  /** Seconds; `null` for no expiry. */
  readonly ttl: number | null
  readonly tags: readonly string[]
  /** Write only if the current version equals this (`'*'`: only if the key exists). */
  readonly ifMatch?: number | '*'
}

export interface NodeEngineOptions {
  readonly store: Store
  readonly clock: Clock
  /** Bytes the in-process tier may hold. */
  readonly memoryBytes: number
  /** Largest value, for the codec's bound. */
  readonly maxValueBytes: number
  /** Timeout of one store operation, ms. */
  readonly storeTimeoutMs: number
  readonly replicator?: Replicator
}

/** Namespace of entries in the store; the version mark lives outside it, so `clear` keeps it. */
const NAMESPACE = 'node'
const VERSION_MARK_KEY = 'node#version'
const RECORD_OVERHEAD = 160
/** Distinct prefix clears remembered before they fold into one. */
const MAX_TOMBSTONES = 1024

function isRecord(value: unknown): value is NodeRecord {
  return typeof value === 'object' && value !== null && 'v' in value && 'n' in value && 'e' in value
}

/** Bytes an L1 item costs: the facade stores either the record or an envelope around it. */
function sizeOfItem(item: unknown): number {
  const record = isRecord(item) ? item : typeof item === 'object' && item !== null && 'value' in item && isRecord(item.value) ? item.value : undefined
  if (record === undefined) return RECORD_OVERHEAD
  let size = RECORD_OVERHEAD + record.v.byteLength
  for (const tag of record.t) size += 2 * tag.length + 16
  return size
}

export class NodeEngine {
  readonly #cache: Cache<NodeRecord>
  readonly #store: Store
  readonly #clock: Clock
  readonly #versions: HybridLogicalClock
  readonly #mutex = new KeyedMutex()
  readonly #replicator: Replicator
  /** Prefix clears: prefix → highest version handed out when it was cleared. */
  readonly #tombstones = new Map<string, number>()
  #closed = false

  private constructor(cache: Cache<NodeRecord>, options: NodeEngineOptions, versions: HybridLogicalClock) {
    this.#cache = cache
    this.#store = options.store
    this.#clock = options.clock
    this.#versions = versions
    this.#replicator = options.replicator ?? noReplication
  }

  static async open(options: NodeEngineOptions): Promise<NodeEngine> {
    const versions = await openNodeClock(options.store, VERSION_MARK_KEY, options.clock)
    const cache = new Cache<NodeRecord>({
      clock: options.clock,
      memory: { maxBytes: options.memoryBytes, sizeOf: sizeOfItem },
      store: options.store,
      namespace: NAMESPACE,
      // Values are opaque bytes, usually already compact: compressing them costs CPU per write.
      codec: { compression: false, maxValueBytes: options.maxValueBytes + 64 * 1024 },
      // A 2xx must mean "on disk": a store write that does not land fails the request
      // (507 ERR_STORE_FULL, 503 ERR_STORE_UNAVAILABLE / ERR_STORE_TIMEOUT) instead of being
      // queued for a replay that a crash would lose.
      // The node is its store's only writer (the data directory is locked), so L1 never needs
      // to go back to L2 to see another writer's change: no l1MaxAge cap.
      l2: { timeout: options.storeTimeoutMs, strictWrites: true, l1MaxAge: Infinity },
      maxKeyLength: 1 << 20,
      defaults: { strategy: 'none' },
    })
    return new NodeEngine(cache, options, versions)
  }

  /** The store's name (`lmdb`, `memory`, …). */
  get storeName(): string {
    return this.#store.name
  }

  /** The highest version handed out so far. */
  get lastVersion(): number {
    return this.#versions.current()
  }

  async get(key: string): Promise<EntryView | undefined> {
    const record = await this.#read(key)
    return record === undefined ? undefined : this.#view(record)
  }

  async getMany(keys: readonly string[]): Promise<(EntryView | undefined)[]> {
    return Promise.all(keys.map((key) => this.get(key)))
  }

  /** Writes one entry; resolves with its version and TTL. `ERR_PRECONDITION_FAILED` when `ifMatch` fails. */
  put(write: EngineWrite): Promise<{ version: number; ttl: number | null }> {
    return this.#mutex.run(write.key, async () => {
      if (write.ifMatch !== undefined) await this.#checkMatch(write.key, write.ifMatch)
      const version = await this.#versions.nextDurable()
      const now = this.#clock.now()
      const ttlMs = write.ttl === null ? Infinity : write.ttl * 1000
      const record: NodeRecord = { v: write.value, n: version, e: write.ttl === null ? 0 : now + ttlMs, t: write.tags }
      await this.#cache.set(write.key, record, { ttl: ttlMs, tags: write.tags.length === 0 ? undefined : [...write.tags] })
      this.#offer({ type: 'put', key: write.key, value: write.value, version, expiresAt: record.e === 0 ? null : record.e, tags: write.tags })
      return { version, ttl: write.ttl }
    })
  }

  /** Writes entries (each under its key's lock, in order for repeated keys); versions in order. */
  async putMany(writes: readonly EngineWrite[]): Promise<number[]> {
    const results = await Promise.all(writes.map((w) => this.put(w)))
    return results.map((r) => r.version)
  }

  /** Deletes `key`; true when a live entry was there. */
  delete(key: string, ifMatch?: number | '*'): Promise<boolean> {
    return this.#mutex.run(key, async () => {
      const current = await this.#read(key)
      if (ifMatch !== undefined) this.#match(key, current, ifMatch)
      if (current === undefined) {
        // Nothing live; still drop a dead copy the store may hold.
        await this.#cache.delete(key)
        return false
      }
      await this.#cache.delete(key)
      this.#offer({ type: 'delete', key })
      return true
    })
  }

  async invalidate(tags: readonly string[], mode: 'hard' | 'soft'): Promise<number> {
    await this.#cache.invalidateTags(tags, { mode })
    for (const tag of tags) this.#offer({ type: 'invalidate', tags: [tag], mode })
    return tags.length
  }

  /** Removes every entry (prefix `''`) or every entry whose key starts with `prefix`. */
  async clear(prefix = ''): Promise<void> {
    if (prefix === '') {
      await this.#cache.clear()
      this.#tombstones.clear()
    } else {
      const mark = this.#versions.current()
      this.#tombstones.set(prefix, Math.max(mark, this.#tombstones.get(prefix) ?? 0))
      if (this.#tombstones.size > MAX_TOMBSTONES) {
        const top = Math.max(...this.#tombstones.values())
        this.#tombstones.clear()
        this.#tombstones.set('', top)
      }
      await this.#store.clear(`${NAMESPACE}:${prefix}`)
    }
    this.#offer({ type: 'clear', key: prefix === '' ? undefined : prefix })
  }

  /**
   * Entries the node holds: counted in the store when it can count without I/O (LMDB: what
   * is on disk, so a restarted node reports its data, not its empty L1; an expired entry
   * counts until the store's sweep), else the in-process tier's size.
   */
  size(): number {
    const store = this.#store as Partial<CountingStore>
    return typeof store.count === 'function' ? store.count(`${NAMESPACE}:`) : this.#cache.stats().size
  }

  cacheStats(): ReturnType<Cache['stats']> {
    return this.#cache.stats()
  }

  /** The facade, for metrics registration. */
  get cache(): Cache<NodeRecord> {
    return this.#cache
  }

  /** Stops the tiers and closes the store (LMDB flushes on close). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#replicator.close()
    await this.#cache.close()
    await this.#store.close()
  }

  async #checkMatch(key: string, ifMatch: number | '*'): Promise<void> {
    this.#match(key, await this.#read(key), ifMatch)
  }

  /** The live record of `key`, with prefix clears applied (see the design note). */
  async #read(key: string): Promise<NodeRecord | undefined> {
    const record = await this.#cache.get(key)
    if (record === undefined || this.#tombstones.size === 0) return record
    let suspect = false
    for (const [prefix, mark] of this.#tombstones) {
      if (record.n <= mark && key.startsWith(prefix)) {
        suspect = true
        break
      }
    }
    if (!suspect || (await this.#store.get(`${NAMESPACE}:${key}`)) !== undefined) return record
    // Cleared: drop the L1 copy, unless a newer write replaced it meanwhile.
    await this.#mutex.run(key, async () => {
      const again = await this.#cache.peek(key)
      if (again !== undefined && again.n === record.n) await this.#cache.delete(key)
    })
    return undefined
  }

  #match(key: string, current: NodeRecord | undefined, ifMatch: number | '*'): void {
    if (current === undefined) throw new PreconditionFailedError(`If-Match ${ifMatch === '*' ? '*' : `"${ifMatch}"`}: key ${JSON.stringify(key.slice(0, 60))} has no live entry`)
    if (ifMatch !== '*' && current.n !== ifMatch) throw new PreconditionFailedError(`If-Match "${ifMatch}": the current version is "${current.n}"`)
  }

  #view(record: NodeRecord): EntryView {
    const ttl = record.e === 0 ? null : Math.max(1, Math.ceil((record.e - this.#clock.now()) / 1000))
    return { value: record.v, version: record.n, ttl, tags: record.t }
  }

  #offer(event: Parameters<Replicator['onWrite']>[0]): void {
    try {
      this.#replicator.onWrite(event)
    } catch {
      // A replicator must not throw; if it does, the local write still stands.
    }
  }
}
