/**
 * The state and counters every feed keeps, and the one place that hands notices and
 * connection states to the cache's sink (shielded: a sink that throws never breaks the
 * feed's connection handling).
 */
import type { ChangeNotice, FeedSink, FeedStats } from './types.js'

export class FeedCounters {
  sink: FeedSink | undefined
  state: FeedStats['state'] = 'connecting'
  #notices = 0
  #malformed = 0
  #erased = 0
  #flushed = 0

  notice(notice: ChangeNotice): void {
    if (this.state === 'closed' || this.sink === undefined) return
    this.#notices++
    try {
      this.#erased += this.sink.notice(notice)
    } catch {
      // The cache's failure to erase is reported by the cache; the feed goes on.
    }
  }

  malformed(): void {
    if (this.state !== 'closed') this.#malformed++
  }

  /** A connection state from the transport ('up' the first time is just "listening"). */
  transition(state: 'up' | 'down'): void {
    if (this.state === 'closed') return
    const first = this.state === 'connecting'
    this.state = state
    if (first && state === 'up') return
    try {
      if (this.sink !== undefined) this.#flushed += this.sink.state(state)
    } catch {
      // As above.
    }
  }

  close(): void {
    this.state = 'closed'
  }

  stats(reconnects: number): FeedStats {
    return { state: this.state, notices: this.#notices, malformed: this.#malformed, erased: this.#erased, reconnects, flushed: this.#flushed }
  }
}
