/**
 * Hashing and the Merkle tree of anti-entropy. A key has a 32-bit position `keyHash(key)`;
 * a record (or tombstone) contributes `recordHash(key, version)`, 64 bits as two halves; a
 * range's digest is the XOR of its members' hashes, so a write updates it in O(depth)
 * (XOR the old state out, the new in) and the order of writes does not matter. These are
 * bit-for-bit the functions of the node's keyspace (server/keyspace.ts, pinned by
 * test/cluster/replication-units.test.ts): this layer may not import server/, and the
 * keyspace's per-bucket digests are meant to feed the same tree.
 *
 * The tree splits the 32-bit position space by 4 at each level (`FANOUT`): depth d has
 * 4^d ranges of 2^(32 - 2d) positions. Depths 0..`BUCKET_DEPTH` (5: 1,024 leaves, the
 * keyspace's `DIGEST_BUCKETS`) are maintained incrementally (`MerkleTree`: 64-bit digest
 * and record count per node, 1,365 nodes). Deeper ranges, down to depth 16, are computed
 * on demand from the records of one bucket (`rangeDigest`), with a per-round salt and 32
 * bits: a salted digest collides with probability 2^-32 per comparison and, the salt
 * changing every round, never twice in a row on the same pair of ranges — so the deep
 * levels can be short without a collision hiding a difference for good.
 */
import type { Version } from '../../core/hlc.js'

/** Positions per level split. */
export const FANOUT = 4
/** Depth of the maintained leaves (4^5 = 1,024 buckets, the keyspace's DIGEST_BUCKETS). */
export const BUCKET_DEPTH = 5
/** Deepest range (2 bits per level: depth 16 is one position). */
export const MAX_DEPTH = 16
export const DIGEST_BUCKETS = FANOUT ** BUCKET_DEPTH

/** The 32-bit position of a key (FNV-1a over UTF-16 code units); server/keyspace.ts uses this one. */
export function keyHash(key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/** The two 32-bit halves of a record's hash: key, hlc and node id, each field terminated; server/keyspace.ts uses this one. */
export function recordHash(key: string, version: Version): [number, number] {
  let a = 0x811c9dc5
  let b = 0x050c5d1f
  const mix = (code: number): void => {
    a = Math.imul(a ^ code, 0x01000193)
    b = Math.imul(b ^ code, 0x01000193) ^ (a >>> 15)
  }
  for (let i = 0; i < key.length; i++) mix(key.charCodeAt(i))
  mix(0xffff)
  const hlc = String(version.hlc)
  for (let i = 0; i < hlc.length; i++) mix(hlc.charCodeAt(i))
  mix(0xffff)
  for (let i = 0; i < version.nodeId.length; i++) mix(version.nodeId.charCodeAt(i))
  return [a >>> 0, b >>> 0]
}

/** A range of the tree: `index` in 0..4^depth - 1 at `depth` in 0..16. */
export interface TreeRange {
  readonly depth: number
  readonly index: number
}

/** Positions `[start, end)` of a range. */
export function rangeBounds(range: TreeRange): { start: number; end: number } {
  const span = 2 ** (32 - 2 * range.depth)
  return { start: range.index * span, end: (range.index + 1) * span }
}

/** The range at `depth` that holds `position`. */
export function rangeOf(position: number, depth: number): number {
  return Math.floor(position / 2 ** (32 - 2 * depth))
}

/** The bucket (depth-5 range) holding `position`. */
export function bucketOf(position: number): number {
  return position >>> (32 - 2 * BUCKET_DEPTH)
}

/** A range as one safe integer on the wire (depth * 2^32 + index). */
export function packRange(range: TreeRange): number {
  return range.depth * 2 ** 32 + range.index
}

/** Inverse of `packRange`; undefined for anything that is not a valid range. */
export function unpackRange(packed: unknown): TreeRange | undefined {
  if (typeof packed !== 'number' || !Number.isSafeInteger(packed) || packed < 0) return undefined
  const depth = Math.floor(packed / 2 ** 32)
  const index = packed - depth * 2 ** 32
  if (depth > MAX_DEPTH || index >= FANOUT ** depth) return undefined
  return { depth, index }
}

/** The 4 children of a range (empty at MAX_DEPTH). */
export function childrenOf(range: TreeRange): TreeRange[] {
  if (range.depth >= MAX_DEPTH) return []
  return Array.from({ length: FANOUT }, (_, i) => ({ depth: range.depth + 1, index: range.index * FANOUT + i }))
}

/** Salted 32-bit mix of a record hash (deep ranges). */
export function saltedHash(a: number, b: number, salt: number): number {
  let h = Math.imul(a ^ salt, 0x85ebca6b) ^ b
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** A range's digest and record count. Digest: 16 hex digits at depth <= 5, 8 (salted) deeper. */
export interface RangeSummary {
  readonly digest: string
  readonly count: number
}

const hex8 = (n: number): string => (n >>> 0).toString(16).padStart(8, '0')

/**
 * The maintained top of the tree: depths 0..5, a 64-bit XOR digest and a count per node,
 * updated in O(6) per record change. Level arrays are flat typed arrays (1,365 nodes).
 */
export class MerkleTree {
  readonly #a: Uint32Array[] = []
  readonly #b: Uint32Array[] = []
  readonly #count: Int32Array[] = []

  constructor() {
    for (let d = 0; d <= BUCKET_DEPTH; d++) {
      this.#a.push(new Uint32Array(FANOUT ** d))
      this.#b.push(new Uint32Array(FANOUT ** d))
      this.#count.push(new Int32Array(FANOUT ** d))
    }
  }

  /** XORs a record of `key` at `version` in (countDelta +1) or out (-1). */
  toggle(key: string, version: Version, countDelta: 1 | -1): void {
    const [a, b] = recordHash(key, version)
    let i = bucketOf(keyHash(key))
    for (let d = BUCKET_DEPTH; d >= 0; d--) {
      this.#a[d]![i]! ^= a
      this.#b[d]![i]! ^= b
      this.#count[d]![i]! += countDelta
      i = Math.floor(i / FANOUT)
    }
  }

  /** Digest (16 hex digits) and count of a maintained range (depth <= 5). */
  summary(range: TreeRange): RangeSummary {
    const d = range.depth
    if (d > BUCKET_DEPTH) throw new RangeError(`depth ${d} is not maintained`)
    return { digest: hex8(this.#a[d]![range.index]!) + hex8(this.#b[d]![range.index]!), count: this.#count[d]![range.index]! }
  }

  /** Empties the tree. */
  reset(): void {
    for (let d = 0; d <= BUCKET_DEPTH; d++) {
      this.#a[d]!.fill(0)
      this.#b[d]!.fill(0)
      this.#count[d]!.fill(0)
    }
  }
}

/** The salted 32-bit digest (8 hex digits) of a deep range from its records' keys and versions. */
export function deepDigest(records: Iterable<{ readonly key: string; readonly version: Version }>, salt: number): RangeSummary {
  let h = 0
  let count = 0
  for (const r of records) {
    const [a, b] = recordHash(r.key, r.version)
    h ^= saltedHash(a, b, salt)
    count++
  }
  return { digest: hex8(h), count }
}
