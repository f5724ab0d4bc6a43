/**
 * The real `MessageTransport` between node processes: length-prefixed frames over TCP, or
 * over TLS 1.3 (docs/decisions/0142 has the measurement that chose it over HTTP/1.1 and
 * HTTP/2, and the protocol).
 *
 * Connections are one-way, as Cassandra's are: a node dials each peer it sends to and only
 * sends on that connection; it only receives on the connections peers dial to it. So two
 * nodes dialling each other at once never need a tie-break, and a reconnect concerns one
 * direction only.
 *
 * Mutual authentication, on every connection, before any message is accepted:
 *   server → HELLO  [version, nonceS]
 *   client → AUTH   [version, clientId, serverId, nonceC, HMAC(secret, "client" nonceS nonceC clientId serverId)]
 *   server → ACCEPT [HMAC(secret, "server" nonceS nonceC clientId serverId)]   (or REFUSE [reason])
 * Both nonces are fresh 32-byte random values, so a recorded AUTH or ACCEPT is worthless on
 * another connection (replay); both ids are bound into both proofs, and the two proofs are
 * domain-separated, so a proof cannot be reflected or redirected to another node. The
 * server checks `serverId` is itself; the client checks the server's proof, so it knows it
 * reached a holder of the secret. `from` on receive is the authenticated `clientId`.
 * Over plain TCP every DATA frame then carries HMAC-SHA256(session key, sequence ‖ payload)
 * truncated to 16 bytes, the session key derived from the secret and both nonces, so a
 * frame injected or replayed into the stream by someone on the path is refused (the bytes
 * are not secret: use TLS for confidentiality). Over TLS (node certificates signed by the
 * cluster CA, verified both ways; optionally CN/SAN = node id) the frames carry no MAC.
 *
 * Guards: frames before authentication other than the handshake, handshake frames over
 * 1 KiB, a handshake not finished within `handshakeTimeout`, more than
 * `maxPendingHandshakes` unauthenticated connections, and frames over `maxFrameBytes` are
 * all refused — the connection is destroyed, the event counted in `stats` and reported to
 * `onError` (PeerAuthError ERR_PEER_AUTH, or ValueTooLargeError ERR_VALUE_TOO_LARGE).
 *
 * Sending: one bounded queue per peer (`maxQueuedFrames`, `maxQueuedBytes`); a message that
 * does not fit is dropped and reported once per episode as PeerUnreachableError. A failed
 * dial or a lost connection drops that peer's queue and reports it unreachable (messages
 * are fire-and-forget; the state machines resend what matters); the next dial waits an
 * exponential backoff with ±25 % jitter (`reconnect`), reset by a successful handshake.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { connect as tlsConnect, createServer as createTlsServer, type PeerCertificate, type TLSSocket } from 'node:tls'
import { pack, unpack } from 'msgpackr'
import type { Clock, TimerHandle } from '../core/clock.js'
import { toBytes, toMs, type ByteSize, type Duration } from '../core/duration.js'
import { BackoffPolicy } from '../core/backoff.js'
import { CacheError, ClosedError, InvalidOptionsError, PeerAuthError, PeerUnreachableError, ValueTooLargeError } from '../core/errors.js'
import { mathRandom, type Random } from '../core/random.js'
import { systemClock } from '../core/system-clock.js'
import { FrameReader } from './frame-reader.js'
import { DEFAULT_MAX_FRAME_BYTES, HandlerSlot, validateNodeId, type MessageTransport, type NodeId } from './transport.js'

export interface PeerAddress {
  readonly host: string
  readonly port: number
}

/** TLS for the cluster's connections: this node's certificate and the cluster CA (PEM). */
export interface TcpTransportTls {
  readonly key: string | Buffer
  readonly cert: string | Buffer
  /** The CA that signs every node certificate; peers presenting anything else are refused. */
  readonly ca: string | Buffer
  /** Also require a peer's certificate to name its node id (CN or a DNS subjectAltName). @default true */
  readonly verifyPeerId?: boolean
}

export interface TcpTransportOptions {
  /** This node's id (validated like every node id). */
  readonly nodeId: NodeId
  /** Where to listen; port 0 picks a free one. */
  readonly listen: PeerAddress
  /** The address peers should dial (behind NAT, a container, a 0.0.0.0 listen). @default the listen host and bound port */
  readonly advertise?: PeerAddress
  /** The cluster secret every node shares: at least 16 bytes (a string is taken as UTF-8). */
  readonly secret: string | Uint8Array
  /** TLS with node certificates (encryption, and certificate checks on top of the secret). */
  readonly tls?: TcpTransportTls
  /** Known peers and their addresses; `setPeer` / `removePeer` change them later (membership does). */
  readonly peers?: Readonly<Record<NodeId, PeerAddress>>
  /** Largest payload sent or accepted. @default 4 MiB */
  readonly maxFrameBytes?: ByteSize
  /** Messages queued per peer before new ones are dropped. @default 10 000 */
  readonly maxQueuedFrames?: number
  /** Bytes queued per peer before new messages are dropped. @default 64 MiB */
  readonly maxQueuedBytes?: ByteSize
  /** Dial plus handshake, and an inbound connection's handshake, must finish within this. @default 5 s */
  readonly handshakeTimeout?: Duration
  /** Unauthenticated inbound connections held at once; more are closed on arrival. @default 64 */
  readonly maxPendingHandshakes?: number
  /** Reconnect backoff (the shared policy, core/backoff.ts): `base` doubled per failed attempt up to `max`, ±25 % jitter, never above `max`. @default { base: 100 ms, max: 10 s } */
  readonly reconnect?: { readonly base?: Duration; readonly max?: Duration }
  readonly clock?: Clock
  /** Jitter source (nonces always come from the OS CSPRNG). */
  readonly random?: Random
  /** Connections refused and frames rejected (PeerAuthError, ValueTooLargeError, DecodeError): for logs and metrics. */
  readonly onError?: (error: CacheError) => void
}

export interface TcpTransportStats {
  readonly sent: number
  readonly received: number
  /** Messages dropped: queue full, peer unknown, or queued when a dial or connection failed. */
  readonly dropped: number
  /** Connections refused by authentication (either side), including pre-auth frames and deadlines. */
  readonly authFailures: number
  readonly handshakeTimeouts: number
  readonly oversizedFrames: number
  /** Dials that failed or connections lost. */
  readonly connectFailures: number
  readonly inbound: number
  readonly outbound: number
}

const VERSION = 1
const HELLO = 1
const AUTH = 2
const ACCEPT = 3
const REFUSE = 4
const DATA = 5
/** Handshake frames are small; this caps what a stranger can make a node buffer. */
const HANDSHAKE_LIMIT = 1024
const NONCE = 32
const MAC = 16
const LABEL = 'stratacache-cluster/1'

interface Outbound {
  readonly id: NodeId
  address: PeerAddress | undefined
  state: 'idle' | 'connecting' | 'open' | 'backoff'
  socket: Socket | undefined
  queue: Buffer[]
  queuedBytes: number
  /** Session MAC key (plain TCP) once open. */
  key: Buffer | undefined
  seq: bigint
  failures: number
  timer: TimerHandle | undefined
  overflowReported: boolean
  flushScheduled: boolean
  waitingDrain: boolean
}

function proof(secret: Buffer, role: 'client' | 'server' | 'data', nonceS: Buffer, nonceC: Buffer, clientId: string, serverId: string): Buffer {
  return createHmac('sha256', secret).update(`${LABEL} ${role}\0`).update(nonceS).update(nonceC).update(`${clientId}\0${serverId}`).digest()
}

function frameMac(key: Buffer, seq: bigint, frame: Buffer, start: number, end: number): Buffer {
  const s = Buffer.allocUnsafe(8)
  s.writeBigUInt64BE(seq, 0)
  return createHmac('sha256', key).update(s).update(frame.subarray(start, end)).digest().subarray(0, MAC)
}

function control(type: number, body: unknown): Buffer {
  const payload = pack(body)
  const frame = Buffer.allocUnsafe(5 + payload.byteLength)
  frame.writeUInt32BE(1 + payload.byteLength, 0)
  frame[4] = type
  payload.copy(frame, 5)
  return frame
}

/** Decodes a handshake body into an array, or undefined for anything else (untrusted bytes). */
function decodeControl(body: Buffer): unknown[] | undefined {
  try {
    const value: unknown = unpack(body.subarray(1))
    return Array.isArray(value) ? value : undefined
  } catch {
    return undefined
  }
}

const isBytes = (x: unknown, n: number): x is Uint8Array => x instanceof Uint8Array && x.byteLength === n

/** Whether a certificate names `id` as its CN or one of its DNS subjectAltNames. */
function certificateNames(cert: PeerCertificate | undefined, id: string): boolean {
  if (cert === undefined || cert === null || Object.keys(cert).length === 0) return false
  if (cert.subject?.CN === id) return true
  return (cert.subjectaltname ?? '').split(', ').some((n) => n === `DNS:${id}`)
}

function positiveInt(value: unknown, fallback: number, option: string): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw new InvalidOptionsError(option, 'expected a positive integer')
  return value
}

function address(value: unknown, option: string): PeerAddress {
  const a = value as PeerAddress | undefined
  if (a === null || typeof a !== 'object' || typeof a.host !== 'string' || a.host === '') throw new InvalidOptionsError(option, 'expected { host, port }')
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535) throw new InvalidOptionsError(`${option}.port`, 'expected a port 0-65535')
  return { host: a.host, port: a.port }
}

export class TcpTransport implements MessageTransport {
  readonly self: NodeId
  readonly maxFrameBytes: number
  readonly #secret: Buffer
  readonly #tls: TcpTransportTls | undefined
  readonly #listen: PeerAddress
  readonly #advertise: PeerAddress | undefined
  readonly #maxQueuedFrames: number
  readonly #maxQueuedBytes: number
  readonly #handshakeMs: number
  readonly #maxPending: number
  readonly #backoff: BackoffPolicy
  readonly #clock: Clock
  readonly #random: Random
  readonly #onError: (error: CacheError) => void
  readonly #peers = new Map<NodeId, Outbound>()
  readonly #inbound = new Set<Socket>()
  readonly #inboundById = new Map<NodeId, Socket>()
  #pending = 0
  #server: Server | undefined
  #port = 0
  readonly #receive = new HandlerSlot<(from: NodeId, payload: Uint8Array) => void>()
  readonly #unreachable = new HandlerSlot<(error: PeerUnreachableError) => void>()
  #closed = false
  #sent = 0
  #received = 0
  #dropped = 0
  #authFailures = 0
  #handshakeTimeouts = 0
  #oversized = 0
  #connectFailures = 0

  /** Creates a transport and starts listening; resolves once bound. */
  static async listen(options: TcpTransportOptions): Promise<TcpTransport> {
    const t = new TcpTransport(options)
    await t.#start()
    return t
  }

  private constructor(options: TcpTransportOptions) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object')
    validateNodeId(options.nodeId)
    this.self = options.nodeId
    this.#listen = address(options.listen, 'listen')
    this.#advertise = options.advertise === undefined ? undefined : address(options.advertise, 'advertise')
    const secret = typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : options.secret instanceof Uint8Array ? Buffer.from(options.secret) : undefined
    if (secret === undefined || secret.byteLength < 16) throw new InvalidOptionsError('secret', 'expected a cluster secret of at least 16 bytes')
    this.#secret = secret
    const tls = options.tls
    if (tls !== undefined && (tls === null || typeof tls !== 'object' || tls.key === undefined || tls.cert === undefined || tls.ca === undefined)) {
      throw new InvalidOptionsError('tls', 'expected { key, cert, ca }')
    }
    this.#tls = tls
    this.maxFrameBytes = options.maxFrameBytes === undefined ? DEFAULT_MAX_FRAME_BYTES : toBytes(options.maxFrameBytes, 'maxFrameBytes')
    if (!(this.maxFrameBytes >= 1 && this.maxFrameBytes <= 2 ** 31)) throw new InvalidOptionsError('maxFrameBytes', 'expected 1 byte to 2 GiB')
    this.#maxQueuedFrames = positiveInt(options.maxQueuedFrames, 10_000, 'maxQueuedFrames')
    this.#maxQueuedBytes = options.maxQueuedBytes === undefined ? 64 * 1024 * 1024 : toBytes(options.maxQueuedBytes, 'maxQueuedBytes')
    this.#handshakeMs = options.handshakeTimeout === undefined ? 5_000 : toMs(options.handshakeTimeout, 'handshakeTimeout')
    if (!(this.#handshakeMs > 0 && Number.isFinite(this.#handshakeMs))) throw new InvalidOptionsError('handshakeTimeout', 'expected a finite duration > 0')
    this.#maxPending = positiveInt(options.maxPendingHandshakes, 64, 'maxPendingHandshakes')
    const base = options.reconnect?.base === undefined ? 100 : toMs(options.reconnect.base, 'reconnect.base')
    const max = options.reconnect?.max === undefined ? 10_000 : toMs(options.reconnect.max, 'reconnect.max')
    if (!Number.isFinite(max) || max < base) throw new InvalidOptionsError('reconnect.max', 'expected a finite duration >= reconnect.base')
    this.#clock = options.clock ?? systemClock
    this.#random = options.random ?? mathRandom
    this.#backoff = new BackoffPolicy({ initial: base, max, jitter: 0.25 }, this.#random, 'reconnect')
    this.#onError = options.onError ?? (() => undefined)
    for (const [id, a] of Object.entries(options.peers ?? {})) this.setPeer(id, a)
  }

  /** The address peers should dial: `advertise`, else the listen host and the bound port. */
  get advertised(): PeerAddress {
    return this.#advertise ?? { host: this.#listen.host, port: this.#port }
  }

  get stats(): TcpTransportStats {
    let outbound = 0
    for (const p of this.#peers.values()) if (p.state === 'open') outbound++
    return {
      sent: this.#sent,
      received: this.#received,
      dropped: this.#dropped,
      authFailures: this.#authFailures,
      handshakeTimeouts: this.#handshakeTimeouts,
      oversizedFrames: this.#oversized,
      connectFailures: this.#connectFailures,
      inbound: this.#inboundById.size,
      outbound,
    }
  }

  /** Sets (or moves) a peer's address; a moved peer's open connection is closed and redialled on the next send. */
  setPeer(id: NodeId, peerAddress: PeerAddress): void {
    validateNodeId(id, 'peer')
    const a = address(peerAddress, `peers.${id}`)
    const peer = this.#peers.get(id)
    if (peer === undefined) {
      this.#peers.set(id, { id, address: a, state: 'idle', socket: undefined, queue: [], queuedBytes: 0, key: undefined, seq: 0n, failures: 0, timer: undefined, overflowReported: false, flushScheduled: false, waitingDrain: false })
      return
    }
    const moved = peer.address === undefined || peer.address.host !== a.host || peer.address.port !== a.port
    peer.address = a
    if (!moved || peer.state === 'idle') return
    this.#reset(peer)
    // A new address deserves a dial now, not after the old one's backoff.
    peer.failures = 0
    if (peer.queue.length > 0) this.#dial(peer)
  }

  /** Bytes queued for `peer` and not yet written to its socket (0 for an unknown peer): the backpressure signal of `ChannelMux`. */
  queuedBytes(peer: NodeId): number {
    return this.#peers.get(peer)?.queuedBytes ?? 0
  }

  /** Forgets a peer: closes its connection, drops its queue (not reported). */
  removePeer(id: NodeId): void {
    const peer = this.#peers.get(id)
    if (peer === undefined) return
    this.#reset(peer)
    this.#dropped += peer.queue.length
    peer.queue = []
    peer.queuedBytes = 0
    this.#peers.delete(id)
  }

  send(to: NodeId, payload: Uint8Array): void {
    if (this.#closed) throw new ClosedError(`The transport of node ${this.self} is closed`)
    validateNodeId(to, 'to')
    if (!(payload instanceof Uint8Array)) throw new InvalidOptionsError('payload', 'expected a Uint8Array')
    if (payload.byteLength > this.maxFrameBytes) throw new ValueTooLargeError(payload.byteLength, this.maxFrameBytes, 'cluster frame')
    if (to === this.self) {
      // No socket to ourselves; still asynchronous, as for any peer.
      const copy = Uint8Array.from(payload)
      queueMicrotask(() => this.#deliver(this.self, copy))
      this.#sent++
      return
    }
    const peer = this.#peers.get(to)
    if (peer === undefined || peer.address === undefined) {
      this.#dropped++
      queueMicrotask(() => this.#reportUnreachable(new PeerUnreachableError(to, `No address is known for peer ${to}`)))
      return
    }
    const mac = this.#tls === undefined ? MAC : 0
    const frame = Buffer.allocUnsafe(5 + payload.byteLength + mac)
    if (peer.queue.length >= this.#maxQueuedFrames || peer.queuedBytes + frame.byteLength > this.#maxQueuedBytes) {
      this.#dropped++
      if (!peer.overflowReported) {
        peer.overflowReported = true
        queueMicrotask(() => this.#reportUnreachable(new PeerUnreachableError(to, `The send queue to peer ${to} is full (${peer.queue.length} messages, ${peer.queuedBytes} bytes); messages are dropped until it drains`)))
      }
      return
    }
    frame.writeUInt32BE(1 + payload.byteLength + mac, 0)
    frame[4] = DATA
    frame.set(payload, 5)
    peer.queue.push(frame)
    peer.queuedBytes += frame.byteLength
    if (peer.state === 'open') this.#scheduleFlush(peer)
    else if (peer.state === 'idle') this.#dial(peer)
  }

  onReceive(handler: (from: NodeId, payload: Uint8Array) => void): () => void {
    return this.#receive.set(handler)
  }

  onUnreachable(handler: (error: PeerUnreachableError) => void): () => void {
    return this.#unreachable.set(handler)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const peer of this.#peers.values()) {
      this.#reset(peer)
      peer.queue = []
      peer.queuedBytes = 0
    }
    for (const socket of this.#inbound) socket.destroy()
    this.#inbound.clear()
    this.#inboundById.clear()
    const server = this.#server
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()))
    this.#receive.current = undefined
    this.#unreachable.current = undefined
  }

  // ---- listening side ----------------------------------------------------------------

  async #start(): Promise<void> {
    const tls = this.#tls
    const server =
      tls === undefined
        ? createNetServer((socket) => this.#accept(socket))
        : createTlsServer(
            { key: tls.key, cert: tls.cert, ca: tls.ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3', handshakeTimeout: this.#handshakeMs },
            (socket) => this.#accept(socket),
          )
    if (tls !== undefined) {
      server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
        this.#authFailures++
        if (/timed out/i.test(err.message)) this.#handshakeTimeouts++
        this.#report(new PeerAuthError(`${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, `TLS handshake refused: ${err.message}`, { cause: err }))
      })
    }
    server.on('error', (err: Error) => this.#report(new PeerUnreachableError(this.self, `Cluster listener error: ${err.message}`, { cause: err })))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.#listen.port, this.#listen.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.#server = server
    this.#port = (server.address() as AddressInfo).port
  }

  #accept(socket: Socket): void {
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
    if (this.#closed || this.#pending >= this.#maxPending) {
      socket.destroy()
      this.#authFailures++
      this.#report(new PeerAuthError(remote, `Refused a cluster connection: ${this.#closed ? 'closed' : `${this.#pending} handshakes already pending`}`))
      return
    }
    this.#pending++
    this.#inbound.add(socket)
    socket.setNoDelay(true)
    const nonceS = randomBytes(NONCE)
    const reader = new FrameReader(HANDSHAKE_LIMIT)
    let peerId: NodeId | undefined
    let key: Buffer | undefined
    let seq = 0n
    /** Authenticated: DATA frames are accepted from now on. */
    let open = false
    /** No longer counted as a pending handshake (authenticated, refused or gone). */
    let settled = false
    const deadline = this.#clock.setTimeout(
      () => {
        this.#handshakeTimeouts++
        refuse(`the handshake did not finish within ${this.#handshakeMs} ms`, false)
      },
      this.#handshakeMs,
      { unref: true },
    )
    const settle = (): void => {
      if (settled) return
      settled = true
      this.#pending--
      this.#clock.clearTimeout(deadline)
    }
    const refuse = (reason: string, tell: boolean): void => {
      settle()
      this.#authFailures++
      this.#report(new PeerAuthError(peerId ?? remote, `Refused cluster connection from ${peerId ?? remote}: ${reason}`))
      socket.pause()
      // Tell an honest peer with a wrong secret why (its operator needs to know); then close.
      if (tell && socket.writable) socket.end(control(REFUSE, [reason]), () => socket.destroy())
      else socket.destroy()
    }
    socket.on('close', () => {
      settle()
      this.#inbound.delete(socket)
      if (peerId !== undefined && this.#inboundById.get(peerId) === socket) this.#inboundById.delete(peerId)
    })
    socket.on('error', () => undefined) // 'close' follows
    const onFrame = (body: Buffer): boolean => {
      if (socket.destroyed || (settled && !open)) return false
      const type = body.byteLength > 0 ? body[0] : -1
      if (!open) {
        // Not authenticated: only AUTH is allowed.
        if (type !== AUTH) {
          refuse(type === DATA ? 'a message frame before authentication' : `unexpected frame type ${type} before authentication`, false)
          return false
        }
        const m = decodeControl(body)
        if (m === undefined || m[0] !== VERSION || typeof m[1] !== 'string' || typeof m[2] !== 'string' || !isBytes(m[3], NONCE) || !isBytes(m[4], 32)) {
          refuse('a malformed AUTH frame', true)
          return false
        }
        const [, clientId, serverId, nonceC, mac] = m as [number, string, string, Uint8Array, Uint8Array]
        try {
          validateNodeId(clientId)
        } catch {
          refuse('a malformed node id', true)
          return false
        }
        peerId = clientId
        if (serverId !== this.self) {
          refuse(`it asked for node ${serverId.slice(0, 128)}, this is ${this.self}`, true)
          return false
        }
        const c = Buffer.from(nonceC)
        if (!timingSafeEqual(proof(this.#secret, 'client', nonceS, c, clientId, this.self), mac)) {
          refuse('wrong cluster secret', true)
          return false
        }
        if (this.#tls !== undefined && this.#tls.verifyPeerId !== false && !certificateNames((socket as TLSSocket).getPeerCertificate(), clientId)) {
          refuse(`its certificate does not name node ${clientId}`, true)
          return false
        }
        settle()
        open = true
        if (this.#tls === undefined) key = proof(this.#secret, 'data', nonceS, c, clientId, this.self)
        reader.limit = 1 + this.maxFrameBytes + (key === undefined ? 0 : MAC)
        socket.write(control(ACCEPT, [proof(this.#secret, 'server', nonceS, c, clientId, this.self)]))
        // A newer connection from the same peer replaces an older (half-open) one.
        const older = this.#inboundById.get(clientId)
        if (older !== undefined) older.destroy()
        this.#inboundById.set(clientId, socket)
        return true
      }
      const from = peerId as NodeId
      if (type !== DATA) {
        this.#report(new PeerAuthError(from, `Unexpected frame type ${type} from peer ${from}; connection closed`))
        socket.destroy()
        return false
      }
      let end = body.byteLength
      if (key !== undefined) {
        end -= MAC
        if (end < 1 || !timingSafeEqual(frameMac(key, seq, body, 1, end), body.subarray(end))) {
          this.#authFailures++
          this.#report(new PeerAuthError(from, `A frame from peer ${from} failed its MAC (injected, replayed or corrupt); connection closed`))
          socket.destroy()
          return false
        }
        seq++
      }
      this.#received++
      this.#deliver(from, body.subarray(1, end))
      return !socket.destroyed
    }
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, onFrame)
      } catch (err) {
        if (err instanceof ValueTooLargeError) this.#oversized++
        if (!open) {
          refuse(err instanceof ValueTooLargeError ? `a handshake frame of ${err.size} bytes` : `a protocol error (${String(err)})`, false)
          return
        }
        this.#report(err instanceof CacheError ? err : new PeerAuthError(peerId ?? remote, `Protocol error from peer ${peerId ?? remote}; connection closed`, { cause: err }))
        socket.destroy()
      }
    })
    socket.write(control(HELLO, [VERSION, nonceS]))
  }

  #deliver(from: NodeId, payload: Uint8Array): void {
    try {
      this.#receive.current?.(from, payload)
    } catch (err) {
      // A throwing receiver must not tear down the connection.
      this.#report(err instanceof CacheError ? err : new PeerUnreachableError(from, 'The receive handler threw', { cause: err }))
    }
  }

  // ---- dialling side -------------------------------------------------------------------

  #dial(peer: Outbound): void {
    const a = peer.address
    if (a === undefined || this.#closed) return
    peer.state = 'connecting'
    const tls = this.#tls
    const socket: Socket =
      tls === undefined
        ? netConnect({ host: a.host, port: a.port, noDelay: true })
        : tlsConnect({
            host: a.host,
            port: a.port,
            key: tls.key,
            cert: tls.cert,
            ca: tls.ca,
            minVersion: 'TLSv1.3',
            // The server is authenticated by the CA and, below, by its secret proof bound to its
            // node id; addresses change with membership, so host names are not what identifies it.
            checkServerIdentity: (_host, cert) => (tls.verifyPeerId !== false && !certificateNames(cert, peer.id) ? new Error(`the certificate does not name node ${peer.id}`) : undefined),
          })
    socket.setNoDelay(true)
    peer.socket = socket
    const nonceC = randomBytes(NONCE)
    const reader = new FrameReader(HANDSHAKE_LIMIT)
    let open = false
    let nonceS: Buffer | undefined
    const fail = (error: PeerUnreachableError): void => {
      if (peer.socket !== socket) return
      this.#failed(peer, error)
    }
    peer.timer = this.#clock.setTimeout(() => {
      this.#handshakeTimeouts++
      fail(new PeerUnreachableError(peer.id, `Peer ${peer.id} did not complete the handshake within ${this.#handshakeMs} ms`))
    }, this.#handshakeMs, { unref: true })
    socket.on('error', (err: Error) => {
      const tlsRefused = tls !== undefined && !open && /certificate|alert|handshake|self.signed|unable to verify/i.test(err.message)
      if (tlsRefused) {
        this.#authFailures++
        this.#report(new PeerAuthError(peer.id, `TLS with peer ${peer.id} refused: ${err.message}`, { cause: err }))
      }
      fail(new PeerUnreachableError(peer.id, `Peer ${peer.id} at ${a.host}:${a.port}: ${err.message}`, { cause: err }))
    })
    socket.on('close', () => fail(new PeerUnreachableError(peer.id, open ? `The connection to peer ${peer.id} was lost` : `Peer ${peer.id} closed the connection during the handshake`)))
    socket.on('drain', () => {
      peer.waitingDrain = false
      this.#scheduleFlush(peer)
    })
    const onFrame = (body: Buffer): boolean => {
      if (peer.socket !== socket) return false
      const type = body.byteLength > 0 ? body[0] : -1
      const m = open ? undefined : decodeControl(body)
      if (!open && type === HELLO && m !== undefined && m[0] === VERSION && isBytes(m[1], NONCE)) {
        if (nonceS !== undefined) {
          fail(new PeerUnreachableError(peer.id, `Peer ${peer.id} sent a second HELLO; connection closed`))
          return false
        }
        nonceS = Buffer.from(m[1])
        socket.write(control(AUTH, [VERSION, this.self, peer.id, nonceC, proof(this.#secret, 'client', nonceS, nonceC, this.self, peer.id)]))
        return true
      }
      if (!open && type === ACCEPT && m !== undefined && nonceS !== undefined && isBytes(m[0], 32)) {
        if (!timingSafeEqual(proof(this.#secret, 'server', nonceS, nonceC, this.self, peer.id), m[0])) {
          this.#authFailures++
          const err = new PeerAuthError(peer.id, `Peer ${peer.id} could not prove the cluster secret; connection refused`)
          this.#report(err)
          fail(new PeerUnreachableError(peer.id, err.message, { cause: err }))
          return false
        }
        open = true
        if (peer.timer !== undefined) this.#clock.clearTimeout(peer.timer)
        peer.timer = undefined
        peer.state = 'open'
        peer.failures = 0
        peer.seq = 0n
        peer.key = tls === undefined ? proof(this.#secret, 'data', nonceS, nonceC, this.self, peer.id) : undefined
        this.#scheduleFlush(peer)
        return true
      }
      if (!open && type === REFUSE) {
        const reason = m !== undefined && typeof m[0] === 'string' ? m[0].slice(0, 200) : 'no reason given'
        this.#authFailures++
        const err = new PeerAuthError(peer.id, `Peer ${peer.id} refused this node: ${reason}`)
        this.#report(err)
        fail(new PeerUnreachableError(peer.id, err.message, { cause: err }))
        return false
      }
      // Nothing else may come back on a sending connection.
      fail(new PeerUnreachableError(peer.id, `Peer ${peer.id} sent an unexpected frame (type ${type}); connection closed`))
      return false
    }
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, onFrame)
      } catch (err) {
        if (err instanceof ValueTooLargeError) this.#oversized++
        fail(new PeerUnreachableError(peer.id, `Peer ${peer.id} broke the protocol (${String(err)}); connection closed`, { cause: err }))
      }
    })
  }

  #scheduleFlush(peer: Outbound): void {
    if (peer.flushScheduled || peer.waitingDrain) return
    peer.flushScheduled = true
    // Sends made in one synchronous step leave in one batch (one write syscall).
    queueMicrotask(() => {
      peer.flushScheduled = false
      this.#flush(peer)
    })
  }

  #flush(peer: Outbound): void {
    const socket = peer.socket
    if (peer.state !== 'open' || socket === undefined || peer.queue.length === 0) return
    socket.cork()
    let ok = true
    let n = 0
    while (ok && n < peer.queue.length) {
      const frame = peer.queue[n++]
      if (peer.key !== undefined) frameMac(peer.key, peer.seq++, frame, 5, frame.byteLength - MAC).copy(frame, frame.byteLength - MAC)
      peer.queuedBytes -= frame.byteLength
      ok = socket.write(frame)
    }
    peer.queue = n === peer.queue.length ? [] : peer.queue.slice(n)
    this.#sent += n
    socket.uncork()
    if (peer.queue.length === 0) peer.overflowReported = false
    if (!ok) peer.waitingDrain = true
  }

  /** A dial or connection failed: drop the queue, report, back off. */
  #failed(peer: Outbound, error: PeerUnreachableError): void {
    this.#connectFailures++
    this.#dropped += peer.queue.length
    peer.queue = []
    peer.queuedBytes = 0
    peer.overflowReported = false
    this.#reset(peer)
    if (this.#closed) return
    peer.failures++
    const delay = this.#backoff.delay(peer.failures - 1)
    peer.state = 'backoff'
    peer.timer = this.#clock.setTimeout(() => {
      peer.timer = undefined
      peer.state = 'idle'
      if (peer.queue.length > 0) this.#dial(peer)
    }, delay, { unref: true })
    this.#reportUnreachable(error)
  }

  /** Closes a peer's connection and timers; leaves its queue. */
  #reset(peer: Outbound): void {
    if (peer.timer !== undefined) this.#clock.clearTimeout(peer.timer)
    peer.timer = undefined
    const socket = peer.socket
    peer.socket = undefined
    peer.key = undefined
    peer.waitingDrain = false
    peer.state = 'idle'
    socket?.destroy()
  }

  #reportUnreachable(error: PeerUnreachableError): void {
    if (this.#closed) return
    try {
      this.#unreachable.current?.(error)
    } catch {
      // A throwing listener must not break the transport.
    }
  }

  #report(error: CacheError): void {
    try {
      this.#onError(error)
    } catch {
      // A throwing listener must not break the transport.
    }
  }
}
