/**
 * Time comes into stratacache only through a `Clock`. The system clock is the one place
 * that touches real time (see system-clock.ts); tests inject a `ManualClock` and advance it,
 * so no unit test sleeps.
 */
import { InvalidOptionsError } from './errors.js'

/** Node's longest timer, 2^31 - 1 ms (~24.8 days): a longer delay fires after 1 ms. The bound of every timeout option. */
export const MAX_TIMER_MS = 2_147_483_647

/** An opaque handle returned by `Clock.setTimeout`. */
export type TimerHandle = { readonly __timer: unique symbol } | object

export interface TimerOptions {
  /**
   * When true, a pending timer does not keep the Node.js process alive (housekeeping
   * timers such as the expiry sweep). User-facing waits keep it alive.
   * @default false
   */
  unref?: boolean
}

export interface Clock {
  /** Milliseconds since the Unix epoch (may be fractional). Must never go backwards. */
  now(): number
  /** Runs `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number, options?: TimerOptions): TimerHandle
  /** Cancels a timer; unknown or already-fired handles are ignored. */
  clearTimeout(handle: TimerHandle): void
}

/** `value` if it is a Clock, `fallback` if it is undefined; anything else is ERR_INVALID_OPTIONS naming `option`. */
export function clockOption(value: unknown, fallback: Clock, option: string): Clock {
  if (value === undefined) return fallback
  const c = value as Partial<Clock> | null
  if (typeof value !== 'object' || c === null || typeof c.now !== 'function' || typeof c.setTimeout !== 'function' || typeof c.clearTimeout !== 'function') {
    throw new InvalidOptionsError(option, 'expected a Clock with now(), setTimeout() and clearTimeout()')
  }
  return value as Clock
}
