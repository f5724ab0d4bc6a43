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

test('stratacache/metrics exports registerReadings (docs/guide/cluster-client.md: the client near cache readings): each reading is read at scrape time', async () => {
  const metrics: Record<string, unknown> = await import('../../src/metrics/index.js')
  assert.equal(typeof metrics.registerReadings, 'function', 'registerReadings is exported by stratacache/metrics')
  const registerReadings = metrics.registerReadings as (registry: Registry, readings: ReadonlyArray<{ name: string; help: string; type: 'counter' | 'gauge'; read(): number }>) => void
  const registry = new Registry()
  let hits = 2
  registerReadings(registry, [
    { name: 'stratacache_client_near_hits_total', help: 'Near-cache hits.', type: 'counter', read: () => hits },
    { name: 'stratacache_client_near_entries', help: 'Entries held.', type: 'gauge', read: () => 7 },
  ])
  assert.match(await registry.metrics(), /^stratacache_client_near_hits_total 2$/m)
  hits = 5
  const text = await registry.metrics()
  assert.match(text, /^# TYPE stratacache_client_near_hits_total counter$/m)
  assert.match(text, /^stratacache_client_near_hits_total 5$/m)
  assert.match(text, /^# TYPE stratacache_client_near_entries gauge$/m)
  assert.match(text, /^stratacache_client_near_entries 7$/m)
  assert.throws(() => registerReadings(new Registry(), [{ name: 'bad name', help: 'x', type: 'gauge', read: () => 0 }]), (err) => isCacheError(err, 'ERR_INVALID_OPTIONS'))
})
