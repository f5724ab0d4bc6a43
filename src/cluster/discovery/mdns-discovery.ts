// Zeroconf (multicast DNS / DNS-SD) through bonjour-service, the one file that imports it:
// this node is published as `<nodeId>._stratacache._tcp.local` with its id and region in the TXT
// record, and every other node of the same service type is browsed. Only works where multicast
// reaches the peers (one LAN / one host), as Zerocache's zeroconf did.
// bonjour-service is an optional peer dependency, loaded (synchronously: it is CommonJS) only
// when an MdnsDiscovery is built, so a node without mDNS never needs it installed; without it
// the constructor throws MissingDependencyError (ERR_MISSING_DEPENDENCY) naming the package.
import { createRequire } from 'node:module'
import type { Bonjour, Browser, Service } from 'bonjour-service'
import { InvalidOptionsError } from '../../core/errors.js'
import { requireDependency } from '../../core/optional-dependency.js'
import { ChangeListeners, makeCandidate, type Discovery, type DiscoveryCandidate } from './discovery.js'

export interface MdnsDiscoveryOptions {
  /** This node's id: the published instance name and the TXT `id`. Omit to browse only. */
  readonly nodeId?: string
  /** TXT `region`. */
  readonly region?: string
  /** This node's cluster port (what peers dial). Required when publishing. */
  readonly port?: number
  /** DNS-SD service type (lets several clusters share a LAN). @default 'stratacache' */
  readonly serviceType?: string
  /** Passed to multicast-dns: the interface to bind/send on (e.g. '127.0.0.1'). */
  readonly interface?: string
  /** Answer our own queries (needed for two nodes on one host). @default true */
  readonly loopback?: boolean
}

/** A DNS-SD service name: 1-15 of [a-z0-9-], starting with a letter or digit (the node's `mdnsServiceType` too). */
export const MDNS_SERVICE_TYPE = /^[a-z0-9][a-z0-9-]{0,14}$/

export class MdnsDiscovery implements Discovery {
  readonly kind = 'mdns'
  readonly #bonjour: Bonjour
  readonly #browser: Browser
  readonly #nodeId: string | undefined
  readonly #listeners = new ChangeListeners()
  #lastError: Error | undefined
  #closed = false

  constructor(options: MdnsDiscoveryOptions = {}) {
    const type = options.serviceType ?? 'stratacache'
    if (typeof type !== 'string' || !MDNS_SERVICE_TYPE.test(type)) throw new InvalidOptionsError('serviceType', 'expected 1-15 of [a-z0-9-] (a DNS-SD service name)')
    if (options.nodeId !== undefined) {
      if (options.port === undefined) throw new InvalidOptionsError('port', 'publishing this node (nodeId given) needs its cluster port')
      makeCandidate('localhost', options.port, 'port', { nodeId: options.nodeId })
    }
    if (options.region !== undefined && (typeof options.region !== 'string' || options.region.length > 64)) throw new InvalidOptionsError('region', 'expected a string of at most 64 characters')
    this.#nodeId = options.nodeId
    const mdnsOptions: Record<string, unknown> = { loopback: options.loopback ?? true }
    if (options.interface !== undefined) mdnsOptions['interface'] = options.interface
    // Socket errors (no multicast route, EADDRINUSE on 5353) are kept as lastError, never thrown.
    requireDependency('bonjour-service', 'mdns discovery')
    const { Bonjour: BonjourClass } = createRequire(import.meta.url)('bonjour-service') as typeof import('bonjour-service')
    this.#bonjour = new BonjourClass(mdnsOptions, (e: unknown) => { this.#lastError = e instanceof Error ? e : new Error(String(e)) })
    if (options.nodeId !== undefined && options.port !== undefined) {
      const txt: Record<string, string> = { id: options.nodeId }
      if (options.region !== undefined) txt['region'] = options.region
      const svc = this.#bonjour.publish({ name: options.nodeId, type, port: options.port, txt })
      svc.on('error', (e: unknown) => { this.#lastError = e instanceof Error ? e : new Error(String(e)) })
    }
    this.#browser = this.#bonjour.find({ type })
    this.#browser.on('up', () => this.#listeners.emit())
    this.#browser.on('down', () => this.#listeners.emit())
  }

  get lastError(): Error | undefined { return this.#lastError }

  /** The peers currently browsed (never this node); asks the network again for the next call. */
  discover(): Promise<readonly DiscoveryCandidate[]> {
    if (this.#closed) return Promise.resolve([])
    const out = new Map<string, DiscoveryCandidate>()
    for (const s of this.#browser.services) {
      const c = toCandidate(s)
      if (c !== undefined && c.nodeId !== this.#nodeId) out.set(c.address, c)
    }
    try { this.#browser.update() } catch (e) { this.#lastError = e as Error }
    return Promise.resolve([...out.values()])
  }

  onChange(listener: () => void): () => void { return this.#listeners.add(listener) }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve()
    this.#closed = true
    this.#browser.stop()
    return new Promise((resolve) => {
      // unpublishAll sends goodbye packets (TTL 0) so peers drop us at once; destroy closes the socket.
      this.#bonjour.unpublishAll(() => { this.#bonjour.destroy(() => resolve()) })
    })
  }
}

function toCandidate(s: Service): DiscoveryCandidate | undefined {
  const txt = (s.txt ?? {}) as Record<string, unknown>
  const nodeId = typeof txt['id'] === 'string' ? txt['id'] : undefined
  const region = typeof txt['region'] === 'string' ? txt['region'] : undefined
  // Prefer an advertised IPv4 address, then IPv6, then whoever sent the answer.
  const addrs = s.addresses ?? []
  const host = addrs.find((a) => !a.includes(':')) ?? addrs[0] ?? s.referer?.address
  if (host === undefined) return undefined
  try { return makeCandidate(host, s.port, 'mdns', { nodeId, region }) } catch { return undefined }
}
