import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { createClient, errorFromResponse, isNodeAnswer, normalizeNode, type ClientOptions } from '../../src/client/client.js'
import { RetryPolicy } from '../../src/client/retry-policy.js'
import { isNotSent } from '../../src/client/transport.js'
import { AckTimeoutError, InvalidOptionsError, isCacheError, type ErrorCode } from '../../src/core/errors.js'
import { ManualClock } from '../../src/core/manual-clock.js'
import { SeededRandom } from '../../src/core/random.js'
import { drive, tick } from '../support/drive.js'
import { ACK_DEADLINE_MS } from '../../src/protocol/wire.js'
import { DEFAULT_DEADLINE_MS } from '../../src/cluster/replication/replication.js'
import { fixedRandom, NetworkFailure, respond, ScriptedTransport, wireError, type Handler } from '../support/scripted-transport.js'

const A = 'http://a:1'
const B = 'http://b:2'
const C = 'http://c:3'

const entry = (value = 'v', version = 7) => respond(200, value, { etag: `"${version}"`, 'x-ttl': '60' })
const putOk = (version = 1) => respond(200, { version, ttl: 60 })

function setup(handler: Handler, options: Partial<ClientOptions> = {}) {
  const clock = new ManualClock(0)
  const transport = new ScriptedTransport(clock, handler)
  // random 0.5 → jitter factor exactly 1: delays are 100, 200, 400 ms.
  const client = createClient({ nodes: [A], clock, random: fixedRandom(0.5), transport, ...options })
  return { clock, transport, client }
}

function assertCode(err: unknown, code: ErrorCode): void {
  assert.ok(isCacheError(err, code), `expected ${code}, got ${err instanceof Error ? `${(err as { code?: string }).code} ${err.message}` : String(err)}`)
}

describe('retry policy numbers', () => {
  test('delays double from 100 ms and cap at 5 s; jitter stays within ±25 % and never above the cap', () => {
    const mid = new RetryPolicy({ retries: 3, baseDelay: 100, maxDelay: 5000, jitter: 0.25 }, fixedRandom(0.5))
    assert.deepEqual([0, 1, 2, 3, 6, 20].map((n) => mid.delay(n)), [100, 200, 400, 800, 5000, 5000])
    const low = new RetryPolicy({ retries: 3, baseDelay: 100, maxDelay: 5000, jitter: 0.25 }, fixedRandom(0))
    assert.equal(low.delay(0), 75)
    assert.equal(low.delay(10), 3750)
    const random = new SeededRandom(11)
    const policy = new RetryPolicy({ retries: 3, baseDelay: 100, maxDelay: 5000, jitter: 0.25 }, random)
    for (let i = 0; i < 2000; i++) {
      const n = i % 8
      const raw = Math.min(5000, 100 * 2 ** n)
      const d = policy.delay(n)
      assert.ok(d >= raw * 0.75 && d <= Math.min(5000, raw * 1.25), `delay(${n}) = ${d} outside [${raw * 0.75}, ${Math.min(5000, raw * 1.25)}]`)
    }
  })

  test('busy delay honours Retry-After, stretched by at most +jitter, never shortened', () => {
    const policy = new RetryPolicy({ retries: 3, baseDelay: 100, maxDelay: 5000, jitter: 0.25 }, new SeededRandom(3))
    for (let i = 0; i < 200; i++) {
      const d = policy.busyDelay(i, 2)
      assert.ok(d >= 2000 && d <= 2500, `busyDelay = ${d}`)
    }
    assert.equal(new RetryPolicy({ retries: 3, baseDelay: 100, maxDelay: 5000, jitter: 0.25 }, fixedRandom(0.5)).busyDelay(2, undefined), 400)
  })

  test('network errors that prove the request was never sent', () => {
    assert.ok(isNotSent(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })))
    assert.ok(isNotSent(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'UND_ERR_CONNECT_TIMEOUT' }) })))
    assert.ok(!isNotSent(Object.assign(new Error('x'), { code: 'ECONNRESET' })))
    assert.ok(!isNotSent(Object.assign(new Error('x'), { code: 'UND_ERR_SOCKET' })))
    assert.ok(!isNotSent('nope'))
  })
})

describe('client retries on a ManualClock', () => {
  test('a refused node is retried 3 times at 100, 200, 400 ms, then ERR_NODE_UNREACHABLE', async () => {
    const { clock, transport, client } = setup(() => new NetworkFailure('ECONNREFUSED'), { eject: { after: 100 } })
    const r = await drive(clock, client.get('k'), { step: 1 })
    assert.equal(r.ok, false)
    assertCode(r.error, 'ERR_NODE_UNREACHABLE')
    assert.deepEqual(transport.requests.map((q) => q.at), [0, 100, 300, 700])
    await client.close()
  })

  test('jittered retries stay within ±25 % of the schedule', async () => {
    const { clock, transport, client } = setup(() => new NetworkFailure('ECONNREFUSED'), { eject: { after: 100 }, random: new SeededRandom(5) })
    await drive(clock, client.get('k'), { step: 1 })
    const at = transport.requests.map((q) => q.at)
    assert.equal(at.length, 4)
    const gaps = at.slice(1).map((t, i) => t - at[i])
    ;[100, 200, 400].forEach((raw, i) => assert.ok(gaps[i] >= raw * 0.75 - 1 && gaps[i] <= raw * 1.25 + 1, `gap ${i} = ${gaps[i]}`))
    await client.close()
  })

  test('a failure then success resolves with the value after one backoff', async () => {
    let n = 0
    const { clock, transport, client } = setup(() => (n++ === 0 ? new NetworkFailure('ECONNRESET') : entry('hello', 3)))
    const r = await drive(clock, client.get('k'), { step: 1 })
    assert.equal(r.ok, true)
    assert.equal(r.value?.value.toString(), 'hello')
    assert.equal(r.value?.version, 3)
    assert.equal(r.value?.ttlMs, 60_000)
    assert.deepEqual(transport.requests.map((q) => q.at), [0, 100])
    await client.close()
  })

  test('503 backs off on Retry-After without spending the retry budget', async () => {
    let n = 0
    // 6 busy answers (more than 3 retries), then success.
    const { clock, transport, client } = setup(() => (n++ < 6 ? wireError(503, 'ERR_BUSY', { 'retry-after': '1' }) : entry('ok')))
    const r = await drive(clock, client.get('k'), { step: 10 })
    assert.equal(r.ok, true, String(r.error))
    assert.equal(transport.requests.length, 7)
    const at = transport.requests.map((q) => q.at)
    for (let i = 1; i < at.length; i++) assert.ok(at[i] - at[i - 1] >= 1000 && at[i] - at[i - 1] <= 1260, `busy wait ${at[i] - at[i - 1]}`)
    await client.close()
  })

  test('a node that stays busy fails the call with ERR_BUSY within retry.maxElapsed, never hangs', async () => {
    const { clock, transport, client } = setup(() => wireError(503, 'ERR_BUSY', { 'retry-after': '1' }), { retry: { maxElapsed: '4s' } })
    const r = await drive(clock, client.get('k'), { step: 10 })
    assertCode(r.error, 'ERR_BUSY')
    assert.ok(r.at <= 4000, `gave up at ${r.at}`)
    assert.ok(transport.requests.length >= 3 && transport.requests.length <= 4)
    await client.close()
  })

  test('429 waits like 503 and ends in ERR_RATE_LIMITED; a 503 without body is busy too', async () => {
    const { clock, client } = setup(() => respond(429, '', { 'retry-after': '2' }), { retry: { maxElapsed: '3s' } })
    const r = await drive(clock, client.get('k'), { step: 10 })
    assertCode(r.error, 'ERR_RATE_LIMITED')
    await client.close()
    let n = 0
    const second = setup(() => (n++ < 2 ? respond(503, '') : entry('x')))
    const r2 = await drive(second.clock, second.client.get('k'), { step: 5 })
    assert.equal(r2.ok, true)
    // No Retry-After: the exponential schedule.
    assert.deepEqual(second.transport.requests.map((q) => q.at), [0, 100, 300])
    await second.client.close()
  })

  test('a Retry-After of 0 (a proxy\'s; a node sends at least 1) waits the backoff, not nothing: no burst of requests at a busy node', async () => {
    const { clock, transport, client } = setup(() => respond(429, '', { 'retry-after': '0' }), { retry: { maxElapsed: '2s' } })
    const r = await drive(clock, client.set('k', 'v'), { step: 5 })
    assertCode(r.error, 'ERR_RATE_LIMITED')
    // 100, 200, 400, 800 ms: 5 requests in 2 s (it was one request per tick, hundreds).
    assert.deepEqual(transport.requests.map((q) => q.at), [0, 100, 300, 700, 1500])
    await client.close()
    assert.equal(new RetryPolicy({ retries: 3, baseDelay: 100, maxDelay: 5000, jitter: 0.25 }, fixedRandom(0.5)).busyDelay(2, 0), 400)
  })

  test('retry: false makes one attempt; a busy answer fails at once', async () => {
    const { clock, transport, client } = setup(() => wireError(503, 'ERR_BUSY', { 'retry-after': '1' }), { retry: false })
    const r = await drive(clock, client.get('k'))
    assertCode(r.error, 'ERR_BUSY')
    assert.equal(transport.requests.length, 1)
    await client.close()
  })

  test('a timed-out plain set is NOT retried (it may have landed)', async () => {
    const { clock, transport, client } = setup(() => 'hang', { timeout: 500 })
    const r = await drive(clock, client.set('k', 'v'), { step: 5 })
    assertCode(r.error, 'ERR_REQUEST_TIMEOUT')
    assert.equal(transport.requests.length, 1)
    assert.ok(r.at >= 500 && r.at <= 510)
    await client.close()
  })

  test("ifVersion: '*' does not make a set idempotent (it would match again after landing)", async () => {
    const { clock, transport, client } = setup(() => 'hang', { timeout: 300 })
    assertCode((await drive(clock, client.set('k', 'v', { ifVersion: '*' }), { step: 5 })).error, 'ERR_REQUEST_TIMEOUT')
    assert.equal(transport.requests.length, 1)
    await client.close()
  })

  test('a reset during a plain set or mset is not retried either', async () => {
    const { clock, transport, client } = setup(() => new NetworkFailure('ECONNRESET'))
    assertCode((await drive(clock, client.set('k', 'v'))).error, 'ERR_NODE_UNREACHABLE')
    assertCode((await drive(clock, client.mset([{ key: 'k', value: 'v' }]))).error, 'ERR_NODE_UNREACHABLE')
    assert.equal(transport.requests.length, 2)
    await client.close()
  })

  test('a refused connection is retried even for a plain set (nothing was sent)', async () => {
    let n = 0
    const { clock, transport, client } = setup(() => (n++ < 2 ? new NetworkFailure('ECONNREFUSED') : putOk(9)))
    const r = await drive(clock, client.set('k', 'v'), { step: 1 })
    assert.deepEqual(r.value, { version: 9, ttlMs: 60_000 })
    assert.equal(transport.requests.length, 3)
    await client.close()
  })

  test('a timed-out set with ifVersion, a get, a delete and idempotent: true are retried', async () => {
    for (const call of ['setIf', 'get', 'delete', 'setIdem', 'msetIdem'] as const) {
      let n = 0
      const { clock, transport, client } = setup(() => {
        if (n++ === 0) return 'hang'
        if (call === 'get') return entry()
        if (call === 'delete') return respond(200, { deleted: true })
        if (call === 'msetIdem') return respond(200, { versions: [4] })
        return putOk(4)
      }, { timeout: 300 })
      const p =
        call === 'setIf' ? client.set('k', 'v', { ifVersion: 3 })
        : call === 'get' ? client.get('k')
        : call === 'delete' ? client.delete('k')
        : call === 'setIdem' ? client.set('k', 'v', { idempotent: true })
        : client.mset([{ key: 'k', value: 'v' }], { idempotent: true })
      const r = await drive(clock, p as Promise<unknown>, { step: 5 })
      assert.equal(r.ok, true, `${call}: ${String(r.error)}`)
      assert.equal(transport.requests.length, 2, call)
      if (call === 'setIf') assert.equal(transport.requests[0].headers['if-match'], '"3"')
      await client.close()
    }
  })

  test('a 500 is retried for reads, not for a plain set; the error is ERR_INTERNAL', async () => {
    const { clock, transport, client } = setup(() => wireError(500, 'ERR_INTERNAL'), { eject: { after: 100 } })
    assertCode((await drive(clock, client.get('k'), { step: 5 })).error, 'ERR_INTERNAL')
    assert.equal(transport.requests.length, 4)
    assertCode((await drive(clock, client.set('k', 'v'), { step: 5 })).error, 'ERR_INTERNAL')
    assert.equal(transport.requests.length, 5)
    await client.close()
  })

  test('a 503 with a store code is a failure (retried only when idempotent), not a busy wait', async () => {
    const { clock, transport, client } = setup(() => wireError(503, 'ERR_STORE_UNAVAILABLE'), { eject: { after: 100 } })
    assertCode((await drive(clock, client.set('k', 'v'))).error, 'ERR_STORE_UNAVAILABLE')
    assert.equal(transport.requests.length, 1)
    await client.close()
  })

  test('no call outlives retry.maxElapsed, even against a node that hangs every time', async () => {
    const { clock, client } = setup(() => 'hang', { timeout: '2s', retry: { maxElapsed: '3s' } })
    const r = await drive(clock, client.get('k'), { step: 5 })
    assertCode(r.error, 'ERR_REQUEST_TIMEOUT')
    assert.ok(r.at <= 3005, `settled at ${r.at}`)
    await client.close()
  })

  test('a transport that throws synchronously is a network failure, not a crash', async () => {
    const clock = new ManualClock(0)
    const throwing = {
      request(): Promise<never> {
        throw Object.assign(new Error('sync'), { code: 'ECONNREFUSED' })
      },
      close: async () => undefined,
    }
    const client = createClient({ nodes: [A], clock, transport: throwing, retry: false })
    assertCode((await drive(clock, client.get('k'))).error, 'ERR_NODE_UNREACHABLE')
    await client.close()
  })

  test('a transport that ignores the abort signal still cannot hang the call', async () => {
    const { clock, client } = setup(() => new Promise(() => undefined), { timeout: 200, retry: false })
    const r = await drive(clock, client.get('k'))
    assertCode(r.error, 'ERR_REQUEST_TIMEOUT')
    await client.close()
  })
})

describe('rotation and ejection', () => {
  test('round-robin across nodes', async () => {
    const { clock, transport, client } = setup(() => entry(), { nodes: [A, B, C] })
    for (let i = 0; i < 6; i++) await drive(clock, client.get('k'))
    assert.deepEqual(transport.requests.map((r) => r.origin), [A, B, C, A, B, C])
    await client.close()
  })

  test('a failing node is ejected after 3 failures, probed with backoff, and put back when healthy', async () => {
    let aUp = false
    const { clock, transport, client } = setup(
      (origin, req) => {
        if (origin === A && !aUp) return new NetworkFailure('ECONNREFUSED')
        return req.path === '/healthz' ? respond(200, 'ok') : entry()
      },
      { nodes: [A, B], eject: { after: 3, probeInterval: '1s', maxProbeInterval: '4s' } },
    )
    // Each get hits A first (fails) then B; after 3 such calls A is out.
    for (let i = 0; i < 3; i++) {
      const r = await drive(clock, client.get('k'), { step: 1 })
      assert.equal(r.ok, true)
    }
    const state = client.nodes().find((s) => s.node === A)
    const ejectedAt = (state?.nextProbeAt ?? NaN) - 1000
    assert.equal(state?.inRotation, false)
    assert.equal(state?.ejections, 1)
    const before = transport.to(A).length
    for (let i = 0; i < 4; i++) await drive(clock, client.get('k'))
    assert.equal(transport.to(A).length, before, 'no traffic to an ejected node')
    // Probes at +1 s (fails), then 2 s after it (fails), then 4 s (capped) after that.
    const probes = () => transport.to(A).filter((r) => r.path === '/healthz').map((r) => r.at)
    const nextProbe = () => client.nodes().find((s) => s.node === A)?.nextProbeAt ?? NaN
    clock.set(nextProbe())
    await tick()
    assert.deepEqual(probes(), [ejectedAt + 1000])
    assert.equal(nextProbe() - clock.now(), 2000)
    clock.set(nextProbe())
    await tick()
    assert.equal(probes().length, 2)
    assert.equal(nextProbe() - clock.now(), 4000)
    clock.set(nextProbe() - 1)
    await tick()
    assert.equal(probes().length, 2, 'not probed early')
    aUp = true
    clock.advance(1)
    await tick()
    await tick()
    assert.equal(probes().length, 3)
    assert.equal(client.nodes().find((s) => s.node === A)?.inRotation, true)
    transport.requests.length = 0
    for (let i = 0; i < 4; i++) await drive(clock, client.get('k'))
    assert.deepEqual(transport.requests.map((r) => r.origin).sort(), [A, A, B, B])
    await client.close()
  })

  test('busy answers do not eject a node', async () => {
    let n = 0
    const { clock, client } = setup(() => (n++ < 8 ? wireError(503, 'ERR_BUSY', { 'retry-after': '1' }) : entry()), { eject: { after: 2 }, retry: { maxElapsed: '20s' } })
    const r = await drive(clock, client.get('k'), { step: 20 })
    assert.equal(r.ok, true)
    assert.equal(client.nodes()[0].inRotation, true)
    await client.close()
  })

  test('when every node is ejected the client still tries them, and a success reinstates', async () => {
    let up = false
    const { clock, client } = setup((_o, req) => (up || req.path === '/healthz' ? (up ? entry() : new NetworkFailure('ECONNREFUSED')) : new NetworkFailure('ECONNREFUSED')), {
      nodes: [A, B],
      eject: { after: 1, probeInterval: '1h', maxProbeInterval: '1h' },
      retry: { retries: 1 },
    })
    assertCode((await drive(clock, client.get('k'), { step: 5 })).error, 'ERR_NODE_UNREACHABLE')
    assert.deepEqual(client.nodes().map((s) => s.inRotation), [false, false])
    up = true
    const r = await drive(clock, client.get('k'), { step: 5 })
    assert.equal(r.ok, true)
    assert.ok(client.nodes().some((s) => s.inRotation))
    await client.close()
  })
})

describe('answers, errors and options', () => {
  test('every node error is rebuilt as its typed error', async () => {
    const cases: [ReturnType<typeof respond>, ErrorCode][] = [
      [wireError(401, 'ERR_UNAUTHORIZED'), 'ERR_UNAUTHORIZED'],
      [wireError(412, 'ERR_PRECONDITION_FAILED'), 'ERR_PRECONDITION_FAILED'],
      [wireError(413, 'ERR_TOO_LARGE'), 'ERR_TOO_LARGE'],
      [wireError(400, 'ERR_BAD_REQUEST'), 'ERR_BAD_REQUEST'],
      [wireError(400, 'ERR_INVALID_TAG'), 'ERR_INVALID_TAG'],
      [wireError(400, 'ERR_INVALID_OPTIONS'), 'ERR_INVALID_OPTIONS'],
      [wireError(405, 'ERR_METHOD_NOT_ALLOWED', { allow: 'GET, PUT' }), 'ERR_METHOD_NOT_ALLOWED'],
      [wireError(507, 'ERR_STORE_FULL'), 'ERR_STORE_FULL'],
      [respond(401, 'no json'), 'ERR_UNAUTHORIZED'],
      [respond(418, 'teapot'), 'ERR_BAD_RESPONSE'],
      [respond(200, 'not json'), 'ERR_BAD_RESPONSE'],
      [respond(200, { version: -1, ttl: 3 }), 'ERR_BAD_RESPONSE'],
      [respond(200, { version: 1, ttl: 'soon' }), 'ERR_BAD_RESPONSE'],
    ]
    for (const [res, code] of cases) {
      const { clock, client } = setup(() => res, { retry: false })
      assertCode((await drive(clock, client.set('k', 'v'))).error, code)
      await client.close()
    }
    const bad = setup(() => respond(200, 'v'), { retry: false })
    assertCode((await drive(bad.clock, bad.client.get('k'))).error, 'ERR_BAD_RESPONSE')
    await bad.client.close()
  })

  test('the request on the wire: encoded key, ttl in whole seconds, tags, If-Match, token', async () => {
    const { clock, transport, client } = setup(() => putOk(), { token: 's3cret' })
    await drive(clock, client.set('a/b c', Buffer.from([0, 255]), { ttl: 1500, tags: ['org:1', 'org:1'], ifVersion: '*' }))
    await drive(clock, client.set('k', 'v', { ttl: Infinity }))
    await drive(clock, client.set('k', 'v', { ttl: '2m' }))
    const [first, second, third] = transport.requests
    assert.equal(first.method, 'PUT')
    assert.equal(first.path, '/v1/keys/a%2Fb%20c?ttl=2&tags=org%3A1')
    assert.equal(first.headers['if-match'], '*')
    assert.equal(first.headers.authorization, 'Bearer s3cret')
    assert.deepEqual([...(first.body ?? [])], [0, 255])
    assert.equal(second.path, '/v1/keys/k?ttl=none')
    assert.equal(third.path, '/v1/keys/k?ttl=120')
    await client.close()
  })

  test('bad input is refused before the network with typed errors', async () => {
    const { transport, client } = setup(() => putOk())
    await assert.rejects(client.get(''), (e) => isCacheError(e, 'ERR_INVALID_KEY'))
    await assert.rejects(client.get('x'.repeat(1025)), (e) => isCacheError(e, 'ERR_TOO_LARGE'))
    await assert.rejects(client.get('\ud800'), (e) => isCacheError(e, 'ERR_INVALID_KEY'))
    await assert.rejects(client.get(42 as unknown as string), (e) => isCacheError(e, 'ERR_INVALID_KEY'))
    await assert.rejects(client.set('k', 'v', { ttl: 0 }), (e) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    await assert.rejects(client.set('k', 'v', { ttl: 100_000_000_000 }), (e) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    await assert.rejects(client.set('k', 'v', { tags: ['a::b'] }), (e) => isCacheError(e, 'ERR_INVALID_TAG'))
    await assert.rejects(client.set('k', 'v', { ifVersion: 0 }), (e) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    await assert.rejects(client.set('k', 42 as unknown as string), (e) => isCacheError(e, 'ERR_INVALID_VALUE'))
    await assert.rejects(client.invalidate(['ok', 'bad tag']), (e) => isCacheError(e, 'ERR_INVALID_TAG'))
    await assert.rejects(client.invalidate(['ok'], { mode: 'x' as 'hard' }), (e) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    await assert.rejects(client.stats({ node: 'http://elsewhere:1' }), (e) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    assert.equal(transport.requests.length, 0)
    await client.close()
  })

  test('invalid options name the option', () => {
    const cases: [unknown, string][] = [
      [{ nodes: [] }, 'nodes'],
      [{ nodes: ['ftp://x:1'] }, 'nodes[0]'],
      [{ nodes: ['http://x:1/path'] }, 'nodes[0]'],
      [{ nodes: [A], timeout: 0 }, 'timeout'],
      [{ nodes: [A], retry: { retries: -1 } }, 'retry.retries'],
      [{ nodes: [A], retry: { jitter: 1 } }, 'retry.jitter'],
      [{ nodes: [A], retry: { baseDelay: '1s', maxDelay: '10ms' } }, 'retry.maxDelay'],
      [{ nodes: [A], eject: { after: 0 } }, 'eject.after'],
      [{ nodes: [A], token: 'a\nb' }, 'token'],
      // Not sendable in a header (undici refused it on every call: ERR_NODE_UNREACHABLE, ejecting a healthy node), or trimmed by the node's parser (never matches).
      [{ nodes: [A], token: 'tok\u0000en' }, 'token'],
      [{ nodes: [A], token: 'tok\u007fen' }, 'token'],
      [{ nodes: [A], token: 'tok\ten' }, 'token'],
      [{ nodes: [A], token: 't\u00f8ken' }, 'token'],
      [{ nodes: [A], token: '\u{1f600}' }, 'token'],
      [{ nodes: [A], token: 'token ' }, 'token'],
      [{ nodes: [A], token: ' token' }, 'token'],
      [{ nodes: [A], connections: 0 }, 'connections'],
      // Were passed to the TLS connect as they were: every call failed as ERR_NODE_UNREACHABLE.
      [{ nodes: [A], tls: 5 }, 'tls'],
      [{ nodes: [A], tls: 'ca.pem' }, 'tls'],
      [{ nodes: [A], tls: { rejectUnauthorized: 'false' } }, 'tls.rejectUnauthorized'],
      [{ nodes: [A], tls: { ca: 5 } }, 'tls.ca'],
      [{ nodes: [A], tls: { ca: ['pem', 5] } }, 'tls.ca'],
      // A region no node can have (the node's rule: 1-64 of [A-Za-z0-9_.-]) would send every read to other regions; were accepted.
      [{ nodes: [A], region: 'lon don' }, 'region'],
      [{ nodes: [A], region: 'r'.repeat(65) }, 'region'],
      [{ nodes: [A], ladder: [] }, 'ladder'],
      // null turned the ladder on (region 'default'), where leaving the option out keeps it off.
      [{ nodes: [A], ladder: null }, 'ladder'],
      [{ nodes: [A], region: null }, 'region'],
      // A hole was skipped by the check and became a NaN timeout (a try that timed out at once).
      // eslint-disable-next-line no-sparse-arrays
      [{ nodes: [A], ladder: { timeouts: [, '100ms'] } }, 'ladder.timeouts[0]'],
      [{ nodes: [A], nearCache: [] }, 'nearCache'],
      [{ nodes: [A], eject: 5 }, 'eject'],
      [{ nodes: [A], eject: 'off' }, 'eject'],
      // Names the client does not know were ignored (timout left 2 s, retries at the top level 3).
      [{ nodes: [A], timout: '5s' }, 'timout'],
      [{ nodes: [A], retries: 0 }, 'retries'],
      [{ nodes: [A], retry: { retires: 0 } }, 'retry.retires'],
      [{ nodes: [A], eject: { afterr: 2 } }, 'eject.afterr'],
      [{ nodes: [A], ladder: { deadlin: '1s' } }, 'ladder.deadlin'],
      [{ nodes: [A], nearCache: { maxEntries: 10, ttll: '1s' } }, 'nearCache.ttll'],
      [{ nodes: [A], tls: { CA: 'pem' } }, 'tls.CA'],
      [{ nodes: [A], session: { maxkeys: 5 } }, 'session.maxkeys'],
    ]
    for (const [options, option] of cases) {
      assert.throws(() => createClient(options as ClientOptions), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as unknown as { option: string }).option === option, option)
    }
    for (const token of ['s3cret', 'a b', 'x'.repeat(200), 'b64+/=._~-']) void createClient({ nodes: [A], token, transport: new ScriptedTransport(new ManualClock(), () => entry()) }).close()
    const ok = createClient({ nodes: ['127.0.0.1:7700', 'http://127.0.0.1:7700/'], transport: new ScriptedTransport(new ManualClock(), () => entry()) })
    assert.deepEqual(ok.nodes().map((s) => s.node), ['http://127.0.0.1:7700'])
    void ok.close()
  })

  test('per-call options that are not an object (null, a string, a number) are ERR_INVALID_OPTIONS naming options, as the library refuses them', async () => {
    // null was a TypeError for most calls, and a string was taken as no options.
    const { client, transport } = setup(() => entry())
    const calls: [string, (o: never) => Promise<unknown>][] = [
      ['get', (o) => client.get('k', o)],
      ['set', (o) => client.set('k', 'v', o)],
      ['delete', (o) => client.delete('k', o)],
      ['mget', (o) => client.mget(['k'], o)],
      ['mset', (o) => client.mset([{ key: 'k', value: 'v' }], o)],
      ['invalidate', (o) => client.invalidate(['t'], o)],
      ['stats', (o) => client.stats(o)],
      ['clear', (o) => client.clear(o)],
      ['keys', (o) => client.keys(o)],
      ['ping', (o) => client.ping(o)],
      ['keysAll', (o) => client.keysAll(o).next()],
    ]
    for (const [name, call] of calls) {
      for (const bad of [null, 'x', 5]) {
        await assert.rejects(call(bad as never), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === 'options', `${name}(${String(bad)})`)
      }
    }
    assert.equal(transport.requests.length, 0)
    await client.close()
  })

  test('idempotent that is not a boolean is ERR_INVALID_OPTIONS naming it (the string \'false\' turned blind retries on)', async () => {
    const { client, transport } = setup(() => putOk())
    for (const bad of ['false', 'yes', 1]) {
      await assert.rejects(client.set('k', 'v', { idempotent: bad as never }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === 'idempotent', String(bad))
      await assert.rejects(client.mset([{ key: 'k', value: 'v' }], { idempotent: bad as never }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === 'idempotent', String(bad))
    }
    assert.equal(transport.requests.length, 0)
    await client.close()
  })

  test("a bare host without a port is a node on the node's default port (7700); a URL keeps its scheme's", () => {
    assert.equal(normalizeNode('127.0.0.1'), 'http://127.0.0.1:7700')
    assert.equal(normalizeNode('cache-1.internal'), 'http://cache-1.internal:7700')
    assert.equal(normalizeNode('[::1]'), 'http://[::1]:7700')
    assert.equal(normalizeNode('127.0.0.1:80'), 'http://127.0.0.1')
    assert.equal(normalizeNode('http://cache.example'), 'http://cache.example')
    assert.equal(normalizeNode('https://cache.example'), 'https://cache.example')
  })

  test('a node address with credentials is refused without echoing them (a password given alone included)', () => {
    for (const address of ['http://user:s3cret@127.0.0.1:7700', 'http://:s3cret@127.0.0.1:7700', 'https://s3cret@cache.example', 'user:s3cret@127.0.0.1:7700']) {
      assert.throws(
        () => normalizeNode(address),
        (err: unknown) => err instanceof InvalidOptionsError && !err.message.includes('s3cret') && /credentials/.test(err.message),
        address,
      )
    }
  })

  test('mget splits batches over 1000 keys and keeps order; mset likewise', async () => {
    const { clock, transport, client } = setup((_o, req) => {
      const body = JSON.parse(req.body?.toString() ?? '{}') as { keys?: string[]; entries?: unknown[] }
      if (req.path === '/v1/mget') return respond(200, { entries: (body.keys ?? []).map((k) => (k.endsWith('7') ? null : { key: k, value: Buffer.from(k).toString('base64'), version: 1, ttl: null, tags: [] })) })
      return respond(200, { versions: (body.entries ?? []).map((_, i) => i + 1) })
    })
    const keys = Array.from({ length: 2500 }, (_, i) => `k${i}`)
    const r = await drive(clock, client.mget(keys))
    assert.equal(r.value?.length, 2500)
    assert.equal(r.value?.[7], undefined)
    assert.equal(r.value?.[2499]?.value.toString(), 'k2499')
    assert.equal(r.value?.[2499]?.ttlMs, Infinity)
    assert.equal(transport.requests.length, 3)
    const m = await drive(clock, client.mset(keys.map((key) => ({ key, value: key }))))
    assert.equal(m.value?.length, 2500)
    assert.equal(transport.requests.length, 6)
    assert.deepEqual(await client.mget([]), [])
    await client.close()
  })

  test('close: later calls fail with ERR_CLOSED, a call sleeping in backoff wakes and fails', async () => {
    const { clock, client, transport } = setup(() => new NetworkFailure('ECONNREFUSED'))
    const pending = drive(clock, client.get('k'), { step: 1, limit: 50 }).catch(() => undefined)
    await tick()
    const caught = client.get('k').catch((e: unknown) => e)
    await client.close()
    assertCode(await caught, 'ERR_CLOSED')
    await pending
    await assert.rejects(client.get('k'), (e) => isCacheError(e, 'ERR_CLOSED'))
    assert.equal(transport.closed, true)
  })

  test('ping reports every node without retries', async () => {
    const { clock, client } = setup((o) => (o === A ? respond(200, 'ok') : new NetworkFailure('ECONNREFUSED')), { nodes: [A, B] })
    const r = await drive(clock, client.ping())
    assert.deepEqual(r.value?.map((p) => [p.node, p.ok, p.error?.code]), [[A, true, undefined], [B, false, 'ERR_NODE_UNREACHABLE']])
    await client.close()
  })
})

describe('ack levels', () => {
  test('a 504 ERR_ACK_TIMEOUT is ERR_ACK_TIMEOUT (applied, required, level), sent once (the write is committed) and not charged to the node', async () => {
    const ackTimeout = () => respond(504, { code: 'ERR_ACK_TIMEOUT', message: new AckTimeoutError(1, 3, 'all').message }, { 'content-type': 'application/json', 'x-stratacache-replicas': '1' })
    const { clock, transport, client } = setup(ackTimeout)
    const calls: [string, () => Promise<unknown>][] = [
      ['set', () => client.set('k', 'v', { ack: 'all' })],
      ['set ifVersion (idempotent)', () => client.set('k', 'v', { ack: 'all', ifVersion: 5 })],
      ['delete (idempotent)', () => client.delete('k', { ack: 'all' })],
      ['mset', () => client.mset([{ key: 'k', value: 'v' }], { ack: 'all' })],
      ['invalidate', () => client.invalidate(['org:1'], { ack: 'all' })],
      ['clear', () => client.clear({ ack: 'all' })],
      ['clear a prefix', () => client.clear({ prefix: 'user:', ack: 'all' })],
    ]
    for (const [name, call] of calls) {
      const before = transport.requests.length
      const r = await drive(clock, call(), { step: 10 })
      assert.match(transport.requests.at(-1)!.path, /[?&]ack=all(&|$)/, `${name}: the level is sent`)
      assertCode(r.error, 'ERR_ACK_TIMEOUT')
      const e = r.error as AckTimeoutError
      assert.deepEqual([e.applied, e.required, e.level], [1, 3, 'all'], name)
      assert.ok(isNodeAnswer(e), name)
      assert.equal(transport.requests.length - before, 1, `${name}: one request, a repeat would apply the write again`)
    }
    assert.equal(client.nodes()[0]!.consecutiveFailures, 0, 'the node answered: it is not failing')
    await client.close()
  })

  test("with the default timeout (2 s) a write at ack region/all waits for the node's answer: the node's ack deadline is 2 s too, so the 504 came after the client had given up with ERR_REQUEST_TIMEOUT and counted a failure", async () => {
    // The node answers ERR_ACK_TIMEOUT just after its 2 s ack deadline, as a real node does (measured: 2.1 s).
    const late = () => new Promise<ReturnType<typeof respond>>((resolve) => clockRef.clock!.setTimeout(() => resolve(respond(504, { code: 'ERR_ACK_TIMEOUT', message: new AckTimeoutError(1, 2, 'all').message }, { 'content-type': 'application/json', 'x-stratacache-replicas': '1' })), 2100))
    const clockRef: { clock?: ManualClock } = {}
    const { clock, transport, client } = setup(late)
    clockRef.clock = clock
    for (const [name, call] of [
      ['set', () => client.set('k', 'v', { ack: 'all' })],
      ['delete', () => client.delete('k', { ack: 'region' })],
      ['mset', () => client.mset([{ key: 'k', value: 'v' }], { ack: 'all' })],
    ] as [string, () => Promise<unknown>][]) {
      const before = transport.requests.length
      const r = await drive(clock, call(), { step: 10 })
      assertCode(r.error, 'ERR_ACK_TIMEOUT')
      assert.equal(transport.requests.length - before, 1, name)
    }
    assert.equal(client.nodes()[0]!.consecutiveFailures, 0, 'the node answered: it is not failing')
    // An explicit per-call timeout is the caller's choice and is kept.
    const r = await drive(clock, client.set('k', 'v', { ack: 'all', timeout: '1s' }), { step: 10 })
    assertCode(r.error, 'ERR_REQUEST_TIMEOUT')
    await client.close()
  })

  test('invalidate and clear refuse an unknown ack level before sending anything', async () => {
    const { transport, client } = setup(() => respond(200, {}))
    for (const call of [() => client.invalidate(['t'], { ack: 'most' as 'all' }), () => client.clear({ ack: 'ALL' as 'all' })]) {
      await assert.rejects(call(), (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && /ack/.test((err as Error).message))
    }
    assert.equal(transport.requests.length, 0)
    await client.close()
  })

  test("the client's ACK_DEADLINE_MS is the node's: the replication machine's default ack deadline", () => {
    assert.equal(ACK_DEADLINE_MS, DEFAULT_DEADLINE_MS)
  })
})

describe('rebuilt node errors', () => {
  test('the two folded codes of client.md: ERR_STORE_TIMEOUT is ERR_STORE_UNAVAILABLE naming it, ERR_VALUE_TOO_LARGE is ERR_TOO_LARGE', () => {
    const timeout = errorFromResponse(wireError(503, 'ERR_STORE_TIMEOUT'), A)
    assertCode(timeout, 'ERR_STORE_UNAVAILABLE')
    assert.match(timeout.message, /ERR_STORE_TIMEOUT/)
    assert.ok(isNodeAnswer(timeout))
    assertCode(errorFromResponse(wireError(413, 'ERR_VALUE_TOO_LARGE'), A), 'ERR_TOO_LARGE')
  })
})

describe('malformed answers are ERR_BAD_RESPONSE, never a wrong value', () => {
  test('batch and JSON answers that do not match the request', async () => {
    const cases: [string, () => Promise<unknown>, ReturnType<typeof respond>][] = []
    const { clock, transport, client } = setup(() => respond(200, {}), { retry: false })
    const answer = (res: ReturnType<typeof respond>) => (transport.handler = () => res)
    cases.push(['mget count', () => client.mget(['a', 'b']), respond(200, { entries: [null] })])
    cases.push(['mget entry type', () => client.mget(['a']), respond(200, { entries: [42] })])
    cases.push(['mget value', () => client.mget(['a']), respond(200, { entries: [{ key: 'a', value: 7, version: 1, ttl: null }] })])
    cases.push(['mget version', () => client.mget(['a']), respond(200, { entries: [{ key: 'a', value: 'eA==', version: 0, ttl: null }] })])
    cases.push(['mset count', () => client.mset([{ key: 'a', value: 'x' }]), respond(200, { versions: [] })])
    cases.push(['delete', () => client.delete('a'), respond(200, { deleted: 'yes' })])
    cases.push(['invalidate', () => client.invalidate(['t']), respond(200, { invalidated: 'many' })])
    cases.push(['array body', () => client.stats(), respond(200, [1, 2])])
    cases.push(['no etag', () => client.get('a'), respond(200, 'v', { 'x-ttl': '1' })])
    cases.push(['bad x-ttl', () => client.get('a'), respond(200, 'v', { etag: '"1"', 'x-ttl': 'soon' })])
    for (const [name, call, res] of cases) {
      answer(res)
      const r = await drive(clock, call())
      assertCode(r.error, 'ERR_BAD_RESPONSE')
      assert.ok(r.error instanceof Error && r.error.message.length > 0, name)
    }
    await client.close()
  })
})
