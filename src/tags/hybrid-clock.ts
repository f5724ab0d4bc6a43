import type { Clock } from '../core/clock.js'
import { type Duration, toMs } from '../core/duration.js'
import { InvalidOptionsError } from '../core/errors.js'
import { systemClock } from '../core/system-clock.js'

/**
 * Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks and Consistent
 * Snapshots in Globally Distributed Databases", 2014), packed into one safe integer so
 * versions compare with `>` and serialise as plain JSON numbers:
 *
 *     version = physicalMs * 2^LOGICAL_BITS + logical
 *
 * With 11 logical bits the physical part may reach 2^42 - 1 ms (2109-05-15) before a
 * version leaves the safe-integer range. 2048 versions per millisecond are available
 * before the logical part carries into the physical part; the clock then runs slightly
 * ahead of real time, which is harmless (real time catches up).
 *
 * Guarantees, per process: `next()` is strictly greater than every version this clock has
 * issued, returned from `now()`, or observed — even when the injected Clock stalls or
 * steps back. `observe(v)` ratchets the clock so later versions exceed `v`: a process that
 * has seen another's version (a bus message, an entry's snapshot) orders its own later
 * events after it. Between processes that have not communicated, order follows physical
 * time, so it is right whenever their clocks differ by less than the time between the
 * two events — the documented bound on cross-process ordering.
 */
export const LOGICAL_BITS = 11
const LOGICAL_SPAN = 2 ** LOGICAL_BITS
/** Largest physical time a version can carry: 2^42 - 1 ms since the epoch (2109-05-15). */
export const MAX_VERSION_MS = Math.floor(Number.MAX_SAFE_INTEGER / LOGICAL_SPAN)

/** The smallest version at wall-clock time `ms` (logical part 0). */
export function versionFromMs(ms: number): number {
  return Math.floor(ms) * LOGICAL_SPAN
}

/** The physical time (ms since the epoch) a version was issued at, or ran ahead to. */
export function msOfVersion(version: number): number {
  return Math.floor(version / LOGICAL_SPAN)
}

/** True for a usable version: a safe integer >= 0 (0 means "never"). */
export function isVersion(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

export interface HybridClockOptions {
  /**
   * Largest lead over local physical time accepted from a remote version. A version
   * further ahead (a peer's clock far off, or corrupt data) is clamped to
   * `physical now + maxDrift`, so one bad message cannot push this clock years ahead
   * (nor near the end of the safe-integer range). `Infinity` turns the limit off.
   * @default '1m'
   */
  maxDrift?: Duration
}

export class HybridClock {
  readonly #clock: Clock
  readonly #maxDrift: number
  #last = 0

  /** @param clock source of physical time. @default systemClock */
  constructor(clock: Clock = systemClock, options: HybridClockOptions = {}) {
    if (clock === null || typeof clock !== 'object' || typeof clock.now !== 'function') {
      throw new InvalidOptionsError('clock', 'expected a Clock with now(), setTimeout() and clearTimeout()')
    }
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object')
    this.#clock = clock
    const drift = options.maxDrift === undefined ? 60_000 : toMs(options.maxDrift, 'maxDrift')
    this.#maxDrift = drift === Infinity ? Infinity : Math.floor(drift) * LOGICAL_SPAN
    const ms = clock.now()
    if (!(ms >= 0 && ms <= MAX_VERSION_MS)) {
      throw new InvalidOptionsError('clock', `now() must be between 0 and ${MAX_VERSION_MS} ms (year 2109), got ${ms}`)
    }
  }

  /** The largest version issued, returned or observed so far (0 before any). Reads no clock. */
  current(): number {
    return this.#last
  }

  /**
   * The current version, not unique: at least every version issued or observed so far,
   * and at least the current physical time. It consumes no version: every later `next()`
   * is strictly greater.
   */
  now(): number {
    const physical = this.#physical()
    if (physical > this.#last) this.#last = physical
    return this.#last
  }

  /** A new version, strictly greater than every version issued, returned or observed. */
  next(): number {
    const physical = this.#physical()
    const v = physical > this.#last ? physical : this.#last + 1
    if (v > Number.MAX_SAFE_INTEGER) throw new RangeError('HybridClock ran out of safe-integer versions')
    this.#last = v
    return v
  }

  /**
   * Records a version seen elsewhere so that later versions exceed it. Returns the
   * version as accepted: `version` itself, or the drift limit when it is further ahead
   * than `maxDrift`. Throws `InvalidOptionsError` (ERR_INVALID_OPTIONS) unless `version`
   * is a safe integer >= 0.
   */
  observe(version: number): number {
    if (!isVersion(version)) throw new InvalidOptionsError('version', `expected a safe integer >= 0, got ${String(version)}`)
    if (version <= this.#last) return version
    let accepted = version
    if (this.#maxDrift !== Infinity) {
      const limit = this.#physical() + this.#maxDrift
      if (accepted > limit) accepted = Math.max(limit, this.#last)
    }
    this.#last = accepted
    return accepted
  }

  #physical(): number {
    return Math.floor(this.#clock.now()) * LOGICAL_SPAN
  }
}
