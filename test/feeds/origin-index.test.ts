/**
 * Origins and change feeds in process, on a ManualClock: the matching rules, the index
 * against a plain reference model, notice parsing, the cache's erasures and flushes through
 * an in-process feed double, and the index staying in step with L1 under churn (no leak).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { createCache, isCacheError, ManualClock } from '../../src/index.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { createBus } from '../../src/bus/bus.js'
import { MemoryBusHub, memoryTransport } from '../../src/bus/memory-transport.js'
import { OriginIndex, validateDescriptor } from '../../src/feeds/origin-index.js'
import { parseJsonNotice, parseRoutingKey, scopeOfBinding } from '../../src/feeds/notice.js'
import { FeedCounters } from '../../src/feeds/feed-counters.js'
import type { ChangeFeed, ChangeNotice, FeedSink, FeedStats, OriginDescriptor } from '../../src/feeds/types.js'

const FIELDS = ['db', 'type', 'id'] as const

/** The rule, written plainly: they agree on every field both name. */
function matches(d: OriginDescriptor, n: ChangeNotice): boolean {
  return FIELDS.every((f) => d[f] === undefined || n[f] === undefined || d[f] === n[f])
}

/** An in-process feed: the test pushes notices and connection states. */
class TestFeed implements ChangeFeed {
  readonly name = 'test'
  readonly scope: readonly ChangeNotice[]
  readonly #counters = new FeedCounters()
  closed = 0
  failStart: Error | undefined

  constructor(scope: readonly ChangeNotice[] = [{}]) {
    this.scope = scope
  }

  async start(sink: FeedSink): Promise<void> {
    if (this.failStart !== undefined) throw this.failStart
    this.#counters.sink = sink
    this.#counters.transition('up')
  }

  send(notice: ChangeNotice | string): void {
    if (typeof notice === 'string') {
      const parsed = parseRoutingKey(notice)
      if (typeof parsed === 'string') this.#counters.malformed()
      else this.#counters.notice(parsed)
    } else this.#counters.notice(notice)
  }

  state(s: 'up' | 'down'): void {
    this.#counters.transition(s)
  }

  stats(): FeedStats {
    return this.#counters.stats(0)
  }

  async close(): Promise<void> {
    this.closed++
    this.#counters.close()
  }
}

describe('matching rules (src/feeds/types.ts table)', () => {
  const doc = { db: 'accounts', type: 'user', id: '42' }
  const rows: Array<[OriginDescriptor, boolean]> = [
    [{ db: 'accounts', type: 'user', id: '42' }, true],
    [{ db: 'accounts', id: '42' }, true],
    [{ type: 'user', id: '42' }, true],
    [{ db: 'accounts', type: 'user' }, true],
    [{ db: 'accounts' }, true],
    [{ type: 'user' }, true],
    [{ id: '42' }, true],
    [{ db: 'accounts', id: '7' }, false],
    [{ db: 'billing' }, false],
    [{ db: 'accounts', type: 'device', id: '42' }, false],
    [{ type: 'user', id: '7' }, false],
  ]
  test('a notice about doc accounts/user/42 erases exactly the entries the table says', () => {
    const index = new OriginIndex()
    rows.forEach(([d], i) => index.assign(`k${i}`, [d]))
    const erased = new Set(index.match(doc))
    rows.forEach(([d, expected], i) => assert.equal(erased.has(`k${i}`), expected, `${JSON.stringify(d)} ${expected ? 'is' : 'is not'} erased`))
  })

  test('a db-wide notice erases that db and what names no db; {} erases everything', () => {
    const index = new OriginIndex()
    index.assign('a', [{ db: 'accounts', id: '1' }])
    index.assign('b', [{ db: 'billing', id: '1' }])
    index.assign('c', [{ type: 'user', id: '7' }])
    assert.deepEqual(index.match({ db: 'accounts' }).sort(), ['a', 'c'])
    assert.deepEqual(index.match({}).sort(), ['a', 'b', 'c'])
    assert.deepEqual(index.match({ db: 'nothing', type: 'x', id: 'y' }), [])
  })

  test('property: match() equals the plain rule over random descriptors and notices', () => {
    const value = fc.constantFrom('a', 'b', 'c')
    const field = fc.option(value, { nil: undefined })
    const descriptor = fc.record({ db: field, type: field, id: field }).filter((d) => FIELDS.some((f) => d[f] !== undefined))
    const strip = (d: Record<string, string | undefined>): OriginDescriptor => Object.fromEntries(Object.entries(d).filter(([, v]) => v !== undefined))
    fc.assert(
      fc.property(fc.array(fc.array(descriptor, { minLength: 1, maxLength: 3 }), { maxLength: 30 }), fc.array(fc.integer({ min: 0, max: 29 }), { maxLength: 10 }), fc.record({ db: field, type: field, id: field }), (entries, removals, rawNotice) => {
        const index = new OriginIndex()
        const model = new Map<string, OriginDescriptor[]>()
        entries.forEach((ds, i) => {
          const list = ds.map(strip)
          index.assign(`k${i}`, list)
          model.set(`k${i}`, list)
        })
        for (const r of removals) {
          index.remove(`k${r}`)
          model.delete(`k${r}`)
        }
        const notice = strip(rawNotice)
        const expected = [...model].filter(([, ds]) => ds.some((d) => matches(d, notice))).map(([k]) => k)
        assert.deepEqual(index.match(notice).sort(), expected.sort())
        assert.equal(index.keys, model.size)
      }),
      { numRuns: 300 },
    )
  })

  test('reassigning replaces a key’s origins; removing the last key of a descriptor drops the descriptor', () => {
    const index = new OriginIndex()
    index.assign('k', [{ db: 'a' }, { db: 'a' }, { type: 't', id: '1' }])
    assert.equal(index.descriptors, 2, 'duplicates are held once')
    index.assign('k', [{ db: 'b' }])
    assert.deepEqual(index.match({ db: 'a', type: 'x', id: 'y' }), [])
    assert.deepEqual(index.match({ db: 'b', type: 'x', id: 'y' }), ['k'])
    index.remove('k')
    assert.equal(index.keys, 0)
    assert.equal(index.descriptors, 0)
  })

  test('descriptors are validated', () => {
    for (const bad of [null, 'accounts', [], {}, { db: '' }, { db: 5 }, { db: 'a', table: 'x' }, { id: 'x'.repeat(2000) }]) {
      assert.throws(
        () => validateDescriptor(bad, 'origins'),
        (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && /origins/.test((err as Error).message),
        JSON.stringify(bad),
      )
    }
    validateDescriptor({ db: 'a', type: undefined }, 'origins')
  })
})

describe('notice parsing', () => {
  test('kazoo routing keys', () => {
    assert.deepEqual(parseRoutingKey('doc.accounts.user.42'), { db: 'accounts', type: 'user', id: '42' })
    assert.deepEqual(parseRoutingKey('doc_edited.accounts.user.42'), { db: 'accounts', type: 'user', id: '42' })
    assert.deepEqual(parseRoutingKey('doc_deleted.account%2Fab%2Fcd.device.a%2Eb'), { db: 'account/ab/cd', type: 'device', id: 'a.b' })
    for (const bad of ['', 'doc', 'doc.accounts.user', 'doc.accounts.user.42.x', 'user.accounts.user.42', 'doc..user.42', 'doc.accounts.user.%E0%A4%A', 'DOC.accounts.user.42']) {
      assert.equal(typeof parseRoutingKey(bad), 'string', `malformed: ${JSON.stringify(bad)}`)
    }
  })

  test('JSON notices', () => {
    assert.deepEqual(parseJsonNotice('{"db":"accounts","type":"user","id":42,"op":"UPDATE"}'), { db: 'accounts', type: 'user', id: '42' })
    assert.deepEqual(parseJsonNotice('{"db":"accounts"}'), { db: 'accounts' })
    for (const bad of ['', 'nope', '[]', 'null', '42', '{}', '{"op":"x"}', '{"db":""}', '{"id":1.5}', '{"id":{"x":1}}', '{"db":true}']) {
      assert.equal(typeof parseJsonNotice(bad), 'string', `malformed: ${bad}`)
    }
  })

  test('binding keys define the scope', () => {
    assert.deepEqual(scopeOfBinding('doc.#'), {})
    assert.deepEqual(scopeOfBinding('#'), {})
    assert.deepEqual(scopeOfBinding('doc.accounts.#'), { db: 'accounts' })
    assert.deepEqual(scopeOfBinding('doc.*.user.*'), { type: 'user' })
    assert.deepEqual(scopeOfBinding('doc_edited.accounts.user.42'), { db: 'accounts', type: 'user', id: '42' })
  })
})

describe('cache origins and feeds', () => {
  test('a notice erases exactly the matching entries, from L1 and L2', async () => {
    const clock = new ManualClock()
    const store = memoryStore({ clock })
    const cache = createCache<string>({ clock, store })
    const feed = new TestFeed()
    await cache.attachFeed(feed)
    await cache.set('user:42', 'u42', { origins: { db: 'accounts', type: 'user', id: '42' } })
    await cache.set('user:42:devices', 'd', { origins: [{ db: 'accounts', type: 'device', id: '9' }, { db: 'accounts', id: '42' }] })
    await cache.set('user:7', 'u7', { origins: { db: 'accounts', type: 'user', id: '7' } })
    await cache.set('users:list', 'all', { origins: { db: 'accounts', type: 'user' } })
    await cache.set('billing', 'b', { origins: { db: 'billing' } })
    await cache.set('plain', 'p')
    feed.send('doc.accounts.user.42')
    assert.deepEqual(feed.stats(), { state: 'up', notices: 1, malformed: 0, erased: 3, reconnects: 0, flushed: 0 })
    for (const gone of ['user:42', 'user:42:devices', 'users:list']) {
      assert.equal(await cache.peek(gone), undefined, `${gone} erased from L1`)
      assert.equal(await store.get(`cache:${gone}`), undefined, `${gone} erased from L2`)
    }
    for (const [kept, v] of [
      ['user:7', 'u7'],
      ['billing', 'b'],
      ['plain', 'p'],
    ]) {
      assert.equal(await cache.get(kept as string), v, `${kept} kept`)
    }
    await cache.close()
    assert.equal(feed.closed, 1, 'closing the cache closes its feeds')
  })

  test('L1 alone: a plain set over a key written with origins forgets them (a notice for them leaves the new value)', async () => {
    const cache = createCache<string>({ clock: new ManualClock() })
    const feed = new TestFeed()
    await cache.attachFeed(feed)
    await cache.set('user:42', 'old', { origins: { db: 'accounts', type: 'user', id: '42' } })
    await cache.set('user:42', 'new', { ttl: '1h' })
    await cache.set('user:7', 'u7', { origins: { db: 'accounts', type: 'user', id: '7' } })
    await cache.set('user:7', 'u7b')
    feed.send('doc.accounts.user.42')
    feed.send('doc.accounts.user.7')
    assert.equal(feed.stats().erased, 0, 'neither key depends on its old origins any more')
    assert.equal(await cache.peek('user:42'), 'new')
    assert.equal(await cache.peek('user:7'), 'u7b')
    await cache.close()
  })

  test('with a bus: a process that read the entry from L2 (no origins there) drops it too', async () => {
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve))
    }
    const clock = new ManualClock()
    const store = memoryStore({ clock })
    const hub = new MemoryBusHub()
    const busA = createBus({ transport: memoryTransport({ hub }), clock })
    const busB = createBus({ transport: memoryTransport({ hub }), clock })
    const a = createCache<string>({ clock, store, bus: busA })
    const b = createCache<string>({ clock, store, bus: busB })
    await Promise.all([busA.start(), busB.start()])
    await settle()
    const feed = new TestFeed()
    await a.attachFeed(feed)
    await a.set('user:42', 'old', { origins: { db: 'accounts', type: 'user', id: '42' } })
    await settle()
    assert.equal(await b.get('user:42'), 'old', 'B reads it from L2')
    assert.equal(await b.peek('user:42'), 'old', 'and holds it in L1, without origins')
    feed.send('doc.accounts.user.42')
    await settle()
    assert.equal(await b.peek('user:42'), undefined, 'B dropped it on A’s bus message')
    assert.equal(await store.get('cache:user:42'), undefined, 'gone from L2')
    assert.equal(await b.get('user:42'), undefined)
    await a.close()
    await b.close()
  })

  test('getOrSet with origins computed from the value', async () => {
    const clock = new ManualClock()
    const cache = createCache<{ id: string }>({ clock })
    const feed = new TestFeed()
    await cache.attachFeed(feed)
    let calls = 0
    const load = (): Promise<{ id: string }> => cache.getOrSet('me', () => ({ id: String(++calls) }), { origins: (v) => ({ db: 'accounts', id: v.id }) })
    assert.deepEqual(await load(), { id: '1' })
    feed.send({ db: 'accounts', type: 'user', id: '2' })
    assert.deepEqual(await load(), { id: '1' }, 'another doc: still cached')
    feed.send({ db: 'accounts', type: 'user', id: '1' })
    assert.deepEqual(await load(), { id: '2' }, 'its doc changed: recomputed')
    await cache.close()
  })

  test('malformed notices are counted and ignored; a cache keeps serving', async () => {
    const cache = createCache<string>({ clock: new ManualClock() })
    const feed = new TestFeed()
    await cache.attachFeed(feed)
    await cache.set('k', 'v', { origins: { db: 'a' } })
    for (const bad of ['garbage', 'doc.a', 'doc.a.b.c.d', '', 'doc.%ZZ.b.c']) feed.send(bad)
    assert.equal(feed.stats().malformed, 5)
    assert.equal(feed.stats().notices, 0)
    assert.equal(await cache.get('k'), 'v')
    await cache.close()
  })

  test('connection lost and back: the feed’s scope is flushed both times (and only its scope)', async () => {
    const cache = createCache<string>({ clock: new ManualClock() })
    const feed = new TestFeed([{ db: 'accounts' }])
    await cache.attachFeed(feed)
    await cache.set('a', '1', { origins: { db: 'accounts', id: '1' } })
    await cache.set('b', '2', { origins: { db: 'billing', id: '1' } })
    await cache.set('c', '3')
    feed.state('down')
    assert.equal(await cache.peek('a'), undefined, 'flushed when the connection is lost')
    await cache.set('a', '1b', { origins: { db: 'accounts', id: '1' } })
    feed.state('up')
    assert.equal(await cache.peek('a'), undefined, 'flushed again when it is back')
    assert.equal(await cache.peek('b'), '2', 'outside the scope: kept')
    assert.equal(await cache.peek('c'), '3', 'no origins: kept')
    assert.equal(feed.stats().flushed, 2)
    await cache.close()
  })

  test('flushOnReconnect: false keeps entries over a reconnect', async () => {
    const cache = createCache<string>({ clock: new ManualClock() })
    const feed = new TestFeed()
    await cache.attachFeed(feed, { flushOnReconnect: false })
    await cache.set('a', '1', { origins: { db: 'accounts' } })
    feed.state('down')
    feed.state('up')
    assert.equal(await cache.peek('a'), '1')
    assert.equal(feed.stats().flushed, 0)
    await cache.close()
  })

  test('attachFeed: validation, a feed that cannot start leaves nothing attached, detach closes the feed', async () => {
    const cache = createCache<string>({ clock: new ManualClock() })
    for (const bad of [null, {}, { start: () => {} }]) {
      await assert.rejects(cache.attachFeed(bad as unknown as ChangeFeed), (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && /feed/.test((err as Error).message))
    }
    await assert.rejects(cache.attachFeed(new TestFeed(), { flushOnReconnect: 'yes' as unknown as boolean }), (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && /flushOnReconnect/.test((err as Error).message))
    const failing = new TestFeed()
    failing.failStart = new Error('down')
    await assert.rejects(cache.attachFeed(failing), /down/)
    const feed = new TestFeed()
    const detach = await cache.attachFeed(feed)
    await detach()
    await detach()
    assert.equal(feed.closed, 1)
    await cache.set('a', '1', { origins: { db: 'x' } })
    feed.send({ db: 'x' })
    assert.equal(await cache.peek('a'), '1', 'a detached feed erases nothing')
    await cache.close()
  })

  test('bad origins are refused before anything is stored', async () => {
    const cache = createCache<string>({ clock: new ManualClock() })
    await assert.rejects(cache.set('k', 'v', { origins: { db: '' } }), (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && /origins/.test((err as Error).message))
    await assert.rejects(cache.set('k', 'v', { origins: (() => 'nope') as unknown as () => OriginDescriptor }), (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && /origins/.test((err as Error).message))
    assert.equal(await cache.peek('k'), undefined)
    assert.throws(() => createCache({ defaults: { origins: { table: 'x' } as unknown as OriginDescriptor } }), (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && /defaults\.origins/.test((err as Error).message))
    await cache.close()
  })

  test('no leak: the index follows L1 through eviction, expiry, delete, overwrite and clear', async () => {
    const clock = new ManualClock()
    const cache = createCache<number>({ clock, memory: { maxEntries: 500, policy: 'lru' } })
    const feed = new TestFeed()
    await cache.attachFeed(feed)
    const origins = (i: number): OriginDescriptor[] => [{ db: `db${i % 7}`, type: 'doc', id: String(i) }, { db: `db${i % 7}` }]
    // Churn: 20,000 entries through a 500-entry L1 (evictions), short TTLs (expiry).
    for (let i = 0; i < 20_000; i++) {
      await cache.set(`k${i}`, i, { origins: origins(i), ttl: i % 3 === 0 ? 50 : '1h' })
      if (i % 1000 === 0) clock.advance(100)
    }
    let stats = cache.stats()
    assert.ok(stats.origins !== undefined)
    assert.equal(stats.origins.keys, stats.size, 'every entry has origins: the index holds exactly the L1 keys')
    assert.ok(stats.evictions.evict > 10_000 && stats.evictions.expire > 0, 'the churn evicted and expired')
    assert.ok(stats.origins.descriptors <= 2 * stats.size)
    clock.advance(5_000)
    await cache.get('k19999')
    stats = cache.stats()
    assert.ok(stats.origins !== undefined && stats.origins.keys === stats.size, 'expired entries leave the index')
    // Overwrite without origins, delete, erase by notice.
    await cache.set('k19999', 1)
    await cache.delete('k19998')
    assert.equal(cache.stats().origins?.keys, cache.stats().size - 1, 'overwritten without origins: out of the index')
    feed.send({ db: 'db0' })
    assert.equal(cache.stats().origins?.keys, cache.stats().size - 1, 'erased entries leave the index')
    for (let i = 19_000; i < 20_000; i++) {
      const held = await cache.peek(`k${i}`)
      if (held !== undefined && i !== 19_999) assert.notEqual(i % 7, 0, `k${i} of db0 was erased`)
    }
    await cache.clear()
    assert.deepEqual(cache.stats().origins, { keys: 0, descriptors: 0 }, 'clear empties the index')
    await cache.close()
  })

  test('an entry the L1 does not admit is not indexed (TinyLFU admission)', async () => {
    const cache = createCache<number>({ clock: new ManualClock(), memory: { maxEntries: 50, policy: 'tinylfu' } })
    const feed = new TestFeed()
    await cache.attachFeed(feed)
    // Make 50 keys hot, then offer 1000 one-hit wonders.
    for (let round = 0; round < 5; round++) for (let i = 0; i < 50; i++) await cache.getOrSet(`hot${i}`, () => i, { origins: { id: `hot${i}` } })
    for (let i = 0; i < 1000; i++) await cache.set(`cold${i}`, i, { origins: { id: `cold${i}` } })
    const s = cache.stats()
    assert.ok(s.evictions.evict > 0 || s.size < 1050, 'admission or eviction happened')
    assert.equal(s.origins?.keys, s.size, `index ${s.origins?.keys} = L1 ${s.size}`)
    await cache.close()
  })
})
