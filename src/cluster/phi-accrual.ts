/**
 * The phi-accrual failure detector (Hayashibara et al., 2004), one per peer, pure: time is
 * passed in, nothing is scheduled. Instead of a yes/no "timed out", it answers how
 * surprised we should be by the silence so far: phi = -log10(P(the next heartbeat comes
 * even later than now)), under a normal distribution fitted to the peer's recent
 * heartbeat inter-arrival times. phi 1 means a 10 % chance the peer is merely late, phi 8
 * one in 10^8. The distribution adapts: a peer behind a jittery or lossy link gets a
 * wider one and is judged more patiently, a steady one is judged quickly.
 *
 * Defaults are Akka's (its cluster failure detector), which Cassandra's is close to:
 * - threshold 8: suspect once the silence is that improbable;
 * - 1000 samples kept (a sliding window);
 * - min std-dev 100 ms: a very steady history must not make a 50 ms hiccup look fatal;
 * - acceptable heartbeat pause 3 s: added to the mean, so a GC pause, a stalled event loop
 *   or a short network blip of up to ~3 s costs nothing;
 * - first heartbeat estimate 1 s: the history starts as two samples at 1 s ± 250 ms, so a
 *   new peer is judged sensibly before it has a history.
 *
 * What the defaults mean in seconds: with heartbeats every 1 s on a steady link (std-dev at
 * its 100 ms floor), phi passes 8 about 4.52 s after the last heartbeat
 * (`phiCrossingMs(DEFAULT_PHI_OPTIONS, 1000)`): 1 s mean + 3 s pause + ~5.2 std-devs.
 * Threshold 12 moves that to ~4.63 s, a 500 ms floor to ~6.6 s; a lossy link whose
 * intervals average 1.6 s with 0.9 s std-dev moves it to ~9.3 s.
 *
 * The tail probability uses the logistic approximation of the normal CDF
 * 1 / (1 + e^(-y(1.5976 + 0.070566 y^2))) (Bowling et al., 2009), accurate to ~1e-4,
 * which is what Akka uses; it is cheap and has a closed-form tail.
 */
import { InvalidOptionsError } from '../core/errors.js'

export interface PhiAccrualOptions {
  /** Suspect the peer once phi exceeds this. @default 8 */
  readonly threshold?: number
  /** Inter-arrival samples kept (sliding window). @default 1000 */
  readonly maxSamples?: number
  /** Floor of the std-dev, ms. @default 100 */
  readonly minStdDeviationMs?: number
  /** Silence tolerated on top of the mean before phi rises, ms. @default 3000 */
  readonly acceptableHeartbeatPauseMs?: number
  /** The interval assumed before any sample, ms. @default 1000 */
  readonly firstHeartbeatEstimateMs?: number
}

export type ResolvedPhiOptions = Required<PhiAccrualOptions>

export const DEFAULT_PHI_OPTIONS: ResolvedPhiOptions = Object.freeze({
  threshold: 8,
  maxSamples: 1000,
  minStdDeviationMs: 100,
  acceptableHeartbeatPauseMs: 3000,
  firstHeartbeatEstimateMs: 1000,
})

/** Fills defaults and throws ERR_INVALID_OPTIONS (option path under `prefix`) for bad values. */
export function resolvePhiOptions(options: PhiAccrualOptions = {}, prefix = 'phi'): ResolvedPhiOptions {
  const r = { ...DEFAULT_PHI_OPTIONS, ...stripUndefined(options) }
  const positive = (name: keyof ResolvedPhiOptions, value: number): void => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new InvalidOptionsError(`${prefix}.${name}`, 'expected a positive finite number')
  }
  positive('threshold', r.threshold)
  positive('minStdDeviationMs', r.minStdDeviationMs)
  positive('firstHeartbeatEstimateMs', r.firstHeartbeatEstimateMs)
  if (typeof r.acceptableHeartbeatPauseMs !== 'number' || !Number.isFinite(r.acceptableHeartbeatPauseMs) || r.acceptableHeartbeatPauseMs < 0) {
    throw new InvalidOptionsError(`${prefix}.acceptableHeartbeatPauseMs`, 'expected a finite number >= 0')
  }
  if (!Number.isInteger(r.maxSamples) || r.maxSamples < 2) throw new InvalidOptionsError(`${prefix}.maxSamples`, 'expected an integer >= 2')
  return Object.freeze(r)
}

/** phi for a silence of `elapsedMs` under a normal distribution (mean, std-dev), via the logistic approximation. */
export function phiOf(elapsedMs: number, meanMs: number, stdDevMs: number): number {
  const y = (elapsedMs - meanMs) / stdDevMs
  const e = Math.exp(-y * (1.5976 + 0.070566 * y * y))
  // P(later) = e / (1 + e); for very early silences e overflows and P(later) is 1.
  const later = Number.isFinite(e) ? e / (1 + e) : 1
  if (later >= 1) return 0
  return later <= 0 ? Infinity : -Math.log10(later)
}

/**
 * How long after the last heartbeat phi passes the threshold, for a history whose
 * intervals average `meanIntervalMs` with std-dev `stdDevMs` (floored by the options).
 * The detection bound of the membership machine starts from this.
 */
export function phiCrossingMs(options: PhiAccrualOptions, meanIntervalMs: number, stdDevMs = 0): number {
  const o = resolvePhiOptions(options)
  const mean = meanIntervalMs + o.acceptableHeartbeatPauseMs
  const std = Math.max(stdDevMs, o.minStdDeviationMs)
  let lo = 0
  let hi = mean + 100 * std
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2
    if (phiOf(mid, mean, std) < o.threshold) lo = mid
    else hi = mid
  }
  return hi
}

export class PhiAccrualDetector {
  readonly #options: ResolvedPhiOptions
  readonly #samples: Float64Array
  #count = 0
  #next = 0
  #sum = 0
  #sumSquares = 0
  #last: number | undefined

  constructor(options: PhiAccrualOptions = {}) {
    this.#options = resolvePhiOptions(options)
    this.#samples = new Float64Array(this.#options.maxSamples)
  }

  /** When the last heartbeat arrived (undefined before the first). */
  get lastHeartbeat(): number | undefined {
    return this.#last
  }

  get samples(): number {
    return this.#count
  }

  /** Records a heartbeat (any evidence the peer is alive) at `now`. */
  heartbeat(now: number): void {
    if (this.#last === undefined) {
      // No history yet: pretend two intervals at the estimate ± a quarter of it.
      const estimate = this.#options.firstHeartbeatEstimateMs
      this.#add(estimate - estimate / 4)
      this.#add(estimate + estimate / 4)
    } else if (now > this.#last) {
      this.#add(now - this.#last)
    }
    if (this.#last === undefined || now > this.#last) this.#last = now
  }

  /** The suspicion level at `now`: 0 before the first heartbeat (nothing to judge yet). */
  phi(now: number): number {
    if (this.#last === undefined) return 0
    const mean = this.#sum / this.#count
    const variance = Math.max(0, this.#sumSquares / this.#count - mean * mean)
    const std = Math.max(Math.sqrt(variance), this.#options.minStdDeviationMs)
    return phiOf(Math.max(0, now - this.#last), mean + this.#options.acceptableHeartbeatPauseMs, std)
  }

  /** Whether phi is still at or under the threshold. */
  isAvailable(now: number): boolean {
    return this.phi(now) <= this.#options.threshold
  }

  #add(interval: number): void {
    if (this.#count === this.#samples.length) {
      const old = this.#samples[this.#next]
      this.#sum -= old
      this.#sumSquares -= old * old
    } else {
      this.#count++
    }
    this.#samples[this.#next] = interval
    this.#next = (this.#next + 1) % this.#samples.length
    this.#sum += interval
    this.#sumSquares += interval * interval
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v
  return out
}
