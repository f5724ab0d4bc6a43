/**
 * Serialises async work per key: `run(key, fn)` starts `fn` only after every earlier `run`
 * on the same key has settled. The node runs every write of a key through it, so a
 * version is drawn, checked against `If-Match` and stored without another write to the
 * same key in between, and versions land in the order they were drawn.
 *
 * A key holds a map entry only while work on it is queued or running (no growth with the
 * keyspace); keys are independent, so there is no global lock.
 */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<void>>()

  /** Keys with work queued or running. */
  get size(): number {
    return this.#tails.size
  }

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key)
    let release!: () => void
    const mine = new Promise<void>((resolve) => {
      release = resolve
    })
    this.#tails.set(key, mine)
    try {
      if (previous !== undefined) await previous
      return await fn()
    } finally {
      if (this.#tails.get(key) === mine) this.#tails.delete(key)
      release()
    }
  }
}
