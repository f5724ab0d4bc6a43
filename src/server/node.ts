/**
 * `startNode(options)`: one cache node — the HTTP API of `http-api.ts` on node:http (or
 * node:https), guarded, over a `NodeEngine`.
 *
 * Request path (admission before any work, LoomCache's order of defences):
 *   connection → node-wide, then per-IP connection limit (503 + close)
 *   request    → draining? (503 + close) → token bucket (429) → auth (401) →
 *                [a body to read: a slot free now? → bodies arriving from this IP
 *                (maxUploadsPerIp) → byte budget (maxBufferedBodyBytes) → body read
 *                within its size limit (413) and deadline (408), holding no slot] →
 *                concurrency bound (503, never queued) → route → engine → response
 * Bodies arriving and work in flight are separate resources: slow uploads, from however
 * many addresses, cannot hold the slots that ready requests need (issue 14).
 * Probes (`/healthz`, `/readyz`, `/ping`) skip auth, the rate limit and the bound, so
 * orchestrators see the truth under overload. Slow clients are cut by node:http's
 * `headersTimeout` / `requestTimeout` (checked every second) with a JSON 408.
 *
 * Shutdown (`close()`): readiness off, requests on open or new connections get 503 +
 * `Connection: close`, in-flight requests finish (or are cut at `drainTimeout`), idle
 * keep-alive connections get up to DRAIN_LINGER_MS more (a request already on the wire is
 * answered, not reset), then the node stops listening, and the engine closes the store (LMDB commits are durable when acknowledged; close
 * releases the environment). A write answered 2xx was awaited through the store first.
 *
 * Nothing a client sends can throw out of a handler: every path ends in a typed JSON
 * answer or a closed socket; unexpected exceptions are answered 500 and logged.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { isIP, type AddressInfo, type Socket } from 'node:net'
import type { TimerHandle } from '../core/clock.js'
import { BadRequestError, BusyError, CacheError, InvalidOptionsError, MethodNotAllowedError, StoreUnavailableError, TooLargeError } from '../core/errors.js'
import { registerMetrics, registerReadings } from '../metrics/prometheus.js'
import { HEADER_NODE, STATUS_OF_CODE, type NodeStats } from '../protocol/wire.js'
import { lmdbStore } from '../store/lmdb-store.js'
import type { Store } from '../store/types.js'
import type { ClusterView } from '../cluster/membership.js'
import { Dashboard, DASHBOARD_EVENTS_PATH, DASHBOARD_PATH, DASHBOARD_SNAPSHOT_PATH, isDashboardPath } from './dashboard.js'
import { errorResponse, HttpApi, isProbe, splitUrl, type ApiResponse, type Headers } from './http-api.js'
import { createLogger, type NodeLogger } from './logger.js'
import { NodeEngine } from './node-engine.js'
import { resolveNodeOptions, type NodeOptions, type ResolvedNodeOptions } from './node-options.js'
import { TokenBucketLimiter } from './token-bucket.js'
import { WatchHub } from './watch-hub.js'
import { WATCH_PATH } from '../protocol/watch.js'
import type { MessageTransport } from '../cluster/transport.js'
import { ClusterService, resolveClusterNodeId } from './cluster-service.js'
import { isTraced, nodeRequestChannel } from '../core/tracing.js'
import { traceInject, traceRequest } from './request-tracing.js'
import { hasMinVersion } from './replication-http.js'
import { type ReplicationService, startReplication } from './replication-service.js'
import { listenError } from './listen-error.js'

/** A request for `NodeHandle.inject`: everything but the socket. */
export interface InjectRequest {
  readonly method: string
  readonly url: string
  readonly headers?: Headers
  readonly body?: Uint8Array | string
  /** The client address the node sees. @default '127.0.0.1' */
  readonly remoteAddress?: string
}

export interface NodeHandle {
  /** `http://host:port` (or `https://`). */
  readonly url: string
  readonly host: string
  readonly port: number
  /** This node's id (`host:port` unless configured). */
  readonly id: string
  /** The resolved, frozen configuration (secrets included: do not print it as is). */
  readonly options: ResolvedNodeOptions
  /** The peer transport (cluster kernel), when one was given. */
  readonly transport: MessageTransport | undefined
  /** The cluster service: membership, view, state (a one-node cluster without seeds or discovery). */
  readonly cluster: ClusterService
  /** Runs one request through admission and the API without a socket. */
  inject(request: InjectRequest): Promise<ApiResponse>
  stats(): NodeStats
  /** Graceful shutdown: drain within `drainTimeout`, then flush and close the store. Idempotent. */
  close(): Promise<void>
}

const EMPTY = new Uint8Array(0)
/** TLS connections refused past a connection limit that may complete their handshake to read the 503. */
const MAX_PENDING_TLS_REFUSALS = 64
/**
 * On shutdown, how long idle keep-alive connections are kept (within drainTimeout) so a
 * request already on the wire on one is read and answered 503, not reset with the socket.
 */
const DRAIN_LINGER_MS = 1000
/** How long a connection refused with a raw 503 may stay open for its client to read it. */
const REFUSED_LINGER_MS = 5000

/** Swallows errors of answers already given up on (a socket gone). */
const ignore = (): void => undefined

/**
 * Lingering close (Apache's, nginx's) of a connection answered before its request body was
 * read (413, 401, 503…): node:http destroys the socket once the answer is written, and a
 * socket closed with unread bytes sends a RST, which can discard the answer on the client's
 * side (a client still writing the body saw EPIPE / ECONNRESET instead of the 413, and took
 * the node for unreachable). Instead the answer is followed by a FIN, the rest of the body is
 * read and dropped (node:http dumps the request), and the socket is destroyed when the client
 * closes, or once it sends nothing for REFUSED_LINGER_MS (requestTimeout still bounds it).
 */
function lingerOnClose(socket: Socket): void {
  socket.destroySoon = function (this: Socket): void {
    this.end()
    this.setTimeout(REFUSED_LINGER_MS, () => this.destroy())
  }
}

/** The lines of a raw HTTP answer, for sockets that never became a request. */
function rawResponse(status: number, reason: string, code: string, message: string, retryAfter?: number): string {
  const body = JSON.stringify({ code, message })
  const retry = retryAfter === undefined ? '' : `Retry-After: ${retryAfter}\r\n`
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${retry}Connection: close\r\n\r\n${body}`
}

/**
 * The token of an `Authorization: Bearer <token>` header, or `undefined`. The scheme is
 * case-insensitive and may be followed by more than one space (RFC 7235 §2.1).
 */
function bearerToken(auth: string | string[] | undefined): string | undefined {
  if (typeof auth !== 'string' || auth.length < 7 || auth.slice(0, 6).toLowerCase() !== 'bearer') return undefined
  let i = 6
  if (auth.charCodeAt(i) !== 32) return undefined
  while (auth.charCodeAt(i) === 32) i++
  return auth.slice(i)
}

/**
 * The password of an `Authorization: Basic <base64(user:password)>` header, or
 * `undefined`. Only the dashboard's routes take it (a browser can send it on a page load
 * and on an EventSource; it cannot add a Bearer header to either); the user name is ignored.
 */
function basicPassword(auth: string | string[] | undefined): string | undefined {
  if (typeof auth !== 'string' || auth.length < 7 || auth.slice(0, 6).toLowerCase() !== 'basic ') return undefined
  const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  return colon === -1 ? undefined : decoded.slice(colon + 1)
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}

/** The body did not arrive within its deadline (answered 408). */
class BodyTimeoutError extends BadRequestError {}

/**
 * What a body being read may take from the node: budget bytes, and time. One per node
 * (its functions are made once, not per body); the deadlines of all reads are watched by
 * one node-wide timer (decision 0360).
 */
interface BodyGuard {
  /** Takes `bytes` more of the node's body budget for `read`; false when it is spent. */
  take(read: BodyRead, bytes: number): boolean
  /** Watches `read`'s deadline until `unwatch`; past it the guard calls `read.timedOut()`. */
  watch(read: BodyRead): void
  unwatch(read: BodyRead): void
}

const kRead = Symbol('stratacache.bodyRead')
type ReadingRequest = IncomingMessage & { [kRead]?: BodyRead }

// The listeners of a body read, shared by all reads: the read is found on the request
// (no closures per body; decision 0360).
function onBodyData(this: ReadingRequest, chunk: Buffer): void {
  this[kRead]?.data(chunk)
}
function onBodyEnd(this: ReadingRequest): void {
  this[kRead]?.finish(undefined)
}
function onBodyError(this: ReadingRequest, err: Error): void {
  this[kRead]?.finish(new BadRequestError('The request body could not be read', { cause: err }))
}
function onBodyClose(this: ReadingRequest): void {
  if (!this.complete) this[kRead]?.finish(new BadRequestError('The client closed the connection before the body was complete'))
}

/**
 * Reading one request body up to `limit` bytes: `ERR_TOO_LARGE` past it, `ERR_BAD_REQUEST`
 * if the client goes away, `BodyTimeoutError` past the guard's deadline, `BusyError` when
 * the guard's budget is spent. `held` counts the budget bytes taken for it (released by
 * the caller once the request is answered).
 */
class BodyRead {
  readonly #req: ReadingRequest
  readonly #limit: number
  readonly #guard: BodyGuard | undefined
  /** When the read began (the deadline counts from it), and whether its body is chunked (reserved as it arrives). */
  readonly begun: number
  readonly chunked: boolean
  held: number
  total = 0
  #first: Buffer | undefined
  #chunks: Buffer[] | undefined
  #done = false
  #resolve: ((body: Uint8Array) => void) | undefined
  #reject: ((err: Error) => void) | undefined

  constructor(req: IncomingMessage, limit: number, guard: BodyGuard | undefined, begun: number, chunked: boolean, reserved: number) {
    this.#req = req
    this.#limit = limit
    this.#guard = guard
    this.begun = begun
    this.chunked = chunked
    this.held = reserved
  }

  read(): Promise<Uint8Array> {
    const req = this.#req
    const declared = req.headers['content-length']
    if (declared !== undefined && Number(declared) > this.#limit) return Promise.reject(new TooLargeError(`Body of ${declared} bytes is over the limit of ${this.#limit}`))
    if ((declared === undefined || declared === '0') && req.headers['transfer-encoding'] === undefined) {
      if (req.complete) return Promise.resolve(EMPTY)
    }
    return new Promise((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
      req[kRead] = this
      req.on('data', onBodyData)
      req.on('end', onBodyEnd)
      req.on('error', onBodyError)
      req.on('close', onBodyClose)
      this.#guard?.watch(this)
    })
  }

  data(chunk: Buffer): void {
    if (this.#done) return
    this.total += chunk.byteLength
    if (this.total > this.#limit) this.finish(new TooLargeError(`Body is over the limit of ${this.#limit} bytes`))
    else if (this.#guard !== undefined && !this.#guard.take(this, chunk.byteLength)) this.finish(new BusyError(1, 'The node holds its bound of request body bytes; retry later'))
    else if (this.#first === undefined) this.#first = chunk
    else (this.#chunks ??= [this.#first]).push(chunk)
  }

  timedOut(): void {
    this.finish(new BodyTimeoutError(`The request body did not arrive in time (${this.total} bytes received)`))
  }

  finish(err: Error | undefined): void {
    if (this.#done) return
    this.#done = true
    this.#guard?.unwatch(this)
    const req = this.#req
    req[kRead] = undefined
    req.off('data', onBodyData)
    req.off('end', onBodyEnd)
    req.off('error', onBodyError)
    req.off('close', onBodyClose)
    if (err !== undefined) this.#reject!(err)
    else this.#resolve!(this.#chunks !== undefined ? Buffer.concat(this.#chunks, this.total) : (this.#first ?? EMPTY))
  }
}

/** Reads a request body up to `limit` bytes, unguarded (no budget, no deadline but node:http's). */
function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  return new BodyRead(req, limit, undefined, 0, false, 0).read()
}

/** The host name of a `Host` header (`[::1]:7700` → `::1`, `Example:80` → `example`). */
function hostName(host: string): string {
  const h = host.trim().toLowerCase()
  if (h.startsWith('[')) {
    const end = h.indexOf(']')
    return end === -1 ? h : h.slice(1, end)
  }
  const colon = h.lastIndexOf(':')
  return colon === -1 ? h : h.slice(0, colon)
}

class Node implements NodeHandle {
  readonly options: ResolvedNodeOptions
  readonly transport: MessageTransport | undefined
  readonly #engine: NodeEngine
  readonly #api: HttpApi
  readonly #log: NodeLogger
  readonly #limiter: TokenBucketLimiter | undefined
  readonly #token: Buffer | undefined
  /** The configured listen host, as a Host header names it (lower-case). */
  readonly #allowedHostName: string
  readonly #server: Server
  readonly #tls: boolean
  readonly #connectionsByIp = new Map<string, number>()
  /**
   * TLS connections past a connection limit, by `address:port`: a refusal can only be read
   * after the handshake, so they are let through it and their first request gets the 503.
   * Bounded (past it they are closed without a word) and cut by the handshake deadline.
   */
  readonly #refusedTls = new Set<string>()
  /**
   * Plain sockets refused with a raw 503. node:http still parses what the client sent on
   * them (so no unread data turns the close into a reset that hides the 503); any request
   * it finds there is already answered.
   */
  readonly #answeredRaw = new WeakSet<Socket>()
  /** Requests per client IP whose body is still being received. */
  readonly #uploadsByIp = new Map<string, number>()
  readonly #registry: ReturnType<typeof registerMetrics>
  readonly #dashboard: Dashboard
  readonly #startedAt: number
  /** The id decided before listening (a clustered node's), else undefined: nodeId or host:port. */
  readonly #fixedId: string | undefined
  #cluster: ClusterService | undefined
  /** A clustered node's replication (writes go through it; decision 0217). */
  #replication: ReplicationService | undefined
  /** `GET /v1/watch`: the invalidation stream of every change the keyspace applies. */
  readonly #watch: WatchHub
  #id = ''
  /** The last Host header value found to name this node (clients repeat theirs on every request). */
  #acceptedHost: string | undefined
  #host = ''
  #port = 0
  #ready = false
  #draining = false
  /** Set while the shutdown lingers for keep-alive connections: called when the last one closes. */
  #onNoConnections: (() => void) | undefined
  #closing: Promise<void> | undefined
  #inFlight = 0
  /** Requests past the gate and not yet answered (bodies arriving and work in flight): the drain waits for them. */
  #active = 0
  /** Requests whose body is being received, node-wide. */
  #receiving = 0
  /** Body bytes held node-wide (reserved or received), within maxBufferedBodyBytes. */
  #bufferedBytes = 0
  /** Guarded body reads in progress, watched by one timer (#bodyTimer) for their deadlines. */
  readonly #bodyReads = new Set<BodyRead>()
  #bodyTimer: TimerHandle | undefined
  /** When #bodyTimer fires (clock time). */
  #bodyTimerAt = 0
  readonly #bodyGuard: BodyGuard
  #connections = 0
  #onIdle: (() => void) | undefined
  // counters
  #requests = 0
  #busy = 0
  #rateLimited = 0
  #unauthorized = 0
  #clientErrors = 0
  #serverErrors = 0
  #refused = 0

  constructor(options: ResolvedNodeOptions, engine: NodeEngine, log: NodeLogger, server: Server, tls: boolean, fixedId?: string) {
    this.options = options
    this.#fixedId = fixedId
    this.transport = options.transport
    this.#engine = engine
    this.#log = log
    this.#server = server
    this.#tls = tls
    this.#startedAt = options.clock.now()
    this.#limiter = options.rateLimit > 0 ? new TokenBucketLimiter(options.clock, options.rateLimit, options.rateBurst) : undefined
    this.#token = options.authToken === undefined ? undefined : digest(options.authToken)
    this.#bodyGuard = {
      take: (read, bytes) => {
        // A declared length was reserved whole; a chunked body reserves as it arrives.
        if (!read.chunked) return true
        if (this.#bufferedBytes + bytes > this.options.maxBufferedBodyBytes) return false
        this.#bufferedBytes += bytes
        read.held += bytes
        return true
      },
      watch: (read) => {
        this.#bodyReads.add(read)
        // A read begun now may be due before the time the timer waits for: an earlier read
        // can have earned a far deadline with its bytes.
        const left = Math.max(1, this.#bodyMsLeft(read))
        if (this.#bodyTimer !== undefined) {
          if (this.options.clock.now() + left >= this.#bodyTimerAt) return
          this.options.clock.clearTimeout(this.#bodyTimer)
        }
        this.#armBodyTimer(left)
      },
      unwatch: (read) => {
        // The timer stays armed: it fires, finds nothing due and re-arms only while reads remain.
        this.#bodyReads.delete(read)
      },
    }
    this.#allowedHostName = options.host.toLowerCase()
    this.#registry = registerMetrics(engine, { name: 'node' })
    this.#watch = new WatchHub({ clock: options.clock, metaIntervalMs: options.watchMetaIntervalMs, maxBufferBytes: options.watchBufferBytes })
    engine.keyspace.watch((change) => this.#watch.onChange(change))
    registerReadings(this.#registry, [
      { name: 'stratacache_node_requests_total', help: 'HTTP requests received.', type: 'counter', read: () => this.#requests },
      { name: 'stratacache_node_busy_total', help: 'Requests answered 503 ERR_BUSY (concurrency bound or draining).', type: 'counter', read: () => this.#busy },
      { name: 'stratacache_node_rate_limited_total', help: 'Requests answered 429 (token bucket empty).', type: 'counter', read: () => this.#rateLimited },
      { name: 'stratacache_node_unauthorized_total', help: 'Requests answered 401.', type: 'counter', read: () => this.#unauthorized },
      { name: 'stratacache_node_client_errors_total', help: 'Requests answered 4xx.', type: 'counter', read: () => this.#clientErrors },
      { name: 'stratacache_node_server_errors_total', help: 'Requests answered 5xx other than 503.', type: 'counter', read: () => this.#serverErrors },
      { name: 'stratacache_node_connections_refused_total', help: 'Connections refused (node-wide or per-IP connection limit, or draining).', type: 'counter', read: () => this.#refused },
      { name: 'stratacache_node_in_flight', help: 'Requests being processed.', type: 'gauge', read: () => this.#inFlight },
      { name: 'stratacache_node_connections', help: 'Open client connections.', type: 'gauge', read: () => this.#connections },
      { name: 'stratacache_node_receiving', help: 'Requests whose body is still arriving (they hold no in-flight slot).', type: 'gauge', read: () => this.#receiving },
      { name: 'stratacache_node_buffered_body_bytes', help: 'Request body bytes held in memory (bound: maxBufferedBodyBytes).', type: 'gauge', read: () => this.#bufferedBytes },
      { name: 'stratacache_node_dashboard_streams', help: 'Dashboard event streams open.', type: 'gauge', read: () => this.#dashboard.streams },
      { name: 'stratacache_node_last_version', help: 'Highest entry version handed out.', type: 'gauge', read: () => engine.lastVersion },
      { name: 'stratacache_node_watch_subscribers', help: 'Open /v1/watch streams.', type: 'gauge', read: () => this.#watch.stats().subscribers },
      { name: 'stratacache_node_watch_changes_total', help: 'Changes published on /v1/watch (one per applied change).', type: 'counter', read: () => this.#watch.stats().changes },
      { name: 'stratacache_node_watch_slow_disconnects_total', help: '/v1/watch subscribers cut for falling behind (buffer over watchBufferBytes).', type: 'counter', read: () => this.#watch.stats().slowDisconnects },
    ])
    this.#api = new HttpApi({
      engine,
      limits: options,
      ready: () => this.#ready && !this.#draining,
      stats: () => this.stats(),
      metrics: async () => ({ contentType: this.#registry.contentType, body: await this.#registry.metrics() }),
      watch: () => this.#watch.hello(),
      onInternalError: (error, request) => {
        this.#log.error({ err: error, method: request.method, url: request.url.slice(0, 200) }, 'request failed unexpectedly')
      },
      preRoute: (request, method, path) => this.#cluster?.handle(request, method, path),
    })
    this.#dashboard = new Dashboard({
      clock: options.clock,
      id: () => this.#id,
      url: () => this.url,
      region: options.region,
      stats: () => this.stats(),
      cluster: () => this.#clusterView(),
      onError: (err) => this.#log.error({ err }, 'dashboard snapshot failed'),
    })
    server.on('connection', (socket: Socket) => this.#onConnection(socket))
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      // Traced (core/tracing.ts) only while someone subscribes: the GET-hit path stays synchronous either way.
      let handled: Promise<void> | undefined
      try {
        handled = isTraced(nodeRequestChannel) ? traceRequest(req, res, this.#id, () => this.#onRequest(req, res) ?? Promise.resolve()) : this.#onRequest(req, res)
      } catch (err) {
        this.#handlerFailed(err, res)
        return
      }
      // undefined: answered synchronously (a GET hit, a refusal), no promise made (decision 0240).
      handled?.catch((err: unknown) => this.#handlerFailed(err, res))
    })
    server.on('clientError', (err: Error & { code?: string }, socket: Socket) => this.#onClientError(err, socket))
    // Without a listener node:http drops a CONNECT without a word; the node is no proxy.
    server.on('connect', (_req: IncomingMessage, socket: Socket) => {
      this.#clientErrors++
      socket.on('error', () => undefined)
      socket.end(rawResponse(400, 'Bad Request', 'ERR_BAD_REQUEST', 'The node is not a proxy: CONNECT is not supported'))
    })
    // Without a listener node:http answers an Expect other than 100-continue with a bare 417 (no JSON body).
    server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
      res.on('error', ignore)
      this.#requests++
      const expect = String(req.headers.expect).slice(0, 60)
      this.#send(req, res, this.#count(errorResponse('ERR_BAD_REQUEST', `Expect ${JSON.stringify(expect)} cannot be met: only 100-continue is supported`, 417)), true, 0)
    })
  }

  get url(): string {
    const host = this.#host.includes(':') ? `[${this.#host}]` : this.#host
    return `${this.#tls ? 'https' : 'http'}://${host}:${this.#port}`
  }

  get host(): string {
    return this.#host
  }

  get port(): number {
    return this.#port
  }

  get id(): string {
    return this.#id
  }

  get cluster(): ClusterService {
    if (this.#cluster === undefined) throw new InvalidOptionsError('cluster', 'the node is not started')
    return this.#cluster
  }

  /** Starts the cluster service once the HTTP port is bound, then replication (a failure closes the service; startNode then closes the node's socket and store). */
  async startCluster(): Promise<void> {
    this.#cluster = await ClusterService.start({ options: this.options, id: this.#id, httpPort: this.#port, scheme: this.#tls ? 'https' : 'http', log: this.#log, clock: this.options.clock })
    this.#cluster.registerMetrics(this.#registry)
    const transport = this.#cluster.replicationTransport
    if (transport !== undefined) {
      const cluster = this.#cluster
      try {
        this.#replication = await startReplication({ id: this.#id, keyspace: this.#engine.keyspace, clock: this.options.clock, transport, topology: () => cluster.topology(), tombstoneTtlMs: this.options.tombstoneTtlMs, log: this.#log })
      } catch (err) {
        // The service has bound the cluster port and runs membership: stop it, as a failed start leaves nothing open.
        await cluster.close()
        throw err
      }
      this.#replication.registerMetrics(this.#registry)
      this.#engine.setReplication(this.#replication)
      const replication = this.#replication
      cluster.setDigestSource((depth) => replication.digest(this.options.clock.now(), depth))
    }
  }

  async listen(): Promise<void> {
    const { host, port } = this.options
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(listenError(err, 'host', host, port))
      this.#server.once('error', onError)
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError)
        resolve()
      })
    })
    const address = this.#server.address() as AddressInfo
    this.#host = host
    this.#port = address.port
    this.#id = this.#fixedId ?? this.options.nodeId ?? `${host}:${address.port}`
    this.#server.on('error', (err) => this.#log.error({ err }, 'server error'))
    this.#ready = true
  }

  stats(): NodeStats {
    const c = this.#engine.cacheStats()
    return {
      node: {
        address: this.url,
        uptimeSeconds: Math.floor((this.options.clock.now() - this.#startedAt) / 1000),
        ready: this.#ready && !this.#draining,
        draining: this.#draining,
        inFlight: this.#inFlight,
        receiving: this.#receiving,
        bufferedBodyBytes: this.#bufferedBytes,
        connections: this.#connections,
        dashboardStreams: this.#dashboard.streams,
      },
      requests: {
        total: this.#requests,
        busy: this.#busy,
        rateLimited: this.#rateLimited,
        unauthorized: this.#unauthorized,
        clientErrors: this.#clientErrors,
        serverErrors: this.#serverErrors,
        connectionsRefused: this.#refused,
      },
      cache: { size: this.#engine.size(), hits: c.hits, misses: c.misses, tagInvalidations: c.tagInvalidations },
      store: this.#engine.storeName,
    }
  }

  inject(request: InjectRequest): Promise<ApiResponse> {
    const r = request as unknown as Record<string, unknown> | null
    if (r === null || typeof r !== 'object' || typeof r.method !== 'string' || typeof r.url !== 'string' || (r.headers !== undefined && (r.headers === null || typeof r.headers !== 'object')) || (r.body !== undefined && typeof r.body !== 'string' && !(r.body instanceof Uint8Array))) {
      return Promise.reject(new InvalidOptionsError('request', 'expected { method, url, headers?, body? } (strings; body a string or Uint8Array)'))
    }
    if (isTraced(nodeRequestChannel)) return traceInject(request.method, request.url, this.#id, () => this.#inject(request))
    return this.#inject(request)
  }

  async #inject(request: InjectRequest): Promise<ApiResponse> {
    const method = request.method
    const headers: Headers = Object.fromEntries(Object.entries(request.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]))
    const body = typeof request.body === 'string' ? Buffer.from(request.body, 'utf8') : (request.body ?? EMPTY)
    const { path } = splitUrl(request.url)
    this.#requests++
    const denied = this.#gate(method, path, headers, request.remoteAddress ?? '127.0.0.1')
    if (denied !== undefined) return this.#count(denied)
    const probe = isProbe(method, path)
    if (!probe) {
      const full = this.#takeSlot()
      if (full !== undefined) return this.#count(full)
      this.#active++
    }
    try {
      if (isDashboardPath(path)) return this.#count(await this.#dashboardAnswer(method, path, splitUrl(request.url).query))
      if (body.byteLength > this.#api.bodyLimit(method, path)) {
        const e = new TooLargeError(`Body of ${body.byteLength} bytes is over the limit of ${this.#api.bodyLimit(method, path)}`)
        return this.#count(errorResponse(e.code, e.message))
      }
      return this.#count(await this.#api.handle({ method, url: request.url, headers, body }))
    } finally {
      if (!probe) {
        this.#release()
        this.#settled()
      }
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown()
    return this.#closing
  }

  // ---- connections and requests --------------------------------------------------------

  #onConnection(socket: Socket): void {
    const ip = socket.remoteAddress ?? 'unknown'
    const open = (this.#connectionsByIp.get(ip) ?? 0) + 1
    // Node-wide first: one address cannot learn anything about the others' usage from it,
    // and it bounds file descriptors and per-socket memory whatever the number of addresses.
    const full = this.#connections >= this.options.maxConnections
    // While draining, connections are still accepted (until the drain's linger ends): a
    // connection waiting in the listen backlog would be reset when the listener closes, and
    // its request with it. Its requests are answered 503 + Connection: close by #gate.
    if (full || open > this.options.maxConnectionsPerIp) {
      this.#refused++
      const why = full ? 'The node is at its bound of open connections' : 'Too many connections from your address'
      socket.on('error', () => undefined)
      if (!this.#tls) {
        this.#answeredRaw.add(socket)
        socket.end(rawResponse(503, 'Service Unavailable', 'ERR_BUSY', why, 1))
        // The client closes once it has read the answer; one that does not is cut.
        socket.setTimeout(REFUSED_LINGER_MS, () => socket.destroy())
      } else if (this.#refusedTls.size >= MAX_PENDING_TLS_REFUSALS) socket.destroy()
      else {
        const key = `${ip}:${socket.remotePort ?? 0}`
        this.#refusedTls.add(key)
        socket.once('close', () => this.#refusedTls.delete(key))
      }
      return
    }
    this.#connectionsByIp.set(ip, open)
    this.#connections++
    socket.on('error', () => undefined)
    socket.once('close', () => {
      this.#connections--
      if (this.#connections === 0) this.#onNoConnections?.()
      const n = (this.#connectionsByIp.get(ip) ?? 1) - 1
      if (n <= 0) this.#connectionsByIp.delete(ip)
      else this.#connectionsByIp.set(ip, n)
    })
  }

  #onClientError(err: Error & { code?: string }, socket: Socket): void {
    // A TLS-level failure (handshake timeout, not TLS at all) has no HTTP to answer in: an
    // answer written before the handshake stays queued and the socket stays open.
    if (err.code === 'ECONNRESET' || !socket.writable || (typeof err.code === 'string' && /^ERR_(TLS|SSL)_/.test(err.code))) {
      socket.destroy()
      return
    }
    this.#clientErrors++
    let answer: string
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') answer = rawResponse(408, 'Request Timeout', 'ERR_BAD_REQUEST', 'The request was not received within the read timeout')
    else if (err.code === 'HPE_HEADER_OVERFLOW') answer = rawResponse(413, 'Payload Too Large', 'ERR_TOO_LARGE', 'Request headers are over the size limit')
    else answer = rawResponse(400, 'Bad Request', 'ERR_BAD_REQUEST', 'Malformed HTTP request')
    socket.end(answer)
    socket.destroySoon?.()
  }

  /** #onRequest answers every failure itself; reaching here is a bug worth a line. */
  #handlerFailed(err: unknown, res: ServerResponse): void {
    this.#log.error({ err }, 'request handler failed')
    res.destroy()
  }

  /**
   * Admission and the synchronous answers (refusals, GET hits): `undefined` when the request
   * is answered here, else the promise of the general path (`#serve`). A GET hit thus costs
   * no promise at all (decision 0240).
   */
  #onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> | undefined {
    // The time is read only for the request log (decision 0360: no clock read per request otherwise).
    const started = this.options.logRequests ? this.options.clock.now() : 0
    res.on('error', ignore)
    const method = req.method ?? 'GET'
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    if (this.#answeredRaw.has(req.socket)) {
      req.resume()
      return
    }
    this.#requests++
    if (this.#refusedTls.size > 0 && this.#refusedTls.has(`${req.socket.remoteAddress ?? 'unknown'}:${req.socket.remotePort ?? 0}`)) {
      this.#busy++
      const why = 'The node is at its bound of open connections (or of connections from your address)'
      this.#send(req, res, errorResponse('ERR_BUSY', why, 503, { 'retry-after': '1' }), true, started)
      return
    }
    // node:http's own answer to a missing Host is an empty 400; ours is typed JSON (HTTP/1.1 requires Host).
    if (req.headers.host === undefined && req.httpVersion !== '1.0') {
      this.#send(req, res, this.#count(errorResponse('ERR_BAD_REQUEST', 'An HTTP/1.1 request needs a Host header')), true, started)
      return
    }
    const ip = req.socket.remoteAddress ?? 'unknown'
    const denied = this.#gate(method, path, req.headers, ip)
    if (denied !== undefined) {
      this.#send(req, res, this.#count(denied), true, started)
      return
    }
    if (isDashboardPath(path)) return this.#serveDashboard(req, res, method, path, q === -1 ? '' : url.slice(q + 1), started)
    // A bodiless GET of a key the in-process tier holds is answered here, synchronously: no
    // body to read, no promise, and an in-flight slot would be taken and given back within
    // this call, so only the bound is checked (a full node refuses it below, as any other).
    // Anything getHit does not answer takes the general path (decision 0240).
    if (method === 'GET' && req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined && this.#inFlight < this.options.maxInFlight && !hasMinVersion(req.headers) && req.headers['if-none-match'] === undefined) {
      const hit = this.#api.getHit(url)
      if (hit !== undefined) {
        // A request with neither Content-Length nor Transfer-Encoding has no body: it is
        // complete even though node:http marks it so only after this handler returns.
        this.#send(req, res, hit, this.#draining, started, true)
        return
      }
    }
    if (method === 'GET' && path === WATCH_PATH) {
      this.#subscribeWatch(req, res, url)
      return
    }
    return this.#serve(req, res, method, url, path, ip, started)
  }

  /** The general path: the body read within its limits, an in-flight slot, the API, the answer. */
  async #serve(req: IncomingMessage, res: ServerResponse, method: string, url: string, path: string, ip: string, started: number): Promise<void> {
    const probe = isProbe(method, path)
    const limit = this.#api.bodyLimit(method, path)
    let read: BodyRead | undefined
    let complete: boolean | undefined
    let slot = false
    if (!probe) this.#active++
    try {
      let body: Uint8Array
      // A body still to arrive is admitted on its own terms — per-address count, node-wide
      // byte budget, a deadline by size — and holds no in-flight slot while it arrives: slow
      // uploads must not lock out the requests that are ready to be served (issue 14).
      const te = req.headers['transfer-encoding']
      const cl = req.headers['content-length']
      if (!probe && !req.complete && (te !== undefined || Number(cl ?? 0) > 0)) {
        const refused = this.#admitBody(ip, te === undefined && cl !== undefined ? Number(cl) : undefined, limit)
        if (typeof refused === 'object') {
          this.#send(req, res, this.#count(refused), true, started)
          return
        }
        this.#receiving++
        this.#uploadsByIp.set(ip, (this.#uploadsByIp.get(ip) ?? 0) + 1)
        read = new BodyRead(req, limit, this.#bodyGuard, this.options.clock.now(), te !== undefined, refused)
        try {
          body = await read.read()
        } finally {
          this.#receiving--
          this.#doneUploading(ip)
        }
      } else if (te === undefined && (cl === undefined || cl === '0')) {
        // No body by HTTP/1.1 (neither Content-Length nor Transfer-Encoding, or a length of
        // 0): nothing to wait for, and the request is complete although node:http marks it
        // so only after the 'request' handlers return.
        body = EMPTY
        complete = true
      } else {
        body = await readBody(req, limit)
      }
      if (!probe) {
        const full = this.#takeSlot()
        if (full !== undefined) {
          this.#send(req, res, full, true, started, complete)
          return
        }
        slot = true
      }
      const response = await this.#api.handle({ method, url, headers: req.headers, body })
      this.#send(req, res, this.#count(response), this.#draining, started, complete)
    } catch (err) {
      this.#send(req, res, this.#count(this.#bodyRefusal(err)), true, started)
    } finally {
      if (slot) this.#release()
      if (read !== undefined && read.held > 0) this.#bufferedBytes -= read.held
      if (!probe) this.#settled()
    }
  }

  // ---- dashboard ------------------------------------------------------------------------

  /** The node's cluster view (membership); `undefined` before the cluster service started. */
  async #clusterView(): Promise<ClusterView | undefined> {
    return Promise.resolve(this.#cluster?.view())
  }

  /** The page, a snapshot, or (without a socket, for `inject`) one event of the stream. */
  async #dashboardAnswer(method: string, path: string, query: string): Promise<ApiResponse> {
    if (method !== 'GET') {
      const e = new MethodNotAllowedError(method, ['GET'])
      return errorResponse(e.code, e.message, 405, { allow: 'GET' })
    }
    // No dashboard route takes a parameter: refused, as an unknown one is on every route.
    if (query !== '') return errorResponse('ERR_BAD_REQUEST', `GET ${path} takes no query parameters`)
    if (path === DASHBOARD_PATH) return this.#dashboard.page()
    const snapshot = await this.#dashboard.snapshot()
    if (path === DASHBOARD_SNAPSHOT_PATH) return { status: 200, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' }, body: JSON.stringify(snapshot) }
    return { status: 200, headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-store' }, body: `event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n` }
  }

  /**
   * The dashboard's routes on a socket, past admission (draining, rate, auth). They take
   * no in-flight slot; the event stream stays open until its client leaves or the node
   * drains (Dashboard.close).
   */
  async #serveDashboard(req: IncomingMessage, res: ServerResponse, method: string, path: string, query: string, started: number): Promise<void> {
    req.resume() // a body on a GET is read and ignored
    if (path !== DASHBOARD_EVENTS_PATH || method !== 'GET' || query !== '') {
      this.#send(req, res, this.#count(await this.#dashboardAnswer(method, path, query)), this.#draining, started)
      return
    }
    if (res.destroyed) return
    if (this.#dashboard.full) {
      this.#send(req, res, this.#busyAnswer('The node is at its bound of open dashboard streams'), true, started)
      return
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no', [HEADER_NODE]: this.#id })
    const unsubscribe = this.#dashboard.subscribe(res)
    if (unsubscribe === undefined) res.end()
    else res.once('close', unsubscribe)
  }

  // ---- watch stream -----------------------------------------------------------------------

  /**
   * `GET /v1/watch` over a socket (admitted by #gate like any read): a Server-Sent Events
   * stream fed by the WatchHub. It holds no in-flight slot and is not waited for by the
   * drain: shutdown ends it first.
   */
  #subscribeWatch(req: IncomingMessage, res: ServerResponse, url: string): void {
    if (splitUrl(url).query !== '') {
      this.#send(req, res, this.#count(errorResponse('ERR_BAD_REQUEST', 'GET /v1/watch takes no query parameters')), true, this.options.clock.now())
      return
    }
    req.resume()
    req.socket.setNoDelay(true)
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', [HEADER_NODE]: this.#id })
    let open = true
    const unsubscribe = this.#watch.subscribe({
      write: (chunk) => {
        if (open) res.write(chunk)
      },
      buffered: () => res.writableLength,
      close: () => {
        if (!open) return
        open = false
        res.destroy()
      },
    })
    res.once('close', () => {
      open = false
      unsubscribe()
    })
  }

  /** The answer to a body that could not be read. */
  #bodyRefusal(err: unknown): ApiResponse {
    if (err instanceof BusyError) {
      this.#busy++
      return errorResponse('ERR_BUSY', err.message, 503, { 'retry-after': String(err.retryAfter) })
    }
    if (err instanceof BodyTimeoutError) return errorResponse('ERR_BAD_REQUEST', err.message, 408)
    const e = err instanceof CacheError ? err : new BadRequestError('The request body could not be read', { cause: err })
    return errorResponse(e.code, e.message, STATUS_OF_CODE[e.code] ?? 400)
  }

  /**
   * Admission of a body still to arrive: a free in-flight slot now (else it would be read
   * only to be refused), the per-address count, and the byte budget (a declared length is
   * reserved whole). Returns the bytes reserved, or the refusal.
   */
  #admitBody(ip: string, declared: number | undefined, limit: number): number | ApiResponse {
    if (this.#inFlight >= this.options.maxInFlight) return this.#busyAnswer(`The node is at its bound of ${this.options.maxInFlight} requests in flight`)
    const receiving = this.#uploadsByIp.get(ip) ?? 0
    if (receiving >= this.options.maxUploadsPerIp) return this.#busyAnswer(`Your address has ${receiving} request bodies still arriving (the bound is ${this.options.maxUploadsPerIp})`)
    if (declared === undefined || declared > limit) return 0 // chunked: reserved as it arrives; too large: readBody answers 413
    if (this.#bufferedBytes + declared > this.options.maxBufferedBodyBytes) {
      return this.#busyAnswer(`The node holds its bound of ${this.options.maxBufferedBodyBytes} bytes of request bodies; retry later`)
    }
    this.#bufferedBytes += declared
    return declared
  }

  /** Milliseconds left until `read`'s body must be complete: bodyTimeout, plus the time its bytes so far earn at minBodyRate. */
  #bodyMsLeft(read: BodyRead): number {
    return read.begun + this.options.bodyTimeoutMs + (read.total / this.options.minBodyRate) * 1000 - this.options.clock.now()
  }

  /**
   * One timer for the deadlines of all body reads (instead of one per body, set and
   * cleared per request): reads only move their own deadline later, so the timer is armed
   * for the earliest (a read that begins due sooner re-arms it, see `watch`) and, when it
   * fires, cuts the reads past theirs and re-arms for the next one. Unref'd; cleared at
   * shutdown.
   */
  #armBodyTimer(ms: number): void {
    this.#bodyTimerAt = this.options.clock.now() + ms
    this.#bodyTimer = this.options.clock.setTimeout(() => {
      this.#bodyTimer = undefined
      let next = Infinity
      for (const read of this.#bodyReads) {
        const left = this.#bodyMsLeft(read)
        if (left <= 0) read.timedOut()
        else if (left < next) next = left
      }
      if (this.#bodyReads.size > 0 && next !== Infinity) this.#armBodyTimer(next)
    }, ms, { unref: true })
  }

  #busyAnswer(message: string): ApiResponse {
    this.#busy++
    return errorResponse('ERR_BUSY', message, 503, { 'retry-after': '1' })
  }

  #doneUploading(ip: string): void {
    const n = (this.#uploadsByIp.get(ip) ?? 1) - 1
    if (n <= 0) this.#uploadsByIp.delete(ip)
    else this.#uploadsByIp.set(ip, n)
  }

  /** Draining, rate limit, auth; `undefined` = admitted. Probes always are. */
  #gate(method: string, path: string, headers: Headers, ip: string): ApiResponse | undefined {
    if (isProbe(method, path)) return undefined
    if (this.#draining) {
      this.#busy++
      return errorResponse('ERR_BUSY', 'The node is shutting down', 503, { 'retry-after': '1' })
    }
    const crossSite = this.#crossSite(headers)
    if (crossSite !== undefined) return errorResponse('ERR_FORBIDDEN', crossSite, 403)
    if (this.#limiter !== undefined) {
      const wait = this.#limiter.take(ip)
      if (wait > 0) {
        this.#rateLimited++
        return errorResponse('ERR_RATE_LIMITED', 'Request rate over the limit for your address', 429, { 'retry-after': String(wait) })
      }
    }
    // The rate limit runs before auth, so token guesses spend the guesser's tokens too.
    if (this.#token !== undefined) {
      const dashboard = isDashboardPath(path)
      const given = bearerToken(headers.authorization) ?? (dashboard ? basicPassword(headers.authorization) : undefined)
      const ok = given !== undefined && timingSafeEqual(digest(given), this.#token)
      if (!ok) {
        this.#unauthorized++
        // The dashboard's challenge makes a browser ask for the token (as the password).
        const challenge = dashboard ? 'Basic realm="stratacache", charset="UTF-8"' : 'Bearer'
        return errorResponse('ERR_UNAUTHORIZED', 'A valid bearer token is required', 401, { 'www-authenticate': challenge })
      }
    }
    return undefined
  }

  /**
   * Why a request looks like a browser's cross-site one (`undefined` when it does not). The
   * node answers no CORS, so a page can still send "simple" requests to a local node and
   * DNS rebinding can make its origin the node's. Refused: a foreign `Origin` (or `null`),
   * `Sec-Fetch-Site` of another site, and, when no token guards the node, a `Host` that
   * does not name it — an IP literal, `localhost` (`*.localhost`) or the configured host
   * (a rebinding page's Host is the attacker's domain name). Clients that are not browsers
   * send neither header; with a token the browser cannot authenticate anyway.
   */
  #crossSite(headers: Headers): string | undefined {
    const site = headers['sec-fetch-site']
    if (site === 'cross-site' || site === 'same-site') return `Cross-site requests are refused (Sec-Fetch-Site: ${site})`
    const host = typeof headers.host === 'string' ? headers.host : undefined
    if (this.#token === undefined && host !== undefined && host !== this.#acceptedHost) {
      const name = hostName(host)
      if (isIP(name) === 0 && name !== 'localhost' && !name.endsWith('.localhost') && name !== this.#allowedHostName) {
        return `Host ${JSON.stringify(host.slice(0, 100))} does not name this node; without an auth token only an IP address, localhost or the configured host are accepted (DNS rebinding)`
      }
      this.#acceptedHost = host
    }
    const origin = headers.origin
    if (origin !== undefined) {
      const own = host === undefined ? this.url : `${this.#tls ? 'https' : 'http'}://${host.trim()}`
      if (typeof origin !== 'string' || origin.toLowerCase() !== own.toLowerCase()) return `Cross-origin requests are refused (Origin: ${JSON.stringify(String(origin).slice(0, 100))})`
    }
    return undefined
  }

  /** Takes an in-flight slot (the concurrency bound); `undefined` = taken. */
  #takeSlot(): ApiResponse | undefined {
    if (this.#inFlight >= this.options.maxInFlight) return this.#busyAnswer(`The node is at its bound of ${this.options.maxInFlight} requests in flight`)
    this.#inFlight++
    return undefined
  }

  #release(): void {
    this.#inFlight--
  }

  #settled(): void {
    this.#active--
    if (this.#active === 0 && this.#onIdle !== undefined) this.#onIdle()
  }

  #count(response: ApiResponse): ApiResponse {
    const s = response.status
    if (s >= 400 && s < 500) this.#clientErrors++
    else if (s >= 500 && s !== 503) this.#serverErrors++
    return response
  }

  #send(req: IncomingMessage, res: ServerResponse, response: ApiResponse, close: boolean, started: number, complete = req.complete): void {
    if (this.options.logRequests) {
      this.#log.info({ method: req.method, url: (req.url ?? '').slice(0, 200), status: response.status, ms: this.options.clock.now() - started }, 'request')
    }
    if (res.headersSent || res.destroyed) return
    const body = typeof response.body === 'string' ? Buffer.from(response.body, 'utf8') : response.body
    // A flat [name, value, …] list (node:http takes it as is): no header object built per
    // answer (a spread then new keys is V8's slow path; decision 0360).
    // Unread bodies and shutdown: do not keep a connection whose stream state is unknown.
    const closing = close || !complete
    const headers: (string | number)[] = []
    const given = response.headers
    for (const name in given) {
      // The names set below win over an answer's own (as the object spread let them).
      if (name === 'content-length' || name === HEADER_NODE || (closing && name === 'connection')) continue
      headers.push(name, given[name]!)
    }
    // A 304 has no body, and a Content-Length there would state the 200's (RFC 9110): none.
    if (response.status !== 304) headers.push('content-length', body.byteLength)
    headers.push(HEADER_NODE, this.#id)
    if (closing) headers.push('connection', 'close')
    if (!complete) {
      lingerOnClose(req.socket)
      // Requests pipelined behind the unread body are not run: the connection closes after this answer, so theirs would never be sent.
      this.#answeredRaw.add(req.socket)
    }
    res.writeHead(response.status, headers)
    res.end(body)
  }

  // ---- shutdown -------------------------------------------------------------------------

  async #shutdown(): Promise<void> {
    const clock = this.options.clock
    const began = clock.now()
    this.#draining = true
    // Dashboard streams are not work to finish: ended now, their connections close.
    this.#dashboard.close()
    // Watch streams never end on their own: end them first, so the drain does not wait on them.
    this.#watch.close()
    this.#log.info({ inFlight: this.#inFlight, receiving: this.#receiving, connections: this.#connections }, 'draining')
    // Announce the leave first (every member sees `left` at once), while requests drain.
    const leaving = this.#cluster?.leave().catch((err: unknown) => this.#log.warn({ err }, 'cluster: leave failed'))
    // Neither stop listening nor close idle keep-alive connections yet (http.Server.close()
    // does both): either resets requests clients already sent — on an idle connection, or on
    // one still in the listen backlog. They are let in and answered 503 with
    // Connection: close (#gate), until the work is done and the linger below has passed.
    let timedOut = false
    if (this.#active > 0) {
      let timer: TimerHandle | undefined
      await new Promise<void>((resolve) => {
        this.#onIdle = resolve
        timer = clock.setTimeout(() => {
          timedOut = true
          resolve()
        }, this.options.drainTimeoutMs)
      })
      if (timer !== undefined) clock.clearTimeout(timer)
      this.#onIdle = undefined
    }
    if (!timedOut && this.#connections > 0) {
      const until = Math.min(began + this.options.drainTimeoutMs, clock.now() + DRAIN_LINGER_MS)
      // Ends when the last connection closes (event-driven, so it never waits on a clock
      // that does not move) or when the linger runs out.
      let timer: TimerHandle | undefined
      await new Promise<void>((resolve) => {
        this.#onNoConnections = resolve
        timer = clock.setTimeout(resolve, Math.max(0, until - clock.now()))
      })
      if (timer !== undefined) clock.clearTimeout(timer)
      this.#onNoConnections = undefined
    }
    const serverClosed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    this.#server.closeAllConnections()
    await serverClosed
    if (this.#bodyTimer !== undefined) clock.clearTimeout(this.#bodyTimer)
    this.#bodyTimer = undefined
    this.#ready = false
    await leaving
    this.#engine.setReplication(undefined)
    await this.#replication?.close()
    await this.#cluster?.close()
    let storeError: unknown
    try {
      await this.#engine.close()
      await this.transport?.close()
    } catch (err) {
      storeError = err
      this.#log.error({ err }, 'closing the store failed')
    }
    this.#log.info({ ms: Math.round(clock.now() - began), timedOut, cutRequests: timedOut ? this.#active : 0 }, 'stopped')
    if (storeError !== undefined) throw new StoreUnavailableError('The store failed to close', { cause: storeError })
  }
}

/** Opens the embedded store in `dataDir`. */
function openEmbeddedStore(options: ResolvedNodeOptions): Store {
  // Exclusive: a second node on the directory would trust its own L1 and drift apart.
  return lmdbStore({ path: options.dataDir, mapSize: options.diskBytes, clock: options.clock, exclusive: true })
}

/**
 * Starts a node: opens the store, listens, and resolves once it accepts requests. The
 * caller owns the process's signals: call `close()` on SIGINT/SIGTERM (the `serve`
 * command does).
 */
export async function startNode(options: NodeOptions = {}): Promise<NodeHandle> {
  const o = resolveNodeOptions(options)
  let tlsOptions: { cert: Buffer; key: Buffer } | undefined
  if (o.tlsCert !== undefined && o.tlsKey !== undefined) {
    try {
      tlsOptions = { cert: readFileSync(o.tlsCert), key: readFileSync(o.tlsKey) }
    } catch (err) {
      throw new InvalidOptionsError('tlsCert', `cannot read the TLS certificate or key: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    }
  }
  const store = o.store ?? openEmbeddedStore(o)
  // A clustered node's id is decided before anything uses it: given, or kept in the data directory (cluster-service.ts).
  let clusterId: string | undefined
  try {
    clusterId = o.cluster.enabled ? resolveClusterNodeId(o.dataDir, o.nodeId) : undefined
  } catch (err) {
    await store.close().catch(() => undefined)
    throw err
  }
  const engine = await NodeEngine.open({ store, clock: o.clock, memoryBytes: o.memoryBytes, maxValueBytes: o.maxValueBytes, storeTimeoutMs: o.storeTimeoutMs, replicator: o.replicator, nodeId: clusterId ?? o.nodeId, tombstoneTtl: o.tombstoneTtlMs }).catch(async (err: unknown) => {
    await store.close().catch(() => undefined)
    throw err
  })
  const requestTimeout = o.requestTimeoutMs
  const serverOptions = {
    requestTimeout,
    headersTimeout: Math.min(o.headersTimeoutMs, requestTimeout),
    keepAliveTimeout: o.keepAliveTimeoutMs,
    // Checked by the node itself, to answer with a typed JSON error.
    requireHostHeader: false,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(Math.min(o.headersTimeoutMs, requestTimeout) / 4))),
    // Requests per socket are not limited: keep-alive clients reuse connections.
  }
  // node:tls waits 120 s for a ClientHello by default; silent sockets counted against
  // maxConnections all that time. The handshake gets the headers' deadline.
  const server = tlsOptions === undefined ? createHttpServer(serverOptions) : createHttpsServer({ ...serverOptions, ...tlsOptions, handshakeTimeout: serverOptions.headersTimeout })
  const log = o.logger ?? createLogger(o.logLevel, 'stratacache')
  const node = new Node(o, engine, log, server, tlsOptions !== undefined, clusterId)
  try {
    await node.listen()
  } catch (err) {
    await engine.close().catch(() => undefined)
    throw err
  }
  try {
    await node.startCluster()
  } catch (err) {
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await engine.close().catch(() => undefined)
    throw err
  }
  log.info({ url: node.url, store: engine.storeName, dataDir: o.store === undefined ? o.dataDir : undefined, lastVersion: engine.lastVersion }, 'started')
  return node
}
