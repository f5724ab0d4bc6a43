/**
 * Versions for tag invalidations: hybrid-logical-clock style (Kulkarni et al., "Logical
 * Physical Clocks", 2014) packed in one safe integer: physical milliseconds x 2048 plus a
 * logical counter. Strictly increasing per process even when the clock stalls or steps
 * back; `observe` ratchets past a version seen from another process, so versions can be
 * compared across processes (passive resync). Safe below 2^53 until about year 2109.
 */
import type { Clock } from '../core/clock.js'

const LOGICAL = 2048

export class HybridClock {
  readonly #clock: Clock
  #last = 0

  constructor(clock: Clock) {
    this.#clock = clock
  }

  /** A version greater than every version this clock has issued or observed. */
  next(): number {
    const physical = Math.floor(this.#clock.now()) * LOGICAL
    this.#last = physical > this.#last ? physical : this.#last + 1
    return this.#last
  }

  /** The greatest version issued or observed so far (0 if none). */
  current(): number {
    return this.#last
  }

  /** Makes every later version exceed `version`. */
  observe(version: number): void {
    if (Number.isSafeInteger(version) && version > this.#last) this.#last = version
  }
}
