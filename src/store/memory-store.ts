/**
 * `memoryStore`: a `Store` in a `Map`, for tests and single-process use (an L2 that lives
 * exactly as long as the process). It keeps the whole contract, locks included, so the
 * facade's distributed paths can be tested without a server.
 *
 * - Bytes are copied in and out, so neither the writer nor a reader can change a stored value.
 * - Expiry is absolute (`clock.now() + ttlMs`) and checked on every read; expired entries
 *   are also removed a few at a time on each write (a resumable sweep, so memory does not
 *   fill with dead entries that nobody reads again).
 * - `maxEntries` bounds the map: past it the oldest-inserted entry is evicted (an
 *   overwrite counts as a new insertion). This is a safety bound, not a cache policy; the
 *   in-process engine in front of the store does the clever eviction.
 * - Locks: fences come from one store-wide counter, so they grow across every grant of a
 *   key whatever happens to the key's lock record. `waitForRelease` wakes waiters at once
 *   on release and on a fenced write (or `setAbove`), and re-checks when the lease runs
 *   out. `setAbove` / `deleteAbove` always record a mark (from the same counter).
 */
import type { Clock, TimerHandle } from '../core/clock.js'
import { AbortedError, ClosedError, InvalidOptionsError } from '../core/errors.js'
import { optionNames, rejectUnknown } from '../core/known-options.js'
import { systemClock } from '../core/system-clock.js'
import { checkScanOptions, decodeCursor, encodeCursor } from './scan-options.js'
import { checkStoreEntries, checkStoreKey, checkStoreKeys, checkStoreToken, checkStoreValue } from './store-input.js'
import type { LockGrant, ScanOptions, ScanPage, Store, StoreEntry, StoreLocks } from './types.js'

const isMemoryCursor = (state: unknown): state is { a: string } => typeof state === 'object' && state !== null && typeof (state as { a?: unknown }).a === 'string'

export interface MemoryStoreOptions {
  /** Time source for expiry and lock leases. @default systemClock */
  clock?: Clock
  /** Most entries kept; past it the oldest-inserted is evicted. @default 100_000 */
  maxEntries?: number
}

interface Entry {
  readonly value: Uint8Array
  expiresAt: number
}

interface LockState {
  /** The holder, or undefined when free. */
  token: string | undefined
  expiresAt: number
  /** Highest fence written through setFenced. */
  highWater: number
  readonly waiters: Set<() => void>
}

const DEFAULT_MAX_ENTRIES = 100_000
/** Entries examined per write by the expiry sweep: enough to outpace writes, cheap per call. */
const SWEEP_STEP = 16

/** memoryStore's option names: another is refused, not ignored (core/known-options.ts). */
const MEMORY_STORE_OPTIONS = optionNames<MemoryStoreOptions>({ clock: true, maxEntries: true })

export function memoryStore(options: MemoryStoreOptions = {}): Store {
  return new MemoryStore(options)
}

/** Checks a TTL or lease: > 0 ms, or Infinity. */
function checkTtl(ms: number, name: string): void {
  if (typeof ms !== 'number' || !(ms > 0)) throw new InvalidOptionsError(name, `expected a number of ms > 0 or Infinity, got ${String(ms)}`)
}

class MemoryStore implements Store {
  readonly name = 'memory'
  readonly locks: StoreLocks
  readonly #clock: Clock
  readonly #maxEntries: number
  // Map keeps insertion order: the first key is the oldest-inserted, which eviction takes.
  readonly #entries = new Map<string, Entry>()
  #sweep: Iterator<[string, Entry]> | undefined
  readonly #lockStates = new Map<string, LockState>()
  #fence = 0
  #closed = false

  constructor(options: MemoryStoreOptions) {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionsError('memoryStore', 'expected an options object')
    rejectUnknown(options, MEMORY_STORE_OPTIONS, 'memory')
    const { clock = systemClock, maxEntries = DEFAULT_MAX_ENTRIES } = options
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new InvalidOptionsError('memory.maxEntries', `expected an integer >= 1, got ${String(maxEntries)}`)
    if (typeof clock?.now !== 'function' || typeof clock.setTimeout !== 'function') throw new InvalidOptionsError('memory.clock', 'expected a Clock')
    this.#clock = clock
    this.#maxEntries = maxEntries
    this.locks = new MemoryLocks(this)
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    this.#open()
    checkStoreKey(key)
    return this.#read(key, this.#clock.now())
  }

  async getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    this.#open()
    checkStoreKeys(keys)
    const now = this.#clock.now()
    return keys.map((key) => this.#read(key, now))
  }

  async set(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    this.#open()
    checkStoreKey(key)
    checkStoreValue(value)
    checkTtl(ttlMs, 'ttlMs')
    this.write(key, value, ttlMs)
  }

  async setMany(entries: readonly StoreEntry[]): Promise<void> {
    this.#open()
    // Validate all first: a bad entry must not leave the batch half written.
    checkStoreEntries(entries)
    for (const e of entries) checkTtl(e.ttlMs, 'ttlMs')
    for (const e of entries) this.write(e.key, e.value, e.ttlMs)
  }

  async delete(key: string): Promise<boolean> {
    this.#open()
    checkStoreKey(key)
    return this.#remove(key, this.#clock.now())
  }

  async deleteMany(keys: readonly string[]): Promise<number> {
    this.#open()
    checkStoreKeys(keys)
    const now = this.#clock.now()
    let n = 0
    for (const key of keys) if (this.#remove(key, now)) n++
    return n
  }

  async touch(key: string, ttlMs: number): Promise<boolean> {
    this.#open()
    checkStoreKey(key)
    checkTtl(ttlMs, 'ttlMs')
    const now = this.#clock.now()
    const entry = this.#live(key, now)
    if (entry === undefined) return false
    entry.expiresAt = now + ttlMs
    return true
  }

  async clear(prefix: string): Promise<void> {
    this.#open()
    checkStoreKey(prefix, 'prefix')
    if (prefix === '') {
      this.#entries.clear()
    } else {
      // Deleting the current key while iterating a Map is safe.
      for (const key of this.#entries.keys()) if (key.startsWith(prefix)) this.#entries.delete(key)
    }
    // Lock records (and their fence marks) survive clear: they guard writes, not values.
  }

  /**
   * Key order (UTF-16 code units); the cursor is the last key returned, so keys inserted or
   * removed meanwhile never shift the walk. Each page looks at every entry once (keeping the
   * `limit` smallest keys after the cursor): O(n log limit), fine for a test store.
   */
  async scan(options?: ScanOptions): Promise<ScanPage> {
    this.#open()
    const { prefix, cursor, limit } = checkScanOptions(options)
    const after = cursor === undefined ? undefined : decodeCursor(cursor, isMemoryCursor, 'memory').a
    const now = this.#clock.now()
    let picked: string[] = []
    let bound: string | undefined // keys from this one up cannot be among the limit + 1 smallest
    for (const [key, entry] of this.#entries) {
      if (!key.startsWith(prefix) || now >= entry.expiresAt) continue
      if (after !== undefined && key <= after) continue
      if (bound !== undefined && key >= bound) continue
      picked.push(key)
      if (picked.length >= 4 * limit + 4) {
        // Keep the limit + 1 smallest: one more than the page tells whether another follows.
        picked = picked.sort().slice(0, limit + 1)
        bound = picked[limit]
      }
    }
    picked.sort()
    const more = picked.length > limit
    const keys = more ? picked.slice(0, limit) : picked
    return { keys, cursor: more ? encodeCursor({ a: keys[keys.length - 1] }) : undefined }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#entries.clear()
    this.#sweep = undefined
    // Nobody can release a lock any more: let waiters go (they resolve, as on a timeout).
    for (const state of this.#lockStates.values()) wakeAll(state)
    this.#lockStates.clear()
  }

  // ---- internals shared with MemoryLocks ----

  get clock(): Clock {
    return this.#clock
  }

  assertOpen(): void {
    this.#open()
  }

  /** The key's lock record, created on first use. */
  lockState(key: string): LockState {
    let state = this.#lockStates.get(key)
    if (state === undefined) {
      state = { token: undefined, expiresAt: 0, highWater: -Infinity, waiters: new Set() }
      this.#lockStates.set(key, state)
      if (this.#lockStates.size > this.#maxEntries) this.#pruneLocks()
    }
    return state
  }

  /** Drops a record that remembers nothing: free, nobody waiting, no fenced write. */
  forgetIfIdle(key: string, state: LockState): void {
    if (state.token === undefined && state.waiters.size === 0 && state.highWater === -Infinity) this.#lockStates.delete(key)
  }

  /**
   * Bounds the lock records like the entries: drops the oldest idle ones (free, no waiters).
   * Dropping a fence mark only matters to a holder that paused for longer than it took
   * `maxEntries` other keys to be locked; fences themselves keep growing (store-wide counter).
   */
  #pruneLocks(): void {
    const now = this.#clock.now()
    let budget = SWEEP_STEP
    for (const [key, state] of this.#lockStates) {
      if (this.#lockStates.size <= this.#maxEntries || budget-- === 0) return
      const held = state.token !== undefined && now < state.expiresAt
      if (!held && state.waiters.size === 0) this.#lockStates.delete(key)
    }
  }

  peekLockState(key: string): LockState | undefined {
    return this.#lockStates.get(key)
  }

  /** The next fence: above every earlier grant, and above `floor` (the key's highest written fence). */
  nextFence(floor: number): number {
    this.#fence = Math.max(this.#fence, Math.floor(floor)) + 1
    return this.#fence
  }

  /** Removes `key` now (synchronously, so a lock operation can pair it with a fence mark); true when it was live. */
  remove(key: string): boolean {
    return this.#remove(key, this.#clock.now())
  }

  /** Writes a copy of `value` as the newest insertion, then sweeps and bounds the map. */
  write(key: string, value: Uint8Array, ttlMs: number): void {
    const now = this.#clock.now()
    // `new Uint8Array(view)` copies exactly the view's bytes (Buffer#slice would not copy).
    const entry: Entry = { value: new Uint8Array(value), expiresAt: now + ttlMs }
    this.#entries.delete(key) // re-insert at the end: an overwrite is the newest insertion
    this.#entries.set(key, entry)
    this.#sweepSome(now)
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next()
      if (oldest.done === true) break
      this.#entries.delete(oldest.value)
    }
  }

  #open(): void {
    if (this.#closed) throw new ClosedError('The memory store is closed')
  }

  /** The entry if present and not expired; an expired one is removed on the way. */
  #live(key: string, now: number): Entry | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (now >= entry.expiresAt) {
      this.#entries.delete(key)
      return undefined
    }
    return entry
  }

  #read(key: string, now: number): Uint8Array | undefined {
    return this.#live(key, now)?.value.slice()
  }

  #remove(key: string, now: number): boolean {
    // An expired entry did not exist as far as the caller can tell.
    const existed = this.#live(key, now) !== undefined
    if (existed) this.#entries.delete(key)
    return existed
  }

  /**
   * Examines the next SWEEP_STEP entries of a long-lived Map iterator, removing expired
   * ones. Map iterators stay valid across inserts and deletes, so the sweep resumes where
   * it stopped and visits every entry once per lap whatever happens in between.
   */
  #sweepSome(now: number): void {
    for (let i = 0; i < SWEEP_STEP; i++) {
      this.#sweep ??= this.#entries.entries()
      const next = this.#sweep.next()
      if (next.done === true) {
        this.#sweep = undefined // lap finished; the next write starts another
        return
      }
      const [key, entry] = next.value
      if (now >= entry.expiresAt) this.#entries.delete(key)
    }
  }
}

function wakeAll(state: LockState): void {
  const waiters = [...state.waiters]
  state.waiters.clear()
  for (const wake of waiters) wake()
}

class MemoryLocks implements StoreLocks {
  readonly #store: MemoryStore

  constructor(store: MemoryStore) {
    this.#store = store
  }

  async acquire(key: string, token: string, leaseMs: number): Promise<LockGrant | undefined> {
    this.#store.assertOpen()
    checkStoreKey(key)
    checkStoreToken(token)
    checkTtl(leaseMs, 'leaseMs')
    const now = this.#store.clock.now()
    const state = this.#store.lockState(key)
    if (this.#heldBy(state, now) !== undefined) return undefined
    state.token = token
    state.expiresAt = now + leaseMs
    // Above the key's high-water mark too, or a caller that once wrote with a made-up
    // high fence would lock every later holder out of setFenced.
    return { token, fence: this.#store.nextFence(state.highWater) }
  }

  async extend(key: string, token: string, leaseMs: number): Promise<boolean> {
    this.#store.assertOpen()
    checkStoreKey(key)
    checkStoreToken(token)
    checkTtl(leaseMs, 'leaseMs')
    const now = this.#store.clock.now()
    const state = this.#store.peekLockState(key)
    if (state === undefined || this.#heldBy(state, now) !== token) return false
    state.expiresAt = now + leaseMs
    return true
  }

  async release(key: string, token: string): Promise<boolean> {
    this.#store.assertOpen()
    checkStoreKey(key)
    checkStoreToken(token)
    const state = this.#store.peekLockState(key)
    if (state === undefined || this.#heldBy(state, this.#store.clock.now()) !== token) return false
    state.token = undefined
    state.expiresAt = 0
    wakeAll(state)
    this.#store.forgetIfIdle(key, state)
    return true
  }

  async drawFence(key: string): Promise<number> {
    this.#store.assertOpen()
    checkStoreKey(key)
    // The store-wide counter is above every grant; the key's mark, above every written fence.
    return this.#store.nextFence(this.#store.peekLockState(key)?.highWater ?? -Infinity)
  }

  async setFenced(key: string, value: Uint8Array, ttlMs: number, fence: number): Promise<boolean> {
    this.#store.assertOpen()
    checkStoreKey(key)
    checkStoreValue(value)
    checkTtl(ttlMs, 'ttlMs')
    if (typeof fence !== 'number' || !Number.isFinite(fence)) throw new InvalidOptionsError('fence', `expected a finite number, got ${String(fence)}`)
    const state = this.#store.lockState(key)
    if (fence < state.highWater) return false
    state.highWater = fence
    this.#store.write(key, value, ttlMs)
    wakeAll(state)
    return true
  }

  async setAbove(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    this.#store.assertOpen()
    checkStoreKey(key)
    checkStoreValue(value)
    checkTtl(ttlMs, 'ttlMs')
    this.#store.write(key, value, ttlMs)
    // Always, even for a key without a record: records of released locks are forgotten
    // (forgetIfIdle) while a holder whose lease ran out may still write.
    wakeAll(this.#raise(key))
  }

  async deleteAbove(key: string): Promise<boolean> {
    this.#store.assertOpen()
    checkStoreKey(key)
    const existed = this.#store.remove(key)
    this.#raise(key)
    return existed
  }

  /** Raises the key's mark above every fence granted or drawn so far (the store-wide counter). */
  #raise(key: string): LockState {
    const state = this.#store.lockState(key)
    state.highWater = this.#store.nextFence(state.highWater)
    return state
  }

  waitForRelease(key: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    try {
      this.#store.assertOpen()
      if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) throw new InvalidOptionsError('timeoutMs', `expected a number of ms >= 0, got ${String(timeoutMs)}`)
    } catch (err) {
      return Promise.reject(err)
    }
    if (signal?.aborted === true) return Promise.reject(new AbortedError('waitForRelease was aborted', { cause: signal.reason }))
    const clock = this.#store.clock
    const deadline = clock.now() + timeoutMs
    const state = this.#store.peekLockState(key)
    if (state === undefined || this.#heldBy(state, clock.now()) === undefined) return Promise.resolve()

    return new Promise<void>((resolve, reject) => {
      let timer: TimerHandle | undefined
      const finish = (err?: AbortedError): void => {
        state.waiters.delete(wake)
        signal?.removeEventListener('abort', onAbort)
        if (timer !== undefined) clock.clearTimeout(timer)
        timer = undefined
        if (err === undefined) resolve()
        else reject(err)
      }
      const wake = (): void => finish()
      const onAbort = (): void => finish(new AbortedError('waitForRelease was aborted', { cause: signal?.reason }))
      // Wakes at the deadline or when the lease runs out, whichever is first; an extended
      // lease just re-arms. Release and fenced writes wake through `waiters` at once.
      const check = (): void => {
        timer = undefined
        const now = clock.now()
        if (this.#heldBy(state, now) === undefined || now >= deadline) return finish()
        const delay = Math.min(deadline, state.expiresAt) - now
        if (delay !== Infinity) timer = clock.setTimeout(check, delay)
      }
      state.waiters.add(wake)
      signal?.addEventListener('abort', onAbort, { once: true })
      check()
    })
  }

  /** The holder's token while the lease runs, else undefined. */
  #heldBy(state: LockState, now: number): string | undefined {
    return state.token !== undefined && now < state.expiresAt ? state.token : undefined
  }
}
