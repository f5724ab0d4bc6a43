import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { getEventListeners } from 'node:events'
import { after, before, describe, test } from 'node:test'
import { ManualClock } from '../../src/core/manual-clock.js'
import { AbortedError, FlightTimeoutError, isCacheError, LeaderFailedError, RecursiveFlightError } from '../../src/core/errors.js'
import { SingleFlight, type FlightFn, type SingleFlightOptions } from '../../src/singleflight/index.js'
import { deferred, track } from '../../src/testing/index.js'

// Every test runs on a ManualClock and never sleeps: leaders are deferred promises that
// the test settles by hand, and `flush()` lets pending microtasks and I/O callbacks run.

type Deferred<T> = ReturnType<typeof deferred<T>>

function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

function make<V = string>(options: SingleFlightOptions<string> = {}): { sf: SingleFlight<string, V>; clock: ManualClock } {
  const clock = new ManualClock(0)
  return { sf: new SingleFlight<string, V>({ clock, ...options }), clock }
}

/** A fn that counts its calls and returns the deferred's promise; `signals` collects what it was given. */
function controlled<V>(): { fn: FlightFn<V>; calls: () => number; signals: AbortSignal[]; d: Deferred<V> } {
  const d = deferred<V>()
  const signals: AbortSignal[] = []
  const fn: FlightFn<V> = (signal) => {
    signals.push(signal)
    return d.promise
  }
  return { fn, calls: () => signals.length, signals, d }
}

// Any unhandled rejection anywhere in this file fails the last test.
const unhandled: unknown[] = []
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason)
}
before(() => process.on('unhandledRejection', onUnhandled))
after(() => process.off('unhandledRejection', onUnhandled))

describe('deduplication', () => {
  test('1,000 concurrent callers of one key: fn runs once and every caller gets its value', async () => {
    const { sf, clock } = make()
    const { fn, calls, d } = controlled<string>()
    const results = Array.from({ length: 1000 }, () => sf.run('k', fn))
    assert.equal(calls(), 1)
    assert.equal(sf.inFlight('k'), true)
    assert.equal(sf.size, 1)
    assert.equal(clock.pendingTimers, 999, 'one timeout per follower while waiting')
    d.resolve('v')
    const values = await Promise.all(results)
    assert.equal(values.length, 1000)
    assert.ok(values.every((v) => v === 'v'))
    assert.equal(calls(), 1)
    assert.equal(sf.inFlight('k'), false)
    assert.equal(sf.size, 0)
    assert.equal(clock.pendingTimers, 0, 'every follower timer is cleared on settle')
    const s = sf.stats()
    assert.equal(s.leaders, 1)
    assert.equal(s.joins, 999)
    assert.equal(s.inFlight, 0)
  })

  test('10 keys x 100 callers: 10 calls, each caller gets its own key value', async () => {
    const { sf, clock } = make()
    const calls = new Map<string, number>()
    const gates = new Map<string, Deferred<string>>()
    const all: Array<Promise<string>> = []
    for (let i = 0; i < 100; i++) {
      for (let k = 0; k < 10; k++) {
        const key = `key${k}`
        all.push(
          sf.run(key, () => {
            calls.set(key, (calls.get(key) ?? 0) + 1)
            const d = deferred<string>()
            gates.set(key, d)
            return d.promise
          }),
        )
      }
    }
    assert.equal(sf.size, 10)
    assert.equal(calls.size, 10)
    for (const [key, d] of gates) d.resolve(`value of ${key}`)
    const values = await Promise.all(all)
    values.forEach((v, i) => assert.equal(v, `value of key${i % 10}`))
    assert.ok([...calls.values()].every((n) => n === 1))
    assert.deepEqual(sf.stats().leaders, 10)
    assert.deepEqual(sf.stats().joins, 990)
    assert.equal(clock.pendingTimers, 0)
  })

  test('once settled the key is free: the next call runs fn again', async () => {
    const { sf } = make<number>()
    let n = 0
    const fn = async (): Promise<number> => ++n
    assert.equal(await sf.run('k', fn), 1)
    assert.equal(sf.inFlight('k'), false)
    assert.equal(await sf.run('k', fn), 2)
  })

  test('the key is freed before the leader caller resumes', async () => {
    const { sf } = make()
    const { fn, d } = controlled<string>()
    const p = sf.run('k', fn).then((v) => [v, sf.inFlight('k')] as const)
    d.resolve('v')
    assert.deepEqual(await p, ['v', false])
  })

  test('runWithInfo and onJoin say who led and who joined', async () => {
    const joinedKeys: string[] = []
    const { sf } = make({ onJoin: (key) => joinedKeys.push(key) })
    const { fn, d } = controlled<string>()
    const a = sf.runWithInfo('k', fn)
    const b = sf.runWithInfo('k', fn)
    const c = sf.run('k', fn)
    assert.deepEqual(joinedKeys, ['k', 'k'])
    d.resolve('v')
    assert.deepEqual(await a, { value: 'v', joined: false })
    assert.deepEqual(await b, { value: 'v', joined: true })
    assert.equal(await c, 'v')
  })

  test('an onJoin hook that throws is counted and does not break the flight', async () => {
    const warnings: Error[] = []
    const onWarning = (w: Error): void => {
      warnings.push(w)
    }
    process.on('warning', onWarning)
    try {
      const { sf } = make({
        onJoin: () => {
          throw new Error('hook bug')
        },
      })
      const { fn, d } = controlled<string>()
      const ps = [sf.run('k', fn), sf.run('k', fn), sf.run('k', fn)]
      d.resolve('v')
      assert.deepEqual(await Promise.all(ps), ['v', 'v', 'v'])
      assert.equal(sf.stats().hookErrors, 2)
      await flush()
      assert.equal(warnings.filter((w) => /onJoin hook threw/.test(w.message)).length, 1, 'warned once')
    } finally {
      process.off('warning', onWarning)
    }
  })

  test('a non-native thenable is adopted', async () => {
    const { sf } = make()
    const thenable: PromiseLike<string> = {
      then<R1, R2>(onOk?: ((v: string) => R1 | PromiseLike<R1>) | null, _onErr?: ((e: unknown) => R2 | PromiseLike<R2>) | null): PromiseLike<R1 | R2> {
        return Promise.resolve('from thenable').then(onOk)
      },
    }
    const a = sf.run('k', () => thenable)
    const b = sf.run('k', () => 'never')
    assert.deepEqual(await Promise.all([a, b]), ['from thenable', 'from thenable'])
  })
})

describe('sync functions', () => {
  test('a sync fn settles the flight before run returns', async () => {
    const { sf } = make<number>()
    let n = 0
    const p = sf.run('k', () => ++n)
    assert.equal(sf.inFlight('k'), false)
    assert.equal(await p, 1)
    assert.equal(await sf.run('k', () => ++n), 2)
  })

  test('a sync throw is a failure like a rejection: the leader gets the error, the key is freed', async () => {
    const { sf } = make()
    const boom = new Error('sync boom')
    const p = sf.run('k', () => {
      throw boom
    })
    assert.equal(sf.inFlight('k'), false)
    await assert.rejects(p, (e: unknown) => e === boom)
    assert.equal(sf.stats().leaderFailures, 1)
    assert.equal(await sf.run('k', () => 'ok'), 'ok')
  })

  test('a sync fn that re-enters its own key is refused, not run twice', async () => {
    const { sf } = make()
    let calls = 0
    let inner: Promise<string> | undefined
    const fn = (): string => {
      calls++
      inner = sf.run('k', fn)
      return 'outer'
    }
    assert.equal(await sf.run('k', fn), 'outer')
    assert.equal(calls, 1)
    await assert.rejects(inner!, (e: unknown) => e instanceof RecursiveFlightError && isCacheError(e, 'ERR_RECURSIVE_FLIGHT'))
  })
})

describe('leader failure', () => {
  test('followers fail at once with ERR_LEADER_FAILED (cause = the error); the leader gets its own error; fn runs once', async () => {
    const { sf, clock } = make()
    const { fn, calls, d } = controlled<string>()
    const leader = track(sf.run('k', fn))
    const followers = Array.from({ length: 50 }, () => track(sf.run('k', fn)))
    const boom = new Error('db down')
    d.reject(boom)
    await flush()
    assert.equal(calls(), 1)
    assert.equal(leader.state, 'rejected')
    assert.equal(leader.error, boom)
    for (const f of followers) {
      assert.equal(f.state, 'rejected')
      assert.ok(f.error instanceof LeaderFailedError)
      assert.ok(isCacheError(f.error, 'ERR_LEADER_FAILED'))
      assert.equal(f.error.cause, boom)
      assert.equal(f.error.key, 'k')
    }
    assert.equal(sf.stats().leaderFailures, 1)
    assert.equal(sf.inFlight('k'), false)
    assert.equal(clock.pendingTimers, 0)
  })

  test('a leader with a signal still gets the original error', async () => {
    const { sf } = make()
    const { fn, d } = controlled<string>()
    const leader = sf.run('k', fn, { signal: new AbortController().signal })
    const follower = sf.run('k', fn)
    const boom = new Error('boom')
    d.reject(boom)
    await assert.rejects(leader, (e: unknown) => e === boom)
    await assert.rejects(follower, (e: unknown) => isCacheError(e, 'ERR_LEADER_FAILED') && e.cause === boom)
  })

  test('after a failure the next call runs fn again', async () => {
    const { sf } = make()
    let n = 0
    const fn = async (): Promise<string> => {
      if (++n === 1) throw new Error('first fails')
      return 'second works'
    }
    await assert.rejects(sf.run('k', fn), /first fails/)
    assert.equal(await sf.run('k', fn), 'second works')
  })
})

describe('follower timeout', () => {
  test('a follower gives up after the timeout; the leader completes and the others still get the value', async () => {
    const { sf, clock } = make()
    const { fn, calls, signals, d } = controlled<string>()
    const leader = track(sf.run('k', fn))
    const short = track(sf.run('k', fn)) // default 60 s
    const long = track(sf.run('k', fn, { timeout: '2m' }))
    clock.advance(59_999)
    await flush()
    assert.equal(short.state, 'pending')
    clock.advance(1)
    await flush()
    assert.equal(short.state, 'rejected')
    assert.ok(short.error instanceof FlightTimeoutError)
    assert.ok(isCacheError(short.error, 'ERR_FLIGHT_TIMEOUT'))
    assert.equal(short.error.timeoutMs, 60_000)
    assert.equal(long.state, 'pending')
    assert.equal(leader.state, 'pending')
    assert.equal(signals[0].aborted, false)
    assert.equal(sf.inFlight('k'), true)
    // A caller arriving now still joins the running flight.
    const late = track(sf.run('k', fn))
    d.resolve('v')
    await flush()
    assert.equal(leader.value, 'v')
    assert.equal(long.value, 'v')
    assert.equal(late.value, 'v')
    assert.equal(calls(), 1)
    assert.equal(sf.stats().followerTimeouts, 1)
    assert.equal(clock.pendingTimers, 0)
  })

  test('the constructor timeout is the default; Infinity sets no timer', async () => {
    const { sf, clock } = make({ timeout: '5s' })
    const { fn, d } = controlled<string>()
    const leader = sf.run('k', fn)
    const f1 = track(sf.run('k', fn))
    const f2 = track(sf.run('k', fn, { timeout: Infinity }))
    assert.equal(clock.pendingTimers, 1)
    clock.advance(5000)
    await flush()
    assert.ok(isCacheError(f1.error, 'ERR_FLIGHT_TIMEOUT'))
    assert.equal(f2.state, 'pending')
    d.resolve('v')
    assert.equal(await leader, 'v')
    await flush()
    assert.equal(f2.value, 'v')
  })

  test('invalid timeouts are ERR_INVALID_OPTIONS: thrown by the constructor, rejected by run', async () => {
    const clock = new ManualClock(0)
    for (const timeout of [0, -1, 'soon', NaN]) {
      assert.throws(() => new SingleFlight({ clock, timeout: timeout as never }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && /timeout/.test(e.message))
    }
    const sf = new SingleFlight<string, string>({ clock })
    let calls = 0
    const p = sf.run('k', () => String(++calls), { timeout: 'later' as never })
    await assert.rejects(p, (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    assert.equal(calls, 0)
    await assert.rejects(sf.run('k', 42 as never), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && /fn/.test(e.message))
    assert.throws(() => new SingleFlight({ clock: {} as never }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && /clock/.test(e.message))
    assert.throws(() => new SingleFlight({ onJoin: 3 as never }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && /onJoin/.test(e.message))
  })
})

describe('cancellation', () => {
  test("a follower's abort detaches that follower only", async () => {
    const { sf, clock } = make()
    const { fn, calls, signals, d } = controlled<string>()
    const leader = track(sf.run('k', fn))
    const ac = new AbortController()
    const quitter = track(sf.run('k', fn, { signal: ac.signal }))
    const stayer = track(sf.run('k', fn))
    const reason = new Error('client went away')
    ac.abort(reason)
    await flush()
    assert.equal(quitter.state, 'rejected')
    assert.ok(quitter.error instanceof AbortedError)
    assert.ok(isCacheError(quitter.error, 'ERR_ABORTED'))
    assert.equal(quitter.error.cause, reason)
    assert.equal(signals[0].aborted, false, 'the leader goes on')
    assert.equal(stayer.state, 'pending')
    assert.equal(clock.pendingTimers, 1, "the quitter's timer is gone")
    d.resolve('v')
    await flush()
    assert.equal(leader.value, 'v')
    assert.equal(stayer.value, 'v')
    assert.equal(calls(), 1)
    assert.equal(sf.stats().followerAborts, 1)
    assert.equal(clock.pendingTimers, 0)
  })

  test("the leader's caller aborting detaches it; the computation goes on for the followers", async () => {
    const { sf } = make()
    const { fn, calls, signals, d } = controlled<string>()
    const ac = new AbortController()
    const leader = track(sf.run('k', fn, { signal: ac.signal }))
    const f1 = track(sf.run('k', fn))
    const f2 = track(sf.run('k', fn))
    ac.abort('bye')
    await flush()
    assert.equal(leader.state, 'rejected')
    assert.ok(isCacheError(leader.error, 'ERR_ABORTED'))
    assert.equal((leader.error as AbortedError).cause, 'bye')
    assert.equal(signals[0].aborted, false, 'followers still want the result')
    assert.equal(sf.inFlight('k'), true)
    d.resolve('v')
    await flush()
    assert.equal(f1.value, 'v')
    assert.equal(f2.value, 'v')
    assert.equal(calls(), 1)
    assert.equal(sf.stats().leaderAborts, 1)
  })

  test("fn's signal aborts only when every caller has detached; the flight is dropped", async () => {
    const { sf, clock } = make()
    const { fn, calls, signals, d } = controlled<string>()
    const leaderAc = new AbortController()
    const followerAc = new AbortController()
    const leader = track(sf.run('k', fn, { signal: leaderAc.signal }))
    const aborter = track(sf.run('k', fn, { signal: followerAc.signal }))
    const timer = track(sf.run('k', fn, { timeout: '1s' }))
    const seen: unknown[] = []
    signals[0].addEventListener('abort', () => seen.push(signals[0].reason))
    leaderAc.abort()
    followerAc.abort()
    await flush()
    assert.equal(leader.state, 'rejected')
    assert.equal(aborter.state, 'rejected')
    assert.equal(signals[0].aborted, false, 'one follower is still waiting')
    clock.advance(1000)
    await flush()
    assert.ok(isCacheError(timer.error, 'ERR_FLIGHT_TIMEOUT'))
    assert.equal(signals[0].aborted, true, 'nobody wants the result')
    assert.equal(seen.length, 1)
    assert.ok(isCacheError(seen[0], 'ERR_ABORTED'))
    assert.equal(sf.inFlight('k'), false)
    assert.equal(sf.stats().abandoned, 1)

    // The next caller starts a fresh flight; the old fn's late outcome disturbs nothing.
    const fresh = controlled<string>()
    const next = track(sf.run('k', fresh.fn))
    const nextFollower = track(sf.run('k', fresh.fn))
    assert.equal(fresh.calls(), 1)
    d.reject(new Error('aborted by signal'))
    await flush()
    assert.equal(sf.inFlight('k'), true, 'the old flight does not free the new one')
    assert.equal(next.state, 'pending')
    assert.equal(sf.stats().leaderFailures, 0, 'an abandoned flight failing is not a leader failure')
    fresh.d.resolve('fresh')
    await flush()
    assert.equal(next.value, 'fresh')
    assert.equal(nextFollower.value, 'fresh')
    assert.equal(calls(), 1)
    assert.equal(clock.pendingTimers, 0)
  })

  test('a lone leader that aborts aborts fn, and its later rejection is not unhandled', async () => {
    const { sf } = make()
    const { fn, signals, d } = controlled<string>()
    const ac = new AbortController()
    const leader = sf.run('k', fn, { signal: ac.signal })
    ac.abort()
    await assert.rejects(leader, (e: unknown) => isCacheError(e, 'ERR_ABORTED'))
    assert.equal(signals[0].aborted, true)
    d.reject(new Error('nobody listens'))
    await flush()
    assert.equal(sf.inFlight('k'), false)
  })

  test('keepAlive: fn is never aborted, and the flight stays joinable after everyone left', async () => {
    const { sf, clock } = make()
    const { fn, calls, signals, d } = controlled<string>()
    const ac = new AbortController()
    const leader = track(sf.run('k', fn, { signal: ac.signal, keepAlive: true }))
    const follower = track(sf.run('k', fn, { timeout: 10 }))
    ac.abort()
    clock.advance(10)
    await flush()
    assert.equal(leader.state, 'rejected')
    assert.equal(follower.state, 'rejected')
    assert.equal(signals[0].aborted, false)
    assert.equal(sf.inFlight('k'), true)
    const late = track(sf.run('k', fn))
    d.resolve('kept')
    await flush()
    assert.equal(late.value, 'kept')
    assert.equal(calls(), 1)
    assert.equal(sf.stats().abandoned, 0)
  })

  test('keepAlive set by a follower protects the flight too', async () => {
    const { sf } = make()
    const { fn, signals, d } = controlled<string>()
    const leaderAc = new AbortController()
    const followerAc = new AbortController()
    const leader = sf.run('k', fn, { signal: leaderAc.signal })
    const follower = sf.run('k', fn, { signal: followerAc.signal, keepAlive: true })
    leaderAc.abort()
    followerAc.abort()
    await assert.rejects(leader, /aborted/)
    await assert.rejects(follower, /aborted/)
    assert.equal(signals[0].aborted, false)
    d.resolve('v')
  })

  test("a leader without a signal can never detach, so fn's signal never aborts", async () => {
    const { sf, clock } = make()
    const { fn, signals, d } = controlled<string>()
    const leader = sf.run('k', fn)
    const ac = new AbortController()
    const f1 = sf.run('k', fn, { signal: ac.signal })
    const f2 = sf.run('k', fn, { timeout: 5 })
    ac.abort()
    clock.advance(5)
    await assert.rejects(f1, (e: unknown) => isCacheError(e, 'ERR_ABORTED'))
    await assert.rejects(f2, (e: unknown) => isCacheError(e, 'ERR_FLIGHT_TIMEOUT'))
    assert.equal(signals[0].aborted, false)
    d.resolve('v')
    assert.equal(await leader, 'v')
  })

  test('a signal already aborted rejects at once: a leader runs nothing, a follower does not join', async () => {
    const { sf, clock } = make()
    const aborted = AbortSignal.abort('early')
    let calls = 0
    await assert.rejects(
      sf.run('k', () => String(++calls), { signal: aborted }),
      (e: unknown) => isCacheError(e, 'ERR_ABORTED') && e.cause === 'early',
    )
    assert.equal(calls, 0)
    assert.equal(sf.inFlight('k'), false)
    const { fn, d } = controlled<string>()
    const leader = sf.run('k', fn)
    await assert.rejects(sf.run('k', fn, { signal: aborted }), (e: unknown) => isCacheError(e, 'ERR_ABORTED'))
    assert.equal(clock.pendingTimers, 0)
    assert.equal(sf.stats().joins, 0)
    assert.equal(sf.stats().leaderAborts, 1)
    assert.equal(sf.stats().followerAborts, 1)
    d.resolve('v')
    assert.equal(await leader, 'v')
  })

  test('a flight that cannot be cancelled still hands fn a real signal; shared signals are renewed', async () => {
    const { sf } = make()
    const signals: AbortSignal[] = []
    for (let i = 0; i < 2100; i++) {
      await sf.run('k', (signal) => {
        signals.push(signal)
        return 'v'
      })
    }
    assert.ok(signals.every((s) => s instanceof AbortSignal && !s.aborted))
    const distinct = new Set(signals).size
    assert.ok(distinct >= 2 && distinct <= 4, `expected the shared signal to be renewed every 1024 uses, saw ${distinct} signals`)
  })

  test('listeners on caller signals are removed when the flight settles', async () => {
    const { sf } = make()
    const { fn, d } = controlled<string>()
    const ac = new AbortController()
    const leader = sf.run('k', fn, { signal: ac.signal })
    const follower = sf.run('k', fn, { signal: ac.signal })
    assert.equal(getEventListeners(ac.signal, 'abort').length, 2)
    d.resolve('v')
    await Promise.all([leader, follower])
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0)
  })
})

describe('recursion', () => {
  test('a fn that asks for its own key fails with ERR_RECURSIVE_FLIGHT instead of hanging', async () => {
    const { sf, clock } = make()
    let calls = 0
    const fn = async (): Promise<string> => {
      calls++
      await flush()
      return sf.run('A', fn)
    }
    const err = await sf.run('A', fn).then(
      () => assert.fail('should not resolve'),
      (e: unknown) => e,
    )
    assert.ok(err instanceof RecursiveFlightError)
    assert.ok(isCacheError(err, 'ERR_RECURSIVE_FLIGHT'))
    assert.deepEqual(err.path, ['A', 'A'])
    assert.equal(err.key, 'A')
    assert.equal(calls, 1)
    assert.equal(sf.stats().recursions, 1)
    assert.equal(sf.inFlight('A'), false)
    assert.equal(clock.pendingTimers, 0)
  })

  test('a cycle A -> B -> A across awaits is refused with the path of keys', async () => {
    const { sf } = make()
    const fnA = async (): Promise<string> => {
      await flush()
      return `A(${await sf.run('B', fnB)})`
    }
    const fnB = async (): Promise<string> => {
      await Promise.resolve()
      await flush()
      return `B(${await sf.run('A', fnA)})`
    }
    const leader = track(sf.run('A', fnA))
    // A second caller from outside any flight joins A normally (it is not part of the cycle).
    const follower = track(sf.run('A', fnA))
    while (leader.state === 'pending') await flush()
    await flush()
    const leaderErr = leader.error
    assert.ok(leaderErr instanceof RecursiveFlightError)
    assert.deepEqual(leaderErr.path, ['A', 'B', 'A'])
    assert.equal(leaderErr.key, 'A')
    assert.ok(isCacheError(follower.error, 'ERR_LEADER_FAILED'))
    assert.equal(follower.error.cause, leaderErr)
    assert.equal(sf.stats().recursions, 1)
    assert.equal(sf.size, 0)
  })

  test('a cycle through two SingleFlight instances is caught too', async () => {
    const clock = new ManualClock(0)
    const users = new SingleFlight<string, string>({ clock })
    const orgs = new SingleFlight<number, string>({ clock })
    const fnUser = async (): Promise<string> => `user of ${await orgs.run(7, fnOrg)}`
    const fnOrg = async (): Promise<string> => {
      await flush()
      return `org with ${await users.run('u1', fnUser)}`
    }
    const err = await users.run('u1', fnUser).then(
      () => assert.fail('should not resolve'),
      (e: unknown) => e,
    )
    assert.ok(err instanceof RecursiveFlightError)
    assert.deepEqual(err.path, ['u1', 7, 'u1'])
    assert.equal(clock.pendingTimers, 0)
  })

  test('with detectRecursion: false a recursive call waits as a follower and times out (bounded)', async () => {
    const { sf, clock } = make({ detectRecursion: false })
    const fn = async (): Promise<string> => sf.run('A', fn)
    const leader = track(sf.run('A', fn))
    await flush()
    assert.equal(leader.state, 'pending')
    clock.advance(60_000)
    await flush()
    assert.ok(isCacheError(leader.error, 'ERR_FLIGHT_TIMEOUT'))
    assert.equal(sf.stats().recursions, 0)
    assert.equal(clock.pendingTimers, 0)
    assert.throws(() => new SingleFlight({ detectRecursion: 'yes' as never }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && /detectRecursion/.test(e.message))
  })

  test('a concurrent, unrelated caller of the same key joins normally', async () => {
    const { sf } = make()
    const { fn, calls, d } = controlled<string>()
    const leader = sf.run('A', fn)
    // Called from inside another flight's fn (key C), which A does not depend on.
    const viaC = sf.run('C', async () => `C sees ${await sf.run('A', fn)}`)
    const plain = sf.run('A', fn)
    await flush()
    d.resolve('a')
    assert.deepEqual(await Promise.all([leader, viaC, plain]), ['a', 'C sees a', 'a'])
    assert.equal(calls(), 1)
    assert.equal(sf.stats().recursions, 0)
    assert.equal(sf.stats().joins, 2)
  })

  test('a fn for A may use B (no cycle), and B is shared with other callers', async () => {
    const { sf } = make()
    const gateB = deferred<string>()
    let bCalls = 0
    const fnB = (): Promise<string> => {
      bCalls++
      return gateB.promise
    }
    const a = sf.run('A', async () => `A needs ${await sf.run('B', fnB)}`)
    const b = sf.run('B', fnB)
    await flush()
    gateB.resolve('b')
    assert.deepEqual(await Promise.all([a, b]), ['A needs b', 'b'])
    assert.equal(bCalls, 1)
    assert.equal(sf.stats().recursions, 0)
  })

  test('code that outlives an old flight of A joins a newer flight of A normally', async () => {
    const { sf } = make()
    const gate = deferred<void>()
    let background: Promise<string> | undefined
    // The first flight of A starts a task it does not await, and settles.
    assert.equal(
      await sf.run('A', async () => {
        background = (async () => {
          await gate.promise
          return sf.run('A', () => 'unused')
        })()
        return 'first'
      }),
      'first',
    )
    const second = controlled<string>()
    const secondLeader = sf.run('A', second.fn)
    gate.resolve()
    await flush()
    second.d.resolve('second')
    assert.equal(await secondLeader, 'second')
    assert.equal(await background!, 'second', 'joined the newer flight, not refused as recursion')
    assert.equal(sf.stats().recursions, 0)
  })
})

describe('recursion: how it is detected', () => {
  /** Leads A, whose fn reaches a call for A through `via`; the outcome of the outer call. */
  async function cycle(sf: SingleFlight<string, string>, via: (again: () => Promise<string>) => Promise<string>): Promise<unknown> {
    const fnA = (): Promise<string> => via(() => sf.run('A', fnA))
    return sf.run('A', fnA).then(
      (v) => v,
      (e: unknown) => e,
    )
  }

  test('cycles through then-chains, Promise.all/race/any/allSettled, finally and adopted promises are refused', async () => {
    const ways: Record<string, (again: () => Promise<string>) => Promise<string>> = {
      then: (again) => flush().then(again),
      'then in B': (again) => flush().then(() => sfB.run('B', () => flush().then(again))),
      all: async (again) => (await Promise.all([flush().then(again), 'x']))[0] as string,
      race: (again) => Promise.race([flush().then(again), new Promise<string>(() => {})]),
      any: (again) =>
        Promise.any([flush().then(again)]).catch((e: unknown) => {
          throw e instanceof AggregateError ? e.errors[0] : e
        }),
      allSettled: async (again) => {
        const [r] = await Promise.allSettled([flush().then(again)])
        if (r?.status === 'rejected') throw r.reason
        return 'unexpected'
      },
      finally: (again) => flush().then(again).finally(() => {}),
      'async return': async (again) => {
        await flush()
        return again()
      },
      'new Promise adopting': (again) => new Promise<string>((resolve, reject) => flush().then(again).then(resolve, reject)),
    }
    const { sf } = make()
    const sfB = sf
    for (const [name, via] of Object.entries(ways)) {
      const err = await cycle(sf, via)
      assert.ok(isCacheError(err, 'ERR_RECURSIVE_FLIGHT'), `${name}: ${String(err)}`)
      assert.equal(sf.size, 0, name)
    }
    assert.equal(sf.stats().recursions, Object.keys(ways).length)
  })

  test('a leader whose caller has a signal still counts as waiting for its fn', async () => {
    const { sf } = make()
    const signal = new AbortController().signal
    const fnA = async (): Promise<string> => {
      await flush()
      return `A(${await sf.run('B', fnB, { signal })})`
    }
    const fnB = async (): Promise<string> => {
      await flush()
      return `B(${await sf.run('A', fnA, { signal })})`
    }
    const err = await sf.run('A', fnA, { signal }).then(
      () => assert.fail('should not resolve'),
      (e: unknown) => e,
    )
    assert.ok(err instanceof RecursiveFlightError)
    assert.deepEqual(err.path, ['A', 'B', 'A'])
  })

  test('a task fn starts without awaiting it is not waited for: it may join the flight (refused under context tracking)', async () => {
    for (const detectRecursion of [true, 'context'] as const) {
      const { sf } = make({ detectRecursion })
      const d = deferred<string>()
      let background: Promise<unknown> | undefined
      const leader = sf.run('A', () => {
        background = (async () => {
          await flush()
          return sf.run('A', () => 'unused')
        })().catch((e: unknown) => e)
        return d.promise
      })
      await flush()
      await flush()
      d.resolve('a')
      assert.equal(await leader, 'a')
      if (detectRecursion === true) assert.equal(await background!, 'a')
      else assert.ok(isCacheError(await background!, 'ERR_RECURSIVE_FLIGHT'))
    }
  })

  test("a cycle through a timer callback: seen with 'context' only; with true it ends with the follower timeout", async () => {
    const viaTimer = (again: () => Promise<string>): Promise<string> =>
      new Promise<string>((resolve, reject) => {
        setImmediate(() => {
          again().then(resolve, reject)
        })
      })
    const context = make({ detectRecursion: 'context' })
    assert.ok(isCacheError(await cycle(context.sf, viaTimer), 'ERR_RECURSIVE_FLIGHT'))
    const stack = make()
    const outcome = cycle(stack.sf, viaTimer)
    await flush()
    await flush()
    stack.clock.advance(60_000)
    assert.ok(isCacheError(await outcome, 'ERR_FLIGHT_TIMEOUT'))
    assert.equal(stack.sf.stats().recursions, 0)
    assert.equal(stack.clock.pendingTimers, 0)
  })

  test("'context' refuses the same direct and cross-instance cycles", async () => {
    const { sf } = make({ detectRecursion: 'context' })
    const err = await cycle(sf, async (again) => {
      await flush()
      return again()
    })
    assert.ok(err instanceof RecursiveFlightError)
    assert.deepEqual(err.path, ['A', 'A'])
    assert.throws(() => new SingleFlight({ detectRecursion: 'stack' as never }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && /detectRecursion/.test(e.message))
  })

  test('a join leaves Error.prepareStackTrace and Error.stackTraceLimit as they were, and never calls a user hook', async () => {
    const { sf } = make()
    const E = Error as ErrorConstructor & { stackTraceLimit: number }
    const saved = { limit: E.stackTraceLimit, prepare: E.prepareStackTrace }
    let userCalls = 0
    const userPrepare = (err: Error): string => {
      userCalls++
      return `custom ${err.message}`
    }
    try {
      E.stackTraceLimit = 3
      E.prepareStackTrace = userPrepare
      const { fn, d } = controlled<string>()
      const leader = sf.run('k', fn)
      const follower = sf.run('k', fn)
      assert.equal(userCalls, 0)
      assert.equal(E.prepareStackTrace, userPrepare)
      assert.equal(E.stackTraceLimit, 3)
      d.resolve('v')
      assert.deepEqual(await Promise.all([leader, follower]), ['v', 'v'])
    } finally {
      E.stackTraceLimit = saved.limit
      E.prepareStackTrace = saved.prepare
    }
  })

  test('runner slots are reused: many flights, a burst, then an abandoned one still running, and detection stays exact', async () => {
    const { sf } = make()
    const selfCycle = (): Promise<unknown> =>
      cycle(sf as SingleFlight<string, string>, async (again) => {
        await flush()
        return again()
      })
    for (let i = 0; i < 1000; i++) await sf.run(`k${i}`, async () => 'v')
    // A burst of 3,000 concurrent flights takes slots past the kept runners; a flight led
    // meanwhile gets one of those (made for it, dropped after), and is still recognised.
    const gate = deferred<string>()
    const burst = Array.from({ length: 3000 }, (_, i) => sf.run(`b${i}`, () => gate.promise))
    const during = await selfCycle()
    assert.ok(during instanceof RecursiveFlightError && isCacheError(during, 'ERR_RECURSIVE_FLIGHT'))
    gate.resolve('v')
    await Promise.all(burst)
    const after = await selfCycle()
    assert.ok(after instanceof RecursiveFlightError)
    assert.equal(sf.stats().recursions, 2)
    // An abandoned flight keeps its slot until its fn settles; a new flight of the same key gets another.
    const ac = new AbortController()
    const stuck = deferred<string>()
    const abandoned = sf.run('A', () => stuck.promise, { signal: ac.signal })
    ac.abort()
    await assert.rejects(abandoned, (e: unknown) => isCacheError(e, 'ERR_ABORTED'))
    assert.equal(sf.inFlight('A'), false)
    const err = await cycle(sf as SingleFlight<string, string>, async (again) => {
      await flush()
      return again()
    })
    assert.ok(err instanceof RecursiveFlightError)
    assert.deepEqual(err.path, ['A', 'A'])
    assert.equal(sf.stats().recursions, 3)
    stuck.resolve('late')
  })

  test('default detection never installs a promise hook (which would slow every await of the process for good)', async () => {
    // V8 reports the promise-hook protector's invalidation on stdout with this flag.
    const script = `
      const { SingleFlight } = await import(${JSON.stringify(new URL('../../src/singleflight/index.js', import.meta.url).href)})
      const sf = new SingleFlight({ detectRecursion: process.argv[1] === 'context' ? 'context' : true })
      const tick = () => new Promise((r) => setImmediate(r))
      const fn = async () => { await tick(); return sf.run('A', fn) }
      const outcome = await sf.run('A', fn).then(() => 'resolved', (e) => e.code)
      const joined = await Promise.all([sf.run('B', async () => { await tick(); return 1 }), sf.run('B', () => 2)])
      console.log(outcome, joined.join(','))
    `
    for (const mode of ['true', 'context']) {
      const out = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, ['--trace-protector-invalidation', '--input-type=module', '-e', script, mode], (err, stdout) => (err ? reject(err) : resolve(stdout)))
      })
      assert.match(out, /ERR_RECURSIVE_FLIGHT 1,1/, mode)
      assert.equal(/Invalidating protector cell PromiseHook/.test(out), mode === 'context', `${mode}: ${out}`)
    }
  })
})

describe('hygiene', () => {
  test('no timers left after every kind of settlement', async () => {
    const { sf, clock } = make()
    const ok = controlled<string>()
    const ko = controlled<string>()
    const ps = [sf.run('ok', ok.fn), sf.run('ok', ok.fn), sf.run('ko', ko.fn).catch(() => 'x'), sf.run('ko', ko.fn).catch(() => 'x')]
    assert.equal(clock.pendingTimers, 2)
    ok.d.resolve('v')
    ko.d.reject(new Error('e'))
    await Promise.all(ps)
    assert.equal(clock.pendingTimers, 0)
    assert.equal(sf.size, 0)
  })

  test('no unhandled rejection anywhere in this file (a lone leader failing included)', async () => {
    const { sf } = make()
    const lone = controlled<string>()
    const loneLeader = sf.run('lone', lone.fn)
    lone.d.reject(new Error('lone fails'))
    await assert.rejects(loneLeader, /lone fails/)
    const sync = sf.run('sync', () => {
      throw new Error('sync fails')
    })
    await assert.rejects(sync)
    // A follower that timed out, then a leader that fails with nobody else waiting.
    const { sf: sf2, clock } = make()
    const d = controlled<string>()
    const leader = sf2.run('k', d.fn)
    const follower = sf2.run('k', d.fn, { timeout: 1 })
    clock.advance(1)
    await assert.rejects(follower, (e: unknown) => isCacheError(e, 'ERR_FLIGHT_TIMEOUT'))
    d.d.reject(new Error('late failure'))
    await assert.rejects(leader, /late failure/)
    await flush()
    await flush()
    assert.deepEqual(unhandled, [])
  })
})
