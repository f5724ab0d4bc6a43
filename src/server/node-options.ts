/**
 * `NodeOptions`: every setting of a node, with its default, validated once by
 * `resolveNodeOptions` (`ERR_INVALID_OPTIONS` naming the option). The CLI (`serve`) maps
 * flags, `STRATACACHE_*` variables and a config file onto these same names.
 */
import { isIP } from 'node:net'
import { MAX_TIMER_MS, type Clock } from '../core/clock.js'
import { toBytes, toMs, type ByteSize, type Duration } from '../core/duration.js'
import { InvalidOptionsError } from '../core/errors.js'
import { optionNames, rejectUnknown } from '../core/known-options.js'
import { noTickerClock } from '../core/system-clock.js'
import { BEARER_TOKEN, DEFAULT_HOST, REGION_NAME, DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_KEY_BYTES, DEFAULT_MAX_VALUE_BYTES, DEFAULT_PORT } from '../protocol/wire.js'
import type { Store } from '../store/types.js'
import { storeFromUrl } from './store-url.js'
import type { LogLevel, NodeLogger } from './logger.js'
import type { MessageTransport } from '../cluster/transport.js'
import { MDNS_SERVICE_TYPE } from '../cluster/discovery/mdns-discovery.js'
import type { Replicator } from './replicator.js'

export interface NodeOptions {
  /** Interface to listen on. @default '127.0.0.1' */
  host?: string
  /** TCP port; 0 picks a free one. @default 7700 */
  port?: number
  /** Directory of the embedded on-disk store (created if missing). Ignored when `store` is given. @default './stratacache-data' */
  dataDir?: string
  /**
   * A store to persist into instead of the embedded one (the node closes it on shutdown), or
   * its URL: `etcd://host:port[,host:port]/namespace` (store-url.ts). @default the embedded LMDB store in `dataDir`
   */
  store?: Store | string
  /** Capacity of the embedded on-disk store (LMDB `mapSize`); past it writes fail with `507 ERR_STORE_FULL`. @default '1gb' */
  disk?: ByteSize
  /** Bytes the in-process tier (L1) may hold. @default '128mb' */
  memory?: ByteSize
  /** Longest key, in UTF-8 bytes. @default 1024 */
  maxKeyBytes?: number
  /** Largest value. @default '16mb' */
  maxValueBytes?: ByteSize
  /** Largest JSON body (mget, mset, invalidate). @default '32mb' */
  maxBodyBytes?: ByteSize
  /** Most keys in one mget or mset. @default 1000 */
  maxBatch?: number
  /** Requests processed at once; past it, `503 ERR_BUSY` at once. @default 256 */
  maxInFlight?: number
  /** Requests per second per client IP (token bucket); 0 = no limit. @default 0 */
  rateLimit?: number
  /** Token-bucket burst per client IP. @default max(1, ceil(rateLimit)) */
  rateBurst?: number
  /** Open connections per client IP; past it, new connections get `503` and are closed. @default 256 */
  maxConnectionsPerIp?: number
  /** Open client connections node-wide (all addresses); past it, new connections get `503` and are closed. @default 4096 */
  maxConnections?: number
  /**
   * Requests from one client IP whose body is still arriving; past it, `503 ERR_BUSY` and
   * close. A body being received holds no in-flight slot (it takes one once complete), so
   * slow uploads cannot keep other requests from being served. @default 32
   */
  maxUploadsPerIp?: number
  /**
   * Bytes of request bodies the node holds in memory at once, node-wide (bodies arriving and
   * bodies being processed). A body with a declared `Content-Length` reserves it before it is
   * read; a chunked one as it arrives. Past it, `503 ERR_BUSY` with `Retry-After` and close.
   * At least `maxBodyBytes` and `maxValueBytes`. @default max('256mb', maxBodyBytes, maxValueBytes)
   */
  maxBufferedBodyBytes?: ByteSize
  /**
   * Time a request body may take beyond what its size needs at `minBodyRate`: the body must
   * be complete within `bodyTimeout` after its headers, plus one second for every
   * `minBodyRate` bytes received (Apache mod_reqtimeout's rule). Past it, `408` and close.
   * `requestTimeout` still bounds the whole request. @default '5s'
   */
  bodyTimeout?: Duration
  /** Bytes per second of body that earn one more second (see `bodyTimeout`). @default '64kb' */
  minBodyRate?: ByteSize
  /** Time to receive a request's headers. @default '10s' */
  headersTimeout?: Duration
  /** Time to receive a whole request, body included. @default '30s' */
  requestTimeout?: Duration
  /** Idle time before a keep-alive connection is closed. @default '5s' */
  keepAliveTimeout?: Duration
  /** On shutdown, how long in-flight requests may take before connections are cut. @default '10s' */
  drainTimeout?: Duration
  /** Timeout of one store operation. @default '5s' */
  storeTimeout?: Duration
  /**
   * How long deletes and prefix clears are remembered as tombstones (from the time of their
   * version): within it, a late write older than the delete never brings the key back. @default '24h'
   */
  tombstoneTtl?: Duration
  /** When set, every request but /healthz, /readyz and /ping needs `Authorization: Bearer <token>`. @default none */
  authToken?: string
  /** PEM certificate and key paths; both set = HTTPS. @default none (plain HTTP) */
  tlsCert?: string
  /** @default none */
  tlsKey?: string
  /** Log level of the node's lines (`silent` for none). @default 'info' */
  logLevel?: LogLevel
  /** One log line per request (at `info`). @default false */
  logRequests?: boolean
  /** A logger to use instead of the node's own pino logger on stdout. @default pino on stdout */
  logger?: NodeLogger
  /** Interval of the `meta` messages on `GET /v1/watch` (a client finds a lost invalidation within it). @default '1s' */
  watchMetaInterval?: Duration
  /** Bytes queued for one `/v1/watch` subscriber before the node cuts it (a write never waits for it). @default '1mb' */
  watchBufferBytes?: ByteSize
  /** This node's name in logs, headers and (later) the cluster. @default '<host>:<port>' */
  nodeId?: string
  /** Region (Zerocache's grouping of nodes; used by the cluster). @default 'default' */
  region?: string
  /**
   * Time source. @default the real clock without its ticker thread (`Date.now()` per read):
   * a node reads the time a few times per request, far fewer than the ticker's thousand
   * wake-ups a second cost (decision 0360).
   */
  clock?: Clock
  /** How the node reaches peers (cluster kernel's MessageTransport); closed with the node. @default none (no peers) */
  transport?: MessageTransport
  /** Receives every acknowledged write (cluster seam). @default none */
  replicator?: Replicator
  // ---- cluster (docs/guide/cluster.md) ----------------------------------------------
  /**
   * Other nodes' HTTP API addresses (`host:port`, comma-separated or a list) to join
   * through (static discovery). Each is asked `GET /v1/cluster` for its id and cluster
   * address. Setting it (or `discovery`, or `clusterSecret`) makes the node cluster. @default none
   */
  seeds?: string | readonly string[]
  /**
   * Discovery strategies, in fall-through order (`static`, `env`, `file`, `dns`, `mdns`;
   * comma-separated or a list): the first that yields a live candidate wins. @default 'static' when `seeds` is set, else none
   */
  discovery?: string | readonly string[]
  /** Environment variable the `env` strategy reads (`host:port` list). @default 'STRATACACHE_SEEDS' */
  discoveryEnv?: string
  /** File the `file` strategy reads (`host:port` per line or comma-separated, `#` comments; re-read on change). @default none */
  discoveryFile?: string
  /** DNS name the `dns` strategy resolves (A/AAAA; SRV when it starts with `_`). @default none */
  discoveryDns?: string
  /** Peers' HTTP port for A/AAAA answers. @default this node's port */
  discoveryDnsPort?: number
  /** DNS-SD service type the `mdns` strategy publishes and browses. @default 'stratacache' */
  mdnsServiceType?: string
  /** Interface address mDNS binds and sends on (e.g. '127.0.0.1'). @default all */
  mdnsInterface?: string
  /** How often discovery runs again to find nodes not yet joined (and while alone). @default '5s' */
  discoveryInterval?: Duration
  /** Port of the cluster transport (framed TCP between nodes); 0 picks a free one. @default port + 10000 (0 when port is 0 or past 55535) */
  clusterPort?: number
  /** Interface the cluster transport listens on. @default host */
  clusterHost?: string
  /** Host other nodes and clients are told to reach this node at (needed when host is 0.0.0.0 or ::). @default host */
  advertiseHost?: string
  /** Cluster port other nodes are told to dial (a port forward, NAT or proxy in front of `clusterPort`). @default the bound cluster port */
  advertiseClusterPort?: number
  /** Shared secret (>= 16 bytes) every node proves in the cluster handshake. Required to cluster. @default none */
  clusterSecret?: string
  /** Heartbeat (probe) interval of the membership. @default '1s' */
  heartbeatInterval?: Duration
  /** Phi-accrual threshold past which a silent peer is probed indirectly, then suspected. @default 8 */
  phiThreshold?: number
  /** Silence tolerated on top of the mean heartbeat interval before phi rises. @default '3s' */
  acceptablePause?: Duration
  /** Floor of the heartbeat inter-arrival std-dev. @default '100ms' */
  minStdDeviation?: Duration
  /** How long indirect probes (ping-req through up to 3 peers) may take. @default '500ms' */
  indirectTimeout?: Duration
  /** How long a suspect has to refute before it is declared dead. @default '3s' */
  suspicionTimeout?: Duration
  /** Dead and left members leave views this long after the verdict. @default '60s' */
  pruneAfter?: Duration
  /** On shutdown, how long the leave announcement may take to go out before the transport closes. @default '500ms' */
  leaveTimeout?: Duration
}

/** The settings of one discovery strategy: refused when the strategy is not used. */
const STRATEGY_PARAMETERS: ReadonlyArray<readonly [keyof NodeOptions, DiscoveryKind]> = [
  ['discoveryEnv', 'env'],
  ['discoveryFile', 'file'],
  ['discoveryDns', 'dns'],
  ['discoveryDnsPort', 'dns'],
  ['mdnsServiceType', 'mdns'],
  ['mdnsInterface', 'mdns'],
]

export const DISCOVERY_KINDS = ['static', 'env', 'file', 'dns', 'mdns'] as const
export type DiscoveryKind = (typeof DISCOVERY_KINDS)[number]

/** The cluster part of the resolved options. */
export interface ResolvedClusterOptions {
  /** False: a one-node cluster, no transport (today's node). */
  readonly enabled: boolean
  readonly seeds: readonly string[]
  readonly discovery: readonly DiscoveryKind[]
  readonly discoveryEnv: string
  readonly discoveryFile: string | undefined
  readonly discoveryDns: string | undefined
  readonly discoveryDnsPort: number | undefined
  readonly mdnsServiceType: string
  readonly mdnsInterface: string | undefined
  readonly discoveryIntervalMs: number
  /** undefined: port + 10000 once the HTTP port is known. */
  readonly clusterPort: number | undefined
  readonly clusterHost: string
  readonly advertiseHost: string
  /** undefined: the bound cluster port. */
  readonly advertiseClusterPort: number | undefined
  readonly clusterSecret: string | undefined
  readonly heartbeatIntervalMs: number
  readonly phiThreshold: number
  readonly acceptablePauseMs: number
  readonly minStdDeviationMs: number
  readonly indirectTimeoutMs: number
  readonly suspicionTimeoutMs: number
  readonly pruneAfterMs: number
  readonly leaveTimeoutMs: number
}

export interface ResolvedNodeOptions {
  readonly host: string
  readonly port: number
  readonly dataDir: string
  readonly store: Store | undefined
  readonly diskBytes: number
  readonly memoryBytes: number
  readonly maxKeyBytes: number
  readonly maxValueBytes: number
  readonly maxBodyBytes: number
  readonly maxBatch: number
  readonly maxInFlight: number
  readonly rateLimit: number
  readonly rateBurst: number
  readonly maxConnectionsPerIp: number
  readonly maxConnections: number
  readonly maxUploadsPerIp: number
  readonly maxBufferedBodyBytes: number
  readonly bodyTimeoutMs: number
  readonly minBodyRate: number
  readonly headersTimeoutMs: number
  readonly requestTimeoutMs: number
  readonly keepAliveTimeoutMs: number
  readonly drainTimeoutMs: number
  readonly storeTimeoutMs: number
  readonly tombstoneTtlMs: number
  readonly watchMetaIntervalMs: number
  readonly watchBufferBytes: number
  readonly authToken: string | undefined
  readonly tlsCert: string | undefined
  readonly tlsKey: string | undefined
  readonly logLevel: LogLevel
  readonly logRequests: boolean
  readonly logger: NodeLogger | undefined
  readonly nodeId: string | undefined
  readonly region: string
  readonly clock: Clock
  readonly transport: MessageTransport | undefined
  readonly replicator: Replicator | undefined
  readonly cluster: ResolvedClusterOptions
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

function int(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionsError(name, `expected an integer in ${min}..${max}, got ${String(value)}`)
  }
  return value
}

function positiveMs(value: unknown, name: string): number {
  const ms = toMs(value, name)
  if (!(ms > 0) || ms === Infinity) throw new InvalidOptionsError(name, 'expected a finite duration > 0')
  return ms
}

/** A timeout handed to node:http: past its range it throws a raw RangeError at start, or cuts the timer short. */
function serverTimeoutMs(value: unknown, name: string): number {
  const ms = positiveMs(value, name)
  if (ms > MAX_TIMER_MS) throw new InvalidOptionsError(name, `expected a duration of at most ${MAX_TIMER_MS} ms (~24.8 days), got ${ms}`)
  return ms
}

/** A duration the membership times with (>= 1 ms, finite): a sub-millisecond interval would be refused later under its internal name. */
function membershipMs(value: unknown, name: string): number {
  const ms = toMs(value, name)
  if (!(ms >= 1) || ms === Infinity) throw new InvalidOptionsError(name, `expected a finite duration >= 1 ms, got ${String(value)}`)
  return ms
}

/** A finite duration >= 0. */
function finiteMs(value: unknown, name: string): number {
  const ms = toMs(value, name)
  if (ms === Infinity) throw new InvalidOptionsError(name, 'expected a finite duration >= 0')
  return ms
}

/** The node's region, checked here as the membership checks it (a refusal there would come after the cluster port is bound). */
function regionName(value: unknown): string {
  const region = optionalString(value, 'region') ?? 'default'
  if (!REGION_NAME.test(region)) throw new InvalidOptionsError('region', 'expected 1-64 characters of [A-Za-z0-9_.-]')
  return region
}

function optionalString(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value.length === 0) throw new InvalidOptionsError(name, 'expected a non-empty string')
  return value
}

/** The node id travels in a response header: printable ASCII only, at most 200 characters. */
function headerSafe(value: string | undefined, name: string): string | undefined {
  if (value !== undefined && !/^[\x21-\x7e]{1,200}$/.test(value)) throw new InvalidOptionsError(name, 'expected 1..200 printable ASCII characters without spaces')
  return value
}

function list(value: unknown, name: string): string[] {
  if (value === undefined) return []
  const items = typeof value === 'string' ? value.split(/[\s,]+/) : Array.isArray(value) ? (value as unknown[]) : undefined
  if (items === undefined || items.some((x) => typeof x !== 'string')) throw new InvalidOptionsError(name, 'expected a comma-separated string or an array of strings')
  return (items as string[]).map((x) => x.trim()).filter((x) => x !== '')
}

/** The default cluster port for an HTTP port: port + 10000, or 0 (a free one) when the port is 0 or that would pass 65535. */
export function defaultClusterPort(httpPort: number): number {
  return httpPort === 0 || httpPort + 10_000 > 65535 ? 0 : httpPort + 10_000
}

function resolveCluster(o: NodeOptions, host: string): ResolvedClusterOptions {
  const seeds = list(o.seeds, 'seeds')
  if (o.seeds !== undefined && seeds.length === 0) throw new InvalidOptionsError('seeds', 'expected at least one host:port (seeds given, naming no node)')
  const named = list(o.discovery, 'discovery')
  for (const k of named) if (!(DISCOVERY_KINDS as readonly string[]).includes(k)) throw new InvalidOptionsError('discovery', `unknown strategy ${JSON.stringify(k)}; expected ${DISCOVERY_KINDS.join(', ')}`)
  if (new Set(named).size !== named.length) throw new InvalidOptionsError('discovery', 'a strategy is named twice')
  const discovery = (named.length === 0 && seeds.length > 0 ? ['static'] : named) as DiscoveryKind[]
  if (discovery.includes('static') && seeds.length === 0) throw new InvalidOptionsError('seeds', 'the static discovery strategy needs seeds (host:port of other nodes)')
  if (!discovery.includes('static') && seeds.length > 0) throw new InvalidOptionsError('discovery', 'seeds are given but the static strategy is not in discovery')
  // A strategy's parameter without the strategy would do nothing (as seeds without static).
  for (const [option, kind] of STRATEGY_PARAMETERS) {
    if (o[option] !== undefined && !discovery.includes(kind)) throw new InvalidOptionsError(option, `${option} is given but the ${kind} strategy is not in discovery (${discovery.length === 0 ? 'none' : discovery.join(', ')})`)
  }
  const discoveryFile = optionalString(o.discoveryFile, 'discoveryFile')
  if (discovery.includes('file') && discoveryFile === undefined) throw new InvalidOptionsError('discoveryFile', 'the file discovery strategy needs discoveryFile')
  const discoveryDns = optionalString(o.discoveryDns, 'discoveryDns')
  if (discovery.includes('dns') && discoveryDns === undefined) throw new InvalidOptionsError('discoveryDns', 'the dns discovery strategy needs discoveryDns (a DNS name)')
  const clusterSecret = optionalString(o.clusterSecret, 'clusterSecret')
  const clusterPort = o.clusterPort === undefined ? undefined : int(o.clusterPort, 'clusterPort', 0, 65535)
  const enabled = discovery.length > 0 || clusterSecret !== undefined
  if (enabled && clusterSecret === undefined) {
    throw new InvalidOptionsError('clusterSecret', 'a node that clusters (seeds or discovery given) needs the cluster secret (--cluster-secret or STRATACACHE_CLUSTER_SECRET), the same on every node')
  }
  if (clusterSecret !== undefined && Buffer.byteLength(clusterSecret, 'utf8') < 16) throw new InvalidOptionsError('clusterSecret', 'expected at least 16 bytes')
  if (!enabled && clusterPort !== undefined) throw new InvalidOptionsError('clusterPort', 'a cluster port without clusterSecret: the node would not cluster')
  const advertiseClusterPort = o.advertiseClusterPort === undefined ? undefined : int(o.advertiseClusterPort, 'advertiseClusterPort', 1, 65535)
  if (!enabled && advertiseClusterPort !== undefined) throw new InvalidOptionsError('advertiseClusterPort', 'an advertised cluster port without clusterSecret: the node would not cluster')
  const clusterHost = optionalString(o.clusterHost, 'clusterHost') ?? host
  const advertiseHost = optionalString(o.advertiseHost, 'advertiseHost') ?? host
  // Told to other nodes and clients as host:port: an IP address or a DNS name, nothing a peer could not dial.
  if ((enabled || o.advertiseHost !== undefined) && isIP(advertiseHost) === 0 && !/^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]*)(\.[A-Za-z0-9_-]+)*\.?$/.test(advertiseHost)) throw new InvalidOptionsError(o.advertiseHost === undefined ? 'host' : 'advertiseHost', `advertised to other nodes and clients: expected an IP address or a DNS name (no scheme, port or brackets), got ${JSON.stringify(advertiseHost.slice(0, 80))}`)
  if (enabled && (advertiseHost === '0.0.0.0' || advertiseHost === '::')) throw new InvalidOptionsError('advertiseHost', `listening on ${advertiseHost}, the node needs advertiseHost: the address other nodes and clients reach it at`)
  const mdnsServiceType = optionalString(o.mdnsServiceType, 'mdnsServiceType') ?? 'stratacache'
  if (!MDNS_SERVICE_TYPE.test(mdnsServiceType)) throw new InvalidOptionsError('mdnsServiceType', `expected 1-15 characters of [a-z0-9-] starting with a letter or digit (a DNS-SD service name), got ${JSON.stringify(mdnsServiceType.slice(0, 40))}`)
  const phiThreshold = o.phiThreshold ?? 8
  if (typeof phiThreshold !== 'number' || !Number.isFinite(phiThreshold) || phiThreshold <= 0) throw new InvalidOptionsError('phiThreshold', 'expected a number > 0')
  return Object.freeze({
    enabled,
    seeds,
    discovery,
    discoveryEnv: optionalString(o.discoveryEnv, 'discoveryEnv') ?? 'STRATACACHE_SEEDS',
    discoveryFile,
    discoveryDns,
    discoveryDnsPort: o.discoveryDnsPort === undefined ? undefined : int(o.discoveryDnsPort, 'discoveryDnsPort', 1, 65535),
    mdnsServiceType,
    mdnsInterface: optionalString(o.mdnsInterface, 'mdnsInterface'),
    discoveryIntervalMs: positiveMs(o.discoveryInterval ?? '5s', 'discoveryInterval'),
    clusterPort,
    clusterHost,
    advertiseHost,
    advertiseClusterPort,
    clusterSecret,
    heartbeatIntervalMs: membershipMs(o.heartbeatInterval ?? '1s', 'heartbeatInterval'),
    phiThreshold,
    acceptablePauseMs: finiteMs(o.acceptablePause ?? '3s', 'acceptablePause'),
    minStdDeviationMs: positiveMs(o.minStdDeviation ?? '100ms', 'minStdDeviation'),
    indirectTimeoutMs: membershipMs(o.indirectTimeout ?? '500ms', 'indirectTimeout'),
    suspicionTimeoutMs: membershipMs(o.suspicionTimeout ?? '3s', 'suspicionTimeout'),
    pruneAfterMs: finiteMs(o.pruneAfter ?? '60s', 'pruneAfter'),
    leaveTimeoutMs: positiveMs(o.leaveTimeout ?? '500ms', 'leaveTimeout'),
  })
}

/** Validates `options` and fills in the defaults. */
/** The node's setting names: another is refused, not ignored (core/known-options.ts). */
const NODE_OPTIONS = optionNames<NodeOptions>({ host: true, port: true, dataDir: true, store: true, disk: true, memory: true, maxKeyBytes: true, maxValueBytes: true, maxBodyBytes: true, maxBatch: true, maxInFlight: true, rateLimit: true, rateBurst: true, maxConnectionsPerIp: true, maxConnections: true, maxUploadsPerIp: true, maxBufferedBodyBytes: true, bodyTimeout: true, minBodyRate: true, headersTimeout: true, requestTimeout: true, keepAliveTimeout: true, drainTimeout: true, storeTimeout: true, tombstoneTtl: true, authToken: true, tlsCert: true, tlsKey: true, logLevel: true, logRequests: true, logger: true, watchMetaInterval: true, watchBufferBytes: true, nodeId: true, region: true, clock: true, transport: true, replicator: true, seeds: true, discovery: true, discoveryEnv: true, discoveryFile: true, discoveryDns: true, discoveryDnsPort: true, mdnsServiceType: true, mdnsInterface: true, discoveryInterval: true, clusterPort: true, clusterHost: true, advertiseHost: true, advertiseClusterPort: true, clusterSecret: true, heartbeatInterval: true, phiThreshold: true, acceptablePause: true, minStdDeviation: true, indirectTimeout: true, suspicionTimeout: true, pruneAfter: true, leaveTimeout: true })

export function resolveNodeOptions(options: NodeOptions = {}): ResolvedNodeOptions {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object')
  rejectUnknown(options, NODE_OPTIONS, '')
  const o = options
  const host = optionalString(o.host, 'host') ?? DEFAULT_HOST
  const port = int(o.port ?? DEFAULT_PORT, 'port', 0, 65535)
  const dataDir = optionalString(o.dataDir, 'dataDir') ?? './stratacache-data'
  if (o.store !== undefined && typeof o.store !== 'string' && (o.store === null || typeof o.store.get !== 'function')) throw new InvalidOptionsError('store', 'expected a Store or a store URL')
  const rateLimit = o.rateLimit ?? 0
  if (typeof rateLimit !== 'number' || !Number.isFinite(rateLimit) || rateLimit < 0) throw new InvalidOptionsError('rateLimit', `expected a number >= 0, got ${String(rateLimit)}`)
  const rateBurst = int(o.rateBurst ?? Math.max(1, Math.ceil(rateLimit)), 'rateBurst', 1, 1_000_000_000)
  const authToken = optionalString(o.authToken, 'authToken')
  if (authToken !== undefined && !BEARER_TOKEN.test(authToken)) throw new InvalidOptionsError('authToken', 'expected printable ASCII, no space at either end (a token a client can send in a header)')
  const tlsCert = optionalString(o.tlsCert, 'tlsCert')
  const tlsKey = optionalString(o.tlsKey, 'tlsKey')
  if ((tlsCert === undefined) !== (tlsKey === undefined)) throw new InvalidOptionsError(tlsCert === undefined ? 'tlsCert' : 'tlsKey', 'TLS needs both tlsCert and tlsKey')
  const logLevel = o.logLevel ?? 'info'
  if (!LOG_LEVELS.includes(logLevel)) throw new InvalidOptionsError('logLevel', `expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`)
  if (o.logRequests !== undefined && typeof o.logRequests !== 'boolean') throw new InvalidOptionsError('logRequests', 'expected a boolean')
  if (o.logger !== undefined && (o.logger === null || typeof o.logger.info !== 'function' || typeof o.logger.error !== 'function')) throw new InvalidOptionsError('logger', 'expected an object with info, warn and error methods')
  const clock = o.clock ?? noTickerClock()
  if (typeof clock?.now !== 'function' || typeof clock.setTimeout !== 'function') throw new InvalidOptionsError('clock', 'expected a Clock')
  if (o.transport !== undefined && (o.transport === null || typeof o.transport.send !== 'function' || typeof o.transport.close !== 'function')) throw new InvalidOptionsError('transport', 'expected a MessageTransport')
  if (o.replicator !== undefined && (o.replicator === null || typeof o.replicator.onWrite !== 'function')) throw new InvalidOptionsError('replicator', 'expected a Replicator')
  const maxValueBytes = toBytes(o.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES, 'maxValueBytes')
  const maxBodyBytes = toBytes(o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES, 'maxBodyBytes')
  if (maxValueBytes > 1024 ** 3) throw new InvalidOptionsError('maxValueBytes', 'expected at most 1gb')
  if (maxBodyBytes > 2 * 1024 ** 3) throw new InvalidOptionsError('maxBodyBytes', 'expected at most 2gb')
  const largestBody = Math.max(maxBodyBytes, maxValueBytes)
  const maxBufferedBodyBytes = toBytes(o.maxBufferedBodyBytes ?? Math.max(256 * 1024 ** 2, largestBody), 'maxBufferedBodyBytes')
  // Lower, a body within its own limit could never be admitted and its client would retry forever.
  if (maxBufferedBodyBytes < largestBody) throw new InvalidOptionsError('maxBufferedBodyBytes', `expected at least maxBodyBytes and maxValueBytes (${largestBody} bytes), got ${maxBufferedBodyBytes}`)
  const minBodyRate = toBytes(o.minBodyRate ?? '64kb', 'minBodyRate')
  if (!(minBodyRate > 0)) throw new InvalidOptionsError('minBodyRate', 'expected at least 1 byte per second')
  return Object.freeze({
    host,
    port,
    dataDir,
    // storeTimeout checked (and named) before the etcd store sees it as its timeout.
    store: typeof o.store === 'string' ? storeFromUrl(o.store, positiveMs(o.storeTimeout ?? '5s', 'storeTimeout')) : o.store,
    diskBytes: toBytes(o.disk ?? '1gb', 'disk'),
    memoryBytes: toBytes(o.memory ?? '128mb', 'memory'),
    maxKeyBytes: int(o.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES, 'maxKeyBytes', 1, 65536),
    maxValueBytes,
    maxBodyBytes,
    maxBatch: int(o.maxBatch ?? DEFAULT_MAX_BATCH, 'maxBatch', 1, 100_000),
    maxInFlight: int(o.maxInFlight ?? 256, 'maxInFlight', 1, 1_000_000),
    rateLimit,
    rateBurst,
    maxConnectionsPerIp: int(o.maxConnectionsPerIp ?? 256, 'maxConnectionsPerIp', 1, 1_000_000),
    maxConnections: int(o.maxConnections ?? 4096, 'maxConnections', 1, 1_000_000),
    maxUploadsPerIp: int(o.maxUploadsPerIp ?? 32, 'maxUploadsPerIp', 1, 1_000_000),
    maxBufferedBodyBytes,
    bodyTimeoutMs: positiveMs(o.bodyTimeout ?? '5s', 'bodyTimeout'),
    minBodyRate,
    headersTimeoutMs: serverTimeoutMs(o.headersTimeout ?? '10s', 'headersTimeout'),
    requestTimeoutMs: serverTimeoutMs(o.requestTimeout ?? '30s', 'requestTimeout'),
    keepAliveTimeoutMs: serverTimeoutMs(o.keepAliveTimeout ?? '5s', 'keepAliveTimeout'),
    drainTimeoutMs: positiveMs(o.drainTimeout ?? '10s', 'drainTimeout'),
    storeTimeoutMs: positiveMs(o.storeTimeout ?? '5s', 'storeTimeout'),
    tombstoneTtlMs: positiveMs(o.tombstoneTtl ?? '24h', 'tombstoneTtl'),
    watchMetaIntervalMs: positiveMs(o.watchMetaInterval ?? '1s', 'watchMetaInterval'),
    watchBufferBytes: toBytes(o.watchBufferBytes ?? '1mb', 'watchBufferBytes'),
    authToken,
    tlsCert,
    tlsKey,
    logLevel,
    logRequests: o.logRequests ?? false,
    logger: o.logger,
    nodeId: headerSafe(optionalString(o.nodeId, 'nodeId'), 'nodeId'),
    region: regionName(o.region),
    clock,
    transport: o.transport,
    replicator: o.replicator,
    cluster: resolveCluster(o, host),
  })
}
