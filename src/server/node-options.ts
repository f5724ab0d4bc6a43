/**
 * `NodeOptions`: every setting of a node, with its default, validated once by
 * `resolveNodeOptions` (`ERR_INVALID_OPTIONS` naming the option). The CLI (`serve`) maps
 * flags, `STRATACACHE_*` variables and a config file onto these same names.
 */
import type { Clock } from '../core/clock.js'
import { toBytes, toMs, type ByteSize, type Duration } from '../core/duration.js'
import { InvalidOptionsError } from '../core/errors.js'
import { systemClock } from '../core/system-clock.js'
import { DEFAULT_HOST, DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_KEY_BYTES, DEFAULT_MAX_VALUE_BYTES, DEFAULT_PORT } from '../protocol/wire.js'
import type { Store } from '../store/types.js'
import type { LogLevel, NodeLogger } from './logger.js'
import type { MessageTransport } from '../cluster/transport.js'
import type { Replicator } from './replicator.js'

export interface NodeOptions {
  /** Interface to listen on. @default '127.0.0.1' */
  host?: string
  /** TCP port; 0 picks a free one. @default 7700 */
  port?: number
  /** Directory of the embedded on-disk store (created if missing). Ignored when `store` is given. @default './stratacache-data' */
  dataDir?: string
  /** A store to persist into instead of the embedded one (the node closes it on shutdown). @default the embedded LMDB store in `dataDir` */
  store?: Store
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
  /** Token-bucket burst per client IP. @default max(1, rateLimit) */
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
  /** Time source. @default systemClock */
  clock?: Clock
  /** How the node reaches peers (cluster kernel's MessageTransport); closed with the node. @default none (no peers) */
  transport?: MessageTransport
  /** Receives every acknowledged write (cluster seam). @default none */
  replicator?: Replicator
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

/** Validates `options` and fills in the defaults. */
export function resolveNodeOptions(options: NodeOptions = {}): ResolvedNodeOptions {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object')
  const o = options
  const host = optionalString(o.host, 'host') ?? DEFAULT_HOST
  const port = int(o.port ?? DEFAULT_PORT, 'port', 0, 65535)
  const dataDir = optionalString(o.dataDir, 'dataDir') ?? './stratacache-data'
  if (o.store !== undefined && (o.store === null || typeof o.store.get !== 'function')) throw new InvalidOptionsError('store', 'expected a Store')
  const rateLimit = o.rateLimit ?? 0
  if (typeof rateLimit !== 'number' || !Number.isFinite(rateLimit) || rateLimit < 0) throw new InvalidOptionsError('rateLimit', `expected a number >= 0, got ${String(rateLimit)}`)
  const rateBurst = int(o.rateBurst ?? Math.max(1, Math.ceil(rateLimit)), 'rateBurst', 1, 1_000_000_000)
  const authToken = optionalString(o.authToken, 'authToken')
  const tlsCert = optionalString(o.tlsCert, 'tlsCert')
  const tlsKey = optionalString(o.tlsKey, 'tlsKey')
  if ((tlsCert === undefined) !== (tlsKey === undefined)) throw new InvalidOptionsError(tlsCert === undefined ? 'tlsCert' : 'tlsKey', 'TLS needs both tlsCert and tlsKey')
  const logLevel = o.logLevel ?? 'info'
  if (!LOG_LEVELS.includes(logLevel)) throw new InvalidOptionsError('logLevel', `expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`)
  if (o.logRequests !== undefined && typeof o.logRequests !== 'boolean') throw new InvalidOptionsError('logRequests', 'expected a boolean')
  if (o.logger !== undefined && (o.logger === null || typeof o.logger.info !== 'function' || typeof o.logger.error !== 'function')) throw new InvalidOptionsError('logger', 'expected an object with info, warn and error methods')
  const clock = o.clock ?? systemClock
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
    store: o.store,
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
    headersTimeoutMs: positiveMs(o.headersTimeout ?? '10s', 'headersTimeout'),
    requestTimeoutMs: positiveMs(o.requestTimeout ?? '30s', 'requestTimeout'),
    keepAliveTimeoutMs: positiveMs(o.keepAliveTimeout ?? '5s', 'keepAliveTimeout'),
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
    region: optionalString(o.region, 'region') ?? 'default',
    clock,
    transport: o.transport,
    replicator: o.replicator,
  })
}
