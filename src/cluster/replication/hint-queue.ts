/**
 * Hinted handoff (Dynamo, 2007): what a peer missed while it could not be reached, kept
 * per peer in arrival order and replayed in that order when it returns. Each peer's queue
 * is bounded (`maxPerPeer`); a change that does not fit empties the peer's queue and marks
 * the peer for a full anti-entropy sync instead (counted in `overflows`): past a point, a
 * Merkle comparison ships less than a replay, and a partial replay would be a silent gap.
 * Memory only: a node that restarts has lost its hints, and every peer that saw it gone
 * syncs with it on its return anyway (replication.ts).
 */
import { InvalidOptionsError } from '../../core/errors.js'

export interface HintQueueStats {
  /** Hints held, all peers. */
  readonly depth: number
  /** Hints held per peer (peers with none omitted). */
  readonly perPeer: Readonly<Record<string, number>>
  readonly queued: number
  readonly replayed: number
  /** Times a peer's queue overflowed (its hints dropped, the peer marked for anti-entropy). */
  readonly overflows: number
}

export class HintQueue<T> {
  readonly #max: number
  readonly #queues = new Map<string, T[]>()
  readonly #overflowed = new Set<string>()
  #queued = 0
  #replayed = 0
  #overflows = 0

  /** @param maxPerPeer hints kept per peer before overflow. @default 10000 */
  constructor(maxPerPeer = 10_000) {
    if (!Number.isInteger(maxPerPeer) || maxPerPeer < 0) throw new InvalidOptionsError('maxHintsPerPeer', 'expected an integer >= 0')
    this.#max = maxPerPeer
  }

  /** Queues `item` for `peer`; false when it overflowed (the peer's queue is dropped and the peer marked). */
  push(peer: string, item: T): boolean {
    if (this.#overflowed.has(peer)) return false
    const q = this.#queues.get(peer) ?? []
    if (q.length >= this.#max) {
      this.#queues.delete(peer)
      this.#overflowed.add(peer)
      this.#overflows++
      return false
    }
    q.push(item)
    this.#queues.set(peer, q)
    this.#queued++
    return true
  }

  /** Removes and returns up to `max` of `peer`'s oldest hints, in order. */
  take(peer: string, max: number): T[] {
    const q = this.#queues.get(peer)
    if (q === undefined) return []
    const out = q.splice(0, max)
    if (q.length === 0) this.#queues.delete(peer)
    this.#replayed += out.length
    return out
  }

  /** Hints held for `peer`. */
  size(peer: string): number {
    return this.#queues.get(peer)?.length ?? 0
  }

  /** Peers with hints held. */
  peers(): string[] {
    return [...this.#queues.keys()]
  }

  /** True (once) when `peer` overflowed since the last call: the caller owes it a full sync. Clears the mark. */
  takeOverflow(peer: string): boolean {
    return this.#overflowed.delete(peer)
  }

  /** True when `peer` is marked for anti-entropy (overflowed, not yet taken). */
  overflowed(peer: string): boolean {
    return this.#overflowed.has(peer)
  }

  /** Drops everything held for `peer` (it left the cluster). */
  drop(peer: string): void {
    this.#queues.delete(peer)
    this.#overflowed.delete(peer)
  }

  get stats(): HintQueueStats {
    const perPeer: Record<string, number> = {}
    let depth = 0
    for (const [peer, q] of this.#queues) {
      perPeer[peer] = q.length
      depth += q.length
    }
    return { depth, perPeer, queued: this.#queued, replayed: this.#replayed, overflows: this.#overflows }
  }
}
