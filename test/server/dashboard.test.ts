// The dashboard without a browser: the feed on a ManualClock with fake sinks (ticker parks
// when idle, one shared frame per interval, slow readers, bounds, close), its page (script
// parses, CSP pins the inline script and style), and its routes injected into a real node
// (auth as the API plus HTTP Basic, 405, the snapshot's shape on a lone node).
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, describe, test } from 'node:test'
import type { ClusterView } from '../../src/cluster/membership.js'
import { ManualClock } from '../../src/core/manual-clock.js'
import { Dashboard, loneClusterView, MAX_BUFFERED_BYTES, ratesBetween, STALL_LIMIT_MS, type DashboardSnapshot, type DashboardSource, type EventSink } from '../../src/server/dashboard.js'
import { DASHBOARD_HTML, DASHBOARD_PAGE_HEADERS, DASHBOARD_SCRIPT } from '../../src/server/dashboard-page.js'
import { startNode, type NodeHandle } from '../../src/server/index.js'
import type { ApiResponse } from '../../src/server/http-api.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { silentLogger } from '../support/node-fixtures.js'

/** Lets the feed's pending promises (an async snapshot source) settle. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve()
}

class FakeSink implements EventSink {
  chunks: string[] = []
  writableLength = 0
  ended = false
  write(chunk: string): boolean {
    if (this.ended) throw new Error('write after end')
    this.chunks.push(chunk)
    return true
  }
  end(): void {
    this.ended = true
  }
  snapshots(): DashboardSnapshot[] {
    return this.chunks.filter((c) => c.startsWith('event: snapshot')).map((c) => JSON.parse(/\ndata: (.*)\n\n$/.exec(c)?.[1] ?? 'null') as DashboardSnapshot)
  }
}

function source(clock: ManualClock, over: Partial<DashboardSource> = {}): DashboardSource & { stat: { total: number; hits: number; misses: number }; clusterCalls: number } {
  const stat = { total: 0, hits: 0, misses: 0 }
  const s = {
    stat,
    clusterCalls: 0,
    clock,
    id: () => 'n1',
    url: () => 'http://127.0.0.1:7700',
    region: 'eu',
    stats: () => ({ node: { connections: 1 }, requests: { total: stat.total }, cache: { hits: stat.hits, misses: stat.misses, size: 3 }, store: 'memory' }),
    cluster: async () => {
      s.clusterCalls++
      return undefined
    },
    onError: (err: unknown) => {
      throw err
    },
    ...over,
  }
  return s
}

describe('dashboard feed (ManualClock)', () => {
  test('a first frame at once, then one per interval; no timer while no stream is open', async () => {
    const clock = new ManualClock()
    const src = source(clock)
    const d = new Dashboard(src, { intervalMs: 1000 })
    assert.equal(d.ticking, false)
    clock.advance(10_000)
    assert.equal(src.clusterCalls, 0, 'nothing is built while nobody watches')
    const sink = new FakeSink()
    const unsubscribe = d.subscribe(sink)
    assert.ok(unsubscribe)
    await settle()
    assert.match(sink.chunks[0], /^retry: \d+\n\n$/)
    let frames = sink.snapshots()
    assert.equal(frames.length, 1)
    assert.equal(frames[0].rates, null, 'the first frame after an idle ticker has no window yet')
    assert.equal(frames[0].standalone, true)
    src.stat.total = 50
    src.stat.hits = 30
    src.stat.misses = 10
    clock.advance(1000)
    await settle()
    frames = sink.snapshots()
    assert.equal(frames.length, 2)
    assert.deepEqual(frames[1].rates, { windowMs: 1000, requestsPerSec: 50, readsPerSec: 40, hitRatio: 0.75 })
    assert.equal(frames[1].hitRatioTotal, 0.75)
    // The next tick is scheduled once a snapshot is built (ticks never overlap).
    for (let i = 0; i < 2; i++) {
      clock.advance(1000)
      await settle()
    }
    assert.equal(sink.snapshots().length, 4)
    assert.equal(sink.snapshots()[3].rates?.requestsPerSec, 0)
    unsubscribe()
    unsubscribe() // idempotent
    assert.equal(d.streams, 0)
    assert.equal(d.ticking, false, 'the ticker parks with the last stream')
    const calls = src.clusterCalls
    clock.advance(60_000)
    await settle()
    assert.equal(src.clusterCalls, calls)
    assert.equal(sink.snapshots().length, 4)
  })

  test('every stream gets the same frame from one build per tick', async () => {
    const clock = new ManualClock()
    const src = source(clock)
    const d = new Dashboard(src, { intervalMs: 500 })
    const a = new FakeSink()
    const b = new FakeSink()
    d.subscribe(a)
    await settle()
    d.subscribe(b)
    await settle()
    const before = src.clusterCalls
    clock.advance(500)
    await settle()
    assert.equal(src.clusterCalls, before + 1, 'one build for both streams')
    assert.equal(a.chunks.at(-1), b.chunks.at(-1))
    assert.equal(b.snapshots().length, 2, 'the late stream got a frame on arrival and the tick')
  })

  test('a slow reader: frames are skipped while its socket is full, and it is ended after the stall limit', async () => {
    const clock = new ManualClock()
    const d = new Dashboard(source(clock), { intervalMs: 1000 })
    const slow = new FakeSink()
    const fast = new FakeSink()
    d.subscribe(slow)
    d.subscribe(fast)
    await settle()
    slow.writableLength = MAX_BUFFERED_BYTES + 1
    const had = slow.chunks.length
    for (let t = 0; t < STALL_LIMIT_MS / 1000 - 1; t++) {
      clock.advance(1000)
      await settle()
    }
    assert.equal(slow.chunks.length, had, 'nothing more was queued on a full socket')
    assert.equal(slow.ended, false)
    assert.equal(d.streams, 2)
    clock.advance(2000)
    await settle()
    assert.equal(slow.ended, true)
    assert.equal(d.streams, 1)
    assert.ok(fast.snapshots().length >= STALL_LIMIT_MS / 1000, 'the other stream was not held back')
  })

  test('maxStreams bounds the streams; close ends them all and refuses new ones', async () => {
    const clock = new ManualClock()
    const d = new Dashboard(source(clock), { maxStreams: 2 })
    const sinks = [new FakeSink(), new FakeSink(), new FakeSink()]
    assert.ok(d.subscribe(sinks[0]))
    assert.ok(d.subscribe(sinks[1]))
    assert.equal(d.full, true)
    assert.equal(d.subscribe(sinks[2]), undefined)
    assert.equal(sinks[2].chunks.length, 0)
    await settle()
    d.close()
    assert.ok(sinks[0].ended && sinks[1].ended)
    assert.equal(d.streams, 0)
    assert.equal(d.ticking, false)
    assert.equal(d.subscribe(new FakeSink()), undefined)
  })

  test('a sink that throws is dropped; a failing cluster source falls back to the lone view and is reported', async () => {
    const clock = new ManualClock()
    const errors: unknown[] = []
    const d = new Dashboard(source(clock, { cluster: () => Promise.reject(new Error('boom')), onError: (e) => void errors.push(e) }))
    const bad: EventSink = { writableLength: 0, write: () => { throw new Error('EPIPE') }, end: () => undefined }
    assert.equal(d.subscribe(bad) !== undefined, true)
    const good = new FakeSink()
    d.subscribe(good)
    await settle()
    clock.advance(1000)
    await settle()
    assert.equal(d.streams, 1)
    assert.equal(good.snapshots().at(-1)?.standalone, true)
    assert.ok(errors.length >= 1)
  })

  test('a sink found destroyed is dropped at its next frame, and the ticker parks', async () => {
    const clock = new ManualClock()
    const d = new Dashboard(source(clock))
    const sink = new FakeSink()
    d.subscribe(sink)
    await settle()
    Object.assign(sink, { destroyed: true })
    clock.advance(1000)
    await settle()
    assert.equal(d.streams, 0)
    assert.equal(d.ticking, false)
  })

  test('a cluster view from the node is passed through as is', async () => {
    const clock = new ManualClock()
    const view: ClusterView = {
      self: 'a', region: 'eu', incarnation: 2, status: 'alive', state: { state: 'PASSIVE', version: 3, origin: 'b' },
      regions: [
        { region: 'eu', rank: 0, rttMs: 1.5, members: [{ id: 'a', region: 'eu', address: 'h:1', status: 'alive', incarnation: 2, phi: null, rttMs: null, self: true }, { id: 'b', region: 'eu', address: 'h:2', status: 'suspect', incarnation: 1, phi: 9.1, rttMs: 1.5, self: false }] },
        { region: 'us', rank: 1, rttMs: 80, members: [{ id: 'c', region: 'us', address: 'h:3', status: 'dead', incarnation: 1, phi: 1000, rttMs: 80, self: false }] },
      ],
    }
    const d = new Dashboard(source(clock, { cluster: async () => view }))
    const s = await d.snapshot()
    assert.deepEqual(s.cluster, view)
    assert.equal(s.standalone, false)
  })

  test('rates and the lone view', () => {
    assert.equal(ratesBetween({ at: 5, requests: 0, hits: 0, misses: 0 }, { at: 5, requests: 9, hits: 0, misses: 0 }), null)
    assert.deepEqual(ratesBetween({ at: 0, requests: 10, hits: 4, misses: 0 }, { at: 2000, requests: 13, hits: 4, misses: 0 }), { windowMs: 2000, requestsPerSec: 1.5, readsPerSec: 0, hitRatio: null })
    const v = loneClusterView('n1', 'eu', 'http://[::1]:7700')
    assert.equal(v.regions.length, 1)
    assert.deepEqual(v.regions[0].members, [{ id: 'n1', region: 'eu', address: '[::1]:7700', status: 'alive', incarnation: 0, phi: null, rttMs: null, self: true }])
    assert.equal(v.state.state, 'ACTIVE')
  })

  test('options are validated', () => {
    const clock = new ManualClock()
    assert.throws(() => new Dashboard(source(clock), { intervalMs: 0 }), RangeError)
    assert.throws(() => new Dashboard(source(clock), { maxStreams: 0 }), RangeError)
  })
})

describe('dashboard page', () => {
  test('the script parses, and the CSP allows exactly the inline script and style', () => {
    assert.doesNotThrow(() => new Function(DASHBOARD_SCRIPT))
    const csp = DASHBOARD_PAGE_HEADERS['content-security-policy']
    const script = /<script>([\s\S]*?)<\/script>/.exec(DASHBOARD_HTML)?.[1] ?? ''
    const style = /<style>([\s\S]*?)<\/style>/.exec(DASHBOARD_HTML)?.[1] ?? ''
    const h = (t: string): string => `'sha256-${createHash('sha256').update(t, 'utf8').digest('base64')}'`
    assert.ok(csp.includes(`script-src ${h(script)};`), 'script hash')
    assert.ok(csp.includes(`style-src ${h(style)};`), 'style hash')
    assert.match(csp, /default-src 'none'/)
    assert.match(csp, /frame-ancestors 'none'/)
    assert.equal((DASHBOARD_HTML.match(/<script/g) ?? []).length, 1, 'one script, no external one')
    assert.doesNotMatch(DASHBOARD_SCRIPT, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/, 'node data is never parsed as HTML or code')
  })
})

describe('dashboard routes on a node (inject)', () => {
  const nodes: NodeHandle[] = []
  after(async () => {
    for (const n of nodes) await n.close()
  })
  const start = async (authToken?: string): Promise<NodeHandle> => {
    const clock = new ManualClock()
    const n = await startNode({ port: 0, clock, store: memoryStore({ clock }), logger: silentLogger, authToken, region: 'eu-west', nodeId: 'alpha' })
    nodes.push(n)
    return n
  }
  const text = (r: ApiResponse): string => (typeof r.body === 'string' ? r.body : Buffer.from(r.body).toString('utf8'))
  const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

  test('a lone node: the page, and a snapshot showing it as a one-member cluster', async () => {
    const n = await start()
    const page = await n.inject({ method: 'GET', url: '/dashboard' })
    assert.equal(page.status, 200)
    assert.match(page.headers['content-type'], /^text\/html/)
    assert.match(text(page), /<title>stratacache dashboard<\/title>/)
    await n.inject({ method: 'PUT', url: '/v1/keys/a', body: 'x' })
    await n.inject({ method: 'GET', url: '/v1/keys/a' })
    await n.inject({ method: 'GET', url: '/v1/keys/missing' })
    const r = await n.inject({ method: 'GET', url: '/v1/dashboard/snapshot' })
    assert.equal(r.status, 200)
    const s = JSON.parse(text(r)) as DashboardSnapshot
    assert.equal(s.standalone, true)
    assert.deepEqual(s.node, { id: 'alpha', url: n.url, region: 'eu-west' })
    assert.equal(s.cluster.self, 'alpha')
    assert.equal(s.cluster.regions[0].region, 'eu-west')
    assert.deepEqual(s.cluster.regions[0].members.map((m) => [m.id, m.status, m.self]), [['alpha', 'alive', true]])
    const cache = s.stats.cache as { size: number; hits: number; misses: number }
    assert.ok(cache.hits >= 1 && cache.misses >= 1)
    assert.equal(s.hitRatioTotal, Math.round((cache.hits / (cache.hits + cache.misses)) * 1e4) / 1e4)
    assert.equal(cache.size, 1)
    const ev = await n.inject({ method: 'GET', url: '/v1/dashboard/events' })
    assert.equal(ev.headers['content-type'], 'text/event-stream')
    assert.match(text(ev), /^event: snapshot\ndata: \{/)
    const post = await n.inject({ method: 'POST', url: '/dashboard' })
    assert.equal(post.status, 405)
    assert.equal(post.headers.allow, 'GET')
    assert.equal((await n.inject({ method: 'GET', url: '/dashboard/' })).status, 404)
    // No route of the dashboard takes a query parameter: one is refused, as on the rest of the API.
    for (const url of ['/dashboard?x=1', '/v1/dashboard/snapshot?x=%zz', '/v1/dashboard/events?since=3']) {
      const bad = await n.inject({ method: 'GET', url })
      assert.equal(bad.status, 400, url)
      assert.equal((JSON.parse(text(bad)) as { code: string }).code, 'ERR_BAD_REQUEST', url)
      // The same over a socket (the event stream is served there, not by inject).
      const res = await fetch(n.url + url)
      assert.equal(res.status, 400, `${url} over a socket`)
      assert.equal(((await res.json()) as { code: string }).code, 'ERR_BAD_REQUEST', url)
    }
  })

  test('with a token: 401 without it (a Basic challenge on the dashboard), Bearer or Basic with the token as password admitted', async () => {
    const n = await start('s3cret')
    for (const url of ['/dashboard', '/v1/dashboard/events', '/v1/dashboard/snapshot']) {
      const r = await n.inject({ method: 'GET', url })
      assert.equal(r.status, 401, url)
      assert.match(r.headers['www-authenticate'], /^Basic realm="stratacache"/)
      assert.equal((await n.inject({ method: 'GET', url, headers: { authorization: basic('x', 'wrong') } })).status, 401)
    }
    assert.equal((await n.inject({ method: 'GET', url: '/dashboard', headers: { authorization: basic('anyone', 's3cret') } })).status, 200)
    assert.equal((await n.inject({ method: 'GET', url: '/v1/dashboard/snapshot', headers: { authorization: 'Bearer s3cret' } })).status, 200)
    // Basic is the dashboard's only: the API keeps to Bearer.
    const api = await n.inject({ method: 'GET', url: '/v1/stats', headers: { authorization: basic('anyone', 's3cret') } })
    assert.equal(api.status, 401)
    assert.equal(api.headers['www-authenticate'], 'Bearer')
    // Cross-site reads are refused as on the API.
    assert.equal((await n.inject({ method: 'GET', url: '/dashboard', headers: { authorization: 'Bearer s3cret', 'sec-fetch-site': 'cross-site' } })).status, 403)
  })
})
