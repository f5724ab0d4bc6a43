/**
 * Origins in L2 (src/feeds/origin-tags.ts): the derived-tag matching against the plain
 * rule and the origin index (property tests, also through a real TagTrie), the encoding's
 * bounds, the reserved `@origin` root, and the gap closed: an L2 record that no process
 * holds in L1 is never served after a notice heard by a process that never held it.
 * ManualClock, memory stores and memory buses; no sleeping.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { createCache, isCacheError, ManualClock } from '../../src/index.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { createBus } from '../../src/bus/bus.js'
import { MemoryBusHub, memoryTransport } from '../../src/bus/memory-transport.js'
import { OriginIndex } from '../../src/feeds/origin-index.js'
import { noticeTags, originSignature, originTags } from '../../src/feeds/origin-tags.js'
import type { ChangeNotice, OriginDescriptor } from '../../src/feeds/types.js'
import { TagTrie } from '../../src/tags/tag-trie.js'
import { MAX_TAG_LENGTH, normalizeTags, validateTag } from '../../src/tags/validate-tag.js'
import { settle, TestFeed } from '../support/test-feed.js'
import { FlakyStore } from '../support/flaky-store.js'

const FIELDS = ['db', 'type', 'id'] as const

/** The rule, written plainly: they agree on every field both name. */
function matches(d: OriginDescriptor, n: ChangeNotice): boolean {
  return FIELDS.every((f) => d[f] === undefined || n[f] === undefined || d[f] === n[f])
}

// Few values, so that matches are common; long ones (hashed) and non-ASCII among them.
const LONG = 'x'.repeat(100)
const value = fc.oneof(fc.constantFrom('a', 'b', 'ä', '42', `${LONG}1`, `${LONG}2`), fc.string({ minLength: 1, maxLength: 8 }))
const fields = fc.record({ db: fc.option(value, { nil: undefined }), type: fc.option(value, { nil: undefined }), id: fc.option(value, { nil: undefined }) })
const strip = (d: { db?: string | undefined; type?: string | undefined; id?: string | undefined }): OriginDescriptor => {
  const out: { db?: string; type?: string; id?: string } = {}
  for (const f of FIELDS) if (d[f] !== undefined) out[f] = d[f]
  return out
}
const descriptor = fields.map(strip).filter((d) => Object.keys(d).length > 0)
const notice = fields.map(strip)

describe('derived origin tags match exactly as the matching rule', () => {
  test('one origin: a shared tag ⟺ the plain rule ⟺ the origin index', () => {
    fc.assert(
      fc.property(descriptor, notice, (o, n) => {
        // The trie's rule: a tag is reached by itself and by any path prefix of it.
        const own = originTags([o])
        const hit = noticeTags(n).some((t) => own.some((e) => e === t || e.startsWith(`${t}:`)))
        const index = new OriginIndex()
        index.assign('k', [o])
        assert.equal(hit, matches(o, n), `origin ${JSON.stringify(o)} notice ${JSON.stringify(n)}`)
        assert.equal(hit, index.match(n).length === 1)
      }),
      { numRuns: 3000 },
    )
  })

  test('several origins per entry, through a real TagTrie: invalid ⟺ one origin matches', () => {
    const clock = new ManualClock()
    fc.assert(
      fc.property(fc.array(descriptor, { minLength: 1, maxLength: 4 }), notice, (origins, n) => {
        const trie = new TagTrie({ clock })
        const snapshot = trie.snapshot(originTags(origins), undefined, true)
        const other = trie.snapshot(['user:1'])
        for (const t of noticeTags(n)) trie.invalidate(t)
        const expected = origins.some((o) => matches(o, n))
        assert.equal(trie.check(snapshot) === 'invalid', expected, `origins ${JSON.stringify(origins)} notice ${JSON.stringify(n)}`)
        assert.equal(trie.check(other), 'valid', 'user tags are never reached')
        trie.close()
      }),
      { numRuns: 1500 },
    )
  })

  test('the empty notice (a scope of everything) is the root, above every origin tag', () => {
    assert.deepEqual(noticeTags({}), ['@origin'])
    const trie = new TagTrie({ clock: new ManualClock() })
    const a = trie.snapshot(originTags([{ db: 'x' }]), undefined, true)
    const b = trie.snapshot(originTags([{ type: 't', id: '1' }]), undefined, true)
    const user = trie.snapshot(['org:1'])
    trie.invalidate('@origin')
    assert.equal(trie.check(a), 'invalid')
    assert.equal(trie.check(b), 'invalid')
    assert.equal(trie.check(user), 'valid')
    trie.close()
  })

  test('tag counts: 7 per origin (deduplicated across origins), 2^|fields| per notice (7 for a full one)', () => {
    assert.equal(originTags([{ db: 'a', type: 'u', id: '1' }]).length, 7)
    assert.equal(originTags([{ db: 'a' }]).length, 7)
    assert.equal(originTags([{ db: 'a' }, { db: 'a' }]).length, 7)
    // {db:a} and {db:b} share the three patterns that do not look at db.
    assert.equal(originTags([{ db: 'a' }, { db: 'b' }]).length, 11)
    assert.equal(noticeTags({ db: 'a', type: 'u', id: '1' }).length, 7, 'the full pattern’s empty subset is skipped')
    assert.equal(noticeTags({ db: 'a', id: '1' }).length, 4)
    assert.equal(noticeTags({ id: '1' }).length, 2)
  })

  test('every derived tag is a well-formed internal tag within MAX_TAG_LENGTH, for any values up to 1024 characters', () => {
    const any = fc.string({ minLength: 1, maxLength: 1024, unit: 'binary' })
    fc.assert(
      fc.property(any, any, any, (db, type, id) => {
        for (const t of [...originTags([{ db, type, id }]), ...noticeTags({ db, type, id })]) {
          validateTag(t, true)
          assert.ok(t.length <= MAX_TAG_LENGTH, `${t.length} characters`)
          assert.equal(t.split(':').length, 2, 'root and one segment: no origin tag is below another')
        }
      }),
      { numRuns: 300 },
    )
    // The longest case: three values just past the literal limit, hashed.
    const big = 'é'.repeat(1024)
    for (const t of originTags([{ db: big, type: big, id: big }])) assert.ok(t.length <= MAX_TAG_LENGTH)
  })

  test('distinct values never share a tag (literal and hashed forms included)', () => {
    const any = fc.string({ minLength: 1, maxLength: 120, unit: 'grapheme' })
    fc.assert(
      fc.property(any, any, (a, b) => {
        fc.pre(a !== b)
        const tagsA = new Set(originTags([{ id: a }]))
        assert.equal(noticeTags({ id: b }).some((t) => tagsA.has(t)), false)
      }),
      { numRuns: 1000 },
    )
  })

  test('origin signatures: order-insensitive for lists, distinct for distinct descriptors', () => {
    assert.equal(originSignature([{ db: 'a' }, { id: '1' }]), originSignature([{ id: '1' }, { db: 'a' }]))
    assert.notEqual(originSignature([{ db: 'a' }]), originSignature([{ type: 'a' }]))
    assert.notEqual(originSignature([{ db: 'a:b' }]), originSignature([{ db: 'a', type: 'b' }]))
  })
})

describe('the @origin root is reserved', () => {
  const reserved = (err: unknown): boolean => isCacheError(err, 'ERR_INVALID_TAG') && /reserved/.test((err as Error).message)

  test('user tags cannot name, forge or invalidate origin tags; look-alikes are fine', async () => {
    for (const tag of ['@origin', '@origin:7.7', originTags([{ id: '1' }])[0] as string]) {
      assert.throws(() => validateTag(tag), reserved)
      assert.throws(() => normalizeTags(['a', tag]), reserved)
      validateTag(tag, true)
    }
    for (const tag of ['@originals', 'x:@origin', '@Origin:1', 'origin']) validateTag(tag)

    const clock = new ManualClock()
    const cache = createCache<string>({ clock, store: memoryStore({ clock }) })
    const forged = originTags([{ db: 'accounts' }])[0] as string
    await assert.rejects(cache.invalidateTags(['@origin']), reserved)
    await assert.rejects(cache.invalidateTags([forged]), reserved)
    await assert.rejects(cache.set('k', 'v', { tags: [forged] }), reserved)
    await assert.rejects(cache.set('k', 'v', { tags: ['ok', forged], origins: { db: 'accounts' } }), reserved)
    await assert.rejects(cache.getOrSet('k', () => 'v', { tags: () => [forged] }), reserved)
    await assert.rejects(
      cache.getOrSet('k', (ctx) => {
        ctx.setTags(['@origin'])
        return 'v'
      }),
      reserved,
    )
    assert.equal(await cache.get('k'), undefined, 'nothing stored')
    await cache.close()
  })
})

/** Three processes (separate caches) sharing one L2 and one clock. */
function trio(bus = false) {
  const clock = new ManualClock()
  const store = memoryStore({ clock })
  const hub = new MemoryBusHub()
  const make = () => {
    const b = bus ? createBus({ transport: memoryTransport({ hub }), clock }) : undefined
    return { cache: createCache<string>({ clock, store, ...(b === undefined ? {} : { bus: b }) }), bus: b }
  }
  return { clock, store, a: make(), b: make(), c: make() }
}

const USER_42 = { db: 'accounts', type: 'user', id: '42' }

describe('a notice reaches L2 records no process holds in L1', () => {
  test('A writes and closes; B never held it and hears the notice; C (fresh L1) does not get the stale value', async () => {
    const { clock, store, a, b, c } = trio()
    await a.cache.set('user:42', 'old', { origins: USER_42 })
    await a.cache.set('user:7', 'seven', { origins: { db: 'accounts', type: 'user', id: '7' } })
    await a.cache.close()
    const feed = new TestFeed()
    await b.cache.attachFeed(feed)
    clock.advance(1)
    feed.send({ db: 'accounts', type: 'user', id: '42' })
    assert.equal(feed.stats().erased, 0, 'B held nothing to erase')
    await settle()
    assert.ok((await store.get(`cache#h:${noticeTags(USER_42)[0] as string}`)) !== undefined, 'the version is in L2')
    assert.equal(await c.cache.get('user:42'), undefined, 'C does not get the stale value')
    let calls = 0
    assert.equal(
      await c.cache.getOrSet(
        'user:42',
        () => {
          calls++
          return 'new'
        },
        { origins: USER_42 },
      ),
      'new',
    )
    assert.equal(calls, 1, 'recomputed')
    assert.equal(await c.cache.get('user:7'), 'seven', 'another document is kept')
    await b.cache.close()
    await c.cache.close()
  })

  test('the hearing process itself holds the entry only as read from L2 (not in its origin index): it stops serving it', async () => {
    const { clock, a, b } = trio()
    await a.cache.set('user:42', 'old', { origins: USER_42 })
    assert.equal(await b.cache.get('user:42'), 'old')
    assert.equal(await b.cache.peek('user:42'), 'old', 'adopted into B’s L1, its origins not indexed there')
    assert.equal(b.cache.stats().origins, undefined)
    const feed = new TestFeed()
    await b.cache.attachFeed(feed)
    clock.advance(1)
    feed.send({ id: '42' })
    assert.equal(await b.cache.peek('user:42'), undefined, 'invalid through its origin tags at once')
    await settle()
    for (const x of [a, b]) await x.cache.close()
  })

  test('computed origins, dropped from A by eviction; broad and unrelated notices', async () => {
    const clock = new ManualClock()
    const store = memoryStore({ clock })
    const a = createCache<{ db: string; id: string; v: string }>({ clock, store, memory: { maxEntries: 1 } })
    const b = createCache<{ db: string; id: string; v: string }>({ clock, store })
    const c = createCache<{ db: string; id: string; v: string }>({ clock, store })
    const origins = (doc: { db: string; id: string }) => ({ db: doc.db, id: doc.id })
    await a.getOrSet('doc:1', () => ({ db: 'accounts', id: '1', v: 'old' }), { origins })
    await a.getOrSet('doc:2', () => ({ db: 'billing', id: '2', v: 'old' }), { origins })
    assert.equal(await a.peek('doc:1'), undefined, 'evicted from A')
    const feed = new TestFeed()
    await b.attachFeed(feed)
    clock.advance(1)
    feed.send({ db: 'accounts', id: '7' })
    feed.send({ db: 'other' })
    await settle()
    assert.equal((await c.get('doc:1'))?.v, 'old', 'unrelated notices reach nothing')
    const d = createCache<{ db: string; id: string; v: string }>({ clock, store })
    clock.advance(1)
    feed.send({ type: 'invoice', id: '1' }) // names no db: it may be doc:1's document
    await settle()
    assert.equal(await d.get('doc:1'), undefined, 'a broader notice that matches')
    assert.equal((await d.get('doc:2'))?.v, 'old')
    for (const x of [a, b, c, d]) await x.close()
  })

  test('with a bus: C holds the entry in L1, B (which never held it) hears the notice, C drops it at once', async () => {
    const { clock, a, b, c } = trio(true)
    await Promise.all([a.bus?.start(), b.bus?.start(), c.bus?.start()])
    await settle()
    await a.cache.set('user:42', 'old', { origins: USER_42, tags: ['team:1'] })
    await a.cache.close()
    await settle()
    assert.equal(await c.cache.get('user:42'), 'old')
    assert.equal(await c.cache.peek('user:42'), 'old', 'in C’s L1')
    const feed = new TestFeed()
    await b.cache.attachFeed(feed)
    clock.advance(1)
    feed.send({ type: 'user' })
    await settle()
    assert.equal(await c.cache.peek('user:42'), undefined, 'dropped from C’s L1 by the bus message')
    assert.equal(await c.cache.get('user:42'), undefined)
    await b.cache.close()
    await c.cache.close()
  })

  test('a notice heard while another process computes the value makes the result invalid', async () => {
    const { clock, a, b, c } = trio(true)
    await Promise.all([a.bus?.start(), b.bus?.start(), c.bus?.start()])
    await settle()
    const feed = new TestFeed()
    await b.cache.attachFeed(feed)
    let release!: (v: string) => void
    const computing = a.cache.getOrSet('user:42', () => new Promise<string>((r) => (release = r)), { origins: USER_42 })
    await settle()
    clock.advance(1)
    feed.send({ db: 'accounts', id: '42' })
    await settle()
    release('read before the change')
    assert.equal(await computing, 'read before the change', 'the caller gets its result')
    await settle()
    assert.equal(await c.cache.get('user:42'), undefined, 'nobody serves it afterwards')
    assert.equal(await a.cache.get('user:42'), undefined)
    for (const x of [a, b, c]) await x.cache.close()
  })

  test('origins are part of the tag definition: other origins miss, get() and the same origins hit', async () => {
    const { clock, a, c } = trio()
    await a.cache.set('plain', 'p')
    await a.cache.set('user:42', 'v', { origins: USER_42 })
    let calls = 0
    const factory = (): string => {
      calls++
      return 'computed'
    }
    assert.equal(await c.cache.getOrSet('plain', factory, { origins: USER_42 }), 'computed', 'written without origins: a miss')
    assert.equal(await c.cache.getOrSet('user:42', factory, { origins: { ...USER_42 } }), 'v', 'same origins (another object): a hit')
    assert.equal(await c.cache.getOrSet('user:42', factory, { origins: { db: 'accounts' } }), 'computed', 'other origins: a miss')
    assert.equal(calls, 2)
    const e = createCache<string>({ clock, store: memoryStore({ clock }) })
    await e.set('k', 'v', { origins: USER_42 })
    assert.equal(await e.get('k'), 'v')
    assert.equal(await e.getOrSet('k', factory, { origins: [USER_42] }), 'v')
    for (const x of [a.cache, c.cache, e]) await x.close()
  })

  test('L2 down when the notice is heard: the versions are queued and land once it is back; meanwhile nobody vouches for the record', async () => {
    const clock = new ManualClock()
    const store = new FlakyStore(clock)
    const l2 = { timeout: '100ms', retry: { attempts: 0 }, breaker: { openFor: '1s', successThreshold: 1 } } as const
    const make = () => createCache<string>({ clock, store, l2 })
    const a = make()
    await a.set('user:42', 'old', { origins: USER_42 })
    await a.close()
    const b = make()
    const feed = new TestFeed()
    await b.attachFeed(feed)
    store.health = 'down'
    clock.advance(1)
    feed.send(USER_42)
    for (let t = 0; t < 500; t += 50) {
      clock.advance(50)
      await settle(2)
    }
    assert.equal(b.stats().l2?.queued, 7, 'the 7 tag versions wait for L2')
    const c = make()
    assert.equal(await c.get('user:42'), undefined, 'L2 unreadable: a miss')
    store.health = 'up'
    for (let t = 0; t < 3_000; t += 100) {
      clock.advance(100)
      await settle(2)
    }
    assert.equal(b.stats().l2?.queued, 0, 'replayed')
    const d = make()
    assert.equal(await d.get('user:42'), undefined, 'the replayed versions make the record invalid')
    for (const x of [b, c, d]) await x.close()
  })

  test('costs: no origin tags without L2 or bus; none for entries without origins; a reconnect flush stays local', async () => {
    const clock = new ManualClock()
    const local = createCache<string>({ clock })
    const feed = new TestFeed()
    await local.attachFeed(feed)
    await local.set('k', 'v', { origins: USER_42 })
    feed.send(USER_42)
    assert.equal(local.stats().tagNodes, 0, 'the origin index alone: exact within one process')
    assert.equal(local.stats().tagInvalidations, 0)
    assert.equal(await local.get('k'), undefined, 'erased through the index')
    await local.close()

    const store = memoryStore({ clock })
    const shared = createCache<string>({ clock, store })
    const feed2 = new TestFeed()
    await shared.attachFeed(feed2)
    await shared.set('tagged', 'v', { tags: ['team:1'] })
    await shared.set('bare', 'v')
    clock.advance(1)
    feed2.send(USER_42)
    await settle()
    assert.equal(shared.stats().tagInvalidations, 7, 'one full notice: 7 origin tags')
    assert.equal(await shared.get('tagged'), 'v', 'user tags are not reached')
    assert.equal(await shared.get('bare'), 'v')
    const before = shared.stats().tagInvalidations
    feed2.state('down')
    feed2.state('up')
    assert.equal(shared.stats().tagInvalidations, before, 'a reconnect flush invalidates no origin tag')
    await shared.close()
  })
})
