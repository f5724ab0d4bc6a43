/**
 * The L2 store contract. A store keeps opaque bytes under string keys with an absolute
 * expiry; the facade encodes values (codec, compression, encryption) before they reach a
 * store, so every adapter is a byte store and one conformance suite covers them all.
 *
 * Invariants every adapter keeps (the conformance suite checks each):
 * - `get` never returns an entry past its expiry (checked on read, not only by a sweeper).
 * - `ttlMs` is a positive number of milliseconds or `Infinity` (no expiry); `touch` sets a
 *   new expiry of now + ttlMs on an existing entry and returns false for a missing one.
 * - Bytes read back equal the bytes written (adapters copy; a caller may reuse its buffer).
 * - `clear(prefix)` removes exactly the keys that start with `prefix` ('' = everything the
 *   store owns) and nothing else.
 * - Failures are thrown as errors (`ERR_STORE_FULL` where the store has a size limit);
 *   timeouts, retries and the circuit breaker live above the store, not in it.
 */
export interface Store {
  /** A short name for errors, events and metrics (`'redis'`, `'lmdb'`, `'memory'`). */
  readonly name: string
  /** Where the store lives (`127.0.0.1:6379`, a path), for error messages. Optional. */
  readonly location?: string
  get(key: string): Promise<Uint8Array | undefined>
  /** One entry per key, in order; `undefined` where absent. One round trip where the backend allows. */
  getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]>
  set(key: string, value: Uint8Array, ttlMs: number): Promise<void>
  setMany(entries: readonly StoreEntry[]): Promise<void>
  /** True when the key existed. */
  delete(key: string): Promise<boolean>
  /** Number of keys that existed. */
  deleteMany(keys: readonly string[]): Promise<number>
  /** Resets the expiry of an existing entry to now + ttlMs. True when the key existed. */
  touch(key: string, ttlMs: number): Promise<boolean>
  /** Removes every key starting with `prefix`. */
  clear(prefix: string): Promise<void>
  /** Releases connections and handles. Idempotent. */
  close(): Promise<void>
  /** Cross-process locks, where the backend supports them. */
  readonly locks?: StoreLocks
  /**
   * One page of the keys starting with `prefix`: call again with the returned `cursor`
   * until it is `undefined`. Every built-in store has it (memory, LMDB, Redis standalone,
   * Sentinel and Cluster); the conformance suite requires it unless told the adapter cannot
   * scan. Guarantees (see `ScanPage`); the keys only: read values with `getMany`.
   */
  scan?(options?: ScanOptions): Promise<ScanPage>
  /**
   * Compare-and-swap over several keys and a change stream, on stores where every write
   * gets a revision that several processes can condition on (etcd). Optional: a node's
   * keyspace uses it, when present, to make each write one conditional transaction, so
   * several nodes can share the store without losing updates (decision 0263).
   */
  readonly conditional?: ConditionalWrites
}

/** A value with the revision of its last change (0: never written, or deleted). */
export interface RevisionedValue {
  /** The live bytes; undefined when absent or expired. */
  readonly value: Uint8Array | undefined
  /**
   * The key's mod revision: 0 when absent. An expired entry the backend has not collected
   * yet has a revision and no value; `commitIf` compares revisions, not values.
   */
  readonly revision: number
}

/** What `ConditionalWrites.watch` reports, in the store's order (see `EtcdChange`, the same shape). */
export type StoreChange =
  | { readonly kind: 'changed'; readonly entries: readonly { readonly key: string; readonly value: Uint8Array | undefined }[]; readonly revision: number }
  | { readonly kind: 'lost'; readonly reason: 'disconnected' | 'compacted' | 'cancelled' }
  | { readonly kind: 'synced'; readonly revision: number }

/** Conditional writes and the change stream (etcdStore). */
export interface ConditionalWrites {
  /** The values and revisions of `keys` (at most 64), in order, in one consistent snapshot, at the store's read consistency. */
  getRevisions(keys: readonly string[]): Promise<RevisionedValue[]>
  /**
   * In one atomic step: if every `expect` key's revision still equals the one given (0:
   * absent), writes `set` and deletes `remove`, and resolves true; otherwise writes nothing
   * and resolves false. At most 64 operations in all.
   */
  commitIf(expect: readonly { readonly key: string; readonly revision: number }[], set: readonly StoreEntry[], remove: readonly string[]): Promise<boolean>
  /**
   * Calls `listener` with every change to the store's keys, by any process, in order;
   * `lost` when changes may be missed from then on, `synced` once they are reported again.
   */
  watch(listener: (change: StoreChange) => void): { readonly ready: Promise<void>; close(): Promise<void> }
}

export interface ScanOptions {
  /** Only keys starting with this ('' = all the store owns). @default '' */
  readonly prefix?: string
  /**
   * The `cursor` of the previous page, with the same `prefix`; absent to start. Opaque (each
   * store has its own format: a position in key order, a Redis SCAN cursor per master…);
   * a malformed one is refused with `ERR_INVALID_OPTIONS`.
   */
  readonly cursor?: string
  /** Most keys in the page, 1..10,000 (`MAX_SCAN_LIMIT`). @default 100 */
  readonly limit?: number
}

/**
 * A page of a scan. What a whole scan (first call to the page whose cursor is `undefined`)
 * guarantees, on every store:
 * - every key that starts with the prefix and is present and unexpired for the whole scan
 *   is returned at least once (Redis Cluster: while no slot moves between masters; a change
 *   of the master set restarts the walk, which repeats keys but loses none);
 * - a key may be returned more than once (Redis SCAN on a resizing table, a restarted
 *   cluster walk): deduplicate if it matters;
 * - a key written or deleted during the scan may or may not be returned;
 * - a key is returned only if it was unexpired when its page was read;
 * - `keys.length <= limit`; a page may be empty while `cursor` is still set (a sparse
 *   prefix, expired entries skipped): keep going until `cursor` is `undefined`;
 * - no order is promised across stores (memory, LMDB and etcd walk in key order, Redis
 *   does not).
 */
export interface ScanPage {
  readonly keys: readonly string[]
  /** Where the next page starts; `undefined` when the scan is complete. */
  readonly cursor: string | undefined
}

export interface StoreEntry {
  readonly key: string
  readonly value: Uint8Array
  readonly ttlMs: number
}

/** A granted lock: the holder's token and a fencing number that grows with every grant on the key. */
export interface LockGrant {
  readonly token: string
  readonly fence: number
}

/**
 * Leases with fencing (cachekit / Kleppmann): each grant on a key carries a fence larger than
 * any earlier grant's on the same key, and `setFenced` refuses a write whose fence is lower
 * than the highest fence already written for that key, so a holder that paused past its
 * lease cannot overwrite a newer value. The facade writes every value it computed after
 * waiting for a lock with a fence too (a grant's, or `drawFence`'s when it stopped
 * waiting), so no write that follows a wait leaves the mark below a stale holder's fence;
 * and, with `lock: 'distributed'`, its explicit writes and deletes with `setAbove` /
 * `deleteAbove`, so no holder granted before them can overwrite or resurrect the key.
 */
export interface StoreLocks {
  /** Takes the lease if free; `undefined` when another holder has it. */
  acquire(key: string, token: string, leaseMs: number): Promise<LockGrant | undefined>
  /** Extends the lease if `token` still holds it. */
  extend(key: string, token: string, leaseMs: number): Promise<boolean>
  /** Releases the lease if `token` still holds it, and wakes the key's waiters. */
  release(key: string, token: string): Promise<boolean>
  /**
   * A fence without a lease, for a writer that stopped waiting for the lock: larger than
   * every fence granted or drawn on `key` so far, smaller than every later grant's. A
   * `setFenced` with it refuses the later writes of every earlier holder.
   */
  drawFence(key: string): Promise<number>
  /** Writes only if `fence` >= the highest fence written for `key`; false when refused. */
  setFenced(key: string, value: Uint8Array, ttlMs: number, fence: number): Promise<boolean>
  /**
   * An explicit write, ordered by when it lands: writes the value and, in the same atomic
   * step, raises the key's fence mark above every fence granted or drawn on it so far, so
   * every earlier holder's (or drawer's) later `setFenced` is refused; later grants are
   * above it. A key with no lock state (never locked, or idle past the store's fence
   * retention) may be written without creating any. Wakes the key's waiters like a fenced write.
   */
  setAbove(key: string, value: Uint8Array, ttlMs: number): Promise<void>
  /** `delete` with `setAbove`'s mark: no earlier holder can write the key back. True when the key existed. */
  deleteAbove(key: string): Promise<boolean>
  /**
   * Resolves when the key's lock is released (or the value written) by any process, when
   * its lease runs out without either (a paused or dead holder), or after `timeoutMs`,
   * whichever comes first; never rejects for a timeout. Backends with notifications (Redis
   * pub/sub) wake at once on a release; others may poll.
   */
  waitForRelease(key: string, timeoutMs: number, signal?: AbortSignal): Promise<void>
}
