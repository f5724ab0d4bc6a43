/**
 * `stratacache/lmdb`: the embedded store for persistence on one host (`lmdbStore`), on the
 * `lmdb` package (a native addon with prebuilt binaries; a dependency of stratacache,
 * since the cache node stores its data in it). Not loaded by the root entry.
 */
export { lmdbStore } from './store/lmdb-store.js'
export type { LmdbStore, LmdbStoreOptions, LmdbStoreStats } from './store/lmdb-store.js'
