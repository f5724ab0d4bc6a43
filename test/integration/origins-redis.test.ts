/**
 * Origins reach a real Redis L2 (redis-server started by the test on a free loopback
 * port): process A stores an entry with origins and closes, process B — which never held
 * it — hears the notice, and process C, with a fresh L1, does not get the stale value.
 * Each "process" is a cache with its own Redis connection. Real I/O: the one wait polls
 * Redis for the tag version, bounded.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { createCache, ManualClock } from '../../src/index.js'
import { redisStore } from '../../src/store/redis-store.js'
import { noticeTags } from '../../src/feeds/origin-tags.js'
import { startRedisServer, type RedisServer } from '../support/redis-server.js'
import { TestFeed } from '../support/test-feed.js'

let server: RedisServer

before(async () => {
  server = await startRedisServer()
})
after(async () => {
  await server?.stop()
})

describe('origins in a Redis L2', () => {
  test('a notice heard by a process that never held the entry reaches a reader with a fresh L1', async () => {
    const clock = new ManualClock()
    const prefix = `origins${process.pid}:`
    const stores = [0, 1, 2, 3].map(() => redisStore({ url: server.url, prefix, clock }))
    const [sa, sb, sc, probe] = stores as [ReturnType<typeof redisStore>, ReturnType<typeof redisStore>, ReturnType<typeof redisStore>, ReturnType<typeof redisStore>]
    const origins = { db: 'accounts', type: 'user', id: '42' }
    try {
      const a = createCache<string>({ clock, store: sa })
      await a.set('user:42', 'old', { origins })
      await a.set('user:7', 'seven', { origins: { ...origins, id: '7' } })
      await a.close()

      const b = createCache<string>({ clock, store: sb })
      const feed = new TestFeed()
      await b.attachFeed(feed)
      clock.advance(1)
      feed.send({ db: 'accounts', type: 'user', id: '42' })
      assert.equal(feed.stats().erased, 0, 'B held nothing')
      // The invalidation is written in the background: wait (bounded) until Redis has the
      // version of the full-pattern tag, the one of the notice's 7 that this origin carries.
      const versionKey = `cache#h:${noticeTags(origins)[0] as string}`
      const deadline = Date.now() + 5_000
      while ((await probe.get(versionKey)) === undefined) {
        assert.ok(Date.now() < deadline, 'the tag version never reached Redis')
        await new Promise((resolve) => setTimeout(resolve, 5))
      }

      const c = createCache<string>({ clock, store: sc })
      assert.equal(await c.get('user:42'), undefined, 'C does not get the stale value')
      assert.equal(await c.getOrSet('user:42', () => 'new', { origins }), 'new')
      assert.equal(await c.get('user:7'), 'seven', 'another document is kept')
      const fresh = createCache<string>({ clock, store: probe })
      assert.equal(await fresh.get('user:42'), 'new', 'the recomputed value is served')
      await b.close()
      await c.close()
      await fresh.close()
    } finally {
      await Promise.all(stores.map((s) => s.close()))
    }
  })

  test('origins.versionTtl: origin-tag versions get a Redis TTL and vanish after it; user-tag versions stay; the entry is capped too', async () => {
    const clock = new ManualClock()
    const prefix = `originttl${process.pid}:`
    const store = redisStore({ url: server.url, prefix, clock })
    const probe = redisStore({ url: server.url, prefix, clock })
    const origins = { db: 'accounts', type: 'user', id: '42' }
    const versionKey = `cache#h:${noticeTags(origins)[0] as string}`
    // Redis counts the TTL on its own clock: real time, bounded waits.
    const until = async (what: string, done: () => Promise<boolean>): Promise<void> => {
      const deadline = Date.now() + 5_000
      while (!(await done())) {
        assert.ok(Date.now() < deadline, what)
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    }
    try {
      const cache = createCache<string>({ clock, store, origins: { versionTtl: '400ms' } })
      const feed = new TestFeed()
      await cache.attachFeed(feed)
      await cache.set('user:42', 'v', { origins, ttl: '1h' })
      clock.advance(1)
      feed.send(origins)
      await cache.invalidateTags(['team:1'])
      await until('the origin-tag version reached Redis', async () => (await probe.get(versionKey)) !== undefined)
      await until('the record (capped at 400 ms) left Redis', async () => (await probe.get('cache:user:42')) === undefined)
      await until('the origin-tag version expired in Redis', async () => (await probe.get(versionKey)) === undefined)
      assert.ok((await probe.get('cache#h:team:1')) !== undefined, 'the user tag’s version has no TTL')
      await cache.close()
    } finally {
      await store.close()
      await probe.close()
    }
  })
})
