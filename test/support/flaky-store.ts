/**
 * A byte store over a Map whose health a test sets: 'up', 'down' (every call rejects at
 * once, like a refused connection), 'hung' (every call stays pending, like a frozen
 * server) or 'full' (writes are refused with ERR_STORE_FULL, like a full LMDB map; reads
 * and deletes work). A test double of our own Store contract; real servers are tested elsewhere.
 */
import type { Clock } from '../../src/core/clock.js'
import { StoreFullError } from '../../src/core/errors.js'
import type { ScanOptions, ScanPage, Store, StoreEntry } from '../../src/store/types.js'

export type Health = 'up' | 'down' | 'hung' | 'full'

export class FlakyStore implements Store {
  readonly name = 'flaky'
  health: Health = 'up'
  readonly data = new Map<string, { value: Uint8Array; expiresAt: number }>()
  readonly calls: string[] = []
  readonly #clock: Clock

  constructor(clock: Clock) {
    this.#clock = clock
  }

  #op<T>(name: string, fn: () => T, write = false): Promise<T> {
    this.calls.push(name)
    if (this.health === 'full' && write) return Promise.reject(new StoreFullError('flaky store is full'))
    if (this.health === 'down') return Promise.reject(new Error('connect ECONNREFUSED'))
    if (this.health === 'hung') return new Promise<T>(() => {})
    return Promise.resolve(fn())
  }

  #live(key: string): Uint8Array | undefined {
    const e = this.data.get(key)
    if (e === undefined) return undefined
    if (e.expiresAt <= this.#clock.now()) {
      this.data.delete(key)
      return undefined
    }
    return e.value
  }

  get(key: string): Promise<Uint8Array | undefined> {
    return this.#op('get', () => this.#live(key))
  }
  getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    return this.#op('getMany', () => keys.map((k) => this.#live(k)))
  }
  set(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    return this.#op('set', () => {
      this.data.set(key, { value: value.slice(), expiresAt: this.#clock.now() + ttlMs })
    }, true)
  }
  setMany(entries: readonly StoreEntry[]): Promise<void> {
    return this.#op('setMany', () => {
      for (const e of entries) this.data.set(e.key, { value: e.value.slice(), expiresAt: this.#clock.now() + e.ttlMs })
    }, true)
  }
  delete(key: string): Promise<boolean> {
    return this.#op('delete', () => this.data.delete(key))
  }
  deleteMany(keys: readonly string[]): Promise<number> {
    return this.#op('deleteMany', () => keys.filter((k) => this.data.delete(k)).length)
  }
  touch(key: string, ttlMs: number): Promise<boolean> {
    return this.#op('touch', () => {
      const e = this.data.get(key)
      if (e === undefined || this.#live(key) === undefined) return false
      e.expiresAt = this.#clock.now() + ttlMs
      return true
    })
  }
  clear(prefix: string): Promise<void> {
    return this.#op('clear', () => {
      for (const k of [...this.data.keys()]) if (k.startsWith(prefix)) this.data.delete(k)
    })
  }
  /** Key order; the cursor is the last key returned (this double trusts its callers' cursors). */
  scan(options: ScanOptions = {}): Promise<ScanPage> {
    return this.#op('scan', () => {
      const { prefix = '', cursor, limit = 100 } = options
      const keys = [...this.data.keys()].filter((k) => k.startsWith(prefix) && (cursor === undefined || k > cursor) && this.#live(k) !== undefined).sort()
      const page = keys.slice(0, limit)
      return { keys: page, cursor: keys.length > limit ? page[page.length - 1] : undefined }
    })
  }
  close(): Promise<void> {
    return Promise.resolve()
  }
}
