/**
 * Time-to-idle in L2 without a write per read (Zoocache's TTI de-bouncing).
 *
 * The facade decides *whether* a read deserves a touch (at most one per key per debounce
 * interval, tracked in the L1 entry itself, so no per-key map grows here); this queue
 * decides *when*: touches wait in a bounded map (one slot per key, the newest TTL wins)
 * and are written in the background, `concurrency` at a time. A full queue drops the touch
 * and counts it — the entry then keeps its older L2 expiry, which only shortens its life.
 * A touch keeps the absolute deadline it was pushed with (now + TTL, the TTL already
 * bounded by the entry's keepUntil): written late, it asks for what is left of it, so a
 * slow drain never extends an entry past its deadline (entries with origins rely on
 * that, see src/feeds/origin-lifetime.ts); a touch whose deadline passed is not written.
 */
import type { Clock } from '../core/clock.js'

export interface TouchQueueStats {
  readonly queued: number
  readonly written: number
  readonly dropped: number
}

export class TouchQueue {
  readonly #clock: Clock
  readonly #maxSize: number
  readonly #write: (key: string, ttlMs: number) => Promise<unknown>
  /** Key -> absolute deadline asked for. */
  readonly #pending = new Map<string, number>()
  #draining = false
  #scheduled = false
  #closed = false
  #written = 0
  #dropped = 0

  constructor(clock: Clock, maxSize: number, write: (key: string, ttlMs: number) => Promise<unknown>) {
    this.#clock = clock
    this.#maxSize = maxSize
    this.#write = write
  }

  push(key: string, ttlMs: number): void {
    if (this.#closed) return
    if (!this.#pending.has(key) && this.#pending.size >= this.#maxSize) {
      this.#dropped++
      return
    }
    this.#pending.set(key, this.#clock.now() + ttlMs)
    if (!this.#draining && !this.#scheduled) {
      this.#scheduled = true
      // Batch the touches of one burst of reads into one drain.
      this.#clock.setTimeout(() => void this.#drain(), 0, { unref: true })
    }
  }

  stats(): TouchQueueStats {
    return { queued: this.#pending.size, written: this.#written, dropped: this.#dropped }
  }

  close(): void {
    this.#closed = true
    this.#pending.clear()
  }

  async #drain(): Promise<void> {
    this.#scheduled = false
    this.#draining = true
    try {
      while (this.#pending.size > 0 && !this.#closed) {
        const batch = [...this.#pending]
        this.#pending.clear()
        // The writer never rejects (the guarded store swallows and reports failures).
        const now = this.#clock.now()
        const live = batch.filter(([, deadline]) => deadline > now)
        await Promise.all(live.map(([key, deadline]) => this.#write(key, deadline - now)))
        this.#written += live.length
      }
    } finally {
      this.#draining = false
    }
  }
}
