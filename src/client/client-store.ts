/**
 * `clientStore(client)`: one or more cache nodes as the L2 `Store` of `createCache`
 * (src/store/types.ts), so `createCache({ store: clientStore(client) })` keeps its L1 in
 * process and shares L2 through the nodes.
 *
 * How the contract maps onto the protocol:
 * - bytes in, bytes out: `PUT`/`GET /v1/keys/{key}`; batches: `mget`/`mset` (split by the
 *   client at 1000);
 * - TTLs: the protocol counts whole seconds, so `ttlMs` is rounded UP to the next second
 *   (at least 1 s; `Infinity` is `ttl=none`). An entry may thus live up to 1 s longer in the
 *   node than asked; the facade's records carry their own absolute deadlines and never serve
 *   an entry past them, so this costs memory, never freshness;
 * - `touch`: the protocol has no touch, so it is a read and a conditional re-write of the
 *   same bytes and tags with `If-Match` on the version read: it never resurrects a deleted
 *   entry nor overwrites a newer write (a lost race retries, then leaves the newer write);
 * - `clear('')`: `DELETE /v1/keys` (every key of the node); `clear(prefix)`:
 *   `DELETE /v1/keys?prefix=`. An older node without prefix clears answers
 *   `400 ERR_BAD_REQUEST` (it refuses unknown parameters, so nothing is removed); the store
 *   then clears the whole node instead (`prefixFallback: 'all'`, the default: a cache may
 *   forget more than asked, it must not keep what it was told to drop) or fails with
 *   `ERR_STORE_UNAVAILABLE` (`'error'`). Failing is not the default because the facade's
 *   GuardedStore queues a failed clear and replays it until it succeeds, holding back
 *   every L2 write behind it;
 * - `scan`: `GET /v1/keys` pages through `client.keys` (the listing stays on the node that
 *   answered its first page); `limit` above the node's bound (1000) asks for 1000, a node
 *   refusing a cursor (`ERR_BAD_REQUEST`) is `ERR_INVALID_OPTIONS`, as for every store;
 * - `locks`: undefined. The protocol has no leases, so `lock: 'distributed'` is refused by
 *   `createCache` for this store; single-flight still dedupes within each process.
 *
 * Errors: every failure is thrown as the client raised it (typed, with its code); the
 * facade's GuardedStore above adds timeouts, the breaker and the write queue. The client's
 * own retries stay on: they handle a failing node among several (round-robin failover).
 */
import { InvalidOptionsError, StoreUnavailableError, isCacheError } from '../core/errors.js'
import { optionNames, rejectUnknown } from '../core/known-options.js'
import { checkScanOptions } from '../store/scan-options.js'
import { checkStoreEntries, checkStoreKey, checkStoreKeys, checkStoreValue } from '../store/store-input.js'
import type { ScanOptions, ScanPage, Store, StoreEntry } from '../store/types.js'
import { isNodeAnswer, MAX_KEYS_LIMIT, type Client } from './client.js'

export interface ClientStoreOptions {
  /** The store's name in errors, events and metrics. @default 'stratacache' */
  name?: string
  /** Close the client when the store is closed. @default false (the client's creator closes it) */
  closeClient?: boolean
  /**
   * What `clear(prefix)` does on a node that cannot clear by prefix: `'all'` clears the
   * whole node (forgets more than asked), `'error'` fails with `ERR_STORE_UNAVAILABLE`.
   * @default 'all'
   */
  prefixFallback?: 'all' | 'error'
}

/** clientStore's option names: another is refused, not ignored (core/known-options.ts). */
const CLIENT_STORE_OPTIONS = optionNames<ClientStoreOptions>({ name: true, closeClient: true, prefixFallback: true })

/** DELETEs in flight at once for `deleteMany`. */
const DELETE_CONCURRENCY = 16

/** Attempts of touch's read-then-conditional-write before it leaves a concurrent write in place. */
const TOUCH_ATTEMPTS = 3

export function clientStore(client: Client, options: ClientStoreOptions = {}): Store {
  return new ClientStore(client, options)
}

const ttlOf = (ttlMs: number): number => (ttlMs === Infinity ? Infinity : Math.max(1000, Math.ceil(ttlMs / 1000) * 1000))

function copy(value: Uint8Array): Uint8Array {
  // Buffers from the transport may sit in a shared pool; hand the caller its own bytes.
  return new Uint8Array(value)
}

class ClientStore implements Store {
  readonly name: string
  readonly locks = undefined
  readonly #client: Client
  readonly #closeClient: boolean
  readonly #prefixFallback: 'all' | 'error'
  /** Set once a node refused a prefix clear, so later clears do not ask again. */
  #noPrefixClear = false
  #closed = false

  constructor(client: Client, options: ClientStoreOptions) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('clientStore', 'expected an options object')
    rejectUnknown(options, CLIENT_STORE_OPTIONS, 'clientStore')
    this.#client = client
    this.name = options.name ?? 'stratacache'
    this.#closeClient = options.closeClient ?? false
    this.#prefixFallback = options.prefixFallback ?? 'all'
    if (this.#prefixFallback !== 'all' && this.#prefixFallback !== 'error') throw new InvalidOptionsError('prefixFallback', `expected 'all' or 'error', got ${String(options.prefixFallback)}`)
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    checkStoreKey(key)
    const entry = await this.#client.get(key)
    return entry === undefined ? undefined : copy(entry.value)
  }

  async getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    checkStoreKeys(keys)
    if (keys.length === 0) return []
    const entries = await this.#client.mget(keys)
    return entries.map((e) => (e === undefined ? undefined : copy(e.value)))
  }

  async set(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    checkStoreKey(key)
    checkStoreValue(value)
    await this.#client.set(key, value, { ttl: ttlOf(ttlMs) })
  }

  async setMany(entries: readonly StoreEntry[]): Promise<void> {
    checkStoreEntries(entries)
    if (entries.length === 0) return
    await this.#client.mset(entries.map((e) => ({ key: e.key, value: e.value, ttl: ttlOf(e.ttlMs) })))
  }

  async delete(key: string): Promise<boolean> {
    checkStoreKey(key)
    return this.#client.delete(key)
  }

  async deleteMany(keys: readonly string[]): Promise<number> {
    // The protocol has no batch delete: one DELETE per distinct key, a bounded number at a
    // time so a large batch does not queue thousands of requests behind the pool (where
    // their timeouts would run while they wait).
    checkStoreKeys(keys)
    const unique = [...new Set(keys)]
    let deleted = 0
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < unique.length) {
        const key = unique[next++]
        if (await this.#client.delete(key)) deleted++
      }
    }
    await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, unique.length) }, worker))
    return deleted
  }

  async touch(key: string, ttlMs: number): Promise<boolean> {
    checkStoreKey(key)
    for (let attempt = 0; attempt < TOUCH_ATTEMPTS; attempt++) {
      const entry = await this.#client.get(key)
      if (entry === undefined) return false
      try {
        await this.#client.set(key, entry.value, { ttl: ttlOf(ttlMs), tags: entry.tags, ifVersion: entry.version })
        return true
      } catch (err) {
        // Another write (or a delete) landed between the read and the re-write: look again.
        if (!isCacheError(err, 'ERR_PRECONDITION_FAILED')) throw err
      }
    }
    // Keeps losing races to fresh writes: the key exists and was just written by others.
    return true
  }

  async clear(prefix: string): Promise<void> {
    checkStoreKey(prefix, 'prefix')
    if (prefix !== '' && !this.#noPrefixClear) {
      try {
        await this.#client.clear({ prefix })
        return
      } catch (err) {
        if (!(isCacheError(err, 'ERR_BAD_REQUEST') && isNodeAnswer(err))) throw err
        this.#noPrefixClear = true
      }
    }
    if (prefix !== '' && this.#prefixFallback === 'error') {
      throw new StoreUnavailableError(`The node cannot clear by prefix (DELETE /v1/keys?prefix= refused); nothing was removed`)
    }
    await this.#client.clear()
  }

  async scan(options?: ScanOptions): Promise<ScanPage> {
    const { prefix, cursor, limit } = checkScanOptions(options)
    try {
      const page = await this.#client.keys({ prefix, cursor, limit: Math.min(limit, MAX_KEYS_LIMIT) })
      return { keys: page.keys, cursor: page.cursor }
    } catch (err) {
      if (isCacheError(err, 'ERR_BAD_REQUEST') && isNodeAnswer(err)) throw new InvalidOptionsError('scan', err.message, { cause: err })
      throw err
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#closeClient) await this.#client.close()
  }
}
