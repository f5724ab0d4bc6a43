// The discovery contract: strategies yield candidate peers (an address to dial, maybe an id and
// a region) for the membership's join. Parsing is strict: a bad seed is a typed error, never a guess.
import type { Clock, TimerHandle } from '../../core/clock.js'
import { InvalidOptionsError } from '../../core/errors.js'

/** A peer a strategy found: where to dial it and, when the source says, who and where it is. */
export interface DiscoveryCandidate {
  /** `host:port` (`[v6]:port` for IPv6), the key every strategy and the health checker agree on. */
  readonly address: string
  readonly host: string
  readonly port: number
  readonly nodeId?: string
  readonly region?: string
}

/** One source of candidates. `discover()` never rejects for a network failure: it answers what it knows. */
export interface Discovery {
  /** A short name for logs and `CompositeDiscovery` (`static`, `env`, `file`, `dns`, `mdns`). */
  readonly kind: string
  discover(): Promise<readonly DiscoveryCandidate[]>
  /** Push strategies (file, mdns) call `listener` when their answer may have changed; returns an unsubscribe. */
  onChange?(listener: () => void): () => void
  /** The last failure the strategy swallowed (a DNS timeout, an unreadable file), for status pages. */
  readonly lastError?: Error | undefined
  close?(): Promise<void>
}

// Labels of letters, digits, '-' and '_' (container and service names such as Docker Compose's
// project_service_1 resolve; a node may advertise one: node-options.ts), not starting with '-'.
const HOST_NAME = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/
const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/

/** Builds a candidate from parts, checking each (option names the config entry for the error). */
export function makeCandidate(host: string, port: number, option: string, extra: { nodeId?: string | undefined, region?: string | undefined } = {}): DiscoveryCandidate {
  const v6 = host.includes(':')
  if (v6 ? !/^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$/.test(host) : !HOST_NAME.test(host) || host.length > 253) {
    throw new InvalidOptionsError(option, `"${host}" is not a host name or IP address`)
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidOptionsError(option, `port ${String(port)} is not an integer in 1..65535`)
  if (extra.nodeId !== undefined && !NODE_ID.test(extra.nodeId)) throw new InvalidOptionsError(option, `node id "${extra.nodeId}" must be 1-64 of [A-Za-z0-9._-]`)
  const address = v6 ? `[${host}]:${port}` : `${host}:${port}`
  return {
    address, host, port,
    ...(extra.nodeId !== undefined ? { nodeId: extra.nodeId } : {}),
    ...(extra.region !== undefined ? { region: extra.region } : {}),
  }
}

/**
 * Parses one seed: `host:port`, `[ipv6]:port`, optionally prefixed by `nodeId@`.
 * A missing port, a port out of range, spaces or a bare IPv6 address are errors naming `option`.
 */
export function parseAddress(text: string, option: string): DiscoveryCandidate {
  if (typeof text !== 'string') throw new InvalidOptionsError(option, 'expected a string "host:port"')
  let rest = text.trim()
  if (rest === '') throw new InvalidOptionsError(option, 'empty address')
  let nodeId: string | undefined
  const at = rest.indexOf('@')
  if (at >= 0) { nodeId = rest.slice(0, at); rest = rest.slice(at + 1) }
  let host: string
  let portText: string
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']')
    if (close < 0 || rest[close + 1] !== ':') throw new InvalidOptionsError(option, `"${text}" must be [ipv6]:port`)
    host = rest.slice(1, close)
    portText = rest.slice(close + 2)
  } else {
    const colon = rest.lastIndexOf(':')
    if (colon < 0) throw new InvalidOptionsError(option, `"${text}" has no port (expected host:port)`)
    host = rest.slice(0, colon)
    portText = rest.slice(colon + 1)
    if (host.includes(':')) throw new InvalidOptionsError(option, `"${text}": write an IPv6 address as [addr]:port`)
  }
  if (!/^[0-9]{1,5}$/.test(portText)) throw new InvalidOptionsError(option, `"${text}" has no numeric port`)
  return makeCandidate(host, Number(portText), option, { nodeId })
}

/** Parses a list: commas, whitespace or new lines separate entries; `#` starts a comment to end of line. */
export function parseAddressList(text: string, option: string): DiscoveryCandidate[] {
  const out: DiscoveryCandidate[] = []
  const seen = new Set<string>()
  let i = 0
  for (const line of text.split(/\r?\n/)) {
    const body = line.replace(/#.*$/, '')
    for (const entry of body.split(/[\s,]+/)) {
      if (entry === '') continue
      const c = parseAddress(entry, `${option}[${i++}]`)
      if (!seen.has(c.address)) { seen.add(c.address); out.push(c) }
    }
  }
  return out
}

/** Checks a duration option in ms (finite, > 0). */
export function positiveMs(value: unknown, option: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new InvalidOptionsError(option, 'expected a positive number of milliseconds')
  return value
}

/** Thrown inside a strategy when a bounded call ran out of time (kept as `lastError`, never escapes). */
export class DiscoveryTimeout extends Error {
  constructor(what: string, ms: number) { super(`${what} took longer than ${ms} ms`); this.name = 'DiscoveryTimeout' }
}

/** Races `work` against a timer on the injected clock: every network call of discovery is bounded. */
export function withTimeout<T>(clock: Clock, ms: number, what: string, work: Promise<T>, onTimeout?: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false
    const timer: TimerHandle = clock.setTimeout(() => {
      if (done) return
      done = true
      onTimeout?.()
      reject(new DiscoveryTimeout(what, ms))
    }, ms, { unref: true })
    work.then((v) => { if (!done) { done = true; clock.clearTimeout(timer); resolve(v) } },
      (e: unknown) => { if (!done) { done = true; clock.clearTimeout(timer); reject(e instanceof Error ? e : new Error(String(e))) } })
  })
}

/** A tiny listener set shared by push strategies. */
export class ChangeListeners {
  readonly #listeners = new Set<() => void>()
  add(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }
  get size(): number { return this.#listeners.size }
  emit(): void {
    // A listener that throws must not stop the others nor the strategy's timer.
    for (const l of this.#listeners) { try { l() } catch { /* the listener's own bug */ } }
  }
}
