// Seeds from an environment variable (STRATACACHE_SEEDS by default), parsed strictly at construction
// so a typo fails the start with the variable's name instead of a node that silently joins no one.
import { InvalidOptionsError } from '../../core/errors.js'
import { parseAddressList, type Discovery, type DiscoveryCandidate } from './discovery.js'

export interface EnvDiscoveryOptions {
  /** @default 'STRATACACHE_SEEDS' */
  readonly variable?: string
  /** @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>
}

export class EnvDiscovery implements Discovery {
  readonly kind = 'env'
  readonly #candidates: readonly DiscoveryCandidate[]
  constructor(options: EnvDiscoveryOptions = {}) {
    const variable = options.variable ?? 'STRATACACHE_SEEDS'
    if (typeof variable !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(variable)) throw new InvalidOptionsError('variable', 'expected an environment variable name')
    const env = options.env ?? process.env
    const text = env[variable]
    // Unset or blank means "no seeds from here": the composite falls through to the next strategy.
    this.#candidates = Object.freeze(text === undefined ? [] : parseAddressList(text, variable))
  }
  discover(): Promise<readonly DiscoveryCandidate[]> { return Promise.resolve(this.#candidates) }
}
