// The client of cache nodes: createClient, clientStore, autoCache.
export { createClient, isNodeAnswer, normalizeNode } from './client.js'
export type {
  ClientCallOptions,
  ClientClearOptions,
  Client,
  ClientEjectOptions,
  ClientLadderOptions,
  ClientNearCacheOptions,
  ClientReading,
  ClientEntry,
  ClientOptions,
  ClientRetryOptions,
  ClientValue,
  ClientDeleteOptions,
  ClientInvalidateOptions,
  ClientKeysOptions,
  ClientKeysPage,
  ClientMsetEntry,
  ClientMsetOptions,
  ClientPingResult,
  ClientSetOptions,
  ClientSetResult,
  ClientStatsOptions,
} from './client.js'
export type { NodeState } from './node-rotation.js'
export type { HttpRequest, HttpResponse, Transport as ClientTransport } from './transport.js'
export { clientStore } from './client-store.js'
export type { ClientStoreOptions } from './client-store.js'
export { autoCache, autoCached } from './auto-cache.js'
export type { AutoCached, AutoCacheOptions } from './auto-cache.js'
export type { Topology } from './topology.js'
export type { NearCacheStats } from '../cache/near-cache.js'
export { watchPartition, WATCH_PARTITIONS } from '../protocol/watch.js'
export type { WatchMessage } from '../protocol/watch.js'
