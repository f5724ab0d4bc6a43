/**
 * The seam between a node's keyspace and replication: every acknowledged write is offered
 * to the `Replicator` (none by default: a single node). Peers are reached through the
 * cluster kernel's `MessageTransport` (src/cluster/transport.ts), not from here.
 */

/** One acknowledged write or delete, as the node offers it to replication. */
export interface WriteEvent {
  readonly type: 'put' | 'delete' | 'invalidate' | 'clear'
  /** The key; for `clear`, the prefix cleared (`undefined`: every key). */
  readonly key?: string
  readonly value?: Uint8Array
  /** The version's hlc (put, delete: the tombstone's, invalidate, clear: the prefix tombstone's). */
  readonly version?: number
  /** Absolute expiry in ms since the epoch; `null` for none (so forwarded writes keep their expiry). */
  readonly expiresAt?: number | null
  readonly tags?: readonly string[]
  readonly mode?: 'hard' | 'soft'
}

/** Receives every acknowledged write; replication plugs in here. Must not throw. */
export interface Replicator {
  onWrite(event: WriteEvent): void
  close(): Promise<void>
}

/** A replicator that replicates nothing (a single node). */
export const noReplication: Replicator = {
  onWrite: () => undefined,
  close: () => Promise.resolve(),
}
