/**
 * The replication wire: every message between replicas, and between a client (or the
 * node's HTTP layer standing in for one) and the node it talks to, as one JSON-safe union
 * (`ReplicationMessage`). Records travel as tuples to keep anti-entropy traffic small:
 * `[key, hlc, nodeId]` is a tombstone, `[key, hlc, nodeId, value, expiresAt, tags?]` a live
 * record with its absolute expiry (Zerocache's forwarded writes dropped it). Every field
 * is checked on receipt (`parseRecord`, `parseChange`): a malformed message is ignored.
 */
import type { Version } from '../../core/hlc.js'
import type { NodeId } from '../transport.js'
import type { ReplicaRecord, TagMode } from './replica-store.js'

/** A record on the wire. */
export type WireRecord = readonly [string, number, string] | readonly [string, number, string, string, number] | readonly [string, number, string, string, number, readonly string[]]

/** One replicated change: a record (put or delete), a prefix clear, or a tag invalidation. */
export type Change =
  | { readonly t: 'r'; readonly r: WireRecord }
  | { readonly t: 'c'; readonly p: string; readonly h: number; readonly n: string }
  | { readonly t: 'i'; readonly g: string; readonly m: TagMode; readonly h: number }

/** Per write: how many replicas must hold it before the client is answered. */
export type AckLevel = 'one' | 'region' | 'all'
export const ACK_LEVELS: readonly AckLevel[] = ['one', 'region', 'all']

/** A client's operation. */
export type ClientOp =
  /** `atLeast`: the hlc of the newest version of this key the session has seen (session order). */
  | { readonly op: 'get'; readonly key: string; readonly atLeast?: number }
  /** `ttlMs` (relative to the receiving node's clock) or `expiresAt` (absolute ms); neither: no expiry. `ifVersion`: write only over that hlc. */
  | { readonly op: 'put'; readonly key: string; readonly value: string; readonly ttlMs?: number; readonly expiresAt?: number; readonly tags?: readonly string[]; readonly ifVersion?: number }
  | { readonly op: 'del'; readonly key: string; readonly ifVersion?: number }
  | { readonly op: 'clear'; readonly prefix: string }
  | { readonly op: 'inv'; readonly tags: readonly string[]; readonly mode?: TagMode }

export type ClientRequest = ClientOp & {
  readonly kind: 'req'
  /** The client's id for the request, echoed in the response. */
  readonly rid: number
  /** Session token: the highest node clock the client has seen. Merged into the node's clock first. */
  readonly token?: number
  /** @default 'one' */
  readonly ack?: AckLevel
  /** How long the node may wait for acks, ms. @default the machine's defaultDeadlineMs */
  readonly deadlineMs?: number
}

export interface ClientError {
  readonly code: string
  readonly message: string
  readonly applied?: number
  readonly required?: number
  readonly have?: number
  readonly need?: number
  readonly retryable?: boolean
}

export interface ClientResponse {
  readonly kind: 'res'
  readonly rid: number
  /** The node's clock after the request: the client keeps the max as its session token. */
  readonly token: number
  readonly ok: boolean
  readonly error?: ClientError
  /** The version written, or read (a tombstone's for a deleted key). */
  readonly version?: Version
  /** get: whether a live record was found. */
  readonly found?: boolean
  readonly value?: string
  /** get: the record's absolute expiry; put: the expiry written (0: none). */
  readonly expiresAt?: number
  readonly tags?: readonly string[]
  /** Writes: replicas known to hold the write when answered (the receiving node included), and how many the ack level asked for. */
  readonly applied?: number
  readonly required?: number
}

export type ReplicationMessage =
  /** Fan-out and hint replay. `relay`: spread it in your region. `ack`: tell `to` once you hold it (`v`: the write's hlc). */
  | { readonly kind: 'rep'; readonly changes: readonly Change[]; readonly relay?: boolean; readonly ack?: { readonly to: NodeId; readonly v: number } }
  | { readonly kind: 'ack'; readonly v: number }
  /**
   * Anti-entropy: the sender's digests. Each entry `[range, digests, counts]` holds either
   * the range itself (one digest) or its 4 children (four digests, concatenated; 16 hex
   * digits each down to depth 5, 8 below), counts in base 36 joined by `,`. `meta`: digest of
   * the sender's prefix tombstones and tag invalidations (root only).
   */
  | { readonly kind: 'tree'; readonly salt: number; readonly nodes: ReadonlyArray<readonly [number, string, string]>; readonly meta?: string }
  /** Anti-entropy: the sender's record summaries per range (26 hex digits each: key hash, hlc, check). `back`: answer with yours where mine are newer. */
  | { readonly kind: 'sum'; readonly salt: number; readonly ranges: ReadonlyArray<readonly [number, string]>; readonly back: boolean }
  /** Anti-entropy: records the receiver lacks or holds older. */
  | { readonly kind: 'recs'; readonly records: readonly WireRecord[] }
  /** Anti-entropy: prefix tombstones and tag invalidations, whole (few). */
  | { readonly kind: 'meta'; readonly p: ReadonlyArray<readonly [string, number, string]>; readonly g: ReadonlyArray<readonly [string, TagMode, number]>; readonly back: boolean }
  | ClientRequest
  | ClientResponse

export function toWire(record: ReplicaRecord, asTombstone = false): WireRecord {
  const v = record.version
  if (record.deleted === true || asTombstone) return [record.key, v.hlc, v.nodeId]
  return record.tags.length === 0 ? [record.key, v.hlc, v.nodeId, record.value, record.expiresAt] : [record.key, v.hlc, v.nodeId, record.value, record.expiresAt, record.tags]
}

const isHlc = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0

/** The record a wire tuple carries, or undefined when malformed. */
export function parseRecord(w: unknown): ReplicaRecord | undefined {
  if (!Array.isArray(w) || (w.length !== 3 && w.length !== 5 && w.length !== 6)) return undefined
  const [key, hlc, nodeId, value, expiresAt, tags] = w as unknown[]
  if (typeof key !== 'string' || !isHlc(hlc) || typeof nodeId !== 'string') return undefined
  const version = { hlc, nodeId }
  if (w.length === 3) return { key, version, deleted: true }
  if (typeof value !== 'string' || typeof expiresAt !== 'number' || !(expiresAt >= 0)) return undefined
  if (tags !== undefined && !(Array.isArray(tags) && tags.every((t) => typeof t === 'string'))) return undefined
  return { key, version, value, expiresAt, tags: (tags as string[] | undefined) ?? [] }
}

/** True for a well-formed change. */
export function validChange(c: unknown): c is Change {
  if (c === null || typeof c !== 'object') return false
  const x = c as Record<string, unknown>
  if (x.t === 'r') return parseRecord(x.r) !== undefined
  if (x.t === 'c') return typeof x.p === 'string' && isHlc(x.h) && typeof x.n === 'string'
  if (x.t === 'i') return typeof x.g === 'string' && (x.m === 'hard' || x.m === 'soft') && isHlc(x.h)
  return false
}

/** The version a change carries (an invalidation's node id is ''). */
export function versionOf(c: Change): Version {
  if (c.t === 'r') return { hlc: c.r[1], nodeId: c.r[2] }
  if (c.t === 'c') return { hlc: c.h, nodeId: c.n }
  return { hlc: c.h, nodeId: '' }
}

/** Approximate bytes of a change on the wire (throttling and hint accounting). */
export function changeBytes(c: Change): number {
  if (c.t !== 'r') return 48 + (c.t === 'c' ? c.p.length : c.g.length)
  const r = c.r
  let n = 32 + r[0].length + r[2].length
  if (r.length >= 5) n += (r[3] as string).length + 16
  if (r.length === 6) for (const t of r[5]) n += t.length + 3
  return n
}
