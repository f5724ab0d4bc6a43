/**
 * The hybrid logical clock every version in stratacache comes from: tag invalidations and
 * entry snapshots (tags/), the bus's stamps, and the node's record versions (server/).
 *
 * Design (Kulkarni, Demirbas, Madappa, Avva, Leone, "Logical Physical Clocks and
 * Consistent Snapshots in Globally Distributed Databases", 2014). A timestamp is a pair
 * (l, c): l the largest physical time seen, c a logical counter that orders events within
 * one l. `next()` (a local or send event) is `l' = max(l, pt)`, `c' = l' == l ? c + 1 : 0`;
 * `observe(remote)` (a receive event) is the paper's max-merge, so every later timestamp
 * exceeds both the local past and what was received. The pair is packed into one safe
 * integer so it compares with `>` on the tag check's hot path and travels as a plain JSON
 * number in the two wire formats that carry it (tag snapshots in L2 entries and bus
 * messages; the node's `ETag` and JSON `version`):
 *
 *     hlc = l * 2^LOGICAL_BITS + c        (l: ms since the epoch, up to 2^42 - 1 = 2109-05-15)
 *
 * The paper packs l into 48 bits and c into 16 of a 64-bit word; a JS number holds 53,
 * so l keeps 42 (enough until 2109) and c 11 (2048 events per ms). When c would overflow
 * it carries into l, so a clock issuing faster than that runs slightly ahead of real time
 * (harmless: real time catches up; the paper bounds c the same way). See
 * docs/decisions/0140-one-hybrid-logical-clock.md for why not 48 + 16 bits.
 *
 * A **version** is `(hlc, nodeId)`: two nodes can issue the same hlc, so the node id breaks
 * the tie and versions are totally ordered (`compareVersions`).
 *
 * Guarantees, per clock: `next()` is strictly greater than every timestamp this clock has
 * issued, returned from `now()`, observed, or restored from its persisted floor — even when
 * the injected Clock stalls or steps back. Across restarts: with a high-water hook, no
 * timestamp above the durable mark is handed out before the mark moved past it, so a
 * restarted clock (constructed with `floor` = the mark read back) never reissues one.
 *
 * Drift: a remote timestamp more than `maxDrift` ahead of local physical time (a peer's
 * clock far off, or corrupt data) is refused with `ClockDriftError` (ERR_CLOCK_DRIFT) and
 * counted, never adopted — one bad message cannot drag this clock (and every later
 * version) into the future. Callers decide what the refusal means for them (the tag trie
 * still applies such an invalidation, at the drift limit: dropping it would serve stale data).
 */
import type { Clock } from './clock.js'
import { type Duration, toMs } from './duration.js'
import { ClockDriftError, InvalidOptionsError } from './errors.js'
import { systemClock } from './system-clock.js'

export const LOGICAL_BITS = 11
const LOGICAL_SPAN = 2 ** LOGICAL_BITS
/** Largest physical time a timestamp can carry: 2^42 - 1 ms since the epoch (2109-05-15). */
export const MAX_VERSION_MS = Math.floor(Number.MAX_SAFE_INTEGER / LOGICAL_SPAN)

/** The smallest timestamp at wall-clock time `ms` (logical part 0). */
export function versionFromMs(ms: number): number {
  return Math.floor(ms) * LOGICAL_SPAN
}

/** The physical time (ms since the epoch) a timestamp was issued at, or ran ahead to. */
export function msOfVersion(version: number): number {
  return Math.floor(version / LOGICAL_SPAN)
}

/** The logical counter of a timestamp. */
export function logicalOfVersion(version: number): number {
  return version % LOGICAL_SPAN
}

/** True for a usable timestamp: a safe integer >= 0 (0 means "never"). */
export function isVersion(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

/** A totally ordered version: the clock's timestamp, then the issuing node's id. */
export interface Version {
  readonly hlc: number
  readonly nodeId: string
}

/** Negative when `a` is older than `b`, 0 when equal, positive when newer. hlc first, node id (code units) breaks ties. */
export function compareVersions(a: Version, b: Version): number {
  if (a.hlc !== b.hlc) return a.hlc < b.hlc ? -1 : 1
  if (a.nodeId === b.nodeId) return 0
  return a.nodeId < b.nodeId ? -1 : 1
}

/**
 * Where a clock persists its high-water mark (the node: a key in its store, next to its
 * data). `persist` resolves once `mark` is durable; it may reject (the draw that needed it
 * fails with that error).
 */
export interface HighWaterMark {
  persist(mark: number): Promise<void>
}

export interface HybridLogicalClockOptions {
  /**
   * Largest lead over local physical time accepted from a remote timestamp; a timestamp
   * further ahead is refused (ERR_CLOCK_DRIFT) and counted. `Infinity` turns the limit off.
   * @default '1m'
   */
  maxDrift?: Duration
  /** Every timestamp this clock hands out is greater than this (a restored high-water mark). @default 0 */
  floor?: number
  /**
   * Persists the high-water mark: `nextDurable()` then never hands out a timestamp above
   * the durable mark, and moves the mark `reserve` ahead when it must (one write per
   * `reserve` of clock time, not per draw). Without it, the clock is in-memory only.
   */
  highWater?: HighWaterMark
  /** How far ahead of the current timestamp the persisted mark is set. @default '1m' */
  reserve?: Duration
}

export class HybridLogicalClock {
  readonly #clock: Clock
  readonly #maxDrift: number
  readonly #highWater: HighWaterMark | undefined
  readonly #reserveSpan: number
  #last: number
  #reserved: number
  #pending: Promise<void> | undefined
  #driftRefusals = 0

  /** @param clock source of physical time. @default systemClock */
  constructor(clock: Clock = systemClock, options: HybridLogicalClockOptions = {}) {
    if (clock === null || typeof clock !== 'object' || typeof clock.now !== 'function') {
      throw new InvalidOptionsError('clock', 'expected a Clock with now(), setTimeout() and clearTimeout()')
    }
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object')
    this.#clock = clock
    const drift = options.maxDrift === undefined ? 60_000 : toMs(options.maxDrift, 'maxDrift')
    this.#maxDrift = drift === Infinity ? Infinity : Math.floor(drift) * LOGICAL_SPAN
    const floor = options.floor ?? 0
    if (!isVersion(floor)) throw new InvalidOptionsError('floor', `expected a safe integer >= 0, got ${String(floor)}`)
    const hw = options.highWater
    if (hw !== undefined && (hw === null || typeof hw.persist !== 'function')) throw new InvalidOptionsError('highWater', 'expected { persist(mark): Promise<void> }')
    this.#highWater = hw
    const reserve = toMs(options.reserve ?? '1m', 'reserve')
    if (!(reserve > 0 && reserve !== Infinity)) throw new InvalidOptionsError('reserve', 'expected a finite duration > 0')
    this.#reserveSpan = Math.floor(reserve) * LOGICAL_SPAN
    this.#last = floor
    this.#reserved = floor
    const ms = clock.now()
    if (!(ms >= 0 && ms <= MAX_VERSION_MS)) {
      throw new InvalidOptionsError('clock', `now() must be between 0 and ${MAX_VERSION_MS} ms (year 2109), got ${ms}`)
    }
  }

  /** The largest timestamp issued, returned, observed or restored so far (0 before any). Reads no clock. */
  current(): number {
    return this.#last
  }

  /** Remote timestamps refused because they were more than `maxDrift` ahead. */
  get driftRefusals(): number {
    return this.#driftRefusals
  }

  /**
   * The current timestamp, not unique: at least every timestamp issued or observed so far,
   * and at least the current physical time. It consumes nothing: every later `next()` is
   * strictly greater.
   */
  now(): number {
    const physical = this.#physical()
    if (physical > this.#last) this.#last = physical
    return this.#last
  }

  /**
   * A new timestamp, strictly greater than every one issued, returned, observed or
   * restored. A clock with a `highWater` hook must draw through `nextDurable()`: `next()`
   * then throws ERR_INVALID_OPTIONS rather than pass the durable mark.
   */
  next(): number {
    const v = this.#candidate()
    if (this.#highWater !== undefined && v > this.#reserved) {
      throw new InvalidOptionsError('highWater', 'next() would pass the persisted high-water mark; draw with nextDurable()')
    }
    this.#last = v
    return v
  }

  /**
   * Like `next()`, but first makes sure the timestamp is covered by the durable high-water
   * mark (waiting for `persist` when the mark must move; concurrent draws share one write).
   * Rejects with `persist`'s error when the mark cannot be written: no timestamp is handed
   * out unless its mark is durable. Without a hook it is `next()`.
   */
  async nextDurable(): Promise<number> {
    for (;;) {
      const v = this.#candidate()
      if (this.#highWater === undefined || v <= this.#reserved) {
        this.#last = v
        return v
      }
      await this.#reserve(v + this.#reserveSpan)
    }
  }

  /**
   * Merges a timestamp seen elsewhere so that later ones exceed it (the paper's receive
   * event). Throws `ClockDriftError` (ERR_CLOCK_DRIFT) — counted in `driftRefusals`, the
   * clock unchanged — when `remote` is more than `maxDrift` ahead of physical time, and
   * `InvalidOptionsError` unless `remote` is a safe integer >= 0.
   */
  observe(remote: number): void {
    if (!this.tryObserve(remote)) {
      throw new ClockDriftError(remote, this.#physical() + this.#maxDrift)
    }
  }

  /** `observe` without the throw on drift: false when refused (and counted). */
  tryObserve(remote: number): boolean {
    if (!isVersion(remote)) throw new InvalidOptionsError('version', `expected a safe integer >= 0, got ${String(remote)}`)
    if (remote <= this.#last) return true
    if (this.#maxDrift !== Infinity && remote > this.#physical() + this.#maxDrift) {
      this.#driftRefusals++
      return false
    }
    this.#last = remote
    return true
  }

  /** The latest remote timestamp `observe` would accept right now (`Infinity` without a limit). */
  driftLimit(): number {
    return this.#maxDrift === Infinity ? Infinity : this.#physical() + this.#maxDrift
  }

  #candidate(): number {
    const physical = this.#physical()
    const v = physical > this.#last ? physical : this.#last + 1
    if (v > Number.MAX_SAFE_INTEGER) throw new RangeError('HybridLogicalClock ran out of safe-integer timestamps')
    return v
  }

  #reserve(mark: number): Promise<void> {
    if (this.#pending !== undefined) return this.#pending
    const pending = (this.#highWater as HighWaterMark).persist(mark).then(
      () => {
        if (mark > this.#reserved) this.#reserved = mark
        this.#pending = undefined
      },
      (err: unknown) => {
        this.#pending = undefined
        throw err
      },
    )
    this.#pending = pending
    return pending
  }

  #physical(): number {
    return Math.floor(this.#clock.now()) * LOGICAL_SPAN
  }
}
