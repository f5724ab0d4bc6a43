/**
 * Session tokens in the client (P10, decision 0224) on a scripted transport and a
 * ManualClock: the highest `x-stratacache-token` seen is sent on every request; a read of a
 * key the client wrote carries that write's version as `x-stratacache-min-version`; an
 * ERR_STALE_READ moves the read to another node without spending a retry or charging the
 * node, and when every node is stale the read waits briefly and tries again within its
 * budget; `session: false` sends neither header. The Session bookkeeping (LRU bound) alone.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ManualClock } from '../../src/core/manual-clock.js'
import { createClient } from '../../src/client/index.js'
import { Session } from '../../src/client/session.js'
import { drive, tick } from '../support/drive.js'
import { respond, ScriptedTransport, type RecordedRequest } from '../support/scripted-transport.js'
import { isCacheError } from '../../src/core/errors.js'

const url = (port: number): string => `http://127.0.0.1:${port}`
const TOKEN = 'x-stratacache-token'
const MIN = 'x-stratacache-min-version'

/**
 * A tiny cluster of scripted nodes: each holds key → version/value; PUT writes at the next
 * clock value of the node (after the request's token), GET honours the min-version header.
 * `lag` nodes do not receive replication until `catchUp()`.
 */
class FakeCluster {
  readonly data = new Map<string, Map<string, { version: number; value: string }>>()
  hlc = 100
  pending: Array<() => void> = []
  constructor(
    readonly origins: string[],
    readonly lagging: Set<string> = new Set(),
  ) {
    for (const o of origins) this.data.set(o, new Map())
  }
  catchUp(): void {
    for (const f of this.pending.splice(0)) f()
  }
  handle = (origin: string, req: RecordedRequest) => {
    const tok = Number(req.headers[TOKEN] ?? 0)
    this.hlc = Math.max(this.hlc, tok) + 1
    const store = this.data.get(origin)!
    const key = decodeURIComponent(req.path.split('?')[0]!.replace('/v1/keys/', ''))
    const hdr = { [TOKEN]: String(this.hlc) }
    if (req.method === 'PUT') {
      const version = this.hlc
      const value = req.body!.toString()
      for (const o of this.origins) {
        const apply = (): void => void this.data.get(o)!.set(key, { version, value })
        if (o === origin || !this.lagging.has(o)) apply()
        else this.pending.push(apply)
      }
      return respond(200, { version, ttl: 60 }, { ...hdr, 'content-type': 'application/json' })
    }
    if (req.method === 'GET') {
      const e = store.get(key)
      const need = Number(req.headers[MIN] ?? 0)
      if (need > (e?.version ?? 0)) return respond(409, { code: 'ERR_STALE_READ', message: `The node holds version ${e?.version ?? 0} of key "${key}", older than the session's ${need}; retry` }, { ...hdr, 'content-type': 'application/json' })
      if (e === undefined) return respond(404, { code: 'ERR_NOT_FOUND', message: 'none' }, { ...hdr, 'content-type': 'application/json' })
      return respond(200, e.value, { ...hdr, etag: `"${e.version}"`, 'x-ttl': '60' })
    }
    return respond(200, { deleted: true }, { ...hdr, 'content-type': 'application/json' })
  }
}

test('Session: highest token kept, versions per key in a bounded LRU, forget on delete', () => {
  const s = new Session(2)
  s.observe({ [TOKEN]: '50' })
  s.observe({ [TOKEN]: '20' })
  s.observe({ [TOKEN]: 'junk' })
  assert.equal(s.token, 50)
  s.wrote('a', 7)
  s.wrote('b', 8)
  s.wrote('a', 9)
  s.wrote('c', 10)
  assert.equal(s.minVersion('b'), undefined, 'b was the least recently written')
  assert.equal(s.minVersion('a'), 9)
  assert.equal(s.size, 2)
  assert.deepEqual(s.headers({ x: '1' }, 'c'), { x: '1', [TOKEN]: '50', [MIN]: '10' })
  s.forget('c')
  assert.deepEqual(s.headers({}, 'c'), { [TOKEN]: '50' })
  s.wrote('x:1', 20, 1000)
  s.wrote('y:1', 21)
  assert.equal(s.minVersion('x:1', 999), 20)
  assert.equal(s.minVersion('x:1', 1000), undefined, 'expired with its entry')
  s.wrote('x:2', 22)
  s.forgetPrefix('x:')
  assert.equal(s.minVersion('x:2'), undefined)
  assert.equal(s.minVersion('y:1'), 21)
  s.forgetPrefix('')
  assert.equal(s.size, 0)
})

test('Session monotonic: versions read are remembered like versions written; off by default', () => {
  const off = new Session(10)
  off.read('a', 5)
  assert.equal(off.minVersion('a'), undefined, 'read versions are not remembered without monotonic')
  const s = new Session(2, true)
  assert.equal(s.monotonic, true)
  s.read('a', 5, 1000)
  assert.equal(s.minVersion('a', 999), 5)
  assert.equal(s.minVersion('a', 1000), undefined, 'expired with its entry')
  s.wrote('b', 9)
  s.read('b', 7)
  assert.equal(s.minVersion('b'), 9, 'an older read does not lower the least version')
  s.read('b', 12)
  assert.equal(s.minVersion('b'), 12)
  s.read('c', 1)
  s.read('d', 1)
  assert.equal(s.size, 2, 'bounded by maxKeys, reads and writes together')
  assert.equal(s.minVersion('b'), undefined, 'least recently touched dropped')
})

test('session { monotonic: true }: a get sends the version it read last; validated', async () => {
  const clock = new ManualClock()
  const cluster = new FakeCluster([url(1)])
  const transport = new ScriptedTransport(clock, (origin, req) => cluster.handle(origin, req))
  const writer = createClient({ nodes: [url(1)], clock, transport, session: false })
  const client = createClient({ nodes: [url(1)], clock, transport, session: { monotonic: true } })
  await drive(clock, writer.set('m', 'v1'))
  const first = await drive(clock, client.get('m'))
  assert.ok(first.ok)
  assert.equal(transport.requests.at(-1)!.headers[MIN], undefined, 'nothing known before the first read')
  await drive(clock, client.get('m'))
  assert.ok(Number(transport.requests.at(-1)!.headers[MIN]) > 0, 'the second read names the version the first one saw')
  assert.throws(() => createClient({ nodes: [url(1)], session: { monotonic: 'yes' as unknown as boolean } }), /session.monotonic/)
})

test('clear and invalidate forget the versions, expiry too: no read waits for a version gone for good', async () => {
  const clock = new ManualClock()
  const cluster = new FakeCluster([url(1)])
  const transport = new ScriptedTransport(clock, (origin, req) => {
    if (req.path.startsWith('/v1/keys?')) return respond(200, '', {})
    if (req.path === '/v1/invalidate') return respond(200, { invalidated: 1 }, { 'content-type': 'application/json' })
    return cluster.handle(origin, req)
  })
  const client = createClient({ nodes: [url(1)], clock, transport })
  const lastMin = (): string | undefined => transport.requests.at(-1)!.headers[MIN]
  await drive(clock, client.set('p:a', 'v'))
  await drive(clock, client.set('q:a', 'v'))
  assert.ok((await drive(clock, client.clear({ prefix: 'p:' }))).ok)
  await drive(clock, client.get('p:a'))
  assert.equal(lastMin(), undefined, 'cleared by prefix')
  await drive(clock, client.get('q:a'))
  assert.ok(lastMin() !== undefined, 'another prefix kept')
  assert.ok((await drive(clock, client.invalidate(['t']))).ok)
  await drive(clock, client.get('q:a'))
  assert.equal(lastMin(), undefined, 'an invalidation forgets every version')
  await drive(clock, client.set('short', 'v'))
  await drive(clock, client.get('short'))
  assert.ok(lastMin() !== undefined)
  clock.advance(60_000)
  await drive(clock, client.get('short'))
  assert.equal(lastMin(), undefined, 'its 60 s TTL passed')
  await client.close()
})

test('the token of every answer is sent on the next request; a write\'s version guards the next read of its key', async () => {
  const clock = new ManualClock()
  const cluster = new FakeCluster([url(1)])
  const transport = new ScriptedTransport(clock, cluster.handle)
  const client = createClient({ nodes: [url(1)], clock, transport })
  assert.equal((await drive(clock, client.get('other'))).value, undefined)
  assert.equal(transport.requests[0]!.headers[TOKEN], undefined, 'nothing seen yet')
  cluster.hlc = 5000
  const w = await drive(clock, client.set('k', 'v1'))
  assert.ok(w.ok, String(w.error))
  assert.equal(Number(transport.requests[1]!.headers[TOKEN]), 101, 'the token of the first answer')
  await drive(clock, client.get('k'))
  await drive(clock, client.get('other'))
  const [getK, getOther] = transport.requests.slice(2)
  assert.equal(getK!.headers[MIN], String((w.value as { version: number }).version))
  assert.equal(Number(getK!.headers[TOKEN]), (w.value as { version: number }).version, 'the write\'s answer token')
  assert.equal(getOther!.headers[MIN], undefined, 'a key the client did not write')
  await drive(clock, client.delete('k'))
  await drive(clock, client.get('k'))
  assert.equal(transport.requests.at(-1)!.headers[MIN], undefined, 'a delete forgets the version')
  await client.close()
})

test('without the ladder: a stale node sends the read to the next one, no retry spent, no charge', async () => {
  const clock = new ManualClock()
  const cluster = new FakeCluster([url(1), url(2)], new Set([url(2)]))
  const transport = new ScriptedTransport(clock, cluster.handle)
  const client = createClient({ nodes: [url(1), url(2)], clock, transport, retry: { retries: 0 }, eject: { after: 1 } })
  cluster.data.get(url(2))!.set('k', { version: 1, value: 'old' })
  assert.ok((await drive(clock, client.set('k', 'new'))).ok)
  assert.equal(transport.requests[0]!.origin, url(1))
  const r = await drive(clock, client.get('k'))
  assert.equal(r.ok, true, String(r.error))
  assert.equal((r.value as { value: Buffer }).value.toString(), 'new')
  const reads = transport.requests.filter((q) => q.method === 'GET')
  assert.deepEqual(reads.map((q) => q.origin), [url(2), url(1)], 'stale on 2, answered by 1')
  const n2 = client.nodes().find((n) => n.node === url(2))!
  assert.equal(n2.inRotation, true, 'a stale node is healthy')
  assert.equal(n2.consecutiveFailures, 0)
  await client.close()
})

test('the ladder: every node stale → a short wait and another climb, answered once a node catches up', async () => {
  const clock = new ManualClock()
  const cluster = new FakeCluster([url(1), url(2), url(3)], new Set([url(2), url(3)]))
  let staleAnswers = 0
  const transport = new ScriptedTransport(clock, (origin, req) => {
    if (req.path === '/v1/cluster') return respond(404, { code: 'ERR_NOT_FOUND', message: 'x' }, { 'content-type': 'application/json' })
    const res = cluster.handle(origin, req)
    // The replicas catch up after a first full round of stale answers.
    if (res.status === 409 && ++staleAnswers === 3) cluster.catchUp()
    return res
  })
  const client = createClient({ nodes: [url(1), url(2), url(3)], ladder: {}, clock, transport })
  await tick()
  // Every node holds an older version; the write lands on 1 (the client's first node); then 1 falls behind too for the read.
  for (const o of [url(1), url(2), url(3)]) cluster.data.get(o)!.set('k', { version: 1, value: 'old' })
  const w = await drive(clock, client.set('k', 'new'))
  assert.ok(w.ok)
  cluster.data.get(url(1))!.set('k', { version: 1, value: 'old' })
  const started = clock.now()
  const r = await drive(clock, client.get('k'), { step: 5 })
  assert.equal(r.ok, true, String(r.error))
  assert.equal((r.value as { value: Buffer }).value.toString(), 'new')
  const reads = transport.requests.filter((q) => q.method === 'GET' && q.path === '/v1/keys/k')
  assert.equal(reads.length, 4, 'three stale answers, then the next climb')
  assert.ok(reads[3]!.at - reads[2]!.at >= 10, 'a short wait between the climbs')
  assert.ok(r.at - started < 2750, 'within the ladder deadline')
  await client.close()
})

test('the ladder: stale everywhere past the deadline → ERR_STALE_READ', async () => {
  const clock = new ManualClock()
  const cluster = new FakeCluster([url(1), url(2)], new Set([url(2)]))
  const transport = new ScriptedTransport(clock, (origin, req) => (req.path === '/v1/cluster' ? respond(404, { code: 'ERR_NOT_FOUND', message: 'x' }, { 'content-type': 'application/json' }) : cluster.handle(origin, req)))
  const client = createClient({ nodes: [url(1), url(2)], ladder: { deadline: 300 }, clock, transport })
  await tick()
  assert.ok((await drive(clock, client.set('k', 'new'))).ok)
  // Both nodes hold an older version (a node holding nothing answers a miss: see below).
  cluster.data.get(url(1))!.set('k', { version: 1, value: 'old' })
  cluster.data.get(url(2))!.set('k', { version: 1, value: 'old' })
  const started = clock.now()
  const r = await drive(clock, client.get('k'), { step: 5 })
  assert.equal(r.ok, false)
  assert.ok(isCacheError(r.error) && r.error.code === 'ERR_STALE_READ', String(r.error))
  const err = r.error as unknown as { need: number; have: number }
  assert.ok(err.need > 0 && err.have === 1, `need ${err.need} have ${err.have}`)
  assert.ok(r.at - started <= 300 + 10, `gave up within the deadline (${r.at - started} ms)`)
  // Nothing at all for the key on the node (expired, evicted): a miss at once, the version forgotten.
  cluster.data.get(url(1))!.delete('k')
  cluster.data.get(url(2))!.delete('k')
  const gone = await drive(clock, client.get('k'), { step: 5 })
  assert.equal(gone.ok, true, String(gone.error))
  assert.equal(gone.value, undefined)
  assert.equal(transport.requests.at(-1)!.headers[MIN] !== undefined, true)
  await drive(clock, client.get('k'))
  assert.equal(transport.requests.at(-1)!.headers[MIN], undefined, 'forgotten')
  await client.close()
})

test('session: false sends neither the token nor a least version', async () => {
  const clock = new ManualClock()
  const cluster = new FakeCluster([url(1), url(2)], new Set([url(2)]))
  const transport = new ScriptedTransport(clock, cluster.handle)
  const client = createClient({ nodes: [url(1), url(2)], clock, transport, session: false })
  assert.ok((await drive(clock, client.set('k', 'new'))).ok)
  const r = await drive(clock, client.get('k'))
  assert.equal(r.value, undefined, 'the lagging node answers its stale (absent) state')
  for (const q of transport.requests) {
    assert.equal(q.headers[TOKEN], undefined)
    assert.equal(q.headers[MIN], undefined)
  }
  assert.throws(() => createClient({ nodes: [url(1)], session: 'yes' as unknown as boolean }), /session/)
  await client.close()
})
