/**
 * A circuit breaker (cachekit's): keeps a dead L2 from slowing every caller.
 *
 * - closed: calls pass; `failureThreshold` consecutive failures open the circuit;
 * - open: calls are refused at once (`ERR_STORE_UNAVAILABLE`) until `openFor` has passed;
 * - half-open: up to `halfOpenProbes` calls pass as probes; `successThreshold` successes
 *   close the circuit, any failure opens it again for another `openFor`.
 *
 * State changes are computed on use from the injected clock: no timer runs, so an idle
 * breaker costs nothing and tests drive it with a ManualClock.
 */
import type { Clock } from '../core/clock.js'
import { toMs, type Duration } from '../core/duration.js'
import { InvalidOptionsError } from '../core/errors.js'

export type BreakerState = 'closed' | 'open' | 'half-open'

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. @default 5 */
  failureThreshold?: number
  /** How long an open circuit refuses calls before probing. @default '30s' */
  openFor?: Duration
  /** Successful probes that close a half-open circuit. @default 3 */
  successThreshold?: number
  /** Probes allowed at once while half-open. @default 1 */
  halfOpenProbes?: number
}

export interface BreakerStats {
  readonly state: BreakerState
  /** Times the circuit opened. */
  readonly opened: number
  /** Calls refused while open. */
  readonly rejected: number
}

export class CircuitBreaker {
  readonly #clock: Clock
  readonly #failureThreshold: number
  readonly #openFor: number
  readonly #successThreshold: number
  readonly #halfOpenProbes: number
  #state: BreakerState = 'closed'
  #failures = 0
  #successes = 0
  #probes = 0
  #openedAt = 0
  #opened = 0
  #rejected = 0
  /** Called after each state change (the tier replays queued writes on 'closed'). */
  onChange: ((state: BreakerState) => void) | undefined

  constructor(clock: Clock, options: CircuitBreakerOptions = {}, prefix = 'breaker.') {
    this.#clock = clock
    this.#failureThreshold = count(options.failureThreshold ?? 5, `${prefix}failureThreshold`)
    this.#openFor = toMs(options.openFor ?? '30s', `${prefix}openFor`)
    this.#successThreshold = count(options.successThreshold ?? 3, `${prefix}successThreshold`)
    this.#halfOpenProbes = count(options.halfOpenProbes ?? 1, `${prefix}halfOpenProbes`)
  }

  get state(): BreakerState {
    if (this.#state === 'open' && this.#clock.now() - this.#openedAt >= this.#openFor) this.#set('half-open')
    return this.#state
  }

  /**
   * Asks to make a call. False: refused (open, or half-open with all probe slots taken).
   * A true answer must be followed by exactly one `success()` or `failure()`.
   */
  tryAcquire(): boolean {
    switch (this.state) {
      case 'closed':
        return true
      case 'open':
        this.#rejected++
        return false
      case 'half-open':
        if (this.#probes >= this.#halfOpenProbes) {
          this.#rejected++
          return false
        }
        this.#probes++
        return true
    }
  }

  success(): void {
    if (this.#state === 'half-open') {
      this.#probes = Math.max(0, this.#probes - 1)
      if (++this.#successes >= this.#successThreshold) this.#set('closed')
      return
    }
    this.#failures = 0
  }

  failure(): void {
    if (this.#state === 'half-open') {
      this.#probes = Math.max(0, this.#probes - 1)
      this.#open()
      return
    }
    if (this.#state === 'closed' && ++this.#failures >= this.#failureThreshold) this.#open()
  }

  stats(): BreakerStats {
    return { state: this.state, opened: this.#opened, rejected: this.#rejected }
  }

  #open(): void {
    this.#openedAt = this.#clock.now()
    this.#opened++
    this.#set('open')
  }

  #set(state: BreakerState): void {
    this.#state = state
    this.#failures = 0
    this.#successes = 0
    if (state !== 'half-open') this.#probes = 0
    this.onChange?.(state)
  }
}

function count(n: number, option: string): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidOptionsError(option, `expected a positive integer, got ${String(n)}`)
  return n
}
