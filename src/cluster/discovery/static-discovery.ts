// A fixed list of seeds (the `--seeds` flag): checked once at construction.
import { InvalidOptionsError } from '../../core/errors.js'
import { parseAddress, type Discovery, type DiscoveryCandidate } from './discovery.js'

export class StaticDiscovery implements Discovery {
  readonly kind = 'static'
  readonly #candidates: readonly DiscoveryCandidate[]
  /** `seeds`: `host:port` / `id@host:port` strings or candidates, as given. */
  constructor(seeds: readonly (string | { host: string, port: number, nodeId?: string, region?: string })[]) {
    if (!Array.isArray(seeds)) throw new InvalidOptionsError('seeds', 'expected an array of "host:port"')
    const seen = new Map<string, DiscoveryCandidate>()
    seeds.forEach((s, i) => {
      const c = typeof s === 'string'
        ? parseAddress(s, `seeds[${i}]`)
        : parseAddress(`${s.nodeId !== undefined ? `${s.nodeId}@` : ''}${String(s.host).includes(':') ? `[${s.host}]` : s.host}:${s.port}`, `seeds[${i}]`)
      const withRegion = typeof s !== 'string' && s.region !== undefined ? { ...c, region: s.region } : c
      if (!seen.has(c.address)) seen.set(c.address, withRegion)
    })
    this.#candidates = Object.freeze([...seen.values()])
  }
  discover(): Promise<readonly DiscoveryCandidate[]> { return Promise.resolve(this.#candidates) }
}
