/**
 * Reconnect delays shared by the broker transports and change feeds: `initial` (100 ms)
 * doubling per failed attempt up to `max` (5 s), reset by a successful connection. No
 * jitter: each process has one connection per broker, so there is no herd to spread.
 */
import { toMs, type Duration } from '../core/duration.js'
import { InvalidOptionsError } from '../core/errors.js'

export interface ReconnectOptions {
  /** First delay after a connection is lost. @default '100ms' */
  initial?: Duration
  /** The delay doubles per failed attempt up to this. @default '5s' */
  max?: Duration
}

export class ReconnectBackoff {
  readonly initial: number
  readonly max: number
  #attempt = 0

  constructor(options: ReconnectOptions | undefined, prefix: string) {
    if (options !== undefined && (options === null || typeof options !== 'object')) throw new InvalidOptionsError(prefix, 'expected an object { initial, max }')
    this.initial = toMs(options?.initial ?? 100, `${prefix}.initial`)
    this.max = toMs(options?.max ?? 5_000, `${prefix}.max`)
    if (!(this.initial > 0 && Number.isFinite(this.initial))) throw new InvalidOptionsError(`${prefix}.initial`, 'expected a finite duration > 0')
    if (!(this.max >= this.initial && Number.isFinite(this.max))) throw new InvalidOptionsError(`${prefix}.max`, 'expected a finite duration >= initial')
  }

  /** The delay before the next attempt (100, 200, 400, … up to max). */
  next(): number {
    const delay = Math.min(this.max, this.initial * 2 ** Math.min(this.#attempt, 30))
    this.#attempt++
    return delay
  }

  /** The delay `next()` would return, without counting an attempt. */
  current(): number {
    return Math.min(this.max, this.initial * 2 ** Math.min(this.#attempt, 30))
  }

  reset(): void {
    this.#attempt = 0
  }
}
