/**
 * MemoryCache: the synchronous in-process engine (L1).
 *
 * Layout (after lru-cache): an entry is a slot index. Keys and values live in two plain
 * arrays, everything else in typed arrays indexed by slot; a KeyIndex (our own hash table,
 * see key-index.ts) finds slots.
 * No object is allocated per entry or per read. Features cost only when used:
 * - the deadline array and the expiry wheel are created on the first entry with a
 *   deadline; a read of an entry without one never looks at the clock;
 * - idle-time arrays exist only once a time-to-idle is used;
 * - size arrays exist only when `maxBytes` bounds the cache;
 * - per-entry extras (onEvent, AbortSignal) live in a sparse side array;
 * - event objects are built only when somebody listens.
 *
 * Invariants:
 * - `#count <= maxEntries` and `#bytes <= maxBytes` after every public call returns;
 * - a read never returns an entry whose deadline (TTL or idle) is <= clock.now();
 * - every entry that leaves is reported once, as `expire` if its deadline had passed,
 *   otherwise with the reason of what removed it; overwrites report only `store`;
 * - user callbacks run after the engine's state is consistent, and their exceptions are
 *   caught (counted, warned once), so they cannot corrupt the cache.
 */
import type { Clock, TimerHandle } from '../core/clock.js'
import { toBytes, toMs } from '../core/duration.js'
import { AbortedError, ClosedError, InvalidOptionsError, InvalidValueError, WaitTimeoutError } from '../core/errors.js'
import { optionNames, rejectUnknown } from '../core/known-options.js'
import { mathRandom, type Random, randomOption, secretSeed } from '../core/random.js'
import { SystemClock, systemClock } from '../core/system-clock.js'
import { ExpiryWheel } from '../expiry/expiry-wheel.js'
import type { EvictionPolicy } from '../policies/eviction-policy.js'
import { growArray, growFloat64 } from '../core/grow-array.js'
import { LruPolicy } from '../policies/lru-policy.js'
import { TinyLfuPolicy } from '../policies/tinylfu-policy.js'
import { estimateSize } from './estimate-size.js'
import { KeyIndex } from './key-index.js'
import type {
  CacheEvent,
  CacheEventType,
  CacheListener,
  EntrySnapshot,
  MemoryCacheOptions,
  MemoryCacheStats,
  PolicyName,
  SetOptions,
  WaitForOptions,
} from './types.js'

type RemovalReason = 'expire' | 'evict' | 'erase' | 'flush'

interface Extra<K, V> {
  onEvent: CacheListener<K, V> | undefined
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
}

interface Waiter<V> {
  resolve: (value: V) => void
  reject: (err: unknown) => void
  timer: TimerHandle | undefined
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
  /** See `waitFor`: values it refuses do not answer this waiter. */
  accept: ((value: V) => boolean) | undefined
}

const EVENT_TYPES: readonly CacheEventType[] = ['store', 'expire', 'evict', 'erase', 'flush', 'timeout']
const INITIAL_CAPACITY = 1024
/** The engine's option names: another name is refused, not ignored (core/known-options.ts). */
const MEMORY_CACHE_OPTIONS = optionNames<MemoryCacheOptions<unknown, unknown>>({
  maxEntries: true, maxBytes: true, sizeOf: true, maxEntrySize: true, policy: true, ttl: true, tti: true, ttlJitter: true,
  sweepInterval: true, waitTimeout: true, clock: true, random: true,
})
const NO_DEADLINE = Infinity

export class MemoryCache<K = string, V = unknown> {
  readonly maxEntries: number
  readonly maxBytes: number
  readonly maxEntrySize: number
  readonly policy: PolicyName

  readonly #clock: Clock
  /** `#clock` when it is a SystemClock, whose reads `get` inlines; else undefined. */
  readonly #system: SystemClock | undefined
  readonly #random: Random
  readonly #sizeOf: ((value: V, key: K) => number) | undefined
  readonly #defaultTtl: number
  readonly #defaultTti: number
  readonly #jitter: number
  readonly #sweepInterval: number
  readonly #waitTimeout: number
  readonly #sized: boolean
  readonly #weighByBytes: boolean
  /** A cache bounded by entries alone: at its bound it may evict first and reuse the victim's slot (#reuse). */
  readonly #recycles: boolean

  /** Key -> slot, and each slot's key and hash (see key-index.ts). */
  #index: KeyIndex<K>
  #values: (V | undefined)[] = []
  #policy: EvictionPolicy
  #capacity: number
  #nextSlot = 0
  #free: number[] = []
  #count = 0
  #bytes = 0
  #sizes: Float64Array | undefined
  /** Earliest of TTL and idle deadline per slot; NO_DEADLINE when none. Created on first use. */
  #deadline: Float64Array | undefined
  /** TTL deadline per slot, kept apart from #deadline once idle times are in use. */
  #expireAt: Float64Array | undefined
  /** Time-to-idle per slot in ms; 0 when none. */
  #idle: Float64Array | undefined
  #wheel: ExpiryWheel | undefined
  #sweepTimer: TimerHandle | undefined
  #extras: (Extra<K, V> | undefined)[] | undefined
  /** Slots with extras now. */
  #attached = 0
  #listeners: Record<CacheEventType, CacheListener<K, V>[]>
  #listening = false
  #waiters: Map<K, Set<Waiter<V>>> | undefined
  #closed = false
  #warnedListenerError = false

  #hits = 0
  #misses = 0
  #stores = 0
  #rejected = 0
  #expired = 0
  #evicted = 0
  #erased = 0
  #flushed = 0
  #waitTimeouts = 0
  #listenerErrors = 0

  constructor(options: MemoryCacheOptions<K, V>) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidOptionsError('options', 'expected an object with maxEntries and/or maxBytes')
    }
    rejectUnknown(options, MEMORY_CACHE_OPTIONS, '')
    const { maxEntries, maxBytes } = options
    if (maxEntries === undefined && maxBytes === undefined) {
      throw new InvalidOptionsError('maxEntries', 'a cache needs a bound: set maxEntries, maxBytes or both (an unbounded cache is a memory leak)')
    }
    if (maxEntries !== undefined && (!Number.isSafeInteger(maxEntries) || maxEntries < 1)) {
      throw new InvalidOptionsError('maxEntries', `expected a positive integer, got ${String(maxEntries)}`)
    }
    this.maxEntries = maxEntries ?? Infinity
    this.maxBytes = maxBytes === undefined ? Infinity : toBytes(maxBytes, 'maxBytes')
    // Entry sizes are counted only under maxBytes: without it the limit was silently ignored.
    if (options.maxEntrySize !== undefined && maxBytes === undefined) {
      throw new InvalidOptionsError('maxEntrySize', 'applies only with maxBytes (entry sizes are counted only then): set maxBytes too')
    }
    this.maxEntrySize = options.maxEntrySize === undefined ? this.maxBytes : toBytes(options.maxEntrySize, 'maxEntrySize')
    if (this.maxEntrySize > this.maxBytes) {
      throw new InvalidOptionsError('maxEntrySize', `must not exceed maxBytes (${this.maxBytes}): such an entry could never be kept`)
    }
    if (options.sizeOf !== undefined && typeof options.sizeOf !== 'function') {
      throw new InvalidOptionsError('sizeOf', 'expected a function (value, key) => bytes')
    }
    this.#sized = maxBytes !== undefined
    this.#sizeOf = this.#sized ? (options.sizeOf ?? ((v: V) => estimateSize(v))) : undefined
    const policy = options.policy ?? 'tinylfu'
    if (policy !== 'lru' && policy !== 'tinylfu') {
      throw new InvalidOptionsError('policy', `expected 'lru' or 'tinylfu', got ${JSON.stringify(policy)}`)
    }
    this.policy = policy
    this.#defaultTtl = options.ttl === undefined ? Infinity : positiveDuration(options.ttl, 'ttl')
    this.#defaultTti = options.tti === undefined ? Infinity : positiveDuration(options.tti, 'tti')
    const jitter = options.ttlJitter ?? 0
    if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1)) {
      throw new InvalidOptionsError('ttlJitter', `expected a fraction in [0, 1], got ${String(jitter)}`)
    }
    this.#jitter = jitter
    this.#sweepInterval = options.sweepInterval === undefined ? 1000 : positiveDuration(options.sweepInterval, 'sweepInterval')
    if (this.#sweepInterval === Infinity) throw new InvalidOptionsError('sweepInterval', 'must be finite')
    this.#waitTimeout = options.waitTimeout === undefined ? 5000 : positiveDuration(options.waitTimeout, 'waitTimeout')
    const clock = options.clock ?? systemClock
    if (typeof clock?.now !== 'function' || typeof clock.setTimeout !== 'function' || typeof clock.clearTimeout !== 'function') {
      throw new InvalidOptionsError('clock', 'expected a Clock with now(), setTimeout() and clearTimeout()')
    }
    this.#clock = clock
    this.#system = clock instanceof SystemClock ? clock : undefined
    const random = randomOption(options.random, 'random', mathRandom)
    this.#random = random

    // The policy works in entries when maxEntries is set, else in bytes.
    this.#weighByBytes = maxEntries === undefined
    this.#capacity = Math.min(this.maxEntries, INITIAL_CAPACITY)
    this.#index = new KeyIndex<K>(this.#capacity, secretSeed(random))
    if (this.#sized) this.#sizes = new Float64Array(this.#capacity)
    this.#recycles = !this.#sized
    this.#policy =
      policy === 'lru'
        ? new LruPolicy(this.#capacity)
        : new TinyLfuPolicy(
            this.#capacity,
            this.#weighByBytes ? this.maxBytes : this.maxEntries,
            random,
            // The sketch counts for as many entries as the cache is expected to hold: the
            // entry bound, up to 2^20 at first (2 MB), or, bounded by bytes alone, the slots
            // allocated so far. It grows with the slots (policy.grow) either way.
            this.#weighByBytes ? this.#capacity : Math.min(this.maxEntries, 1 << 20),
            this.#weighByBytes,
            (slot) => this.#index.hashOf(slot),
          )
    this.#listeners = { store: [], expire: [], evict: [], erase: [], flush: [], timeout: [] }
  }

  /** Entries held, including expired ones not yet reclaimed (see `count()` for live ones). */
  get size(): number {
    return this.#count
  }

  /** Bytes held (sum of entry sizes); 0 when the cache has no byte bound. */
  get bytes(): number {
    return this.#bytes
  }

  /** The value for `key`, or `undefined`. Counts as a use (recency, frequency, idle time). */
  get(key: K): V | undefined {
    const slot = this.#index.find(key)
    if (slot === -1) {
      this.#misses++
      return undefined
    }
    const deadline = this.#deadline
    if (deadline !== undefined) {
      const d = deadline[slot]
      if (d !== NO_DEADLINE) {
        // The real clock's `now()` inlined by hand (the same expression: see SystemClock):
        // as a call, which V8 did not inline into the facade's hit, it cost ~65
        // instructions and a boxed number per hit (docs/decisions/0385). The `+` tells
        // TurboFan the slow call's result is a number: without it the three arms met as a
        // tagged value, and a hit boxed `c.last` into a new HeapNumber (0402).
        const c = this.#system
        let now: number
        if (c !== undefined) {
          const t = c.cell[0]
          now = t > c.last ? (c.last = t) : t !== 0 ? c.last : +c.now()
        } else now = this.#clock.now()
        // Expired, or time-to-idle in use: out of line, so that the common hit stays small
        // enough for V8 to inline it whole into its caller (its budget is in bytecode).
        if (d <= now || this.#idle !== undefined) return this.#timedGet(slot, d)
      }
    }
    this.#policy.onAccess(slot)
    this.#hits++
    return this.#values[slot]
  }

  /** `get` of an entry with a deadline that has passed or that idle time may extend. */
  #timedGet(slot: number, d: number): V | undefined {
    const now = this.#clock.now()
    if (d <= now) {
      this.#remove(slot, 'expire')
      this.#misses++
      return undefined
    }
    // Entered because of idle time, or because the entry expired: then `d <= now` above,
    // unless an injected clock went backwards, which must still not throw here.
    const idle = this.#idle
    if (idle !== undefined && idle[slot] !== 0) {
      const idleAt = now + idle[slot]
      const expireAt = this.#expireAt![slot]
      this.#deadline![slot] = idleAt < expireAt ? idleAt : expireAt
    }
    this.#policy.onAccess(slot)
    this.#hits++
    return this.#values[slot]
  }

  /** The value for `key` without counting a use: no recency change, no idle extension. */
  peek(key: K): V | undefined {
    const slot = this.#liveSlot(key)
    return slot === -1 ? undefined : this.#values[slot]
  }

  /** Whether a live entry exists for `key`. Not a use. */
  has(key: K): boolean {
    return this.#liveSlot(key) !== -1
  }

  /**
   * Stores `value` under `key`. Returns false when the entry was not stored: larger than
   * `maxEntrySize` (an older value under the key is erased), or its signal already aborted.
   */
  set(key: K, value: V, options?: SetOptions<K, V>): boolean {
    if (value === undefined) throw new InvalidValueError('Cannot store undefined: it means "absent" (store null instead)')
    if (this.#closed) throw new ClosedError()
    let ttl = this.#defaultTtl
    let tti = this.#defaultTti
    let size = 0
    let signal: AbortSignal | undefined
    let onEvent: CacheListener<K, V> | undefined
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object')
      if (options.ttl !== undefined) ttl = positiveDuration(options.ttl, 'ttl')
      if (options.tti !== undefined) tti = positiveDuration(options.tti, 'tti')
      signal = options.signal
      onEvent = options.onEvent
      if (onEvent !== undefined && typeof onEvent !== 'function') throw new InvalidOptionsError('onEvent', 'expected a function')
      if (signal !== undefined && !(signal instanceof AbortSignal)) throw new InvalidOptionsError('signal', 'expected an AbortSignal')
      if (this.#sized && options.size !== undefined) size = validSize(options.size, 'size')
    }
    if (this.#sized && (options === undefined || options.size === undefined)) size = validSize(this.#sizeOf!(value, key), 'sizeOf')
    return this.#put(key, value, ttl, tti, size, signal, onEvent)
  }

  /**
   * `set(key, value, { ttl, tti })` with both already in ms (> 0, or Infinity for none),
   * for a caller that validated them once (the facade): no options object per call.
   * Returns false when the entry was refused (larger than `maxEntrySize`).
   */
  setMs(key: K, value: V, ttl: number, tti: number): boolean {
    if (value === undefined) throw new InvalidValueError('Cannot store undefined: it means "absent" (store null instead)')
    if (this.#closed) throw new ClosedError()
    const size = this.#sized ? validSize(this.#sizeOf!(value, key), 'sizeOf') : 0
    // No TTI passed as the literal: V8 passes a constant Infinity as it is, where a value
    // read from a number field (the facade's resolved options) was boxed into a fresh heap
    // number on every call (decision 0401).
    if (tti === Infinity) return this.#put(key, value, ttl, Infinity, size, undefined, undefined)
    return this.#put(key, value, ttl, tti, size, undefined, undefined)
  }

  /** Number of entries evicted so far (as in `stats().evicted`, without building the stats). */
  get evictions(): number {
    return this.#evicted
  }

  #put(key: K, value: V, ttl: number, tti: number, size: number, signal: AbortSignal | undefined, onEvent: CacheListener<K, V> | undefined): boolean {
    const found = this.#index.lookup(key)
    const hash = this.#index.lastHash
    // A new key into a cache at its entry bound, where nothing observes the order of the steps
    // (nobody listening, no entry with extras): the policy names the entry the insert would
    // evict, and the new entry takes its slot (#reuse), evicted before the new one is stored.
    // Booleans compared, not truth-tested: one instruction each instead of a ToBoolean (0401).
    if (found === -1 && this.#recycles === true && this.#count >= this.maxEntries && this.#listening === false && this.#attached === 0) {
      // Cheapest test first (0401): a cache that recycles does not count sizes (size 0), and
      // jitter is usually off (a number field, where `ttl` is a tagged argument to unbox).
      if ((size !== 0 && size > this.maxEntrySize) || signal?.aborted === true) return this.#store(key, value, hash, -1, ttl, tti, size, signal, onEvent, true)
      if (this.#jitter !== 0 && ttl !== Infinity) ttl *= 1 - this.#jitter * this.#random.next()
      const victim = this.#policy.victimBeforeInsert(hash)
      if (victim === -1) return this.#store(key, value, hash, -1, ttl, tti, size, signal, onEvent, false)
      this.#reuse(victim, key, value, hash, ttl, tti)
      if (onEvent !== undefined || signal !== undefined) {
        this.#attach(victim, key, onEvent, signal)
        if (onEvent !== undefined) this.#emit('store', key, value, onEvent)
      }
      if (this.#waiters !== undefined) this.#wake(key, value)
      return true
    }
    return this.#store(key, value, hash, found, ttl, tti, size, signal, onEvent, true)
  }

  /** #put of anything but a recycled slot; `jitter`: the TTL is still to be jittered. */
  #store(
    key: K,
    value: V,
    hash: number,
    found: number,
    ttl: number,
    tti: number,
    size: number,
    signal: AbortSignal | undefined,
    onEvent: CacheListener<K, V> | undefined,
    jitter: boolean,
  ): boolean {
    let slot = found === -1 ? undefined : found
    if (size > this.maxEntrySize || signal?.aborted === true) {
      if (slot !== undefined) this.#remove(slot, this.#isExpired(slot) ? 'expire' : 'erase')
      this.#rejected++
      return false
    }
    if (jitter && ttl !== Infinity && this.#jitter !== 0) ttl *= 1 - this.#jitter * this.#random.next()

    if (slot !== undefined && this.#isExpired(slot)) {
      this.#remove(slot, 'expire')
      slot = undefined
    }
    const isNew = slot === undefined
    if (slot === undefined) {
      slot = this.#allocate()
      this.#count++
      this.#index.insert(key, slot, hash)
    } else {
      this.#dropExtra(slot)
      if (this.#sized) this.#bytes -= this.#sizes![slot]
    }
    this.#values[slot] = value
    if (this.#sized) {
      this.#sizes![slot] = size
      this.#bytes += size
    }
    this.#setDeadline(slot, ttl, tti)
    if (onEvent !== undefined || signal !== undefined) this.#attach(slot, key, onEvent, signal)
    const weight = this.#weighByBytes ? size : 1
    if (isNew) this.#policy.onInsert(slot, hash, weight)
    else this.#policy.onUpdate(slot, weight)
    this.#stores++

    if ((this.#listening && this.#listeners.store.length > 0) || onEvent !== undefined) this.#emit('store', key, value, onEvent)
    if (this.#count > this.maxEntries || this.#bytes > this.maxBytes) this.#evict()
    if (this.#waiters !== undefined) this.#wake(key, value)
    return true
  }

  /**
   * The new entry takes `slot`, whose entry the policy evicted and already placed as the new
   * one (victimBeforeInsert): what removing that entry and storing the new one would do, with
   * nothing to report (#put then attaches the new entry's extras and wakes waiters). Evicting
   * first is unobservable, as nobody listens. The old entry is counted as #remove would count
   * it (expired if its deadline has passed); the clock is read once, for that and the new
   * deadline. Its wheel link is left for the new deadline to move (reschedule, schedule) or
   * for #setDeadline to drop (decision 0396).
   */
  #reuse(slot: number, key: K, value: V, hash: number, ttl: number, tti: number): void {
    this.#index.replace(slot, key, hash)
    this.#values[slot] = value
    const deadline = this.#deadline
    const old = deadline === undefined ? NO_DEADLINE : deadline[slot]
    let now = -Infinity
    if (old !== NO_DEADLINE) {
      now = this.#now()
      if (old <= now) this.#expired++
      else this.#evicted++
    } else {
      this.#evicted++
    }
    if (deadline !== undefined && ttl !== Infinity && tti === Infinity && this.#idle === undefined) {
      // #setDeadline's common case (a TTL alone, arrays and wheel in place), with the read
      // above. No idle time was ever used, so `old` is the deadline the slot is scheduled
      // for (only reads that extend idle time change a deadline without the wheel): with
      // one TTL the new deadline usually falls in the same tick, and the slot stays put.
      if (now === -Infinity) now = this.#now()
      const d = now + ttl
      deadline[slot] = d
      if (old !== NO_DEADLINE) this.#wheel!.reschedule(slot, old, d)
      else this.#wheel!.schedule(slot, d)
      if (this.#sweepTimer === undefined) this.#scheduleSweep()
    } else {
      this.#setDeadline(slot, ttl, tti)
    }
    this.#stores++
  }

  /** The clock's `now()`; the real clock's read inlined by hand, as in `get` (decision 0385). */
  #now(): number {
    const c = this.#system
    // The calls' results as numbers (`+`): V8 then keeps the time unboxed where this is
    // inlined; otherwise the merge with a call's tagged result boxed `c.last` into a fresh
    // heap number on every read (decision 0401).
    if (c === undefined) return +this.#clock.now()
    const t = c.cell[0]
    return t > c.last ? (c.last = t) : t !== 0 ? c.last : +c.now()
  }

  /** Erases `key`. True if a live entry was erased (an expired one is reported as `expire`). */
  delete(key: K): boolean {
    const slot = this.#index.find(key)
    if (slot === -1) return false
    const expired = this.#isExpired(slot)
    this.#remove(slot, expired ? 'expire' : 'erase')
    return !expired
  }

  /** Removes every entry (`flush`, or `expire` for those already past their deadline), least valuable first. */
  clear(): void {
    if (!this.#listening && this.#attached === 0) {
      // Nobody to tell: only the counters, which count entries already past their deadline as expired.
      let expired = 0
      const deadline = this.#deadline
      if (deadline !== undefined) {
        const now = this.#clock.now()
        for (const slot of this.#index.slots()) if (deadline[slot] <= now) expired++
      }
      this.#expired += expired
      this.#flushed += this.#count - expired
      this.#resetStorage()
      return
    }
    // Listeners may change the cache while we walk: act only on entries still in place.
    for (const [key, slot] of this.#snapshot().reverse()) {
      if (this.#index.find(key) === slot) this.#remove(slot, this.#isExpired(slot) ? 'expire' : 'flush')
    }
  }

  /** Subscribes to one kind of event; returns the function that unsubscribes. */
  on(type: CacheEventType, listener: CacheListener<K, V>): () => void {
    if (!EVENT_TYPES.includes(type)) throw new InvalidOptionsError('type', `unknown event type ${typeof type === 'string' ? JSON.stringify(type) : String(type)}`)
    if (typeof listener !== 'function') throw new InvalidOptionsError('listener', 'expected a function')
    // Copy on write: an emit in progress keeps iterating the list it started with.
    this.#listeners[type] = [...this.#listeners[type], listener]
    this.#listening = true
    let active = true
    return () => {
      if (!active) return
      active = false
      const list = this.#listeners[type]
      const i = list.indexOf(listener)
      if (i >= 0) this.#listeners[type] = [...list.slice(0, i), ...list.slice(i + 1)]
      this.#listening = EVENT_TYPES.some((t) => this.#listeners[t].length > 0)
    }
  }

  /**
   * Resolves with the value of `key` as soon as it is stored (at once if it is live now).
   * Rejects with `ERR_WAIT_TIMEOUT` after `timeout` (firing a `timeout` event), with
   * `ERR_ABORTED` if `signal` aborts, and with `ERR_CLOSED` if the cache closes.
   * `accept`: only a value it approves answers the wait (the live one now, or one stored
   * later); others are passed over (the facade waits for a fresh value this way).
   */
  waitFor(key: K, options?: WaitForOptions, accept?: (value: V) => boolean): Promise<V> {
    if (this.#closed) return Promise.reject(new ClosedError())
    let timeout: number
    try {
      if (options !== undefined && (typeof options !== 'object' || options === null)) throw new InvalidOptionsError('options', 'expected an object ({ timeout?, signal? })')
      if (accept !== undefined && typeof accept !== 'function') throw new InvalidOptionsError('accept', 'expected a function of the value')
      timeout = options?.timeout === undefined ? this.#waitTimeout : positiveDuration(options.timeout, 'timeout')
    } catch (err) {
      return Promise.reject(err)
    }
    const slot = this.#liveSlot(key)
    try {
      if (slot !== -1 && (accept === undefined || accept(this.#values[slot] as V))) return Promise.resolve(this.#values[slot] as V)
    } catch (err) {
      return Promise.reject(err)
    }
    const signal = options?.signal
    if (signal !== undefined && !(signal instanceof AbortSignal)) return Promise.reject(new InvalidOptionsError('signal', 'expected an AbortSignal'))
    if (signal?.aborted === true) return Promise.reject(new AbortedError('waitFor aborted', { cause: signal.reason }))
    return new Promise<V>((resolve, reject) => {
      const waiter: Waiter<V> = { resolve, reject, timer: undefined, signal, onAbort: undefined, accept }
      this.#waiters ??= new Map()
      let set = this.#waiters.get(key)
      if (set === undefined) this.#waiters.set(key, (set = new Set()))
      set.add(waiter)
      if (timeout !== Infinity) {
        waiter.timer = this.#clock.setTimeout(() => {
          waiter.timer = undefined
          this.#forgetWaiter(key, waiter)
          this.#waitTimeouts++
          reject(new WaitTimeoutError(key, timeout))
          if (this.#listeners.timeout.length > 0) this.#emit('timeout', key, undefined, undefined)
        }, timeout)
      }
      if (signal !== undefined) {
        waiter.onAbort = () => {
          this.#forgetWaiter(key, waiter)
          reject(new AbortedError('waitFor aborted', { cause: signal.reason }))
        }
        signal.addEventListener('abort', waiter.onAbort, { once: true })
      }
    })
  }

  /** Keys of live entries, most valuable (recently used) first. */
  *keys(): IterableIterator<K> {
    for (const [key] of this.entries()) yield key
  }

  /** Values of live entries, most valuable first. */
  *values(): IterableIterator<V> {
    for (const [, value] of this.entries()) yield value
  }

  /** [key, value] pairs of live entries, most valuable first. Safe to mutate the cache meanwhile. */
  *entries(): IterableIterator<[K, V]> {
    for (const [key, slot] of this.#liveSlots()) yield [key, this.#values[slot] as V]
  }

  /** [key, slot] of every live entry, most recently used first; safe to change the cache meanwhile. */
  *#liveSlots(): IterableIterator<[K, number]> {
    for (const [key, slot] of this.#snapshot()) {
      // Skip entries removed or replaced since the walk began.
      if (this.#index.find(key) !== slot || this.#isExpired(slot)) continue
      yield [key, slot]
    }
  }

  /** Live entries for which `predicate(key, value)` is true. */
  filter(predicate: (key: K, value: V) => boolean): Array<[K, V]> {
    checkPredicate(predicate)
    const out: Array<[K, V]> = []
    for (const entry of this.entries()) if (predicate(entry[0], entry[1])) out.push(entry)
    return out
  }

  /** Erases the live entries for which `predicate(key, value)` is true; returns how many. */
  filterErase(predicate: (key: K, value: V) => boolean): number {
    checkPredicate(predicate)
    let n = 0
    for (const [key] of this.filter(predicate)) if (this.delete(key)) n++
    return n
  }

  /** Number of live entries, or of those matching `predicate`. */
  count(predicate?: (key: K, value: V) => boolean): number {
    if (predicate !== undefined) checkPredicate(predicate)
    let n = 0
    for (const [key, value] of this.entries()) if (predicate === undefined || predicate(key, value)) n++
    return n
  }

  /** Snapshots of the live entries, most valuable first. */
  dump(): Array<EntrySnapshot<K, V>> {
    const now = this.#clock.now()
    const out: Array<EntrySnapshot<K, V>> = []
    for (const [key, slot] of this.#liveSlots()) {
      const d = this.#deadline === undefined ? NO_DEADLINE : this.#deadline[slot]
      out.push({ key, value: this.#values[slot] as V, size: this.#sized ? this.#sizes![slot] : 0, remainingTtl: d === NO_DEADLINE ? Infinity : d - now })
    }
    return out
  }

  /** Milliseconds until `key` expires (`Infinity` if never), or undefined when absent. */
  remainingTtl(key: K): number | undefined {
    const slot = this.#liveSlot(key)
    if (slot === -1) return undefined
    const d = this.#deadline === undefined ? NO_DEADLINE : this.#deadline[slot]
    return d === NO_DEADLINE ? Infinity : d - this.#clock.now()
  }

  /** Reclaims every expired entry now; returns how many. */
  purgeExpired(): number {
    const deadline = this.#deadline
    if (deadline === undefined) return 0
    const now = this.#clock.now()
    let n = 0
    for (const [key, slot] of this.#snapshot().reverse()) {
      if (this.#index.find(key) === slot && this.#deadline![slot] <= now) {
        this.#remove(slot, 'expire')
        n++
      }
    }
    return n
  }

  stats(): MemoryCacheStats {
    return {
      size: this.#count,
      bytes: this.#bytes,
      hits: this.#hits,
      misses: this.#misses,
      stores: this.#stores,
      rejected: this.#rejected,
      expired: this.#expired,
      evicted: this.#evicted,
      erased: this.#erased,
      flushed: this.#flushed,
      waitTimeouts: this.#waitTimeouts,
      listenerErrors: this.#listenerErrors,
    }
  }

  /**
   * Empties the cache (reporting `flush`), stops its timer and rejects pending waits with
   * `ERR_CLOSED`. Later `set` and `waitFor` calls fail with `ERR_CLOSED`. Idempotent.
   */
  close(): void {
    if (this.#closed) return
    this.clear()
    this.#closed = true
    if (this.#sweepTimer !== undefined) this.#clock.clearTimeout(this.#sweepTimer)
    this.#sweepTimer = undefined
    if (this.#waiters !== undefined) {
      for (const [key, set] of [...this.#waiters]) {
        for (const w of [...set]) {
          this.#forgetWaiter(key, w)
          w.reject(new ClosedError('The cache was closed while waiting'))
        }
      }
    }
  }

  // ---- internals -------------------------------------------------------------------

  /**
   * [key, slot] of every entry now, most valuable first, a copy: callers may change the cache
   * while they walk it. Callers that remove entries reverse it, to go in eviction's order.
   */
  #snapshot(): Array<[K, number]> {
    const out: Array<[K, number]> = []
    this.#policy.forEach((slot) => out.push([this.#index.keyOf(slot) as K, slot]))
    return out
  }

  /** Slot of the live entry for `key`, or -1. Reclaims the entry if it has expired. */
  #liveSlot(key: K): number {
    const slot = this.#index.find(key)
    if (slot === -1) return -1
    if (this.#isExpired(slot)) {
      this.#remove(slot, 'expire')
      return -1
    }
    return slot
  }

  #isExpired(slot: number): boolean {
    const deadline = this.#deadline
    return deadline !== undefined && deadline[slot] !== NO_DEADLINE && deadline[slot] <= this.#clock.now()
  }

  #allocate(): number {
    const reused = this.#free.pop()
    if (reused !== undefined) return reused
    const slot = this.#nextSlot++
    if (slot >= this.#values.length) this.#grow()
    return slot
  }

  #grow(): void {
    // Keys and values grow in step with the typed arrays, to the exact capacity.
    if (this.#nextSlot > this.#capacity) {
      const capacity = Math.min(this.maxEntries, this.#capacity * 2)
      this.#capacity = capacity === this.#capacity ? capacity + 1 : capacity
    }
    // Exact-size arrays: growth by push over-allocates the backing store by half.
    this.#index.grow(this.#capacity)
    this.#values = growArray(this.#values, this.#capacity)
    this.#policy.grow(this.#capacity)
    if (this.#sizes !== undefined) this.#sizes = growFloat64(this.#sizes, this.#capacity)
    if (this.#deadline !== undefined) this.#deadline = growFloat64(this.#deadline, this.#capacity, NO_DEADLINE)
    if (this.#expireAt !== undefined) this.#expireAt = growFloat64(this.#expireAt, this.#capacity, NO_DEADLINE)
    if (this.#idle !== undefined) this.#idle = growFloat64(this.#idle, this.#capacity)
    this.#wheel?.grow(this.#capacity)
  }

  #setDeadline(slot: number, ttl: number, tti: number): void {
    const deadline = this.#deadline
    if (deadline !== undefined && ttl !== Infinity && tti === Infinity && this.#idle === undefined) {
      // The common case, as in #reuse: a TTL alone, arrays and wheel in place, and no idle
      // time ever used, so the slot's deadline is the one the wheel holds it for (or none).
      // A key written again with the same TTL usually falls in the same tick: it stays put
      // instead of leaving its bucket and joining it again (decision 0401).
      const old = deadline[slot]
      const d = this.#clock.now() + ttl
      deadline[slot] = d
      if (old !== NO_DEADLINE) this.#wheel!.reschedule(slot, old, d)
      else this.#wheel!.schedule(slot, d)
      if (this.#sweepTimer === undefined) this.#scheduleSweep()
      return
    }
    if (ttl === Infinity && tti === Infinity) {
      if (this.#deadline !== undefined && this.#deadline[slot] !== NO_DEADLINE) {
        this.#deadline[slot] = NO_DEADLINE
        if (this.#expireAt !== undefined) this.#expireAt[slot] = NO_DEADLINE
        if (this.#idle !== undefined) this.#idle[slot] = 0
        this.#wheel!.unschedule(slot)
      }
      return
    }
    const now = this.#clock.now()
    if (this.#deadline === undefined) {
      this.#deadline = new Float64Array(this.#capacity).fill(NO_DEADLINE)
      this.#wheel = new ExpiryWheel(this.#sweepInterval, this.#capacity, now)
    }
    const expireAt = ttl === Infinity ? NO_DEADLINE : now + ttl
    let d = expireAt
    if (tti !== Infinity || this.#idle !== undefined) {
      if (this.#idle === undefined) {
        this.#idle = new Float64Array(this.#capacity)
        this.#expireAt = new Float64Array(this.#capacity).fill(NO_DEADLINE)
      }
      this.#expireAt![slot] = expireAt
      this.#idle[slot] = tti === Infinity ? 0 : tti
      if (tti !== Infinity && now + tti < d) d = now + tti
    }
    this.#deadline[slot] = d
    this.#wheel!.schedule(slot, d)
    if (this.#sweepTimer === undefined) this.#scheduleSweep()
  }

  #scheduleSweep(): void {
    this.#sweepTimer = this.#clock.setTimeout(() => this.#sweep(), this.#sweepInterval, { unref: true })
  }

  #sweep(): void {
    this.#sweepTimer = undefined
    const wheel = this.#wheel
    const deadline = this.#deadline
    if (wheel === undefined || deadline === undefined || this.#closed) return
    const now = this.#clock.now()
    wheel.advance(now, (slot) => {
      if (deadline[slot] <= now) this.#remove(slot, 'expire')
      else wheel.schedule(slot, deadline[slot]) // idle time was extended by reads
    })
    if (wheel.size > 0) this.#scheduleSweep()
  }

  #evict(): void {
    while (this.#count > this.maxEntries || this.#bytes > this.maxBytes) {
      const victim = this.#policy.victim()
      if (victim === -1) break
      this.#remove(victim, this.#isExpired(victim) ? 'expire' : 'evict')
    }
  }

  #remove(slot: number, reason: RemovalReason): void {
    const key = this.#index.keyOf(slot) as K
    const value = this.#values[slot] as V
    this.#index.remove(slot)
    this.#policy.onRemove(slot)
    if (this.#deadline !== undefined && this.#deadline[slot] !== NO_DEADLINE) {
      this.#deadline[slot] = NO_DEADLINE
      this.#wheel!.unschedule(slot)
    }
    if (this.#sized) {
      this.#bytes -= this.#sizes![slot]
      this.#sizes![slot] = 0
    }
    this.#values[slot] = undefined
    this.#free.push(slot)
    this.#count--
    if (reason === 'expire') this.#expired++
    else if (reason === 'evict') this.#evicted++
    else if (reason === 'erase') this.#erased++
    else this.#flushed++
    const onEvent = this.#dropExtra(slot)
    // Event objects are built only for kinds somebody listens to.
    if ((this.#listening && this.#listeners[reason].length > 0) || onEvent !== undefined) this.#emit(reason, key, value, onEvent)
  }

  #resetStorage(): void {
    this.#index.clear()
    this.#values = []
    this.#free = []
    this.#nextSlot = 0
    this.#count = 0
    this.#bytes = 0
    this.#policy.reset()
    this.#sizes?.fill(0)
    this.#deadline?.fill(NO_DEADLINE)
    this.#wheel?.clear()
  }

  #attach(slot: number, key: K, onEvent: CacheListener<K, V> | undefined, signal: AbortSignal | undefined): void {
    this.#extras ??= []
    const extra: Extra<K, V> = { onEvent, signal, onAbort: undefined }
    if (signal !== undefined) {
      // The entry lives as long as the signal; the listener goes when the entry goes.
      extra.onAbort = () => {
        if (this.#index.find(key) === slot && this.#extras?.[slot] === extra) this.#remove(slot, this.#isExpired(slot) ? 'expire' : 'erase')
      }
      signal.addEventListener('abort', extra.onAbort, { once: true })
    }
    while (this.#extras.length <= slot) this.#extras.push(undefined)
    this.#extras[slot] = extra
    this.#attached++
  }

  /** Detaches a slot's extras (removing its abort listener); returns its onEvent. */
  #dropExtra(slot: number): CacheListener<K, V> | undefined {
    const extras = this.#extras
    if (extras === undefined) return undefined
    const extra = extras[slot]
    if (extra === undefined) return undefined
    extras[slot] = undefined
    this.#attached--
    if (extra.signal !== undefined && extra.onAbort !== undefined) extra.signal.removeEventListener('abort', extra.onAbort)
    return extra.onEvent
  }

  #emit(type: CacheEventType, key: K, value: V | undefined, onEvent: CacheListener<K, V> | undefined): void {
    const event: CacheEvent<K, V> = { type, key, value }
    if (onEvent !== undefined) this.#call(onEvent, event)
    const list = this.#listeners[type]
    for (let i = 0; i < list.length; i++) this.#call(list[i], event)
  }

  #call(listener: CacheListener<K, V>, event: CacheEvent<K, V>): void {
    try {
      listener(event)
    } catch (err) {
      // A listener's failure is its own: count it, warn once, keep going.
      this.#listenerErrors++
      if (!this.#warnedListenerError) {
        this.#warnedListenerError = true
        process.emitWarning(`A stratacache '${event.type}' listener threw: ${String(err)}`, { code: 'STRATACACHE_LISTENER_ERROR' })
      }
    }
  }

  #wake(key: K, value: V): void {
    const set = this.#waiters!.get(key)
    if (set === undefined) return
    for (const w of [...set]) {
      let accepted = true
      try {
        accepted = w.accept === undefined || w.accept(value)
      } catch (err) {
        // A throwing `accept` fails its own wait, never the `set` that woke it.
        this.#forgetWaiter(key, w)
        w.reject(err)
        continue
      }
      if (!accepted) continue
      this.#forgetWaiter(key, w)
      w.resolve(value)
    }
  }

  #forgetWaiter(key: K, waiter: Waiter<V>): void {
    if (waiter.timer !== undefined) {
      this.#clock.clearTimeout(waiter.timer)
      waiter.timer = undefined
    }
    if (waiter.signal !== undefined && waiter.onAbort !== undefined) waiter.signal.removeEventListener('abort', waiter.onAbort)
    const set = this.#waiters?.get(key)
    if (set === undefined) return
    set.delete(waiter)
    if (set.size === 0) this.#waiters!.delete(key)
  }
}

function positiveDuration(value: unknown, option: string): number {
  const ms = toMs(value, option)
  if (ms <= 0) throw new InvalidOptionsError(option, `expected a duration > 0, got ${String(value)}`)
  return ms
}

function validSize(size: unknown, option: string): number {
  if (typeof size !== 'number' || !Number.isFinite(size) || size < 0) {
    throw new InvalidOptionsError(option, `expected a finite number of bytes >= 0, got ${String(size)}`)
  }
  return size
}

/** `filter`, `filterErase` and `count` take a function of (key, value). */
function checkPredicate(predicate: unknown): void {
  if (typeof predicate !== 'function') throw new InvalidOptionsError('predicate', 'expected a function of (key, value)')
}
