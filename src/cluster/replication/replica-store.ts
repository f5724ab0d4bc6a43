/**
 * What replication needs from a node's data, as a synchronous interface (`ReplicaStore`),
 * and `MemoryReplicaStore`, the in-memory implementation the simulations and the bench
 * run on. The node's `Keyspace` (server/keyspace.ts) is asynchronous (LMDB); the plan for
 * its adapter is in docs/decisions/0210-replication-machine-and-replica-store.md: a
 * write-behind adapter whose pending writes the runner flushes before it sends a step's
 * messages (the kernel's persist-before-send rule, generalised).
 *
 * Semantics are the keyspace's, so the adapter is a translation, not a second model:
 * - LWW by version (`compareVersions`): a key's state moves only to a greater version;
 *   applying the same records in any order, with duplicates, gives the same state.
 * - A tombstone is kept `tombstoneTtl` after the physical time of its version (the same
 *   instant on every replica); a live record whose expiry passed counts as a tombstone of
 *   its version (same `recordHash`, so replicas that hold it as either agree) and is
 *   dropped with it. No write older than a kept tombstone is applied.
 * - A prefix tombstone `(prefix, version)` removes and refuses every record under the
 *   prefix older than it while it is kept.
 * - Tag invalidations (`mode:tag` -> hlc) merge by max; a record with a tag at or below
 *   an invalidated tag (`:`-separated paths) and an older version is hidden from reads.
 */
import { compareVersions, msOfVersion, type Version } from '../../core/hlc.js'
import { BUCKET_DEPTH, bucketOf, deepDigest, keyHash, MerkleTree, rangeBounds, type RangeSummary, recordHash, type TreeRange } from './digest.js'
import { PrefixTombstones } from './prefix-tombstones.js'

/** A live record. `value`: the bytes as the node encodes them (base64 on the node's wire); `expiresAt`: absolute ms, 0 = none. */
export interface ReplicaEntry {
  readonly key: string
  readonly version: Version
  readonly value: string
  readonly expiresAt: number
  readonly tags: readonly string[]
  readonly deleted?: false
}

/** A deleted key. */
export interface ReplicaTombstone {
  readonly key: string
  readonly version: Version
  readonly deleted: true
}

export type ReplicaRecord = ReplicaEntry | ReplicaTombstone

export interface PrefixTombstone {
  readonly prefix: string
  readonly version: Version
}

export type TagMode = 'hard' | 'soft'

/** One tag invalidation, merged by max of `hlc`. */
export interface TagInvalidation {
  readonly tag: string
  readonly mode: TagMode
  readonly hlc: number
}

/** The data replication reads and writes. Synchronous: every call returns with its effect durable. */
export interface ReplicaStore {
  /** The key's state (expired records and kept tombstones included). */
  get(key: string): ReplicaRecord | undefined
  /** Applies `record` if newer than the key's state and than every kept prefix tombstone covering it. Returns whether it changed anything. */
  apply(record: ReplicaRecord, now: number): boolean
  /** Removes every record under `prefix` older than `version` and keeps the prefix tombstone. False when a kept one already covers it or its grace is over. */
  clear(prefix: string, version: Version, now: number): boolean
  /** Max-merges an invalidation. Returns whether it raised the tag's version. */
  invalidate(inv: TagInvalidation): boolean
  /** Kept prefix tombstones. */
  prefixTombstones(now: number): PrefixTombstone[]
  tagInvalidations(): TagInvalidation[]
  /** True when a kept prefix tombstone or a tag invalidation hides this live record. */
  hidden(record: ReplicaEntry, now: number): boolean
  /** Digest and count of a range (salt used below the maintained depth only). */
  summary(range: TreeRange, salt: number): RangeSummary
  /** Records and tombstones whose key hash falls in the range. */
  records(range: TreeRange): ReplicaRecord[]
  /** Drops tombstones (and expired records) whose grace is over and prefix tombstones past theirs; returns how many records went. */
  purge(now: number): number
  /** The greatest hlc held (the machine's clock starts past it). */
  maxHlc(): number
  /**
   * The meta digest, when the store keeps it as its meta changes; without it `metaDigest`
   * hashes every prefix tombstone and tag invalidation held at each call.
   */
  metaDigest?(now: number): string
  /** Counts for stats. */
  counts(now: number): { readonly records: number; readonly tombstones: number; readonly prefixTombstones: number; readonly tags: number }
  /** How long tombstones are kept after their version's physical time, ms. */
  readonly tombstoneTtlMs: number
}

/** True when the record is a tombstone or a live record expired at `now`. */
export function isDead(record: ReplicaRecord, now: number): boolean {
  return record.deleted === true || (record.expiresAt !== 0 && record.expiresAt <= now)
}

/** True when a dead record's grace (tombstone time + ttl) is over at `now`. */
export function graceOver(version: Version, ttlMs: number, now: number): boolean {
  return msOfVersion(version.hlc) + ttlMs <= now
}

/** A prefix tombstone's share of the meta digest (replication.ts `metaDigest`). */
export function prefixMetaHash(prefix: string, version: Version): [number, number] {
  return recordHash(`p\u0000${prefix}`, version)
}

/** A tag invalidation's share of the meta digest; `id` is `mode:tag`. */
export function tagMetaHash(id: string, hlc: number): [number, number] {
  return recordHash(`t\u0000${id}`, { hlc, nodeId: '' })
}

/** The meta digest's text: the two 32-bit halves of the XOR, 16 hex digits. */
export function metaHex(a: number, b: number): string {
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0')
}

/** True when tag `tag` is `inv` or lies below it (segment-wise `:` paths, the tag trie's rule). */
export function tagCovers(inv: string, tag: string): boolean {
  return tag === inv || (tag.length > inv.length && tag.startsWith(inv) && tag[inv.length] === ':')
}

export interface MemoryReplicaStoreOptions {
  /** @default 86_400_000 (24 h, the keyspace's default) */
  readonly tombstoneTtlMs?: number
}

/** The in-memory ReplicaStore of simulations and benches (one Map; bucket key lists sorted by key hash on demand). */
export class MemoryReplicaStore implements ReplicaStore {
  readonly tombstoneTtlMs: number
  readonly #records = new Map<string, ReplicaRecord>()
  readonly #tree = new MerkleTree()
  /** Per bucket: its keys sorted by position, rebuilt on demand after a change. */
  readonly #sorted: Array<{ keys: string[]; pos: number[] } | undefined> = new Array(4 ** BUCKET_DEPTH).fill(undefined)
  readonly #bucketKeys: Array<Set<string> | undefined> = new Array(4 ** BUCKET_DEPTH).fill(undefined)
  readonly #prefixes = new PrefixTombstones()
  readonly #tags = new Map<string, number>()
  /** XOR of the meta hashes of the prefix tombstones and tag invalidations held, kept as they change (`metaDigest`). */
  #metaA = 0
  #metaB = 0
  #maxHlc = 0

  constructor(options: MemoryReplicaStoreOptions = {}) {
    this.tombstoneTtlMs = options.tombstoneTtlMs ?? 86_400_000
  }

  get size(): number {
    return this.#records.size
  }

  get(key: string): ReplicaRecord | undefined {
    return this.#records.get(key)
  }

  apply(record: ReplicaRecord, now: number): boolean {
    if (isDead(record, now) && graceOver(record.version, this.tombstoneTtlMs, now)) return false
    const current = this.#records.get(record.key)
    if (current !== undefined && compareVersions(current.version, record.version) >= 0) return false
    if (this.#covered(record.key, record.version, now)) return false
    this.#set(record, current)
    return true
  }

  clear(prefix: string, version: Version, now: number): boolean {
    if (graceOver(version, this.tombstoneTtlMs, now)) return false
    this.#observe(version.hlc)
    if (this.#prefixes.covers(prefix, version, now - this.tombstoneTtlMs)) return false
    const replaced = this.#prefixes.get(prefix)
    if (replaced !== undefined) this.#metaXor(prefixMetaHash(prefix, replaced))
    this.#prefixes.set(prefix, version)
    this.#metaXor(prefixMetaHash(prefix, version))
    for (const [p, pv] of this.#prefixes.under(prefix)) {
      if (compareVersions(pv, version) < 0) {
        this.#prefixes.delete(p)
        this.#metaXor(prefixMetaHash(p, pv))
      }
    }
    for (const [key, r] of this.#records) if (key.startsWith(prefix) && compareVersions(r.version, version) < 0) this.#remove(r)
    return true
  }

  invalidate(inv: TagInvalidation): boolean {
    const id = `${inv.mode}:${inv.tag}`
    this.#observe(inv.hlc)
    const held = this.#tags.get(id)
    if (held !== undefined && held >= inv.hlc) return false
    if (held !== undefined) this.#metaXor(tagMetaHash(id, held))
    this.#tags.set(id, inv.hlc)
    this.#metaXor(tagMetaHash(id, inv.hlc))
    return true
  }

  prefixTombstones(now: number): PrefixTombstone[] {
    const out: PrefixTombstone[] = []
    for (const [prefix, version] of this.#prefixes) if (!graceOver(version, this.tombstoneTtlMs, now)) out.push({ prefix, version })
    return out
  }

  tagInvalidations(): TagInvalidation[] {
    return [...this.#tags].map(([id, hlc]) => {
      const colon = id.indexOf(':')
      return { mode: id.slice(0, colon) as TagMode, tag: id.slice(colon + 1), hlc }
    })
  }

  hidden(record: ReplicaEntry, now: number): boolean {
    if (this.#covered(record.key, record.version, now)) return true
    if (record.tags.length === 0 || this.#tags.size === 0) return false
    // An invalidation hides the record when it is newer and names one of its tags or an
    // ancestor (tagCovers): those are looked up, in both modes, rather than every
    // invalidation held scanned.
    const hlc = record.version.hlc
    for (const tag of record.tags) {
      for (let end = tag.indexOf(':'); ; end = tag.indexOf(':', end + 1)) {
        const path = end === -1 ? tag : tag.slice(0, end)
        if ((this.#tags.get(`hard:${path}`) ?? -1) > hlc || (this.#tags.get(`soft:${path}`) ?? -1) > hlc) return true
        if (end === -1) break
      }
    }
    return false
  }

  summary(range: TreeRange, salt: number): RangeSummary {
    if (range.depth <= BUCKET_DEPTH) return this.#tree.summary(range)
    return deepDigest(this.records(range), salt)
  }

  records(range: TreeRange): ReplicaRecord[] {
    const { start, end } = rangeBounds(range)
    if (range.depth <= BUCKET_DEPTH) {
      const out: ReplicaRecord[] = []
      const first = bucketOf(start)
      const last = bucketOf(end - 1)
      for (let b = first; b <= last; b++) for (const key of this.#bucketKeys[b] ?? []) out.push(this.#records.get(key)!)
      return out
    }
    const bucket = bucketOf(start)
    const sorted = this.#sortedBucket(bucket)
    let lo = 0
    let hi = sorted.pos.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (sorted.pos[mid]! < start) lo = mid + 1
      else hi = mid
    }
    const out: ReplicaRecord[] = []
    for (let i = lo; i < sorted.pos.length && sorted.pos[i]! < end; i++) out.push(this.#records.get(sorted.keys[i]!)!)
    return out
  }

  purge(now: number): number {
    let n = 0
    for (const r of this.#records.values()) {
      if (isDead(r, now) && graceOver(r.version, this.tombstoneTtlMs, now)) {
        this.#remove(r)
        n++
      }
    }
    this.#dropExpiredPrefixes(now)
    return n
  }

  /**
   * The meta digest (`metaDigest` in replication.ts) of the kept prefix tombstones and tag
   * invalidations, without walking them: the XOR is kept as they change, and the prefix
   * tombstones past their grace are dropped first (which costs nothing while none is).
   */
  metaDigest(now: number): string {
    this.#dropExpiredPrefixes(now)
    return metaHex(this.#metaA, this.#metaB)
  }

  #dropExpiredPrefixes(now: number): void {
    for (const [p, v] of this.#prefixes.dropUntil(now - this.tombstoneTtlMs)) this.#metaXor(prefixMetaHash(p, v))
  }

  #metaXor(h: readonly [number, number]): void {
    this.#metaA ^= h[0]
    this.#metaB ^= h[1]
  }

  maxHlc(): number {
    return this.#maxHlc
  }

  counts(now: number): { records: number; tombstones: number; prefixTombstones: number; tags: number } {
    let tombstones = 0
    for (const r of this.#records.values()) if (isDead(r, now)) tombstones++
    return { records: this.#records.size - tombstones, tombstones, prefixTombstones: this.prefixTombstones(now).length, tags: this.#tags.size }
  }

  /** Every record held (tests compare replicas with it). */
  all(): ReplicaRecord[] {
    return [...this.#records.values()]
  }

  #covered(key: string, version: Version, now: number): boolean {
    return this.#prefixes.size !== 0 && this.#prefixes.covers(key, version, now - this.tombstoneTtlMs)
  }

  #set(record: ReplicaRecord, current: ReplicaRecord | undefined): void {
    if (current !== undefined) this.#tree.toggle(current.key, current.version, -1)
    else this.#index(record.key, true)
    this.#records.set(record.key, record)
    this.#tree.toggle(record.key, record.version, 1)
    this.#observe(record.version.hlc)
  }

  #remove(record: ReplicaRecord): void {
    this.#records.delete(record.key)
    this.#tree.toggle(record.key, record.version, -1)
    this.#index(record.key, false)
  }

  #index(key: string, add: boolean): void {
    const b = bucketOf(keyHash(key))
    let set = this.#bucketKeys[b]
    if (set === undefined) set = this.#bucketKeys[b] = new Set()
    if (add) set.add(key)
    else set.delete(key)
    this.#sorted[b] = undefined
  }

  #sortedBucket(b: number): { keys: string[]; pos: number[] } {
    let s = this.#sorted[b]
    if (s !== undefined) return s
    const pairs = [...(this.#bucketKeys[b] ?? [])].map((key) => [keyHash(key), key] as const).sort((x, y) => x[0] - y[0] || (x[1] < y[1] ? -1 : 1))
    s = { keys: pairs.map((p) => p[1]), pos: pairs.map((p) => p[0]) }
    this.#sorted[b] = s
    return s
  }

  #observe(hlc: number): void {
    if (hlc > this.#maxHlc) this.#maxHlc = hlc
  }
}
