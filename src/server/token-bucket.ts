/**
 * Per-client rate limiting (LoomCache's PerClientRateLimiter): one token bucket per client
 * address, `rate` tokens per second up to `burst`. Buckets are refilled lazily from the
 * clock on use (no timer). The table is bounded: past `maxClients` the least recently
 * used bucket is dropped (a dropped client starts again with a full bucket, which only
 * ever errs towards admitting).
 */
import type { Clock } from '../core/clock.js'

interface Bucket {
  tokens: number
  at: number
}

export class TokenBucketLimiter {
  readonly #clock: Clock
  readonly #rate: number
  readonly #burst: number
  readonly #maxClients: number
  // Map order is recency order: a used bucket is re-inserted at the end.
  readonly #buckets = new Map<string, Bucket>()

  constructor(clock: Clock, rate: number, burst: number, maxClients = 100_000) {
    this.#clock = clock
    this.#rate = rate
    this.#burst = burst
    this.#maxClients = maxClients
  }

  /** Takes one token for `client`: 0 when admitted, else the seconds until a token is due (>= 1). */
  take(client: string): number {
    const now = this.#clock.now()
    let bucket = this.#buckets.get(client)
    if (bucket === undefined) {
      bucket = { tokens: this.#burst, at: now }
      if (this.#buckets.size >= this.#maxClients) {
        const oldest = this.#buckets.keys().next()
        if (oldest.done !== true) this.#buckets.delete(oldest.value)
      }
    } else {
      this.#buckets.delete(client)
      bucket.tokens = Math.min(this.#burst, bucket.tokens + ((now - bucket.at) / 1000) * this.#rate)
      bucket.at = now
    }
    this.#buckets.set(client, bucket)
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return 0
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.#rate))
  }

  /** Clients currently tracked. */
  get size(): number {
    return this.#buckets.size
  }
}
