import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import * as api from '../../src/index.js'
import { CacheError, ERROR_CLASSES, ERROR_CODES, InvalidOptionsError, ManualClock, SeededRandom, systemClock, toBytes, toMs } from '../../src/index.js'

describe('durations', () => {
  test('accepts ms numbers, unit strings and Infinity', () => {
    assert.equal(toMs(250, 'x'), 250)
    assert.equal(toMs('500ms', 'x'), 500)
    assert.equal(toMs('30s', 'x'), 30_000)
    assert.equal(toMs('5m', 'x'), 300_000)
    assert.equal(toMs('2h', 'x'), 7_200_000)
    assert.equal(toMs('1d', 'x'), 86_400_000)
    assert.equal(toMs('1.5s', 'x'), 1500)
    assert.equal(toMs(Infinity, 'x'), Infinity)
    assert.equal(toMs('Infinity', 'x'), Infinity)
    assert.equal(toMs('99999999s', 'x'), 99_999_999_000)
  })

  test('rejects malformed durations with ERR_INVALID_OPTIONS naming the option', () => {
    for (const bad of [-1, NaN, '5 minutes', '', '10y', null, {}, '-3s']) {
      assert.throws(
        () => toMs(bad, 'defaults.ttl'),
        (err: unknown) => err instanceof InvalidOptionsError && err.code === 'ERR_INVALID_OPTIONS' && err.option === 'defaults.ttl' && err.message.includes('defaults.ttl'),
      )
    }
  })

  test('byte sizes take binary units', () => {
    assert.equal(toBytes(100, 'x'), 100)
    assert.equal(toBytes('64kb', 'x'), 65_536)
    assert.equal(toBytes('64mb', 'x'), 64 * 1024 * 1024)
    assert.equal(toBytes('1gb', 'x'), 1024 ** 3)
    for (const bad of [0, -5, 'lots', '12tb', Infinity]) assert.throws(() => toBytes(bad, 'maxBytes'), /maxBytes/)
  })
})

describe('ManualClock', () => {
  test('fires timers in due order, each seeing its own due time', () => {
    const clock = new ManualClock(1000)
    const seen: Array<[string, number]> = []
    clock.setTimeout(() => seen.push(['b', clock.now()]), 20)
    clock.setTimeout(() => seen.push(['a', clock.now()]), 10)
    clock.setTimeout(() => seen.push(['c', clock.now()]), 20)
    clock.advance(15)
    assert.deepEqual(seen, [['a', 1010]])
    assert.equal(clock.now(), 1015)
    clock.advance(100)
    assert.deepEqual(seen, [['a', 1010], ['b', 1020], ['c', 1020]])
    assert.equal(clock.now(), 1115)
  })

  test('timers scheduled by timers fire within the same advance; cleared ones never', () => {
    const clock = new ManualClock(0)
    const seen: number[] = []
    const dropped = clock.setTimeout(() => seen.push(-1), 5)
    clock.setTimeout(() => {
      seen.push(clock.now())
      clock.setTimeout(() => seen.push(clock.now()), 10)
    }, 10)
    clock.clearTimeout(dropped)
    clock.advance(30)
    assert.deepEqual(seen, [10, 20])
    assert.equal(clock.pendingTimers, 0)
    assert.throws(() => clock.advance(-1), RangeError)
  })
})

describe('system clock and randomness', () => {
  test('systemClock is monotonic and close to wall time', () => {
    let last = systemClock.now()
    for (let i = 0; i < 10_000; i++) {
      const t = systemClock.now()
      assert.ok(t >= last)
      last = t
    }
    assert.ok(Math.abs(systemClock.now() - Date.now()) < 1000)
  })

  test('systemClock timers fire', async () => {
    const fired = await new Promise<boolean>((resolve) => systemClock.setTimeout(() => resolve(true), 1))
    assert.equal(fired, true)
  })

  test('SeededRandom is deterministic and in [0, 1)', () => {
    const a = new SeededRandom(7)
    const b = new SeededRandom(7)
    const xs = Array.from({ length: 1000 }, () => a.next())
    assert.deepEqual(xs, Array.from({ length: 1000 }, () => b.next()))
    assert.ok(xs.every((x) => x >= 0 && x < 1))
    assert.ok(new Set(xs).size > 990)
  })
})

describe('errors', () => {
  test('every code has a class whose instances carry it, exported from the package', () => {
    const exported = api as unknown as Record<string, unknown>
    for (const code of Object.keys(ERROR_CODES) as Array<keyof typeof ERROR_CODES>) {
      const cls = ERROR_CLASSES[code]
      assert.equal(exported[cls.name], cls, `${cls.name} is exported`)
      assert.ok(cls.prototype instanceof CacheError)
    }
    const cause = new Error('root')
    const err = new api.LeaderFailedError('k', cause)
    assert.equal(err.code, 'ERR_LEADER_FAILED')
    assert.equal(err.cause, cause)
    assert.equal(err.name, 'LeaderFailedError')
    assert.ok(err instanceof Error)
    assert.ok(api.isCacheError(err, 'ERR_LEADER_FAILED'))
    assert.ok(!api.isCacheError(err, 'ERR_CLOSED'))
    assert.equal(new api.WaitTimeoutError('k', 5).code, 'ERR_WAIT_TIMEOUT')
    assert.equal(new api.InvalidTagError('a::b', 'empty segment').code, 'ERR_INVALID_TAG')
  })

  test('codes are unique and each class reports its own code', () => {
    const samples: CacheError[] = [
      new api.InvalidOptionsError('o', 'm'),
      new api.InvalidKeyError('m'),
      new api.InvalidValueError('m'),
      new api.WaitTimeoutError('k', 1),
      new api.AbortedError('m'),
      new api.ClosedError(),
      new api.InvalidTagError('t', 'm'),
      new api.LeaderFailedError('k', new Error('x')),
      new api.FlightTimeoutError('k', 1),
      new api.RecursiveFlightError('k', ['k']),
      new api.FactoryTimeoutError('k', 1),
      new api.StoreFullError('m'),
      new api.StoreTimeoutError('get', 1),
      new api.StoreUnavailableError('m'),
      new api.DataDirLockedError('/d', 1, 'm'),
      new api.DecodeError('m'),
      new api.DecryptError('m'),
      new api.ValueTooLargeError(2, 1),
      new api.LockLostError('k'),
      new api.BusUnavailableError('m'),
      new api.FeedUnavailableError('m'),
      new api.ClockDriftError(2, 1),
      new api.PeerUnreachableError('n1', 'm'),
      new api.PeerAuthError('n1', 'm'),
      new api.MissingDependencyError('pg', 'stratacache/postgres'),
      new api.BadRequestError('m'),
      new api.UnauthorizedError(),
      new api.NotFoundError('m'),
      new api.MethodNotAllowedError('PATCH', ['GET']),
      new api.PreconditionFailedError('m'),
      new api.ForbiddenError('m'),
      new api.UnsupportedMediaTypeError('text/plain'),
      new api.TooLargeError('m'),
      new api.RateLimitedError(1),
      new api.BusyError(1),
      new api.InternalError(),
      new api.ClusterPassiveError(),
      new api.AckTimeoutError(1, 2, 'region'),
      new api.StaleReadError('k', 2, 1),
      // client of the nodes
      new api.RequestTimeoutError(1),
      new api.NodeUnreachableError('m'),
      new api.BadResponseError('m'),
    ]
    assert.deepEqual(samples.map((e) => e.code).sort(), Object.keys(ERROR_CODES).sort())
    for (const e of samples) assert.equal(ERROR_CLASSES[e.code], e.constructor)
  })

  test('every code and class is documented in the error table (docs/reference/errors.md)', () => {
    const readme = readFileSync(new URL('../../../docs/reference/errors.md', import.meta.url), 'utf8')
    for (const code of Object.keys(ERROR_CODES) as Array<keyof typeof ERROR_CODES>) {
      assert.ok(readme.includes(`\`${code}\``), `docs/reference/errors.md documents ${code}`)
      assert.ok(readme.includes(`\`${ERROR_CLASSES[code].name}\``), `docs/reference/errors.md names ${ERROR_CLASSES[code].name}`)
    }
  })
})
