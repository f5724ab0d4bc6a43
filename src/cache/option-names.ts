/**
 * The option names a cache knows, held to their types (optionNames), and the check of a
 * cache's options against them at construction (core/known-options.ts). Per-call options
 * are not checked (a hot path); `wrap` and `@cached` check theirs once, when called.
 */
import { optionNames, rejectUnknown } from '../core/known-options.js'
import type { CircuitBreakerOptions } from '../resilience/circuit-breaker.js'
import type { RetryOptions } from '../resilience/guarded-store.js'
import type { OriginOptions } from '../tags/origin-lifetime.js'
import type { CacheOptions, EntryOptions, LockTimings } from './types.js'

const CACHE = optionNames<CacheOptions>({
  memory: true, defaults: true, flight: true, tags: true, maxKeyLength: true, store: true, codec: true, lock: true,
  closeStore: true, namespace: true, l2: true, clock: true, ticker: true, random: true, bus: true, origins: true,
})
/** Per-call options; `signal` belongs to a call, not to `defaults`. */
export const ENTRY_OPTIONS = optionNames<EntryOptions>({
  ttl: true, tti: true, tags: true, origins: true, grace: true, graceBackoff: true, timeout: true, refreshAhead: true,
  strategy: true, signal: true, lock: true,
})
/** `defaults` (and `@cached`): a call's options but `signal`. */
export const DEFAULT_OPTIONS = ENTRY_OPTIONS.filter((name) => name !== 'signal')
const TIMEOUT = optionNames<NonNullable<EntryOptions['timeout']>>({ soft: true, hard: true })
const LOCK_TIMINGS = optionNames<LockTimings>({ lease: true, wait: true })
const FLIGHT = optionNames<NonNullable<CacheOptions['flight']>>({ timeout: true, detectRecursion: true })
const TAGS = optionNames<NonNullable<CacheOptions['tags']>>({ pruneAge: true, pruneInterval: true })
const ORIGINS = optionNames<OriginOptions>({ versionTtl: true })
const L2 = optionNames<NonNullable<CacheOptions['l2']>>({ timeout: true, retry: true, breaker: true, writeQueue: true, strictWrites: true, touchInterval: true, touchQueue: true, l1MaxAge: true })
const RETRY = optionNames<RetryOptions>({ attempts: true, baseDelay: true, maxDelay: true })
const BREAKER = optionNames<CircuitBreakerOptions>({ failureThreshold: true, openFor: true, successThreshold: true, halfOpenProbes: true })

/** Checks an entry-options object's names (and its timeout and lock groups), named under `prefix`. */
export function checkEntryOptionNames(options: object, prefix: string, known: readonly string[] = ENTRY_OPTIONS): void {
  rejectUnknown(options, known, prefix)
  const o = options as EntryOptions
  if (isGroup(o.timeout)) rejectUnknown(o.timeout, TIMEOUT, join(prefix, 'timeout'))
  if (isGroup(o.lock)) rejectUnknown(o.lock, LOCK_TIMINGS, join(prefix, 'lock'))
}

/**
 * Checks a cache's option names, group by group (`memory`'s are the engine's own check).
 * Groups of the wrong type are left to the checks of their values.
 */
export function checkCacheOptionNames(options: CacheOptions): void {
  rejectUnknown(options, CACHE, '')
  if (isGroup(options.defaults)) checkEntryOptionNames(options.defaults, 'defaults', DEFAULT_OPTIONS)
  if (isGroup(options.flight)) rejectUnknown(options.flight, FLIGHT, 'flight')
  if (isGroup(options.tags)) rejectUnknown(options.tags, TAGS, 'tags')
  if (isGroup(options.origins)) rejectUnknown(options.origins, ORIGINS, 'origins')
  if (isGroup(options.lock)) rejectUnknown(options.lock, [...LOCK_TIMINGS, 'mode'], 'lock')
  const l2 = options.l2
  if (isGroup(l2)) {
    rejectUnknown(l2, L2, 'l2')
    if (isGroup(l2.retry)) rejectUnknown(l2.retry, RETRY, 'l2.retry')
    if (isGroup(l2.breaker)) rejectUnknown(l2.breaker, BREAKER, 'l2.breaker')
  }
}

function isGroup(value: unknown): value is object {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function join(prefix: string, name: string): string {
  return prefix === '' ? name : `${prefix}.${name}`
}
