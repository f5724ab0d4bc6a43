/**
 * The kernel contract for the cluster's state machines (membership, replication):
 * etcd-raft's model. A machine holds state only; `step(event, now)` changes it and returns
 * what the caller must do — messages to send, timers to set, state to persist — and
 * performs no I/O itself: no sockets, no disk, no clock, no randomness it did not get from
 * its constructor. The caller (`KernelRunner`) does the I/O. So the same machine runs on
 * `SimNetwork` with a manual clock, where a seed replays a whole run, and on sockets.
 *
 * Ordering the runner guarantees for the actions of one step: every `persist` is durable
 * before any `send` goes out (a message never announces state the disk does not have —
 * etcd-raft's rule), then timers are set, then messages are sent in order.
 */
import { DecodeError } from '../core/errors.js'
import type { NodeId } from './transport.js'

export type KernelEvent<M> =
  /** The node (re)started; `persisted` is what its earlier lives persisted (empty on a new or wiped disk). */
  | { readonly type: 'start'; readonly persisted: ReadonlyMap<string, Uint8Array> }
  | { readonly type: 'message'; readonly from: NodeId; readonly message: M }
  /** A timer the machine set has fired. */
  | { readonly type: 'timer'; readonly name: string }
  /** The transport could not reach `peer` (see MessageTransport). */
  | { readonly type: 'unreachable'; readonly peer: NodeId }

export type KernelAction<M> =
  | { readonly type: 'send'; readonly to: NodeId; readonly message: M }
  /** Sets timer `name` to fire after `afterMs`, replacing a pending one of that name. */
  | { readonly type: 'timer'; readonly name: string; readonly afterMs: number }
  | { readonly type: 'cancel'; readonly name: string }
  /** Writes `value` under `key` on the node's disk (`undefined` deletes). */
  | { readonly type: 'persist'; readonly key: string; readonly value: Uint8Array | undefined }

export interface StateMachine<M> {
  /** Applies one event at time `now` (ms, the node's clock); returns the actions to perform. Must not do I/O. */
  step(event: KernelEvent<M>, now: number): readonly KernelAction<M>[]
}

/** A persist action, as the disk receives it. */
export type PersistAction = Extract<KernelAction<unknown>, { type: 'persist' }>

/** The node's durable key-value state, as the kernel sees it. */
export interface KernelDisk {
  /** Everything persisted, read at start. */
  load(): ReadonlyMap<string, Uint8Array>
  /** Applies the writes atomically and durably before returning. */
  write(changes: readonly PersistAction[]): void
}

/** Turns messages into frames and back. `decode` throws DecodeError (ERR_DECODE) for bad bytes. */
export interface MessageCodec<M> {
  encode(message: M): Uint8Array
  decode(bytes: Uint8Array): M
}

/** A codec for JSON-safe messages (UTF-8 JSON). It checks only that the bytes are JSON. */
export function jsonCodec<M>(): MessageCodec<M> {
  const encoder = new TextEncoder()
  const decoder = new TextDecoder('utf-8', { fatal: true })
  return {
    encode: (message) => encoder.encode(JSON.stringify(message)),
    decode: (bytes) => {
      try {
        return JSON.parse(decoder.decode(bytes)) as M
      } catch (err) {
        throw new DecodeError('A cluster frame is not UTF-8 JSON', { cause: err })
      }
    },
  }
}
