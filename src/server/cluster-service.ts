/**
 * The node's cluster service: wires the pure `Membership` machine (cluster/membership.ts)
 * into a running node — a `TcpTransport` between nodes, a `KernelRunner`, a durable
 * `KernelDisk` in the data directory, discovery — and answers the cluster routes of the
 * HTTP API (`GET /v1/cluster`, `POST /v1/cluster/state`) and the `PASSIVE` write refusal.
 *
 * Two modes (docs/guide/cluster.md, decision 0200):
 * - solo (no seeds, no discovery, no cluster secret): a one-node cluster, exactly today's
 *   node — no socket besides HTTP. Membership still runs (over a transport that reaches
 *   nobody) so `GET /v1/cluster` answers a one-member view and the cluster state
 *   (`PASSIVE`…) is set, versioned and persisted the same way.
 * - clustered: the transport listens on `clusterPort` and authenticates every peer with
 *   the cluster secret (a node without it can neither join nor gossip). Discovery yields
 *   HTTP addresses of other nodes; each is asked `GET /v1/cluster` for its id and cluster
 *   address, which go to `TcpTransport.setPeer` and `Membership.join`. Discovery runs
 *   again every `discoveryInterval` (and when a push strategy reports a change) for
 *   candidates that are not live members.
 *
 * Peers' cluster addresses: every member record carries the HTTP address (for clients)
 * and the cluster address (for peers). After each step of the machine — before its sends
 * go out — the service syncs the transport with `Membership.peers()`: new or moved members
 * are `setPeer`ed (so an ack to a node that just announced itself finds its address),
 * pruned ones `removePeer`ed. The same hook counts messages by kind and status changes
 * (the Prometheus figures).
 *
 * Identity: the node id is `nodeId`, else one generated once and kept in
 * `<dataDir>/cluster-node-id`. The machine's own state (incarnation, cluster state) is
 * persisted in `<dataDir>/cluster-state.json` (written to a temporary file, fsynced,
 * renamed, directory fsynced), so a restart keeps the id and bumps the incarnation.
 *
 * Leaving: `leave()` steps the machine's leave at once (each live member is told
 * directly: `left` in its view on arrival) and waits up to `leaveTimeout` for the frames
 * to go out; the node drains its HTTP requests meanwhile, then `close()` stops the runner
 * and closes the transport and discovery.
 */
import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { get as httpGet } from 'node:http'
import { get as httpsGet } from 'node:https'
import { join } from 'node:path'
import type { Registry } from 'prom-client'
import type { Clock } from '../core/clock.js'
import { BadRequestError, ClusterPassiveError, InvalidOptionsError, type CacheError } from '../core/errors.js'
import { makeDirectory } from '../core/make-dir.js'
import { mathRandom } from '../core/random.js'
import { CompositeDiscovery } from '../cluster/discovery/composite-discovery.js'
import { DiscoveryHealthChecker } from '../cluster/discovery/discovery-health-checker.js'
import type { Discovery, DiscoveryCandidate } from '../cluster/discovery/discovery.js'
import { DnsDiscovery } from '../cluster/discovery/dns-discovery.js'
import { EnvDiscovery } from '../cluster/discovery/env-discovery.js'
import { FileDiscovery } from '../cluster/discovery/file-discovery.js'
import { MdnsDiscovery } from '../cluster/discovery/mdns-discovery.js'
import { StaticDiscovery } from '../cluster/discovery/static-discovery.js'
import { jsonCodec, type KernelAction, type KernelDisk, type KernelEvent, type PersistAction, type StateMachine } from '../cluster/kernel.js'
import { ChannelMux } from '../cluster/channel-mux.js'
import { KernelRunner } from '../cluster/kernel-runner.js'
import { CLUSTER_STATES, Membership, type ClusterState, type ClusterView, type MembershipMessage, type MemberStatus } from '../cluster/membership.js'
import { type ReplicaDigest, type ReplicaTopology, topologyFromView } from '../cluster/replication/replication.js'
import { TcpTransport, type PeerAddress } from '../cluster/tcp-transport.js'
import { DEFAULT_MAX_FRAME_BYTES, validateNodeId, type MessageTransport, type NodeId } from '../cluster/transport.js'
import { registerLabeledReadings, registerReadings } from '../metrics/prometheus.js'
import { API_PREFIX } from '../protocol/wire.js'
import { parseJsonObject } from '../protocol/validate.js'
import { queryParams, splitUrl, type ApiRequest, type ApiResponse } from './http-api.js'
import type { NodeLogger } from './logger.js'
import { defaultClusterPort, type ResolvedNodeOptions } from './node-options.js'
import { listenError } from './listen-error.js'

/** Where the generated node id is kept, in the data directory. */
export const NODE_ID_FILE = 'cluster-node-id'
/** Where the membership machine's persisted state is kept, in the data directory. */
export const CLUSTER_STATE_FILE = 'cluster-state.json'
/** `GET` the view, the route discovery asks every candidate. */
export const CLUSTER_PATH = `${API_PREFIX}/cluster`
export const CLUSTER_STATE_PATH = `${API_PREFIX}/cluster/state`
/** `GET` this replica's Merkle digests (`?depth=0..5`), to check that replicas agree. */
export const CLUSTER_DIGEST_PATH = `${API_PREFIX}/cluster/digest`

/** Bound on one `GET /v1/cluster` to a discovered candidate. */
const RESOLVE_TIMEOUT_MS = 2000
const STATUSES: readonly MemberStatus[] = ['alive', 'suspect', 'dead', 'left']
const JSON_TYPE = 'application/json'

/** A `KernelDisk` in one JSON file, each write atomic and durable (temp file, fsync, rename, fsync of the directory). */
export class FileKernelDisk implements KernelDisk {
  readonly #path: string
  readonly #dir: string
  #data = new Map<string, Uint8Array>()

  constructor(dir: string, file = CLUSTER_STATE_FILE) {
    this.#dir = dir
    this.#path = join(dir, file)
    if (!existsSync(this.#path)) return
    let parsed: unknown
    try {
      parsed = JSON.parse(readFileSync(this.#path, 'utf8'))
    } catch (err) {
      // A torn file cannot happen (rename is atomic); anything else unreadable is a fresh start, said so.
      throw new InvalidOptionsError('dataDir', `${this.#path} is not the cluster state this node wrote: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidOptionsError('dataDir', `${this.#path} is not a JSON object`)
    for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) if (typeof v === 'string') this.#data.set(k, Buffer.from(v, 'base64'))
  }

  load(): ReadonlyMap<string, Uint8Array> {
    return new Map(this.#data)
  }

  write(changes: readonly PersistAction[]): void {
    const next = new Map(this.#data)
    for (const c of changes) {
      if (c.value === undefined) next.delete(c.key)
      else next.set(c.key, c.value)
    }
    const body = JSON.stringify(Object.fromEntries([...next].map(([k, v]) => [k, Buffer.from(v).toString('base64')])))
    const tmp = `${this.#path}.tmp`
    const fd = openSync(tmp, 'w')
    try {
      writeFileSync(fd, body)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, this.#path)
    syncDir(this.#dir)
    this.#data = next
  }
}

/** A `KernelDisk` in memory (a node with a store of its own and no cluster). */
export class MemoryKernelDisk implements KernelDisk {
  readonly #data = new Map<string, Uint8Array>()
  load(): ReadonlyMap<string, Uint8Array> {
    return new Map(this.#data)
  }
  write(changes: readonly PersistAction[]): void {
    for (const c of changes) {
      if (c.value === undefined) this.#data.delete(c.key)
      else this.#data.set(c.key, c.value)
    }
  }
}

function syncDir(dir: string): void {
  let fd: number | undefined
  try {
    fd = openSync(dir, 'r')
    fsyncSync(fd)
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/**
 * The node's id in a cluster: `given` when set, else the id generated by an earlier life
 * (`<dataDir>/cluster-node-id`), else a new one (`n-` and 12 hex digits) written there durably.
 */
export function resolveClusterNodeId(dataDir: string, given: string | undefined): NodeId {
  if (given !== undefined) {
    validateNodeId(given, 'nodeId')
    return given
  }
  makeDirectory(dataDir)
  const path = join(dataDir, NODE_ID_FILE)
  if (existsSync(path)) {
    const id = readFileSync(path, 'utf8').trim()
    validateNodeId(id, `nodeId (${path})`)
    return id
  }
  const id = `n-${randomBytes(6).toString('hex')}`
  const tmp = `${path}.tmp`
  const fd = openSync(tmp, 'w')
  try {
    writeFileSync(fd, `${id}\n`)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
  syncDir(dataDir)
  return id
}

/** The tag of membership's frames on the cluster transport (control: never queued behind replication). */
export const MEMBERSHIP_CHANNEL = 0
/** The tag of replication's frames (bulk). */
export const REPLICATION_CHANNEL = 1

/** A transport that reaches nobody: the solo node's membership has no peers to talk to. */
class NoPeers implements MessageTransport {
  readonly maxFrameBytes = DEFAULT_MAX_FRAME_BYTES
  constructor(readonly self: NodeId) {}
  send(): void {
    // A one-node cluster has no one to tell.
  }
  onReceive(): () => void {
    return () => undefined
  }
  onUnreachable(): () => void {
    return () => undefined
  }
  async close(): Promise<void> {
    // Nothing is open.
  }
}

/** `host:port` / `[v6]:port` → PeerAddress, or undefined. */
function peerAddress(text: string): PeerAddress | undefined {
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text)
  if (m === null) return undefined
  const port = Number(m[2])
  return port >= 1 && port <= 65535 ? { host: m[1], port } : undefined
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/** `passive`, `no-migration`, `NO_MIGRATION` … → the state, or undefined. */
export function parseClusterState(text: unknown): ClusterState | undefined {
  if (typeof text !== 'string') return undefined
  const s = text.trim().toUpperCase().replace(/-/g, '_')
  return (CLUSTER_STATES as readonly string[]).includes(s) ? (s as ClusterState) : undefined
}

/**
 * Whether `method path` changes data (refused while `PASSIVE`): PUT/DELETE of a key (both
 * APIs), DELETE /v1/keys (clear), POST /v1/mset and /v1/invalidate. Reads — GET, and POST
 * /v1/mget — are not.
 */
export function isWriteRoute(method: string, path: string): boolean {
  if (path === CLUSTER_PATH || path.startsWith(`${CLUSTER_PATH}/`)) return false
  if (method === 'PUT' || method === 'DELETE') return path === `${API_PREFIX}/keys` || path.startsWith(`${API_PREFIX}/keys/`) || !path.startsWith(`${API_PREFIX}/`)
  if (method === 'POST') return path === `${API_PREFIX}/mset` || path === `${API_PREFIX}/invalidate`
  return false
}

export interface ClusterServiceStats {
  readonly sent: Readonly<Record<string, number>>
  readonly received: Readonly<Record<string, number>>
  /** Members that changed to each status in this view (detection events: suspect, dead; left; alive = joined or refuted). */
  readonly transitions: Readonly<Record<MemberStatus, number>>
  /** Discovered addresses resolved to a node id through `GET /v1/cluster`. */
  readonly resolved: number
  readonly resolveFailures: number
  readonly runnerErrors: number
}

export interface ClusterServiceContext {
  readonly options: ResolvedNodeOptions
  readonly id: NodeId
  /** This node's HTTP port, once bound. */
  readonly httpPort: number
  /** `http` or `https`: how peers' HTTP APIs are asked. */
  readonly scheme: 'http' | 'https'
  readonly log: NodeLogger
  readonly clock: Clock
}

/** Wraps the machine: syncs the transport's peers and counts, after each step and before its sends. */
class Observed implements StateMachine<MembershipMessage> {
  readonly #service: ClusterService
  readonly #inner: Membership
  constructor(service: ClusterService, inner: Membership) {
    this.#service = service
    this.#inner = inner
  }
  step(event: KernelEvent<MembershipMessage>, now: number): readonly KernelAction<MembershipMessage>[] {
    const actions = this.#inner.step(event, now)
    this.#service.afterStep(event, actions)
    return actions
  }
}

export class ClusterService {
  readonly id: NodeId
  readonly enabled: boolean
  readonly #ctx: ClusterServiceContext
  readonly #membership: Membership
  readonly #transport: MessageTransport
  readonly #tcp: TcpTransport | undefined
  /** Membership (channel 0, control) and replication (channel 1, bulk) over the one TcpTransport (decision 0216). */
  readonly #mux: ChannelMux | undefined
  readonly #runner: KernelRunner<MembershipMessage>
  readonly #discovery: Discovery | undefined
  /** The strategies under `#discovery`, and the last problem each reported (logged once per distinct message). */
  readonly #strategies: readonly Discovery[]
  readonly #reported = new Map<Discovery, string>()
  readonly #clusterAddress: string
  readonly #httpAddress: string
  /** Cluster addresses handed to the transport, by peer id. */
  readonly #known = new Map<NodeId, string>()
  readonly #status = new Map<NodeId, MemberStatus>()
  /** Ids resolved from discovery: seeds the membership keeps pinging, so never removed from the transport. */
  readonly #seedIds = new Set<NodeId>()
  /** Discovered HTTP address → the id it answered with. */
  readonly #resolvedIds = new Map<string, NodeId>()
  readonly #sent: Record<string, number> = {}
  readonly #received: Record<string, number> = {}
  readonly #transitions: Record<MemberStatus, number> = { alive: 0, suspect: 0, dead: 0, left: 0 }
  /** The replication topology of the view, built on demand after a membership step (undefined: stale). */
  #topology: ReplicaTopology | undefined
  /** The last topology handed out: kept (same object) while a rebuild finds it unchanged. */
  #lastTopology: ReplicaTopology | undefined
  /** The replica's digests at a depth (set by the node once replication runs; a solo node has none). */
  #digest: ((depth: number) => ReplicaDigest) | undefined
  #resolved = 0
  #resolveFailures = 0
  #runnerErrors = 0
  #discoveryTimer: ReturnType<Clock['setTimeout']> | undefined
  #unsubscribe: (() => void) | undefined
  #resolving: Promise<void> | undefined
  #again = false
  #closed = false
  #left = false

  private constructor(ctx: ClusterServiceContext, tcp: TcpTransport | undefined, clusterAddress: string, disk: KernelDisk) {
    const o = ctx.options
    const c = o.cluster
    this.#ctx = ctx
    this.id = ctx.id
    this.enabled = c.enabled
    this.#tcp = tcp
    this.#mux = tcp === undefined ? undefined : new ChannelMux({ transport: tcp, clock: ctx.clock })
    this.#transport = this.#mux?.channel(MEMBERSHIP_CHANNEL) ?? new NoPeers(ctx.id)
    this.#clusterAddress = clusterAddress
    this.#httpAddress = hostPort(c.advertiseHost, ctx.httpPort)
    this.#membership = new Membership({
      id: ctx.id,
      region: o.region,
      address: this.#httpAddress,
      clusterAddress,
      random: mathRandom,
      heartbeatIntervalMs: c.heartbeatIntervalMs,
      phi: { threshold: c.phiThreshold, acceptableHeartbeatPauseMs: c.acceptablePauseMs, minStdDeviationMs: c.minStdDeviationMs, firstHeartbeatEstimateMs: c.heartbeatIntervalMs },
      indirectTimeoutMs: c.indirectTimeoutMs,
      suspicionTimeoutMs: c.suspicionTimeoutMs,
      pruneAfterMs: c.pruneAfterMs,
    })
    this.#runner = new KernelRunner({
      machine: new Observed(this, this.#membership),
      transport: this.#transport,
      clock: ctx.clock,
      disk,
      codec: jsonCodec<MembershipMessage>(),
      onError: (err) => {
        this.#runnerErrors++
        if (this.#runnerErrors <= 10 || this.#runnerErrors % 1000 === 0) ctx.log.warn({ err, errors: this.#runnerErrors }, 'cluster: a step failed (the node keeps going)')
      },
    })
    const built = c.enabled ? buildDiscovery(ctx) : undefined
    this.#discovery = built?.discovery
    this.#strategies = built?.strategies ?? []
  }

  /**
   * Starts the service for a node whose HTTP port is bound: opens the cluster transport
   * (clustered mode), starts the membership and the first discovery round (not awaited:
   * joining goes on in the background).
   */
  static async start(context: ClusterServiceContext): Promise<ClusterService> {
    const o = context.options
    const c = o.cluster
    // A solo node's id may be any header-safe text (today's nodeId); its one-member view shows it in node-id characters.
    const ctx = c.enabled || /^[A-Za-z0-9_.:-]{1,128}$/.test(context.id) ? context : { ...context, id: context.id.replace(/[^A-Za-z0-9_.:-]/g, '-').slice(0, 128) }
    const disk: KernelDisk = o.store === undefined || c.enabled ? new FileKernelDisk(mkdir(o.dataDir)) : new MemoryKernelDisk()
    let tcp: TcpTransport | undefined
    let clusterAddress = ''
    if (c.enabled) {
      const port = c.clusterPort ?? defaultClusterPort(o.port === 0 ? 0 : ctx.httpPort)
      let authFailures = 0
      tcp = await TcpTransport.listen({
        nodeId: ctx.id,
        listen: { host: c.clusterHost, port },
        secret: c.clusterSecret as string,
        clock: ctx.clock,
        onError: (err: CacheError) => {
          // Strangers knocking (wrong secret) are counted in the transport's stats; a few lines, not a flood.
          if (err.code === 'ERR_PEER_AUTH' && ++authFailures > 20 && authFailures % 1000 !== 0) return
          ctx.log.warn({ err: { code: err.code, message: err.message } }, 'cluster transport refused a connection or frame')
        },
      }).catch((err: unknown) => {
        throw listenError(err, 'clusterHost', c.clusterHost, port)
      })
      clusterAddress = hostPort(c.advertiseHost, c.advertiseClusterPort ?? tcp.advertised.port)
    }
    let service: ClusterService
    try {
      service = new ClusterService(ctx, tcp, clusterAddress, disk)
    } catch (err) {
      // The cluster port is bound by now: a refused setting must not leave it listening.
      await tcp?.close().catch(() => undefined)
      throw err
    }
    service.#runner.start()
    if (service.#discovery !== undefined) {
      service.#unsubscribe = service.#discovery.onChange?.(() => service.discoverNow())
      service.discoverNow()
    }
    // A solo node logs what it always did (started, draining, stopped); a clustering one says how it clusters.
    if (c.enabled) ctx.log.info({ id: ctx.id, region: o.region, clustered: c.enabled, clusterAddress: clusterAddress || undefined, discovery: c.discovery, incarnation: service.#membership.incarnation, state: service.#membership.clusterState.state }, 'cluster: started')
    return service
  }

  /** The node's view of the cluster (what `GET /v1/cluster` answers). */
  view(): ClusterView {
    return this.#membership.view(this.#ctx.clock.now())
  }

  /**
   * What replication needs of the view (`topologyFromView`): members with region and status,
   * and the cluster state. None of it changes between membership steps, so it is rebuilt only
   * after one (and then handed out as the same object when nothing in it changed); the
   * replication machine reads it on every step (decision 0308).
   */
  topology(): ReplicaTopology {
    if (this.#topology === undefined) {
      const next = topologyFromView(this.view())
      this.#topology = this.#lastTopology !== undefined && sameTopology(this.#lastTopology, next) ? this.#lastTopology : next
      this.#lastTopology = this.#topology
    }
    return this.#topology
  }

  /** The current cluster state. */
  get state(): ClusterState {
    return this.#membership.clusterState.state
  }

  /** The cluster address peers dial ('' in solo mode). */
  get clusterAddress(): string {
    return this.#clusterAddress
  }

  /**
   * The replication channel of the cluster transport (clustered mode; undefined for a solo
   * node): bulk frames, released behind membership's (ChannelMux).
   */
  get replicationTransport(): MessageTransport | undefined {
    return this.#mux?.channel(REPLICATION_CHANNEL, { kind: 'bulk' })
  }

  /** The channel multiplexer over the cluster transport (clustered mode), for its stats. */
  get mux(): ChannelMux | undefined {
    return this.#mux
  }

  /** The cluster transport (clustered mode), for its stats. */
  get transport(): TcpTransport | undefined {
    return this.#tcp
  }

  get stats(): ClusterServiceStats {
    return { sent: { ...this.#sent }, received: { ...this.#received }, transitions: { ...this.#transitions }, resolved: this.#resolved, resolveFailures: this.#resolveFailures, runnerErrors: this.#runnerErrors }
  }

  /** Sets the cluster state now (versioned, persisted, gossiped to every member); returns the state record. */
  setState(state: ClusterState): ClusterView['state'] {
    this.#membership.setClusterState(state)
    this.#runner.step({ type: 'timer', name: 'command' })
    this.#ctx.log.info({ state: this.#membership.clusterState }, 'cluster: state set')
    return this.#membership.clusterState
  }

  /** Where `GET /v1/cluster/digest` reads the replica's digests (the node's replication); undefined: the route answers 404. */
  setDigestSource(source: ((depth: number) => ReplicaDigest) | undefined): void {
    this.#digest = source
  }

  /** Runs discovery and joins what it finds, now (coalesced with a round already running). */
  discoverNow(): void {
    if (this.#discovery === undefined || this.#closed || this.#left) return
    if (this.#resolving !== undefined) {
      this.#again = true
      return
    }
    this.#resolving = this.#discoverRound()
      .catch((err: unknown) => this.#ctx.log.warn({ err }, 'cluster: discovery round failed'))
      .finally(() => {
        this.#resolving = undefined
        if (this.#closed || this.#left) return
        if (this.#again) {
          this.#again = false
          this.discoverNow()
          return
        }
        this.#scheduleDiscovery()
      })
  }

  /**
   * The cluster routes, and the PASSIVE refusal of writes; `undefined` for every other
   * request (the API goes on). Auth, rate limit and the rest of admission ran before.
   */
  handle(request: ApiRequest, method: string, path: string): ApiResponse | undefined {
    if (path === CLUSTER_PATH) {
      if (method !== 'GET') return methodNotAllowed(method, ['GET'])
      // Unknown or repeated query parameters: 400 (thrown, answered by HttpApi), as on every route.
      queryParams(splitUrl(request.url).query, [])
      return json(this.view())
    }
    if (path === CLUSTER_STATE_PATH) {
      queryParams(splitUrl(request.url).query, [])
      if (method === 'GET') return json(this.#membership.clusterState)
      if (method !== 'POST') return methodNotAllowed(method, ['GET', 'POST'])
      const type = request.headers['content-type']
      const media = typeof type === 'string' ? type.split(';', 1)[0].trim().toLowerCase() : ''
      if (media !== JSON_TYPE) return error('ERR_UNSUPPORTED_MEDIA_TYPE', `This route takes Content-Type: ${JSON_TYPE}`, 415)
      let body: Record<string, unknown>
      try {
        body = parseJsonObject(request.body)
      } catch (err) {
        return error('ERR_BAD_REQUEST', err instanceof BadRequestError ? err.message : 'Body is not valid JSON', 400)
      }
      // A field the route does not take is refused as on the other JSON routes (a typo must not pass unnoticed).
      const extra = Object.keys(body).find((name) => name !== 'state')
      if (extra !== undefined) return error('ERR_BAD_REQUEST', `POST ${CLUSTER_STATE_PATH} body has an unknown field ${JSON.stringify(extra.slice(0, 40))}; allowed: state`, 400)
      const state = parseClusterState(body.state)
      if (state === undefined) return error('ERR_BAD_REQUEST', `"state" must be one of ${CLUSTER_STATES.join(', ')} (or passive, no-migration, active)`, 400)
      if (this.#left) return error('ERR_BUSY', 'The node has left the cluster', 503)
      return json(this.setState(state))
    }
    if (path === CLUSTER_DIGEST_PATH) {
      if (method !== 'GET') return methodNotAllowed(method, ['GET'])
      if (this.#digest === undefined) return error('ERR_NOT_FOUND', 'This node does not replicate (no cluster secret): it has no replicas to compare digests with', 404)
      const depthText = queryParams(splitUrl(request.url).query, ['depth']).get('depth') ?? '0'
      if (!/^[0-5]$/.test(depthText)) return error('ERR_BAD_REQUEST', 'depth: expected an integer 0..5', 400)
      return json({ self: this.id, ...this.#digest(Number(depthText)) })
    }
    if (this.state === 'PASSIVE' && isWriteRoute(method, path)) {
      const e = new ClusterPassiveError()
      return error(e.code, `${e.message}; set the state back with POST ${CLUSTER_STATE_PATH} {"state":"ACTIVE"} (stratacache cluster state active)`, 503)
    }
    return undefined
  }

  /** Registers the cluster's Prometheus figures in the node's registry. */
  registerMetrics(registry: Registry): void {
    registerLabeledReadings(registry, [
      {
        name: 'stratacache_cluster_members',
        help: 'Members in this node\'s view by status (this node included, as alive or left).',
        type: 'gauge',
        labelNames: ['status'],
        read: () => {
          const counts: Record<string, number> = { alive: 0, suspect: 0, dead: 0, left: 0 }
          for (const r of this.view().regions) for (const m of r.members) counts[m.status]++
          return STATUSES.map((s) => [{ status: s }, counts[s]] as const)
        },
      },
      {
        name: 'stratacache_cluster_member_phi',
        help: 'Phi-accrual suspicion level of each peer (capped at 1000).',
        type: 'gauge',
        labelNames: ['peer', 'region'],
        read: () => this.view().regions.flatMap((r) => r.members.filter((m) => !m.self && m.phi !== null).map((m) => [{ peer: m.id, region: m.region }, m.phi as number] as const)),
      },
      {
        name: 'stratacache_cluster_member_rtt_ms',
        help: 'Smoothed probe round trip to each peer, ms.',
        type: 'gauge',
        labelNames: ['peer', 'region'],
        read: () => this.view().regions.flatMap((r) => r.members.filter((m) => m.rttMs !== null).map((m) => [{ peer: m.id, region: m.region }, m.rttMs as number] as const)),
      },
      {
        name: 'stratacache_cluster_messages_sent_total',
        help: 'Membership (gossip) messages sent, by kind.',
        type: 'counter',
        labelNames: ['kind'],
        read: () => Object.entries(this.#sent).map(([kind, n]) => [{ kind }, n] as const),
      },
      {
        name: 'stratacache_cluster_messages_received_total',
        help: 'Membership (gossip) messages received from authenticated peers, by kind.',
        type: 'counter',
        labelNames: ['kind'],
        read: () => Object.entries(this.#received).map(([kind, n]) => [{ kind }, n] as const),
      },
      {
        name: 'stratacache_cluster_detection_events_total',
        help: 'Members that changed status in this view, by the new status (suspect and dead: failure detection; alive: joined or refuted; left: graceful leave).',
        type: 'counter',
        labelNames: ['status'],
        read: () => STATUSES.map((s) => [{ status: s }, this.#transitions[s]] as const),
      },
      {
        name: 'stratacache_cluster_state',
        help: 'Cluster state: 1 for the current one, 0 for the others.',
        type: 'gauge',
        labelNames: ['state'],
        read: () => CLUSTER_STATES.map((s) => [{ state: s }, s === this.state ? 1 : 0] as const),
      },
    ])
    registerReadings(registry, [
      { name: 'stratacache_cluster_incarnation', help: "This node's incarnation (bumped by each restart and each refuted suspicion).", type: 'gauge', read: () => this.#membership.incarnation },
      { name: 'stratacache_cluster_auth_failures_total', help: 'Cluster connections refused by authentication (wrong or no cluster secret).', type: 'counter', read: () => this.#tcp?.stats.authFailures ?? 0 },
      { name: 'stratacache_cluster_dropped_messages_total', help: 'Cluster messages the transport dropped (queue full, peer unknown or unreachable).', type: 'counter', read: () => this.#tcp?.stats.dropped ?? 0 },
      { name: 'stratacache_cluster_inbound_dropped_total', help: 'Cluster frames received over a peer\'s inbound limit and dropped (membership and replication together).', type: 'counter', read: () => { const d = this.#mux?.stats.inboundDropped; return d === undefined ? 0 : d.control + d.bulk } },
    ])
  }

  /**
   * Graceful leave: every live member is told at once (`left` in its view on arrival);
   * resolves when the transport has had `leaveTimeout` to send it. Idempotent.
   */
  async leave(): Promise<void> {
    if (this.#left || this.#closed) return
    this.#left = true
    this.#stopDiscovery()
    const live = this.#membership.peers().filter((p) => p.status === 'alive' || p.status === 'suspect').length
    const tcp = this.#tcp
    const before = tcp === undefined ? 0 : tcp.stats.sent + tcp.stats.dropped
    this.#membership.leave()
    this.#runner.step({ type: 'timer', name: 'command' })
    if (tcp === undefined || live === 0) return
    this.#ctx.log.info({ told: live }, 'cluster: leaving')
    // The transport writes asynchronously (maybe a dial and a handshake first): wait until every leave is written or dropped.
    const clock = this.#ctx.clock
    const until = clock.now() + this.#ctx.options.cluster.leaveTimeoutMs
    while (tcp.stats.sent + tcp.stats.dropped - before < live && clock.now() < until) {
      await new Promise<void>((resolve) => clock.setTimeout(resolve, 10))
    }
  }

  /** Stops the machine, discovery and the transport. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#stopDiscovery()
    this.#runner.stop()
    this.#mux?.close()
    await Promise.allSettled([this.#discovery?.close?.(), this.#transport.close(), this.#tcp?.close()])
  }

  /** Called by the wrapped machine after each step, before the runner performs its actions. */
  afterStep(event: KernelEvent<MembershipMessage>, actions: readonly KernelAction<MembershipMessage>[]): void {
    this.#topology = undefined
    if (event.type === 'message') {
      const kind = typeof event.message?.kind === 'string' ? event.message.kind : 'invalid'
      this.#received[kind] = (this.#received[kind] ?? 0) + 1
    }
    for (const a of actions) if (a.type === 'send') this.#sent[a.message.kind] = (this.#sent[a.message.kind] ?? 0) + 1
    const seen = new Set<NodeId>()
    for (const p of this.#membership.peers()) {
      seen.add(p.id)
      if (this.#status.get(p.id) !== p.status) {
        this.#status.set(p.id, p.status)
        this.#transitions[p.status]++
      }
      if (this.#tcp === undefined || p.clusterAddress === '' || this.#known.get(p.id) === p.clusterAddress) continue
      const address = peerAddress(p.clusterAddress)
      if (address === undefined) continue
      try {
        this.#tcp.setPeer(p.id, address)
        this.#known.set(p.id, p.clusterAddress)
      } catch {
        // A malformed id or address from a peer: not dialled.
      }
    }
    for (const id of [...this.#status.keys()]) if (!seen.has(id)) this.#status.delete(id)
    if (this.#tcp !== undefined) {
      for (const id of [...this.#known.keys()]) {
        // A discovered id is dialled while the membership keeps it as a seed; once it forgot
        // it (out of the view for pruneAfterMs), so does the transport.
        if (seen.has(id) || (this.#seedIds.has(id) && this.#membership.isSeed(id))) continue
        this.#tcp.removePeer(id)
        this.#known.delete(id)
        this.#seedIds.delete(id)
        for (const [address, resolved] of this.#resolvedIds) if (resolved === id) this.#resolvedIds.delete(address)
      }
    }
  }

  // ---- discovery ----------------------------------------------------------------------

  async #discoverRound(): Promise<void> {
    const discovery = this.#discovery
    const tcp = this.#tcp
    if (discovery === undefined || tcp === undefined) return
    const candidates = await discovery.discover()
    this.#reportDiscoveryProblems()
    const todo = candidates.filter((c) => c.address !== this.#httpAddress && !this.#isLive(c))
    const ids = (await Promise.all(todo.map((c) => this.#resolve(c)))).filter((id): id is NodeId => id !== undefined)
    if (ids.length === 0 || this.#closed || this.#left) return
    // #resolve queued each id's join: applied now.
    this.#runner.step({ type: 'timer', name: 'command' })
  }

  /**
   * Logs what a strategy swallowed (a missing or mistyped discovery file, a failing DNS name):
   * once per distinct problem, and once more when it clears, so a typo is not silent.
   */
  #reportDiscoveryProblems(): void {
    for (const s of this.#strategies) {
      const problem = s.lastError?.message ?? ''
      if (problem === (this.#reported.get(s) ?? '')) continue
      this.#reported.set(s, problem)
      if (problem !== '') this.#ctx.log.warn({ discovery: s.kind, err: problem }, `cluster: ${s.kind} discovery: ${problem} (it answers what it last knew)`)
      else this.#ctx.log.info({ discovery: s.kind }, `cluster: ${s.kind} discovery works again`)
    }
  }

  /** Whether the candidate is a member this view holds live (no need to ask it again). */
  #isLive(c: DiscoveryCandidate): boolean {
    const id = this.#resolvedIds.get(c.address) ?? c.nodeId
    if (id === this.id) return true
    if (id === undefined) return false
    const s = this.#membership.status(id)
    return s === 'alive' || s === 'suspect'
  }

  /** Asks a candidate's HTTP API who it is and where it listens for the cluster; sets it as a peer. */
  async #resolve(c: DiscoveryCandidate): Promise<NodeId | undefined> {
    const headers: Record<string, string> = { accept: JSON_TYPE }
    const token = this.#ctx.options.authToken
    if (token !== undefined) headers.authorization = `Bearer ${token}`
    try {
      const res = await getText(`${this.#ctx.scheme}://${c.address}${CLUSTER_PATH}`, headers, AbortSignal.timeout(RESOLVE_TIMEOUT_MS))
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`)
      const view = JSON.parse(res.text) as Partial<ClusterView>
      const id = view.self
      validateNodeId(id, 'self')
      this.#resolvedIds.set(c.address, id)
      if (id === this.id) return undefined
      const me = view.regions?.flatMap((r) => r.members).find((m) => m.self)
      const address = me?.clusterAddress === undefined ? undefined : peerAddress(me.clusterAddress)
      if (address === undefined) throw new Error('it does not cluster (no cluster address in its view: started without a cluster secret?)')
      this.#tcp?.setPeer(id, address)
      this.#known.set(id, me?.clusterAddress as string)
      this.#seedIds.add(id)
      // Queued at once (applied with the round's other joins): a step in between would find a
      // dialled id the membership does not count as a seed yet, and forget it.
      if (!this.#closed && !this.#left) this.#membership.join([id])
      this.#resolved++
      return id
    } catch (err) {
      this.#resolveFailures++
      if (this.#resolveFailures <= 20 || this.#resolveFailures % 100 === 0) {
        this.#ctx.log.warn({ candidate: c.address, err: err instanceof Error ? err.message : String(err) }, 'cluster: a discovered node did not answer GET /v1/cluster')
      }
      return undefined
    }
  }

  #scheduleDiscovery(): void {
    if (this.#discoveryTimer !== undefined) this.#ctx.clock.clearTimeout(this.#discoveryTimer)
    this.#discoveryTimer = this.#ctx.clock.setTimeout(() => {
      this.#discoveryTimer = undefined
      this.discoverNow()
    }, this.#ctx.options.cluster.discoveryIntervalMs, { unref: true })
  }

  #stopDiscovery(): void {
    if (this.#discoveryTimer !== undefined) this.#ctx.clock.clearTimeout(this.#discoveryTimer)
    this.#discoveryTimer = undefined
    this.#unsubscribe?.()
    this.#unsubscribe = undefined
  }
}

/** True when two topologies hold the same cluster state and the same members (id, region, status) in the same order. */
function sameTopology(a: ReplicaTopology, b: ReplicaTopology): boolean {
  if (a.clusterState !== b.clusterState || a.members.length !== b.members.length) return false
  for (let i = 0; i < a.members.length; i++) {
    const x = a.members[i]!
    const y = b.members[i]!
    if (x.id !== y.id || x.region !== y.region || x.status !== y.status) return false
  }
  return true
}

/** Largest answer a candidate's `GET /v1/cluster` may send (a view of thousands of members fits). */
const MAX_VIEW_BYTES = 8 * 1024 * 1024

/**
 * One GET over node:http(s), on a connection of its own. Not fetch(): it refuses the WHATWG
 * "bad ports" (6000, 6665-6669, 10080, …) without dialling, so a seed listening on one was
 * never reached.
 */
function getText(url: string, headers: Record<string, string>, signal: AbortSignal): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? httpsGet : httpGet
    const req = get(url, { headers, signal, agent: false }, (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.byteLength
        if (size > MAX_VIEW_BYTES) req.destroy(new Error(`an answer over ${MAX_VIEW_BYTES} bytes`))
        else chunks.push(chunk)
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('error', reject)
  })
}

function mkdir(dir: string): string {
  makeDirectory(dir)
  return dir
}

function buildDiscovery(ctx: ClusterServiceContext): { discovery: Discovery; strategies: readonly Discovery[] } {
  const c = ctx.options.cluster
  const strategies: Discovery[] = c.discovery.map((kind): Discovery => {
    switch (kind) {
      case 'static':
        return new StaticDiscovery(c.seeds)
      case 'env':
        return new EnvDiscovery({ variable: c.discoveryEnv })
      case 'file':
        return new FileDiscovery({ path: c.discoveryFile as string, clock: ctx.clock, pollIntervalMs: Math.min(2000, c.discoveryIntervalMs) })
      case 'dns':
        return new DnsDiscovery({ name: c.discoveryDns as string, port: c.discoveryDnsPort ?? ctx.httpPort, clock: ctx.clock })
      case 'mdns':
        // Published: this node's HTTP port (what discovery resolves), its id and region in the TXT record.
        return new MdnsDiscovery({ nodeId: ctx.id, region: ctx.options.region, port: ctx.httpPort, serviceType: c.mdnsServiceType, ...(c.mdnsInterface === undefined ? {} : { interface: c.mdnsInterface }) })
    }
  })
  const healthChecker = new DiscoveryHealthChecker({ clock: ctx.clock, intervalMs: c.discoveryIntervalMs, timeoutMs: Math.min(1000, c.discoveryIntervalMs) })
  return { discovery: new CompositeDiscovery(strategies, { healthChecker }), strategies }
}

function json(value: unknown): ApiResponse {
  return { status: 200, headers: { 'content-type': JSON_TYPE }, body: JSON.stringify(value) }
}

function error(code: string, message: string, status: number, extra?: Record<string, string>): ApiResponse {
  return { status, headers: { 'content-type': JSON_TYPE, ...extra }, body: JSON.stringify({ code, message }) }
}

function methodNotAllowed(method: string, allow: readonly string[]): ApiResponse {
  return error('ERR_METHOD_NOT_ALLOWED', `${method} is not allowed here; allowed: ${allow.join(', ')}`, 405, { allow: allow.join(', ') })
}
