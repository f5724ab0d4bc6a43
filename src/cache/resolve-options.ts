/**
 * Option resolution for the facade (moved out of cache.ts): per-call `EntryOptions` merged
 * over the cache's defaults, validated and converted to ms once, and the signature of a tag
 * definition (an entry written under another one is a miss).
 */
import { toMs } from '../core/duration.js'
import { InvalidOptionsError } from '../core/errors.js'
import { descriptorList } from '../feeds/origin-index.js'
import { originSignature } from '../feeds/origin-tags.js'
import type { OriginDescriptor } from '../feeds/types.js'
import type { EntryOptions, Strategy, TagsOption } from './types.js'

/** Options merged with the defaults, validated and converted once. */
export interface Resolved<V> {
  ttl: number
  tti: number
  tags: TagsOption<V> | undefined
  tagSig: string
  /** The part of `tagSig` that the tags make (`tagSig` adds the origins', see origin-tags.ts). */
  tagPart: string
  grace: number
  graceBackoff: number
  soft: number
  hard: number
  refreshAhead: number
  strategy: Strategy
  signal: AbortSignal | undefined
  lockLease: number
  lockWait: number
  /** Validated descriptors, or a function of the value (validated when called). */
  origins: readonly OriginDescriptor[] | ((value: V) => unknown) | undefined
  /**
   * True when an entry written with these options needs nothing beyond the engine's TTL and
   * TTI (no tags, origins, grace or refresh-ahead): in L1 it is stored bare, and an explicit
   * `set` of it into L1 alone takes the writer's short path (EntryWriter#storeBare).
   */
  bare: boolean
  /** Internal: keys whose L2 record was read an instant ago (getOrSetMany's batch read). */
  l2Checked?: ReadonlySet<string>
}

const STRATEGIES: readonly Strategy[] = ['none', 'async', 'stampede', 'stampede-async']

const DEFAULT_TTL = 300_000

/** A duration option that must be > 0 (already in ms). */
export function positive(ms: number, option: string): number {
  if (ms <= 0) throw new InvalidOptionsError(option, 'expected a duration > 0')
  return ms
}

/** Merges per-call options over the defaults and validates them (once per call). */
export function resolveOptions<V>(options: EntryOptions<V>, defaults: Resolved<V> | undefined, prefix: string): Resolved<V> {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError(`${prefix}options`, 'expected an object')
  const d = defaults
  const strategy = options.strategy ?? d?.strategy ?? 'stampede'
  if (!STRATEGIES.includes(strategy)) throw new InvalidOptionsError(`${prefix}strategy`, `expected one of ${STRATEGIES.join(', ')}, got ${JSON.stringify(strategy)}`)
  const refreshAhead = options.refreshAhead ?? d?.refreshAhead ?? 0
  if (typeof refreshAhead !== 'number' || !(refreshAhead === 0 || (refreshAhead > 0 && refreshAhead < 1))) {
    throw new InvalidOptionsError(`${prefix}refreshAhead`, `expected a fraction in (0, 1), got ${String(refreshAhead)}`)
  }
  const tags = options.tags ?? d?.tags
  if (tags !== undefined && typeof tags !== 'function' && !Array.isArray(tags)) throw new InvalidOptionsError(`${prefix}tags`, 'expected an array of tags or a function')
  const timeout = options.timeout
  // A shape other than an object was silently ignored (`timeout: 5`, `lock: 'local'`): no timeout, default lock timings.
  if (timeout !== undefined && (timeout === null || typeof timeout !== 'object' || Array.isArray(timeout))) throw new InvalidOptionsError(`${prefix}timeout`, `expected an object { soft?, hard? }, got ${JSON.stringify(timeout)}`)
  const lock = options.lock
  if (lock !== undefined && (lock === null || typeof lock !== 'object' || Array.isArray(lock))) throw new InvalidOptionsError(`${prefix}lock`, `expected an object { lease?, wait? } (the lock's mode is createCache's lock option), got ${JSON.stringify(lock)}`)
  const soft = timeout?.soft === undefined ? (d?.soft ?? Infinity) : positive(toMs(timeout.soft, `${prefix}timeout.soft`), `${prefix}timeout.soft`)
  const hard = timeout?.hard === undefined ? (d?.hard ?? Infinity) : positive(toMs(timeout.hard, `${prefix}timeout.hard`), `${prefix}timeout.hard`)
  // Given together, a soft timeout at or past the hard one could never fire (the fail-safe fallback would never be served early).
  if (timeout?.soft !== undefined && timeout.hard !== undefined && soft >= hard) throw new InvalidOptionsError(`${prefix}timeout.soft`, `expected a soft timeout below the hard one (${soft} ms >= ${hard} ms)`)
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new InvalidOptionsError(`${prefix}signal`, 'expected an AbortSignal')
  const signed = (options as Signed)[TAG_SIG]
  const origins = options.origins === undefined ? d?.origins : typeof options.origins === 'function' ? options.origins : descriptorList(options.origins, `${prefix}origins`)
  const tagPart = signed ?? (options.tags === undefined && d !== undefined ? d.tagPart : tagSignature(tags))
  // Origins are part of the definition: without them the signature is the tags' alone.
  const tagSig = origins === undefined ? tagPart : options.origins === undefined && d !== undefined && tagPart === d.tagPart ? d.tagSig : tagPart + originSignature(origins)
  // Validated in this order (ttl, tti, grace, then the rest): the first bad one is reported.
  const ttl = options.ttl === undefined ? (d?.ttl ?? DEFAULT_TTL) : positive(toMs(options.ttl, `${prefix}ttl`), `${prefix}ttl`)
  const tti = options.tti === undefined ? (d?.tti ?? Infinity) : positive(toMs(options.tti, `${prefix}tti`), `${prefix}tti`)
  const grace = options.grace === undefined ? (d?.grace ?? 0) : toMs(options.grace, `${prefix}grace`)
  return {
    origins,
    tagPart,
    tagSig,
    ttl,
    tti,
    tags,
    grace,
    graceBackoff: options.graceBackoff === undefined ? (d?.graceBackoff ?? 1000) : positive(toMs(options.graceBackoff, `${prefix}graceBackoff`), `${prefix}graceBackoff`),
    soft,
    hard,
    refreshAhead,
    strategy,
    signal: options.signal,
    lockLease: options.lock?.lease === undefined ? (d?.lockLease ?? 10_000) : positive(toMs(options.lock.lease, `${prefix}lock.lease`), `${prefix}lock.lease`),
    lockWait: options.lock?.wait === undefined ? (d?.lockWait ?? 5_000) : toMs(options.lock.wait, `${prefix}lock.wait`),
    bare: tags === undefined && origins === undefined && tagSig === '' && grace === 0 && refreshAhead === 0,
  }
}

/** Lets `wrap` pass the signature of the user's tag function through a per-call closure. */
export const TAG_SIG = Symbol('stratacache.tagSig')
export interface Signed {
  [TAG_SIG]?: string
}

const signatures = new WeakMap<object, string>()

/**
 * A string identifying a tag definition: the tags themselves for a fixed list, the source
 * text of a tag function. A function's is kept per function (its source is long, and one
 * function serves many calls); a list's is joined per call: lists are mostly fresh literals,
 * and keeping each in a WeakMap cost more than the join (an insert per call, and
 * ephemeron work in every scavenge).
 */
export function tagSignature(tags: unknown): string {
  if (tags === undefined) return ''
  if (typeof tags !== 'function') {
    const list = tags as readonly string[]
    return list.length === 1 && typeof list[0] === 'string' ? list[0] : list.join(',')
  }
  let sig = signatures.get(tags)
  if (sig === undefined) {
    sig = `fn:${String(tags)}`
    signatures.set(tags, sig)
  }
  return sig
}
