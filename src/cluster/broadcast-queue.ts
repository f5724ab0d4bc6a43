/**
 * SWIM's dissemination buffer (memberlist's TransmitLimitedQueue, in spirit): membership
 * deltas waiting to ride on the probes and acks that go out anyway. Each delta is sent a
 * limited number of times — `retransmitMult * ceil(log10(n + 1))`, enough for an epidemic
 * to reach all n members with high probability — the least-sent first, so a fresh delta
 * overtakes old ones. A newer delta about a member replaces the queued one (there is no
 * point spreading a superseded fact). The queue is bounded: past `maxSize`, the most-sent
 * deltas are dropped first (the periodic full sync repairs whatever that loses).
 */
export class BroadcastQueue<T> {
  readonly #maxSize: number
  readonly #retransmitMult: number
  readonly #items = new Map<string, { item: T; sent: number; order: number }>()
  #order = 0

  constructor(options: { maxSize: number; retransmitMult: number }) {
    this.#maxSize = options.maxSize
    this.#retransmitMult = options.retransmitMult
  }

  get size(): number {
    return this.#items.size
  }

  /** Queues `item` under `key`, replacing a queued item of the same key. */
  push(key: string, item: T): void {
    this.#items.delete(key)
    this.#items.set(key, { item, sent: 0, order: this.#order++ })
    while (this.#items.size > this.#maxSize) {
      let worst: string | undefined
      let worstSent = -1
      let worstOrder = Infinity
      for (const [k, e] of this.#items) {
        if (e.sent > worstSent || (e.sent === worstSent && e.order < worstOrder)) {
          worst = k
          worstSent = e.sent
          worstOrder = e.order
        }
      }
      if (worst === undefined) break
      this.#items.delete(worst)
    }
  }

  /** Up to `max` items to piggyback now, least-sent (then newest) first; counts the send, retires exhausted ones. */
  take(max: number, members: number): T[] {
    if (this.#items.size === 0 || max <= 0) return []
    const limit = this.#retransmitMult * Math.max(1, Math.ceil(Math.log10(members + 1)))
    const chosen = [...this.#items.entries()].sort((a, b) => a[1].sent - b[1].sent || b[1].order - a[1].order).slice(0, max)
    const out: T[] = []
    for (const [key, e] of chosen) {
      out.push(e.item)
      e.sent++
      if (e.sent >= limit) this.#items.delete(key)
    }
    return out
  }
}
