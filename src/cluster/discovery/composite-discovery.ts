// Strategies in order, falling through: the first that yields a live candidate wins (LoomCache's
// CompositeDiscovery; decision 0185). 'union' merges every strategy's answer instead.
import { InvalidOptionsError } from '../../core/errors.js'
import { ChangeListeners, type Discovery, type DiscoveryCandidate } from './discovery.js'
import type { DiscoveryHealthChecker } from './discovery-health-checker.js'

export interface CompositeDiscoveryOptions {
  /** @default 'first' */
  readonly mode?: 'first' | 'union'
  /** Probe candidates and drop the dead before deciding whether a strategy "yielded". */
  readonly healthChecker?: DiscoveryHealthChecker
}

export class CompositeDiscovery implements Discovery {
  readonly kind = 'composite'
  readonly #strategies: readonly Discovery[]
  readonly #mode: 'first' | 'union'
  readonly #checker: DiscoveryHealthChecker | undefined
  readonly #listeners = new ChangeListeners()
  readonly #unsubscribe: (() => void)[] = []
  #lastSource: string | undefined
  #lastError: Error | undefined

  constructor(strategies: readonly Discovery[], options: CompositeDiscoveryOptions = {}) {
    if (!Array.isArray(strategies) || strategies.some((s) => typeof s?.discover !== 'function')) {
      throw new InvalidOptionsError('strategies', 'expected an array of Discovery strategies')
    }
    const mode = options.mode ?? 'first'
    if (mode !== 'first' && mode !== 'union') throw new InvalidOptionsError('mode', 'expected "first" or "union"')
    this.#strategies = [...strategies]
    this.#mode = mode
    this.#checker = options.healthChecker
  }

  get lastError(): Error | undefined { return this.#lastError }
  /** The kind of the strategy whose answer the last `discover()` returned ('first' mode). */
  get lastSource(): string | undefined { return this.#lastSource }

  async discover(): Promise<readonly DiscoveryCandidate[]> {
    const merged = new Map<string, DiscoveryCandidate>()
    const all: string[] = []
    this.#lastSource = undefined
    for (const s of this.#strategies) {
      let found: readonly DiscoveryCandidate[]
      try {
        found = await s.discover()
      } catch (e) {
        // A strategy's bug or failure is a fall-through, not a failed join.
        this.#lastError = e as Error
        continue
      }
      for (const c of found) all.push(c.address)
      const live = this.#checker === undefined ? found : await this.#checker.filter(found)
      if (this.#mode === 'first' && live.length > 0) {
        this.#lastSource = s.kind
        this.#checker?.retain(all)
        return live
      }
      for (const c of live) {
        const prev = merged.get(c.address)
        // Keep what the earlier strategy said, filling in an id or region a later one knows.
        merged.set(c.address, prev === undefined ? c : { ...c, ...prev })
      }
    }
    this.#checker?.retain(all)
    return [...merged.values()]
  }

  onChange(listener: () => void): () => void {
    if (this.#listeners.size === 0) {
      for (const s of this.#strategies) if (s.onChange !== undefined) this.#unsubscribe.push(s.onChange(() => this.#listeners.emit()))
    }
    return this.#listeners.add(listener)
  }

  async close(): Promise<void> {
    for (const off of this.#unsubscribe.splice(0)) off()
    await Promise.allSettled(this.#strategies.map((s) => s.close?.()))
  }
}
