/**
 * The node's HTTP protocol, v1 (docs/PROTOCOL.md): names, defaults and the JSON shapes both
 * the node (`src/server/`) and its client (`src/client/`) speak. Types only and constants;
 * the validation of what arrives on the wire is in `validate.ts`.
 */
import type { ErrorCode } from '../core/errors.js'

/** Default listen address of a node. */
export const DEFAULT_HOST = '127.0.0.1'
export const DEFAULT_PORT = 7700
/** A region name (a node's `region`, the region of a client's read ladder): 1-64 of [A-Za-z0-9_.-]. */
export const REGION_NAME = /^[A-Za-z0-9_.-]{1,64}$/
/**
 * A bearer token both sides can use: printable ASCII, no space at either end. Anything else
 * cannot be sent in a header (control, non-ASCII) or is trimmed by the HTTP parser (edge
 * spaces), so no request would ever match.
 */
export const BEARER_TOKEN = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/
/** TTL of a PUT without `ttl`, in seconds. */
export const DEFAULT_TTL_SECONDS = 3600
/** Smallest and largest TTL accepted, in seconds (Zerocache's range). */
export const MIN_TTL_SECONDS = 1
export const MAX_TTL_SECONDS = 99_999_999
/** The `ttl` / `expiry` spelling of "no expiry". */
export const TTL_NONE = 'none'
/** Default limits (each configurable on the node). */
export const DEFAULT_MAX_KEY_BYTES = 1024
export const DEFAULT_MAX_VALUE_BYTES = 16 * 1024 * 1024
export const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
export const DEFAULT_MAX_BATCH = 1000
/** Most tags on one entry, and in one invalidation. */
export const MAX_TAGS = 64

/** Route prefix of the versioned API. */
export const API_PREFIX = '/v1'
/** Response header: remaining TTL in whole seconds (rounded up), or `none`. */
export const HEADER_TTL = 'x-ttl'
/** Response header: the entry's tags, comma-separated. */
export const HEADER_TAGS = 'x-tags'
/** Request header guarding `DELETE /v1/keys`; must equal `CONFIRM_CLEAR`. */
export const HEADER_CONFIRM = 'x-confirm'
export const CONFIRM_CLEAR = 'clear-all'
/** Response header naming the node that answered (`host:port`), for logs and routing. */
export const HEADER_NODE = 'x-stratacache-node'
/** Clustered node, on write answers: replicas known to hold the write (the receiving node included); on ERR_ACK_TIMEOUT, how many did. */
export const HEADER_REPLICAS = 'x-stratacache-replicas'
/** How long a clustered node waits for the replicas of a write at `?ack=region|all` before answering 504 ERR_ACK_TIMEOUT (the replication machine's defaultDeadlineMs). */
export const ACK_DEADLINE_MS = 2000
/** Clustered node: the session token — the node's clock on every answer; on a request, merged first (the request is versioned after it). */
export const HEADER_TOKEN = 'x-stratacache-token'
/** Clustered node, on a GET: the least version (ETag) the answer may carry; an older one answers ERR_STALE_READ (409, retryable). */
export const HEADER_MIN_VERSION = 'x-stratacache-min-version'

/** An error body. `code` is one of the library's stable codes (src/core/errors.ts). */
export interface WireError {
  readonly code: ErrorCode
  readonly message: string
}

/** HTTP status of each code a node answers with (docs/PROTOCOL.md, Errors). */
export const STATUS_OF_CODE: Readonly<Partial<Record<ErrorCode, number>>> = {
  ERR_BAD_REQUEST: 400,
  ERR_INVALID_KEY: 400,
  ERR_INVALID_OPTIONS: 400,
  ERR_INVALID_TAG: 400,
  ERR_INVALID_VALUE: 400,
  ERR_UNAUTHORIZED: 401,
  ERR_FORBIDDEN: 403,
  ERR_NOT_FOUND: 404,
  ERR_METHOD_NOT_ALLOWED: 405,
  ERR_PRECONDITION_FAILED: 412,
  ERR_STALE_READ: 409,
  ERR_TOO_LARGE: 413,
  ERR_VALUE_TOO_LARGE: 413,
  ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_RATE_LIMITED: 429,
  ERR_INTERNAL: 500,
  ERR_BUSY: 503,
  ERR_CLUSTER_PASSIVE: 503,
  ERR_CLOSED: 503,
  ERR_STORE_TIMEOUT: 503,
  ERR_STORE_UNAVAILABLE: 503,
  ERR_STORE_FULL: 507,
  ERR_ACK_TIMEOUT: 504,
}

/** `PUT /v1/keys/{key}` → 200. `ttl`: seconds, `null` for no expiry. */
export interface PutResult {
  readonly version: number
  readonly ttl: number | null
}

/** `DELETE /v1/keys/{key}` → 200. */
export interface DeleteResult {
  readonly deleted: boolean
}

/** `POST /v1/mget` body. */
export interface MgetRequest {
  readonly keys: readonly string[]
}

/** One entry of an mget answer; `ttl` is the remaining TTL in seconds (rounded up) or `null`. */
export interface WireEntry {
  readonly key: string
  /** The value bytes, base64. */
  readonly value: string
  readonly version: number
  readonly ttl: number | null
  readonly tags: readonly string[]
}

/** `POST /v1/mget` → 200: one item per requested key, in order, `null` where absent. */
export interface MgetResult {
  readonly entries: readonly (WireEntry | null)[]
}

/** One entry of an mset request. `ttl`: seconds, `null` or `'none'` for no expiry, absent for the default. */
export interface MsetEntry {
  readonly key: string
  /** The value bytes, base64. */
  readonly value: string
  readonly ttl?: number | null | 'none'
  readonly tags?: readonly string[]
}

/** `POST /v1/mset` body. */
export interface MsetRequest {
  readonly entries: readonly MsetEntry[]
}

/** `POST /v1/mset` → 200: the version of each written entry, in order. */
export interface MsetResult {
  readonly versions: readonly number[]
}

/** `POST /v1/invalidate` body. */
export interface InvalidateRequest {
  readonly tags: readonly string[]
  readonly mode?: 'hard' | 'soft'
}

/** `POST /v1/invalidate` → 200: the number of tags invalidated. */
export interface InvalidateResult {
  readonly invalidated: number
}

/** `DELETE /v1/keys` (with `X-Confirm: clear-all`) → 200. */
export interface ClearResult {
  readonly cleared: true
}

/** `GET /v1/stats` → 200. */
export interface NodeStats {
  readonly node: {
    readonly address: string
    readonly uptimeSeconds: number
    readonly ready: boolean
    readonly draining: boolean
    readonly inFlight: number
    /** Requests whose body is still arriving (they hold no in-flight slot). */
    readonly receiving: number
    /** Request body bytes held in memory (bound: the node's `maxBufferedBodyBytes`). */
    readonly bufferedBodyBytes: number
    readonly connections: number
    /** Dashboard event streams open (`GET /v1/dashboard/events`). */
    readonly dashboardStreams: number
  }
  readonly requests: {
    readonly total: number
    readonly busy: number
    readonly rateLimited: number
    readonly unauthorized: number
    readonly clientErrors: number
    readonly serverErrors: number
    readonly connectionsRefused: number
  }
  readonly cache: {
    /** Entries the node holds in its store (with LMDB: on disk, so also after a restart; expired ones until swept). */
    readonly size: number
    readonly hits: number
    readonly misses: number
    readonly tagInvalidations: number
  }
  readonly store: string
}
