/**
 * The node's version clock: the shared hybrid logical clock (core/hlc.ts) with its
 * high-water mark persisted in the node's own store, next to its data, so versions stay
 * strictly increasing across restarts (a crash may skip versions, never reuse one) and a
 * wall clock stepped back after a restart cannot produce a lower version.
 *
 * The mark is a decimal string under `key`, written about once a minute of clock time.
 * Marks written by the older clock (ms × 1024 + counter) are read the same way: they are
 * below every timestamp of the current layout (ms × 2048 + counter) issued at or after the
 * time they were written, so an upgraded node keeps its versions increasing.
 */
import type { Clock } from '../core/clock.js'
import { CacheError, StoreUnavailableError } from '../core/errors.js'
import { HybridLogicalClock } from '../core/hlc.js'
import type { Store } from '../store/types.js'

/** Opens the clock, restoring the mark from `store` under `key` (absent: 0). */
export async function openNodeClock(store: Store, key: string, clock: Clock): Promise<HybridLogicalClock> {
  const bytes = await store.get(key)
  let floor = 0
  if (bytes !== undefined) {
    const n = Number(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1'))
    if (Number.isSafeInteger(n) && n > 0) floor = n
  }
  const highWater = {
    persist: (mark: number): Promise<void> =>
      store.set(key, Buffer.from(String(mark), 'latin1'), Infinity).catch((err: unknown) => {
        // No version is handed out unless its mark is durable: the write that asked fails.
        throw err instanceof CacheError ? err : new StoreUnavailableError('Could not persist the version high-water mark', { cause: err })
      }),
  }
  return new HybridLogicalClock(clock, { floor, highWater, reserve: '1m' })
}
