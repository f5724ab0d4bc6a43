/**
 * Bounding the L2 cost of change notices: origin-tag versions expire, and so do the
 * entries they guard, first.
 *
 * The leak. Every notice hard-invalidates up to 7 origin tags (origin-tags.ts), and every
 * invalidation writes the tag's version to L2. User-tag versions are kept forever (a
 * version key is all that stands between a record and a process that never heard the
 * invalidation), but origin tags are one per changed document: a feed over millions of
 * documents would add millions of keys a day to Redis or LMDB, for ever.
 *
 * The bound. Origin-tag version keys (the reserved `@origin` namespace only, so never a
 * key a user tag's entry is judged by) are written with a finite TTL T
 * (`origins.versionTtl`), and every entry that carries origins lives in L2 — and in any
 * L1 — at most T from the moment its computation started: its `keepUntil` (hence the L2
 * record's TTL, the TTI touches, the L1 copy of every process that adopts it) is capped at
 * `start + T`, `freshUntil` at `keepUntil`.
 *
 * Why that is safe. A version key matters only to a record whose snapshot version s is
 * older than the notice's version v. Call r_s the (real) time the record's computation
 * started — where s was taken — and r_n the time the notice was published; the record
 * leaves the store by r_s + T, the version key by r_n + T (both TTLs are durations handed
 * to the store: Redis and the memory store count them on one clock; the guarded store's
 * replay queue keeps the absolute deadline of the process that queued). So as long as
 * r_n ≥ r_s, whenever the record can still be read from L2, the version that invalidates
 * it is still there (a newer notice on the same tag rewrites the key and restarts its TTL:
 * later still). And r_n < r_s with v > s is a notice that happened before the data was
 * read (its version orders after s only because the clocks disagree): the value already
 * reflects it, and serving it once the key is gone is correct. Capping at the START of the
 * computation, not at the write, matters: a notice that lands while the factory runs
 * makes the result invalid (s < v), and a record capped at write + T would outlive that
 * notice's key by the factory's run time.
 *
 * With clock skew. Where a store takes expiry from the writing process's clock (LMDB: an
 * absolute time, compared with the reader's clock) a writer whose clock runs ahead by δ
 * of the hearer's keeps its record δ longer, and the record may outlive the key if
 * r_n − r_s < δ: a notice within the skew of the computation's start. That is the window
 * in which hybrid-clock versions can already order a notice before the snapshot (the
 * tags' documented cross-process bound), so the TTL adds no new window. A process clock
 * that steps BACK by Δ between the start of a computation and its write lengthens that
 * record's life by Δ (durations are measured on it); keep T far above any such step.
 * On one host (LMDB) and with Redis (server-side TTL) δ is 0.
 *
 * What users see. An entry with origins whose TTL (plus grace) exceeds T is kept for T
 * and then recomputed: T is a ceiling on the lifetime of such entries, in every tier.
 * `origins.versionTtl: Infinity` restores unbounded version keys and uncapped entries.
 * A cache without L2 writes no version keys and caps nothing.
 */
import { type Duration, toMs } from '../core/duration.js'
import { InvalidOptionsError } from '../core/errors.js'
import { isOriginTag } from './validate-tag.js'

/** The default `origins.versionTtl`: one day. */
export const DEFAULT_ORIGIN_VERSION_TTL = 86_400_000

export interface OriginOptions {
  /**
   * How long an origin tag's version (written to L2 by a change notice) is kept there; also
   * the longest an entry with origins lives in any tier, counted from the start of its
   * computation. `Infinity`: versions are kept for ever, entries are not capped.
   * @default '1d'
   */
  versionTtl?: Duration
}

/** Validates `origins` cache options once; returns T in ms. */
export function resolveOriginOptions(options: OriginOptions | undefined): number {
  if (options === undefined) return DEFAULT_ORIGIN_VERSION_TTL
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('origins', 'expected an object { versionTtl }')
  if (options.versionTtl === undefined) return DEFAULT_ORIGIN_VERSION_TTL
  const ms = toMs(options.versionTtl, 'origins.versionTtl')
  if (!(ms > 0)) throw new InvalidOptionsError('origins.versionTtl', 'expected a duration > 0 (Infinity keeps versions for ever)')
  return ms
}

/** The L2 TTL of a tag's version key: T for origin tags, for ever for user tags. */
export function versionKeyTtl(tag: string, versionTtl: number): number {
  return isOriginTag(tag) ? versionTtl : Infinity
}

/** An entry's deadlines capped at `since + versionTtl` (freshness never past keepUntil). */
export interface Lifetime {
  readonly freshUntil: number
  readonly keepUntil: number
}

export function capLifetime(freshUntil: number, keepUntil: number, since: number, versionTtl: number): Lifetime {
  const limit = since + versionTtl
  if (keepUntil <= limit) return { freshUntil, keepUntil }
  return { freshUntil: Math.min(freshUntil, limit), keepUntil: limit }
}
