import { execFileSync } from 'node:child_process'
/**
 * Foundation: durations, byte sizes, ManualClock, systemClock, SeededRandom and the typed
 * error table (pinned to the package exports and to the error table of docs/reference/errors.md).
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import * as api from '../../src/index.js'
import {
  AbortedError,
  CacheError,
  ClosedError,
  ERROR_CLASSES,
  ERROR_CODES,
  type ErrorCode,
  FactoryTimeoutError,
  StoreFullError,
  StoreTimeoutError,
  StoreUnavailableError,
  DataDirLockedError,
  DecodeError,
  DecryptError,
  ValueTooLargeError,
  LockLostError,
  BusUnavailableError,
  ClockDriftError,
  FeedUnavailableError,
  PeerUnreachableError,
  PeerAuthError,
  MissingDependencyError,
  AckTimeoutError,
  StaleReadError,
  BadRequestError,
  UnauthorizedError,
  ForbiddenError,
  UnsupportedMediaTypeError,
  NotFoundError,
  MethodNotAllowedError,
  PreconditionFailedError,
  TooLargeError,
  RateLimitedError,
  BusyError,
  ClusterPassiveError,
  InternalError,
  RequestTimeoutError,
  NodeUnreachableError,
  BadResponseError,
  FlightTimeoutError,
  InvalidKeyError,
  InvalidOptionsError,
  InvalidTagError,
  InvalidValueError,
  isCacheError,
  LeaderFailedError,
  ManualClock,
  mathRandom,
  MemoryCache,
  RecursiveFlightError,
  SeededRandom,
  systemClock,
  createSystemClock,
  toBytes,
  toMs,
  WaitTimeoutError,
} from '../../src/index.js'
import { secretSeed } from '../../src/core/random.js'

/** Asserts that `fn` throws ERR_INVALID_OPTIONS naming `option` (in `.option` and in the message). */
function throwsInvalidOption(fn: () => unknown, option: string, label: string): void {
  assert.throws(
    fn,
    (err: unknown) => {
      assert.ok(err instanceof InvalidOptionsError, `${label}: an InvalidOptionsError, got ${String(err)}`)
      assert.ok(err instanceof CacheError)
      assert.equal(err.code, 'ERR_INVALID_OPTIONS')
      assert.equal(err.option, option, label)
      assert.ok(err.message.includes(option), `${label}: message "${err.message}" names ${option}`)
      return true
    },
    label,
  )
}

describe('toMs (durations)', () => {
  test('numbers are milliseconds, fractional allowed', () => {
    assert.equal(toMs(0, 'ttl'), 0)
    assert.equal(toMs(1, 'ttl'), 1)
    assert.equal(toMs(250, 'ttl'), 250)
    assert.equal(toMs(0.5, 'ttl'), 0.5)
  })

  test('strings take one unit: ms, s, m, h, d (decimals allowed)', () => {
    assert.equal(toMs('500ms', 'ttl'), 500)
    assert.equal(toMs('30s', 'ttl'), 30_000)
    assert.equal(toMs('5m', 'ttl'), 300_000)
    assert.equal(toMs('2h', 'ttl'), 7_200_000)
    assert.equal(toMs('1d', 'ttl'), 86_400_000)
    assert.equal(toMs('1.5s', 'ttl'), 1500)
    assert.equal(toMs('0.25m', 'ttl'), 15_000)
  })

  test('decimal strings convert to the exact whole number of ms they denote', () => {
    // e.g. 1.1 * 3_600_000 is 3960000.0000000005 in floating point; an entry with ttl '1.1h'
    // must not outlive a clock advanced by 3,960,000 ms.
    assert.equal(toMs('1.1h', 'ttl'), 3_960_000)
    assert.equal(toMs('2.2h', 'ttl'), 7_920_000)
    assert.equal(toMs('0.7d', 'ttl'), 60_480_000)
    assert.equal(toMs('1.001s', 'ttl'), 1001)
    assert.equal(toMs('0.5ms', 'ttl'), 0.5)
  })

  test('Infinity (number or string) means never', () => {
    assert.equal(toMs(Infinity, 'ttl'), Infinity)
    assert.equal(toMs('Infinity', 'ttl'), Infinity)
  })

  test('very long durations stay exact (99,999,999 s)', () => {
    assert.equal(toMs('99999999s', 'ttl'), 99_999_999_000)
    assert.equal(toMs(99_999_999_000, 'ttl'), 99_999_999_000)
    assert.equal(toMs('3650d', 'ttl'), 3650 * 86_400_000)
  })

  test('malformed or negative durations throw ERR_INVALID_OPTIONS naming the option', () => {
    const bad: unknown[] = [-1, -Infinity, NaN, '', ' ', '5', '5 minutes', '10y', '-3s', 's', '1e3s', 'Infinityms', null, undefined, {}, [], true, () => 5]
    for (const value of bad) throwsInvalidOption(() => toMs(value, 'memory.ttl'), 'memory.ttl', `toMs(${String(value)})`)
  })
})

describe('toBytes (byte sizes)', () => {
  test('numbers are bytes; strings take binary units', () => {
    assert.equal(toBytes(1, 'maxBytes'), 1)
    assert.equal(toBytes(100, 'maxBytes'), 100)
    assert.equal(toBytes('512b', 'maxBytes'), 512)
    assert.equal(toBytes('64kb', 'maxBytes'), 64 * 1024)
    assert.equal(toBytes('64mb', 'maxBytes'), 64 * 1024 * 1024)
    assert.equal(toBytes('1gb', 'maxBytes'), 1024 ** 3)
    assert.equal(toBytes('1.5kb', 'maxBytes'), 1536)
  })

  test('the result is a whole number of bytes', () => {
    assert.equal(toBytes(10.7, 'maxBytes'), 10)
    assert.ok(Number.isInteger(toBytes('0.3kb', 'maxBytes')))
  })

  test('zero, under one byte, negative, non-finite and malformed sizes throw naming the option', () => {
    // Sizes under one byte would floor to a bound of 0 bytes, which keeps nothing.
    const bad: unknown[] = [0, -1, -0.5, 0.5, 0.999, '0.5b', NaN, Infinity, '0kb', 'lots', '12tb', '64 k', '-1kb', '', null, undefined, {}, true]
    for (const value of bad) throwsInvalidOption(() => toBytes(value, 'memory.maxBytes'), 'memory.maxBytes', `toBytes(${String(value)})`)
  })
})

describe('ManualClock', () => {
  test('starts where told and moves only on advance/set', () => {
    const clock = new ManualClock(5000)
    assert.equal(clock.now(), 5000)
    assert.equal(clock.now(), 5000)
    clock.advance(250)
    assert.equal(clock.now(), 5250)
    clock.set(6000)
    assert.equal(clock.now(), 6000)
    clock.set(1000) // never backwards
    assert.equal(clock.now(), 6000)
    assert.equal(typeof new ManualClock().now(), 'number')
  })

  test('fires due timers in deadline order, each seeing its own due time', () => {
    const clock = new ManualClock(1000)
    const seen: Array<[string, number]> = []
    clock.setTimeout(() => seen.push(['c', clock.now()]), 30)
    clock.setTimeout(() => seen.push(['a', clock.now()]), 10)
    clock.setTimeout(() => seen.push(['b', clock.now()]), 20)
    clock.setTimeout(() => seen.push(['b2', clock.now()]), 20) // same deadline: scheduling order
    assert.equal(clock.pendingTimers, 4)
    clock.advance(9)
    assert.deepEqual(seen, [])
    clock.advance(1) // exactly due
    assert.deepEqual(seen, [['a', 1010]])
    clock.advance(100)
    assert.deepEqual(seen, [
      ['a', 1010],
      ['b', 1020],
      ['b2', 1020],
      ['c', 1030],
    ])
    assert.equal(clock.now(), 1110)
    assert.equal(clock.pendingTimers, 0)
  })

  test('timers scheduled by timers fire in the same advance, in time order', () => {
    const clock = new ManualClock(0)
    const seen: Array<[string, number]> = []
    clock.setTimeout(() => {
      seen.push(['outer', clock.now()])
      clock.setTimeout(() => seen.push(['inner', clock.now()]), 5) // due 15, before 'late'
      clock.setTimeout(() => seen.push(['zero', clock.now()]), 0) // due at once
    }, 10)
    clock.setTimeout(() => seen.push(['late', clock.now()]), 20)
    clock.advance(100)
    assert.deepEqual(seen, [
      ['outer', 10],
      ['zero', 10],
      ['inner', 15],
      ['late', 20],
    ])
  })

  test('a timer chain (like a periodic sweep) fires once per period', () => {
    const clock = new ManualClock(0)
    const fired: number[] = []
    const tick = (): void => {
      fired.push(clock.now())
      if (fired.length < 5) clock.setTimeout(tick, 100)
    }
    clock.setTimeout(tick, 100)
    clock.advance(1000)
    assert.deepEqual(fired, [100, 200, 300, 400, 500])
    assert.equal(clock.pendingTimers, 0)
  })

  test('timers beyond the advance stay pending', () => {
    const clock = new ManualClock(0)
    let fired = 0
    clock.setTimeout(() => fired++, 50)
    clock.advance(49)
    assert.equal(fired, 0)
    assert.equal(clock.pendingTimers, 1)
    clock.advance(1)
    assert.equal(fired, 1)
  })

  test('clearTimeout cancels; unknown and already-fired handles are ignored', () => {
    const clock = new ManualClock(0)
    const seen: string[] = []
    const a = clock.setTimeout(() => seen.push('a'), 10)
    const b = clock.setTimeout(() => seen.push('b'), 20)
    clock.setTimeout(() => clock.clearTimeout(b), 15) // a timer cancelling a later one
    clock.clearTimeout(a)
    assert.equal(clock.pendingTimers, 2)
    clock.advance(100)
    assert.equal(seen.length, 0, 'no cancelled timer fired')
    assert.equal(clock.pendingTimers, 0)
    clock.clearTimeout(a)
    clock.clearTimeout({})
    const c = clock.setTimeout(() => seen.push('c'), 1)
    clock.advance(1)
    clock.clearTimeout(c) // already fired
    assert.deepEqual(seen, ['c'])
  })

  test('negative delays fire at the current time; advance refuses negative or NaN', () => {
    const clock = new ManualClock(100)
    let at = -1
    clock.setTimeout(() => (at = clock.now()), -50)
    clock.advance(0)
    assert.equal(at, 100)
    assert.throws(() => clock.advance(-1), RangeError)
    assert.throws(() => clock.advance(NaN), RangeError)
    assert.equal(clock.now(), 100)
  })
})

describe('systemClock', () => {
  test('now() is wall-clock milliseconds and never goes backwards', () => {
    const before = Date.now()
    let last = systemClock.now()
    for (let i = 0; i < 20_000; i++) {
      const t = systemClock.now()
      assert.ok(t >= last, 'monotonic')
      last = t
    }
    // Loose bound: this checks the epoch and unit, not timing.
    assert.ok(Math.abs(systemClock.now() - before) < 60_000)
  })

  test('setTimeout fires; clearTimeout prevents firing (real timers: the point is the system clock)', async () => {
    const seen: string[] = []
    const cancelled = systemClock.setTimeout(() => seen.push('cancelled'), 1)
    systemClock.clearTimeout(cancelled)
    await new Promise<void>((resolve) => {
      systemClock.setTimeout(() => {
        seen.push('fired')
        resolve()
      }, 5)
    })
    assert.deepEqual(seen, ['fired'])
  })

  test('unref timers do not keep the process alive; default ones do', () => {
    const unref = systemClock.setTimeout(() => {}, 60_000, { unref: true }) as ReturnType<typeof setTimeout>
    const ref = systemClock.setTimeout(() => {}, 60_000) as ReturnType<typeof setTimeout>
    try {
      assert.equal(unref.hasRef(), false)
      assert.equal(ref.hasRef(), true)
    } finally {
      systemClock.clearTimeout(unref)
      systemClock.clearTimeout(ref)
    }
  })
})

describe('systemClock ticker', () => {
  // A child process per case: thread counts and wake-ups are process-wide.
  // `activeMs`: how long it is read. The ticking case reads for 2 s: at ~1,000 ticks a second it
  // clears 100 wake-ups even when a loaded machine schedules each tick several ms late.
  const probe = (ticker: boolean | undefined, activeMs: number): { activeWakeups: number; idleWakeups: number; lagAfterIdle: number } => {
    const mod = new URL('../../src/core/system-clock.js', import.meta.url).href
    const script = `
      import { readdirSync, readFileSync } from 'node:fs'
      const { createSystemClock } = await import(${JSON.stringify(mod)})
      const clock = createSystemClock(${ticker === undefined ? '' : `{ ticker: ${String(ticker)} }`})
      const wakeups = () => readdirSync('/proc/self/task').map((t) => {
        try { return Number(/voluntary_ctxt_switches:\\s+(\\d+)/.exec(readFileSync('/proc/self/task/' + t + '/status', 'utf8'))[1]) } catch { return 0 }
      }).reduce((a, b) => a + b, 0)
      await new Promise((r) => setTimeout(r, 100))
      const w0 = wakeups()
      // Read as a service with light traffic does (every 50 ms): the ticker ticks throughout.
      clock.now()
      const reads = setInterval(() => clock.now(), 50)
      await new Promise((r) => setTimeout(r, ${activeMs}))
      clearInterval(reads)
      const activeWakeups = wakeups() - w0
      for (let i = 0; i < 1e5; i++) clock.now()
      await new Promise((r) => setTimeout(r, 1600))
      const w1 = wakeups()
      await new Promise((r) => setTimeout(r, 1000))
      const idleWakeups = wakeups() - w1
      const lagAfterIdle = Date.now() - clock.now()
      console.log(JSON.stringify({ activeWakeups, idleWakeups, lagAfterIdle }))
      process.exit(0)
    `
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
    return JSON.parse(out) as { activeWakeups: number; idleWakeups: number; lagAfterIdle: number }
  }

  test('the ticker ticks while read and parks soon after the last read (an idle process is not woken 1,000 times a second), and the next read is current', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
    const r = probe(undefined, 2000)
    // Ticking: one wake-up per 1 ms tick (fewer when the machine is loaded).
    assert.ok(r.activeWakeups > 100, `the first read started a ticker: ${r.activeWakeups} wake-ups in 2 s`)
    // A ticker that never parks wakes about 1,000 times in that second.
    assert.ok(r.idleWakeups < 100, `idle wake-ups in 1 s: ${r.idleWakeups}`)
    assert.ok(Math.abs(r.lagAfterIdle) <= 2, `a read after the park is current (lag ${r.lagAfterIdle} ms)`)
  })

  test('createSystemClock({ ticker: false }) starts no ticker; a bad option is ERR_INVALID_OPTIONS', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
    const r = probe(false, 500)
    assert.ok(r.activeWakeups < 50, `no ticker: ${r.activeWakeups} wake-ups in 0.5 s`)
    assert.ok(r.idleWakeups < 50, `idle: ${r.idleWakeups}`)
    assert.ok(Math.abs(r.lagAfterIdle) <= 2, `lag ${r.lagAfterIdle} ms`)
    assert.throws(() => createSystemClock({ ticker: 'yes' as unknown as boolean }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
  })
})

describe('randomness', () => {
  test('SeededRandom: same seed, same sequence; different seed, different sequence', () => {
    const draw = (seed: number): number[] => {
      const r = new SeededRandom(seed)
      return Array.from({ length: 500 }, () => r.next())
    }
    assert.deepEqual(draw(42), draw(42))
    assert.notDeepEqual(draw(42), draw(43))
    const d = new SeededRandom()
    const e = new SeededRandom()
    assert.equal(d.next(), e.next())
  })

  test('SeededRandom values are in [0, 1) and spread out', () => {
    const r = new SeededRandom(1)
    const xs = Array.from({ length: 10_000 }, () => r.next())
    assert.ok(xs.every((x) => x >= 0 && x < 1))
    assert.ok(new Set(xs).size > 9_990)
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length
    assert.ok(Math.abs(mean - 0.5) < 0.02, `mean ${mean}`)
    const buckets = new Array<number>(10).fill(0)
    for (const x of xs) buckets[Math.floor(x * 10)]++
    for (const n of buckets) assert.ok(n > 850 && n < 1150, `decile count ${n}`)
  })

  test('mathRandom draws in [0, 1)', () => {
    for (let i = 0; i < 1000; i++) {
      const x = mathRandom.next()
      assert.ok(x >= 0 && x < 1)
    }
  })

  test('secretSeed: from an injected Random, reproducible; from the default, the CSPRNG and never Math.random', (t) => {
    assert.equal(secretSeed(new SeededRandom(5)), secretSeed(new SeededRandom(5)))
    assert.notEqual(secretSeed(new SeededRandom(5)), secretSeed(new SeededRandom(6)))
    for (const r of [new SeededRandom(5), { next: () => 0.999999999 }, { next: () => 0 }]) {
      const seed = secretSeed(r)
      assert.equal(seed, seed | 0, 'an int32')
    }
    // Math.random returning a constant: a seed drawn from it would repeat.
    const stub = t.mock.method(Math, 'random', () => 0.25)
    const seeds = new Set(Array.from({ length: 8 }, () => secretSeed(mathRandom)))
    new MemoryCache<string, number>({ maxEntries: 10, policy: 'lru' }).set('k', 1)
    assert.equal(stub.mock.callCount(), 0, 'neither secretSeed nor a default MemoryCache drew from Math.random')
    assert.equal(seeds.size, 8, 'eight draws, eight different seeds')
    for (const seed of seeds) assert.equal(seed, seed | 0)
  })
})

/** One instance of every error class, by the code it must carry. */
function sampleErrors(cause: Error): Record<string, CacheError> {
  return {
    ERR_INVALID_OPTIONS: new InvalidOptionsError('memory.maxEntries', 'expected a positive integer', { cause }),
    ERR_INVALID_KEY: new InvalidKeyError('empty key', { cause }),
    ERR_INVALID_VALUE: new InvalidValueError('undefined', { cause }),
    ERR_WAIT_TIMEOUT: new WaitTimeoutError('user:1', 5000),
    ERR_ABORTED: new AbortedError('aborted', { cause }),
    ERR_CLOSED: new ClosedError(),
    ERR_INVALID_TAG: new InvalidTagError('a::b', 'empty segment'),
    ERR_LEADER_FAILED: new LeaderFailedError('user:1', cause),
    ERR_FLIGHT_TIMEOUT: new FlightTimeoutError('user:1', 100),
    ERR_RECURSIVE_FLIGHT: new RecursiveFlightError('a', ['a', 'b', 'a']),
    ERR_FACTORY_TIMEOUT: new FactoryTimeoutError('user:1', 100),
    ERR_STORE_FULL: new StoreFullError('map full', { cause }),
    ERR_STORE_TIMEOUT: new StoreTimeoutError('redis.get', 500),
    ERR_STORE_UNAVAILABLE: new StoreUnavailableError('circuit open', { cause }),
    ERR_DATA_DIR_LOCKED: new DataDirLockedError('/var/data', 1234, 'held by pid 1234'),
    ERR_DECODE: new DecodeError('truncated', { cause }),
    ERR_DECRYPT: new DecryptError('bad tag', { cause }),
    ERR_VALUE_TOO_LARGE: new ValueTooLargeError(20, 10),
    ERR_LOCK_LOST: new LockLostError('user:1'),
    ERR_BUS_UNAVAILABLE: new BusUnavailableError('broker down', { cause }),
    ERR_FEED_UNAVAILABLE: new FeedUnavailableError('postgres feed: cannot LISTEN', { cause }),
    ERR_CLOCK_DRIFT: new ClockDriftError(2 ** 50, 2 ** 49),
    ERR_PEER_UNREACHABLE: new PeerUnreachableError('n2', 'n2 is down', { cause }),
    ERR_PEER_AUTH: new PeerAuthError('n2', 'n2 failed the cluster handshake', { cause }),
    ERR_MISSING_DEPENDENCY: new MissingDependencyError('ioredis', 'stratacache/redis', { cause }),
    ERR_BAD_REQUEST: new BadRequestError('bad JSON', { cause }),
    ERR_UNAUTHORIZED: new UnauthorizedError(),
    ERR_FORBIDDEN: new ForbiddenError('cross-site'),
    ERR_NOT_FOUND: new NotFoundError('no entry'),
    ERR_METHOD_NOT_ALLOWED: new MethodNotAllowedError('PATCH', ['GET', 'PUT']),
    ERR_PRECONDITION_FAILED: new PreconditionFailedError('version 3 != 4'),
    ERR_UNSUPPORTED_MEDIA_TYPE: new UnsupportedMediaTypeError('text/plain'),
    ERR_TOO_LARGE: new TooLargeError('body over 16 MB'),
    ERR_RATE_LIMITED: new RateLimitedError(1),
    ERR_BUSY: new BusyError(1),
    ERR_INTERNAL: new InternalError('bug', { cause }),
    ERR_CLUSTER_PASSIVE: new ClusterPassiveError(),
    ERR_ACK_TIMEOUT: new AckTimeoutError(1, 3, 'all'),
    ERR_STALE_READ: new StaleReadError('user:1', 200, 100),
    ERR_REQUEST_TIMEOUT: new RequestTimeoutError(2000, { node: 'http://127.0.0.1:7700' }),
    ERR_NODE_UNREACHABLE: new NodeUnreachableError('refused', { cause, node: 'http://127.0.0.1:7700' }),
    ERR_BAD_RESPONSE: new BadResponseError('not JSON', { cause, status: 502 }),
  }
}

describe('errors', () => {
  const codes = Object.keys(ERROR_CODES) as ErrorCode[]

  test('codes are ERR_ constants with a description, and each maps to its own class', () => {
    assert.ok(codes.length > 0)
    for (const code of codes) {
      assert.match(code, /^ERR_[A-Z_]+$/)
      assert.equal(typeof ERROR_CODES[code], 'string')
      assert.ok(ERROR_CODES[code].length > 10, `${code} has a description`)
    }
    assert.deepEqual(Object.keys(ERROR_CLASSES).sort(), [...codes].sort(), 'ERROR_CLASSES covers exactly ERROR_CODES')
    const classes = codes.map((c) => ERROR_CLASSES[c])
    assert.equal(new Set(classes).size, classes.length, 'one class per code')
  })

  test('every code is exported from the package with a class whose instances carry that code', () => {
    const exported = api as unknown as Record<string, unknown>
    const samples = sampleErrors(new Error('root'))
    assert.deepEqual(Object.keys(samples).sort(), [...codes].sort(), 'the test has a sample for every code')
    for (const code of codes) {
      const cls = ERROR_CLASSES[code]
      assert.equal(exported[cls.name], cls, `${cls.name} (for ${code}) is exported from src/index.ts`)
      assert.ok(cls.prototype instanceof CacheError, `${cls.name} extends CacheError`)
      const err = samples[code]
      assert.ok(err instanceof cls, `sample for ${code} is a ${cls.name}`)
      assert.equal(err.code, code)
      assert.equal(err.constructor, cls)
    }
    assert.equal(exported.CacheError, CacheError)
    assert.equal(exported.ERROR_CODES, ERROR_CODES)
    assert.equal(exported.ERROR_CLASSES, ERROR_CLASSES)
  })

  test('errors are real Errors: name, message, stack, instanceof', () => {
    for (const err of Object.values(sampleErrors(new Error('root')))) {
      assert.ok(err instanceof Error)
      assert.ok(err instanceof CacheError)
      assert.equal(err.name, err.constructor.name)
      assert.ok(err.message.length > 0)
      assert.ok(typeof err.stack === 'string' && err.stack.includes(err.constructor.name))
      assert.ok(String(err).startsWith(`${err.constructor.name}: `))
    }
  })

  test('cause is carried when given and absent when not', () => {
    const root = new Error('root')
    const samples = sampleErrors(root)
    assert.equal(samples.ERR_INVALID_OPTIONS.cause, root)
    assert.equal(samples.ERR_ABORTED.cause, root)
    assert.equal(samples.ERR_LEADER_FAILED.cause, root)
    const plain = new InvalidKeyError('no cause')
    assert.equal(plain.cause, undefined)
    assert.equal('cause' in plain, false)
    const base = new CacheError('ERR_CLOSED', 'custom', { cause: 'why' })
    assert.equal(base.cause, 'why')
    assert.equal(base.code, 'ERR_CLOSED')
    assert.equal(base.name, 'CacheError')
  })

  test('errors keep their key/option/timeout details', () => {
    const opt = new InvalidOptionsError('memory.ttl', 'bad')
    assert.equal(opt.option, 'memory.ttl')
    assert.match(opt.message, /memory\.ttl/)
    const wait = new WaitTimeoutError('user:7', 250)
    assert.equal(wait.key, 'user:7')
    assert.equal(wait.timeoutMs, 250)
    assert.match(wait.message, /user:7/)
    const rec = new RecursiveFlightError('a', ['a', 'b', 'a'])
    assert.deepEqual(rec.path, ['a', 'b', 'a'])
  })

  test('isCacheError narrows by class and code', () => {
    const err: unknown = new WaitTimeoutError('k', 1)
    assert.equal(isCacheError(err), true)
    assert.equal(isCacheError(err, 'ERR_WAIT_TIMEOUT'), true)
    assert.equal(isCacheError(err, 'ERR_CLOSED'), false)
    assert.equal(isCacheError(new Error('x')), false)
    assert.equal(isCacheError({ code: 'ERR_CLOSED', message: 'fake' }), false)
    assert.equal(isCacheError(undefined), false)
  })

  test('every code (and its class) appears in the error table (docs/reference/errors.md)', () => {
    // dist/test/unit/core.test.js -> repo root
    const readme = readFileSync(new URL('../../../docs/reference/errors.md', import.meta.url), 'utf8')
    const rows = readme.split('\n').filter((line) => line.trimStart().startsWith('|'))
    for (const code of codes) {
      // The error table's row for a code starts with the code in its first cell.
      const row = rows.find((line) => new RegExp(`^\\s*\\|\\s*\`${code}\`\\s*\\|`).test(line))
      assert.ok(row !== undefined, `docs/reference/errors.md has a row for ${code}`)
      assert.ok(row.includes(ERROR_CLASSES[code].name), `the row for ${code} names ${ERROR_CLASSES[code].name}`)
    }
  })
})
