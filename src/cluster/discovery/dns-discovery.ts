// Seeds from DNS: A/AAAA records of a name plus a configured port, or SRV records (which carry
// the port, as a Kubernetes headless service or Consul publishes them). DNS fails transiently
// far more often than peers disappear, so the last good answer is kept and served through
// failures; a failed lookup is retried with exponential backoff instead of on every call.
import { Resolver } from 'node:dns/promises'
import type { Clock } from '../../core/clock.js'
import { InvalidOptionsError } from '../../core/errors.js'
import { systemClock } from '../../core/system-clock.js'
import { makeCandidate, positiveMs, withTimeout, type Discovery, type DiscoveryCandidate } from './discovery.js'

/** The part of node:dns/promises' Resolver this strategy uses (inject a fake in tests). */
export interface DnsResolverLike {
  resolve4(name: string): Promise<string[]>
  resolve6(name: string): Promise<string[]>
  resolveSrv(name: string): Promise<{ name: string, port: number, priority: number, weight: number }[]>
  cancel?(): void
}

export type DnsRecordType = 'A' | 'AAAA' | 'A+AAAA' | 'SRV'

export interface DnsDiscoveryOptions {
  /** The name to resolve, e.g. `stratacache.default.svc.cluster.local` or `_cache._tcp.example.com`. */
  readonly name: string
  /** @default 'A+AAAA', or 'SRV' when the name starts with `_` */
  readonly type?: DnsRecordType
  /** The peers' port (required for A/AAAA; SRV answers carry it). */
  readonly port?: number
  /** How long a good answer is used before asking again. @default 30000 */
  readonly ttlMs?: number
  /** Bound on one lookup (SRV target resolution included). @default 2000 */
  readonly timeoutMs?: number
  /** First retry delay after a failure, doubled up to `maxBackoffMs`. @default 1000 */
  readonly backoffMs?: number
  /** @default 30000 */
  readonly maxBackoffMs?: number
  readonly resolver?: DnsResolverLike
  readonly clock?: Clock
}

const TYPES: readonly DnsRecordType[] = ['A', 'AAAA', 'A+AAAA', 'SRV']

export class DnsDiscovery implements Discovery {
  readonly kind = 'dns'
  readonly #name: string
  readonly #type: DnsRecordType
  readonly #port: number
  readonly #ttlMs: number
  readonly #timeoutMs: number
  readonly #backoffMs: number
  readonly #maxBackoffMs: number
  readonly #resolver: DnsResolverLike
  readonly #clock: Clock
  #cached: readonly DiscoveryCandidate[] | undefined
  #freshUntil = -Infinity
  #retryAt = -Infinity
  #failures = 0
  #lastError: Error | undefined
  #inFlight: Promise<readonly DiscoveryCandidate[]> | undefined

  constructor(options: DnsDiscoveryOptions) {
    const name = options?.name
    if (typeof name !== 'string' || name === '' || name.length > 253 || !/^[A-Za-z0-9_]([A-Za-z0-9_-]*)(\.[A-Za-z0-9_-]+)*\.?$/.test(name)) {
      throw new InvalidOptionsError('name', 'expected a DNS name')
    }
    this.#name = name
    this.#type = options.type ?? (name.startsWith('_') ? 'SRV' : 'A+AAAA')
    if (!TYPES.includes(this.#type)) throw new InvalidOptionsError('type', `expected one of ${TYPES.join(', ')}`)
    if (this.#type !== 'SRV') {
      const p = options.port
      if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) throw new InvalidOptionsError('port', `an ${this.#type} lookup needs the peers' port (1..65535)`)
      this.#port = p
    } else {
      this.#port = 0
    }
    this.#ttlMs = positiveMs(options.ttlMs, 'ttlMs', 30_000)
    this.#timeoutMs = positiveMs(options.timeoutMs, 'timeoutMs', 2_000)
    this.#backoffMs = positiveMs(options.backoffMs, 'backoffMs', 1_000)
    this.#maxBackoffMs = positiveMs(options.maxBackoffMs, 'maxBackoffMs', 30_000)
    // Node's own resolver retries internally; bound it too so one lookup cannot outlive timeoutMs by much.
    this.#resolver = options.resolver ?? new Resolver({ timeout: this.#timeoutMs, tries: 1 })
    this.#clock = options.clock ?? systemClock
  }

  get lastError(): Error | undefined { return this.#lastError }

  /** The cached answer while fresh; otherwise a lookup (one at a time), falling back to the cache on failure. */
  discover(): Promise<readonly DiscoveryCandidate[]> {
    const now = this.#clock.now()
    if (this.#cached !== undefined && now < this.#freshUntil) return Promise.resolve(this.#cached)
    if (now < this.#retryAt) return Promise.resolve(this.#cached ?? [])
    this.#inFlight ??= this.#lookup().finally(() => { this.#inFlight = undefined })
    return this.#inFlight
  }

  async #lookup(): Promise<readonly DiscoveryCandidate[]> {
    try {
      const found = await withTimeout(this.#clock, this.#timeoutMs, `DNS ${this.#type} ${this.#name}`, this.#query(), () => this.#resolver.cancel?.())
      this.#cached = Object.freeze(found)
      this.#freshUntil = this.#clock.now() + this.#ttlMs
      this.#failures = 0
      this.#retryAt = -Infinity
      this.#lastError = undefined
    } catch (e) {
      // Any failure (SERVFAIL, timeout, even NXDOMAIN from a flapping resolver) keeps the last
      // good answer: the health checker, not DNS, decides that a cached peer is gone.
      this.#lastError = e as Error
      const delay = Math.min(this.#maxBackoffMs, this.#backoffMs * 2 ** Math.min(this.#failures, 30))
      this.#failures++
      this.#retryAt = this.#clock.now() + delay
    }
    return this.#cached ?? []
  }

  async #query(): Promise<DiscoveryCandidate[]> {
    const out = new Map<string, DiscoveryCandidate>()
    const add = (host: string, port: number): void => {
      try { const c = makeCandidate(host.replace(/\.$/, ''), port, this.#name); out.set(c.address, c) } catch { /* a malformed record is skipped */ }
    }
    if (this.#type === 'SRV') {
      const records = await this.#resolver.resolveSrv(this.#name)
      records.sort((a, b) => a.priority - b.priority || b.weight - a.weight)
      for (const r of records) add(r.name, r.port)
      return [...out.values()]
    }
    const lookups: Promise<string[]>[] = []
    if (this.#type !== 'AAAA') lookups.push(this.#resolver.resolve4(this.#name))
    if (this.#type !== 'A') lookups.push(this.#resolver.resolve6(this.#name))
    const settled = await Promise.allSettled(lookups)
    // A+AAAA: one family answering is an answer (many names have no AAAA); both failing is a failure.
    const ok = settled.filter((s): s is PromiseFulfilledResult<string[]> => s.status === 'fulfilled')
    if (ok.length === 0) throw (settled[0] as PromiseRejectedResult).reason instanceof Error ? (settled[0] as PromiseRejectedResult).reason as Error : new Error('DNS lookup failed')
    for (const s of ok) for (const ip of s.value) add(ip, this.#port)
    return [...out.values()]
  }
}
