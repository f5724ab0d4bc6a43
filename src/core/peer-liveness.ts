/**
 * Peer liveness from sequence numbers and silence, as a pure module: no I/O, no timers,
 * time passed in. The bus is its first user (lost invalidations, restarted and vanished
 * senders); the cluster's failure detector (P8) sits beside it.
 *
 * Each peer stamps its messages with an `epoch` (larger after every restart) and a `seq`:
 * data messages carry 1, 2, …; heartbeats carry the seq of the peer's last data message, so
 * a lost last message is noticed even when nothing follows it. Per peer we keep the
 * highest seq seen and a 32-bit window of which of the 32 seqs below it arrived, which
 * tells a duplicate from a late (reordered) message — LoomCache's
 * InvalidationSequenceTracker, Hazelcast's near-cache repair.
 *
 * Verdicts of `onMessage` (what the caller should do is its business; the bus's use is
 * noted):
 * - `joined`: first message from this peer (tracking starts here; earlier ones are unknown);
 * - `alive`: in order, nothing missed (bus: apply a data message);
 * - `gap`: at least one message of this peer was lost before this one (bus: flush, and
 *   still apply a data message);
 * - `restarted`: a newer epoch, nothing of the new life missed (data seq 1, heartbeat seq 0);
 * - `restarted-gap`: a newer epoch and some of the new life already missed;
 * - `duplicate`: this seq already arrived; `late`: an older seq that never arrived (its gap
 *   was reported when a later one came first) or an older epoch — discard both.
 * `onTick(now)` forgets and returns the peers not heard for `silentAfter` ms (`silent`).
 */

export type LivenessVerdict = 'joined' | 'alive' | 'gap' | 'restarted' | 'restarted-gap' | 'duplicate' | 'late'

/** `data` carries its own seq; `heartbeat` announces the last data seq sent. */
export type LivenessKind = 'data' | 'heartbeat'

interface PeerState {
  epoch: number
  /** Highest seq seen. */
  seq: number
  /** Bit i set: seq - 1 - i arrived. */
  window: number
  seenAt: number
}

const WINDOW = 32

export class PeerLiveness {
  readonly #silentAfter: number
  readonly #peers = new Map<string, PeerState>()

  /** @param silentAfter ms without any message after which a peer is reported silent and forgotten. */
  constructor(silentAfter: number) {
    if (!(silentAfter > 0)) throw new RangeError(`PeerLiveness needs silentAfter > 0, got ${silentAfter}`)
    this.#silentAfter = silentAfter
  }

  /** Whether `peer` is tracked. */
  has(peer: string): boolean {
    return this.#peers.has(peer)
  }

  /** Peers tracked. */
  get size(): number {
    return this.#peers.size
  }

  /** Judges one message from `peer`. */
  onMessage(peer: string, epoch: number, seq: number, now: number, kind: LivenessKind = 'data'): LivenessVerdict {
    const st = this.#peers.get(peer)
    if (st === undefined) {
      this.#peers.set(peer, { epoch, seq, window: 0, seenAt: now })
      return 'joined'
    }
    st.seenAt = now
    if (epoch < st.epoch) return 'late'
    if (epoch > st.epoch) {
      // The same peer restarted. Its first data message is seq 1 (a heartbeat before any
      // data says 0); anything later means part of its new life was missed.
      const missed = kind === 'heartbeat' ? seq > 0 : seq !== 1
      st.epoch = epoch
      st.seq = seq
      st.window = 0
      return missed ? 'restarted-gap' : 'restarted'
    }
    if (kind === 'heartbeat') {
      if (seq <= st.seq) return 'alive'
      // The heartbeat names data messages never received.
      st.window = shift(st.window, st.seq, seq)
      st.seq = seq
      return 'gap'
    }
    if (seq <= st.seq) {
      const bit = st.seq - seq - 1
      if (seq === st.seq || (bit < WINDOW && (st.window & (1 << bit)) !== 0)) return 'duplicate'
      // Out of order: its gap was reported when a later message arrived first.
      if (bit < WINDOW) st.window |= 1 << bit
      return 'late'
    }
    const verdict = seq > st.seq + 1 ? 'gap' : 'alive'
    st.window = shift(st.window, st.seq, seq)
    st.seq = seq
    return verdict
  }

  /** Forgets `peer` (it said goodbye). */
  forget(peer: string): void {
    this.#peers.delete(peer)
  }

  /** Forgets every peer (the subscription restarted: start each afresh). */
  reset(): void {
    this.#peers.clear()
  }

  /** Forgets and returns the peers not heard for more than `silentAfter` ms: verdict `silent` for each. */
  onTick(now: number): string[] {
    const silent: string[] = []
    for (const [peer, st] of this.#peers) {
      if (now - st.seenAt > this.#silentAfter) {
        this.#peers.delete(peer)
        silent.push(peer)
      }
    }
    return silent
  }
}

/** Moves the arrival window from `from` to the new highest seq `to`, marking `from` as arrived. */
function shift(window: number, from: number, to: number): number {
  const by = to - from
  if (by >= WINDOW) return 0
  // After the shift, bit (by - 1) stands for `from`; the bits between stand for lost seqs.
  const moved = by === 0 ? window : (window << by) | 0
  return from > 0 ? moved | (1 << (by - 1)) : moved
}
