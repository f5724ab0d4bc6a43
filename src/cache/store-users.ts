/**
 * Who closes a store several caches share (`CacheOptions.closeStore`): the last open cache
 * using it, unless some cache was given it with `closeStore: false` (its owner closes it).
 */
import type { Store } from '../store/types.js'

/** Open caches per store. */
const storeUsers = new WeakMap<Store, number>()
/** Stores some cache was given with `closeStore: false`. */
const keptStores = new WeakSet<Store>()

/** A cache opened on `store` (called once the cache can no longer fail to construct). */
export function retainStore(store: Store, closeStore: boolean | undefined): void {
  if (closeStore === false) keptStores.add(store)
  storeUsers.set(store, (storeUsers.get(store) ?? 0) + 1)
}

/** A cache using `store` closed: true when it was the last one and nobody kept the store (close it now). */
export function releaseStore(store: Store): boolean {
  const users = (storeUsers.get(store) ?? 1) - 1
  if (users > 0) {
    storeUsers.set(store, users)
    return false
  }
  storeUsers.delete(store)
  return !keptStores.has(store)
}
