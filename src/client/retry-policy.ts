/**
 * LoomCache's client retry policy, as numbers.
 *
 * - A failed attempt that may be retried waits `min(maxDelay, baseDelay × 2^n) × (1 ± jitter)`
 *   before retry n (n = 0, 1, 2 …), never more than `maxDelay`: 100 ms, 200 ms, 400 ms with
 *   the defaults, each ±25 %. The jitter spreads a herd of clients that failed together.
 * - A busy answer (503, 429) waits the node's `Retry-After` (stretched by up to +jitter,
 *   never shortened: the node asked for at least that long) or, without one, the same
 *   exponential schedule counted over busy answers. Busy waits do not spend the retry
 *   budget (the node is alive and said so), but every wait of a call, busy or not, must end
 *   before the call's `maxElapsed` deadline: a wait that would pass it fails the call at once
 *   instead of sleeping in vain. That is what bounds a caller against a node that stays
 *   busy forever.
 * The exponential schedule is the shared `BackoffPolicy` (core/backoff.ts), built once here
 * from the client's `retry` options.
 */
import { BackoffPolicy } from '../core/backoff.js'
import type { Random } from '../core/random.js'

export interface RetryPolicyConfig {
  readonly retries: number
  readonly baseDelay: number
  readonly maxDelay: number
  readonly jitter: number
}

export class RetryPolicy {
  readonly #c: RetryPolicyConfig
  readonly #random: Random
  readonly #backoff: BackoffPolicy

  constructor(config: RetryPolicyConfig, random: Random) {
    this.#c = config
    this.#random = random
    this.#backoff = new BackoffPolicy({ initial: config.baseDelay, max: config.maxDelay, jitter: config.jitter }, random, 'retry')
  }

  get retries(): number {
    return this.#c.retries
  }

  /** Delay before retry number `n` (0-based). */
  delay(n: number): number {
    return this.#backoff.delay(n)
  }

  /** Delay after the `n`-th busy answer (0-based), honouring `Retry-After` seconds when given. */
  busyDelay(n: number, retryAfterSeconds: number | undefined): number {
    // A Retry-After of 0 (a proxy's: a node sends at least 1) would repeat the request at once, in a burst: the backoff instead.
    if (retryAfterSeconds === undefined || retryAfterSeconds === 0) return this.delay(n)
    return retryAfterSeconds * 1000 * (1 + this.#c.jitter * this.#random.next())
  }
}

/** Parses a `Retry-After` header given in seconds (the HTTP-date form is not used by nodes). */
export function parseRetryAfter(header: string | undefined): number | undefined {
  if (header === undefined) return undefined
  const trimmed = header.trim()
  if (!/^\d{1,9}$/.test(trimmed)) return undefined
  return Number(trimmed)
}
