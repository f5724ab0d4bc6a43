import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type CachedMethod, cached, createCache, isCacheError, ManualClock } from '../../src/index.js'

describe('tags through the facade', () => {
  test('invalidating a tag drops every entry under it, hard', async () => {
    const cache = createCache<string>({ clock: new ManualClock(0) })
    await cache.set('u42', 'alice', { tags: ['org:1:user:42'] })
    await cache.set('u7', 'bob', { tags: ['org:1:user:7'] })
    await cache.set('o2', 'other', { tags: ['org:2'] })
    await cache.invalidateTags(['org:1'])
    assert.equal(await cache.get('u42'), undefined)
    assert.equal(await cache.get('u7'), undefined)
    assert.equal(await cache.get('o2'), 'other')
    assert.equal(cache.stats().tagInvalidations, 1)
    let calls = 0
    assert.equal(await cache.getOrSet('u42', () => `alice${++calls}`, { tags: ['org:1:user:42'] }), 'alice1')
    assert.equal(await cache.getOrSet('u42', () => `alice${++calls}`, { tags: ['org:1:user:42'] }), 'alice1')
  })

  test('soft invalidation makes entries stale: recomputed, but usable as a fail-safe fallback', async () => {
    const cache = createCache<string>({ clock: new ManualClock(0), defaults: { grace: '1h' } })
    await cache.getOrSet('k', () => 'v1', { tags: ['t'] })
    await cache.invalidateTags(['t'], { mode: 'soft' })
    assert.equal(await cache.get('k'), undefined, 'not fresh any more')
    assert.equal(await cache.getOrSet('k', () => Promise.reject(new Error('down')), { tags: ['t'] }), 'v1', 'served as fallback')
    await cache.invalidateTags(['t'], { mode: 'hard' })
    await assert.rejects(cache.getOrSet('k', () => Promise.reject(new Error('down')), { tags: ['t'] }), /down/)
  })

  test('tags computed from the result, and set from inside the factory', async () => {
    const cache = createCache<{ id: number; org: number }>({ clock: new ManualClock(0) })
    const load = cache.wrap(async (id: number) => ({ id, org: id % 2 }), { key: (id) => `user:${id}`, tags: (_id, user) => [`org:${user.org}`] })
    await load(1)
    await load(2)
    await cache.getOrSet('manual', (ctx) => {
      ctx.setTags(['org:1:manual'])
      return { id: 0, org: 1 }
    })
    await cache.invalidateTags(['org:1'])
    assert.equal(await cache.get('user:1'), undefined)
    assert.equal(await cache.get('manual'), undefined)
    assert.deepEqual(await cache.get('user:2'), { id: 2, org: 0 })
  })

  test('entries written under another tag definition are recomputed (tags changed between deploys)', async () => {
    const cache = createCache<string>({ clock: new ManualClock(0) })
    await cache.getOrSet('user:1', () => 'v1', { tags: ['user:1'] })
    // The new deploy tags the same entry differently; invalidating the new tag must reach it.
    let calls = 0
    assert.equal(await cache.getOrSet('user:1', () => `v2-${++calls}`, { tags: ['org:9:user:1'] }), 'v2-1')
    await cache.invalidateTags(['org:9'])
    assert.equal(await cache.getOrSet('user:1', () => `v2-${++calls}`, { tags: ['org:9:user:1'] }), 'v2-2')
  })

  test('bad tags are refused with ERR_INVALID_TAG and nothing is stored', async () => {
    const cache = createCache<string>({ clock: new ManualClock(0) })
    await assert.rejects(cache.set('k', 'v', { tags: ['ok', 'bad tag'] }), (e: unknown) => isCacheError(e, 'ERR_INVALID_TAG'))
    assert.equal(await cache.has('k'), false)
    await assert.rejects(cache.invalidateTags(['a::b']), (e: unknown) => isCacheError(e, 'ERR_INVALID_TAG'))
    await assert.rejects(cache.invalidateTags(['x'], { mode: 'medium' as never }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
  })

  test('@cached clear() invalidates every entry of the method, and only those', async () => {
    const cache = createCache({ clock: new ManualClock(0) })
    let calls = 0
    class Repo {
      @cached({ cache })
      async find(id: number): Promise<string> {
        return `find${id}-${++calls}`
      }
      @cached({ cache })
      async count(): Promise<number> {
        return ++calls
      }
    }
    const repo = new Repo()
    await repo.find(1)
    await repo.find(2)
    const n = await repo.count()
    await (repo.find as unknown as CachedMethod<[number], string>).clear()
    assert.equal(await repo.find(1), `find1-${n + 1}`)
    assert.equal(await repo.count(), n, 'the other method keeps its entry')
  })
})

describe('reads racing invalidations', () => {
  test('an invalidation that lands while the factory runs invalidates what it returns', async () => {
    const cache = createCache<string>({ clock: new ManualClock(0) })
    let release!: (v: string) => void
    const computing = cache.getOrSet('k', () => new Promise<string>((r) => (release = r)), { tags: ['doc:1'] })
    await Promise.resolve()
    await cache.invalidateTags(['doc:1']) // the source changed after the factory read it
    release('old data')
    assert.equal(await computing, 'old data', 'the caller still gets its answer')
    assert.equal(await cache.get('k'), undefined, 'but it is not served from the cache')
    assert.equal(await cache.getOrSet('k', () => 'new data', { tags: ['doc:1'] }), 'new data')
  })
})

describe('tag trie pruning', () => {
  test('eviction prunes idle tag nodes (age-based, at most every pruneInterval / 10), without a periodic prune', async () => {
    const clock = new ManualClock(0)
    // pruneInterval 1h: the periodic prune never comes due here; evictions prune at most every 6 min.
    const cache = createCache<number>({ clock, memory: { maxEntries: 2, policy: 'lru' }, defaults: { ttl: Infinity }, tags: { pruneAge: '1m', pruneInterval: '1h' } })
    await cache.invalidateTags(['old:x:y'])
    assert.equal(cache.stats().tagNodes, 3)
    clock.advance(120_000) // t = 2 min: old:x:y idle for 2 min > pruneAge
    await cache.set('a', 1)
    await cache.set('b', 2)
    assert.equal(cache.stats().tagNodes, 3, 'no eviction yet')
    await cache.set('c', 3) // evicts a: prune
    assert.equal(cache.stats().tagNodes, 0)
    await cache.invalidateTags(['new:z'])
    clock.advance(120_000) // t = 4 min: new:z idle for 2 min, but the last prune was 2 min ago
    await cache.set('d', 4)
    assert.equal(cache.stats().tagNodes, 2, 'throttled')
    clock.advance(300_000) // t = 9 min: more than 6 min since the last prune
    await cache.set('e', 5)
    assert.equal(cache.stats().tagNodes, 0)
  })
})
