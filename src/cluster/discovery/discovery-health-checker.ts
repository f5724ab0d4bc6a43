// Probes discovered addresses (a TCP connect, bounded by a timeout on the injected clock) and
// hides the dead ones until they answer again. Results are cached for `intervalMs`, so a caller
// polling discovery does not open a connection per peer per call; a dead address is re-probed
// after the same interval, which is how it comes back.
import { connect } from 'node:net'
import type { Clock, TimerHandle } from '../../core/clock.js'
import { systemClock } from '../../core/system-clock.js'
import { positiveMs, type DiscoveryCandidate } from './discovery.js'

/** Resolves true when something listens at host:port within `timeoutMs`; never rejects. */
export type DiscoveryProber = (host: string, port: number, timeoutMs: number, clock: Clock) => Promise<boolean>

/** The default prober: a plain TCP connect, closed as soon as it succeeds. */
export const tcpProbe: DiscoveryProber = (host, port, timeoutMs, clock) => new Promise<boolean>((resolve) => {
  let settled = false
  const socket = connect({ host, port })
  const finish = (ok: boolean): void => {
    if (settled) return
    settled = true
    clock.clearTimeout(timer)
    socket.destroy()
    resolve(ok)
  }
  const timer: TimerHandle = clock.setTimeout(() => finish(false), timeoutMs, { unref: true })
  socket.once('connect', () => finish(true))
  socket.once('error', () => finish(false))
})

export interface DiscoveryHealthCheckerOptions {
  /** Bound on one probe. @default 1000 */
  readonly timeoutMs?: number
  /** How long a probe's verdict holds before the address is probed again. @default 5000 */
  readonly intervalMs?: number
  readonly prober?: DiscoveryProber
  readonly clock?: Clock
}

export interface AddressHealth {
  readonly alive: boolean
  readonly checkedAt: number
  readonly failures: number
}

export class DiscoveryHealthChecker {
  readonly #timeoutMs: number
  readonly #intervalMs: number
  readonly #prober: DiscoveryProber
  readonly #clock: Clock
  readonly #health = new Map<string, AddressHealth>()
  readonly #pending = new Map<string, Promise<boolean>>()

  constructor(options: DiscoveryHealthCheckerOptions = {}) {
    this.#timeoutMs = positiveMs(options.timeoutMs, 'timeoutMs', 1_000)
    this.#intervalMs = positiveMs(options.intervalMs, 'intervalMs', 5_000)
    this.#prober = options.prober ?? tcpProbe
    this.#clock = options.clock ?? systemClock
  }

  /** The candidates that answered their latest probe, probing (concurrently) those whose verdict is stale. */
  async filter(candidates: readonly DiscoveryCandidate[]): Promise<DiscoveryCandidate[]> {
    const verdicts = await Promise.all(candidates.map((c) => this.check(c)))
    return candidates.filter((_, i) => verdicts[i])
  }

  /** One address's verdict: cached while younger than `intervalMs`, else a fresh probe (shared by concurrent callers). */
  check(candidate: DiscoveryCandidate): Promise<boolean> {
    const known = this.#health.get(candidate.address)
    if (known !== undefined && this.#clock.now() - known.checkedAt < this.#intervalMs) return Promise.resolve(known.alive)
    let p = this.#pending.get(candidate.address)
    if (p === undefined) {
      p = withCatch(this.#prober(candidate.host, candidate.port, this.#timeoutMs, this.#clock)).then((alive) => {
        const failures = alive ? 0 : (this.#health.get(candidate.address)?.failures ?? 0) + 1
        this.#health.set(candidate.address, { alive, checkedAt: this.#clock.now(), failures })
        this.#pending.delete(candidate.address)
        return alive
      })
      this.#pending.set(candidate.address, p)
    }
    return p
  }

  /** What the checker last learned per address (for status pages and tests). */
  health(): ReadonlyMap<string, AddressHealth> { return new Map(this.#health) }

  /** Forgets addresses no strategy reports any more, so the map does not grow without bound. */
  retain(addresses: Iterable<string>): void {
    const keep = new Set(addresses)
    for (const a of this.#health.keys()) if (!keep.has(a)) this.#health.delete(a)
  }
}

// A prober that throws is a prober that said "dead".
function withCatch(p: Promise<boolean>): Promise<boolean> {
  return p.then((v) => v === true, () => false)
}
