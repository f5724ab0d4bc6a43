/**
 * A `Store` seen through timeouts, retries, a circuit breaker and a write queue: what the
 * facade talks to, so that a slow or dead L2 never makes a caller wait past its timeouts.
 *
 * - Every operation races a timer (`timeout`): past it the caller gets `ERR_STORE_TIMEOUT`
 *   (the operation itself may still land; nothing waits for it).
 * - Reads are idempotent: a failure other than a timeout is retried with full-jitter
 *   exponential backoff (`retry`), within the same `timeout`: it is one deadline for the
 *   read, attempts and backoff included (a client that fails each command only after a
 *   reconnect attempt, as ioredis does with a killed server, would otherwise make a read
 *   last up to `attempts + 1` timeouts). A timeout is not retried: a server that does not
 *   answer within the timeout will not answer the retry either, and the caller's budget is spent.
 * - The breaker sees every outcome; while it is open, calls fail at once
 *   (`ERR_STORE_UNAVAILABLE`) without touching the store.
 * - Writes, deletes and clears that fail are queued, one slot per key (the newest operation
 *   on a key wins) in the order they happened, and replayed in that order once the store
 *   answers again. While the queue holds anything, new writes join it instead of going
 *   direct, so a replayed older operation can never land after a newer one; and reads of a
 *   key with a queued operation are answered from the queue, so a value that a queued
 *   delete removed is never read back. The queue is bounded (`writeQueue`); when full, the
 *   oldest operation is dropped and counted.
 *
 * - A refusal (`ERR_STORE_FULL`, `ERR_INVALID_KEY`, `ERR_INVALID_OPTIONS`,
 *   `ERR_VALUE_TOO_LARGE`, `ERR_INVALID_VALUE`) is a healthy store's answer to one request:
 *   it counts as a success for the breaker, is reported and counted (`refused`), is never
 *   retried and never queued (the same request would be refused again, and a queued head
 *   that never lands would hold every later write in the queue). A refused write deletes
 *   the key instead, so L2 keeps no older value than the one the write tried to replace
 *   (except for values that only move forward, such as tag versions: see `set`).
 *
 * - `strictWrites`: for callers whose acknowledgement must mean "in L2" (the cache node),
 *   writes, deletes and clears that do not land reject with their typed error instead of
 *   being queued or turned into deletes; the queue then stays empty.
 *
 * Invariant: no method of this class returns a promise that can stay pending longer than
 * its timeout (retries of reads included), whatever the store does.
 */
import type { Clock, TimerHandle } from '../core/clock.js'
import { toMs, type Duration } from '../core/duration.js'
import { CacheError, InvalidOptionsError, StoreTimeoutError, StoreUnavailableError, type ErrorCode } from '../core/errors.js'
import { raceStoreTimeout } from '../core/store-timeout.js'
import type { Random } from '../core/random.js'
import { BackoffPolicy } from '../core/backoff.js'
import type { LockGrant, ScanOptions, ScanPage, Store } from '../store/types.js'
import { CircuitBreaker, type BreakerStats, type CircuitBreakerOptions } from './circuit-breaker.js'
import { isTraced, storeChannel, type StoreTrace, traceAsync } from '../core/tracing.js'

export interface RetryOptions {
  /** Extra attempts for a failed read. @default 2 */
  attempts?: number
  /** First backoff; it doubles per attempt, with full jitter. @default '20ms' */
  baseDelay?: Duration
  /** Longest backoff. @default '200ms' */
  maxDelay?: Duration
}

export interface GuardedStoreOptions {
  /** Per-operation timeout; for a read, the deadline of all its attempts together. @default '500ms' */
  timeout?: Duration
  retry?: RetryOptions
  breaker?: CircuitBreakerOptions
  /** Failed writes kept for replay (one per key). @default 10_000 */
  writeQueue?: number
  /**
   * A write, delete or clear that does not land (failure, timeout, open breaker, refusal)
   * rejects with its typed error instead of being queued for replay (or turned into a
   * delete on refusal), so a caller's acknowledgement means "in L2". For callers that
   * promise durability, such as the cache node. @default false
   */
  strictWrites?: boolean
}

export type StoreOperation = 'get' | 'getMany' | 'set' | 'delete' | 'touch' | 'clear' | 'lock' | 'replay' | 'scan'

export interface GuardedStoreStats {
  readonly breaker: BreakerStats
  readonly timeouts: number
  readonly failures: number
  readonly retries: number
  /** Operations waiting in the write queue. */
  readonly queued: number
  /** Queued operations written once the store came back. */
  readonly replayed: number
  /** Queued operations dropped because the queue was full. */
  readonly queueDropped: number
  /** Requests the store refused (full, invalid key or value): not failures, never queued. */
  readonly refused: number
}

type QueuedOp = { readonly kind: 'set'; readonly value: Uint8Array; readonly expiresAt: number; readonly keepOnRefusal: boolean } | { readonly kind: 'delete' } | { readonly kind: 'deleteAbove' } | { readonly kind: 'clear'; readonly prefix: string }

const CLEAR_SLOT = '\u0000clear\u0000'

/** Codes by which a healthy store refuses one request (see the note at the top). */
const REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['ERR_STORE_FULL', 'ERR_INVALID_KEY', 'ERR_INVALID_OPTIONS', 'ERR_VALUE_TOO_LARGE', 'ERR_INVALID_VALUE'])

/** What a trace may say of a store call's result: found or not and bytes read, never the bytes. */
function describeRead(context: StoreTrace, result: unknown): void {
  if (context.op === 'get') {
    context.found = result instanceof Uint8Array
    if (result instanceof Uint8Array) context.bytes = result.byteLength
  } else if (context.op === 'getMany' && Array.isArray(result)) {
    let found = 0
    let bytes = 0
    for (const r of result) {
      if (r instanceof Uint8Array) {
        found++
        bytes += r.byteLength
      }
    }
    context.found = found
    context.bytes = bytes
  }
}

function isRefusal(err: unknown): err is CacheError {
  return err instanceof CacheError && REFUSALS.has(err.code)
}

export class GuardedStore {
  readonly store: Store
  readonly #clock: Clock
  readonly #timeout: number
  readonly #attempts: number
  /** Read-retry delays (full jitter); undefined: retry at once (a delay of 0). */
  readonly #backoff: BackoffPolicy | undefined
  readonly #maxQueue: number
  /** See `GuardedStoreOptions.strictWrites`: nothing is ever queued when set. */
  readonly strictWrites: boolean
  readonly breaker: CircuitBreaker
  /** Insertion-ordered: replay order is the order the operations happened. */
  readonly #queue = new Map<string, QueuedOp>()
  #replayTimer: TimerHandle | undefined
  #replaying = false
  #closed = false
  #timeouts = 0
  #failures = 0
  #retries = 0
  #replayed = 0
  #queueDropped = 0
  #refused = 0
  /** The last failure, named when the open circuit refuses a call (so that error says why). */
  #lastFailure: CacheError | undefined
  /** Reports every failure (the facade forwards them to its 'error' listeners). */
  onError: ((error: CacheError, operation: StoreOperation, key: string | undefined) => void) | undefined

  constructor(store: Store, clock: Clock, random: Random, options: GuardedStoreOptions = {}, prefix = 'l2.') {
    this.store = store
    this.#clock = clock
    this.#timeout = toMs(options.timeout ?? '500ms', `${prefix}timeout`)
    if (!(this.#timeout > 0)) throw new InvalidOptionsError(`${prefix}timeout`, 'expected a duration > 0')
    const attempts = options.retry?.attempts ?? 2
    if (!Number.isSafeInteger(attempts) || attempts < 0) throw new InvalidOptionsError(`${prefix}retry.attempts`, `expected an integer >= 0, got ${String(attempts)}`)
    this.#attempts = attempts
    const baseDelay = toMs(options.retry?.baseDelay ?? '20ms', `${prefix}retry.baseDelay`)
    const maxDelay = toMs(options.retry?.maxDelay ?? '200ms', `${prefix}retry.maxDelay`)
    // The shared policy with full jitter: r × min(maxDelay, baseDelay × 2^n), one draw per
    // retry as before. initial = min(base, max) keeps a maxDelay below baseDelay meaning "always maxDelay".
    const initial = Math.min(baseDelay, maxDelay)
    this.#backoff = initial === 0 ? undefined : new BackoffPolicy({ initial, max: maxDelay, jitter: 'full' }, random, `${prefix}retry`)
    const maxQueue = options.writeQueue ?? 10_000
    if (!Number.isSafeInteger(maxQueue) || maxQueue < 0) throw new InvalidOptionsError(`${prefix}writeQueue`, `expected an integer >= 0, got ${String(maxQueue)}`)
    this.#maxQueue = maxQueue
    if (options.strictWrites !== undefined && typeof options.strictWrites !== 'boolean') throw new InvalidOptionsError(`${prefix}strictWrites`, `expected a boolean, got ${typeof options.strictWrites}`)
    this.strictWrites = options.strictWrites === true
    this.breaker = new CircuitBreaker(clock, options.breaker, `${prefix}breaker.`)
    this.breaker.onChange = (state) => {
      if (state === 'closed' && this.#queue.size > 0) this.#scheduleReplay(0)
    }
  }

  get timeoutMs(): number {
    return this.#timeout
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const queued = this.#queued(key)
    if (queued !== null) return queued
    return this.#read('get', key, () => this.store.get(key))
  }

  async getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    if (keys.length === 0) return []
    const out = await this.#read('getMany', undefined, () => this.store.getMany(keys))
    if (this.#queue.size > 0) for (let i = 0; i < keys.length; i++) {
      const queued = this.#queued(keys[i] as string)
      if (queued !== null) out[i] = queued
    }
    return out
  }

  /**
   * Writes, or queues the write when the store fails. Never rejects (unless `strictWrites`). A refused write deletes
   * the key, unless `keepOnRefusal`: for values that only move forward (tag versions), where
   * the older value is better than none.
   */
  async set(key: string, value: Uint8Array, ttlMs: number, keepOnRefusal = false): Promise<void> {
    const op: QueuedOp = { kind: 'set', value, expiresAt: this.#clock.now() + ttlMs, keepOnRefusal }
    if (this.#queue.size > 0) return this.#enqueue(key, op)
    try {
      await this.#call('set', key, () => this.store.set(key, value, ttlMs), undefined, undefined, value.byteLength)
    } catch (err) {
      if (this.strictWrites) throw err
      if (!isRefusal(err)) this.#enqueue(key, op)
      else if (err.code !== 'ERR_INVALID_KEY' && !keepOnRefusal) await this.delete(key)
    }
  }

  /** Deletes, or queues the delete when the store fails. Never rejects (unless `strictWrites`). */
  async delete(key: string): Promise<void> {
    if (this.#queue.size > 0) return this.#enqueue(key, { kind: 'delete' })
    try {
      await this.#call('delete', key, () => this.store.delete(key))
    } catch (err) {
      if (this.strictWrites) throw err
      if (!isRefusal(err)) this.#enqueue(key, { kind: 'delete' })
    }
  }

  /** Clears a prefix, or queues the clear when the store fails. Never rejects (unless `strictWrites`). */
  async clear(prefix: string): Promise<void> {
    const op: QueuedOp = { kind: 'clear', prefix }
    if (this.#queue.size > 0) return this.#enqueue(CLEAR_SLOT + prefix, op)
    try {
      await this.#call('clear', undefined, () => this.store.clear(prefix))
    } catch (err) {
      if (this.strictWrites) throw err
      if (!isRefusal(err)) this.#enqueue(CLEAR_SLOT + prefix, op)
    }
  }

  /** Best effort: a touch that fails is dropped (the entry keeps its older expiry). */
  async touch(key: string, ttlMs: number): Promise<boolean> {
    try {
      return await this.#call('touch', key, () => this.store.touch(key, ttlMs))
    } catch {
      return false
    }
  }

  /** Whether the store can scan (`Store.scan`). */
  get canScan(): boolean {
    return typeof this.store.scan === 'function'
  }

  /**
   * One page of the store's scan, guarded like a read (breaker, timeout, retries). It reads
   * the store: writes still queued for replay are not in it.
   */
  scan(options?: ScanOptions): Promise<ScanPage> {
    const scan = this.store.scan
    if (scan === undefined) return Promise.reject(new InvalidOptionsError('scan', `store ${this.store.name} cannot scan`))
    return this.#read('scan', undefined, () => scan.call(this.store, options))
  }

  get hasLocks(): boolean {
    return this.store.locks !== undefined
  }

  /** Lock calls go through the breaker and the timeout; they throw on failure. */
  acquire(key: string, token: string, leaseMs: number): Promise<LockGrant | undefined> {
    return this.#call('lock', key, () => this.#locks().acquire(key, token, leaseMs))
  }

  extend(key: string, token: string, leaseMs: number): Promise<boolean> {
    return this.#call('lock', key, () => this.#locks().extend(key, token, leaseMs))
  }

  release(key: string, token: string): Promise<boolean> {
    return this.#call('lock', key, () => this.#locks().release(key, token))
  }

  drawFence(key: string): Promise<number> {
    return this.#call('lock', key, () => this.#locks().drawFence(key))
  }

  setFenced(key: string, value: Uint8Array, ttlMs: number, fence: number): Promise<boolean> {
    return this.#call('set', key, () => this.#locks().setFenced(key, value, ttlMs, fence), undefined, undefined, value.byteLength)
  }

  /**
   * An explicit write ordered after every lock holder so far (`StoreLocks.setAbove`). One
   * that does not land is queued as a `deleteAbove`, never as itself: replayed later, the
   * value would be ordered at the replay, after holders granted since the write was made
   * whose computations are newer than it, and could overwrite their values. Forgetting the
   * key is always safe. Never rejects (unless `strictWrites`).
   */
  async setAbove(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    if (this.#queuedOn(key)) return this.#enqueue(key, { kind: 'deleteAbove' })
    try {
      await this.#call('set', key, () => this.#locks().setAbove(key, value, ttlMs), undefined, undefined, value.byteLength)
    } catch (err) {
      if (this.strictWrites) throw err
      if (!isRefusal(err)) this.#enqueue(key, { kind: 'deleteAbove' })
      else if (err.code !== 'ERR_INVALID_KEY') await this.deleteAbove(key)
    }
  }

  /** A delete ordered after every lock holder so far (`StoreLocks.deleteAbove`); queued when it fails. Never rejects (unless `strictWrites`). */
  async deleteAbove(key: string): Promise<void> {
    if (this.#queuedOn(key)) return this.#enqueue(key, { kind: 'deleteAbove' })
    try {
      await this.#call('delete', key, () => this.#locks().deleteAbove(key))
    } catch (err) {
      if (this.strictWrites) throw err
      if (!isRefusal(err)) this.#enqueue(key, { kind: 'deleteAbove' })
      // Refused (a full Redis refuses scripts that write): forget the value at least.
      else if (err.code !== 'ERR_INVALID_KEY') await this.delete(key)
    }
  }

  /** Waits for a release or `timeoutMs`; a failing store ends the wait early, never rejects. */
  async waitForRelease(key: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (!this.breaker.tryAcquire()) return
    try {
      await this.#race('lock', () => this.#locks().waitForRelease(key, timeoutMs, signal), timeoutMs + this.#timeout)
      this.breaker.success()
    } catch (err) {
      this.#fail(err, 'lock', key)
      if (signal?.aborted) throw err
    }
  }

  stats(): GuardedStoreStats {
    return {
      breaker: this.breaker.stats(),
      timeouts: this.#timeouts,
      failures: this.#failures,
      retries: this.#retries,
      queued: this.#queue.size,
      replayed: this.#replayed,
      queueDropped: this.#queueDropped,
      refused: this.#refused,
    }
  }

  /** Stops replaying; queued operations are dropped (the store is closed by its owner). */
  close(): void {
    this.#closed = true
    if (this.#replayTimer !== undefined) this.#clock.clearTimeout(this.#replayTimer)
    this.#replayTimer = undefined
  }

  // ---- internals ---------------------------------------------------------------------

  /** The store's name and, when it says, where it lives: for messages. */
  #describe(): string {
    const location = this.store.location
    return location === undefined ? this.store.name : `${this.store.name} (${location})`
  }

  #locks(): NonNullable<Store['locks']> {
    const locks = this.store.locks
    if (locks === undefined) throw new StoreUnavailableError(`Store ${this.store.name} has no locks`)
    return locks
  }

  /**
   * Whether a queued operation concerns `key` (on it, or a clear of a prefix of it): then a
   * new one on `key` must join the queue behind it. Operations on other keys do not order
   * this one, so the ordered writes go direct past them.
   */
  #queuedOn(key: string): boolean {
    return this.#queued(key) !== null
  }

  /** The queue's answer for `key`: bytes, `undefined` (deleted or cleared), or null (no say). */
  #queued(key: string): Uint8Array | undefined | null {
    if (this.#queue.size === 0) return null
    const op = this.#queue.get(key)
    if (op !== undefined) {
      if (op.kind === 'set') return op.expiresAt > this.#clock.now() ? op.value : undefined
      return undefined
    }
    for (const queued of this.#queue.values()) if (queued.kind === 'clear' && key.startsWith(queued.prefix)) return undefined
    return null
  }

  /** Attempts within one deadline (`timeout` from the first); see the note at the top. */
  async #read<T>(operation: StoreOperation, key: string | undefined, fn: () => Promise<T>): Promise<T> {
    const deadline = this.#clock.now() + this.#timeout
    let first: unknown
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#call(operation, key, fn, Math.max(0, deadline - this.#clock.now()), first)
      } catch (err) {
        first ??= err
        const retryable = attempt < this.#attempts && !(err instanceof StoreTimeoutError) && !isRefusal(err) && this.breaker.state === 'closed' && !this.#closed
        if (!retryable) throw err
        const delay = this.#backoff?.delay(attempt) ?? 0
        // No time left for another attempt after the backoff: the caller hears the failure now.
        if (this.#clock.now() + delay >= deadline) throw err
        this.#retries++
        await new Promise<void>((resolve) => this.#clock.setTimeout(resolve, delay))
      }
    }
  }

  /**
   * One guarded call: breaker, timeout, outcome recorded. Rejects with a CacheError.
   * `timeoutMs`: what is left of a read's deadline (the timeout error still names the
   * configured timeout, with `cause` the failure that started the retries). `bytes`: the
   * size of a written value, for the trace context. Traced on `stratacache:store` while
   * someone subscribes (core/tracing.ts).
   */
  #call<T>(operation: StoreOperation, key: string | undefined, fn: () => Promise<T>, timeoutMs = this.#timeout, cause?: unknown, bytes?: number): Promise<T> {
    if (!isTraced(storeChannel)) return this.#guarded(operation, key, fn, timeoutMs, cause)
    const context: StoreTrace = { op: operation, key, store: this.store.name }
    if (bytes !== undefined) context.bytes = bytes
    return traceAsync(storeChannel, context, () => this.#guarded(operation, key, fn, timeoutMs, cause), describeRead)
  }

  /** #call without tracing. */
  async #guarded<T>(operation: StoreOperation, key: string | undefined, fn: () => Promise<T>, timeoutMs: number, cause: unknown): Promise<T> {
    if (!this.breaker.tryAcquire()) {
      const last = cause ?? this.#lastFailure
      const why = last instanceof Error ? `; last failure: ${last.message}` : ''
      throw new StoreUnavailableError(`Store ${this.#describe()} is unavailable (circuit open${why})`, last === undefined ? undefined : { cause: last })
    }
    try {
      const result = await this.#race(operation, fn, timeoutMs, cause)
      this.breaker.success()
      return result
    } catch (err) {
      if (isRefusal(err)) throw this.#refuse(err, operation, key)
      throw this.#fail(err, operation, key)
    }
  }

  /** A refusal: the store answered, so the breaker sees a success; reported and counted. */
  #refuse(err: CacheError, operation: StoreOperation, key: string | undefined): CacheError {
    this.breaker.success()
    this.#refused++
    try {
      this.onError?.(err, operation, key)
    } catch {
      // A throwing listener must not turn a handled refusal into an unhandled one.
    }
    return err
  }

  /** A read's later attempt races what is left of its deadline; the error names the whole. */
  #race<T>(operation: StoreOperation, fn: () => Promise<T>, timeoutMs: number, cause?: unknown): Promise<T> {
    return raceStoreTimeout(this.#clock, timeoutMs, fn, operation, this.store, cause === undefined ? timeoutMs : this.#timeout, cause)
  }

  #fail(err: unknown, operation: StoreOperation, key: string | undefined): CacheError {
    this.breaker.failure()
    if (err instanceof StoreTimeoutError) this.#timeouts++
    else this.#failures++
    const error = err instanceof CacheError ? err : new StoreUnavailableError(`Store ${this.#describe()} failed on ${operation}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    this.#lastFailure = error
    try {
      this.onError?.(error, operation, key)
    } catch {
      // A throwing listener must not turn a handled failure into an unhandled one.
    }
    return error
  }

  #enqueue(slot: string, op: QueuedOp): void {
    if (this.#closed || this.#maxQueue === 0) {
      this.#queueDropped++
      return
    }
    if (op.kind === 'clear') {
      // A queued clear supersedes every queued operation on the keys it clears.
      // (Not a deleteAbove: a clear does not raise fence marks, and the replay must.)
      for (const [k, queued] of this.#queue) if (queued.kind !== 'clear' && queued.kind !== 'deleteAbove' && k.startsWith(op.prefix)) this.#queue.delete(k)
    }
    // Re-inserting moves the slot to the end: replay order follows the newest operation.
    this.#queue.delete(slot)
    this.#queue.set(slot, op)
    while (this.#queue.size > this.#maxQueue) {
      const oldest = this.#queue.keys().next().value as string
      this.#queue.delete(oldest)
      this.#queueDropped++
    }
    this.#scheduleReplay(this.breaker.state === 'open' ? this.#untilHalfOpen() : 0)
  }

  #untilHalfOpen(): number {
    // The breaker does not expose its clock arithmetic; probing every timeout is cheap and
    // the breaker refuses early probes without touching the store.
    return Math.max(this.#timeout, 50)
  }

  #scheduleReplay(delay: number): void {
    if (this.#closed || this.#replaying || this.#replayTimer !== undefined) return
    this.#replayTimer = this.#clock.setTimeout(
      () => {
        this.#replayTimer = undefined
        void this.#replay()
      },
      delay,
      { unref: true },
    )
  }

  async #replay(): Promise<void> {
    if (this.#replaying || this.#closed) return
    this.#replaying = true
    try {
      while (this.#queue.size > 0 && !this.#closed) {
        const [slot, op] = this.#queue.entries().next().value as [string, QueuedOp]
        try {
          await this.#call('replay', slot, () => this.#apply(slot, op))
        } catch (err) {
          if (!isRefusal(err)) break
          // Refused for good: a refused write becomes a delete (no older value may survive), in
          // the same place in the queue; anything else is dropped.
          if (this.#queue.get(slot) === op) {
            if ((op.kind === 'set' || op.kind === 'deleteAbove') && err.code !== 'ERR_INVALID_KEY' && !(op.kind === 'set' && op.keepOnRefusal)) this.#queue.set(slot, { kind: 'delete' })
            else this.#queue.delete(slot)
          }
          continue
        }
        // A newer operation on the same slot may have replaced this one meanwhile.
        if (this.#queue.get(slot) === op) this.#queue.delete(slot)
        this.#replayed++
      }
    } finally {
      this.#replaying = false
    }
    if (this.#queue.size > 0) this.#scheduleReplay(this.#untilHalfOpen())
  }

  #apply(slot: string, op: QueuedOp): Promise<unknown> {
    switch (op.kind) {
      case 'set': {
        const ttl = op.expiresAt - this.#clock.now()
        // Expired while queued: make sure no older value survives instead.
        return ttl > 0 ? this.store.set(slot, op.value, ttl) : this.store.delete(slot)
      }
      case 'delete':
        return this.store.delete(slot)
      case 'deleteAbove':
        return this.#locks().deleteAbove(slot)
      case 'clear':
        return this.store.clear(op.prefix)
    }
  }
}
