/**
 * SingleFlight: at most one computation per key at a time; concurrent callers share it.
 *
 * Design note
 *
 * - Leader and followers. The first `run(key, fn)` while nothing is in flight for `key` is
 *   the leader: it calls `fn` at once, synchronously. Calls for the same key before the
 *   flight settles are followers: they wait for the leader's result and never call `fn`.
 *   Once the flight settles the key is free; the next call runs `fn` again (storing the
 *   result is the cache facade's job, not ours).
 *
 * - Fail fast (as Zoocache): when `fn` throws or rejects, the leader's caller gets the
 *   original error and every waiting follower fails at once with `ERR_LEADER_FAILED`
 *   (`cause` = that error). `fn` is not re-run for the followers: re-running it for each of
 *   them would hammer a backend that is already failing — the stampede we exist to stop.
 *   The followers share one `LeaderFailedError` instance (one stack capture per failure,
 *   not one per follower).
 *
 * - Sync functions too. cachekit admits its sync functions get no stampede protection.
 *   Here `fn` may return a plain value or throw synchronously: both settle the flight like
 *   a promise would, and a synchronous re-entry for the same key is caught (next point).
 *
 * - Recursion instead of deadlock. Zoocache admits that a cached function calling itself
 *   (directly or through a cycle) can deadlock: the inner call joins the flight that is
 *   waiting for it. A call that would JOIN a flight first asks whether that flight is
 *   waiting for the caller; if so, joining would wait for itself, so it fails with
 *   `ERR_RECURSIVE_FLIGHT` (with the path of keys). Two ways to know (`detectRecursion`):
 *
 *   `true` (the default): the waits-for chain, read from V8's async stack trace. Each
 *   leader calls `fn` from, and awaits it in, an async function of its own named
 *   `stratacache flight <slot>` (a slot is one of a pool of such functions, held by one
 *   flight from the call of `fn` until `fn` settles, and shared by every SingleFlight in
 *   the process, so cycles through two caches are caught too; error stacks of factories
 *   show them as `at async stratacache flight 3`). When code joins a flight,
 *   the stack trace captured there lists, as "async" frames, every async function that
 *   awaits this code through a chain of promises (V8 follows `await`, `then`/`catch`/
 *   `finally` chains, promises resolved with other promises, `Promise.all`, `race`, `any`
 *   and `allSettled`), and, as ordinary frames, every function on the synchronous stack.
 *   The runner frames among them are exactly the flights whose computation waits for the
 *   joiner: if the flight being joined is one of them, the join is a deadlock. No state
 *   follows the code around: nothing is paid on hits, on leads (beyond taking a slot) or
 *   by unrelated promises; a join pays one stack capture (a few microseconds). It is more
 *   precise than tracking context: a task that `fn` starts without awaiting it is not
 *   waited for, so it may join the flight. Limits, where a recursive call is not seen and
 *   ends with its follower timeout instead (bounded, as with `false`): a cycle that passes
 *   through something other than a promise chain (a timer or event callback resolving a
 *   promise), through a promise awaited by two consumers at once (V8 stops at a promise
 *   with several reactions), through a promise callback that runs before the promise it
 *   returns into is adopted, or with `--no-async-stack-traces`.
 *
 *   `'context'`: the leader's `fn` runs inside an `AsyncLocalStorage` whose store is the
 *   flight itself; each flight remembers the flight in whose context it was started
 *   (`parent`), and a joiner walks its context's chain of parents. It follows every
 *   continuation `fn` starts (timers and event callbacks too) — and counts a fire-and-forget
 *   task of `fn` as part of it. The cost is process-wide: on Node 20 the first
 *   AsyncLocalStorage to run installs promise hooks, which makes every promise cost 2-3x
 *   while enabled (the storage is disabled whenever no such flight runs) and invalidates
 *   V8's promise-hook protector for good: every async function and `await` in the process
 *   costs more even once the hooks are gone (lru-cache's `fetch` hit +21% instructions, a
 *   bare `await` loop 1.2-1.6x; `node --trace-protector-invalidation` shows it).
 *
 *   Neither way sees two unrelated callers that lead A and B at the same time while A needs
 *   B and B needs A: each waits for the other until its follower timeout fires.
 *   `false` turns detection off (a recursive call then ends with its follower timeout).
 *
 * - Cancellation. Zoocache admits that cancelling a follower does not detach it cleanly.
 *   Here every wait is detachable: a follower's AbortSignal or its timeout (default 60 s,
 *   Zoocache's bound) rejects that follower alone, with `ERR_ABORTED` or
 *   `ERR_FLIGHT_TIMEOUT`, removes its timer and listener in O(1) (a linked list of waiters,
 *   as node-redis does for aborted commands), and leaves the leader running for the others.
 *   The leader's caller may pass a signal too: aborting it detaches the leader's caller in
 *   the same way, and the computation goes on for the followers.
 *   The signal handed to `fn` aborts only when nobody wants the result any more: the
 *   leader's caller passed a signal, and every caller (leader and followers) has detached.
 *   The flight is then dropped, so the next caller starts a fresh one. `keepAlive: true`
 *   (on any call of the flight) means never abort `fn` because callers left — for a facade
 *   that wants to store the value anyway; such a flight stays joinable until it settles.
 *   A leader's caller without a signal can never detach, so its flight can never be
 *   cancelled; `fn` then gets a shared signal that never aborts, because creating an
 *   AbortSignal costs about 2 µs on Node 20 — more than the rest of the leader path.
 *   The shared signal is replaced every 1024 uses so that listeners a careless `fn` leaves
 *   on it are collected with it.
 *
 * - The leader's own run time is not bounded here: the facade's factory timeouts do that.
 *
 * - No unhandled rejections: every promise this module creates is either returned to a
 *   caller or has a rejection handler, including a leader's failure after its caller left.
 *
 * References: Go's golang.org/x/sync/singleflight; Zoocache "Reliability & Edge Cases"
 * (SingleFlight, fail-fast followers, 60 s follower timeout, follower cancellation).
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { neverAbortedSignal } from '../core/never-aborted-signal.js'
import type { Clock, TimerHandle } from '../core/clock.js'
import { toMs, type Duration } from '../core/duration.js'
import { AbortedError, describeKey, FlightTimeoutError, InvalidOptionsError, LeaderFailedError, RecursiveFlightError } from '../core/errors.js'
import { systemClock } from '../core/system-clock.js'

/**
 * The computation of one flight. It gets a signal that aborts when every caller has
 * detached (see `RunOptions.keepAlive`); it may return a value, a promise, or throw.
 */
export type FlightFn<V> = (signal: AbortSignal) => PromiseLike<V> | V

export interface SingleFlightOptions<K> {
  /**
   * Source of time for follower timeouts. Tests pass a `ManualClock`.
   * @default systemClock
   */
  clock?: Clock
  /**
   * How long a follower waits for the leader before failing with `ERR_FLIGHT_TIMEOUT`.
   * `Infinity` waits for ever. Must be > 0.
   * @default '60s' (Zoocache's bound)
   */
  timeout?: Duration
  /**
   * Called synchronously each time a call joins a flight already in progress, with the
   * key (for "flight joins" metrics). Exceptions it throws are caught and counted.
   * @default undefined
   */
  onJoin?: (key: K) => void
  /**
   * Refuse recursive calls (`ERR_RECURSIVE_FLIGHT`): a call that would join a flight whose
   * computation waits for the caller. `true`: from the waits-for chain in V8's async stack
   * trace, captured when a call joins (a few microseconds per join, nothing elsewhere); sees
   * cycles through promise chains. `'context'`: from AsyncLocalStorage, which also follows
   * timers and event callbacks, but on Node 20 makes every promise of the process slower
   * (see the design note). `false`: off; a recursive call waits as a follower and ends with
   * `ERR_FLIGHT_TIMEOUT` — a bounded wait, but a slow and less clear failure.
   * @default true
   */
  detectRecursion?: RecursionDetection
}

/** How recursive calls are detected; see `SingleFlightOptions.detectRecursion`. */
export type RecursionDetection = boolean | 'context'

export interface RunOptions {
  /**
   * How long this call waits if it becomes a follower; then it fails with
   * `ERR_FLIGHT_TIMEOUT`. Ignored when the call leads (the leader waits for `fn`).
   * `Infinity` waits for ever. Must be > 0.
   * @default the SingleFlight's `timeout`
   */
  timeout?: Duration
  /**
   * Aborting detaches this caller only: its promise rejects with `ERR_ABORTED`
   * (`cause` = `signal.reason`). The computation goes on for the other callers.
   * @default undefined
   */
  signal?: AbortSignal
  /**
   * Never abort `fn` because callers detached: the computation runs to the end even when
   * nobody waits for it (the facade may still store its value). Applies to the whole
   * flight from the call that sets it on.
   * @default false
   */
  keepAlive?: boolean
}

/** What `runWithInfo` resolves with. */
export interface FlightOutcome<V> {
  readonly value: V
  /** True when this call joined a flight already in progress; false when it led. */
  readonly joined: boolean
}

export interface SingleFlightStats {
  /** Flights in progress now. */
  readonly inFlight: number
  /** Calls that led a flight (called `fn`). */
  readonly leaders: number
  /** Calls that joined a flight in progress. */
  readonly joins: number
  /** Flights whose `fn` threw or rejected (not counting flights abandoned before). */
  readonly leaderFailures: number
  /** Followers that gave up after their timeout. */
  readonly followerTimeouts: number
  /** Followers detached by their AbortSignal (including signals already aborted at the call). */
  readonly followerAborts: number
  /** Leaders' callers detached by their AbortSignal (including signals already aborted at the call, which lead nothing). */
  readonly leaderAborts: number
  /** Flights whose `fn` signal was aborted because every caller had detached. */
  readonly abandoned: number
  /** Calls refused with `ERR_RECURSIVE_FLIGHT`. */
  readonly recursions: number
  /** Exceptions thrown by the `onJoin` hook (caught; the first one is also a process warning). */
  readonly hookErrors: number
}

/** What the AsyncLocalStorage holds (`detectRecursion: 'context'`): the flight whose `fn` this code is part of. */
interface Frame {
  readonly key: unknown
  readonly parent: Frame | undefined
}

/** One per process, so that a cycle through two SingleFlight instances is caught too. */
const computing = new AsyncLocalStorage<Frame>()

/**
 * Flights whose `fn` runs inside `computing`, across every SingleFlight. While an
 * AsyncLocalStorage is enabled on Node 20, promise hooks make every promise of the process
 * cost 2-3x more, so the storage is disabled whenever no such flight runs, and `run()`
 * enables it again for the next one. Disabling loses no context anyone needs: with no
 * flight running, no code is part of a computation that a recursive call could deadlock on.
 * (What disabling cannot undo: V8's promise-hook protector, invalidated by the first hook.)
 */
let contextFlights = 0

/** How a flight's runner settles it: the owning SingleFlight's private methods. */
interface Settler<K, V> {
  fulfil(flight: Flight<K, V>, value: V): void
  reject(flight: Flight<K, V>, err: unknown): void
}

const DEFAULT_TIMEOUT_MS = 60_000
class Flight<K, V> implements Frame {
  readonly key: K
  readonly parent: Frame | undefined
  /** Present only when the flight can be cancelled: the leader's caller has a signal and no keepAlive. */
  readonly controller: AbortController | undefined
  readonly settler: Settler<K, V>
  keepAlive: boolean
  settled = false
  abandoned = false
  /** Runs `fn` inside `computing` (`detectRecursion: 'context'`); counted in `contextFlights` until settled. */
  inContext = false
  /** Waiters still attached: followers, plus the leader's caller when it has a signal. */
  attached = 0
  head: Waiter<K, V> | undefined = undefined
  tail: Waiter<K, V> | undefined = undefined

  constructor(key: K, parent: Frame | undefined, controller: AbortController | undefined, keepAlive: boolean, settler: Settler<K, V>) {
    this.key = key
    this.parent = parent
    this.controller = controller
    this.keepAlive = keepAlive
    this.settler = settler
  }
}

// ---- runners: what a join finds in the async stack trace (see the design note) ----------

type AnyFlight = Flight<unknown, unknown>
type Runner = (flight: AnyFlight, fn: FlightFn<unknown>, signal: AbortSignal) => Promise<unknown>

/** Runner `i` is named `RUNNER_PREFIX + i`; user code is unlikely to name a function so. */
const RUNNER_PREFIX = 'stratacache flight '
/** The flight holding each slot, shared by every SingleFlight in the process. */
const slotFlights: Array<AnyFlight | undefined> = []
const runners: Array<Runner | undefined> = []
/** Runners of slots below this are kept for reuse; above (bursts of concurrent flights), made per flight. */
const KEPT_RUNNERS = 1024
/** Free slots below KEPT_RUNNERS (taken first), and above. */
const freeKept: number[] = []
const freeOther: number[] = []
/** Frames captured by a join: sync stacks of deep frameworks plus one async frame per awaiting function. */
const STACK_DEPTH = 256

/**
 * Calls `fn`, settles `flight` with its outcome, and resolves (or rejects) with it. The
 * async frame of this function is what marks "`flight` waits for this code" in the async
 * stack traces of everything `fn` awaits. The slot is released last, so a slot's runner is
 * on a stack only while its flight's `fn` is pending.
 */
function makeRunner(slot: number): Runner {
  const name = RUNNER_PREFIX + String(slot)
  const named: Record<string, Runner> = {
    async [name](flight: AnyFlight, fn: FlightFn<unknown>, signal: AbortSignal): Promise<unknown> {
      try {
        let result: unknown
        try {
          result = flight.inContext ? computing.run(flight, fn, signal) : fn(signal)
        } catch (err) {
          // A synchronous throw is a failure like a rejection.
          flight.settler.reject(flight, err)
          throw err
        }
        if (!isThenable(result)) {
          // A sync fn settles the flight before `run` returns.
          flight.settler.fulfil(flight, result)
          return result
        }
        let value: unknown
        try {
          value = await result
        } catch (err) {
          flight.settler.reject(flight, err)
          throw err
        }
        flight.settler.fulfil(flight, value)
        return value
      } finally {
        slotFlights[slot] = undefined
        if (slot < KEPT_RUNNERS) freeKept.push(slot)
        else {
          runners[slot] = undefined
          freeOther.push(slot)
        }
      }
    },
  }
  return named[name] as Runner
}

/** Starts `fn` for `flight` in a free runner slot. */
function runInSlot<K, V>(flight: Flight<K, V>, fn: FlightFn<V>, signal: AbortSignal): Promise<V> {
  const slot = freeKept.pop() ?? freeOther.pop() ?? runners.length
  let runner = runners[slot]
  if (runner === undefined) runners[slot] = runner = makeRunner(slot)
  slotFlights[slot] = flight as unknown as AnyFlight
  return runner(flight as unknown as AnyFlight, fn as FlightFn<unknown>, signal) as Promise<V>
}

/** `Error.prepareStackTrace` during a capture: the flights whose runners are on the stack, innermost first. */
function flightsOfSites(_error: Error, sites: NodeJS.CallSite[]): AnyFlight[] {
  const found: AnyFlight[] = []
  for (const site of sites) {
    const name = site.getFunctionName()
    if (name !== null && name.startsWith(RUNNER_PREFIX)) {
      const flight = slotFlights[Number(name.slice(RUNNER_PREFIX.length))]
      if (flight !== undefined) found.push(flight)
    }
  }
  return found
}

/**
 * The flights whose computation waits for the code running now, innermost first: the
 * runners in the synchronous stack and in V8's async stack trace. Never throws (a stack
 * that cannot be captured finds nothing: the call then joins as with detection off).
 */
function awaitingFlights(): readonly AnyFlight[] {
  const E = Error as ErrorConstructor & { stackTraceLimit: number }
  const limit = E.stackTraceLimit
  const prepare = E.prepareStackTrace
  const holder: { stack?: unknown } = {}
  try {
    E.stackTraceLimit = STACK_DEPTH
    E.prepareStackTrace = flightsOfSites
    E.captureStackTrace(holder, awaitingFlights)
    const found = holder.stack
    return Array.isArray(found) ? (found as AnyFlight[]) : []
  } catch {
    return []
  } finally {
    E.stackTraceLimit = limit
    E.prepareStackTrace = prepare
  }
}

class Waiter<K, V> {
  readonly flight: Flight<K, V>
  /** The leader's own caller: gets the original error rather than `ERR_LEADER_FAILED`. */
  readonly leader: boolean
  readonly signal: AbortSignal | undefined
  resolve: (value: V) => void = noop
  reject: (err: unknown) => void = noop
  prev: Waiter<K, V> | undefined = undefined
  next: Waiter<K, V> | undefined = undefined
  timer: TimerHandle | undefined = undefined
  onAbort: (() => void) | undefined = undefined
  done = false
  /** What this caller awaits; settled only through `resolve` and `reject`. */
  readonly promise: Promise<V>

  constructor(flight: Flight<K, V>, leader: boolean, signal: AbortSignal | undefined) {
    this.flight = flight
    this.leader = leader
    this.signal = signal
    this.promise = new Promise<V>((resolve, reject) => {
      this.resolve = resolve
      this.reject = reject
    })
  }
}

function noop(): void {}

/**
 * Deduplicates concurrent computations of the same key. See the design note at the top
 * of this file for the semantics of failures, timeouts, cancellation and recursion.
 */
export class SingleFlight<K = string, V = unknown> {
  readonly #clock: Clock
  readonly #timeout: number
  readonly #onJoin: ((key: K) => void) | undefined
  readonly #detectRecursion: RecursionDetection
  readonly #flights = new Map<K, Flight<K, V>>()
  readonly #settler: Settler<K, V> = {
    fulfil: (flight, value) => this.#fulfil(flight, value),
    reject: (flight, err) => this.#reject(flight, err),
  }

  #leaders = 0
  #joins = 0
  #leaderFailures = 0
  #followerTimeouts = 0
  #followerAborts = 0
  #leaderAborts = 0
  #abandoned = 0
  #recursions = 0
  #hookErrors = 0
  #warnedHookError = false

  constructor(options: SingleFlightOptions<K> = {}) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidOptionsError('options', 'expected an object')
    }
    const clock = options.clock ?? systemClock
    if (typeof clock?.now !== 'function' || typeof clock.setTimeout !== 'function' || typeof clock.clearTimeout !== 'function') {
      throw new InvalidOptionsError('clock', 'expected a Clock with now(), setTimeout() and clearTimeout()')
    }
    this.#clock = clock
    this.#timeout = options.timeout === undefined ? DEFAULT_TIMEOUT_MS : waitBound(options.timeout, 'timeout')
    if (options.onJoin !== undefined && typeof options.onJoin !== 'function') {
      throw new InvalidOptionsError('onJoin', 'expected a function (key) => void')
    }
    this.#onJoin = options.onJoin
    const detectRecursion = options.detectRecursion ?? true
    if (typeof detectRecursion !== 'boolean' && detectRecursion !== 'context') {
      throw new InvalidOptionsError('detectRecursion', `expected a boolean or 'context', got ${typeof detectRecursion === 'string' ? JSON.stringify(detectRecursion) : typeof detectRecursion}`)
    }
    this.#detectRecursion = detectRecursion
  }

  /** Number of flights in progress. */
  get size(): number {
    return this.#flights.size
  }

  /** Whether a flight for `key` is in progress (a call now would join it). */
  inFlight(key: K): boolean {
    return this.#flights.has(key)
  }

  /**
   * Runs `fn` for `key` unless a flight for `key` is already in progress, in which case it
   * waits for that flight's result. Never throws synchronously: every failure is a
   * rejection — `fn`'s own error for the leader; `ERR_LEADER_FAILED`, `ERR_FLIGHT_TIMEOUT`,
   * `ERR_ABORTED` or `ERR_RECURSIVE_FLIGHT` for a follower; `ERR_ABORTED` for a leader
   * whose caller aborted; `ERR_INVALID_OPTIONS` for bad arguments.
   */
  run(key: K, fn: FlightFn<V>, options?: RunOptions): Promise<V> {
    if (typeof fn !== 'function') {
      return Promise.reject(new InvalidOptionsError('fn', 'expected a function (signal) => value'))
    }
    let timeout = this.#timeout
    if (options !== undefined && options.timeout !== undefined) {
      // Validated even when this call leads, so a bad option does not hide until contention.
      try {
        timeout = waitBound(options.timeout, 'timeout')
      } catch (err) {
        return Promise.reject(err)
      }
    }
    const flight = this.#flights.get(key)
    return flight === undefined ? this.#lead(key, fn, options) : this.#join(flight, options, timeout)
  }

  /**
   * Like `run`, and tells whether the call joined a flight or led it. Costs one object
   * and one promise more than `run`; for counting only, prefer `stats().joins` or `onJoin`.
   */
  runWithInfo(key: K, fn: FlightFn<V>, options?: RunOptions): Promise<FlightOutcome<V>> {
    const joined = this.#flights.has(key)
    return this.run(key, fn, options).then((value) => ({ value, joined }))
  }

  stats(): SingleFlightStats {
    return {
      inFlight: this.#flights.size,
      leaders: this.#leaders,
      joins: this.#joins,
      leaderFailures: this.#leaderFailures,
      followerTimeouts: this.#followerTimeouts,
      followerAborts: this.#followerAborts,
      leaderAborts: this.#leaderAborts,
      abandoned: this.#abandoned,
      recursions: this.#recursions,
      hookErrors: this.#hookErrors,
    }
  }

  #lead(key: K, fn: FlightFn<V>, options: RunOptions | undefined): Promise<V> {
    const signal = options?.signal
    const keepAlive = options?.keepAlive === true
    if (signal !== undefined && signal.aborted) {
      this.#leaderAborts++
      return Promise.reject(abortedError(key, signal))
    }
    const controller = signal !== undefined && !keepAlive ? new AbortController() : undefined
    const inContext = this.#detectRecursion === 'context'
    const flight = new Flight<K, V>(key, inContext ? computing.getStore() : undefined, controller, keepAlive, this.#settler)
    this.#flights.set(key, flight)
    this.#leaders++
    if (inContext) {
      flight.inContext = true
      contextFlights++
    }
    // The runner calls fn now, settles the flight with its outcome (a sync fn or a sync
    // throw: before `run` returns) and resolves with it.
    const ran = runInSlot(flight, fn, controller === undefined ? neverAbortedSignal() : controller.signal)
    // Fast path: the leader's caller cannot detach, so its promise is the runner's: the
    // flight is settled (and the key freed) before the caller resumes.
    if (signal === undefined || flight.settled) return ran

    // The leader's caller can detach: it waits like a follower (without a timeout). Its
    // promise is resolved through the runner's (a failure nobody waits for any more is
    // still handled), so the promise chain, hence the async stack trace, stays unbroken.
    const waiter = this.#wait(flight, true, signal, Infinity)
    ran.then(waiter.resolve, waiter.reject)
    return waiter.promise
  }

  #join(flight: Flight<K, V>, options: RunOptions | undefined, timeout: number): Promise<V> {
    // The only place a deadlock can form: does the flight we would wait for wait for us?
    const detect = this.#detectRecursion
    if (detect !== false) {
      const path = detect === true ? awaitedPath(flight) : contextPath(flight)
      if (path !== undefined) {
        this.#recursions++
        return Promise.reject(new RecursiveFlightError(flight.key, path))
      }
    }
    const signal = options?.signal
    if (signal !== undefined && signal.aborted) {
      this.#followerAborts++
      return Promise.reject(abortedError(flight.key, signal))
    }
    if (options?.keepAlive === true) flight.keepAlive = true
    const { promise } = this.#wait(flight, false, signal, timeout)
    this.#joins++
    const onJoin = this.#onJoin
    if (onJoin !== undefined) this.#callOnJoin(onJoin, flight.key)
    return promise
  }

  #wait(flight: Flight<K, V>, leader: boolean, signal: AbortSignal | undefined, timeout: number): Waiter<K, V> {
    const waiter = new Waiter<K, V>(flight, leader, signal)
    const tail = flight.tail
    waiter.prev = tail
    if (tail === undefined) flight.head = waiter
    else tail.next = waiter
    flight.tail = waiter
    flight.attached++
    if (timeout !== Infinity) {
      waiter.timer = this.#clock.setTimeout(() => {
        waiter.timer = undefined
        if (waiter.done) return
        this.#followerTimeouts++
        this.#detach(waiter, new FlightTimeoutError(flight.key, timeout))
      }, timeout)
    }
    if (signal !== undefined) {
      const onAbort = (): void => {
        if (waiter.done) return
        if (waiter.leader) this.#leaderAborts++
        else this.#followerAborts++
        this.#detach(waiter, abortedError(flight.key, signal))
      }
      waiter.onAbort = onAbort
      signal.addEventListener('abort', onAbort, { once: true })
    }
    return waiter
  }

  /** One caller leaves before the flight settles. */
  #detach(waiter: Waiter<K, V>, err: unknown): void {
    const flight = waiter.flight
    const { prev, next } = waiter
    if (prev === undefined) flight.head = next
    else prev.next = next
    if (next === undefined) flight.tail = prev
    else next.prev = prev
    flight.attached--
    this.#release(waiter)
    waiter.reject(err)
    if (flight.attached === 0 && flight.controller !== undefined && !flight.keepAlive && !flight.settled) {
      // Nobody wants the result any more: forget the flight (the next caller starts a
      // fresh one) and tell fn to stop.
      flight.abandoned = true
      if (this.#flights.get(flight.key) === flight) this.#flights.delete(flight.key)
      this.#abandoned++
      flight.controller.abort(new AbortedError(`Every caller waiting for key ${describeKey(flight.key)} detached`, { cause: err }))
    }
  }

  #release(waiter: Waiter<K, V>): void {
    waiter.done = true
    waiter.prev = undefined
    waiter.next = undefined
    if (waiter.timer !== undefined) {
      this.#clock.clearTimeout(waiter.timer)
      waiter.timer = undefined
    }
    if (waiter.onAbort !== undefined) {
      waiter.signal?.removeEventListener('abort', waiter.onAbort)
      waiter.onAbort = undefined
    }
  }

  /** Frees the key and detaches the waiters, handing them to `deliver`. */
  #settle(flight: Flight<K, V>): Waiter<K, V> | undefined {
    flight.settled = true
    if (flight.inContext) {
      flight.inContext = false
      if (--contextFlights === 0) computing.disable()
    }
    if (this.#flights.get(flight.key) === flight) this.#flights.delete(flight.key)
    const head = flight.head
    flight.head = undefined
    flight.tail = undefined
    flight.attached = 0
    return head
  }

  #fulfil(flight: Flight<K, V>, value: V): void {
    if (flight.settled) return
    let waiter = this.#settle(flight)
    while (waiter !== undefined) {
      const next = waiter.next
      this.#release(waiter)
      waiter.resolve(value)
      waiter = next
    }
  }

  #reject(flight: Flight<K, V>, err: unknown): void {
    if (flight.settled) return
    if (!flight.abandoned) this.#leaderFailures++
    let waiter = this.#settle(flight)
    let shared: LeaderFailedError | undefined
    while (waiter !== undefined) {
      const next = waiter.next
      this.#release(waiter)
      if (waiter.leader) waiter.reject(err)
      else waiter.reject((shared ??= new LeaderFailedError(flight.key, err)))
      waiter = next
    }
  }

  #callOnJoin(onJoin: (key: K) => void, key: K): void {
    try {
      onJoin(key)
    } catch (err) {
      // The hook's failure is its own: count it, warn once, keep going.
      this.#hookErrors++
      if (!this.#warnedHookError) {
        this.#warnedHookError = true
        process.emitWarning(`A stratacache single-flight onJoin hook threw: ${String(err)}`, { code: 'STRATACACHE_HOOK_ERROR' })
      }
    }
  }
}

function waitBound(value: unknown, option: string): number {
  const ms = toMs(value, option)
  if (ms === 0) throw new InvalidOptionsError(option, 'expected a duration > 0 (Infinity waits for ever)')
  return ms
}

function isThenable<V>(value: PromiseLike<V> | V): value is PromiseLike<V> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function'
}

function abortedError(key: unknown, signal: AbortSignal): AbortedError {
  return new AbortedError(`Stopped waiting for key ${describeKey(key)}: the caller aborted`, { cause: signal.reason })
}

/**
 * `detectRecursion: true`: when `flight` waits for the code running now, the keys of every
 * flight that does (outermost first) and `flight`'s key; else undefined.
 */
function awaitedPath(flight: unknown): unknown[] | undefined {
  const chain = awaitingFlights()
  if (!chain.includes(flight as AnyFlight)) return undefined
  const path: unknown[] = [(flight as AnyFlight).key]
  for (const f of chain) path.push(f.key)
  return path.reverse()
}

/** `detectRecursion: 'context'`: the same, from the flights whose computation this code is part of. */
function contextPath(flight: Frame): unknown[] | undefined {
  const frame = computing.getStore()
  for (let f: Frame | undefined = frame; f !== undefined; f = f.parent) {
    if (f === flight) return pathOf(frame as Frame, flight.key)
  }
  return undefined
}

/** The keys being computed in this context, outermost first, then the key asked for. */
function pathOf(frame: Frame, key: unknown): unknown[] {
  const path: unknown[] = [key]
  for (let f: Frame | undefined = frame; f !== undefined; f = f.parent) path.push(f.key)
  return path.reverse()
}
