/**
 * The node's keyspace: versioned records over an in-process `MemoryCache` (L1, bounded by
 * bytes) and a `Store` (the node's LMDB store), with last-writer-wins by version and
 * tombstones. It is what the HTTP API reads and writes today and what replication (P9)
 * will call: `applyIfNewer` is the one write path, local writes draw a version and go
 * through it too.
 *
 * Data model. A record is `{ key, value, expiresAt, tags, version }`, `version =
 * (hlc, nodeId)` (core/hlc.ts, ordered by `compareVersions`). A deleted key is a
 * **tombstone** `{ key, version, deleted }`; a cleared prefix is a **prefix tombstone**
 * `(prefix, version)` that covers every key under it with an older version. Tombstones are
 * kept for `tombstoneTtl` (default 24 h) after the physical time of their version, the
 * same instant on every replica.
 *
 * Invariants.
 * - LWW: a key's state (record or tombstone) only ever moves to a greater version; an
 *   `applyIfNewer` with a version <= the key's current one, or <= a live prefix tombstone
 *   covering the key, changes nothing and returns false. Applying the same operations in
 *   any order, with duplicates, gives the same state (the property test pins it).
 * - No resurrection within the grace: while a tombstone (or prefix tombstone) is kept, no
 *   write older than it is applied; past the grace a late older write may apply.
 * - Every applied version is observed by the node's hybrid clock, so every local write
 *   afterwards is newer than everything the keyspace holds.
 * - An applied write is in the store before it is acknowledged or visible in L1; a store
 *   write that fails changes nothing (its typed error is thrown).
 * - Group commit (decision 0241): writes of one key that queue behind the key's commit are
 *   decided one by one in arrival order and stored as one write of the group's final state;
 *   each is acknowledged after it, so an acknowledged write is in the store or superseded
 *   there by a newer version of its key. Distinct keys' writes share LMDB's batched commits.
 * - Expiry is not deletion: an expired record simply stops being served (its store entry
 *   expires at `expiresAt`). A record applied already expired is kept as a tombstone of
 *   its version, so replicas still agree on the key.
 *
 * Shared stores (decision 0263). On a store with conditional writes (`Store.conditional`:
 * etcd), several nodes share one keyspace: every group commit reads the key's record and
 * tombstone with their revisions and writes its final state in one transaction conditioned
 * on both (compare-and-swap; on conflict the whole group is decided again on the fresh
 * state, up to CAS_ATTEMPTS times). A drawn version is above the stored one (the read is
 * observed by the clock first), so a key's versions grow in the store's commit order, and
 * `update`'s check (If-Match) is atomic across nodes. The in-process tier is bypassed
 * (every read is one store read at the store's consistency) and the store's change stream
 * publishes: other nodes' record changes, clears and tag invalidations go to `watch`
 * listeners (prefix tombstones and tag versions are applied too); a lost stream sends them
 * a clear of '' at the loss and again once resynced. A tagged record's read also reads its
 * tags' invalidation versions from the store, so tag invalidations are honoured
 * linearizably, whatever the stream has delivered.
 *
 * Store layout (one byte store, string keys): `node:<key>` live records (so
 * `count('node:')` is the number of entries), `tomb:<key>` key tombstones, `ptomb:<prefix>`
 * prefix tombstones, `tag:<mode>:<tag>` tag invalidation versions (max-merged). A record
 * and its key's tombstone may both exist after a crash between the two writes: the newer
 * one wins on read. Encoding: see `encode` (binary, versioned by its kind byte).
 *
 * Tags: the semantics of the library's tag trie (tags/tag-trie.ts): invalidating T hides
 * every record with a tag at or below T whose version is older than the invalidation
 * (hard or soft alike: the node serves no stale data). Invalidation versions are persisted
 * and merged by max, so an invalidation survives a restart.
 *
 * Digest (for Merkle anti-entropy in P9). Each key has a 32-bit position `keyHash(key)`
 * (FNV-1a of its UTF-16 code units); `hashRange` selects keys by position. Each record and
 * tombstone contributes `recordHash(key, version)`: a 64-bit FNV-1a of key, hlc and node id,
 * kept as two 32-bit halves; a range's digest is the XOR of its members' hashes. XOR makes
 * it incremental (apply: XOR the old state out and the new in) and order-free. The keyspace
 * keeps one accumulator per bucket of `2^32 / DIGEST_BUCKETS` positions, so `digest` of a
 * bucket-aligned range costs O(buckets); they are rebuilt by a scan at open. Records that
 * expire in the store stay in the digest until a restart rebuilds it
 * (known limitation, for P9 to account). Prefix tombstones are not in the digest (few;
 * exchanged whole). Not cryptographic: it detects divergence, it does not authenticate.
 */
import { keyHash, recordHash } from '../cluster/replication/digest.js'
import { PrefixTombstones } from '../cluster/replication/prefix-tombstones.js'
import { KeyFilter } from './key-filter.js'
import type { Clock } from '../core/clock.js'
import { CacheError, InvalidOptionsError, StoreUnavailableError } from '../core/errors.js'
import { raceStoreTimeout } from '../core/store-timeout.js'
import { compareVersions, type HybridLogicalClock, msOfVersion, type Version } from '../core/hlc.js'
import { toMs, type Duration } from '../core/duration.js'
import { MemoryCache } from '../memory/memory-cache.js'
import type { ConditionalWrites, Store, StoreChange } from '../store/types.js'
import { TagTrie } from '../tags/tag-trie.js'
import type { TagSnapshot } from '../tags/tag-snapshot.js'
import type { TagMode } from '../tags/tag-trie.js'
import { KeyedMutex } from './keyed-mutex.js'

/** A live record. `expiresAt`: absolute ms since the epoch, 0 for none. */
export interface KeyspaceEntry {
  readonly key: string
  readonly value: Uint8Array
  readonly expiresAt: number
  readonly tags: readonly string[]
  readonly version: Version
  readonly deleted?: false
}

/** A deleted key. */
export interface KeyspaceTombstone {
  readonly key: string
  readonly version: Version
  readonly deleted: true
}

export type KeyspaceRecord = KeyspaceEntry | KeyspaceTombstone

/** A cleared prefix ('' = every key). */
export interface PrefixTombstone {
  readonly prefix: string
  readonly version: Version
}

/** Positions `[start, end)` in the 32-bit key-hash space (`keyHash`). */
export interface HashRange {
  readonly start: number
  readonly end: number
}

export interface KeyspaceScanOptions {
  readonly prefix?: string
  readonly hashRange?: HashRange
  readonly cursor?: string
  /** 1..10,000. @default 100 */
  readonly limit?: number
}

export interface KeyspaceScanPage {
  /** Records and tombstones (a page may be short or empty while `cursor` is set). */
  readonly records: readonly KeyspaceRecord[]
  readonly cursor: string | undefined
}

/** A range's digest: XOR of its records' 64-bit hashes, as 16 hex digits. */
export type Digest = string

export interface KeyspaceOptions {
  readonly store: Store
  readonly clock: Clock
  /** The node's hybrid clock (durable high-water mark). */
  readonly hlc: HybridLogicalClock
  readonly nodeId: string
  /** Bytes the in-process tier may hold. @default 64 MiB */
  readonly memoryBytes?: number
  /** How long tombstones are kept after their version's time. @default '24h' */
  readonly tombstoneTtl?: Duration
  /** Timeout of one store operation, ms. @default Infinity */
  readonly storeTimeoutMs?: number
}

export interface KeyspaceStats {
  readonly hits: number
  readonly misses: number
  readonly tagInvalidations: number
  readonly tagNodes: number
  /** Records and tombstones held in L1. */
  readonly memoryEntries: number
  readonly prefixTombstones: number
  readonly evictions: { readonly expire: number; readonly evict: number; readonly erase: number; readonly flush: number }
}

export const DIGEST_BUCKETS = 1024
const BUCKET_SPAN = 2 ** 32 / DIGEST_BUCKETS
const LIVE = 'node:'
const TOMB = 'tomb:'
const PTOMB = 'ptomb:'
const TAG = 'tag:'
const KIND_LIVE = 1
const KIND_TOMB = 2
const RECORD_OVERHEAD = 160
const MAX_SCAN_LIMIT = 10_000
/** Conflicts a group commit on a shared store retries before it fails with ERR_STORE_UNAVAILABLE. */
const CAS_ATTEMPTS = 64
/** Keys per conditional delete of a clear on a shared store (2 store keys each, compared and deleted: 64 operations). */
const CAS_CLEAR_CHUNK = 16
/** Entries of a shared store's own-echo maps before they are emptied. */
const OWN_LIMIT = 10_000

// keyHash (a key's 32-bit position) and recordHash (a record's digest contribution) are
// replication's (cluster/replication/digest.ts): one definition, so the keyspace's bucket
// digests and the replication machine's Merkle tree agree by construction.
export { keyHash, recordHash }

/** What L1 holds per key: the record, plus the tag snapshot of a live one. */
interface Held {
  readonly record: KeyspaceRecord
  readonly snapshot: TagSnapshot | undefined
}

const enc = new TextEncoder()
const dec = new TextDecoder()

/** The last node id encoded and its UTF-8 bytes (a node's own writes repeat its id; `encode` copies them). */
let lastNodeId = ''
let lastNodeBytes = new Uint8Array(0)

function nodeIdBytes(nodeId: string): Uint8Array {
  if (nodeId !== lastNodeId) {
    lastNodeBytes = enc.encode(nodeId)
    lastNodeId = nodeId
  }
  return lastNodeBytes
}

/**
 * kind u8 | hlc f64 | expiresAt f64 | nodeId (u16 len + utf8) | tag count u16 | tags (u16 len + utf8)* | value.
 * The bytes are a slice of Node's buffer pool when small (every byte is written below): a
 * write's encoding is garbage once the store has it, and a pooled slice costs no
 * ArrayBuffer of its own to allocate and collect (decision 0320).
 */
function encode(record: KeyspaceRecord): Uint8Array {
  const node = nodeIdBytes(record.version.nodeId)
  const tags = record.deleted === true ? [] : record.tags.map((t) => enc.encode(t))
  const value = record.deleted === true ? new Uint8Array(0) : record.value
  let size = 1 + 8 + 8 + 2 + node.length + 2 + value.byteLength
  for (const t of tags) size += 2 + t.length
  const out = Buffer.allocUnsafe(size)
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  out[0] = record.deleted === true ? KIND_TOMB : KIND_LIVE
  view.setFloat64(1, record.version.hlc)
  view.setFloat64(9, record.deleted === true ? 0 : record.expiresAt)
  let at = 17
  view.setUint16(at, node.length)
  out.set(node, at + 2)
  at += 2 + node.length
  view.setUint16(at, tags.length)
  at += 2
  for (const t of tags) {
    view.setUint16(at, t.length)
    out.set(t, at + 2)
    at += 2 + t.length
  }
  out.set(value, at)
  return out
}

/** The record stored under `key`, or undefined for bytes in another format (a pre-keyspace record). */
function decode(key: string, bytes: Uint8Array): KeyspaceRecord | undefined {
  if (bytes.byteLength < 21 || (bytes[0] !== KIND_LIVE && bytes[0] !== KIND_TOMB)) return undefined
  try {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const hlc = view.getFloat64(1)
    const expiresAt = view.getFloat64(9)
    let at = 17
    const nodeLength = view.getUint16(at)
    const nodeId = dec.decode(bytes.subarray(at + 2, at + 2 + nodeLength))
    at += 2 + nodeLength
    const count = view.getUint16(at)
    at += 2
    const tags: string[] = []
    for (let i = 0; i < count; i++) {
      const n = view.getUint16(at)
      tags.push(dec.decode(bytes.subarray(at + 2, at + 2 + n)))
      at += 2 + n
    }
    if (at > bytes.byteLength || !Number.isSafeInteger(hlc)) return undefined
    const version = { hlc, nodeId }
    if (bytes[0] === KIND_TOMB) return { key, version, deleted: true }
    return { key, value: bytes.slice(at), expiresAt, tags, version }
  } catch {
    return undefined
  }
}

function sizeOfHeld(held: Held): number {
  const r = held.record
  if (r.deleted === true) return RECORD_OVERHEAD
  let size = RECORD_OVERHEAD + r.value.byteLength
  for (const tag of r.tags) size += 2 * tag.length + 16
  return size
}

/** A local write: sees the key's current live entry and a fresh version, returns the record (or throws). */
type Maker = (current: KeyspaceEntry | undefined, version: Version) => KeyspaceRecord | undefined

/** A write waiting in its key's group: a local `make` or a replicated `record`. */
interface PendingWrite {
  readonly make: Maker | undefined
  readonly record: KeyspaceRecord | undefined
  readonly resolve: (value: unknown) => void
  readonly reject: (err: unknown) => void
}

function checkVersion(version: unknown): asserts version is Version {
  const v = version as Version | null
  if (v === null || typeof v !== 'object' || !Number.isSafeInteger(v.hlc) || v.hlc < 0 || typeof v.nodeId !== 'string') {
    throw new InvalidOptionsError('version', 'expected { hlc: safe integer >= 0, nodeId: string }')
  }
}

/** One change applied to the keyspace, as `watch` listeners see it (after it is visible to reads). */
export type KeyspaceChange =
  | { readonly kind: 'key'; readonly key: string }
  | { readonly kind: 'clear'; readonly prefix: string }
  | { readonly kind: 'tags'; readonly tags: readonly string[] }

export class Keyspace {
  readonly #store: Store
  readonly #clock: Clock
  readonly #hlc: HybridLogicalClock
  readonly #nodeId: string
  readonly #tombstoneTtl: number
  readonly #timeoutMs: number
  readonly #memory: MemoryCache<string, Held>
  readonly #tags: TagTrie
  readonly #mutex = new KeyedMutex()
  /** Writes waiting for their key's next group (group commit), by key. */
  readonly #queues = new Map<string, PendingWrite[]>()
  /** Live prefix tombstones by prefix. */
  readonly #prefixes = new PrefixTombstones()
  /** Store writes under way (a clear waits for them before it walks the store). */
  readonly #inflight = new Set<Promise<unknown>>()
  readonly #digestA = new Uint32Array(DIGEST_BUCKETS)
  readonly #digestB = new Uint32Array(DIGEST_BUCKETS)
  /** Listeners of applied changes (`watch`). */
  readonly #watchers = new Set<(change: KeyspaceChange) => void>()
  #hits = 0
  /** Clears under way. */
  #clearing = 0
  #clearFailed = false
  #misses = 0
  #tagInvalidations = 0
  /** The store's conditional writes: set on a shared store (etcd), where L1 is bypassed. */
  readonly #cas: ConditionalWrites | undefined
  /**
   * Keys whose record or tombstone the store may hold (loaded at open, added by every write;
   * not on a shared store): a write to a key the filter has never seen skips the store
   * read of its state (decision 0321). Reads still ask the store.
   */
  readonly #stored: KeyFilter | undefined
  /** The shared store's change stream. */
  #storeWatch: { readonly ready: Promise<void>; close(): Promise<void> } | undefined
  #opened = false
  #closed = false
  /**
   * This node's last committed version per record key (and per `tag:` store key) on a
   * shared store, to skip its own echo from the stream. An echo that overtakes its commit's
   * answer is published twice (harmless); the maps are emptied past OWN_LIMIT entries.
   */
  readonly #ownWrites = new Map<string, number>()
  readonly #ownTags = new Map<string, number>()

  private constructor(options: KeyspaceOptions) {
    this.#store = options.store
    this.#clock = options.clock
    this.#hlc = options.hlc
    this.#nodeId = options.nodeId
    const ttl = toMs(options.tombstoneTtl ?? '24h', 'tombstoneTtl')
    if (!(ttl > 0)) throw new InvalidOptionsError('tombstoneTtl', 'expected a duration > 0')
    this.#tombstoneTtl = ttl
    this.#timeoutMs = options.storeTimeoutMs ?? Infinity
    this.#memory = new MemoryCache<string, Held>({ clock: options.clock, maxBytes: options.memoryBytes ?? 64 * 1024 * 1024, sizeOf: sizeOfHeld })
    this.#tags = new TagTrie({ clock: options.clock, maxDrift: Infinity })
    this.#cas = options.store.conditional
    this.#stored = this.#cas === undefined ? new KeyFilter() : undefined
  }

  /** Opens the keyspace: loads prefix tombstones and tag invalidations, rebuilds the digest. */
  static async open(options: KeyspaceOptions): Promise<Keyspace> {
    if (typeof options.nodeId !== 'string') throw new InvalidOptionsError('nodeId', 'expected a string')
    const ks = new Keyspace(options)
    const cas = ks.#cas
    try {
      // Watching before loading: nothing changed by another node between the two is missed.
      if (cas !== undefined) ks.#storeWatch = cas.watch((change) => ks.#onStoreChange(change))
      await ks.#load()
      if (ks.#storeWatch !== undefined) await ks.#io('watch', ks.#storeWatch.ready)
    } catch (err) {
      await ks.#storeWatch?.close()
      throw err
    }
    ks.#opened = true
    return ks
  }

  get nodeId(): string {
    return this.#nodeId
  }

  /** The live record of `key` (unexpired, not deleted, not tag-invalidated). */
  async get(key: string): Promise<KeyspaceEntry | undefined> {
    const held = await this.#current(key)
    const r = held?.record
    // Outside a clear no held record is covered by a prefix tombstone (the clear removed the
    // older ones, `applyIfNewer` refuses them, `open` drops a crashed clear's leftovers): the
    // read skips the walk over the prefixes, unless a clear failed midway.
    if (r === undefined || r.deleted === true || this.#expired(r) || ((this.#clearing > 0 || this.#clearFailed) && this.#covered(key, r.version)) || (held!.snapshot !== undefined && this.#tags.check(held!.snapshot) !== 'valid')) {
      this.#misses++
      return undefined
    }
    this.#hits++
    return r
  }

  /**
   * The live record of `key` when the in-process tier holds it live, counted as a hit;
   * otherwise `undefined` and nothing counted (the caller then asks `get`, which reads the
   * store and counts). Synchronous: the node answers GET hits with it without a promise.
   */
  getHeld(key: string): KeyspaceEntry | undefined {
    if (this.#cas !== undefined) return undefined
    const held = this.#memory.get(key)
    if (held === undefined) return undefined
    const r = held.record
    if (r.deleted === true || this.#expired(r) || ((this.#clearing > 0 || this.#clearFailed) && this.#covered(key, r.version)) || (held.snapshot !== undefined && this.#tags.check(held.snapshot) !== 'valid')) return undefined
    this.#hits++
    return r
  }

  /**
   * Whether a read would serve `record` now: the key's newer state held in the in-process
   * tier when there is one, else `record`, must be live, unexpired, not covered by a clear
   * in progress and have valid tags (what `get` checks). Loads nothing, counts nothing:
   * listings (`GET /v1/keys`) filter `scan` pages with it.
   */
  serves(record: KeyspaceRecord): boolean {
    const held = this.#memory.peek(record.key)
    const newer = held !== undefined && compareVersions(held.record.version, record.version) >= 0
    const state = newer ? held.record : record
    const snapshot = newer ? held.snapshot : state.deleted === true || state.tags.length === 0 ? undefined : this.#tags.snapshot(state.tags, state.version.hlc)
    return this.#liveOf(state.key, state, snapshot) !== undefined
  }

  /** The key's current state, tombstone included (expired records too: replication compares versions). */
  async getRecord(key: string): Promise<KeyspaceRecord | undefined> {
    return (await this.#current(key))?.record
  }

  /**
   * Applies `record` (a write or a tombstone) if its version is newer than the key's state
   * and than every live prefix tombstone covering the key. Returns whether it applied.
   * The version is observed by the node's clock (refused when too far ahead: ERR_CLOCK_DRIFT).
   */
  async applyIfNewer(record: KeyspaceRecord): Promise<boolean> {
    checkVersion(record.version)
    if (typeof record.key !== 'string') throw new InvalidOptionsError('key', 'expected a string')
    return this.#enqueue<boolean>(record.key, { record })
  }

  /**
   * Applies `make(current)` under the key's lock: `make` sees the key's current live entry
   * (or undefined) and returns the record to apply, or throws (an `If-Match` check). Used
   * for local writes so the check, the version draw and the write are atomic.
   */
  update(key: string, make: (current: KeyspaceEntry | undefined, version: Version) => KeyspaceRecord | undefined): Promise<KeyspaceRecord | undefined> {
    return this.#enqueue<KeyspaceRecord | undefined>(key, { make })
  }

  /** Deletes `key` locally with a new version; resolves with the tombstone. */
  async delete(key: string): Promise<KeyspaceTombstone> {
    return (await this.update(key, (_current, version) => ({ key, version, deleted: true }))) as KeyspaceTombstone
  }

  /**
   * Clears every key under `prefix` ('' = all) older than `version` (default: a new local
   * version), leaving a prefix tombstone for the grace. Returns whether it changed anything
   * (false: a newer prefix tombstone already covers it, or its grace is over).
   */
  async clear(prefix: string, version?: Version): Promise<boolean> {
    if (typeof prefix !== 'string') throw new InvalidOptionsError('prefix', 'expected a string')
    const v = version ?? { hlc: await this.#hlc.nextDurable(), nodeId: this.#nodeId }
    checkVersion(v)
    if (version !== undefined) this.#hlc.observe(v.hlc)
    if (this.#graceOver(v)) return false
    if (this.#prefixes.covers(prefix, v, -Infinity)) return false
    this.#clearing++
    let finished = false
    try {
      const changed = await this.#clearRange(prefix, v)
      finished = true
      return changed
    } finally {
      this.#clearing--
      // Registered at its start, the clear hides older records from then on, even if it failed midway.
      this.#emit({ kind: 'clear', prefix })
      // A clear that failed midway leaves older records in the store: reads check the
      // prefix tombstones from now on (a restart finishes the clear, see #load).
      if (!finished) this.#clearFailed = true
    }
  }

  async #clearRange(prefix: string, v: Version): Promise<boolean> {
    // Registered first (synchronously): every write checks it under its key's lock, before
    // and after its store write, so none older lands once this line has run.
    this.#prefixes.set(prefix, v)
    const folded: string[] = []
    for (const [p, pv] of this.#prefixes.under(prefix)) {
      if (compareVersions(pv, v) < 0) {
        this.#prefixes.delete(p)
        folded.push(p)
      }
    }
    await this.#io('set', this.#store.set(PTOMB + prefix, encode({ key: prefix, version: v, deleted: true }), this.#graceLeft(v)))
    // A write that passed its check before the registration may not be in the store yet:
    // the walk below must see it.
    await Promise.allSettled([...this.#inflight])
    for (const space of [LIVE, TOMB]) {
      let cursor: string | undefined
      do {
        const page = await this.#scanStore(space + prefix, cursor, 1000)
        cursor = page.cursor
        await this.#clearPage(page.keys.map((storeKey) => storeKey.slice(space.length)), v)
      } while (cursor !== undefined)
    }
    for (const p of folded) await this.#io('delete', this.#store.delete(PTOMB + p))
    return true
  }

  /**
   * Calls `listener` synchronously with every change applied from now on (local writes and
   * replicated ones alike: every path goes through `#apply`, `clear` or `invalidate`), once
   * the change is visible to reads. A listener must be cheap and must not throw (a throw is
   * swallowed). Returns the function that stops the calls.
   */
  watch(listener: (change: KeyspaceChange) => void): () => void {
    this.#watchers.add(listener)
    return () => this.#watchers.delete(listener)
  }

  #emit(change: KeyspaceChange): void {
    for (const w of this.#watchers) {
      try {
        w(change)
      } catch {
        // A listener must not throw; the write stands either way.
      }
    }
  }

  /** Live prefix tombstones. */
  prefixTombstones(): PrefixTombstone[] {
    this.#dropExpiredPrefixes()
    return [...this.#prefixes].map(([prefix, version]) => ({ prefix, version }))
  }

  /**
   * Invalidates `tags` (and every tag below each) for records older than `version`
   * (default: a new local version). Versions merge by max; persisted. Returns the version.
   */
  async invalidate(tags: readonly string[], mode: TagMode, version?: number): Promise<number> {
    for (const tag of tags) this.#tags.validate(tag)
    const v = version ?? (await this.#hlc.nextDurable())
    if (version !== undefined) this.#hlc.observe(version)
    for (const tag of tags) {
      const key = `${TAG}${mode}:${tag}`
      // Read-max-write under a lock of its own (a record key spelled the same only shares it).
      await this.#mutex.run(`\u0000${key}`, async () => {
        const old = await this.#io('get', this.#store.get(key))
        const before = old === undefined ? 0 : Number(dec.decode(old))
        if (!(before >= v)) {
          await this.#io('set', this.#store.set(key, enc.encode(String(v)), Infinity))
          if (this.#cas !== undefined) {
            if (this.#ownTags.size >= OWN_LIMIT) this.#ownTags.clear()
            this.#ownTags.set(key, v)
          }
        }
      })
      this.#tags.observe(tag, v, mode)
      this.#tagInvalidations++
    }
    if (tags.length > 0) this.#emit({ kind: 'tags', tags })
    return v
  }

  /**
   * Every persisted tag invalidation as `{ tag, mode, hlc }` (read from the store; few).
   * Replication's anti-entropy exchanges them whole (KeyspaceReplicaStore loads them at open).
   */
  async tagInvalidations(): Promise<Array<{ readonly tag: string; readonly mode: TagMode; readonly hlc: number }>> {
    const out: Array<{ tag: string; mode: TagMode; hlc: number }> = []
    let cursor: string | undefined
    do {
      const page = await this.#readPage(TAG, cursor, 1000)
      cursor = page.cursor
      page.keys.forEach((storeKey, i) => {
        const bytes = page.values[i]
        const t = bytes === undefined ? undefined : tagRecord(storeKey.slice(TAG.length), bytes)
        if (t !== undefined) out.push(t)
      })
    } while (cursor !== undefined)
    return out
  }

  /**
   * One page of records and tombstones (live store entries first, then tombstones), keys
   * under `prefix`, positions in `hashRange`. Pages hold at most `limit` records; call
   * again with `cursor` until it is undefined. Same guarantees as `Store.scan`.
   */
  async scan(options: KeyspaceScanOptions = {}): Promise<KeyspaceScanPage> {
    const prefix = options.prefix ?? ''
    const limit = options.limit ?? 100
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_SCAN_LIMIT) throw new InvalidOptionsError('limit', `expected an integer 1..${MAX_SCAN_LIMIT}`)
    const range = options.hashRange
    if (range !== undefined) checkRange(range)
    let phase = 0
    let inner: string | undefined
    if (options.cursor !== undefined) {
      const m = /^([01])(?::(.*))?$/s.exec(String(options.cursor))
      if (m === null) throw new InvalidOptionsError('cursor', 'not a cursor this keyspace returned')
      phase = Number(m[1])
      inner = m[2]
    }
    const space = phase === 0 ? LIVE : TOMB
    const page = await this.#readPage(space + prefix, inner, limit)
    const records: KeyspaceRecord[] = []
    page.keys.forEach((storeKey, i) => {
      const key = storeKey.slice(space.length)
      const bytes = page.values[i]
      if (bytes === undefined || (range !== undefined && !inRange(keyHash(key), range))) return
      const r = decode(key, bytes)
      if (r !== undefined) records.push(r)
    })
    let cursor: string | undefined
    if (page.cursor !== undefined) cursor = `${phase}:${page.cursor}`
    else if (phase === 0) cursor = '1'
    return { records, cursor }
  }

  /** The digest of a range aligned to buckets (`start` and `end` multiples of 2^32 / DIGEST_BUCKETS). */
  digest(range: HashRange = { start: 0, end: 2 ** 32 }): Digest {
    checkRange(range)
    if (range.start % BUCKET_SPAN !== 0 || range.end % BUCKET_SPAN !== 0) {
      throw new InvalidOptionsError('hashRange', `expected bounds that are multiples of ${BUCKET_SPAN}`)
    }
    let a = 0
    let b = 0
    for (let i = range.start / BUCKET_SPAN; i < range.end / BUCKET_SPAN; i++) {
      a ^= this.#digestA[i]!
      b ^= this.#digestB[i]!
    }
    return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0')
  }

  /** Records and tombstones in the in-process tier. */
  memoryCount(predicate?: (record: KeyspaceRecord) => boolean): number {
    return this.#memory.count(predicate === undefined ? undefined : (_k, held) => predicate(held.record))
  }

  stats(): KeyspaceStats {
    const m = this.#memory.stats()
    return {
      hits: this.#hits,
      misses: this.#misses,
      tagInvalidations: this.#tagInvalidations,
      tagNodes: this.#tags.stats().nodes,
      memoryEntries: this.#memory.size,
      prefixTombstones: this.#prefixes.size,
      evictions: { expire: m.expired, evict: m.evicted, erase: m.erased, flush: m.flushed },
    }
  }

  /** Stops the in-process tier and the tag trie's timer (the store is the caller's). */
  async close(): Promise<void> {
    this.#closed = true
    await this.#storeWatch?.close()
    await Promise.allSettled([...this.#inflight])
    this.#memory.close()
    this.#tags.close()
  }

  /**
   * A clear's step: removes the records and tombstones of `keys` older than `version`,
   * holding every key's lock (so a concurrent newer write is never removed) and doing one
   * read and one delete batch for the page. The locks are queued in one synchronous loop,
   * so two clears queue in the same order on every key and cannot deadlock.
   */
  async #clearPage(keys: readonly string[], version: Version): Promise<void> {
    const unique = [...new Set(keys)]
    if (unique.length === 0) return
    let release!: () => void
    const done = new Promise<void>((resolve) => {
      release = resolve
    })
    let held = 0
    let allHeld!: () => void
    const ready = new Promise<void>((resolve) => {
      allHeld = resolve
    })
    const locks = unique.map((key) =>
      this.#mutex.run(key, () => {
        if (++held === unique.length) allHeld()
        return done
      }),
    )
    try {
      await ready
      for (const key of unique) this.#memory.delete(key)
      if (this.#cas !== undefined) {
        for (let i = 0; i < unique.length; i += CAS_CLEAR_CHUNK) await this.#clearShared(unique.slice(i, i + CAS_CLEAR_CHUNK), version)
        return
      }
      const storeKeys = unique.flatMap((key) => [LIVE + key, TOMB + key])
      const values = await this.#io('getMany', this.#store.getMany(storeKeys))
      const victims: string[] = []
      const removed: KeyspaceRecord[] = []
      storeKeys.forEach((storeKey, i) => {
        const bytes = values[i]
        if (bytes === undefined) return
        const r = decode(storeKey.slice(storeKey.startsWith(LIVE) ? LIVE.length : TOMB.length), bytes)
        if (r !== undefined && compareVersions(r.version, version) >= 0) return
        victims.push(storeKey)
        if (r !== undefined) removed.push(r)
      })
      if (victims.length > 0) await this.#io('deleteMany', this.#store.deleteMany(victims))
      for (const r of removed) this.#digestXor(r)
    } finally {
      release()
      await Promise.all(locks)
    }
  }

  /**
   * A clear's step on a shared store: deletes the records and tombstones of `keys` older
   * than `version` in one transaction conditioned on their revisions (another node's newer
   * write is never removed); read again on a conflict.
   */
  async #clearShared(keys: readonly string[], version: Version): Promise<void> {
    const storeKeys = keys.flatMap((key) => [LIVE + key, TOMB + key])
    for (let attempt = 1; ; attempt++) {
      const values = await this.#io('getRevisions', this.#cas!.getRevisions(storeKeys))
      const victims: { key: string; revision: number }[] = []
      const removed: KeyspaceRecord[] = []
      storeKeys.forEach((storeKey, i) => {
        const { value, revision } = values[i]!
        if (revision === 0) return
        const r = value === undefined ? undefined : decode(storeKey.slice(storeKey.startsWith(LIVE) ? LIVE.length : TOMB.length), value)
        if (r !== undefined && compareVersions(r.version, version) >= 0) return
        victims.push({ key: storeKey, revision })
        if (r !== undefined) removed.push(r)
      })
      if (victims.length === 0) return
      if (await this.#io('commitIf', this.#cas!.commitIf(victims, [], victims.map((v) => v.key)))) {
        for (const r of removed) this.#digestXor(r)
        return
      }
      if (attempt >= CAS_ATTEMPTS) throw new StoreUnavailableError(`A clear lost ${CAS_ATTEMPTS} races in a row on the ${this.#store.name} store`)
    }
  }

  /**
   * Queues a write of `key` into the key's next group (group commit, decision 0241). The
   * first write of a group schedules the group under the key's lock; writes arriving until
   * the group starts — typically while the previous group of the key commits — join it.
   */
  #enqueue<T>(key: string, write: { readonly make?: Maker; readonly record?: KeyspaceRecord }): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const pending: PendingWrite = { make: write.make, record: write.record, resolve: resolve as (value: unknown) => void, reject }
      const queue = this.#queues.get(key)
      if (queue !== undefined) {
        queue.push(pending)
        return
      }
      this.#queues.set(key, [pending])
      void this.#mutex.run(key, () => this.#commitGroup(key))
    })
  }

  /**
   * Runs one group of writes of `key` under its lock. Each write is decided in arrival order
   * against the state the writes before it left (If-Match checks, version draws and LWW as
   * if they ran one by one); only the group's final state is written to the store, in one
   * write (plus the removal of the other kind of record when the key changes kind). Every
   * write of the group settles after that write: acknowledged writes are durable — each is
   * in the store or superseded there by a newer version of its key. A store failure fails
   * every write of the group that did not fail on its own, and changes nothing.
   */
  async #commitGroup(key: string): Promise<void> {
    const group = this.#queues.get(key) ?? []
    this.#queues.delete(key)
    const results: unknown[] = new Array(group.length)
    const failures: unknown[] = new Array(group.length)
    const failed: boolean[] = new Array(group.length).fill(false)
    try {
      if (this.#cas === undefined) {
        // A key the store has never held (the filter is exact for absence) needs no read.
        const held = this.#stored!.mightHave(key) ? await this.#current(key) : undefined
        const state = await this.#decide(key, group, held, results, failures, failed)
        if (state !== held?.record && state !== undefined) await this.#write(key, state, held?.record)
      } else {
        // A shared store: decide on the state read with its revisions, write only if neither
        // the record nor the tombstone changed since; on a conflict decide again on the new state.
        for (let attempt = 1; ; attempt++) {
          const { held, revisions } = await this.#readShared(key)
          const state = await this.#decide(key, group, held, results, failures, failed)
          if (state === held?.record || state === undefined) break
          if (await this.#write(key, state, held?.record, revisions)) break
          if (attempt >= CAS_ATTEMPTS) throw new StoreUnavailableError(`A write of one key lost ${CAS_ATTEMPTS} races in a row on the ${this.#store.name} store`)
        }
      }
    } catch (err) {
      for (let i = 0; i < group.length; i++) {
        if (!failed[i]) {
          failed[i] = true
          failures[i] = err
        }
      }
    }
    for (let i = 0; i < group.length; i++) {
      if (failed[i]) group[i]!.reject(failures[i])
      else group[i]!.resolve(results[i])
    }
  }

  /**
   * Decides a group's writes in arrival order from `held` (filling `results`, `failures`,
   * `failed`, which it resets) and returns the key's final state (`held`'s record when
   * nothing applied).
   */
  async #decide(key: string, group: readonly PendingWrite[], held: Held | undefined, results: unknown[], failures: unknown[], failed: boolean[]): Promise<KeyspaceRecord | undefined> {
    results.fill(undefined)
    failures.fill(undefined)
    failed.fill(false)
    let state = held?.record
    let snapshot = held?.snapshot
    for (let i = 0; i < group.length; i++) {
      const w = group[i]!
      try {
        let record: KeyspaceRecord | undefined
        if (w.make !== undefined) {
          const current = this.#liveOf(key, state, snapshot)
          if (current === undefined) this.#misses++
          else this.#hits++
          const version = { hlc: await this.#hlc.nextDurable(), nodeId: this.#nodeId }
          record = w.make(current, version)
          results[i] = record
        } else {
          record = w.record
        }
        const accepted = record === undefined ? undefined : this.#accept(record, state)
        if (w.make === undefined) results[i] = accepted !== undefined
        if (accepted !== undefined) {
          state = accepted
          snapshot = accepted.deleted === true || accepted.tags.length === 0 ? undefined : this.#tags.snapshot(accepted.tags, accepted.version.hlc)
        }
      } catch (err) {
        failed[i] = true
        failures[i] = err
      }
    }
    return state
  }

  /** `state` as a read would serve it (live, unexpired, not cleared, tags valid), else undefined. */
  #liveOf(key: string, state: KeyspaceRecord | undefined, snapshot: TagSnapshot | undefined): KeyspaceEntry | undefined {
    if (state === undefined || state.deleted === true || this.#expired(state)) return undefined
    if ((this.#clearing > 0 || this.#clearFailed) && this.#covered(key, state.version)) return undefined
    if (snapshot !== undefined && this.#tags.check(snapshot) !== 'valid') return undefined
    return state
  }

  /**
   * The record to make the key's state, or undefined when LWW refuses it against `state`
   * (older or equal version, covered by a prefix tombstone, a tombstone past its grace). An
   * expired record becomes a tombstone of its version. Observes the version (ERR_CLOCK_DRIFT).
   */
  #accept(record: KeyspaceRecord, state: KeyspaceRecord | undefined): KeyspaceRecord | undefined {
    const key = record.key
    if (record.deleted !== true && this.#expired(record)) record = { key, version: record.version, deleted: true }
    if (this.#graceOver(record.version) && record.deleted === true) return undefined
    this.#hlc.observe(record.version.hlc)
    if (state !== undefined && compareVersions(state.version, record.version) >= 0) return undefined
    if (this.#covered(key, record.version)) return undefined
    return record
  }

  /**
   * Stores `record` over `current` (the key's stored state), then updates the digest and L1.
   * With `revisions` (a shared store: the record's and tombstone's revisions read with
   * `current`), one conditional transaction; false when either changed meanwhile (nothing written).
   */
  async #write(key: string, record: KeyspaceRecord, current: KeyspaceRecord | undefined, revisions?: readonly [number, number]): Promise<boolean> {
    // A clear may have registered while the group drew versions (an await): the check, the
    // store call and its registration in #inflight below run in one synchronous step, so a
    // clear either covers this record now (it is cleared: not written) or waits for it.
    if (this.#covered(key, record.version)) {
      this.#memory.delete(key)
      this.#emit({ kind: 'key', key })
      return true
    }
    const bytes = encode(record)
    const cas = this.#cas
    if (cas !== undefined && revisions !== undefined) {
      const [liveRev, tombRev] = revisions
      const expect = [{ key: LIVE + key, revision: liveRev }, { key: TOMB + key, revision: tombRev }]
      const entry = record.deleted === true
        ? { key: TOMB + key, value: bytes, ttlMs: this.#graceLeft(record.version) }
        : { key: LIVE + key, value: bytes, ttlMs: record.expiresAt === 0 ? Infinity : Math.max(1, record.expiresAt - this.#clock.now()) }
      const other = record.deleted === true ? (liveRev !== 0 ? [LIVE + key] : []) : tombRev !== 0 ? [TOMB + key] : []
      const commit = this.#io('commitIf', cas.commitIf(expect, [entry], other))
      this.#inflight.add(commit)
      let committed: boolean
      try {
        committed = await commit
      } finally {
        this.#inflight.delete(commit)
      }
      if (!committed) return false
      if (current !== undefined) this.#digestXor(current)
      this.#digestXor(record)
      // Its echo from the change stream is not published again.
      if (this.#ownWrites.size >= OWN_LIMIT) this.#ownWrites.clear()
      this.#ownWrites.set(key, record.version.hlc)
      this.#emit({ kind: 'key', key })
      return true
    }
    this.#stored?.add(key)
    const write = record.deleted === true
      ? this.#io('set', this.#store.set(TOMB + key, bytes, this.#graceLeft(record.version))).then(() => this.#io('delete', this.#store.delete(LIVE + key)))
      : this.#io('set', this.#store.set(LIVE + key, bytes, record.expiresAt === 0 ? Infinity : Math.max(1, record.expiresAt - this.#clock.now()))).then(() =>
          current?.deleted === true ? this.#io('delete', this.#store.delete(TOMB + key)) : undefined,
        )
    this.#inflight.add(write)
    try {
      await write
    } finally {
      this.#inflight.delete(write)
    }
    if (current !== undefined) this.#digestXor(current)
    this.#digestXor(record)
    // A clear that started meanwhile has removed (or will remove) the store copy: keep L1 in step.
    if (this.#covered(key, record.version)) this.#memory.delete(key)
    else this.#hold(record)
    this.#emit({ kind: 'key', key })
    return true
  }

  /**
   * A shared store's read of `key`: record and tombstone with their revisions in one
   * snapshot (no L1). The newer one's version is observed by the clock, so a version drawn
   * next is above it (ERR_CLOCK_DRIFT when it is too far ahead).
   */
  async #readShared(key: string): Promise<{ held: Held | undefined; revisions: readonly [number, number] }> {
    const [live, tomb] = await this.#io('getRevisions', this.#cas!.getRevisions([LIVE + key, TOMB + key]))
    const a = live?.value === undefined ? undefined : decode(key, live.value)
    const b = tomb?.value === undefined ? undefined : decode(key, tomb.value)
    const record = a === undefined ? b : b === undefined ? a : compareVersions(a.version, b.version) >= 0 ? a : b
    const revisions = [live?.revision ?? 0, tomb?.revision ?? 0] as const
    if (record === undefined) return { held: undefined, revisions }
    this.#hlc.observe(record.version.hlc)
    if (record.deleted !== true && record.tags.length > 0) await this.#readTagVersions(record.tags)
    const snapshot = record.deleted === true || record.tags.length === 0 ? undefined : this.#tags.snapshot(record.tags, record.version.hlc)
    return { held: { record, snapshot }, revisions }
  }

  /**
   * Reads the invalidation versions of `tags` and of every tag above them (both modes) from
   * the store and applies them, so a tagged record read afterwards honours every
   * invalidation acknowledged before the read, by any node (not only what the change stream
   * delivered so far).
   */
  async #readTagVersions(tags: readonly string[]): Promise<void> {
    const paths = new Set<string>()
    for (const tag of tags) {
      const parts = tag.split(':')
      for (let i = 1; i <= parts.length; i++) paths.add(parts.slice(0, i).join(':'))
    }
    const keys = [...paths].flatMap((path) => [`${TAG}hard:${path}`, `${TAG}soft:${path}`])
    const values = await this.#io('getMany', this.#store.getMany(keys))
    keys.forEach((key, i) => {
      const bytes = values[i]
      if (bytes === undefined) return
      const v = Number(dec.decode(bytes))
      if (!Number.isSafeInteger(v)) return
      const rest = key.slice(TAG.length)
      const colon = rest.indexOf(':')
      this.#hlc.tryObserve(v)
      this.#tags.observe(rest.slice(colon + 1), v, rest.slice(0, colon) as TagMode)
    })
  }

  /**
   * A change of the shared store, by any node (this one's echo included): other nodes'
   * record changes go to `watch` listeners, prefix tombstones and tag invalidations are
   * applied and published; a lost stream tells the listeners to drop everything.
   */
  #onStoreChange(change: StoreChange): void {
    if (this.#closed) return
    if (change.kind === 'lost') {
      this.#ownWrites.clear()
      this.#ownTags.clear()
      if (this.#opened) this.#emit({ kind: 'clear', prefix: '' })
      return
    }
    if (change.kind === 'synced') {
      // At open, #load reads what the watch started after.
      if (this.#opened) this.#resync()
      return
    }
    const keys = new Set<string>()
    const own = new Set<string>()
    const tags: string[] = []
    for (const { key: storeKey, value } of change.entries) {
      if (storeKey.startsWith(LIVE) || storeKey.startsWith(TOMB)) {
        const key = storeKey.slice(storeKey.startsWith(LIVE) ? LIVE.length : TOMB.length)
        keys.add(key)
        const r = value === undefined ? undefined : decode(key, value)
        if (r !== undefined && this.#ownWrites.get(key) === r.version.hlc) own.add(key)
      } else if (storeKey.startsWith(PTOMB) && value !== undefined) {
        const prefix = storeKey.slice(PTOMB.length)
        const r = decode(prefix, value)
        const known = this.#prefixes.get(prefix)
        if (r !== undefined && !this.#graceOver(r.version) && (known === undefined || compareVersions(known, r.version) < 0)) {
          this.#hlc.tryObserve(r.version.hlc)
          this.#prefixes.set(prefix, r.version)
          this.#emit({ kind: 'clear', prefix })
        }
      } else if (storeKey.startsWith(TAG) && value !== undefined) {
        const rest = storeKey.slice(TAG.length)
        const colon = rest.indexOf(':')
        const mode = rest.slice(0, colon) as TagMode
        const v = Number(dec.decode(value))
        if ((mode === 'hard' || mode === 'soft') && Number.isSafeInteger(v)) {
          const tag = rest.slice(colon + 1)
          this.#hlc.tryObserve(v)
          this.#tags.observe(tag, v, mode)
          // Published even when a read already applied it: the listeners (near caches) have not seen it.
          if (this.#ownTags.get(storeKey) === v) this.#ownTags.delete(storeKey)
          else tags.push(tag)
        }
      }
    }
    for (const key of keys) {
      if (own.has(key)) this.#ownWrites.delete(key)
      else this.#emit({ kind: 'key', key })
    }
    if (tags.length > 0) this.#emit({ kind: 'tags', tags })
  }

  /** After a lost change stream: reloads prefix tombstones and tag invalidations, then tells the listeners again. */
  #resync(): void {
    this.#load([PTOMB, TAG]).then(
      () => this.#emit({ kind: 'clear', prefix: '' }),
      () => {
        // Still unreachable: try again.
        if (!this.#closed) this.#clock.setTimeout(() => this.#resync(), 1_000, { unref: true })
      },
    )
  }

  /** L1, else the store (live record and tombstone: the newer wins). */
  async #current(key: string): Promise<Held | undefined> {
    if (this.#cas !== undefined) return (await this.#readShared(key)).held
    const held = this.#memory.get(key)
    if (held !== undefined) return held
    // Two gets, not one getMany: a single-key read is the store's cheapest path (LMDB: no batch).
    const [live, tomb] = await Promise.all([this.#io('get', this.#store.get(LIVE + key)), this.#io('get', this.#store.get(TOMB + key))])
    const a = live === undefined ? undefined : decode(key, live)
    const b = tomb === undefined ? undefined : decode(key, tomb)
    const record = a === undefined ? b : b === undefined ? a : compareVersions(a.version, b.version) >= 0 ? a : b
    if (record === undefined) return undefined
    return this.#hold(record)
  }

  #hold(record: KeyspaceRecord): Held {
    const snapshot = record.deleted === true || record.tags.length === 0 ? undefined : this.#tags.snapshot(record.tags, record.version.hlc)
    const held = { record, snapshot }
    const ttl = record.deleted === true ? this.#graceLeft(record.version) : record.expiresAt === 0 ? Infinity : Math.max(1, record.expiresAt - this.#clock.now())
    this.#memory.set(record.key, held, { ttl })
    return held
  }

  #expired(record: KeyspaceEntry): boolean {
    return record.expiresAt !== 0 && record.expiresAt <= this.#clock.now()
  }

  /** Milliseconds of grace left for a tombstone of `version` (at least 1). */
  #graceLeft(version: Version): number {
    return Math.max(1, msOfVersion(version.hlc) + this.#tombstoneTtl - this.#clock.now())
  }

  #graceOver(version: Version): boolean {
    return msOfVersion(version.hlc) + this.#tombstoneTtl <= this.#clock.now()
  }

  /** True when a live prefix tombstone covers `key` at `version` or newer. */
  #covered(key: string, version: Version): boolean {
    return this.#prefixes.size !== 0 && this.#prefixes.covers(key, version, this.#clock.now() - this.#tombstoneTtl)
  }

  #dropExpiredPrefixes(): void {
    this.#prefixes.dropUntil(this.#clock.now() - this.#tombstoneTtl)
  }

  #digestXor(record: KeyspaceRecord): void {
    const bucket = Math.floor(keyHash(record.key) / BUCKET_SPAN)
    const [a, b] = recordHash(record.key, record.version)
    this.#digestA[bucket]! ^= a
    this.#digestB[bucket]! ^= b
  }

  async #load(spaces: readonly string[] = [PTOMB, TAG, LIVE, TOMB]): Promise<void> {
    const drop: string[] = []
    for (const space of spaces) {
      let cursor: string | undefined
      do {
        const page = await this.#readPage(space, cursor, 1000)
        cursor = page.cursor
        page.keys.forEach((storeKey, i) => {
          const bytes = page.values[i]
          if (bytes === undefined) return
          const key = storeKey.slice(space.length)
          if (space === LIVE || space === TOMB) this.#stored?.add(key)
          if (space === TAG) {
            const t = tagRecord(key, bytes)
            if (t !== undefined) {
              this.#tags.observe(t.tag, t.hlc, t.mode)
              this.#hlc.tryObserve(t.hlc)
            }
            return
          }
          const r = decode(key, bytes)
          if (r === undefined) {
            // Not this format (a record of the facade-based engine before it): a cache may
            // forget, but must not keep what it cannot check against deletes and tags.
            drop.push(storeKey)
            return
          }
          this.#hlc.tryObserve(r.version.hlc)
          if (space !== PTOMB && this.#covered(key, r.version)) {
            // Left by a clear that a crash interrupted: finish it.
            drop.push(storeKey)
            return
          }
          if (space === PTOMB) {
            if (!this.#graceOver(r.version)) this.#prefixes.set(key, r.version)
          } else {
            this.#digestXor(r)
          }
        })
      } while (cursor !== undefined)
    }
    for (let i = 0; i < drop.length; i += 1000) await this.#io('deleteMany', this.#store.deleteMany(drop.slice(i, i + 1000)))
  }

  async #scanStore(prefix: string, cursor: string | undefined, limit: number): Promise<{ keys: readonly string[]; cursor: string | undefined }> {
    if (this.#store.scan === undefined) throw new InvalidOptionsError('store', `the ${this.#store.name} store cannot scan; the node's keyspace needs Store.scan`)
    return this.#io('scan', this.#store.scan({ prefix, cursor, limit }))
  }

  /** One page of the store's keys under `prefix` and their values (undefined: gone since the scan). */
  async #readPage(prefix: string, cursor: string | undefined, limit: number): Promise<{ keys: readonly string[]; values: readonly (Uint8Array | undefined)[]; cursor: string | undefined }> {
    const page = await this.#scanStore(prefix, cursor, limit)
    const values = page.keys.length === 0 ? [] : await this.#io('getMany', this.#store.getMany(page.keys))
    return { keys: page.keys, values, cursor: page.cursor }
  }

  /** A store call with the node's timeout; failures become typed errors. */
  #io<T>(operation: string, promise: Promise<T>): Promise<T> {
    const timeoutMs = this.#timeoutMs
    const typed = promise.catch((err: unknown) => {
      throw err instanceof CacheError ? err : new StoreUnavailableError(`Store operation ${operation} failed on ${this.#store.name}`, { cause: err })
    })
    if (timeoutMs === Infinity) return typed
    return raceStoreTimeout(this.#clock, timeoutMs, typed, operation)
  }
}

/** A persisted tag invalidation (`<mode>:<tag>` under TAG, its HLC as text); undefined when the record is not one. */
function tagRecord(id: string, bytes: Uint8Array): { tag: string; mode: TagMode; hlc: number } | undefined {
  const colon = id.indexOf(':')
  const mode = id.slice(0, colon)
  const hlc = Number(dec.decode(bytes))
  return (mode === 'hard' || mode === 'soft') && Number.isSafeInteger(hlc) ? { tag: id.slice(colon + 1), mode, hlc } : undefined
}

function checkRange(range: HashRange): void {
  if (range === null || typeof range !== 'object' || !Number.isInteger(range.start) || !Number.isInteger(range.end) || range.start < 0 || range.end > 2 ** 32 || range.start > range.end) {
    throw new InvalidOptionsError('hashRange', 'expected { start, end } integers with 0 <= start <= end <= 2^32')
  }
}

function inRange(position: number, range: HashRange): boolean {
  return position >= range.start && position < range.end
}
