/**
 * `mget` through the client's near cache, against a real node on loopback: hits answered
 * locally, the misses fetched in one call and filled into the near cache; a write that lands
 * between the claim and the fill (the transport holds the mget answer back until the write's
 * invalidation has reached the near cache) leaves no stale entry.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { createClient } from '../../src/client/index.js'
import { undiciTransport } from '../../src/client/undici-transport.js'
import type { HttpRequest, HttpResponse, Transport } from '../../src/client/transport.js'
import type { WatchMessage } from '../../src/protocol/watch.js'
import { startTestNode, type TestNode } from '../support/node-fixture.js'
import { until as untilWithin } from '../support/until.js'

let n: TestNode

before(async () => {
  n = await startTestNode({ watchMetaInterval: 100 })
})
after(async () => {
  await n.stop()
})

const until = (what: string, ok: () => boolean, ms = 5000): Promise<void> => untilWithin(what, ms, ok)

/** A real transport that records every request and lets a test hold an answer back. */
function recording(hold?: (req: HttpRequest, res: HttpResponse) => Promise<void>): Transport & { sent: Array<{ method: string; path: string; body?: string }> } {
  const inner = undiciTransport({ connections: 4, maxResponseBytes: 1 << 20, keepAliveMs: 4000 })
  const sent: Array<{ method: string; path: string; body?: string }> = []
  return {
    sent,
    async request(origin, req) {
      sent.push({ method: req.method, path: req.path, body: req.body === undefined ? undefined : Buffer.from(req.body).toString('utf8') })
      const res = await inner.request(origin, req)
      if (hold !== undefined) await hold(req, res)
      return res
    },
    stream: (origin, req) => inner.stream!(origin, req),
    close: () => inner.close(),
  }
}

test('mget: hits from the near cache, the misses in one call, filled like get', async () => {
  const writer = createClient({ nodes: [n.url] })
  await writer.mset([
    { key: 'm:a', value: 'A' },
    { key: 'm:b', value: 'B' },
    { key: 'm:c', value: 'C', tags: ['t:1'] },
  ])
  const transport = recording()
  const client = createClient({ nodes: [n.url], transport, nearCache: { maxEntries: 100, ttl: '30s' } })
  try {
    await until('live', () => client.nearCacheStats()!.state === 'live')
    assert.equal((await client.get('m:a'))?.value.toString(), 'A')
    transport.sent.length = 0
    const got = await client.mget(['m:a', 'm:b', 'm:c', 'm:none', 'm:b'])
    assert.deepEqual(got.map((e) => e?.value.toString()), ['A', 'B', 'C', undefined, 'B'])
    assert.deepEqual(got[2]?.tags, ['t:1'])
    assert.equal(transport.sent.length, 1, JSON.stringify(transport.sent))
    assert.equal(transport.sent[0]!.path, '/v1/mget')
    assert.deepEqual(JSON.parse(transport.sent[0]!.body!), { keys: ['m:b', 'm:c', 'm:none'] }, 'only the misses, each once')
    // Filled: the next reads of b and c are hits; the absent key is not cached.
    const hits = client.nearCacheStats()!.hits
    assert.equal((await client.get('m:b'))?.value.toString(), 'B')
    assert.deepEqual((await client.mget(['m:c', 'm:a'])).map((e) => e?.value.toString()), ['C', 'A'])
    assert.equal(transport.sent.length, 1, 'no request for cached keys')
    assert.equal(client.nearCacheStats()!.hits, hits + 3)
    assert.equal(await client.get('m:none'), undefined)
    assert.equal(transport.sent.length, 2, 'the absent key went to the node')
    // Another writer's change still drops an entry filled by mget.
    await writer.set('m:b', 'B2')
    await until('the invalidation of m:b', () => client.nearCacheStats()!.invalidations >= 1)
    assert.deepEqual((await client.mget(['m:b'])).map((e) => e?.value.toString()), ['B2'])
  } finally {
    await client.close()
    await writer.close()
  }
})

test('mget racing a write: the value read before the write and answered after it is not cached', async () => {
  const writer = createClient({ nodes: [n.url] })
  await writer.mset([
    { key: 'r:a', value: 'old-a' },
    { key: 'r:b', value: 'old-b' },
  ])
  const seen = new Set<string>()
  const filter = (m: WatchMessage): boolean => {
    if (m.t === 'key') seen.add(m.k)
    return true
  }
  let race = false
  // Holds the mget answer back until another client's write of r:b has been applied on the
  // node and its invalidation has reached the near cache: the write lands between claim and fill.
  const transport = recording(async (req) => {
    if (!race || req.path !== '/v1/mget') return
    race = false
    await writer.set('r:b', 'new-b')
    await until('the invalidation of r:b', () => seen.has('r:b'))
  })
  const client = createClient({ nodes: [n.url], transport, nearCache: { maxEntries: 100, ttl: '30s', filter } })
  try {
    await until('live', () => client.nearCacheStats()!.state === 'live')
    const refused = client.nearCacheStats()!.refusedPublishes
    race = true
    const got = await client.mget(['r:a', 'r:b'])
    assert.deepEqual(got.map((e) => e?.value.toString()), ['old-a', 'old-b'], 'the answer is what the node said when it read')
    assert.equal(client.nearCacheStats()!.refusedPublishes, refused + 1, 'the raced fill was refused')
    transport.sent.length = 0
    assert.equal((await client.get('r:b'))?.value.toString(), 'new-b', 'no stale entry left behind')
    assert.equal(transport.sent.length, 1, 'r:b was fetched again')
    assert.equal((await client.get('r:a'))?.value.toString(), 'old-a')
    assert.equal(transport.sent.length, 1, 'r:a, not raced, was filled')
  } finally {
    await client.close()
    await writer.close()
  }
})

test('a tag invalidation racing an mget cancels only the fill of the entry carrying the tag', async () => {
  const writer = createClient({ nodes: [n.url] })
  await writer.mset([
    { key: 'g:x', value: 'X', tags: ['grp:1:sub'] },
    { key: 'g:y', value: 'Y', tags: ['grp:10'] },
    { key: 'g:z', value: 'Z' },
  ])
  let tagMessages = 0
  const filter = (m: WatchMessage): boolean => {
    if (m.t === 'all' && m.why === 'tags') tagMessages++
    return true
  }
  let race = false
  const transport = recording(async (req) => {
    if (!race || req.path !== '/v1/mget') return
    race = false
    await writer.invalidate(['grp:1'])
    await until('the tag invalidation', () => tagMessages === 1)
  })
  const client = createClient({ nodes: [n.url], transport, nearCache: { maxEntries: 100, ttl: '30s', filter } })
  try {
    await until('live', () => client.nearCacheStats()!.state === 'live')
    const refused = client.nearCacheStats()!.refusedPublishes
    race = true
    assert.deepEqual((await client.mget(['g:x', 'g:y', 'g:z'])).map((e) => e?.value.toString()), ['X', 'Y', 'Z'])
    assert.equal(client.nearCacheStats()!.refusedPublishes, refused + 1, 'only g:x (tag grp:1:sub, under grp:1) was refused')
    transport.sent.length = 0
    assert.equal(await client.get('g:x'), undefined, 'g:x was invalidated on the node and not cached')
    assert.equal(transport.sent.length, 1)
    assert.deepEqual((await client.mget(['g:y', 'g:z'])).map((e) => e?.value.toString()), ['Y', 'Z'])
    assert.equal(transport.sent.length, 1, 'g:y and g:z were filled despite the invalidation')
  } finally {
    await client.close()
    await writer.close()
  }
})

test('mget while the near cache bypasses goes to the node and fills nothing', async () => {
  const writer = createClient({ nodes: [n.url] })
  await writer.set('b:a', 'A')
  const transport = recording()
  const client = createClient({ nodes: [n.url], transport, nearCache: { maxEntries: 100, ttl: '30s', filter: () => false } })
  try {
    // The filter drops every message, hello included: the stream never goes live.
    assert.deepEqual((await client.mget(['b:a'])).map((e) => e?.value.toString()), ['A'])
    assert.deepEqual((await client.mget(['b:a'])).map((e) => e?.value.toString()), ['A'])
    assert.equal(transport.sent.filter((r) => r.path === '/v1/mget').length, 2)
    assert.equal(client.nearCacheStats()!.size, 0)
  } finally {
    await client.close()
    await writer.close()
  }
})
