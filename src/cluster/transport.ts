/**
 * The message transport between cluster nodes: framed messages between node ids, nothing
 * more. Membership and replication (pure state machines, kernel.ts) see only this and a
 * Clock, so the same code runs on `SimNetwork` (stratacache/testing) in a test and on
 * sockets in production.
 *
 * The contract is what a datagram-like link between two processes can honestly promise,
 * so the state machines are written for the real thing:
 * - `send` is fire-and-forget: a message may be lost, delayed, reordered, or (on a
 *   retrying transport) duplicated; no reply is implied. Requests and answers are two
 *   messages, matched by the state machine (etcd-raft, SWIM do the same).
 * - `from` on receive is the peer's authenticated id: an implementation establishes it by
 *   mutual authentication (mTLS with node certificates, or a handshake proving a shared
 *   cluster secret) and never takes it from the payload, so a stranger cannot join,
 *   gossip or inject writes. A frame from an unauthenticated connection never reaches the
 *   handler.
 * - A peer that cannot be reached (unknown id, connection refused, down) is reported
 *   through `onUnreachable` with `PeerUnreachableError` (ERR_PEER_UNREACHABLE), like
 *   etcd-raft's ReportUnreachable; silence (a partition, a paused peer) is not reported —
 *   only failure detection can tell.
 * A real implementation (HTTP/2 streams, or length-prefixed frames over TCP/TLS) keeps one
 * connection per peer, frames each payload, bounds its send queue per peer (dropping, not
 * blocking, when full), and reconnects with the shared backoff.
 */
import { InvalidOptionsError, type PeerUnreachableError } from '../core/errors.js'

/** A node's stable id (persisted with its data). 1-128 characters of [A-Za-z0-9_.:-]. */
export type NodeId = string

const NODE_ID = /^[A-Za-z0-9_.:-]{1,128}$/

/** Throws ERR_INVALID_OPTIONS unless `id` is a well-formed node id. */
export function validateNodeId(id: unknown, option = 'nodeId'): asserts id is NodeId {
  if (typeof id !== 'string' || !NODE_ID.test(id)) throw new InvalidOptionsError(option, 'expected 1-128 characters of [A-Za-z0-9_.:-]')
}

/** Default largest frame a transport accepts: 4 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024

export interface MessageTransport {
  /** This node's id. */
  readonly self: NodeId
  /** Largest payload `send` accepts, bytes. */
  readonly maxFrameBytes: number
  /**
   * Sends one framed message to `to` and returns at once (see the contract above). Throws
   * only for the caller's mistakes: ERR_CLOSED after `close()`, ERR_INVALID_OPTIONS for a
   * malformed node id, ERR_VALUE_TOO_LARGE for a payload over `maxFrameBytes`.
   */
  send(to: NodeId, payload: Uint8Array): void
  /** Installs the receiver (one; a second replaces the first). Returns a remover. */
  onReceive(handler: (from: NodeId, payload: Uint8Array) => void): () => void
  /** Installs the unreachable-peer listener (one). Returns a remover. */
  onUnreachable(handler: (error: PeerUnreachableError) => void): () => void
  /** Stops sending and receiving; idempotent. */
  close(): Promise<void>
}

/**
 * The one handler a transport holds for `onReceive` or `onUnreachable`: `set` replaces it and
 * returns the remover, which clears it only while it is still the one set (a later `set`
 * wins). `current` is what to call, undefined when none.
 */
export class HandlerSlot<H> {
  current: H | undefined

  set(handler: H): () => void {
    this.current = handler
    return () => {
      if (this.current === handler) this.current = undefined
    }
  }
}
