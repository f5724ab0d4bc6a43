/**
 * Entry versions: positive safe integers, strictly increasing across every write on a
 * node — and so per key — also across deletes and restarts.
 *
 * Design. A version is `max(last + 1, floor(now ms) × 1024)`: a hybrid clock, so versions
 * from different nodes are roughly comparable in time (what last-writer-wins replication
 * needs) while bursts of more than 1024 writes per ms simply run ahead of the wall clock.
 * Restarts: before a version above the persisted high-water mark is handed out, a new
 * mark `version + RESERVE_SPAN` is written to the store and awaited; a restarted node
 * starts above the mark. So a crash can skip versions but never reuse one, and a wall
 * clock that steps back after a restart cannot produce a lower version. The mark is
 * written about once per RESERVE_SPAN of clock time (one minute), not per write.
 * Numbers stay below 2^53 until the year 2248.
 */
import type { Clock } from '../core/clock.js'
import { CacheError, StoreUnavailableError } from '../core/errors.js'
import type { Store } from '../store/types.js'

/** Versions per millisecond of clock time. */
export const VERSIONS_PER_MS = 1024
/** How far ahead of the current version the persisted mark is set: one minute of clock time. */
const RESERVE_SPAN = VERSIONS_PER_MS * 60_000

export class VersionClock {
  readonly #store: Store
  readonly #key: string
  readonly #clock: Clock
  #last: number
  #reserved: number
  #pending: Promise<void> | undefined

  private constructor(store: Store, key: string, clock: Clock, reserved: number) {
    this.#store = store
    this.#key = key
    this.#clock = clock
    this.#last = reserved
    this.#reserved = reserved
  }

  /** Reads the persisted mark from `store` under `key` (0 when absent). */
  static async open(store: Store, key: string, clock: Clock): Promise<VersionClock> {
    const bytes = await store.get(key)
    let mark = 0
    if (bytes !== undefined) {
      const n = Number(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1'))
      if (Number.isSafeInteger(n) && n > 0) mark = n
    }
    return new VersionClock(store, key, clock, mark)
  }

  /** The highest version handed out (or the mark this clock started from). */
  get last(): number {
    return this.#last
  }

  /** The next version; waits for the mark to be persisted when it must move. */
  async next(): Promise<number> {
    for (;;) {
      const candidate = Math.max(this.#last + 1, Math.floor(this.#clock.now()) * VERSIONS_PER_MS)
      if (candidate <= this.#reserved) {
        this.#last = candidate
        return candidate
      }
      await this.#reserve(candidate + RESERVE_SPAN)
    }
  }

  #reserve(mark: number): Promise<void> {
    // Concurrent callers share one write; they re-check against the new mark afterwards.
    if (this.#pending !== undefined) return this.#pending
    const pending = this.#store.set(this.#key, Buffer.from(String(mark), 'latin1'), Infinity).then(
      () => {
        if (mark > this.#reserved) this.#reserved = mark
        this.#pending = undefined
      },
      (err: unknown) => {
        this.#pending = undefined
        // No version is handed out unless its mark is durable: the write that asked fails.
        throw err instanceof CacheError ? err : new StoreUnavailableError('Could not persist the version high-water mark', { cause: err })
      },
    )
    this.#pending = pending
    return pending
  }
}
