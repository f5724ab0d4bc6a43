/**
 * The facade over a real redis-server that the test starts, kills, restarts and freezes.
 * Real time here (a real server), so timeouts are short and every wait is bounded.
 */
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { createCache, isCacheError, type CacheErrorEvent } from '../../src/index.js'
import { redisStore } from '../../src/store/redis-store.js'
import { freePort, startRedisServer, type RedisServer } from '../support/redis-server.js'
import { stallMeter } from '../support/stall-meter.js'
import { pausedHolder, type HolderRival } from '../support/fenced-child.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))


/** Resolves with the elapsed ms of `p`, rejecting if it takes longer than `limitMs` (a hang). */
async function timed<T>(p: Promise<T>, limitMs: number): Promise<{ value: T; ms: number }> {
  const start = performance.now()
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${limitMs} ms`)), limitMs)
  })
  try {
    const value = await Promise.race([p, limit])
    return { value, ms: performance.now() - start }
  } finally {
    clearTimeout(timer)
  }
}

describe('facade over a real Redis: faults', () => {
  let server: RedisServer
  before(async () => {
    server = await startRedisServer()
  })
  after(async () => {
    await server?.stop()
  })

  test('frozen (SIGSTOP) under load: every call answers within its timeouts, the breaker opens, then closes after thaw', async () => {
    const store = redisStore({ url: server.url, prefix: 'freeze:' })
    // lock: 'local': this test is about the unordered write queue, which replays sets made while
    // Redis was frozen (under the distributed lock, now the default, they are queued as deletes).
    const cache = createCache<string>({ store, lock: 'local', l2: { timeout: '150ms', retry: { attempts: 0 }, breaker: { failureThreshold: 3, openFor: '500ms', successThreshold: 1 } } })
    const errors: CacheErrorEvent[] = []
    cache.on('error', (e) => errors.push(e))
    try {
      await cache.set('warm', 'w')
      server.freeze()
      // 40 callers on distinct keys while the server is frozen: the factory answers.
      const meter = stallMeter()
      const { value, ms } = await timed(Promise.all(Array.from({ length: 40 }, (_, i) => cache.getOrSet(`k${i}`, () => `v${i}`))), 5_000)
      assert.deepEqual(value, Array.from({ length: 40 }, (_, i) => `v${i}`))
      meter.stop()
      assert.ok(ms < 1_000 + meter.stalledMs, `40 callers took ${ms.toFixed(0)} ms with a frozen server (${meter.stalledMs.toFixed(0)} ms of it this process stalled)`)
      assert.equal(cache.stats().l2?.breaker.state, 'open')
      assert.ok(errors.some((e) => isCacheError(e.error, 'ERR_STORE_TIMEOUT')))
      // Open: no wait at all (not the 150 ms timeout).
      const fastMeter = stallMeter()
      const fast = await timed(cache.getOrSet('fast', () => 'f'), 1_000)
      fastMeter.stop()
      assert.ok(fast.ms < 50 + fastMeter.stalledMs, `open breaker answered in ${fast.ms.toFixed(1)} ms (${fastMeter.stalledMs.toFixed(0)} ms of it this process stalled)`)
      server.thaw()
      // The breaker probes after 500 ms; queued writes land.
      const deadline = performance.now() + 10_000
      while ((cache.stats().l2?.queued ?? 1) > 0 && performance.now() < deadline) await sleep(50)
      assert.equal(cache.stats().l2?.queued, 0)
      assert.equal(cache.stats().l2?.breaker.state, 'closed')
      const reader = createCache<string>({ store })
      assert.equal(await reader.get('k7'), 'v7')
      assert.equal(await reader.get('fast'), 'f')
      await reader.close()
    } finally {
      server.thaw()
      await cache.close()
      await store.close()
    }
  })

  test('killed under load, then restarted: every call is answered, no error escapes, writes made while down land after the restart', async () => {
    const store = redisStore({ url: server.url, prefix: 'kill:' })
    // lock: 'local': writes made while down land after the restart only in the unordered queue
    // (under the distributed lock, the default, a set made while down is queued as a delete).
    const cache = createCache<string>({ store, lock: 'local', l2: { timeout: '200ms', breaker: { failureThreshold: 3, openFor: '300ms', successThreshold: 1 } } })
    try {
      await cache.set('doomed', 'old')
      let stop = false
      let served = 0
      // Load: callers keep going through the kill and the restart.
      const load = (async () => {
        for (let i = 0; !stop; i++) {
          const v = await cache.getOrSet(`load${i % 50}`, () => `x${i % 50}`)
          assert.equal(v, `x${i % 50}`)
          served++
          if (i % 20 === 0) await sleep(1)
        }
      })()
      await sleep(100)
      await server.kill()
      await cache.delete('doomed')
      await cache.set('written-while-down', 'yes')
      await sleep(300)
      await server.restart()
      const deadline = performance.now() + 10_000
      while ((cache.stats().l2?.queued ?? 1) > 0 && performance.now() < deadline) await sleep(50)
      stop = true
      await timed(load, 5_000)
      assert.ok(served > 0)
      assert.equal(cache.stats().l2?.queued, 0, 'queued writes landed')
      const reader = createCache<string>({ store })
      assert.equal(await reader.get('written-while-down'), 'yes')
      await reader.close()
    } finally {
      await cache.close()
      await store.close()
    }
  })

  test('a delete queued while Redis is down is replayed, so Redis never keeps the deleted value', async () => {
    const store = redisStore({ url: server.url, prefix: 'del:' })
    const cache = createCache<string>({ store, l2: { timeout: '150ms', breaker: { failureThreshold: 2, openFor: '200ms', successThreshold: 1 } } })
    try {
      await cache.set('k', 'v1')
      server.freeze()
      await timed(cache.delete('k'), 2_000)
      assert.equal(cache.stats().l2?.queued, 1)
      server.thaw()
      const deadline = performance.now() + 10_000
      while ((cache.stats().l2?.queued ?? 1) > 0 && performance.now() < deadline) await sleep(50)
      const reader = createCache<string>({ store })
      assert.equal(await reader.get('k'), undefined)
      await reader.close()
    } finally {
      server.thaw()
      await cache.close()
      await store.close()
    }
  })
})

describe('distributed lock across real processes', () => {
  let server: RedisServer
  before(async () => {
    server = await startRedisServer()
  })
  after(async () => {
    await server?.stop()
  })

  const stampedeOf4 = (args: readonly string[]) => async () => {
    const worker = fileURLToPath(new URL('./fixtures/lock-worker.js', import.meta.url))
    const children = Array.from({ length: 4 }, () => fork(worker, [server.url, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
    try {
      await timed(Promise.all(children.map((c) => new Promise<void>((resolve) => c.once('message', () => resolve())))), 20_000)
      const reports = children.map((c) => new Promise<{ calls: number; values: string[]; degraded: number }>((resolve) => c.once('message', (m) => resolve(m as { calls: number; values: string[]; degraded: number }))))
      for (const c of children) c.send('go')
      const { value } = await timed(Promise.all(reports), 30_000)
      const calls = value.reduce((n, r) => n + r.calls, 0)
      assert.equal(calls, 1, `factory calls across 4 processes: ${value.map((r) => r.calls).join(', ')}`)
      const values = new Set(value.flatMap((r) => r.values))
      assert.equal(values.size, 1, 'every caller in every process got the same value')
      assert.equal(value.reduce((n, r) => n + r.degraded, 0), 0)
    } finally {
      for (const c of children) if (c.exitCode === null) c.kill()
    }
  }

  test('4 processes x 250 callers on one key: exactly one factory call in total', stampedeOf4(['hot', '250', '300']))

  test('4 processes x 250 callers with default options (only the store): one factory call in total (the lock is distributed by default)', stampedeOf4(['hot-defaults', '250', '300', 'defaults']))

  /**
   * The audit's scenario (test/support/fenced-child.ts): whether B got there by the lease
   * running out (it must notice that without a release message) or by giving up its wait
   * while A still held the lease, A's late write must be refused.
   */
  const holder = (leaseMs: number, waitMs: number, bDoes: HolderRival = 'compute') => {
    const prefix = `fenced-${leaseMs}-${waitMs}-${bDoes}:`
    return pausedHolder({ args: ['redis', server.url, prefix, String(leaseMs), String(waitMs)], reader: redisStore({ url: server.url, prefix }), leaseMs, bDoes, replyTimeoutMs: 15_000 })
  }

  test('a holder paused past its lease: the waiter notices the lease end (before lock.wait), takes the lock, and the holder\'s late write is refused', async () => {
    // Lease 1 s, wait 2 s: the audit's timings.
    const { a, b, bMs } = await holder(1_000, 2_000)
    assert.equal(b.degraded, 0, `B took the lock when the lease ran out rather than at its wait timeout (answered after ${bMs.toFixed(0)} ms)`)
    assert.equal(a.fencedRefused, 1)
    assert.ok(a.errors.includes('ERR_LOCK_LOST'), `A is told (errors: ${a.errors.join(', ')})`)
  })

  test('a waiter that gives up while the paused holder still has its lease writes fenced: the holder\'s write after it is refused', async () => {
    // Lease 3 s, wait 0.5 s: B degrades; A resumes inside its lease and writes after B.
    const { a, b } = await holder(3_000, 500)
    assert.equal(b.degraded, 1)
    assert.equal(a.fencedRefused, 1)
    assert.ok(a.errors.includes('ERR_LOCK_LOST'), `A is told (errors: ${a.errors.join(', ')})`)
  })

  test('an explicit set made while the holder is paused (past its lease) is not overwritten by the holder\'s late write', async () => {
    const { a } = await holder(1_000, 2_000, 'set')
    assert.equal(a.fencedRefused, 1)
    assert.ok(a.errors.includes('ERR_LOCK_LOST'), `A is told (errors: ${a.errors.join(', ')})`)
  })

  test('a delete made while the holder is paused (past its lease) is not undone: the holder cannot write the key back', async () => {
    const { a } = await holder(1_000, 2_000, 'delete')
    assert.equal(a.fencedRefused, 1)
    assert.ok(a.errors.includes('ERR_LOCK_LOST'), `A is told (errors: ${a.errors.join(', ')})`)
  })
})

describe('miss latency with Redis down, defaults (README: one L2 read timeout plus one write timeout)', () => {
  let server: RedisServer
  before(async () => {
    server = await startRedisServer()
  })
  after(async () => {
    await server?.stop()
  })

  /** The first miss after `fault`, with default l2 options (timeout 500 ms, 2 read retries). */
  async function firstMiss(prefix: string, fault: () => Promise<void> | void): Promise<{ ms: number; stalledMs: number; errors: CacheErrorEvent[] }> {
    const store = redisStore({ url: server.url, prefix })
    const cache = createCache<string>({ store })
    const errors: CacheErrorEvent[] = []
    cache.on('error', (e) => errors.push(e))
    try {
      await cache.set('warm', 'w')
      await fault()
      const meter = stallMeter()
      const { value, ms } = await timed(cache.getOrSet('missing', () => 'computed'), 10_000)
      meter.stop()
      assert.equal(value, 'computed')
      return { ms, stalledMs: meter.stalledMs, errors }
    } finally {
      server.thaw()
      await cache.close()
      await store.close()
    }
  }

  // 1000 ms = read timeout + write timeout (defaults); 60 ms of timer and socket slack.
  // (Before reads had one deadline across retries: 1270-1700 ms with Redis killed.)
  const BOUND_MS = 1_000 + 60

  test('killed (SIGKILL): the first getOrSet miss stays within one read timeout plus one write timeout', async (t) => {
    const r = await firstMiss('killed:', () => server.kill())
    await server.restart()
    t.diagnostic(`miss with Redis killed: ${r.ms.toFixed(0)} ms (stalled ${r.stalledMs.toFixed(0)} ms)`)
    assert.ok(r.ms <= BOUND_MS + r.stalledMs, `the miss took ${r.ms.toFixed(0)} ms with Redis killed (${r.stalledMs.toFixed(0)} ms of it this process stalled)`)
    assert.ok(r.errors.length > 0, 'the failures were reported')
  })

  test('frozen (SIGSTOP): the first getOrSet miss stays within one read timeout plus one write timeout', async (t) => {
    const r = await firstMiss('frozen:', () => server.freeze())
    t.diagnostic(`miss with Redis frozen: ${r.ms.toFixed(0)} ms (stalled ${r.stalledMs.toFixed(0)} ms)`)
    assert.ok(r.ms <= BOUND_MS + r.stalledMs, `the miss took ${r.ms.toFixed(0)} ms with Redis frozen (${r.stalledMs.toFixed(0)} ms of it this process stalled)`)
    assert.ok(r.errors.some((e) => isCacheError(e.error, 'ERR_STORE_TIMEOUT')))
  })
})

describe('cache.close() closes the store it was given', () => {
  let server: RedisServer
  before(async () => {
    server = await startRedisServer()
  })
  after(async () => {
    await server?.stop()
  })

  /** Runs the close worker; resolves with its exit code and output, or kills it after `limitMs`. */
  function runWorker(mode: string): Promise<{ code: number | null; out: string; hung: boolean }> {
    const worker = fileURLToPath(new URL('./fixtures/close-worker.js', import.meta.url))
    const child = fork(worker, [server.url, mode], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
    let out = ''
    child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()))
    return new Promise((resolve) => {
      let hung = false
      const timer = setTimeout(() => {
        hung = true
        child.kill('SIGKILL')
      }, 10_000)
      child.once('exit', (code) => {
        clearTimeout(timer)
        resolve({ code, out, hung })
      })
    })
  }

  test('a process with a Redis store that closes its cache exits by itself', async () => {
    const r = await runWorker('owned')
    assert.equal(r.hung, false, `the process did not exit within 10 s of closing its cache (output: ${JSON.stringify(r.out)})`)
    assert.equal(r.code, 0)
    assert.match(r.out, /closed after computed/)
  })

  test('closeStore: false leaves the store open for its owner, who closes it', async () => {
    const r = await runWorker('shared')
    assert.equal(r.hung, false, `the process did not exit (output: ${JSON.stringify(r.out)})`)
    assert.equal(r.code, 0)
    assert.match(r.out, /store still open: true/)
  })
})

describe('an unreachable Redis is not silent', () => {
  /** Process warnings with `code` emitted while `fn` runs (and a few turns after). */
  async function warningsDuring(code: string, fn: () => Promise<void>): Promise<Error[]> {
    const seen: Error[] = []
    const onWarning = (w: Error & { code?: string }): void => {
      if (w.code === code) seen.push(w)
    }
    process.on('warning', onWarning)
    try {
      await fn()
      await sleep(20)
    } finally {
      process.off('warning', onWarning)
    }
    return seen
  }

  const chain = (e: unknown): string => {
    const parts: string[] = []
    for (let x: unknown = e; x instanceof Error && parts.length < 5; x = x.cause) parts.push(x.message)
    return parts.join(' <- ')
  }

  test('with no error listener, one warning names the cause (ECONNREFUSED) and the address', async () => {
    const port = await freePort()
    const store = redisStore({ url: `redis://127.0.0.1:${port}` })
    const cache = createCache<string>({ store, l2: { timeout: '300ms' } })
    try {
      const warnings = await warningsDuring('STRATACACHE_L2_ERROR', async () => {
        for (let i = 0; i < 3; i++) assert.equal(await timed(cache.getOrSet(`k${i}`, () => 'v'), 5_000).then((r) => r.value), 'v')
      })
      assert.equal(warnings.length, 1, `warnings: ${warnings.map((w) => w.message).join(' | ')}`)
      assert.match(warnings[0]?.message ?? '', /ECONNREFUSED/)
      assert.match(warnings[0]?.message ?? '', new RegExp(`127\\.0\\.0\\.1:${port}`))
    } finally {
      await cache.close()
    }
  })

  test('the typed error on the error channel names the cause and the address; a listener means no warning', async () => {
    const port = await freePort()
    const store = redisStore({ url: `redis://127.0.0.1:${port}` })
    const cache = createCache<string>({ store, l2: { timeout: '300ms' } })
    const errors: CacheErrorEvent[] = []
    cache.on('error', (e) => errors.push(e))
    try {
      const warnings = await warningsDuring('STRATACACHE_L2_ERROR', async () => {
        assert.equal((await timed(cache.getOrSet('k', () => 'v'), 5_000)).value, 'v')
      })
      assert.equal(warnings.length, 0)
      const failure = errors.find((e) => isCacheError(e.error, 'ERR_STORE_UNAVAILABLE'))
      assert.ok(failure !== undefined, `errors: ${errors.map((e) => chain(e.error)).join(' | ')}`)
      assert.match(failure.error.message, /ECONNREFUSED/)
      assert.match(failure.error.message, new RegExp(`127\\.0\\.0\\.1:${port}`))
    } finally {
      await cache.close()
    }
  })
})

describe('without a bus, two caches on one Redis: the stale window is l2.l1MaxAge', () => {
  let server: RedisServer
  before(async () => {
    server = await startRedisServer()
  })
  after(async () => {
    await server?.stop()
  })

  test('a tag invalidated by the other cache stops being served from L1 within l1MaxAge (TTL 1 h)', async (t) => {
    // Two stores, two connections: two processes as far as Redis can tell.
    const a = createCache<string>({ store: redisStore({ url: server.url, prefix: 'trust:' }), l2: { l1MaxAge: '400ms' } })
    const b = createCache<string>({ store: redisStore({ url: server.url, prefix: 'trust:' }) })
    try {
      // Connected first, so that the window measured is the cache's, not the connection's.
      await a.get('warm')
      await b.get('warm')
      const stored = performance.now()
      assert.equal(await a.getOrSet('user:1', () => 'old', { ttl: '1h', tags: ['org:1'] }), 'old')
      await sleep(5)
      await b.invalidateTags(['org:1'])
      const meter = stallMeter()
      let served: string | undefined = 'old'
      while (served !== undefined && performance.now() - stored < 5_000) {
        served = await a.get('user:1')
        if (served !== undefined) await sleep(10)
      }
      meter.stop()
      // Allowed past 400 ms: a poll step (10 ms), the re-read from L2 and its tag check, and
      // timer slack: on a loaded machine the clock's ticker thread runs late too (measured
      // 417-465 ms at load 13 on 2 cores). Without the cap it would be the TTL (1 h).
      const window = performance.now() - stored
      t.diagnostic(`A served the invalidated value for ${window.toFixed(0)} ms (l1MaxAge 400 ms)`)
      assert.equal(served, undefined, 'A still served the invalidated value after 5 s')
      assert.ok(window <= 400 + 200 + meter.stalledMs, `A served it for ${window.toFixed(0)} ms (${meter.stalledMs.toFixed(0)} ms of it this process stalled)`)
      assert.equal(await a.getOrSet('user:1', () => 'new', { ttl: '1h', tags: ['org:1'] }), 'new')
      assert.equal(await b.get('user:1'), 'new')
    } finally {
      await a.close()
      await b.close()
    }
  })
})
