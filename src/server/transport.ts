/**
 * The seam between a node and its peers. Membership, failure detection and replication
 * (the cluster issue) talk to other nodes only through a `Transport` and read time only
 * from a `Clock`, never from `node:http` or real timers, so a whole cluster can run in one
 * process on a simulated network (partitions, delays, drops) without sleeping.
 *
 * A single node needs no peers: `startNode` uses `noTransport` unless given one, and every
 * acknowledged write is offered to the `Replicator` seam (none by default).
 */

/** Where a peer listens, and the region it belongs to (Zerocache's grouping). */
export interface PeerAddress {
  readonly id: string
  readonly host: string
  readonly port: number
  readonly region: string
}

/** A message between nodes. `type` names the message; `body` is JSON-safe. */
export interface PeerMessage {
  readonly type: string
  readonly body: unknown
}

export interface Transport {
  /** Sends `message` to `peer` and resolves with its reply; rejects when it cannot be delivered. */
  send(peer: PeerAddress, message: PeerMessage, signal?: AbortSignal): Promise<PeerMessage>
  /** Installs the handler for messages from peers; returns a function that removes it. */
  listen(handler: (from: PeerAddress, message: PeerMessage) => Promise<PeerMessage>): () => void
  close(): Promise<void>
}

/** One acknowledged write or delete, as the node offers it to replication. */
export interface WriteEvent {
  readonly type: 'put' | 'delete' | 'invalidate' | 'clear'
  /** The key; for `clear`, the prefix cleared (`undefined`: every key). */
  readonly key?: string
  readonly value?: Uint8Array
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

/** A transport for a node without peers: sending fails, nothing arrives. */
export const noTransport: Transport = {
  send: (peer) => Promise.reject(new Error(`No transport configured: cannot reach peer ${peer.id}`)),
  listen: () => () => undefined,
  close: () => Promise.resolve(),
}

/** A replicator that replicates nothing (a single node). */
export const noReplication: Replicator = {
  onWrite: () => undefined,
  close: () => Promise.resolve(),
}

/**
 * A simulated network for tests and for running several nodes in one process: each
 * `transport(address)` joins the network; `send` delivers to the peer's handler
 * asynchronously (a microtask), and `partition(a, b)` cuts the link both ways.
 */
export class InProcessNetwork {
  readonly #handlers = new Map<string, (from: PeerAddress, message: PeerMessage) => Promise<PeerMessage>>()
  readonly #cut = new Set<string>()

  transport(self: PeerAddress): Transport {
    return {
      send: async (peer, message, signal) => {
        if (signal?.aborted === true) throw new Error('aborted')
        await Promise.resolve()
        const handler = this.#handlers.get(peer.id)
        if (handler === undefined || this.#cut.has(`${self.id}|${peer.id}`)) throw new Error(`Peer ${peer.id} unreachable`)
        return handler(self, message)
      },
      listen: (handler) => {
        this.#handlers.set(self.id, handler)
        return () => {
          if (this.#handlers.get(self.id) === handler) this.#handlers.delete(self.id)
        }
      },
      close: async () => {
        this.#handlers.delete(self.id)
      },
    }
  }

  /** Cuts (or with `false`, heals) the link between two peers, both directions. */
  partition(a: string, b: string, cut = true): void {
    for (const link of [`${a}|${b}`, `${b}|${a}`]) {
      if (cut) this.#cut.add(link)
      else this.#cut.delete(link)
    }
  }
}
