/**
 * Every failure stratacache reports is a `CacheError` with a stable string `code`.
 *
 * Codes are the contract: they are never renamed or reused. Each code has exactly one
 * subclass, created from the table below, and a test pins that every code is exported
 * and documented in the error table of docs/reference/errors.md.
 */

/** The table of error codes and what each means. Add, never rename or reuse. */
export const ERROR_CODES = {
  ERR_INVALID_OPTIONS: 'An option passed to a constructor or call is invalid; the message names it.',
  ERR_INVALID_KEY: 'A key is not usable (wrong type, empty, or too long).',
  ERR_INVALID_VALUE: '`undefined` cannot be stored: it means "absent".',
  ERR_WAIT_TIMEOUT: '`waitFor` gave up before the key was stored.',
  ERR_ABORTED: 'The caller aborted the operation through its AbortSignal.',
  ERR_CLOSED: 'The cache was closed; no further operations are accepted.',
  ERR_INVALID_TAG: 'A dependency tag is malformed (empty segment, bad character, too long or too deep).',
  ERR_LEADER_FAILED: 'The single-flight leader computing this key failed; `cause` is its error.',
  ERR_FLIGHT_TIMEOUT: 'A follower waited longer than `flight.timeout` for the leader.',
  ERR_RECURSIVE_FLIGHT: 'A factory asked for its own key (directly or through a cycle); it would deadlock.',
  ERR_FACTORY_TIMEOUT: 'A factory ran past its hard timeout.',
  ERR_STORE_FULL: 'An L2 store has no room left (lmdbStore mapSize reached, Redis past maxmemory); the write was refused.',
  ERR_STORE_TIMEOUT: 'An L2 store operation ran past its timeout.',
  ERR_STORE_UNAVAILABLE: 'An L2 store failed or its circuit breaker is open; `cause` is the failure.',
  ERR_DATA_DIR_LOCKED: 'A data directory is held by another live process (an exclusive `lmdbStore`, such as a running node); it was not opened.',
  ERR_DECODE: 'A stored value could not be decoded (corrupt, truncated or an unknown wire-format version).',
  ERR_DECRYPT: 'A stored value failed authentication or decryption (tampered, wrong key, unknown key id or bound to another cache key).',
  ERR_VALUE_TOO_LARGE: 'An encoded value is larger than the configured limit.',
  ERR_LOCK_LOST: 'A distributed lock expired or was taken over while its holder still worked.',
  ERR_BUS_UNAVAILABLE: 'The invalidation bus could not reach its broker (publish or subscribe failed or timed out); `cause` is the failure.',
  ERR_FEED_UNAVAILABLE: 'A change feed could not reach its source (RabbitMQ, PostgreSQL) within its connect timeout; `cause` is the failure.',
  ERR_CLOCK_DRIFT: 'A remote hybrid-clock timestamp was further ahead of local time than maxDrift; it was refused, not adopted.',
  ERR_PEER_UNREACHABLE: 'A cluster transport could not deliver a message to a peer node (unknown, down or connection refused).',
  ERR_MISSING_DEPENDENCY: 'An adapter needs a package that is not installed (an optional peer dependency such as ioredis); the message names it and the install command.',
  ERR_PEER_AUTH: 'A cluster peer failed mutual authentication (wrong or no cluster secret, refused certificate, frame before authentication, handshake deadline); its connection was refused.',
  // Node HTTP API (docs/PROTOCOL.md): codes a node answers with, and a client raises.
  ERR_BAD_REQUEST: 'A request to a node is malformed (header, query parameter, JSON body or encoding).',
  ERR_UNAUTHORIZED: 'A node requires a bearer token and the request had none or a wrong one.',
  ERR_FORBIDDEN: 'A node refused a cross-site request: an Origin or Sec-Fetch-Site of another site, or (without a token) a Host that is not the node.',
  ERR_NOT_FOUND: 'A node has no live entry under the key, or the route does not exist.',
  ERR_METHOD_NOT_ALLOWED: 'The route exists on the node but not for this HTTP method.',
  ERR_PRECONDITION_FAILED: 'An If-Match version did not match the entry on the node; nothing was written.',
  ERR_UNSUPPORTED_MEDIA_TYPE: 'A JSON route of a node was sent a body whose Content-Type is not application/json.',
  ERR_TOO_LARGE: 'A key, value or request body sent to a node is over its size limit.',
  ERR_RATE_LIMITED: "The client's request rate on a node is over its token-bucket limit; retry after Retry-After.",
  ERR_BUSY: 'A node is saturated (concurrency bound) or draining for shutdown; retry after Retry-After.',
  ERR_INTERNAL: 'A node failed unexpectedly while serving the request (a bug; the node logged it).',
  ERR_CLUSTER_PASSIVE: 'The cluster is in the PASSIVE state: a node refuses writes (HTTP 503) and still serves reads.',
  ERR_ACK_TIMEOUT: 'A write was committed on the node but not applied by as many replicas as its ack level asks before its deadline; `applied` and `required` say how many.',
  ERR_STALE_READ: 'The node holds a version of the key older than the session token asks for (it has not caught up yet); retry, on it or another node.',
  // Client of the nodes (src/client/): failures no node reported, seen on the client side.
  ERR_REQUEST_TIMEOUT: 'A request to a node ran past its timeout, or the call ran out of its time budget.',
  ERR_NODE_UNREACHABLE: 'A node could not be reached or dropped the connection; `cause` is the network error.',
  ERR_BAD_RESPONSE: 'A node (or a proxy before it) answered something that is not the protocol.',
} as const

export type ErrorCode = keyof typeof ERROR_CODES

export interface CacheErrorOptions {
  cause?: unknown
}

/** Base class of every error stratacache throws or reports. */
export class CacheError extends Error {
  /** Stable machine-readable code, e.g. `ERR_WAIT_TIMEOUT`. */
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: CacheErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.name = new.target.name
  }
}

/** An option is invalid. Raised at construction (or at the call that took the option). */
export class InvalidOptionsError extends CacheError {
  /** The dotted path of the offending option, e.g. `memory.maxEntries`. */
  readonly option: string
  constructor(option: string, message: string, options?: CacheErrorOptions) {
    super('ERR_INVALID_OPTIONS', `Invalid option "${option}": ${message}`, options)
    this.option = option
  }
}

export class InvalidKeyError extends CacheError {
  constructor(message: string, options?: CacheErrorOptions) {
    super('ERR_INVALID_KEY', message, options)
  }
}

export class InvalidValueError extends CacheError {
  constructor(message: string, options?: CacheErrorOptions) {
    super('ERR_INVALID_VALUE', message, options)
  }
}

export class WaitTimeoutError extends CacheError {
  readonly key: unknown
  readonly timeoutMs: number
  constructor(key: unknown, timeoutMs: number) {
    super('ERR_WAIT_TIMEOUT', `Timed out after ${timeoutMs} ms waiting for key ${describeKey(key)}`)
    this.key = key
    this.timeoutMs = timeoutMs
  }
}

export class AbortedError extends CacheError {
  constructor(message: string, options?: CacheErrorOptions) {
    super('ERR_ABORTED', message, options)
  }
}

export class ClosedError extends CacheError {
  constructor(message = 'The cache is closed') {
    super('ERR_CLOSED', message)
  }
}

export class InvalidTagError extends CacheError {
  readonly tag: unknown
  constructor(tag: unknown, message: string) {
    super('ERR_INVALID_TAG', `Invalid tag ${describeKey(tag)}: ${message}`)
    this.tag = tag
  }
}

export class LeaderFailedError extends CacheError {
  readonly key: unknown
  constructor(key: unknown, cause: unknown) {
    super('ERR_LEADER_FAILED', `The leader computing key ${describeKey(key)} failed`, { cause })
    this.key = key
  }
}

export class FlightTimeoutError extends CacheError {
  readonly key: unknown
  readonly timeoutMs: number
  constructor(key: unknown, timeoutMs: number) {
    super('ERR_FLIGHT_TIMEOUT', `Waited ${timeoutMs} ms for the leader computing key ${describeKey(key)}`)
    this.key = key
    this.timeoutMs = timeoutMs
  }
}

export class RecursiveFlightError extends CacheError {
  readonly key: unknown
  /** The keys being computed in this async context, outermost first, ending with `key`. */
  readonly path: readonly unknown[]
  constructor(key: unknown, path: readonly unknown[]) {
    super('ERR_RECURSIVE_FLIGHT', `Factory for key ${describeKey(key)} depends on itself: ${path.map(describeKey).join(' -> ')}`)
    this.key = key
    this.path = path
  }
}

export class FactoryTimeoutError extends CacheError {
  readonly key: unknown
  readonly timeoutMs: number
  constructor(key: unknown, timeoutMs: number) {
    super('ERR_FACTORY_TIMEOUT', `Factory for key ${describeKey(key)} ran past its hard timeout of ${timeoutMs} ms`)
    this.key = key
    this.timeoutMs = timeoutMs
  }
}

export class StoreFullError extends CacheError {
  constructor(message: string, options?: CacheErrorOptions) {
    super('ERR_STORE_FULL', message, options)
  }
}

export class StoreTimeoutError extends CacheError {
  readonly operation: string
  readonly timeoutMs: number
  constructor(operation: string, timeoutMs: number, options?: CacheErrorOptions) {
    super('ERR_STORE_TIMEOUT', `Store operation ${operation} ran past its timeout of ${timeoutMs} ms`, options)
    this.operation = operation
    this.timeoutMs = timeoutMs
  }
}

export class StoreUnavailableError extends CacheError {
  constructor(message: string, options?: CacheErrorOptions) {
    super('ERR_STORE_UNAVAILABLE', message, options)
  }
}

export class DataDirLockedError extends CacheError {
  /** The directory. */
  readonly path: string
  /** The holder's pid. */
  readonly pid: number
  constructor(path: string, pid: number, message: string) {
    super('ERR_DATA_DIR_LOCKED', message)
    this.path = path
    this.pid = pid
  }
}

export class DecodeError extends CacheError {
  constructor(message: string, options?: CacheErrorOptions) {
    super('ERR_DECODE', message, options)
  }
}

export class DecryptError extends CacheError {
  constructor(message: string, options?: CacheErrorOptions) {
    super('ERR_DECRYPT', message, options)
  }
}

export class ValueTooLargeError extends CacheError {
  readonly size: number
  readonly limit: number
  constructor(size: number, limit: number, what = 'value') {
    super('ERR_VALUE_TOO_LARGE', `The encoded ${what} is ${size} bytes, over the limit of ${limit}`)
    this.size = size
    this.limit = limit
  }
}

export class LockLostError extends CacheError {
  readonly key: unknown
  constructor(key: unknown, message = 'lost its lease') {
    super('ERR_LOCK_LOST', `The lock on key ${describeKey(key)} ${message}`)
    this.key = key
  }
}

export class BusUnavailableError extends CacheError {
  constructor(message: string, options?: CacheErrorOptions) {
    super('ERR_BUS_UNAVAILABLE', message, options)
  }
}

export class FeedUnavailableError extends CacheError {
  constructor(message: string, options?: CacheErrorOptions) {
    super('ERR_FEED_UNAVAILABLE', message, options)
  }
}

// ---- Node HTTP API errors (docs/PROTOCOL.md) -------------------------------------------

/** Base of the errors a node answers with; `status` is the HTTP status it maps to. */
export class NodeRequestError extends CacheError {
  readonly status: number
  constructor(code: ErrorCode, status: number, message: string, options?: CacheErrorOptions) {
    super(code, message, options)
    this.status = status
  }
}

export class BadRequestError extends NodeRequestError {
  constructor(message: string, options?: CacheErrorOptions) {
    super('ERR_BAD_REQUEST', 400, message, options)
  }
}

export class UnauthorizedError extends NodeRequestError {
  constructor(message = 'A valid bearer token is required') {
    super('ERR_UNAUTHORIZED', 401, message)
  }
}

export class ForbiddenError extends NodeRequestError {
  constructor(message: string) {
    super('ERR_FORBIDDEN', 403, message)
  }
}

export class NotFoundError extends NodeRequestError {
  constructor(message: string) {
    super('ERR_NOT_FOUND', 404, message)
  }
}

export class MethodNotAllowedError extends NodeRequestError {
  /** The methods the route accepts (the `Allow` header). */
  readonly allow: readonly string[]
  constructor(method: string, allow: readonly string[]) {
    super('ERR_METHOD_NOT_ALLOWED', 405, `Method ${method.slice(0, 20)} not allowed here; allowed: ${allow.join(', ')}`)
    this.allow = allow
  }
}

export class PreconditionFailedError extends NodeRequestError {
  constructor(message: string) {
    super('ERR_PRECONDITION_FAILED', 412, message)
  }
}

export class UnsupportedMediaTypeError extends NodeRequestError {
  constructor(message: string) {
    super('ERR_UNSUPPORTED_MEDIA_TYPE', 415, message)
  }
}

export class TooLargeError extends NodeRequestError {
  constructor(message: string) {
    super('ERR_TOO_LARGE', 413, message)
  }
}

export class RateLimitedError extends NodeRequestError {
  /** Seconds after which a retry may succeed. */
  readonly retryAfter: number
  constructor(retryAfter: number, message = 'Request rate over the limit') {
    super('ERR_RATE_LIMITED', 429, message)
    this.retryAfter = retryAfter
  }
}

export class BusyError extends NodeRequestError {
  /** Seconds after which a retry may succeed. */
  readonly retryAfter: number
  constructor(retryAfter: number, message = 'The node is busy') {
    super('ERR_BUSY', 503, message)
    this.retryAfter = retryAfter
  }
}

/** A write sent to a node while the cluster state is `PASSIVE` (HTTP 503; reads are still served). */
export class ClusterPassiveError extends NodeRequestError {
  constructor(message = 'The cluster is PASSIVE: writes are refused, reads are served') {
    super('ERR_CLUSTER_PASSIVE', 503, message)
  }
}

export class InternalError extends NodeRequestError {
  constructor(message = 'Internal error', options?: CacheErrorOptions) {
    super('ERR_INTERNAL', 500, message, options)
  }
}

/**
 * A replicated write (cluster/replication) committed on the receiving node but not applied
 * by `required` replicas before its deadline (ack level `region` or `all`). The write is
 * not rolled back: it converges like any other. HTTP 504.
 */
export class AckTimeoutError extends NodeRequestError {
  /** Replicas (the receiving node included) known to hold the write at the deadline. */
  readonly applied: number
  /** Replicas the ack level asked for. */
  readonly required: number
  readonly level: string
  constructor(applied: number, required: number, level: string) {
    super('ERR_ACK_TIMEOUT', 504, `Ack level ${level}: ${applied} of ${required} replicas applied the write before its deadline (it is committed and will converge)`)
    this.applied = applied
    this.required = required
    this.level = level
  }
}

/**
 * A read carrying a session token (a version the client has seen for the key) reached a
 * node that holds only an older version: it has not caught up. Retryable. HTTP 409.
 */
export class StaleReadError extends NodeRequestError {
  /** The hlc the request asked for at least. */
  readonly need: number
  /** The hlc the node holds (0 for nothing). */
  readonly have: number
  readonly retryable = true
  constructor(key: string, need: number, have: number) {
    super('ERR_STALE_READ', 409, `The node holds version ${have} of key ${describeKey(key)}, older than the session's ${need}; retry`)
    this.need = need
    this.have = have
  }
}

/** A remote hybrid-clock timestamp too far ahead (core/hlc.ts): refused, never adopted. */
export class ClockDriftError extends CacheError {
  /** The timestamp refused. */
  readonly remote: number
  /** The latest timestamp that would have been accepted. */
  readonly limit: number
  constructor(remote: number, limit: number) {
    super('ERR_CLOCK_DRIFT', `Remote timestamp ${remote} is ahead of the drift limit ${limit} (maxDrift); refused`)
    this.remote = remote
    this.limit = limit
  }
}

/** A cluster transport (cluster/transport.ts) could not deliver to a peer. */
export class PeerUnreachableError extends CacheError {
  readonly peer: string
  constructor(peer: string, message: string, options?: CacheErrorOptions) {
    super('ERR_PEER_UNREACHABLE', message, options)
    this.peer = peer
  }
}

/** A cluster connection refused by mutual authentication (cluster/tcp-transport.ts). */
export class PeerAuthError extends CacheError {
  /** The node id the peer claimed or was expected to be, else its remote address. */
  readonly peer: string
  constructor(peer: string, message: string, options?: CacheErrorOptions) {
    super('ERR_PEER_AUTH', message, options)
    this.peer = peer
  }
}

/**
 * An adapter entry point (`stratacache/redis`, `/nats`, `/amqp`, `/postgres`, `/etcd`) was
 * imported, or an adapter used, without the package it drives: those packages are optional
 * peer dependencies, installed by the application that needs them.
 */
export class MissingDependencyError extends CacheError {
  /** The npm package to install, e.g. `ioredis`. */
  readonly packageName: string
  /** What needs it, e.g. `stratacache/redis`. */
  readonly neededBy: string
  constructor(packageName: string, neededBy: string, options?: CacheErrorOptions) {
    super('ERR_MISSING_DEPENDENCY', `${neededBy} needs the ${packageName} package, which is not installed: npm install ${packageName}`, options)
    this.packageName = packageName
    this.neededBy = neededBy
  }
}

// ---- Client of the nodes (src/client/) ------------------------------------------------

/** Options of the client's errors: the node (origin URL) concerned, when one is. */
export interface NodeErrorOptions extends CacheErrorOptions {
  node?: string
}

export class RequestTimeoutError extends CacheError {
  readonly node: string | undefined
  readonly timeoutMs: number
  constructor(timeoutMs: number, options?: NodeErrorOptions) {
    super('ERR_REQUEST_TIMEOUT', `Request${options?.node === undefined ? '' : ` to ${options.node}`} ran past its timeout of ${timeoutMs} ms`, options)
    this.node = options?.node
    this.timeoutMs = timeoutMs
  }
}

export class NodeUnreachableError extends CacheError {
  readonly node: string | undefined
  constructor(message: string, options?: NodeErrorOptions) {
    super('ERR_NODE_UNREACHABLE', message, options)
    this.node = options?.node
  }
}

export class BadResponseError extends CacheError {
  readonly node: string | undefined
  /** The HTTP status of the answer, when there was one. */
  readonly status: number | undefined
  constructor(message: string, options?: NodeErrorOptions & { status?: number }) {
    super('ERR_BAD_RESPONSE', message, options)
    this.node = options?.node
    this.status = options?.status
  }
}

/** Map from code to the class that carries it; a test checks the two stay in step. */
export const ERROR_CLASSES: { readonly [C in ErrorCode]: abstract new (...args: never[]) => CacheError } = {
  ERR_INVALID_OPTIONS: InvalidOptionsError,
  ERR_INVALID_KEY: InvalidKeyError,
  ERR_INVALID_VALUE: InvalidValueError,
  ERR_WAIT_TIMEOUT: WaitTimeoutError,
  ERR_ABORTED: AbortedError,
  ERR_CLOSED: ClosedError,
  ERR_INVALID_TAG: InvalidTagError,
  ERR_LEADER_FAILED: LeaderFailedError,
  ERR_FLIGHT_TIMEOUT: FlightTimeoutError,
  ERR_RECURSIVE_FLIGHT: RecursiveFlightError,
  ERR_FACTORY_TIMEOUT: FactoryTimeoutError,
  ERR_STORE_FULL: StoreFullError,
  ERR_STORE_TIMEOUT: StoreTimeoutError,
  ERR_STORE_UNAVAILABLE: StoreUnavailableError,
  ERR_DATA_DIR_LOCKED: DataDirLockedError,
  ERR_DECODE: DecodeError,
  ERR_DECRYPT: DecryptError,
  ERR_VALUE_TOO_LARGE: ValueTooLargeError,
  ERR_LOCK_LOST: LockLostError,
  ERR_BUS_UNAVAILABLE: BusUnavailableError,
  ERR_FEED_UNAVAILABLE: FeedUnavailableError,
  ERR_CLOCK_DRIFT: ClockDriftError,
  ERR_PEER_UNREACHABLE: PeerUnreachableError,
  ERR_MISSING_DEPENDENCY: MissingDependencyError,
  ERR_PEER_AUTH: PeerAuthError,
  ERR_BAD_REQUEST: BadRequestError,
  ERR_UNAUTHORIZED: UnauthorizedError,
  ERR_FORBIDDEN: ForbiddenError,
  ERR_NOT_FOUND: NotFoundError,
  ERR_METHOD_NOT_ALLOWED: MethodNotAllowedError,
  ERR_PRECONDITION_FAILED: PreconditionFailedError,
  ERR_UNSUPPORTED_MEDIA_TYPE: UnsupportedMediaTypeError,
  ERR_TOO_LARGE: TooLargeError,
  ERR_RATE_LIMITED: RateLimitedError,
  ERR_BUSY: BusyError,
  ERR_INTERNAL: InternalError,
  ERR_CLUSTER_PASSIVE: ClusterPassiveError,
  ERR_ACK_TIMEOUT: AckTimeoutError,
  ERR_STALE_READ: StaleReadError,
  ERR_REQUEST_TIMEOUT: RequestTimeoutError,
  ERR_NODE_UNREACHABLE: NodeUnreachableError,
  ERR_BAD_RESPONSE: BadResponseError,
}

/** True when `err` is a CacheError, optionally with the given code. */
export function isCacheError(err: unknown, code?: ErrorCode): err is CacheError {
  return err instanceof CacheError && (code === undefined || err.code === code)
}

/** A short, never-throwing description of a key or tag for error messages. */
export function describeKey(key: unknown): string {
  if (typeof key === 'string') return JSON.stringify(key.length > 80 ? `${key.slice(0, 77)}...` : key)
  if (typeof key === 'bigint') return `${key}n`
  if (typeof key === 'object' && key !== null) return Object.prototype.toString.call(key)
  return String(key)
}
