/**
 * The one backoff policy of every retry and reconnect loop (bus transports and the Bus,
 * change feeds, the Redis and LMDB stores, the node client and its probes): exponential,
 * capped, jittered, with randomness from the injected `Random`.
 *
 * Delay before retry `n` (0-based): `d = min(max, initial × 2^n)`, then
 * - `jitter: j` (a fraction in [0, 1)): uniform in `d × [1 − j, 1 + j]`, never above `max`;
 * - `jitter: 'full'`: uniform in `[0, d)` (AWS's "full jitter"; spreads most, but a
 *   delay may be near 0).
 * Defaults are LoomCache's client retry numbers: 100 ms doubling to 5 s, ±25 %.
 *
 * Why jitter everywhere: a broker or store restart drops every process's connection at the
 * same instant; without jitter every process dials again on the same schedule, so the
 * returning server meets the whole fleet in one burst at each step (measured in
 * test/bus/reconnect-spread.test.ts: 20 Redis subscribers came back within a few ms of
 * each other before this policy). A ±25 % draw compounds over the attempts made while the
 * server is away, so the fleet arrives spread over hundreds of ms.
 *
 * Options are normalized once, at construction (a loop then only calls `next()`), and
 * every loop keeps its own attempt counter (`Backoff`) over a shared, immutable policy.
 */
import { toMs, type Duration } from './duration.js'
import { InvalidOptionsError } from './errors.js'
import { mathRandom, type Random } from './random.js'

export interface BackoffOptions {
  /** First delay. @default '100ms' (each loop documents its own if different) */
  initial?: Duration
  /** The delay doubles per failed attempt up to this. @default '5s' */
  max?: Duration
  /**
   * A fraction j in [0, 1): each delay is drawn in `d × [1 − j, 1 + j]` (never above `max`);
   * or `'full'`: drawn in `[0, d)`. `0` gives the bare doubling schedule.
   * @default 0.25
   */
  jitter?: number | 'full'
}

/** The options of a reconnect loop (bus transports, change feeds, the Redis store). */
export type ReconnectOptions = BackoffOptions

/** Resolved numbers: ms, and the jitter. */
export interface BackoffConfig {
  readonly initial: number
  readonly max: number
  readonly jitter: number | 'full'
}

/** LoomCache's numbers: 100 ms doubling to 5 s, ±25 %. */
export const DEFAULT_BACKOFF: BackoffConfig = Object.freeze({ initial: 100, max: 5_000, jitter: 0.25 })

/** Past this many doublings every delay is the cap anyway; stops 2^n from overflowing. */
const MAX_DOUBLINGS = 52

export class BackoffPolicy {
  readonly initial: number
  readonly max: number
  readonly jitter: number | 'full'
  readonly #random: Random

  /**
   * From resolved numbers (validated; `prefix` names the option group in errors, e.g.
   * `'bus.reconnect'`). Use `backoffPolicy` to start from user options with durations.
   */
  constructor(config: BackoffConfig, random: Random = mathRandom, prefix = 'backoff') {
    const { initial, max, jitter } = config
    if (!(typeof initial === 'number' && initial > 0 && Number.isFinite(initial))) throw new InvalidOptionsError(`${prefix}.initial`, 'expected a finite duration > 0')
    if (!(typeof max === 'number' && max >= initial && Number.isFinite(max))) throw new InvalidOptionsError(`${prefix}.max`, 'expected a finite duration >= initial')
    if (jitter !== 'full' && !(typeof jitter === 'number' && jitter >= 0 && jitter < 1)) {
      throw new InvalidOptionsError(`${prefix}.jitter`, `expected a fraction in [0, 1) or 'full', got ${String(jitter)}`)
    }
    if (typeof random?.next !== 'function') throw new InvalidOptionsError(`${prefix}.random`, 'expected a Random')
    this.initial = initial
    this.max = max
    this.jitter = jitter
    this.#random = random
  }

  /** The delay before retry `n` (0-based) without jitter: `min(max, initial × 2^n)`. */
  ceiling(n: number): number {
    return Math.min(this.max, this.initial * 2 ** Math.min(Math.max(0, n), MAX_DOUBLINGS))
  }

  /** The delay before retry `n` (0-based), jittered; one draw from the Random (none when jitter is 0). */
  delay(n: number): number {
    const d = this.ceiling(n)
    const j = this.jitter
    if (j === 'full') return d * this.#random.next()
    if (j === 0) return d
    return Math.min(this.max, d * (1 + j * (2 * this.#random.next() - 1)))
  }

  /** A fresh attempt counter over this policy (one per loop). */
  attempts(): Backoff {
    return new Backoff(this)
  }
}

/** One loop's attempts: `next()` after each failure, `reset()` after a success. */
export class Backoff {
  readonly policy: BackoffPolicy
  #attempt = 0
  /** The current attempt's delay once drawn, so `current()` and `next()` agree. */
  #drawn: number | undefined

  constructor(policy: BackoffPolicy) {
    this.policy = policy
  }

  /** Failed attempts counted since the last reset. */
  get attempt(): number {
    return this.#attempt
  }

  /** The delay before the next attempt, counting one. */
  next(): number {
    const d = this.#drawn ?? this.policy.delay(this.#attempt)
    this.#drawn = undefined
    this.#attempt++
    return d
  }

  /**
   * The delay `next()` will return, without counting an attempt: drawn once per attempt,
   * so a caller that asks repeatedly (the nats client asks on every turn of its dial loop)
   * sees one value, not a new draw each time.
   */
  current(): number {
    this.#drawn ??= this.policy.delay(this.#attempt)
    return this.#drawn
  }

  reset(): void {
    this.#attempt = 0
    this.#drawn = undefined
  }
}

/**
 * Normalizes user options (`{ initial, max, jitter }`, durations allowed) into a policy,
 * once. `prefix` names the option in errors; `defaults` are the loop's own numbers.
 */
export function backoffPolicy(options: BackoffOptions | undefined, prefix: string, random: Random = mathRandom, defaults: BackoffConfig = DEFAULT_BACKOFF): BackoffPolicy {
  if (options !== undefined && (options === null || typeof options !== 'object')) throw new InvalidOptionsError(prefix, 'expected an object { initial, max, jitter }')
  const initial = toMs(options?.initial ?? defaults.initial, `${prefix}.initial`)
  const max = toMs(options?.max ?? defaults.max, `${prefix}.max`)
  return new BackoffPolicy({ initial, max, jitter: options?.jitter ?? defaults.jitter }, random, prefix)
}
