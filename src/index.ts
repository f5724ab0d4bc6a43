// Public entry point of `stratacache` (the root export): the engine, the facade, errors,
// clock, durations, codec, the in-process store and bus. It loads no native addon and no
// broker client: adapters live in their own entry points, listed in package.json
// "exports" and at the end of this file. test/packaging/root-import.test.ts pins it.

// ---- errors, clock, randomness, durations ---------------------------------------------
export * from './core/errors.js'
export type { Clock, TimerHandle, TimerOptions } from './core/clock.js'
export { systemClock, createSystemClock } from './core/system-clock.js'
export type { SystemClockOptions } from './core/system-clock.js'
export { ManualClock } from './core/manual-clock.js'
export { SeededRandom, mathRandom } from './core/random.js'
export type { Random } from './core/random.js'
export { toMs, toBytes } from './core/duration.js'
export type { Duration, DurationUnit, ByteSize, ByteUnit } from './core/duration.js'
export type { BackoffOptions, ReconnectOptions } from './core/backoff.js'
export { TRACING_CHANNELS } from './core/tracing.js'
export type { BusTrace, FactoryTrace, GetOrSetTrace, NodeRequestTrace, StoreTrace, StoreTraceOperation } from './core/tracing.js'

// ---- the engine (L1) -------------------------------------------------------------------
export { MemoryCache } from './memory/memory-cache.js'
export { estimateSize } from './memory/estimate-size.js'
export type * from './memory/types.js'
export { SingleFlight } from './singleflight/index.js'
export type * from './singleflight/index.js'

// ---- the facade ------------------------------------------------------------------------
export { Cache, createCache } from './cache/cache.js'
export type * from './cache/types.js'
export type { TagIndex, TagState } from './cache/tag-index.js'
export { cached } from './cache/cached.js'
export type { CachedMethod, CachedOptions } from './cache/cached.js'
export { defaultCache } from './cache/default-cache.js'
export { stableKey } from './cache/stable-key.js'
export type { CacheBusStats } from './cache/bus-link.js'

// ---- codec -----------------------------------------------------------------------------
export { createCodec, msgpackSerializer, jsonSerializer } from './codec/index.js'
export type { Codec, CodecOptions, Serializer, CompressionAlgorithm, EncryptionOptions } from './codec/index.js'

// ---- the second tier: contract, in-memory store, resilience ----------------------------
export type { Store, StoreEntry, StoreLocks, LockGrant, ScanOptions, ScanPage, ConditionalWrites, RevisionedValue, StoreChange } from './store/types.js'
export { MAX_SCAN_LIMIT } from './store/scan-options.js'
export { memoryStore } from './store/memory-store.js'
export type { MemoryStoreOptions } from './store/memory-store.js'
export { CircuitBreaker } from './resilience/circuit-breaker.js'
export type { BreakerState, BreakerStats, CircuitBreakerOptions } from './resilience/circuit-breaker.js'
export type { GuardedStoreOptions, GuardedStoreStats, RetryOptions } from './resilience/guarded-store.js'
export type { L2TierStats, ValueCodec } from './tier/l2-tier.js'

// ---- the invalidation bus: the Bus and the in-process transport ------------------------
export { Bus, createBus, pickBusSettings } from './bus/bus.js'
export type { BusOptions, BusSettings, BusListener, BusStats, BusChange, FlushReason } from './bus/bus.js'
export type { BusTransport } from './bus/types.js'
export type { TagVersion } from './bus/message.js'
export { memoryBus, memoryTransport, MemoryBusHub, defaultMemoryHub } from './bus/memory-transport.js'
export type { MemoryBusOptions, MemoryTransportOptions } from './bus/memory-transport.js'

// ---- origins and change feeds: the contract (feeds themselves are adapters) ------------
export type { AttachFeedOptions } from './feeds/feed-attachment.js'
export type { ChangeFeed, ChangeNotice, FeedSink, FeedStats, OriginDescriptor, OriginsOption } from './feeds/types.js'
export type { OriginOptions } from './tags/origin-lifetime.js'

// ---- adapters: separate entry points (package.json "exports"), not loaded from here ----
// stratacache/redis     redisStore, redisBus, redisTransport      (peer: ioredis)
// stratacache/nats      natsBus, natsTransport                    (peer: nats)
// stratacache/amqp      amqpBus, amqpTransport, amqpFeed          (peer: amqplib)
// stratacache/postgres  pgFeed                                    (peer: pg)
// stratacache/etcd      etcdStore                                 (peer: etcd3)
// stratacache/lmdb      lmdbStore                                 (lmdb, a dependency)
// stratacache/metrics   registerMetrics                           (prom-client)
// stratacache/client    createClient, clientStore, autoCache      (undici)
// stratacache/server    startNode                                 (lmdb, pino, prom-client)
// stratacache/testing   ManualClock, SeededRandom, conformance suites, SimNetwork
