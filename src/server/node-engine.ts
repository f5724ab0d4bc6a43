/**
 * The node's HTTP-facing engine: the API's operations (If-Match, TTL in seconds, replication
 * events) over the node's `Keyspace` (keyspace.ts: versioned records, tombstones, tags, over
 * an in-process `MemoryCache` and the node's store). Versions come from the node's hybrid
 * logical clock (node-clock.ts: high-water mark persisted in the store); the API's numeric
 * version (`ETag`) is the version's hlc, unique per node.
 *
 * Every write of a key runs under the keyspace's per-key lock, so `If-Match` checks, the
 * version draw and the write are atomic. An acknowledged write is in the store: a store
 * write that does not land (full, failed, timed out) fails the request with its typed
 * error and leaves the old value served.
 */
import type { Clock } from '../core/clock.js'
import type { Duration } from '../core/duration.js'
import { AckTimeoutError, BadRequestError, InvalidOptionsError, PreconditionFailedError } from '../core/errors.js'
import type { Store } from '../store/types.js'
import { decodeCursor, encodeCursor } from '../store/scan-options.js'
import type { HybridLogicalClock } from '../core/hlc.js'
import type { CacheStats } from '../cache/types.js'
import { Keyspace, type KeyspaceEntry } from './keyspace.js'
import { openNodeClock } from './node-clock.js'
import { noReplication, type Replicator } from './replicator.js'
import type { AckLevel, ClientOp, ClientResponse } from '../cluster/replication/messages.js'
import type { RequestOptions } from './replication-service.js'

/** How a clustered node's write is replicated (`?ack=`, the session token, the deadline). */
export interface WriteOptions {
  /** @default 'one' */
  readonly ack?: AckLevel
  /** Session token: the request is versioned after it. */
  readonly token?: number
  /** How long the write may wait for acks, ms. @default the replication machine's (2 s) */
  readonly deadlineMs?: number
  /** Called with the replicas known to hold the write when it is answered (clustered node only). */
  readonly onReplicas?: (replicas: number) => void
}

/** The clustered write path (server/replication-service.ts). */
export interface ReplicatedWrites {
  request(op: ClientOp, options?: RequestOptions): Promise<ClientResponse>
  /** The node's clock: the session token of every answer. */
  readonly clock: number
}

/** A store that counts its entries by prefix synchronously (`lmdbStore`). */
interface CountingStore extends Store {
  count(prefix: string): number
}

/** Store pages one `listKeys` call reads at most (each at most the page's remaining room). */
const LIST_SCAN_ROUNDS = 8

/** The state inside a `listKeys` cursor: the prefix and the keyspace's cursor. */
interface ListCursor {
  readonly p: string
  readonly k: string
}

function isListCursor(state: unknown): state is ListCursor {
  if (state === null || typeof state !== 'object') return false
  const { p, k } = state as Record<string, unknown>
  return typeof p === 'string' && typeof k === 'string' && k.startsWith('0:')
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
  /** Largest value (checked by the API before it reaches the engine). */
  readonly maxValueBytes: number
  /** Timeout of one store operation, ms. */
  readonly storeTimeoutMs: number
  readonly replicator?: Replicator
  /** The node id versions carry (tiebreak between nodes). @default 'node' */
  readonly nodeId?: string
  /** How long deletes and clears are remembered. @default '24h' */
  readonly tombstoneTtl?: Duration
}

const VERSION_MARK_KEY = 'node#version'
/** Where the keyspace counts live entries (keyspace.ts store layout). */
const LIVE_PREFIX = 'node:'

export class NodeEngine {
  readonly #keyspace: Keyspace
  readonly #store: Store
  readonly #clock: Clock
  readonly #versions: HybridLogicalClock
  readonly #replicator: Replicator
  #replicated: ReplicatedWrites | undefined
  #closed = false

  private constructor(keyspace: Keyspace, options: NodeEngineOptions, versions: HybridLogicalClock) {
    this.#keyspace = keyspace
    this.#store = options.store
    this.#clock = options.clock
    this.#versions = versions
    this.#replicator = options.replicator ?? noReplication
  }

  static async open(options: NodeEngineOptions): Promise<NodeEngine> {
    const versions = await openNodeClock(options.store, VERSION_MARK_KEY, options.clock)
    const keyspace = await Keyspace.open({
      store: options.store,
      clock: options.clock,
      hlc: versions,
      nodeId: options.nodeId ?? 'node',
      memoryBytes: options.memoryBytes,
      storeTimeoutMs: options.storeTimeoutMs,
      tombstoneTtl: options.tombstoneTtl,
    })
    return new NodeEngine(keyspace, options, versions)
  }

  /** The store's name (`lmdb`, `memory`, …). */
  get storeName(): string {
    return this.#store.name
  }

  /** The highest version handed out or applied so far. */
  get lastVersion(): number {
    return this.#versions.current()
  }

  /**
   * Routes every write through replication (a clustered node; decision 0217): the machine
   * versions it, commits it here, fans it out and answers at the write's ack level.
   * `undefined` restores local writes (a lone node).
   */
  setReplication(replicated: ReplicatedWrites | undefined): void {
    this.#replicated = replicated
  }

  /** The session token answers carry: the replication clock of a clustered node, else undefined (a lone node sends none). */
  get sessionToken(): number | undefined {
    return this.#replicated?.clock
  }

  /** The keyspace, for replication and tests. */
  get keyspace(): Keyspace {
    return this.#keyspace
  }

  async get(key: string): Promise<EntryView | undefined> {
    const record = await this.#keyspace.get(key)
    return record === undefined ? undefined : this.#view(record)
  }

  /**
   * The entry of `key` when the in-process tier holds it live (a hit, counted), else
   * `undefined` with nothing counted: then `get` decides. Synchronous.
   */
  getHeld(key: string): EntryView | undefined {
    const record = this.#keyspace.getHeld(key)
    return record === undefined ? undefined : this.#view(record)
  }

  async getMany(keys: readonly string[]): Promise<(EntryView | undefined)[]> {
    return Promise.all(keys.map((key) => this.get(key)))
  }

  /** Writes one entry; resolves with its version and TTL. `ERR_PRECONDITION_FAILED` when `ifMatch` fails. */
  async put(write: EngineWrite, options: WriteOptions = {}): Promise<{ version: number; ttl: number | null }> {
    const replicated = this.#replicated
    if (replicated !== undefined) {
      let ifVersion: number | undefined
      if (write.ifMatch === '*') {
        if ((await this.#keyspace.get(write.key)) === undefined) this.#match(write.key, undefined, '*')
      } else ifVersion = write.ifMatch
      const res = await replicated.request(
        { op: 'put', key: write.key, value: Buffer.from(write.value).toString('base64'), tags: write.tags, ...(write.ttl === null ? {} : { ttlMs: write.ttl * 1000 }), ...(ifVersion === undefined ? {} : { ifVersion }) },
        options,
      )
      options.onReplicas?.(res.applied ?? 1)
      return { version: res.version!.hlc, ttl: write.ttl }
    }
    const record = (await this.#keyspace.update(write.key, (current, version) => {
      if (write.ifMatch !== undefined) this.#match(write.key, current, write.ifMatch)
      const expiresAt = write.ttl === null ? 0 : this.#clock.now() + write.ttl * 1000
      return { key: write.key, value: write.value, expiresAt, tags: write.tags, version }
    })) as KeyspaceEntry
    const version = record.version.hlc
    this.#offer({ type: 'put', key: write.key, value: write.value, version, expiresAt: record.expiresAt === 0 ? null : record.expiresAt, tags: write.tags })
    return { version, ttl: write.ttl }
  }

  /**
   * Writes entries (each under its key's lock, in order for repeated keys); versions in order.
   * Each entry is its own write at `options.ack`; the batch is answered once every entry is.
   * `onReplicas` gets the fewest replicas any entry reached. When entries miss their ack
   * level (and nothing else failed) this rejects with one `ERR_ACK_TIMEOUT` carrying that
   * fewest count: every entry is committed and converges, as for a single write.
   */
  async putMany(writes: readonly EngineWrite[], options: WriteOptions = {}): Promise<number[]> {
    let fewest = Infinity
    const each: WriteOptions = { ...options, onReplicas: (n) => (fewest = Math.min(fewest, n)) }
    const settled = await Promise.allSettled(writes.map((w) => this.put(w, each)))
    let ackMiss: AckTimeoutError | undefined
    const versions: number[] = []
    for (const r of settled) {
      if (r.status === 'fulfilled') versions.push(r.value.version)
      else if (r.reason instanceof AckTimeoutError) {
        fewest = Math.min(fewest, r.reason.applied)
        ackMiss ??= r.reason
      } else throw r.reason
    }
    if (ackMiss !== undefined) throw new AckTimeoutError(fewest, ackMiss.required, ackMiss.level)
    if (fewest !== Infinity) options.onReplicas?.(fewest)
    return versions
  }

  /** Deletes `key` (a tombstone); true when a live entry was there. */
  async delete(key: string, ifMatch?: number | '*', options: WriteOptions = {}): Promise<boolean> {
    const replicated = this.#replicated
    if (replicated !== undefined) {
      // Whether a live entry was there is read first (the answer's `deleted`; not atomic with the write in a cluster).
      const existed = (await this.#keyspace.get(key)) !== undefined
      if (ifMatch === '*' && !existed) this.#match(key, undefined, '*')
      const res = await replicated.request({ op: 'del', key, ...(typeof ifMatch === 'number' ? { ifVersion: ifMatch } : {}) }, options)
      options.onReplicas?.(res.applied ?? 1)
      return existed
    }
    let existed = false
    const tombstone = await this.#keyspace.update(key, (current, version) => {
      if (ifMatch !== undefined) this.#match(key, current, ifMatch)
      existed = current !== undefined
      return { key, version, deleted: true }
    })
    if (existed) this.#offer({ type: 'delete', key, version: tombstone?.version.hlc })
    return existed
  }

  async invalidate(tags: readonly string[], mode: 'hard' | 'soft', options: WriteOptions = {}): Promise<number> {
    const replicated = this.#replicated
    if (replicated !== undefined && tags.length > 0) {
      const res = await replicated.request({ op: 'inv', tags, mode }, options)
      options.onReplicas?.(res.applied ?? 1)
      return tags.length
    }
    const version = await this.#keyspace.invalidate(tags, mode)
    for (const tag of tags) this.#offer({ type: 'invalidate', tags: [tag], mode, version })
    return tags.length
  }

  /** Removes every entry (prefix `''`) or every entry whose key starts with `prefix` (a prefix tombstone). */
  async clear(prefix = '', options: WriteOptions = {}): Promise<void> {
    const replicated = this.#replicated
    if (replicated !== undefined) {
      const res = await replicated.request({ op: 'clear', prefix }, options)
      options.onReplicas?.(res.applied ?? 1)
      return
    }
    const version = await this.#versions.nextDurable()
    await this.#keyspace.clear(prefix, { hlc: version, nodeId: this.#keyspace.nodeId })
    this.#offer({ type: 'clear', key: prefix === '' ? undefined : prefix, version })
  }

  /**
   * One page of the live keys under `prefix` (what a GET would serve: no tombstones, no
   * expired or tag-invalidated entries), at most `limit` of them, in the store's order (key
   * order on memory and LMDB), and the opaque cursor of the next page (`undefined` when the
   * listing is done). Built on `Keyspace.scan` (live records only, filtered by
   * `Keyspace.serves`); one call reads at most `LIST_SCAN_ROUNDS` store pages, so a page may
   * be short, even empty, while a cursor is returned. The cursor carries the prefix and the
   * keyspace's own cursor; a cursor not handed out for this prefix is `ERR_BAD_REQUEST`.
   * Guarantees: `Store.scan`'s (decision 0131) — every key live for the whole listing is
   * returned at least once; keys written or deleted meanwhile may or may not be.
   */
  async listKeys(prefix: string, cursor: string | undefined, limit: number): Promise<{ keys: string[]; cursor: string | undefined }> {
    let inner: string | undefined
    if (cursor !== undefined) {
      let state: ListCursor
      try {
        state = decodeCursor(cursor, isListCursor, 'node')
      } catch {
        throw new BadRequestError('"cursor" is not a cursor this node handed out (pass the "cursor" of the previous page unchanged)')
      }
      if (state.p !== prefix) throw new BadRequestError('"cursor" belongs to a listing of another prefix (keep the prefix of the first page)')
      inner = state.k
    }
    const keys: string[] = []
    for (let round = 0; round < LIST_SCAN_ROUNDS && keys.length < limit; round++) {
      let page
      try {
        page = await this.#keyspace.scan({ prefix, cursor: inner, limit: limit - keys.length })
      } catch (err) {
        if (err instanceof InvalidOptionsError && /cursor/.test(err.option) && inner !== undefined) throw new BadRequestError('"cursor" is not a cursor this node handed out', { cause: err })
        throw err
      }
      for (const record of page.records) if (record.deleted !== true && this.#keyspace.serves(record)) keys.push(record.key)
      // The keyspace walks live records (cursor '0:…'), then tombstones ('1'): the listing ends with the live walk.
      inner = page.cursor === undefined || !page.cursor.startsWith('0:') ? undefined : page.cursor
      if (inner === undefined) break
    }
    return { keys, cursor: inner === undefined ? undefined : encodeCursor({ p: prefix, k: inner } satisfies ListCursor) }
  }

  /**
   * Entries the node holds: counted in the store when it can count without I/O (LMDB: what
   * is on disk, so a restarted node reports its data, not its empty L1; an expired entry
   * counts until the store's sweep), else the live records in the in-process tier.
   */
  size(): number {
    const store = this.#store as Partial<CountingStore>
    return typeof store.count === 'function' ? store.count(LIVE_PREFIX) : this.#keyspace.memoryCount((r) => r.deleted !== true)
  }

  /** Counters in the facade's `CacheStats` shape, so the node's metrics keep their names. */
  stats(): CacheStats {
    const k = this.#keyspace.stats()
    return {
      size: k.memoryEntries,
      hits: k.hits,
      misses: k.misses,
      staleHits: 0,
      factoryCalls: 0,
      factoryErrors: 0,
      factoryTimeouts: 0,
      refreshes: 0,
      flightJoins: 0,
      tagInvalidations: k.tagInvalidations,
      tagNodes: k.tagNodes,
      evictions: k.evictions,
      origins: undefined,
      l2: undefined,
    }
  }

  cacheStats(): CacheStats {
    return this.stats()
  }

  /** Stops replication and the keyspace, and closes the store (LMDB flushes on close). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#replicator.close()
    await this.#keyspace.close()
    await this.#store.close()
  }

  #match(key: string, current: KeyspaceEntry | undefined, ifMatch: number | '*'): void {
    if (current === undefined) throw new PreconditionFailedError(`If-Match ${ifMatch === '*' ? '*' : `"${ifMatch}"`}: key ${JSON.stringify(key.slice(0, 60))} has no live entry`)
    if (ifMatch !== '*' && current.version.hlc !== ifMatch) throw new PreconditionFailedError(`If-Match "${ifMatch}": the current version is "${current.version.hlc}"`)
  }

  #view(record: KeyspaceEntry): EntryView {
    const ttl = record.expiresAt === 0 ? null : Math.max(1, Math.ceil((record.expiresAt - this.#clock.now()) / 1000))
    return { value: record.value, version: record.version.hlc, ttl, tags: record.tags }
  }

  #offer(event: Parameters<Replicator['onWrite']>[0]): void {
    try {
      this.#replicator.onWrite(event)
    } catch {
      // A replicator must not throw; if it does, the local write still stands.
    }
  }
}
