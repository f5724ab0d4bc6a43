/**
 * getOrSetMany's batch (moved out of cache.ts): one call of the batch factory for every
 * key whose flight asked for a value. It runs once every key has either asked (its flight's
 * factory was called: a leader) or been answered without asking (a hit, a follower of a
 * flight already running, a value another process wrote while we waited for its lock).
 * A duplicate key would follow its own batch and wait for itself: the caller deduplicates.
 */
import { InvalidOptionsError } from '../core/errors.js'

/** What a getOrSetMany factory may return for the keys it was given. */
export type BatchResult<V> = ReadonlyMap<string, V> | Readonly<Record<string, V>> | readonly V[]

export class MissingBatch<V> {
  readonly #missing: string[] = []
  #pending: number
  #ready!: () => void
  readonly #allArrived: Promise<void>
  #release!: (values: Map<string, V | undefined>) => void
  #fail!: (err: unknown) => void
  readonly #values: Promise<Map<string, V | undefined>>

  /** `keys`: how many keys will each either ask or arrive. */
  constructor(keys: number) {
    this.#values = new Promise<Map<string, V | undefined>>((resolve, reject) => {
      this.#release = resolve
      this.#fail = reject
    })
    this.#values.catch(() => {})
    this.#pending = keys
    this.#allArrived = new Promise<void>((resolve) => (this.#ready = resolve))
  }

  /** From a key's flight factory: the key is missing; resolves with the batch's values. */
  ask(key: string): Promise<Map<string, V | undefined>> {
    this.#missing.push(key)
    this.arrive()
    return this.#values
  }

  /** A key answered without asking. */
  arrive(): void {
    if (--this.#pending === 0) this.#ready()
  }

  /** Waits for every key, then calls `factory` with the missing ones (if any) and hands out their values. */
  async run(factory: (missing: string[]) => PromiseLike<BatchResult<V>> | BatchResult<V>): Promise<void> {
    if (this.#pending === 0) this.#ready()
    await this.#allArrived
    const missing = this.#missing
    if (missing.length > 0) {
      try {
        const out = await factory([...missing])
        const values = new Map<string, V | undefined>()
        if (out instanceof Map) for (const k of missing) values.set(k, out.get(k))
        else if (Array.isArray(out)) missing.forEach((k, i) => values.set(k, out[i] as V | undefined))
        // Own keys only: an inherited member (`constructor`, `__proto__`...) is not a value the batch gave.
        else if (out !== null && typeof out === 'object') for (const k of missing) values.set(k, Object.hasOwn(out, k) ? (out as Record<string, V>)[k] : undefined)
        else throw new InvalidOptionsError('factory', 'getOrSetMany factory must return a Map, an object or an array')
        this.#release(values)
      } catch (err) {
        this.#fail(err)
      }
    } else {
      this.#release(new Map())
    }
  }
}
