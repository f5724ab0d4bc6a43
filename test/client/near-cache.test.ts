/**
 * The client's near cache against a real node on loopback: hits after a miss, another
 * client's write dropping the entry through /v1/watch, the watch stream behind the same
 * auth as reads, bypass while the stream is down, the Prometheus readings.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { createClient } from '../../src/client/index.js'
import type { HttpRequest, Transport } from '../../src/client/transport.js'
import { undiciTransport } from '../../src/client/undici-transport.js'
import { startTestNode, type TestNode } from '../support/node-fixture.js'
import { TcpProxy } from '../support/tcp-proxy.js'
import { until as untilWithin } from '../support/until.js'
import { stallMeter } from '../support/stall-meter.js'

const TOKEN = 'near-cache-token'
let n: TestNode

before(async () => {
  n = await startTestNode({ authToken: TOKEN, watchMetaInterval: 100 })
})
after(async () => {
  await n.stop()
})

const until = (what: string, ok: () => boolean, ms = 3000): Promise<void> => untilWithin(what, ms, ok)

test('GET /v1/watch needs the token like any read', async () => {
  const denied = await fetch(`${n.url}/v1/watch`)
  assert.equal(denied.status, 401)
  await denied.body?.cancel()
  const ok = await fetch(`${n.url}/v1/watch`, { headers: { authorization: `Bearer ${TOKEN}` } })
  assert.equal(ok.status, 200)
  assert.equal(ok.headers.get('content-type'), 'text/event-stream')
  const reader = ok.body!.getReader()
  const { value } = await reader.read()
  assert.match(Buffer.from(value!).toString(), /^data: \{"t":"hello"/)
  await reader.cancel()
  const bad = await fetch(`${n.url}/v1/watch?x=1`, { headers: { authorization: `Bearer ${TOKEN}` } })
  assert.equal(bad.status, 400)
  await bad.body?.cancel()
})

test('miss then hit; another writer drops the entry; own writes drop it at once; readings', async () => {
  const writer = createClient({ nodes: [n.url], token: TOKEN })
  // Written before the near cache exists: its invalidation cannot race the first read.
  await writer.set('nc:a', 'one')
  const client = createClient({ nodes: [n.url], token: TOKEN, nearCache: { maxEntries: 100, ttl: '30s' } })
  try {
    await until('the stream to be live', () => client.nearCacheStats()!.state === 'live')
    assert.equal((await client.get('nc:a'))?.value.toString(), 'one')
    assert.equal((await client.get('nc:a'))?.value.toString(), 'one')
    assert.equal(client.nearCacheStats()!.hits, 1, JSON.stringify(client.nearCacheStats()))
    await writer.set('nc:a', 'two')
    await until('the invalidation', () => client.nearCacheStats()!.invalidations >= 1)
    assert.equal((await client.get('nc:a'))?.value.toString(), 'two')
    await client.set('nc:a', 'three')
    assert.equal((await client.get('nc:a'))?.value.toString(), 'three', 'read-your-writes through the near cache')
    assert.equal(await client.get('nc:none'), undefined)
    const names = client.nearCacheReadings().map((r) => r.name)
    assert.ok(names.includes('stratacache_client_near_hits_total') && names.includes('stratacache_client_near_gaps_total') && names.includes('stratacache_client_near_bypass_seconds_total'))
    assert.equal(client.nearCacheReadings().find((r) => r.name === 'stratacache_client_near_hits_total')!.read(), client.nearCacheStats()!.hits)
    assert.deepEqual(writer.nearCacheReadings(), [])
    assert.equal(writer.nearCacheStats(), undefined)
  } finally {
    await client.close()
    await writer.close()
  }
})

test('writes never wait on a watcher that does not read; a client that keeps up stays live', async () => {
  const small = await startTestNode({ watchMetaInterval: 100 })
  const client = createClient({ nodes: [small.url], nearCache: { maxEntries: 100 } })
  try {
    await until('live', () => client.nearCacheStats()!.state === 'live')
    // A raw subscriber that never reads (the cut past watchBufferBytes itself is in test/server/watch-hub).
    const stuck = await fetch(`${small.url}/v1/watch`)
    const writer = createClient({ nodes: [small.url], timeout: '30s' })
    const big = 'x'.repeat(900)
    await writer.mset(Array.from({ length: 500 }, (_, i) => ({ key: `slow:${i}:${big}`, value: 'v' })))
    await writer.close()
    await until('every invalidation', () => client.nearCacheStats()!.invalidations >= 500, 10_000).catch((err: unknown) => { throw new Error(`${String(err)}: ${JSON.stringify(client.nearCacheStats())}`) })
    assert.equal(client.nearCacheStats()!.state, 'live')
    assert.equal(client.nearCacheStats()!.gaps, 0)
    await stuck.body?.cancel().catch(() => undefined)
  } finally {
    await client.close()
    await small.stop()
  }
})

test('a fill from a watched node that hangs is tried once, then the read goes the usual way', async () => {
  // Two lone nodes holding the same key; the near cache watches the first, through a proxy that then stops forwarding (a hung node).
  const other = await startTestNode({ authToken: TOKEN, watchMetaInterval: 100 })
  const proxy = await TcpProxy.start(Number(new URL(n.url).port))
  const watched = `http://127.0.0.1:${proxy.port}`
  const inner = undiciTransport({ connections: 4, maxResponseBytes: 1 << 20, keepAliveMs: 4000 })
  const reads = new Map<string, number>()
  const counting: Transport = {
    request(origin: string, req: HttpRequest) {
      if (req.path === '/v1/keys/nc%3Ahung') reads.set(origin, (reads.get(origin) ?? 0) + 1)
      return inner.request(origin, req)
    },
    stream: (origin, req) => inner.stream!(origin, req),
    close: () => inner.close(),
  }
  const writer = createClient({ nodes: [n.url, other.url], token: TOKEN })
  const client = createClient({ nodes: [watched, other.url], token: TOKEN, timeout: '300ms', transport: counting, nearCache: { maxEntries: 10 } })
  try {
    await writer.set('nc:hung', 'v')
    await writer.set('nc:hung', 'v')
    await until('the stream to be live', () => client.nearCacheStats()!.state === 'live' && client.nodes().length === 2)
    proxy.pause()
    const meter = stallMeter()
    const t0 = performance.now()
    assert.equal((await client.get('nc:hung'))?.value.toString(), 'v')
    const ms = performance.now() - t0
    meter.stop()
    // Before: the fill was retried on the hung node (4 x 300 ms and the backoffs) before going elsewhere.
    assert.ok((reads.get(watched) ?? 0) <= 2, `reads sent to the hung watched node: ${JSON.stringify([...reads])}`)
    // One 300 ms try and the way elsewhere; plus what this process (and the nodes in it) was stalled.
    assert.ok(ms < 1200 + meter.stalledMs, `the read took ${ms.toFixed(0)} ms (stalled ${meter.stalledMs.toFixed(0)})`)
  } finally {
    proxy.resume()
    await client.close()
    await writer.close()
    await proxy.close()
    await other.stop()
  }
})

test('an entry the node expires is not served from the near cache after the node dropped it', async () => {
  const writer = createClient({ nodes: [n.url], token: TOKEN })
  const client = createClient({ nodes: [n.url], token: TOKEN, nearCache: { maxEntries: 10, ttl: '30s' } })
  try {
    await until('the stream to be live', () => client.nearCacheStats()!.state === 'live')
    // A real node on its real clock (no clock to move). The fill must land in the entry's
    // last second; on a starved machine the node may expire it first, and then the setup
    // is tried again with a fresh key (at most 3 times).
    let checked = false
    for (let attempt = 0; attempt < 3 && !checked; attempt++) {
      const key = `nc:expiring-${attempt}`
      await writer.set(key, 'x', { ttl: '2s' })
      // The node answers the remaining TTL in whole seconds, rounded up: '1' while up to 1 s is left.
      await untilWithin('the entry to have at most 1 s left', 3000, async () => (await writer.get(key))?.ttlMs === 1000)
      // Part of that second gone, then the fill.
      await new Promise((resolve) => setTimeout(resolve, 400))
      const filled = await client.get(key)
      if (filled === undefined) continue
      assert.equal(filled.value.toString(), 'x')
      await untilWithin('the node to expire the entry', 3000, async () => (await writer.get(key)) === undefined)
      // Before: the near cache kept it for the answered 1 s from the fill, ~400 ms or more past the node's expiry.
      assert.equal(await client.get(key), undefined, 'served from the near cache after the node expired it')
      checked = true
    }
    assert.ok(checked, 'a fill landed before the node expired the entry (3 tries)')
  } finally {
    await client.close()
    await writer.close()
  }
})

test('hits stop once the stream has not been heard for 3 intervals, even when the reader never yields to I/O', async () => {
  // A reader awaiting only near-cache hits runs on microtasks: the stream's bytes and the silence timer never get a turn.
  let dropK = false
  const writer = createClient({ nodes: [n.url], token: TOKEN })
  const client = createClient({ nodes: [n.url], token: TOKEN, nearCache: { maxEntries: 10, ttl: '30s', filter: (m) => !(dropK && m.t === 'key' && m.k === 'nc:busy') } })
  try {
    await writer.set('nc:busy', 'v1')
    await until('the stream to be live', () => client.nearCacheStats()!.state === 'live')
    await untilWithin('a hit', 3000, async () => (await client.get('nc:busy'))?.value.toString() === 'v1' && client.nearCacheStats()!.hits > 0)
    dropK = true // its invalidation is lost: the next meta (100 ms) would repair it, if it were read
    await writer.set('nc:busy', 'v2')
    const t0 = performance.now()
    let last: string | undefined
    while (performance.now() - t0 < 800) last = (await client.get('nc:busy'))?.value.toString()
    // Before: v1 for the whole 800 ms (and up to the near cache's 30 s ttl), 3 intervals being 300 ms.
    assert.equal(last, 'v2', JSON.stringify(client.nearCacheStats()))
  } finally {
    await client.close()
    await writer.close()
  }
})

test('nearCache.filter drops a message only when it returns false, as documented (undefined dropped every one)', async () => {
  const seen: string[] = []
  const client = createClient({ nodes: [n.url], token: TOKEN, nearCache: { maxEntries: 10, filter: ((m: { t: string }) => void seen.push(m.t)) as never } })
  try {
    await until('the stream to be live through a filter that returns nothing', () => client.nearCacheStats()!.state === 'live')
    assert.equal(seen[0], 'hello')
  } finally {
    await client.close()
  }
})

test('a bad per-call timeout is ERR_INVALID_OPTIONS on a near-cache hit too (it was answered from the cache)', async () => {
  const writer = createClient({ nodes: [n.url], token: TOKEN })
  const client = createClient({ nodes: [n.url], token: TOKEN, nearCache: { maxEntries: 10 } })
  try {
    await writer.set('nc:opt', 'v')
    await until('the stream to be live', () => client.nearCacheStats()!.state === 'live')
    await untilWithin('a hit', 3000, async () => (await client.get('nc:opt')) !== undefined && client.nearCacheStats()!.hits > 0)
    const invalid = (e: unknown): boolean => (e as { code?: string }).code === 'ERR_INVALID_OPTIONS' && (e as { option?: string }).option === 'timeout'
    await assert.rejects(client.get('nc:opt', { timeout: 'soon' as never }), invalid)
    await assert.rejects(client.mget(['nc:opt'], { timeout: -1 }), invalid)
  } finally {
    await client.close()
    await writer.close()
  }
})

test('fills skip a watched node the rotation has quarantined: its stream is live, its reads hang', async () => {
  const other = await startTestNode({ authToken: TOKEN, watchMetaInterval: 100 })
  const inner = undiciTransport({ connections: 4, maxResponseBytes: 1 << 20, keepAliveMs: 4000 })
  let hungReads = 0
  const transport: Transport = {
    request(origin: string, req: HttpRequest) {
      if (origin === n.url && req.method === 'GET' && req.path.startsWith('/v1/keys/nc%3Aq')) {
        hungReads++
        return new Promise((_resolve, reject) => req.signal?.addEventListener('abort', () => reject(new Error('aborted'))))
      }
      return inner.request(origin, req)
    },
    stream: (origin, req) => inner.stream!(origin, req),
    close: () => inner.close(),
  }
  const writer = createClient({ nodes: [n.url], token: TOKEN })
  const writer2 = createClient({ nodes: [other.url], token: TOKEN })
  // A timeout long enough that a healthy read on a loaded machine does not count against the healthy node (the checks are counts, not times).
  const client = createClient({ nodes: [n.url, other.url], token: TOKEN, timeout: '1s', transport, nearCache: { maxEntries: 10 } })
  try {
    // Two lone nodes, each written: both hold every key.
    for (let i = 0; i < 8; i++) await writer.set(`nc:q${i}`, `v${i}`)
    for (let i = 0; i < 8; i++) await writer2.set(`nc:q${i}`, `v${i}`)
    await until('the stream to be live', () => client.nearCacheStats()!.state === 'live')
    for (let i = 0; i < 8; i++) assert.equal((await client.get(`nc:q${i}`))?.value.toString(), `v${i}`)
    assert.equal(client.nodes().find((s) => s.node === n.url)!.inRotation, false, 'the hung node is quarantined')
    assert.equal(client.nearCacheStats()!.state, 'live', 'its stream is still live')
    // Before: every miss was pinned to it (8 hung reads, a timeout each).
    assert.ok(hungReads <= 4, `reads sent to the quarantined watched node: ${hungReads}`)
  } finally {
    await client.close()
    await writer.close()
    await writer2.close()
    await other.stop()
  }
})
