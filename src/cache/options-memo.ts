/**
 * Per-call options that change more than the TTL, as users write them: a fresh
 * `{ ttl: '1h', tags: ['user'] }` or `{ ttl, grace: '1d' }` literal per call. Cache#resolve
 * answers the defaults and `{ ttl }` shapes from its own memo; this one keeps the last
 * MEMO_SIZE other shapes, compared by value (tags element by element), each with its
 * resolution, so that a call repeating one of them neither validates nor allocates.
 *
 * Only options whose fields are plain values (ttl, tti, grace, graceBackoff, refreshAhead,
 * strategy) and tags (an array, or a function compared by identity) are kept; origins, a
 * timeout, lock timings, a signal, or a wrap's signed tags go to resolveOptions per call as
 * before. A kept shape holds its own copy of the tags array: the caller may reuse or change
 * its array after the call.
 *
 * Tags that change per call (`tags: ['user:' + id]`, the other common shape) cannot be
 * kept; when the rest of the options match a kept shape (and no origins are in force), the
 * resolution is that shape's with the tags and their signature replaced (resolveOptions'
 * result, field for field: without origins no other field depends on the tags, and `bare`
 * is false with tags present), one object per call instead of a full resolution.
 */
import type { EntryOptions, Strategy, TagsOption } from './types.js'
import type { Duration } from '../core/duration.js'
import { type Resolved, resolveOptions, type Signed, TAG_SIG, tagSignature } from './resolve-options.js'

/** Shapes kept (round robin): a handful of call sites, each with its own literal. */
const MEMO_SIZE = 8

interface Kept<V> {
  ttl: Duration | undefined
  tti: Duration | undefined
  grace: Duration | undefined
  graceBackoff: Duration | undefined
  refreshAhead: number | undefined
  strategy: Strategy | undefined
  /** A private copy of an array, the function itself, or undefined. */
  tags: TagsOption<unknown> | undefined
  resolved: Resolved<V>
}

export class OptionsMemo<V> {
  readonly #kept: Kept<V>[] = []
  #next = 0
  readonly #defaults: Resolved<V>

  constructor(defaults: Resolved<V>) {
    this.#defaults = defaults
  }

  /** The resolution of `options` (an object), from the memo when a kept shape equals it. */
  resolve(options: EntryOptions<V>): Resolved<V> {
    const tags = options.tags
    if (
      options.origins !== undefined ||
      options.timeout !== undefined ||
      options.lock !== undefined ||
      options.signal !== undefined ||
      (options as Signed)[TAG_SIG] !== undefined ||
      (tags !== undefined && typeof tags !== 'function' && !Array.isArray(tags))
    ) {
      return resolveOptions(options, this.#defaults, '')
    }
    let sameRest: Kept<V> | undefined
    for (const k of this.#kept) {
      if (
        k.ttl === options.ttl &&
        k.tti === options.tti &&
        k.grace === options.grace &&
        k.graceBackoff === options.graceBackoff &&
        k.refreshAhead === options.refreshAhead &&
        k.strategy === options.strategy
      ) {
        if (sameTags(k.tags, tags)) return k.resolved
        if (Array.isArray(tags) && Array.isArray(k.tags)) sameRest = k
      }
    }
    if (sameRest !== undefined && sameRest.resolved.origins === undefined) {
      // Same fields, other tags (checked as resolveOptions checks them: an array).
      const sig = tagSignature(tags)
      return { ...sameRest.resolved, tags: tags as TagsOption<V>, tagPart: sig, tagSig: sig, bare: false }
    }
    const copy = Array.isArray(tags) ? (tags as readonly string[]).slice() : tags
    // Validates (a bad option throws, and nothing is kept).
    const resolved = resolveOptions({ ...options, tags: copy } as EntryOptions<V>, this.#defaults, '')
    const kept: Kept<V> = {
      ttl: options.ttl,
      tti: options.tti,
      grace: options.grace,
      graceBackoff: options.graceBackoff,
      refreshAhead: options.refreshAhead,
      strategy: options.strategy,
      tags: copy as TagsOption<unknown> | undefined,
      resolved,
    }
    if (this.#kept.length < MEMO_SIZE) this.#kept.push(kept)
    else {
      this.#kept[this.#next] = kept
      this.#next = (this.#next + 1) % MEMO_SIZE
    }
    return resolved
  }
}

/** Equal tag definitions: both absent, the same function, or arrays equal element by element. */
function sameTags(kept: unknown, given: unknown): boolean {
  if (kept === given) return true
  if (!Array.isArray(kept) || !Array.isArray(given) || kept.length !== given.length) return false
  for (let i = 0; i < kept.length; i++) if (kept[i] !== given[i]) return false
  return true
}
