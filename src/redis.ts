/**
 * `stratacache/redis`: the Redis adapters — `redisStore` (the L2 store: standalone,
 * Sentinel, Cluster) and `redisBus` / `redisTransport` (the invalidation bus over pub/sub).
 * They drive `ioredis`, an optional peer dependency (`npm install ioredis`): importing this
 * entry without it rejects with MissingDependencyError (ERR_MISSING_DEPENDENCY).
 */
import { requireDependency } from './core/optional-dependency.js'

requireDependency('ioredis', 'stratacache/redis')
// Loaded only once the check passed: a static import would fail to resolve before it ran.
const store = await import('./store/redis-store.js')
const bus = await import('./bus/redis-transport.js')

/** See `redisStore` in src/store/redis-store.ts (docs/guide/tiers-and-stores.md). */
export const redisStore: typeof import('./store/redis-store.js').redisStore = store.redisStore
/** See `redisBus` in src/bus/redis-transport.ts (docs/guide/bus.md). */
export const redisBus: typeof import('./bus/redis-transport.js').redisBus = bus.redisBus
/** See `redisTransport` in src/bus/redis-transport.ts (docs/guide/bus.md). */
export const redisTransport: typeof import('./bus/redis-transport.js').redisTransport = bus.redisTransport
export type { RedisStoreOptions } from './store/redis-store.js'
export type { RedisBusOptions, RedisTransportOptions } from './bus/redis-transport.js'
