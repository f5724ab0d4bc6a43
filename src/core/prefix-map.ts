/**
 * A `Map` keyed by string prefixes that also knows the distinct prefix lengths it holds,
 * so that "which held prefixes does `key` start with?" costs one lookup per distinct
 * length (`lengths`, ascending: stop at the first longer than `key`) instead of a walk of
 * every prefix held. Used for prefix tombstones (cluster/replication/prefix-tombstones.ts)
 * and the near cache's remembered clears (cache/lazy-invalidations.ts).
 *
 * Iteration is in insertion order, as a `Map`'s (replacing a prefix's value keeps its place).
 */
export class PrefixMap<T> {
  readonly #byPrefix = new Map<string, T>()
  /** How many prefixes of each length are held. */
  readonly #perLength = new Map<number, number>()
  #lengths: number[] = []

  /** The lengths of the prefixes held, ascending, each once (read-only: do not change it). */
  get lengths(): readonly number[] {
    return this.#lengths
  }

  get size(): number {
    return this.#byPrefix.size
  }

  get(prefix: string): T | undefined {
    return this.#byPrefix.get(prefix)
  }

  /** Sets (or replaces, keeping its place) the value of `prefix`. */
  set(prefix: string, value: T): void {
    if (!this.#byPrefix.has(prefix)) {
      const n = prefix.length
      const count = this.#perLength.get(n) ?? 0
      this.#perLength.set(n, count + 1)
      if (count === 0) {
        const lengths = this.#lengths
        let i = lengths.length
        while (i > 0 && lengths[i - 1]! > n) i--
        lengths.splice(i, 0, n)
      }
    }
    this.#byPrefix.set(prefix, value)
  }

  delete(prefix: string): boolean {
    if (!this.#byPrefix.delete(prefix)) return false
    const n = prefix.length
    const count = this.#perLength.get(n)! - 1
    if (count > 0) this.#perLength.set(n, count)
    else {
      this.#perLength.delete(n)
      this.#lengths.splice(this.#lengths.indexOf(n), 1)
    }
    return true
  }

  clear(): void {
    this.#byPrefix.clear()
    this.#perLength.clear()
    this.#lengths = []
  }

  entries(): IterableIterator<[string, T]> {
    return this.#byPrefix.entries()
  }

  [Symbol.iterator](): IterableIterator<[string, T]> {
    return this.#byPrefix.entries()
  }
}
