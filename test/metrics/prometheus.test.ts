import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Registry } from 'prom-client'
import { createCache, isCacheError, ManualClock } from '../../src/index.js'
import { registerMetrics } from '../../src/metrics/index.js'

test('metrics mirror the cache stats at scrape time, prefixed stratacache_', async () => {
  const cache = createCache<number>({ clock: new ManualClock(0), memory: { maxEntries: 2, policy: 'lru' } })
  const registry = registerMetrics(cache, { name: 'users' })
  await cache.getOrSet('a', () => 1)
  await cache.getOrSet('a', () => 1)
  await cache.getOrSet('b', () => 2)
  await cache.getOrSet('c', () => 3)
  await cache.invalidateTags(['x:y'])
  const text = await registry.metrics()
  assert.match(text, /^# TYPE stratacache_hits_total counter$/m)
  assert.match(text, /^stratacache_hits_total\{cache="users"\} 1$/m)
  assert.match(text, /^stratacache_misses_total\{cache="users"\} 3$/m)
  assert.match(text, /^stratacache_factory_calls_total\{cache="users"\} 3$/m)
  assert.match(text, /^stratacache_tag_invalidations_total\{cache="users"\} 1$/m)
  assert.match(text, /^stratacache_removals_total\{cache="users",reason="evict"\} 1$/m)
  assert.match(text, /^stratacache_entries\{cache="users"\} 2$/m)
  // A second scrape reports the same totals, not doubled ones.
  assert.match(await registry.metrics(), /^stratacache_hits_total\{cache="users"\} 1$/m)
})

test('two caches share a registry under different names; bad options are typed errors', async () => {
  const registry = new Registry()
  const a = createCache({ clock: new ManualClock(0) })
  registerMetrics(a, { registry, name: 'a', prefix: 'app_cache_' })
  assert.match(await registry.metrics(), /^app_cache_entries\{cache="a"\} 0$/m)
  assert.throws(() => registerMetrics(a, { prefix: 'bad prefix' }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
  assert.throws(() => registerMetrics({} as never), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
})
