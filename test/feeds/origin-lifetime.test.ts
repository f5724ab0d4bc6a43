/**
 * `origins.versionTtl` (src/feeds/origin-lifetime.ts): origin-tag versions leave L2 after
 * T, user-tag versions never do; entries with origins leave every tier by start + T; and
 * the safety property — a fresh process never reads a value written before a notice that
 * matches it — checked by a property test over writes, notices, reads and clock advances
 * past T. Plus the bounds: L2 keys and trie nodes stay bounded under a feed of ever new
 * documents. ManualClock, memory / flaky / LMDB stores; no sleeping.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import fc from 'fast-check'
import { createCache, isCacheError, ManualClock, type Cache } from '../../src/index.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { lmdbStore } from '../../src/store/lmdb-store.js'
import type { Duration } from '../../src/core/duration.js'
import type { Store } from '../../src/store/types.js'
import { noticeTags } from '../../src/feeds/origin-tags.js'
import { capLifetime, DEFAULT_ORIGIN_VERSION_TTL, resolveOriginOptions, versionKeyTtl } from '../../src/tags/origin-lifetime.js'
import type { ChangeNotice, OriginDescriptor } from '../../src/feeds/types.js'
import { settle, TestFeed } from '../support/test-feed.js'
import { FlakyStore } from '../support/flaky-store.js'

const HOUR = 3_600_000
const USER_42 = { db: 'accounts', type: 'user', id: '42' }
const FULL_TAG = noticeTags(USER_42)[0] as string
const originKey = (tag: string): string => `cache#h:${tag}`

const root = mkdtempSync(join(tmpdir(), 'stratacache-origin-ttl-'))
after(() => rmSync(root, { recursive: true, force: true }))

describe('origins.versionTtl: options', () => {
  test('default one day, durations, Infinity; anything else is ERR_INVALID_OPTIONS naming the option', () => {
    assert.equal(resolveOriginOptions(undefined), DEFAULT_ORIGIN_VERSION_TTL)
    assert.equal(DEFAULT_ORIGIN_VERSION_TTL, 24 * HOUR)
    assert.equal(resolveOriginOptions({}), DEFAULT_ORIGIN_VERSION_TTL)
    assert.equal(resolveOriginOptions({ versionTtl: '2h' }), 2 * HOUR)
    assert.equal(resolveOriginOptions({ versionTtl: Infinity }), Infinity)
    const named = (option: string) => (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && (err as Error).message.includes(option)
    assert.throws(() => createCache({ origins: { versionTtl: 0 } }), named('origins.versionTtl'))
    assert.throws(() => createCache({ origins: { versionTtl: -5 } }), named('origins.versionTtl'))
    assert.throws(() => createCache({ origins: { versionTtl: 'soon' } as never }), named('origins.versionTtl'))
    assert.throws(() => createCache({ origins: null as never }), named('origins'))
    assert.throws(() => createCache({ origins: 3 as never }), named('origins'))
  })

  test('only the reserved @origin namespace gets the finite TTL; the cap never lengthens', () => {
    assert.equal(versionKeyTtl('@origin', 5), 5)
    assert.equal(versionKeyTtl(FULL_TAG, 5), 5)
    assert.equal(versionKeyTtl('team:1', 5), Infinity)
    assert.equal(versionKeyTtl('@originals:1', 5), Infinity, 'a look-alike user tag')
    assert.deepEqual(capLifetime(10, 20, 0, 100), { freshUntil: 10, keepUntil: 20 })
    assert.deepEqual(capLifetime(10, 200, 0, 100), { freshUntil: 10, keepUntil: 100 }, 'grace clipped')
    assert.deepEqual(capLifetime(500, 600, 0, 100), { freshUntil: 100, keepUntil: 100 }, 'fresh time clipped')
  })
})

/** A cache on `store` with a feed attached; `versionTtl` T. */
async function hearer(clock: ManualClock, store: Store, versionTtl: Duration = HOUR): Promise<{ cache: Cache<string>; feed: TestFeed }> {
  const cache = createCache<string>({ clock, store, origins: { versionTtl } })
  const feed = new TestFeed()
  await cache.attachFeed(feed)
  return { cache, feed }
}

describe('version keys in L2', () => {
  test('memory store: origin-tag versions expire after T, a newer notice restarts it; user-tag versions never expire', async () => {
    const clock = new ManualClock()
    const store = memoryStore({ clock })
    const { cache, feed } = await hearer(clock, store)
    feed.send(USER_42)
    await cache.invalidateTags(['team:1'])
    await settle()
    const keys = noticeTags(USER_42).map(originKey)
    assert.equal(keys.length, 7)
    for (const k of keys) assert.ok((await store.get(k)) !== undefined, `${k} written`)
    clock.advance(HOUR / 2)
    feed.send({ db: 'accounts' }) // another pattern: other keys, written at T/2
    feed.send(USER_42) // the same tags again: their TTL restarts
    await settle()
    clock.advance(HOUR - 1)
    for (const k of keys) assert.ok((await store.get(k)) !== undefined, 'rewritten at T/2: still there at 1.5 T - 1')
    clock.advance(1)
    for (const k of keys) assert.equal(await store.get(k), undefined, `${k} gone at 1.5 T`)
    for (const t of noticeTags({ db: 'accounts' })) assert.equal(await store.get(originKey(t)), undefined)
    clock.advance(100 * HOUR)
    assert.ok((await store.get('cache#h:team:1')) !== undefined, 'a user tag’s version is kept for ever')
    await cache.close()
  })

  test('the empty notice (root @origin) and a reconnect-scope notice are origin tags too', async () => {
    const clock = new ManualClock()
    const store = memoryStore({ clock })
    const { cache, feed } = await hearer(clock, store)
    feed.send({})
    await settle()
    assert.ok((await store.get('cache#h:@origin')) !== undefined)
    clock.advance(HOUR)
    assert.equal(await store.get('cache#h:@origin'), undefined)
    await cache.close()
  })

  test('versionTtl Infinity keeps the old behaviour: versions for ever, entries uncapped', async () => {
    const clock = new ManualClock()
    const store = memoryStore({ clock })
    const { cache, feed } = await hearer(clock, store, Infinity)
    await cache.set('k', 'v', { origins: USER_42, ttl: 100 * HOUR })
    feed.send({ db: 'other' })
    await settle()
    clock.advance(50 * HOUR)
    assert.ok((await store.get(originKey(noticeTags({ db: 'other' })[0] as string))) !== undefined)
    assert.ok((await store.get('cache:k')) !== undefined)
    await cache.close()
  })

  test('LMDB store: the same TTLs (its own clock, absolute expiry)', async () => {
    const clock = new ManualClock()
    const store = lmdbStore({ path: join(root, 'lmdb'), clock })
    try {
      const { cache, feed } = await hearer(clock, store)
      feed.send(USER_42)
      await cache.invalidateTags(['team:1'])
      await settle()
      assert.ok((await store.get(originKey(FULL_TAG))) !== undefined)
      clock.advance(HOUR)
      assert.equal(await store.get(originKey(FULL_TAG)), undefined, 'expired after T')
      assert.ok((await store.get('cache#h:team:1')) !== undefined, 'user tag kept')
      await cache.close()
    } finally {
      await store.close()
    }
  })

  test('guarded store: a refused version write keeps the older version (and its TTL); a queued one keeps its absolute deadline', async () => {
    const clock = new ManualClock()
    const store = new FlakyStore(clock)
    const l2 = { timeout: '100ms', retry: { attempts: 0 }, breaker: { openFor: '1s', successThreshold: 1 } } as const
    const cache = createCache<string>({ clock, store, l2, origins: { versionTtl: HOUR } })
    const feed = new TestFeed()
    await cache.attachFeed(feed)
    feed.send(USER_42)
    await settle()
    const first = store.data.get(originKey(FULL_TAG))
    assert.equal(first?.expiresAt, clock.now() + HOUR, 'written with TTL T')
    store.health = 'full'
    clock.advance(1000)
    feed.send(USER_42)
    await settle()
    assert.equal(store.data.get(originKey(FULL_TAG)), first, 'refused: the older version stays (keepOnRefusal)')
    // L2 down: the version is queued at n with deadline n + T, replayed 10 minutes later.
    store.health = 'down'
    clock.advance(1000)
    const n = clock.now()
    feed.send(USER_42)
    for (let t = 0; t < 500; t += 50) {
      clock.advance(50)
      await settle(2)
    }
    assert.ok((cache.stats().l2?.queued ?? 0) > 0, 'queued while L2 is down')
    clock.advance(10 * 60_000)
    store.health = 'up'
    for (let t = 0; t < 3_000; t += 100) {
      clock.advance(100)
      await settle(2)
    }
    assert.equal(cache.stats().l2?.queued, 0, 'replayed')
    assert.equal(store.data.get(originKey(FULL_TAG))?.expiresAt, n + HOUR, 'the replay asks for what is left of T, not T again')
    await cache.close()
  })
})

describe('entries with origins never outlive T', () => {
  test('an entry with ttl > T leaves L2 and L1 at T; entries without origins keep their TTL', async () => {
    const clock = new ManualClock()
    const store = memoryStore({ clock })
    // l1MaxAge off: L1 deadlines as the records set them are what is checked here.
    const a = createCache<string>({ clock, store, origins: { versionTtl: HOUR }, l2: { l1MaxAge: Infinity } })
    await a.set('o', 'with origins', { origins: USER_42, ttl: 10 * HOUR, grace: HOUR })
    await a.set('p', 'plain', { ttl: 10 * HOUR })
    await a.set('short', 'short', { origins: USER_42, ttl: HOUR / 4, grace: HOUR / 4 })
    clock.advance(HOUR / 4)
    const b = createCache<string>({ clock, store, l2: { l1MaxAge: Infinity } })
    assert.equal(await b.get('short'), undefined, 'a shorter TTL is kept as is')
    assert.equal(await b.get('o'), 'with origins', 'adopted into B’s L1')
    clock.advance(HOUR * 0.75 - 1)
    assert.equal(await a.peek('o'), 'with origins')
    assert.equal(await b.peek('o'), 'with origins')
    assert.ok((await store.get('cache:o')) !== undefined)
    clock.advance(1)
    assert.equal(await store.get('cache:o'), undefined, 'gone from L2 at T')
    assert.equal(await a.peek('o'), undefined, 'gone from the writer’s L1')
    assert.equal(await b.peek('o'), undefined, 'gone from the adopter’s L1 (its deadline came from the record)')
    let calls = 0
    assert.equal(
      await a.getOrSet(
        'o',
        () => {
          calls++
          return 'recomputed'
        },
        { origins: USER_42, ttl: 10 * HOUR, grace: HOUR },
      ),
      'recomputed',
    )
    assert.equal(calls, 1, 'no grace fallback beyond T: the factory ran')
    assert.equal(await createCache<string>({ clock, store }).get('p'), 'plain', 'no origins: not capped')
    await a.close()
    await b.close()
  })

  test('time-to-idle touches never extend an entry past T', async () => {
    const clock = new ManualClock()
    const store = memoryStore({ clock })
    const a = createCache<string>({ clock, store, origins: { versionTtl: HOUR }, l2: { touchInterval: '1m' } })
    await a.set('k', 'v', { origins: USER_42, ttl: 10 * HOUR, tti: '10m' })
    for (let t = 0; t < HOUR - 5 * 60_000; t += 5 * 60_000) {
      clock.advance(5 * 60_000)
      assert.equal(await a.get('k'), 'v')
      await settle()
    }
    assert.ok((await store.get('cache:k')) !== undefined, 'kept alive by reads')
    clock.advance(5 * 60_000)
    assert.equal(await store.get('cache:k'), undefined, 'but not past T')
    assert.equal(await a.get('k'), undefined)
    await a.close()
  })

  test('a touch written late (the queue busy with a slow one) asks for what is left of its deadline, not more', async () => {
    const clock = new ManualClock()
    const inner = memoryStore({ clock })
    let gate: Promise<void> | undefined
    const store: Store = { ...recording(inner).store, touch: async (k, ttl) => {
      if (gate !== undefined) await gate
      return inner.touch(k, ttl)
    } }
    // l1MaxAge off: the touches come from L1 hits over an hour.
    const a = createCache<string>({ clock, store, origins: { versionTtl: HOUR }, l2: { touchInterval: '1m', l1MaxAge: Infinity } })
    const t0 = clock.now()
    await a.set('slow', 'v', { origins: USER_42, ttl: 10 * HOUR, tti: '10m' })
    await a.set('b', 'v', { origins: USER_42, ttl: 10 * HOUR, tti: '10m' })
    for (let t = 0; t < 55; t += 5) {
      clock.advance(5 * 60_000)
      assert.equal(await a.get('slow'), 'v')
      assert.equal(await a.get('b'), 'v')
      await settle()
    }
    clock.advance(60_000)
    let open!: () => void
    gate = new Promise<void>((r) => (open = r))
    assert.equal(await a.get('slow'), 'v')
    clock.advance(0) // the drain starts and hangs on the slow touch
    await settle()
    clock.advance(3 * 60_000)
    assert.equal(await a.get('b'), 'v') // t = 59 min: a touch for what is left (1 min) waits in the queue
    clock.advance(30_000)
    gate = undefined
    open()
    await settle()
    clock.set(t0 + HOUR - 1)
    assert.ok((await inner.get('cache:b')) !== undefined)
    clock.advance(1)
    assert.equal(await inner.get('cache:b'), undefined, 'gone at T, although the touch was written 30 s late')
    await a.close()
  })

  test('the cap counts from the start of the computation: a notice heard while it ran keeps its version longer than the record', async () => {
    const clock = new ManualClock()
    const store = memoryStore({ clock })
    const w = createCache<string>({ clock, store, origins: { versionTtl: HOUR } })
    const { cache: h, feed } = await hearer(clock, store)
    const start = clock.now()
    const value = await w.getOrSet(
      'k',
      async () => {
        clock.advance(60_000)
        feed.send(USER_42) // the document changes after the factory read it
        await settle()
        clock.advance(9 * 60_000)
        return 'read before the change'
      },
      { origins: USER_42, ttl: 10 * HOUR },
    )
    assert.equal(value, 'read before the change')
    await settle()
    const reader = () => createCache<string>({ clock, store })
    assert.equal(await reader().get('k'), undefined, 'invalid: the version is in L2')
    clock.set(start + HOUR - 1)
    assert.equal(await reader().get('k'), undefined, 'still invalid just before T')
    clock.set(start + HOUR + 60_000 + 1)
    assert.equal(await store.get(originKey(FULL_TAG)), undefined, 'the version has expired')
    assert.equal(await store.get('cache:k'), undefined, 'and the record had left before it')
    assert.equal(await reader().get('k'), undefined)
    await w.close()
    await h.close()
  })

  test('a value computed for longer than T is returned, not cached', async () => {
    const clock = new ManualClock()
    const store = memoryStore({ clock })
    const w = createCache<string>({ clock, store, origins: { versionTtl: '1m' } })
    const v = await w.getOrSet(
      'k',
      () => {
        clock.advance(61_000)
        return 'slow'
      },
      { origins: USER_42 },
    )
    assert.equal(v, 'slow')
    assert.equal(await store.get('cache:k'), undefined)
    assert.equal(await w.peek('k'), undefined)
    await w.close()
  })
})

// ---- the safety property --------------------------------------------------------------

const FIELDS = ['db', 'type', 'id'] as const
function matches(d: OriginDescriptor, n: ChangeNotice): boolean {
  return FIELDS.every((f) => d[f] === undefined || n[f] === undefined || d[f] === n[f])
}

const T = 10_000
const ORIGINS: readonly OriginDescriptor[] = [
  { db: 'a', type: 'u', id: '1' },
  { db: 'a', type: 'u', id: '2' },
  { db: 'b', id: '1' },
  { type: 'u' },
  { db: 'a' },
]
const NOTICES: readonly ChangeNotice[] = [...ORIGINS, { id: '1' }, { db: 'b', type: 'u', id: '1' }, {}]
/** Key i is always written with origin i (so a getOrSetMany read can name the same definition). */
const KEYS = ORIGINS.map((_, i) => `k${i}`)

type Command =
  | { readonly kind: 'write'; readonly writer: number; readonly key: number; readonly ttl: number; readonly grace: number }
  | { readonly kind: 'slowWrite'; readonly writer: number; readonly key: number; readonly before: number; readonly notice: number; readonly after: number }
  | { readonly kind: 'notice'; readonly notice: number }
  | { readonly kind: 'advance'; readonly ms: number }
  | { readonly kind: 'read'; readonly key: number; readonly many: boolean }

const command: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('write' as const), writer: fc.nat(1), key: fc.nat(KEYS.length - 1), ttl: fc.constantFrom(T / 4, T, 3 * T, 100 * T), grace: fc.constantFrom(0, T / 2, 5 * T) }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('slowWrite' as const), writer: fc.nat(1), key: fc.nat(KEYS.length - 1), before: fc.constantFrom(1, T / 10, T / 2), notice: fc.nat(NOTICES.length - 1), after: fc.constantFrom(1, T / 10, T / 2) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('notice' as const), notice: fc.nat(NOTICES.length - 1) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(1, 100, T / 4, T / 2, T / 2, T - 1, T, T + 1, 3 * T, 400 * T) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('read' as const), key: fc.nat(KEYS.length - 1), many: fc.boolean() }), weight: 5 },
)

describe('safety: a fresh process never reads a value written before a matching notice', () => {
  // Across all runs: reads that returned a value (the property must not hold vacuously).
  const totals = { served: 0, servable: 0 }
  test('property over writes with origins, notices (also during a computation), reads and clock advances past T', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 8, maxLength: 30 }), async (commands) => {
        const clock = new ManualClock()
        const store = memoryStore({ clock })
        const writers = [0, 1].map(() => createCache<string>({ clock, store, origins: { versionTtl: T } }))
        const { cache: h, feed } = await hearer(clock, store, T)
        // Model: every write's origin and start time; every notice heard and when.
        const writes: { origin: OriginDescriptor; start: number; until: number }[] = []
        /** Per key: the id of the last value written (what L2 holds, unless deleted or expired). */
        const last = new Map<number, number>()
        const heard: { notice: ChangeNotice; at: number }[] = []
        const hear = async (n: ChangeNotice): Promise<void> => {
          heard.push({ notice: n, at: clock.now() })
          feed.send(n)
          await settle()
        }
        try {
          for (const c of commands) {
            switch (c.kind) {
              case 'write': {
                const id = writes.push({ origin: ORIGINS[c.key] as OriginDescriptor, start: clock.now(), until: clock.now() + Math.min(c.ttl, T) }) - 1
                last.set(c.key, id)
                await (writers[c.writer] as Cache<string>).set(KEYS[c.key] as string, String(id), { origins: ORIGINS[c.key], ttl: c.ttl, grace: c.grace })
                break
              }
              case 'slowWrite': {
                const w = writers[c.writer] as Cache<string>
                const key = KEYS[c.key] as string
                // A miss is forced by deleting first; the factory reads its source at `start`.
                await w.delete(key)
                const id = writes.push({ origin: ORIGINS[c.key] as OriginDescriptor, start: clock.now(), until: clock.now() + T }) - 1
                last.set(c.key, id)
                await w.getOrSet(
                  key,
                  async () => {
                    clock.advance(c.before)
                    await hear(NOTICES[c.notice] as ChangeNotice)
                    clock.advance(c.after)
                    return String(id)
                  },
                  { origins: ORIGINS[c.key], ttl: 100 * T },
                )
                await settle()
                break
              }
              case 'notice':
                await hear(NOTICES[c.notice] as ChangeNotice)
                break
              case 'advance':
                clock.advance(c.ms)
                break
              case 'read': {
                // A fresh process reads every key (its first key by `get` or `getOrSetMany`).
                const reader = createCache<string>({ clock, store, origins: { versionTtl: T } })
                for (let k = 0; k < KEYS.length; k++) {
                  const ki: number = (k + c.key) % KEYS.length
                  const key = KEYS[ki] as string
                  // getOrSetMany with the origins the key is written with (another definition is a miss).
                  const got: string | undefined = c.many && k === 0 ? (await reader.getOrSetMany([key], () => new Map(), { origins: ORIGINS[ki] }))[0] : await reader.get(key)
                  // What the model says must be served: the key's last value, fresh, and no matching notice since.
                  const id = last.get(ki)
                  const model = id === undefined ? undefined : writes[id]
                  if (model !== undefined && clock.now() < model.until && !heard.some((n) => n.at > model.start && matches(model.origin, n.notice))) {
                    totals.servable++
                    assert.equal(got, String(id), 'a value the model says is fresh and valid is served (no needless miss)')
                  }
                  if (got !== undefined) {
                    totals.served++
                    const w: { origin: OriginDescriptor; start: number } | undefined = writes[Number(got)]
                    assert.ok(w !== undefined, `unknown value ${got}`)
                    const stale: { notice: ChangeNotice; at: number } | undefined = heard.find((n) => n.at > w.start && matches(w.origin, n.notice))
                    assert.equal(stale, undefined, `value ${got} (origin ${JSON.stringify(w.origin)}, read at ${w.start}) served after notice ${JSON.stringify(stale)} at ${clock.now()}`)
                  }
                }
                await reader.close()
                break
              }
            }
            // Distinct milliseconds: notices and writes of different processes are ordered.
            clock.advance(1)
          }
        } finally {
          for (const w of writers) await w.close()
          await h.close()
        }
      }),
      { numRuns: 150 },
    )
    assert.ok(totals.served > 100, `not vacuous: ${totals.served} values served over all runs (${totals.servable} servable)`)
  })
})

// ---- bounds ---------------------------------------------------------------------------

/** A memory store that remembers every key ever written, to count the live ones. */
function recording(store: Store): { store: Store; written: Set<string> } {
  const written = new Set<string>()
  const wrapped: Store = {
    name: store.name,
    get: (k) => store.get(k),
    getMany: (ks) => store.getMany(ks),
    set: (k, v, ttl) => {
      written.add(k)
      return store.set(k, v, ttl)
    },
    setMany: (es) => {
      for (const e of es) written.add(e.key)
      return store.setMany(es)
    },
    delete: (k) => store.delete(k),
    deleteMany: (ks) => store.deleteMany(ks),
    touch: (k, ttl) => store.touch(k, ttl),
    clear: (p) => store.clear(p),
    close: () => store.close(),
  }
  return { store: wrapped, written }
}

describe('no unbounded growth under a feed of ever new documents', () => {
  test('live L2 version keys stay within 7 per notice of the last T; trie nodes within the prune window', async () => {
    const clock = new ManualClock()
    const { store, written } = recording(memoryStore({ clock, maxEntries: 1_000_000 }))
    const cache = createCache<string>({ clock, store, origins: { versionTtl: HOUR }, tags: { pruneAge: '1h', pruneInterval: '10m' } })
    const feed = new TestFeed()
    await cache.attachFeed(feed)
    // A reader over the same L2 observes versions into its own trie (passive resync).
    const reader = createCache<string>({ clock, store })
    const PER_MINUTE = 10
    const MINUTES = 6 * 60
    let doc = 0
    let maxNodes = 0
    for (let m = 0; m < MINUTES; m++) {
      for (let i = 0; i < PER_MINUTE; i++) {
        doc++
        feed.send({ db: 'accounts', type: 'user', id: String(doc) })
      }
      await settle(3)
      if (m % 30 === 0) {
        // An entry with origins on a fresh document, read by the reader: its tags' versions
        // (and the reader's trie nodes for them) come along.
        await cache.set(`e${m}`, 'v', { origins: { db: 'accounts', type: 'user', id: String(doc) } })
        await reader.get(`e${m}`)
      }
      maxNodes = Math.max(maxNodes, cache.stats().tagNodes)
      clock.advance(60_000)
    }
    const notices = PER_MINUTE * MINUTES
    const all = [...written].filter((k) => k.startsWith('cache#'))
    assert.ok(all.length >= 4 * notices, `${all.length} version keys written over 6 h`)
    const live = (await store.getMany(all)).filter((v) => v !== undefined).length
    // Notices of the last hour: 7 keys each (the 3 patterns shared by one db/type have 1 key each).
    assert.ok(live <= 7 * PER_MINUTE * 61, `${live} live version keys (bounded by the last T)`)
    assert.ok(live >= 4 * PER_MINUTE * 59, `${live}: the recent ones are there`)
    // The trie: notices of the last pruneAge + pruneInterval, 4 distinct nodes each, plus shared ones.
    const bound = 4 * PER_MINUTE * 72 + 10
    assert.ok(maxNodes <= bound, `trie peaked at ${maxNodes} nodes (bound ${bound}), for ${4 * notices} distinct tags`)
    assert.ok(cache.stats().tagNodes <= bound)
    assert.ok(reader.stats().tagNodes <= bound, `reader trie: ${reader.stats().tagNodes}`)
    await cache.close()
    await reader.close()
  })
})
