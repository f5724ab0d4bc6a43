/**
 * The node's invalidation stream, `GET /v1/watch` (docs/guide/cluster-client.md): the
 * messages, the partition of a key, and a strict parser for what arrives on the client.
 *
 * Framing: Server-Sent Events (`text/event-stream`), one message per event, `data:` one
 * line of JSON. Every message carries the node's `sourceId` (random per node boot).
 *
 * Sequences (the scheme of Hazelcast's near-cache repair, our own code): keys fall into
 * `WATCH_PARTITIONS` partitions by `watchPartition(key)`; each partition has its own
 * sequence, raised by one for every change applied to a key in it, so a client that sees
 * sequence n+2 after n lost exactly the partition's n+1 and drops that partition only.
 * Changes that concern every key (a clear, a tag invalidation) go on one more sequence,
 * the *global* partition (index `WATCH_PARTITIONS`): a gap there drops everything.
 *
 * Messages:
 * - `hello`  `{ t:'hello', s, seqs, interval }` first on every stream: the current
 *   sequence of every partition (`seqs.length === WATCH_PARTITIONS + 1`, the global one
 *   last) and the metadata interval in ms;
 * - `key`    `{ t:'key', s, p, q, k }` key `k` (partition `p`) changed; its sequence `q`;
 * - `all`    `{ t:'all', s, q, why, prefix?, tags? }` a clear (`why:'clear'`, `prefix`)
 *   or a tag invalidation (`why:'tags'`, `tags`): global sequence `q`;
 * - `meta`   `{ t:'meta', s, seqs }` every `interval` ms: the current sequences, so a
 *   quiet stream still reveals a lost message.
 */

/** Partitions of the key space on the stream (a prime, as Hazelcast's 271). */
export const WATCH_PARTITIONS = 271
/** Index of the global sequence in `seqs`. */
export const WATCH_GLOBAL = WATCH_PARTITIONS
/** Path of the stream. */
export const WATCH_PATH = '/v1/watch'

export interface WatchHello {
  readonly t: 'hello'
  readonly s: string
  readonly seqs: readonly number[]
  /** Metadata interval, ms. */
  readonly interval: number
}

export interface WatchKey {
  readonly t: 'key'
  readonly s: string
  readonly p: number
  readonly q: number
  readonly k: string
}

export interface WatchAll {
  readonly t: 'all'
  readonly s: string
  readonly q: number
  readonly why: 'clear' | 'tags'
  readonly prefix?: string
  readonly tags?: readonly string[]
}

export interface WatchMeta {
  readonly t: 'meta'
  readonly s: string
  readonly seqs: readonly number[]
}

export type WatchMessage = WatchHello | WatchKey | WatchAll | WatchMeta

/**
 * The partition of `key`: FNV-1a over its UTF-16 code units, modulo `WATCH_PARTITIONS`.
 * The node and the client compute it alike.
 */
export function watchPartition(key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193)
  return (h >>> 0) % WATCH_PARTITIONS
}

/** One SSE event carrying `message`. */
export function encodeWatchEvent(message: WatchMessage): string {
  return `data: ${JSON.stringify(message)}\n\n`
}

const isSeq = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

function seqsOf(v: unknown): number[] | undefined {
  if (!Array.isArray(v) || v.length !== WATCH_PARTITIONS + 1) return undefined
  for (const x of v) if (!isSeq(x)) return undefined
  return v as number[]
}

/** The message in one SSE `data` line, or `undefined` when it is not a valid one (ignored by the client). */
export function parseWatchMessage(data: string): WatchMessage | undefined {
  let v: unknown
  try {
    v = JSON.parse(data)
  } catch {
    return undefined
  }
  if (v === null || typeof v !== 'object') return undefined
  const m = v as Record<string, unknown>
  if (typeof m.s !== 'string' || m.s === '') return undefined
  switch (m.t) {
    case 'hello': {
      const seqs = seqsOf(m.seqs)
      if (seqs === undefined || typeof m.interval !== 'number' || !(m.interval > 0)) return undefined
      return { t: 'hello', s: m.s, seqs, interval: m.interval }
    }
    case 'key':
      if (!isSeq(m.q) || typeof m.k !== 'string' || m.p !== watchPartition(m.k)) return undefined
      return { t: 'key', s: m.s, p: m.p, q: m.q, k: m.k }
    case 'all':
      if (!isSeq(m.q) || (m.why !== 'clear' && m.why !== 'tags')) return undefined
      if (m.why === 'clear') return { t: 'all', s: m.s, q: m.q, why: 'clear', prefix: typeof m.prefix === 'string' ? m.prefix : '' }
      if (!Array.isArray(m.tags) || !m.tags.every((t) => typeof t === 'string')) return undefined
      return { t: 'all', s: m.s, q: m.q, why: 'tags', tags: m.tags as string[] }
    case 'meta': {
      const seqs = seqsOf(m.seqs)
      return seqs === undefined ? undefined : { t: 'meta', s: m.s, seqs }
    }
  }
  return undefined
}
