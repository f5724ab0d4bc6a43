import { randomBytes } from 'node:crypto'
import { InvalidOptionsError } from './errors.js'

/**
 * Randomness comes in through `Random`, so that jitter and admission decisions are
 * reproducible in tests.
 */
export interface Random {
  /** A float in [0, 1). */
  next(): number
}

export const mathRandom: Random = { next: () => Math.random() }

/**
 * A `random` option checked once where it is given: `fallback` when undefined (required
 * when there is none), else an object with `next()`; ERR_INVALID_OPTIONS naming `option`.
 */
export function randomOption(value: unknown, option: string, fallback?: Random): Random {
  if (value === undefined && fallback !== undefined) return fallback
  if (typeof (value as { next?: unknown } | null | undefined)?.next !== 'function') throw new InvalidOptionsError(option, 'expected a Random (an object with next())')
  return value as Random
}

/**
 * A 32-bit secret for hashing (the key index's seed against hash flooding), drawn from
 * `random`, except from the default `mathRandom`: V8's Math.random is xorshift128+, whose
 * state can be recovered from a few of its outputs (an id or a jittered delay a service
 * shows the world), which would make the seed predictable. The default takes it from the
 * operating system's CSPRNG instead, once per cache. An injected Random (SeededRandom in
 * tests) still gives a reproducible seed.
 */
export function secretSeed(random: Random): number {
  if (random === mathRandom) return randomBytes(4).readInt32LE(0)
  return Math.floor(random.next() * 2 ** 32) | 0
}

/**
 * A small seeded generator (mulberry32): fast, 32-bit state, good enough for jitter,
 * sampling and tests. Not for cryptography.
 */
export class SeededRandom implements Random {
  #state: number
  constructor(seed = 0x9e3779b9) {
    this.#state = seed >>> 0
  }
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
