/**
 * `createClient`: the client of one or more cache nodes over the HTTP protocol
 * (docs/PROTOCOL.md).
 *
 * Design note. Every call is one loop over attempts:
 *
 *   pick a node (round-robin, ejected nodes skipped: node-rotation.ts)
 *   → one request, raced against a per-attempt timer on the injected Clock
 *   → answer: 2xx/4xx are final; 503/429 are "busy": wait (Retry-After or backoff) and go
 *     again without spending a retry; 5xx, network errors and timeouts are failures: the
 *     node is charged (ejection) and the call retries on the next node after a jittered
 *     exponential backoff (retry-policy.ts), if the operation may be retried.
 *
 * Which failures may be retried is decided by what a repeat could do to the data:
 * - never sent (connection refused, DNS): always safe, nothing reached the node;
 * - ambiguous (timeout, reset, 5xx — the node may have applied it): retried only for
 *   idempotent operations. Reads are idempotent. `delete`, `invalidate` and `clear` are
 *   too: a repeat can only remove more, and a cache may forget. A `set` with a numeric
 *   `ifVersion` is idempotent (a repeat after the first landed fails the version check instead of
 *   writing twice). A plain `set` or `mset` is NOT by default: if the first attempt landed
 *   and another client wrote the key in between, a blind repeat would put the older value
 *   back over the newer one — a lie, not a forgetting. Callers who write each key from one
 *   place only can pass `idempotent: true`.
 * - busy (503/429): the node refused before doing anything: always safe.
 *
 * No call outlives `retry.maxElapsed`: each attempt's timeout is cut to the time left, and
 * a backoff or busy wait that would end past the deadline fails the call at once.
 */
import { BackoffPolicy, DEFAULT_BACKOFF } from '../core/backoff.js'
import type { Clock, TimerHandle } from '../core/clock.js'
import { toBytes, toMs, toMsOr, type ByteSize, type Duration } from '../core/duration.js'
import { optionNames, rejectUnknown } from '../core/known-options.js'
import {
  AckTimeoutError,
  BadRequestError,
  BadResponseError,
  BusyError,
  CacheError,
  ClosedError,
  ClusterPassiveError,
  InternalError,
  InvalidKeyError,
  InvalidOptionsError,
  InvalidTagError,
  InvalidValueError,
  MethodNotAllowedError,
  NodeUnreachableError,
  NotFoundError,
  ForbiddenError,
  UnsupportedMediaTypeError,
  PreconditionFailedError,
  RateLimitedError,
  RequestTimeoutError,
  StaleReadError,
  StoreFullError,
  StoreUnavailableError,
  TooLargeError,
  UnauthorizedError,
} from '../core/errors.js'
import { mathRandom, type Random } from '../core/random.js'
import { systemClock } from '../core/system-clock.js'
import { checkKey as checkWireKey, checkPrefix, parseEtag, parseTagsJson } from '../protocol/validate.js'
import { ACK_DEADLINE_MS, BEARER_TOKEN, CONFIRM_CLEAR, DEFAULT_MAX_BATCH, DEFAULT_PORT, DEFAULT_MAX_KEY_BYTES, HEADER_CONFIRM, HEADER_MIN_VERSION, HEADER_REPLICAS, HEADER_TAGS, HEADER_TTL, MAX_TTL_SECONDS, REGION_NAME, TTL_NONE } from '../protocol/wire.js'
import { NearCache, type NearCacheStats } from '../cache/near-cache.js'
import { WATCH_PARTITIONS, watchPartition, type WatchMessage } from '../protocol/watch.js'
import { NearCacheLink } from './near-cache-link.js'
import { NodeRotation, type NodeState } from './node-rotation.js'
import { flatTopology, isLoneView, parseClusterView, type Topology } from './topology.js'
import { parseRetryAfter, RetryPolicy } from './retry-policy.js'
import { isNotSent, type HttpRequest, type HttpResponse, type Transport } from './transport.js'
import { releaseOrigin, undiciTransport } from './undici-transport.js'
import { DEFAULT_SESSION_KEYS, Session } from './session.js'

/** Most keys in one page of `keys` (the node's `GET /v1/keys` bound). */
export const MAX_KEYS_LIMIT = 1000

/** Longest TTL a node takes, in whole seconds (the HTTP API's bound; for the CLI, which may not import the protocol). */
export { MAX_TTL_SECONDS }

/** The client's `keys` cursor: the node that answered the first page and that node's cursor. */
function encodeKeysCursor(node: string, cursor: string): string {
  return Buffer.from(JSON.stringify([node, cursor]), 'utf8').toString('base64url')
}

function decodeKeysCursor(cursor: unknown): { node: string; cursor: string } {
  let state: unknown
  try {
    state = typeof cursor === 'string' && cursor !== '' ? JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) : undefined
  } catch {
    state = undefined
  }
  if (!Array.isArray(state) || state.length !== 2 || typeof state[1] !== 'string' || state[1] === '') throw new InvalidOptionsError('cursor', 'not a cursor of a previous keys page (pass it back unchanged)')
  let node: string
  try {
    node = normalizeNode(state[0], 'cursor')
  } catch {
    throw new InvalidOptionsError('cursor', 'not a cursor of a previous keys page (pass it back unchanged)')
  }
  return { node, cursor: state[1] }
}

/** Most keys or entries in one mget/mset request; bigger batches are split. */
const MAX_BATCH = DEFAULT_MAX_BATCH

/** `tls` as documented, `{ ca, rejectUnauthorized }`: anything else reached the TLS connect and failed every call as unreachable. */
function checkTls(tls: unknown): void {
  if (tls === undefined) return
  if (tls === null || typeof tls !== 'object' || Array.isArray(tls)) throw new InvalidOptionsError('tls', 'expected an object { ca, rejectUnauthorized }')
  const { ca, rejectUnauthorized } = tls as Record<string, unknown>
  if (rejectUnauthorized !== undefined && typeof rejectUnauthorized !== 'boolean') throw new InvalidOptionsError('tls.rejectUnauthorized', `expected a boolean, got ${typeof rejectUnauthorized}`)
  const pem = (v: unknown): boolean => typeof v === 'string' || v instanceof Uint8Array
  if (ca !== undefined && !(pem(ca) || (Array.isArray(ca) && ca.every(pem)))) throw new InvalidOptionsError('tls.ca', 'expected a PEM string or Buffer, or an array of them')
}

/**
 * A key's miss: the node's 404, which says ERR_NOT_FOUND. A 404 without it comes from a web
 * server or proxy at the node's address (not the protocol: ERR_BAD_RESPONSE), not a miss.
 */
function isMiss(res: HttpResponse): boolean {
  return res.status === 404 && res.body.includes('"ERR_NOT_FOUND"')
}

/** `idempotent` turns retries of ambiguous failures on: only a boolean may (the string 'false' did). */
function checkIdempotent(idempotent: unknown): void {
  if (idempotent !== undefined && idempotent !== null && typeof idempotent !== 'boolean') throw new InvalidOptionsError('idempotent', `expected a boolean, got ${typeof idempotent}`)
}

/** Per-call options must be an object when given (as the library's calls require): `null` was a TypeError, a string no options. */
function checkCallOptions(options: unknown): void {
  if (options !== undefined && (options === null || typeof options !== 'object' || Array.isArray(options))) throw new InvalidOptionsError('options', 'expected an object')
  // Checked here too, not only when an attempt is made: a near-cache hit makes none, and took a bad one.
  const timeout = (options as { timeout?: unknown } | undefined)?.timeout
  if (timeout !== undefined) finiteMs(timeout, 0, 'timeout', 1)
}

export interface ClientRetryOptions {
  /**
   * Retries of a failed attempt (network error, timeout, 5xx) for operations that may be
   * retried. Busy answers (503/429) do not count.
   * @default 3
   */
  retries?: number
  /** First backoff delay. @default '100ms' */
  baseDelay?: Duration
  /** Longest backoff delay. @default '5s' */
  maxDelay?: Duration
  /** Relative jitter of every delay, in [0, 1). @default 0.25 */
  jitter?: number
  /**
   * Longest a call may take, all attempts, backoffs and busy waits included. A wait that
   * would end later fails the call at once (`ERR_SERVER_BUSY` or the last failure).
   * @default '10s'
   */
  maxElapsed?: Duration
}

export interface ClientEjectOptions {
  /** Consecutive failures that take a node out of rotation. @default 3 */
  after?: number
  /**
   * First probe of an ejected node after this long; doubles per failed probe, jittered like
   * `retry.jitter` (±25 % with `retry: false`). A node ejected again less than
   * `maxProbeInterval` after it came back goes on from its last delay. @default '1s'
   */
  probeInterval?: Duration
  /** Longest interval between probes. @default '30s' (or `probeInterval` if longer) */
  maxProbeInterval?: Duration
  /**
   * A read-ladder try abandoned by its own timeout (its full rung timeout, not one cut short by
   * the ladder's deadline) quarantines its node at once instead of counting as one of `after`.
   * Other failures, and timeouts outside the ladder (writes, `mget`, calls pinned to one node,
   * clients without `region`/`ladder`), count as one of `after`. `false`: timeouts count too.
   * @default true
   */
  onTimeout?: boolean
}

export interface ClientNearCacheOptions {
  /** Most entries held in the near cache. */
  maxEntries: number
  /** Longest an entry is kept (whatever the stream says). @default '30s' */
  ttl?: Duration
  /**
   * Repair by sequences (gaps drop partitions, a new source flushes, late and duplicate
   * messages are discarded). `false` trusts every message as it comes and nothing else:
   * only for showing what tracking buys. @default true
   */
  trackSequences?: boolean
  /** Test seam: a message for which it returns false is dropped as if lost. @default none */
  filter?: (message: WatchMessage) => boolean
}

/** One reading for a Prometheus registry (`registerReadings` of stratacache's metrics). */
export interface ClientReading {
  readonly name: string
  readonly help: string
  readonly type: 'counter' | 'gauge'
  read(): number
}

export interface ClientLadderOptions {
  /**
   * Timeout of each try of a read, in order: local node, next local node, a node of the
   * rank-1 region, a node of the rank-2 region (Zerocache's ladder). A list of any length.
   * @default ['500ms', '500ms', '750ms', '1s']
   */
  timeouts?: readonly Duration[]
  /** Longest a read may take, all tries and busy waits included. @default the sum of `timeouts` */
  deadline?: Duration
  /** How often the topology is read again from `GET /v1/cluster` (the bound on how stale it is). @default '5s' */
  topologyRefresh?: Duration
}

export interface ClientOptions {
  /** Node addresses: `'http://host:port'`, `'https://host:port'` or `'host:port'`. At least one. */
  nodes: readonly string[]
  /** Timeout of one attempt (per call overridable). @default '2s' */
  timeout?: Duration
  /** Retry policy; `false` makes a single attempt (a busy answer then fails at once). @default {} (the defaults below) */
  retry?: ClientRetryOptions | false
  /** Ejection of failing nodes and probing them back in. */
  eject?: ClientEjectOptions
  /** Bearer token sent with every request (nodes started with auth require it). @default none */
  token?: string
  /** Keep-alive sockets per node. @default 16 */
  connections?: number
  /** Idle keep-alive sockets close after this long. @default '4s' */
  keepAlive?: Duration
  /** Largest response accepted (`ERR_BAD_RESPONSE` above it). @default '64mb' */
  maxResponseBytes?: ByteSize
  /** TLS options for `https://` nodes. @default none */
  tls?: { ca?: string | Buffer | (string | Buffer)[]; rejectUnauthorized?: boolean }
  /** @default systemClock */
  clock?: Clock
  /** Jitter source. @default mathRandom */
  random?: Random
  /** Replaces the network (tests, custom stacks). @default undici pools */
  transport?: Transport
  /**
   * An in-process near cache of `get` and `mget` results, kept honest by the watched node's
   * invalidation stream (`GET /v1/watch`; docs/guide/cluster-client.md). @default none
   */
  nearCache?: ClientNearCacheOptions
  /**
   * The client's region. With `region` or `ladder`, reads go round-robin over the live
   * nodes of this region (from `GET /v1/cluster` of any node in `nodes`; a node answering
   * 404 makes `nodes` the topology) and fall back along the ladder. @default 'default'
   */
  region?: string
  /** The read ladder (see `ClientLadderOptions`); on when `region` or `ladder` is given. @default off */
  ladder?: ClientLadderOptions
  /**
   * Read-your-writes across the nodes of a cluster (session.ts): the highest
   * `x-stratacache-token` seen is sent on every request, and a `get` of a key this client
   * wrote sends that write's version as `x-stratacache-min-version`; a node that has not
   * caught up answers ERR_STALE_READ and the read moves to another node (then waits briefly
   * and tries again, within the call's budget). `false` turns it off; `{ maxKeys }` bounds how
   * many keys' versions are remembered (least recently written dropped). `{ monotonic: true }`
   * also remembers the version of every entry a `get` or `mget` read from a node (same map, same
   * bound), so a later `get` of the key never returns an older version (monotonic reads).
   * @default on, 10,000 keys, monotonic false
   */
  session?: boolean | { maxKeys?: number; monotonic?: boolean }
}

export interface ClientCallOptions {
  /** Timeout of each attempt of this call. @default the client's `timeout` */
  timeout?: Duration
}

export interface ClientSetOptions extends ClientCallOptions {
  /**
   * Time to live (ms or `'30s'`); rounded up to whole seconds on the wire, 1 s to
   * 99,999,999 s; `Infinity` for no expiry. @default the node's default (3600 s)
   */
  ttl?: Duration
  /** Dependency tags (`org:1:user:42`). @default none */
  tags?: readonly string[]
  /** Write only if the entry's current version is this one (`'*'`: only if it exists). @default none */
  ifVersion?: number | '*'
  /**
   * Replicas that must hold the write before the node answers (a clustered node; a lone node
   * meets every level): `one` (the receiving node), `region` (every live node of its
   * region), `all`. Sent as `?ack=`; not met in time: ERR_ACK_TIMEOUT. @default the node's ('one')
   */
  ack?: 'one' | 'region' | 'all'
  /**
   * Whether a write whose outcome is unknown (timeout, reset) may be repeated.
   * @default true with a numeric `ifVersion`, false otherwise (`'*'` included)
   */
  idempotent?: boolean
}

export interface ClientDeleteOptions extends ClientCallOptions {
  /** Delete only if the entry's current version is this one. @default none */
  ifVersion?: number | '*'
  /** As `ClientSetOptions.ack`. @default the node's ('one') */
  ack?: 'one' | 'region' | 'all'
}

export interface ClientMsetOptions extends ClientCallOptions {
  /** See `ClientSetOptions.idempotent`. @default false */
  idempotent?: boolean
  /**
   * As `ClientSetOptions.ack`, for every entry. Not met in time by some entry:
   * ERR_ACK_TIMEOUT (every entry is committed and converges). @default the node's ('one')
   */
  ack?: 'one' | 'region' | 'all'
}

export interface ClientInvalidateOptions extends ClientCallOptions {
  /** `hard`: entries under the tags are never served again; `soft`: they become stale. @default 'hard' */
  mode?: 'hard' | 'soft'
  /** As `ClientSetOptions.ack`, for the invalidation. @default the node's ('one') */
  ack?: 'one' | 'region' | 'all'
}

export interface ClientStatsOptions extends ClientCallOptions {
  /** Ask this node (one of `nodes`) instead of the next in rotation. @default next in rotation */
  node?: string
}

export interface ClientClearOptions extends ClientCallOptions {
  /**
   * Only keys starting with this prefix (`DELETE /v1/keys?prefix=`).
   * @default '' (everything)
   */
  prefix?: string
  /** As `ClientSetOptions.ack`, for the clear. @default the node's ('one') */
  ack?: 'one' | 'region' | 'all'
}

export interface ClientKeysOptions extends ClientCallOptions {
  /** Only keys starting with this. @default '' (every key) */
  prefix?: string
  /** The `cursor` of the previous page, unchanged; absent for the first page. @default none */
  cursor?: string
  /** Most keys in the page, 1..1000 (the node's bound). @default 100 */
  limit?: number
}

export interface ClientKeysPage {
  /** Live keys (in the node's store order: key order on memory and LMDB stores); may be fewer than `limit`, even none, while `cursor` is set. */
  readonly keys: readonly string[]
  /** Pass it back for the next page; `undefined` when the listing is done. Opaque. */
  readonly cursor: string | undefined
}

/** A value to write: bytes, or a string (written as UTF-8). */
export type ClientValue = Uint8Array | string

export interface ClientEntry {
  /** The value's bytes (a Buffer: `entry.value.toString()` for text). */
  readonly value: Buffer
  /** Version of the entry on the node; grows with every write of the key. */
  readonly version: number
  /** Remaining time to live in ms; `Infinity` for no expiry. Whole seconds on the wire. */
  readonly ttlMs: number
  readonly tags: readonly string[]
}

export interface ClientSetResult {
  readonly version: number
  /** The TTL the node applied, in ms; `Infinity` for no expiry. */
  readonly ttlMs: number
}

export interface ClientMsetEntry {
  readonly key: string
  readonly value: ClientValue
  readonly ttl?: Duration
  readonly tags?: readonly string[]
}

export interface ClientPingResult {
  readonly node: string
  readonly ok: boolean
  /** Round-trip time in ms (clock resolution). */
  readonly latencyMs: number
  readonly error?: CacheError
}

export interface Client {
  get(key: string, options?: ClientCallOptions): Promise<ClientEntry | undefined>
  set(key: string, value: ClientValue, options?: ClientSetOptions): Promise<ClientSetResult>
  /** True when the key existed. */
  delete(key: string, options?: ClientDeleteOptions): Promise<boolean>
  /** One result per key, in order; `undefined` where absent. */
  mget(keys: readonly string[], options?: ClientCallOptions): Promise<(ClientEntry | undefined)[]>
  /** The new version of every entry, in order. Batches over 1000 are split (each part atomic on its own at most). */
  mset(entries: readonly ClientMsetEntry[], options?: ClientMsetOptions): Promise<number[]>
  /** Invalidates every entry under the tags; resolves with the node's count. */
  invalidate(tags: readonly string[], options?: ClientInvalidateOptions): Promise<number>
  /** The node's statistics (`GET /v1/stats`). */
  stats(options?: ClientStatsOptions): Promise<Record<string, unknown>>
  /** Removes every entry (sends the `X-Confirm: clear-all` guard). */
  clear(options?: ClientClearOptions): Promise<void>
  /**
   * One page of the live keys under `prefix` (`GET /v1/keys`). The first page goes to a
   * node as reads do (the ladder with `region`); every next page goes to the node that
   * answered the first (the cursor names it), so a listing walks one node's keyspace.
   */
  keys(options?: ClientKeysOptions): Promise<ClientKeysPage>
  /** Every live key under `prefix`, page by page (`keys` following the cursor); `limit` is the page size. */
  keysAll(options?: Omit<ClientKeysOptions, 'cursor'>): AsyncIterableIterator<string>
  /** `GET /healthz` on every node, without retries. */
  ping(options?: ClientCallOptions): Promise<ClientPingResult[]>
  /** Rotation state of every node. */
  nodes(): NodeState[]
  /** What the read ladder knows of the cluster (the client's `nodes`, all local, until `/v1/cluster` answers). */
  topology(): Topology
  /** The near cache's counters; `undefined` without `nearCache`. */
  nearCacheStats(): NearCacheStats | undefined
  /** The near cache's counters as Prometheus readings (`stratacache_client_near_*`); empty without `nearCache`. */
  nearCacheReadings(): ClientReading[]
  /** Stops probes and closes sockets; calls in flight fail, later calls fail with `ERR_CLOSED`. */
  close(): Promise<void>
}

interface Resolved {
  readonly nodes: readonly string[]
  readonly timeoutMs: number
  readonly maxElapsedMs: number
  readonly busyWaits: boolean
  readonly token: string | undefined
}

/** The client's option names, held to their types: another is refused, not ignored (core/known-options.ts). */
const CLIENT_OPTIONS = optionNames<ClientOptions>({
  nodes: true, timeout: true, retry: true, eject: true, token: true, connections: true, keepAlive: true, maxResponseBytes: true,
  tls: true, clock: true, random: true, transport: true, nearCache: true, region: true, ladder: true, session: true,
})
const CLIENT_GROUPS: Record<string, readonly string[]> = {
  retry: optionNames<ClientRetryOptions>({ retries: true, baseDelay: true, maxDelay: true, jitter: true, maxElapsed: true }),
  eject: optionNames<ClientEjectOptions>({ after: true, probeInterval: true, maxProbeInterval: true, onTimeout: true }),
  nearCache: optionNames<ClientNearCacheOptions>({ maxEntries: true, ttl: true, trackSequences: true, filter: true }),
  ladder: optionNames<ClientLadderOptions>({ timeouts: true, deadline: true, topologyRefresh: true }),
  tls: optionNames<NonNullable<ClientOptions['tls']>>({ ca: true, rejectUnauthorized: true }),
  session: optionNames<Exclude<ClientOptions['session'], boolean | undefined>>({ maxKeys: true, monotonic: true }),
}

/** Refuses option names the client does not know, at the top and in each group given as an object. */
function checkClientOptionNames(options: ClientOptions): void {
  rejectUnknown(options, CLIENT_OPTIONS, '')
  for (const [group, known] of Object.entries(CLIENT_GROUPS)) {
    const value: unknown = (options as unknown as Record<string, unknown>)[group]
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) rejectUnknown(value, known, group)
  }
}

export function createClient(options: ClientOptions): Client {
  return new NodeClient(options)
}

/**
 * `http://host:port` from any accepted spelling of a node address: `host:port`, or a URL.
 * A bare host without a port is a node on its default port (7700, as `serve` listens); a URL
 * keeps its scheme's (`http://cache.example` is port 80, behind a proxy say).
 */
export function normalizeNode(address: unknown, option = 'nodes'): string {
  if (typeof address !== 'string' || address.trim() === '') throw new InvalidOptionsError(option, `expected a node address like 'http://127.0.0.1:7700', got ${JSON.stringify(address)}`)
  const bare = !/^[a-z][a-z0-9+.-]*:\/\//i.test(address)
  const text = bare ? `http://${address.trim()}` : address.trim()
  let url: URL
  try {
    url = new URL(text)
  } catch (err) {
    // An unparsable address may still hold credentials: everything before an '@' is not echoed.
    throw new InvalidOptionsError(option, `not a node address: ${JSON.stringify(address.replace(/^(.*:\/\/)?[^/]*@/, (_m, scheme: string | undefined) => `${scheme ?? ''}***@`))}`, { cause: err })
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidOptionsError(option, `nodes speak http or https, got ${url.protocol}`)
  // Credentials are refused (the node takes a bearer token) and never echoed: the error may be logged.
  if (url.username !== '' || url.password !== '') throw new InvalidOptionsError(option, `a node address takes no credentials (user:password@); give the node's token as the token option, got ${JSON.stringify(`${url.protocol}//***@${url.host}`)}`)
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') throw new InvalidOptionsError(option, `a node address is scheme://host:port only, got ${JSON.stringify(address)}`)
  // A bare host with no port at all (not ':80', which URL also reports as no port).
  if (bare && url.port === '' && !/:\d+$/.test(address.trim())) url.port = String(DEFAULT_PORT)
  return url.origin
}

function positiveInt(value: unknown, fallback: number, option: string, min = 1): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) throw new InvalidOptionsError(option, `expected an integer >= ${min}, got ${String(value)}`)
  return value
}

function finiteMs(value: unknown, fallback: number, option: string, min = 0): number {
  const ms = toMsOr(value, fallback, option)
  if (!Number.isFinite(ms) || ms < min) throw new InvalidOptionsError(option, `expected a finite duration >= ${min} ms, got ${String(value)}`)
  return ms
}

class NodeClient implements Client {
  readonly #r: Resolved
  readonly #clock: Clock
  readonly #policy: RetryPolicy
  readonly #rotation: NodeRotation
  readonly #transport: Transport
  readonly #sleeps = new Set<{ timer: TimerHandle; wake: () => void }>()
  readonly #near: NearCache<ClientEntry> | undefined
  readonly #link: NearCacheLink<ClientEntry> | undefined
  readonly #ladder: { readonly region: string; readonly timeoutsMs: readonly number[]; readonly deadlineMs: number; readonly refreshMs: number; readonly ejectOnTimeout: boolean } | undefined
  #topology: Topology
  readonly #cursor = new Map<readonly string[], number>()
  #topologyTimer: TimerHandle | undefined
  #closed = false
  readonly #session: Session | undefined

  constructor(options: ClientOptions) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object with `nodes`')
    checkClientOptionNames(options)
    if (!Array.isArray(options.nodes) || options.nodes.length === 0) throw new InvalidOptionsError('nodes', 'expected a non-empty array of node addresses')
    const nodes = [...new Set(options.nodes.map((n, i) => normalizeNode(n, `nodes[${i}]`)))]
    const timeoutMs = finiteMs(options.timeout, 2000, 'timeout', 1)
    const retry = options.retry === false ? false : (options.retry ?? {})
    if (retry !== false && (retry === null || typeof retry !== 'object')) throw new InvalidOptionsError('retry', 'expected an object or false')
    const retries = retry === false ? 0 : positiveInt(retry.retries, 3, 'retry.retries', 0)
    const baseDelay = retry === false ? 100 : finiteMs(retry.baseDelay, 100, 'retry.baseDelay', 1)
    const maxDelay = retry === false ? 5000 : finiteMs(retry.maxDelay, 5000, 'retry.maxDelay', 1)
    if (maxDelay < baseDelay) throw new InvalidOptionsError('retry.maxDelay', `must be >= retry.baseDelay (${baseDelay} ms)`)
    const jitter = retry === false ? 0 : (retry.jitter ?? 0.25)
    if (typeof jitter !== 'number' || !(jitter >= 0 && jitter < 1)) throw new InvalidOptionsError('retry.jitter', `expected a number in [0, 1), got ${String(jitter)}`)
    const maxElapsedMs = retry === false ? timeoutMs : finiteMs(retry.maxElapsed, 10_000, 'retry.maxElapsed', 1)
    const eject = options.eject ?? {}
    if (typeof eject !== 'object' || Array.isArray(eject)) throw new InvalidOptionsError('eject', 'expected an object { after, probeInterval, maxProbeInterval, onTimeout }')
    const ejectAfter = positiveInt(eject.after, 3, 'eject.after')
    const probeInterval = finiteMs(eject.probeInterval, 1000, 'eject.probeInterval', 1)
    const maxProbeInterval = finiteMs(eject.maxProbeInterval, Math.max(30_000, probeInterval), 'eject.maxProbeInterval', 1)
    if (maxProbeInterval < probeInterval) throw new InvalidOptionsError('eject.maxProbeInterval', 'must be >= eject.probeInterval')
    const ejectOnTimeout = eject.onTimeout ?? true
    if (typeof ejectOnTimeout !== 'boolean') throw new InvalidOptionsError('eject.onTimeout', `expected a boolean, got ${String(ejectOnTimeout)}`)
    if (options.token !== undefined && (typeof options.token !== 'string' || !BEARER_TOKEN.test(options.token))) throw new InvalidOptionsError('token', 'expected a non-empty string of printable ASCII, no space at either end')
    checkTls(options.tls)
    const connections = positiveInt(options.connections, 16, 'connections')
    const keepAliveMs = finiteMs(options.keepAlive, 4000, 'keepAlive', 1)
    const maxResponseBytes = options.maxResponseBytes === undefined ? 64 * 1024 * 1024 : toBytes(options.maxResponseBytes, 'maxResponseBytes')
    this.#clock = options.clock ?? systemClock
    const random = options.random ?? mathRandom
    this.#policy = new RetryPolicy({ retries, baseDelay, maxDelay, jitter }, random)
    this.#r = Object.freeze({ nodes, timeoutMs, maxElapsedMs, busyWaits: retry !== false, token: options.token })
    this.#transport = options.transport ?? undiciTransport({ connections, maxResponseBytes, keepAliveMs, tls: options.tls })
    // Probes back off like retries (the same jitter; ±25 % with retry: false) from probeInterval to maxProbeInterval.
    const probes = new BackoffPolicy({ initial: probeInterval, max: maxProbeInterval, jitter: retry === false ? DEFAULT_BACKOFF.jitter : jitter }, random, 'eject')
    this.#rotation = new NodeRotation(nodes, { ejectAfter, probes }, this.#clock, (node) => this.#probe(node))
    this.#topology = flatTopology(nodes)
    const session = options.session ?? true
    if (session !== false) {
      if (session !== true && (session === null || typeof session !== 'object')) throw new InvalidOptionsError('session', 'expected a boolean or { maxKeys, monotonic }')
      const monotonic = session === true ? false : (session.monotonic ?? false)
      if (typeof monotonic !== 'boolean') throw new InvalidOptionsError('session.monotonic', `expected a boolean, got ${String(monotonic)}`)
      this.#session = new Session(session === true ? DEFAULT_SESSION_KEYS : positiveInt(session.maxKeys, DEFAULT_SESSION_KEYS, 'session.maxKeys'), monotonic)
    }
    if (options.region !== undefined || options.ladder !== undefined) {
      // null is a bad value, not a default: it turned the ladder on where leaving the option out keeps it off.
      const region = options.region === undefined ? 'default' : options.region
      // The node's rule for a region name: another one matches no node, and every read would go to other regions.
      if (typeof region !== 'string' || !REGION_NAME.test(region)) throw new InvalidOptionsError('region', `expected a region name, 1-64 characters of [A-Za-z0-9_.-], got ${JSON.stringify(String(region).slice(0, 70))}`)
      const l = options.ladder === undefined ? {} : options.ladder
      if (l === null || typeof l !== 'object' || Array.isArray(l)) throw new InvalidOptionsError('ladder', 'expected an object')
      const given = l.timeouts ?? [500, 500, 750, 1000]
      if (!Array.isArray(given) || given.length === 0) throw new InvalidOptionsError('ladder.timeouts', 'expected a non-empty array of durations')
      // Array.from visits holes too (map skipped them: a NaN timeout).
      const timeoutsMs = Array.from(given, (t, i) => finiteMs(t, 0, `ladder.timeouts[${i}]`, 1))
      const deadlineMs = finiteMs(l.deadline, timeoutsMs.reduce((a, b) => a + b, 0), 'ladder.deadline', 1)
      const refreshMs = finiteMs(l.topologyRefresh, 5000, 'ladder.topologyRefresh', 1)
      this.#ladder = { region, timeoutsMs, deadlineMs, refreshMs, ejectOnTimeout }
      void this.#refreshTopology()
    }
    if (options.nearCache !== undefined) {
      const nc = options.nearCache
      if (nc === null || typeof nc !== 'object' || Array.isArray(nc)) throw new InvalidOptionsError('nearCache', 'expected { maxEntries, ttl? }')
      if (nc.maxEntries === undefined) throw new InvalidOptionsError('nearCache.maxEntries', 'required: the most entries the near cache holds')
      const maxEntries = positiveInt(nc.maxEntries, 0, 'nearCache.maxEntries')
      const ttlMs = toMsOr(nc.ttl, 30_000, 'nearCache.ttl')
      if (!(ttlMs > 0)) throw new InvalidOptionsError('nearCache.ttl', 'expected a duration > 0')
      if (nc.filter !== undefined && typeof nc.filter !== 'function') throw new InvalidOptionsError('nearCache.filter', 'expected a function')
      if (this.#transport.stream === undefined) throw new InvalidOptionsError('nearCache', 'the transport cannot stream (it has no `stream` method)')
      this.#near = new NearCache<ClientEntry>({ maxEntries, ttlMs, partitions: WATCH_PARTITIONS, partitionOf: watchPartition, clock: this.#clock, trackSequences: nc.trackSequences !== false })
      this.#link = new NearCacheLink({
        near: this.#near,
        transport: this.#transport,
        nodes,
        headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
        clock: this.#clock,
        backoff: new BackoffPolicy({ initial: Math.min(100, probeInterval), max: Math.max(1000, Math.min(maxProbeInterval, 5000)), jitter: DEFAULT_BACKOFF.jitter }, random, 'nearCache'),
        connectTimeoutMs: timeoutMs,
        filter: nc.filter,
      })
      this.#link.start()
    }
  }

  // ── operations ──────────────────────────────────────────────────────────────

  get(key: string, options?: ClientCallOptions): Promise<ClientEntry | undefined> {
    if (options !== undefined) {
      try {
        checkCallOptions(options)
      } catch (err) {
        return Promise.reject(err as Error)
      }
    }
    const near = this.#near
    if (near === undefined) return this.#get(key, options)
    // Only valid keys are ever cached, so a hit needs no key check (a miss gets it in #get);
    // after close() the near cache is empty and bypassed, so a closed client never hits.
    // A stream not heard from within its silence bound serves no hits (the staleness bound), even before its timer ran.
    const hit = this.#link!.heard ? near.get(key) : undefined
    if (hit !== undefined) return Promise.resolve(hit)
    return this.#nearMiss(near, key, options)
  }

  /**
   * A near-cache miss: claim the key, read it from the watched node (what the near cache
   * hears about), cache it unless an invalidation raced the read. If the watched node
   * cannot answer, the read goes the usual way and caches nothing.
   */
  async #nearMiss(near: NearCache<ClientEntry>, key: string, options: ClientCallOptions | undefined): Promise<ClientEntry | undefined> {
    checkKey(key)
    this.#checkOpen()
    const watched = this.#fillNode()
    const r = watched === undefined ? undefined : near.reserve(key)
    if (r === undefined) return this.#get(key, options)
    let entry: ClientEntry | undefined
    try {
      entry = await this.#get(key, options, watched, true)
    } catch (err) {
      near.publish(r, undefined)
      // ERR_STALE_READ: the watched node has not caught up with this session; another node may have (the usual path moves on at once).
      if ((isNodeAnswer(err) && !(err instanceof StaleReadError)) || err instanceof ClosedError) throw err
      return this.#get(key, options)
    }
    if (entry === undefined) near.publish(r, undefined)
    else near.publish(r, entry, entry.tags, nearTtlMs(entry))
    return entry
  }

  /**
   * Where a near-cache miss is read and filled from: the watched node, unless the rotation has
   * quarantined it (its stream can be live while its reads hang or fail: each fill would cost a
   * timeout, forever). Then the read goes the usual way and fills nothing.
   */
  #fillNode(): string | undefined {
    const watched = this.#link?.watched
    return watched !== undefined && this.#rotation.inRotation(watched) ? watched : undefined
  }

  /** `once`: a fill pinned to the watched node makes one attempt; a failure goes the usual way (the caller's fallback). */
  async #get(key: string, options: ClientCallOptions | undefined, pin?: string, once = false): Promise<ClientEntry | undefined> {
    checkKey(key)
    const parse = (res: HttpResponse, node: string): ClientEntry | undefined => {
      if (isMiss(res)) return undefined
      // A node holding nothing for the key, not even a tombstone: it expired or was evicted
      // (or the write has not reached any node asked yet); waiting could last forever.
      if (classify(res) === 'stale') {
        this.#session?.forget(key)
        return undefined
      }
      if (res.status !== 200) throw errorFromResponse(res, node, 'GET')
      const entry = entryFromHeaders(res, node)
      if (this.#session?.monotonic === true) this.#session.read(key, entry.version, this.#clock.now() + entry.ttlMs)
      return entry
    }
    const need = this.#session?.minVersion(key, this.#clock.now())
    const headers: Record<string, string> = need === undefined ? {} : { [HEADER_MIN_VERSION]: String(need) }
    const stale = need === undefined ? undefined : key
    if (pin === undefined && this.#ladder !== undefined) return this.#climb({ method: 'GET', path: keyPath(key), headers }, parse, stale, options)
    return this.#call({ method: 'GET', path: keyPath(key), headers }, true, options, parse, pin, stale, once)
  }

  /** The current topology (what the ladder reads from). */
  topology(): Topology {
    return this.#topology
  }

  // ── the ladder ──────────────────────────────────────────────────────────────

  /**
   * One idempotent read along the ladder: try i goes to the i-th node of `#plan()` with the
   * i-th timeout; an abandoned try is aborted (its signal) and quarantines its node at once
   * (`eject.onTimeout`); another failure charges its node (quarantine after `eject.after` in a
   * row); a quarantined node is re-probed in the background. The next try
   * starts at once. A busy answer waits (Retry-After or backoff) and repeats the try without
   * using a rung. Nothing outlives the ladder's deadline.
   */
  async #climb<T>(req: Omit<HttpRequest, 'signal' | 'headers'> & { headers?: Record<string, string> }, parse: (res: HttpResponse, node: string) => T, staleKey?: string, options?: ClientCallOptions): Promise<T> {
    this.#checkOpen()
    const ladder = this.#ladder!
    // A per-call timeout is the timeout of each try, instead of the rungs' (it was ignored, a bad one unchecked).
    const perTryMs = options?.timeout === undefined ? undefined : finiteMs(options.timeout, 0, 'timeout', 1)
    const clock = this.#clock
    const deadline = clock.now() + ladder.deadlineMs
    let plan = this.#plan(ladder.timeoutsMs.length)
    let last: CacheError | undefined
    let busy = 0
    let staleRounds = 0
    let stale: StaleReadError | undefined
    for (let i = 0; ; ) {
      if (i >= plan.length) {
        // A rung answered ERR_STALE_READ and none answered: the write is on its way; wait briefly and climb again.
        if (stale === undefined) break
        const wait = staleDelay(staleRounds++)
        if (clock.now() + wait >= deadline) break
        await this.#sleep(wait)
        this.#checkOpen()
        plan = this.#plan(ladder.timeoutsMs.length)
        stale = undefined
        i = 0
        continue
      }
      const node = plan[i]!
      const left = deadline - clock.now()
      if (left <= 0) break
      const timeoutMs = Math.min(perTryMs ?? ladder.timeoutsMs[i]!, left)
      const outcome = await this.#attempt(node, req, timeoutMs)
      this.#checkOpen()
      if (outcome.kind === 'response') {
        const kind = classify(outcome.res)
        if (kind === 'final' || (kind === 'stale' && (staleKey === undefined || staleError(outcome.res, staleKey).have === 0))) {
          this.#rotation.success(node)
          return parse(outcome.res, node)
        }
        if (kind === 'busy') {
          this.#rotation.success(node)
          const retryAfter = parseRetryAfter(outcome.res.headers['retry-after'])
          const wait = this.#policy.busyDelay(busy++, retryAfter)
          if (clock.now() + wait >= deadline) {
            last = outcome.res.status === 429 ? new RateLimitedError(retryAfter ?? 1, `Rate limited by ${node} within the ladder's deadline`) : new BusyError(retryAfter ?? 1, `Busy: ${node} answered ${outcome.res.status} ${busy} time(s) within the ladder's deadline`)
            break
          }
          await this.#sleep(wait)
          continue
        }
        if (kind === 'stale' && staleKey !== undefined) {
          // Healthy but behind: no charge against the node; the next rung may have caught up.
          this.#rotation.success(node)
          last = stale = staleError(outcome.res, staleKey)
          i++
          continue
        }
        last = errorFromResponse(outcome.res, node)
        this.#rotation.failure(node)
      } else if (outcome.kind === 'bad') {
        // An answer over the client's own maxResponseBytes: the node answered, and the next rung would answer the same.
        this.#rotation.success(node)
        throw outcome.err
      } else {
        last = this.#failure(node, outcome, timeoutMs)
        // A try that waited its whole rung timeout without an answer: the node accepts
        // connections and does not answer (SIGSTOP, a stuck event loop, a pause longer than
        // the rung). Quarantined at once, so it costs this one timeout, not `eject.after` of
        // them; the probe brings it back (decision 0314).
        if (outcome.kind === 'timeout' && ladder.ejectOnTimeout && timeoutMs >= ladder.timeoutsMs[i]!) this.#rotation.quarantine(node)
        else this.#rotation.failure(node)
      }
      i++
    }
    throw last ?? new RequestTimeoutError(ladder.deadlineMs, { node: plan[0] })
  }

  /**
   * The nodes of one read's tries: two local nodes (round-robin, quarantined ones skipped),
   * then one of each other region by rank, then any other live node, up to `n` tries.
   * With every candidate quarantined, trying beats failing: they are tried anyway.
   */
  #plan(n: number): string[] {
    const t = this.#topology
    const out: string[] = []
    // Round-robin: each read starts one node further along its list (quarantined ones skipped).
    const take = (list: readonly string[], count: number): void => {
      if (list.length === 0) return
      const start = this.#cursor.get(list) ?? 0
      let first = true
      for (let k = 0; k < list.length && count > 0 && out.length < n; k++) {
        const node = list[(start + k) % list.length]!
        if (out.includes(node) || !this.#rotation.inRotation(node)) continue
        if (first) this.#cursor.set(list, (start + k + 1) % list.length)
        first = false
        out.push(node)
        count--
      }
    }
    take(t.local, 2)
    for (const region of t.remote) take(region, 1)
    for (const node of [...t.local, ...t.remote.flat(), ...this.#r.nodes]) {
      if (out.length >= n) break
      if (!out.includes(node) && this.#rotation.inRotation(node)) out.push(node)
    }
    if (out.length === 0) {
      for (const node of [...t.local, ...t.remote.flat(), ...this.#r.nodes]) if (out.length < n && !out.includes(node)) out.push(node)
    }
    return out
  }

  /**
   * Takes a topology read from a cluster view of members. A node it no longer lists (dead or
   * left in that view: killed for good, or replaced under another address) leaves the
   * rotation and its pool is closed, so an ejected one is not probed for the client's life;
   * the configured nodes stay. Listed again, it comes back as a new node. (A lone view or a
   * 404 only flattens the ladder's topology and forgets no node: a node answering its lone
   * view may be one restarting or cut off, and the others may be the cluster.)
   */
  #setTopology(topology: Topology): void {
    this.#topology = topology
    const listed = new Set([...topology.local, ...topology.remote.flat(), ...this.#r.nodes])
    for (const s of this.#rotation.states()) {
      if (listed.has(s.node)) continue
      this.#rotation.remove(s.node)
      releaseOrigin(this.#transport, s.node)
    }
  }

  /** Reads the topology from the first node that answers `GET /v1/cluster`; again every `topologyRefresh`. */
  async #refreshTopology(): Promise<void> {
    const ladder = this.#ladder!
    const queue = [...new Set([...this.#topology.local, ...this.#topology.remote.flat(), ...this.#r.nodes])]
    const tried = new Set<string>()
    let foreign = false
    while (queue.length > 0) {
      const node = queue.shift()!
      if (tried.has(node)) continue
      tried.add(node)
      if (this.#closed) return
      if (!this.#rotation.inRotation(node)) continue
      const outcome = await this.#attempt(node, { method: 'GET', path: '/v1/cluster' }, ladder.timeoutsMs[0]!)
      if (outcome.kind !== 'response') continue
      if (outcome.res.status === 404) {
        this.#topology = flatTopology(this.#r.nodes)
        break
      }
      if (outcome.res.status !== 200) continue
      let view: unknown
      try {
        view = JSON.parse(outcome.res.body.toString('utf8'))
      } catch {
        continue
      }
      if (isLoneView(view)) {
        this.#topology = flatTopology(this.#r.nodes)
        break
      }
      // Members are listed as host:port: they speak the scheme of the node that answered (a TLS cluster is https throughout).
      const scheme = node.slice(0, node.indexOf('://') + 3)
      const topology = parseClusterView(view, ladder.region, (a) => normalizeNode(/^[a-z][a-z0-9+.-]*:\/\//i.test(a) ? a : scheme + a))
      if (topology === undefined) continue
      for (const n of [...topology.local, ...topology.remote.flat()]) this.#rotation.add(n)
      this.#cursor.clear()
      this.#setTopology(topology)
      if (foreign || (view as { region?: unknown }).region === ladder.region || topology.local.length === 0) break
      // A node of another region ranks the regions by its own distance to them (itself first):
      // ask a node of the client's region for its view now, not a topologyRefresh later.
      foreign = true
      queue.length = 0
      queue.push(...topology.local)
    }
    if (!this.#closed) this.#topologyTimer = this.#clock.setTimeout(() => void this.#refreshTopology(), ladder.refreshMs, { unref: true })
  }

  /**
   * A write at `ack: 'region' | 'all'` waits on the node up to its ack deadline (2 s) before
   * the node answers, ERR_ACK_TIMEOUT included: without a timeout of its own, its attempt
   * gets at least that plus a second (else the client gave up first, with an
   * ERR_REQUEST_TIMEOUT that hides the committed write and counts the node as failing).
   */
  #ackWait<T extends ClientCallOptions & { ack?: unknown }>(options: T): T {
    if (options.timeout !== undefined || (options.ack !== 'region' && options.ack !== 'all') || this.#r.timeoutMs >= ACK_DEADLINE_MS + 1000) return options
    return { ...options, timeout: ACK_DEADLINE_MS + 1000 }
  }

  async set(key: string, value: ClientValue, options: ClientSetOptions = {}): Promise<ClientSetResult> {
    checkCallOptions(options)
    checkIdempotent(options.idempotent)
    checkKey(key)
    const body = toBody(value)
    const query: string[] = []
    const ttl = ttlParam(options.ttl)
    if (ttl !== undefined) query.push(`ttl=${ttl}`)
    if (options.tags !== undefined) query.push(`tags=${encodeURIComponent(checkTags(options.tags).join(','))}`)
    if (options.ack !== undefined) query.push(`ack=${ackParam(options.ack)}`)
    options = this.#ackWait(options)
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' }
    if (options.ifVersion !== undefined) headers['if-match'] = ifMatch(options.ifVersion)
    // Only a numeric version protects a repeat: `'*'` would match the key again after the first landed.
    const idempotent = options.idempotent ?? typeof options.ifVersion === 'number'
    const path = keyPath(key) + (query.length === 0 ? '' : `?${query.join('&')}`)
    return this.#call({ method: 'PUT', path, headers, body }, idempotent, options, (res, node) => {
      this.#near?.forget(key)
      if (res.status !== 200) throw errorFromResponse(res, node, 'PUT')
      const json = parseJson(res, node)
      const result = { version: versionOf(json.version, node), ttlMs: ttlMsOf(json.ttl, node) }
      this.#session?.wrote(key, result.version, this.#clock.now() + result.ttlMs)
      return result
    })
  }

  async delete(key: string, options: ClientDeleteOptions = {}): Promise<boolean> {
    checkCallOptions(options)
    checkKey(key)
    const headers: Record<string, string> = {}
    if (options.ifVersion !== undefined) headers['if-match'] = ifMatch(options.ifVersion)
    const path = keyPath(key) + (options.ack === undefined ? '' : `?ack=${ackParam(options.ack)}`)
    options = this.#ackWait(options)
    return this.#call({ method: 'DELETE', path, headers }, true, options, (res, node) => {
      this.#near?.forget(key)
      // A delete answers no version: the session stops asking for the overwritten one (504 here: an ack timeout, committed).
      if (res.status < 500 || res.status === 504) this.#session?.forget(key)
      if (isMiss(res)) return false
      if (res.status !== 200) throw errorFromResponse(res, node, 'DELETE')
      const json = parseJson(res, node)
      if (typeof json.deleted !== 'boolean') throw new BadResponseError('DELETE answer without a boolean `deleted`', { node })
      return json.deleted
    })
  }

  async mget(keys: readonly string[], options?: ClientCallOptions): Promise<(ClientEntry | undefined)[]> {
    checkCallOptions(options)
    if (!Array.isArray(keys)) throw new InvalidKeyError('mget expects an array of keys')
    for (const k of keys) checkKey(k)
    if (keys.length === 0) return []
    const near = this.#near
    if (near !== undefined) return this.#nearMget(near, keys, options)
    return this.#mgetAll(keys, options)
  }

  async #mgetAll(keys: readonly string[], options: ClientCallOptions | undefined, pin?: string, once = false): Promise<(ClientEntry | undefined)[]> {
    const parts = await Promise.all(chunks(keys, MAX_BATCH).map((part) => this.#mgetPart(part, options, pin, once)))
    return parts.flat()
  }

  /**
   * `mget` with a near cache: hits answered locally; the other keys (each once) claimed as
   * `get` claims one, fetched in one call (per 1000 keys) from the watched node, and each
   * fetched entry filled under its own claim (so one an invalidation raced is not cached).
   * If the watched node cannot answer, the misses go the usual way and nothing is filled.
   */
  async #nearMget(near: NearCache<ClientEntry>, keys: readonly string[], options: ClientCallOptions | undefined): Promise<(ClientEntry | undefined)[]> {
    this.#checkOpen()
    const out: (ClientEntry | undefined)[] = new Array(keys.length)
    const missing = new Map<string, number[]>()
    const heard = this.#link!.heard
    keys.forEach((key, i) => {
      const at = missing.get(key)
      if (at !== undefined) {
        at.push(i)
        return
      }
      const hit = heard ? near.get(key) : undefined
      if (hit !== undefined) out[i] = hit
      else missing.set(key, [i])
    })
    if (missing.size === 0) return out
    const misses = [...missing.keys()]
    const watched = this.#fillNode()
    let fetched: (ClientEntry | undefined)[]
    if (watched === undefined) fetched = await this.#mgetAll(misses, options)
    else {
      const claims = misses.map((key) => near.reserve(key))
      try {
        fetched = await this.#mgetAll(misses, options, watched, true)
      } catch (err) {
        for (const r of claims) if (r !== undefined) near.publish(r, undefined)
        if (isNodeAnswer(err) || err instanceof ClosedError) throw err
        fetched = await this.#mgetAll(misses, options)
        claims.fill(undefined)
      }
      // mget sends no least version, so the watched node may answer a version older than this
      // session's own write of the key: returned as mget returns it, but never cached.
      const session = this.#session
      const now = this.#clock.now()
      claims.forEach((r, k) => {
        if (r === undefined) return
        const entry = fetched[k]
        const need = entry === undefined ? undefined : session?.minVersion(misses[k]!, now)
        if (entry === undefined || (need !== undefined && entry.version < need)) near.publish(r, undefined)
        else near.publish(r, entry, entry.tags, nearTtlMs(entry))
      })
    }
    misses.forEach((key, k) => {
      for (const i of missing.get(key)!) out[i] = fetched[k]
    })
    return out
  }

  #mgetPart(keys: readonly string[], options: ClientCallOptions | undefined, pin?: string, once = false): Promise<(ClientEntry | undefined)[]> {
    const body = jsonBody({ keys })
    return this.#call({ method: 'POST', path: '/v1/mget', headers: { 'content-type': 'application/json' }, body }, true, options, (res, node) => {
      if (res.status !== 200) throw errorFromResponse(res, node)
      const json = parseJson(res, node)
      const entries = json.entries
      if (!Array.isArray(entries) || entries.length !== keys.length) throw new BadResponseError(`mget answered ${Array.isArray(entries) ? entries.length : 'no'} entries for ${keys.length} keys`, { node })
      const out = entries.map((e: unknown) => entryFromJson(e, node))
      const session = this.#session
      if (session?.monotonic === true) {
        const now = this.#clock.now()
        out.forEach((e, i) => {
          if (e !== undefined) session.read(keys[i]!, e.version, now + e.ttlMs)
        })
      }
      return out
    }, pin, undefined, once)
  }

  async mset(entries: readonly ClientMsetEntry[], options: ClientMsetOptions = {}): Promise<number[]> {
    checkCallOptions(options)
    checkIdempotent(options.idempotent)
    if (!Array.isArray(entries)) throw new InvalidValueError('mset expects an array of { key, value, ttl?, tags? }')
    const wire = entries.map((e, i) => {
      if (e === null || typeof e !== 'object') throw new InvalidValueError(`mset entry ${i} is not an object`)
      checkKey(e.key)
      const out: { key: string; value: string; ttl?: number | null; tags?: string[] } = { key: e.key, value: Buffer.from(toBody(e.value)).toString('base64') }
      const ttl = ttlParam(e.ttl)
      if (ttl !== undefined) out.ttl = ttl === TTL_NONE ? null : Number(ttl)
      if (e.tags !== undefined) out.tags = checkTags(e.tags)
      return out
    })
    if (wire.length === 0) return []
    if (options.ack !== undefined) ackParam(options.ack)
    options = this.#ackWait(options)
    const parts = await Promise.all(chunks(wire, MAX_BATCH).map((part) => this.#msetPart(part, options)))
    return parts.flat()
  }

  #msetPart(entries: readonly { key: string }[], options: ClientMsetOptions): Promise<number[]> {
    const body = jsonBody({ entries })
    const path = '/v1/mset' + (options.ack === undefined ? '' : `?ack=${ackParam(options.ack)}`)
    return this.#call({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body }, options.idempotent ?? false, options, (res, node) => {
      for (const e of entries) this.#near?.forget(e.key)
      if (res.status !== 200) throw errorFromResponse(res, node)
      const json = parseJson(res, node)
      const versions = json.versions
      if (!Array.isArray(versions) || versions.length !== entries.length) throw new BadResponseError('mset answer does not carry one version per entry', { node })
      const out = versions.map((v: unknown) => versionOf(v, node))
      // The answer has no TTLs: an entry sent without one (the node's default) is not remembered.
      const now = this.#clock.now()
      entries.forEach((e, i) => {
        const ttl = (e as { ttl?: number | null }).ttl
        if (ttl !== undefined) this.#session?.wrote(e.key, out[i]!, ttl === null ? Infinity : now + ttl * 1000)
      })
      return out
    })
  }

  async invalidate(tags: readonly string[], options: ClientInvalidateOptions = {}): Promise<number> {
    checkCallOptions(options)
    const list = checkTags(tags)
    const mode = options.mode ?? 'hard'
    if (mode !== 'hard' && mode !== 'soft') throw new InvalidOptionsError('mode', `expected 'hard' or 'soft', got ${String(mode)}`)
    const ack = options.ack === undefined ? '' : `?ack=${ackParam(options.ack)}`
    if (list.length === 0) return 0
    const body = jsonBody({ tags: list, mode })
    options = this.#ackWait(options)
    return this.#call({ method: 'POST', path: `/v1/invalidate${ack}`, headers: { 'content-type': 'application/json' }, body }, true, options, (res, node) => {
      // The entries carrying the tags, and the claims whose fetched entry will carry one.
      this.#near?.forgetTags(list)
      // Which keys carried the tags is not known here: the session forgets every version.
      if (res.status === 200) this.#session?.forgetPrefix('')
      if (res.status !== 200) throw errorFromResponse(res, node)
      const n = parseJson(res, node).invalidated
      if (typeof n !== 'number' || !Number.isFinite(n)) throw new BadResponseError('invalidate answer without a numeric `invalidated`', { node })
      return n
    })
  }

  async stats(options: ClientStatsOptions = {}): Promise<Record<string, unknown>> {
    checkCallOptions(options)
    const pin = options.node === undefined ? undefined : normalizeNode(options.node, 'node')
    if (pin !== undefined && !this.#r.nodes.includes(pin)) throw new InvalidOptionsError('node', `${pin} is not one of the client's nodes`)
    return this.#call({ method: 'GET', path: '/v1/stats' }, true, options, (res, node) => {
      if (res.status !== 200) throw errorFromResponse(res, node)
      return parseJson(res, node)
    }, pin)
  }

  async clear(options: ClientClearOptions = {}): Promise<void> {
    checkCallOptions(options)
    const prefix = options.prefix ?? ''
    checkPrefix(prefix)
    const query: string[] = []
    if (prefix !== '') query.push(`prefix=${encodeURIComponent(prefix)}`)
    if (options.ack !== undefined) query.push(`ack=${ackParam(options.ack)}`)
    const path = query.length === 0 ? '/v1/keys' : `/v1/keys?${query.join('&')}`
    options = this.#ackWait(options)
    await this.#call({ method: 'DELETE', path, headers: { [HEADER_CONFIRM]: CONFIRM_CLEAR } }, true, options, (res, node) => {
      this.#near?.forgetAll()
      // A clear leaves no versions behind: asking for one would never be answered.
      if (res.status === 200) this.#session?.forgetPrefix(prefix)
      if (res.status !== 200) throw errorFromResponse(res, node)
    })
  }

  async keys(options: ClientKeysOptions = {}): Promise<ClientKeysPage> {
    checkCallOptions(options)
    const prefix = options.prefix ?? ''
    checkPrefix(prefix)
    const limit = options.limit ?? 100
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_KEYS_LIMIT) throw new InvalidOptionsError('limit', `expected an integer from 1 to ${MAX_KEYS_LIMIT}, got ${String(limit)}`)
    let pin: string | undefined
    const query = new URLSearchParams()
    if (prefix !== '') query.set('prefix', prefix)
    if (options.cursor !== undefined) {
      const c = decodeKeysCursor(options.cursor)
      // The cursor names a node: only one this client already talks to (it gets the token).
      const t = this.#topology
      if (![...this.#r.nodes, ...t.local, ...t.remote.flat()].includes(c.node)) throw new InvalidOptionsError('cursor', `names ${c.node}, not a node of this client (or no longer a live one): start the listing again`)
      pin = c.node
      query.set('cursor', c.cursor)
    }
    if (options.limit !== undefined) query.set('limit', String(limit))
    const q = query.toString()
    const path = q === '' ? '/v1/keys' : `/v1/keys?${q}`
    const parse = (res: HttpResponse, node: string): ClientKeysPage => {
      if (res.status !== 200) throw errorFromResponse(res, node, 'GET')
      const json = parseJson(res, node)
      const { keys, cursor } = json
      if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string') || keys.length > limit) throw new BadResponseError('keys answer without an array of at most limit keys', { node })
      if (cursor !== null && (typeof cursor !== 'string' || cursor === '')) throw new BadResponseError('keys answer with a cursor that is neither a string nor null', { node })
      return { keys: keys as string[], cursor: cursor === null ? undefined : encodeKeysCursor(node, cursor) }
    }
    if (pin === undefined && this.#ladder !== undefined) return this.#climb({ method: 'GET', path }, parse, undefined, options)
    return this.#call({ method: 'GET', path }, true, options, parse, pin)
  }

  async *keysAll(options: Omit<ClientKeysOptions, 'cursor'> = {}): AsyncIterableIterator<string> {
    checkCallOptions(options)
    let cursor: string | undefined
    do {
      const page = await this.keys({ ...options, cursor })
      yield* page.keys
      cursor = page.cursor
    } while (cursor !== undefined)
  }

  async ping(options: ClientCallOptions = {}): Promise<ClientPingResult[]> {
    checkCallOptions(options)
    this.#checkOpen()
    const timeoutMs = finiteMs(options.timeout, this.#r.timeoutMs, 'timeout', 1)
    return Promise.all(
      this.#r.nodes.map(async (node): Promise<ClientPingResult> => {
        const start = this.#clock.now()
        const outcome = await this.#attempt(node, { method: 'GET', path: '/healthz' }, timeoutMs)
        const latencyMs = this.#clock.now() - start
        if (outcome.kind !== 'response') return { node, ok: false, latencyMs, error: this.#failure(node, outcome, timeoutMs) }
        if (outcome.res.status === 200) return { node, ok: true, latencyMs }
        return { node, ok: false, latencyMs, error: errorFromResponse(outcome.res, node) }
      }),
    )
  }

  nodes(): NodeState[] {
    return this.#rotation.states()
  }

  nearCacheStats(): NearCacheStats | undefined {
    return this.#near?.stats()
  }

  nearCacheReadings(): ClientReading[] {
    const near = this.#near
    if (near === undefined) return []
    const r = (name: string, help: string, type: 'counter' | 'gauge', pick: (s: NearCacheStats) => number): ClientReading => ({ name, help, type, read: () => pick(near.stats()) })
    return [
      r('stratacache_client_near_hits_total', 'Reads answered by the near cache.', 'counter', (s) => s.hits),
      r('stratacache_client_near_misses_total', 'Reads the near cache could not answer while live.', 'counter', (s) => s.misses),
      r('stratacache_client_near_bypassed_total', 'Reads that skipped the near cache (no live invalidation stream).', 'counter', (s) => s.bypassed),
      r('stratacache_client_near_invalidations_total', 'Invalidation messages applied.', 'counter', (s) => s.invalidations),
      r('stratacache_client_near_gaps_total', 'Lost invalidation messages found (a partition or everything dropped).', 'counter', (s) => s.gaps),
      r('stratacache_client_near_flushes_total', 'Whole near-cache flushes (new node boot, lost global message).', 'counter', (s) => s.flushes),
      r('stratacache_client_near_discarded_total', 'Late or duplicate invalidation messages discarded.', 'counter', (s) => s.discarded),
      r('stratacache_client_near_bypass_seconds_total', 'Time spent without a live invalidation stream.', 'counter', (s) => s.bypassMs / 1000),
      r('stratacache_client_near_entries', 'Entries in the near cache.', 'gauge', (s) => s.size),
    ]
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#rotation.close()
    if (this.#topologyTimer !== undefined) this.#clock.clearTimeout(this.#topologyTimer)
    this.#near?.close()
    await this.#link?.close()
    for (const s of this.#sleeps) {
      this.#clock.clearTimeout(s.timer)
      s.wake()
    }
    this.#sleeps.clear()
    await this.#transport.close()
  }

  // ── the attempt loop ────────────────────────────────────────────────────────

  #checkOpen(): void {
    if (this.#closed) throw new ClosedError('The client is closed')
  }

  async #call<T>(
    req: Omit<HttpRequest, 'signal' | 'headers'> & { headers?: Record<string, string> },
    idempotent: boolean,
    options: ClientCallOptions | undefined,
    parse: (res: HttpResponse, node: string) => T,
    pin?: string,
    staleKey?: string,
    /** One attempt: a failure (network, timeout, 5xx) is thrown at once (a near-cache fill, which has a fallback). Busy and stale answers still wait. */
    once = false,
  ): Promise<T> {
    this.#checkOpen()
    const timeoutMs = options?.timeout === undefined ? this.#r.timeoutMs : finiteMs(options.timeout, this.#r.timeoutMs, 'timeout', 1)
    const clock = this.#clock
    const deadline = clock.now() + Math.max(this.#r.maxElapsedMs, timeoutMs)
    let retries = 0
    let busy = 0
    let stale = 0
    for (;;) {
      this.#checkOpen()
      const node = pin ?? this.#rotation.pick()
      const attemptMs = Math.min(timeoutMs, deadline - clock.now())
      const outcome = await this.#attempt(node, req, attemptMs)
      this.#checkOpen()
      let failure: CacheError
      let retriable: boolean
      if (outcome.kind === 'response') {
        const { res } = outcome
        const kind = classify(res)
        if (kind === 'busy') {
          this.#rotation.success(node)
          const retryAfter = parseRetryAfter(res.headers['retry-after'])
          const wait = this.#policy.busyDelay(busy++, retryAfter)
          if (!this.#r.busyWaits || clock.now() + wait >= deadline) {
            const why = `${node} answered ${res.status} ${busy} time(s); gave up within the call's ${this.#r.maxElapsedMs} ms budget`
            throw res.status === 429 ? new RateLimitedError(retryAfter ?? 1, `Rate limited: ${why}`) : new BusyError(retryAfter ?? 1, `Busy: ${why}`)
          }
          await this.#sleep(wait)
          continue
        }
        if (kind === 'stale' && staleKey !== undefined && staleError(res, staleKey).have > 0) {
          // Healthy but behind: the next node of the rotation at once, no retry spent; after
          // a round of stale nodes (or on a pinned one) a short wait, within the budget.
          this.#rotation.success(node)
          // A near-cache fill does not wait on its one node: the caller goes the usual way.
          if (once) throw staleError(res, staleKey)
          stale++
          const round = pin === undefined ? this.#r.nodes.length : 1
          if (stale % round === 0) {
            const wait = staleDelay(stale / round - 1)
            if (clock.now() + wait >= deadline) throw staleError(res, staleKey)
            await this.#sleep(wait)
          } else if (clock.now() >= deadline) throw staleError(res, staleKey)
          continue
        }
        if (kind === 'final' || kind === 'stale') {
          this.#rotation.success(node)
          return parse(res, node)
        }
        failure = errorFromResponse(res, node)
        // A 5xx may come after the node applied the request: ambiguous, as a timeout.
        retriable = idempotent
      } else if (outcome.kind === 'bad') {
        // An answer over the client's own maxResponseBytes: the node answered, and asking again gives the same.
        this.#rotation.success(node)
        throw outcome.err
      } else {
        failure = this.#failure(node, outcome, attemptMs)
        retriable = outcome.kind === 'network' && outcome.notSent ? true : idempotent
      }
      this.#rotation.failure(node)
      if (!retriable || once || retries >= this.#policy.retries) throw failure
      const wait = this.#policy.delay(retries++)
      if (clock.now() + wait >= deadline) throw failure
      await this.#sleep(wait)
    }
  }

  #failure(node: string, outcome: Exclude<Outcome, { kind: 'response' }>, timeoutMs: number): CacheError {
    if (outcome.kind === 'timeout') return new RequestTimeoutError(Math.round(timeoutMs), { node })
    if (outcome.kind === 'bad') return outcome.err
    const code = errorCode(outcome.err)
    return new NodeUnreachableError(`${node} unreachable${code === undefined ? '' : ` (${code})`}`, { node, cause: outcome.err })
  }

  async #attempt(node: string, req: Omit<HttpRequest, 'signal' | 'headers'> & { headers?: Record<string, string> }, timeoutMs: number): Promise<Outcome> {
    const controller = new AbortController()
    let timer: TimerHandle | undefined
    // Raced, not only aborted: a transport that ignored the signal still cannot hang the call.
    const timedOut = new Promise<Outcome>((resolve) => {
      timer = this.#clock.setTimeout(() => {
        controller.abort()
        resolve({ kind: 'timeout' })
      }, Math.max(0, timeoutMs))
    })
    const base = this.#session === undefined ? (req.headers ?? {}) : this.#session.headers(req.headers ?? {})
    const headers = this.#r.token === undefined ? base : { ...base, authorization: `Bearer ${this.#r.token}` }
    let request: Promise<HttpResponse>
    try {
      request = this.#transport.request(node, { ...req, headers, signal: controller.signal })
    } catch (err) {
      // A custom transport that throws instead of rejecting: the same outcome.
      request = Promise.reject(err)
    }
    const sent = request.then(
      (res): Outcome => {
        this.#session?.observe(res.headers)
        return { kind: 'response', res }
      },
      (err: unknown): Outcome => (err instanceof BadResponseError ? { kind: 'bad', err } : { kind: 'network', err, notSent: isNotSent(err) }),
    )
    try {
      return await Promise.race([sent, timedOut])
    } finally {
      if (timer !== undefined) this.#clock.clearTimeout(timer)
      // A node a topology read dropped while this call had it planned: the attempt opened a
      // pool for it again, which no later read would release (it is in no rotation).
      if (!this.#rotation.has(node)) releaseOrigin(this.#transport, node)
    }
  }

  async #probe(node: string): Promise<boolean> {
    if (this.#closed) return false
    const outcome = await this.#attempt(node, { method: 'GET', path: '/healthz' }, this.#r.timeoutMs)
    return outcome.kind === 'response' && outcome.res.status === 200
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        timer: this.#clock.setTimeout(() => {
          this.#sleeps.delete(entry)
          resolve()
        }, ms),
        wake: resolve,
      }
      this.#sleeps.add(entry)
    })
  }
}

/**
 * What an answer means for the attempt loop. `busy`: the node did nothing and said so
 * (429, or 503 with ERR_BUSY / ERR_CLOSED / no code); `failure`: a 5xx after which the
 * request may or may not have been applied (503 with a store code included); `final`:
 * everything else, handed to the operation's parser (2xx, 4xx, 507 store full).
 */
function classify(res: HttpResponse): 'busy' | 'failure' | 'final' | 'stale' {
  const status = res.status
  if (status === 429) return 'busy'
  if (status === 409 && remoteBody(res).code === 'ERR_STALE_READ') return 'stale'
  if (status === 503) {
    const { code } = remoteBody(res)
    // PASSIVE is a decision, not a load: nothing was written and a retry would be refused the same way.
    if (code === 'ERR_CLUSTER_PASSIVE') return 'final'
    return code === undefined || code === 'ERR_BUSY' || code === 'ERR_CLOSED' ? 'busy' : 'failure'
  }
  // An ack timeout is a committed write whose replication was slow: repeating it would write again, and the node is not failing.
  if (status === 504 && remoteBody(res).code === 'ERR_ACK_TIMEOUT') return 'final'
  if (status >= 500 && status !== 507) return 'failure'
  return 'final'
}

/** Waits between rounds of stale answers: 10, 20, 40 … ms, at most 200 ms (a replica catches up in milliseconds). */
function staleDelay(round: number): number {
  return Math.min(200, 10 * 2 ** Math.min(round, 5))
}

/** The ERR_STALE_READ a read gives up with, from the node's answer (`have`/`need` when it sent them). */
function staleError(res: HttpResponse, key: string): StaleReadError {
  let have = 0
  let need = 0
  try {
    const body = JSON.parse(res.body.toString('utf8')) as { have?: unknown; need?: unknown; message?: unknown }
    if (typeof body.have === 'number') have = body.have
    if (typeof body.need === 'number') need = body.need
    const m = typeof body.message === 'string' ? /version (\d+) of key .*older than the session's (\d+)/.exec(body.message) : null
    if (m !== null && have === 0 && need === 0) {
      have = Number(m[1])
      need = Number(m[2])
    }
  } catch {
    // An unparsable body: the codes alone.
  }
  const err = new StaleReadError(key, need, have)
  fromNode.add(err)
  return err
}

type Outcome =
  | { kind: 'response'; res: HttpResponse }
  | { kind: 'timeout' }
  | { kind: 'bad'; err: BadResponseError }
  | { kind: 'network'; err: unknown; notSent: boolean }

// ── wire helpers ──────────────────────────────────────────────────────────────

function checkKey(key: unknown): asserts key is string {
  checkWireKey(key, DEFAULT_MAX_KEY_BYTES)
}

function checkTags(tags: unknown): string[] {
  if (!Array.isArray(tags)) throw new InvalidOptionsError('tags', 'expected an array of tags')
  return parseTagsJson(tags)
}

function toBody(value: unknown): Uint8Array {
  if (typeof value === 'string') return Buffer.from(value, 'utf8')
  if (value instanceof Uint8Array) return value
  throw new InvalidValueError(`A node stores bytes: pass a Uint8Array or a string, got ${value === null ? 'null' : typeof value}`)
}

/** The `ttl` query value: whole seconds (rounded up), `none`, or undefined for the node's default. */
export function ttlParam(ttl: Duration | undefined): string | undefined {
  if (ttl === undefined) return undefined
  const ms = toMs(ttl, 'ttl')
  if (ms === Infinity) return TTL_NONE
  const seconds = Math.ceil(ms / 1000)
  if (ms <= 0 || seconds > MAX_TTL_SECONDS) throw new InvalidOptionsError('ttl', `expected 1 s to ${MAX_TTL_SECONDS} s or Infinity, got ${String(ttl)}`)
  return String(seconds)
}

function ifMatch(version: number | '*'): string {
  if (version === '*') return '*'
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) throw new InvalidOptionsError('ifVersion', `expected a positive integer version or '*', got ${String(version)}`)
  return `"${version}"`
}

/**
 * How long the near cache may keep a fetched entry. The node answers the remaining TTL in whole
 * seconds rounded up, so as little as `ttlMs - 1000` may be left: keeping it for `ttlMs` served
 * it up to 1 s after the node expired it (and an expiry sends no invalidation). An entry answered
 * with 1 s left is not cached.
 */
function nearTtlMs(entry: ClientEntry): number {
  return entry.ttlMs === Infinity ? Infinity : entry.ttlMs - 1000
}

const keyPath = (key: string): string => `/v1/keys/${encodeURIComponent(key)}`

/** An `ack` option, checked (ERR_INVALID_OPTIONS otherwise). */
function ackParam(ack: unknown): string {
  if (ack !== 'one' && ack !== 'region' && ack !== 'all') throw new InvalidOptionsError('ack', "expected 'one', 'region' or 'all'")
  return ack
}
const jsonBody = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(value), 'utf8')

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

function parseJson(res: HttpResponse, node: string): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(res.body.toString('utf8'))
  } catch (err) {
    throw new BadResponseError(`${node} answered ${res.status} with a body that is not JSON`, { node, cause: err })
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new BadResponseError(`${node} answered ${res.status} with JSON that is not an object`, { node })
  return value as Record<string, unknown>
}

function versionOf(v: unknown, node: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new BadResponseError(`${node} sent an invalid version ${JSON.stringify(v)}`, { node })
  return v
}

function ttlMsOf(ttl: unknown, node: string): number {
  if (ttl === null || ttl === TTL_NONE) return Infinity
  if (typeof ttl === 'number' && Number.isFinite(ttl) && ttl >= 0) return ttl * 1000
  if (typeof ttl === 'string' && /^\d+$/.test(ttl)) return Number(ttl) * 1000
  throw new BadResponseError(`${node} sent an invalid ttl ${JSON.stringify(ttl)}`, { node })
}

function entryFromHeaders(res: HttpResponse, node: string): ClientEntry {
  const etag = res.headers.etag
  const version = parseEtag(etag)
  if (version === undefined) throw new BadResponseError(`${node} sent no usable ETag (${JSON.stringify(etag)})`, { node })
  const tagHeader = res.headers[HEADER_TAGS]
  return {
    value: res.body,
    version,
    ttlMs: ttlMsOf(res.headers[HEADER_TTL]?.trim() ?? null, node),
    tags: tagHeader === undefined || tagHeader.trim() === '' ? [] : tagHeader.split(',').map((t) => t.trim()),
  }
}

function entryFromJson(e: unknown, node: string): ClientEntry | undefined {
  if (e === null) return undefined
  if (typeof e !== 'object') throw new BadResponseError('mget entry is neither null nor an object', { node })
  const r = e as Record<string, unknown>
  if (typeof r.value !== 'string') throw new BadResponseError('mget entry without a base64 value', { node })
  const tags = Array.isArray(r.tags) ? r.tags.filter((t): t is string => typeof t === 'string') : []
  return { value: Buffer.from(r.value, 'base64'), version: versionOf(r.version, node), ttlMs: ttlMsOf(r.ttl, node), tags }
}

function remoteBody(res: HttpResponse): { code: string | undefined; message: string | undefined } {
  try {
    const v = JSON.parse(res.body.toString('utf8')) as unknown
    if (v !== null && typeof v === 'object') {
      const { code, message } = v as Record<string, unknown>
      return { code: typeof code === 'string' ? code : undefined, message: typeof message === 'string' ? message : undefined }
    }
  } catch {
    // not JSON: fall through
  }
  return { code: undefined, message: undefined }
}

/** Errors rebuilt from a node's answer, as opposed to the same codes raised before sending. */
const fromNode = new WeakSet<CacheError>()

/** True when `err` was rebuilt from a node's error answer (it reached a node and was refused there). */
export function isNodeAnswer(err: unknown): boolean {
  return err instanceof CacheError && fromNode.has(err)
}

/** The typed error for a final non-2xx answer, rebuilt from the node's `{ code, message }`. */
export function errorFromResponse(res: HttpResponse, node: string, method = 'request'): CacheError {
  const err = rebuild(res, node, method)
  fromNode.add(err)
  return err
}

function rebuild(res: HttpResponse, node: string, method: string): CacheError {
  const { code, message } = remoteBody(res)
  const text = `${node}: ${message ?? `HTTP ${res.status}`}`
  const retryAfter = parseRetryAfter(res.headers['retry-after']) ?? 1
  switch (code) {
    case 'ERR_BAD_REQUEST':
      return new BadRequestError(text)
    case 'ERR_UNAUTHORIZED':
      return new UnauthorizedError(text)
    case 'ERR_NOT_FOUND':
      return new NotFoundError(text)
    case 'ERR_FORBIDDEN':
      return new ForbiddenError(text)
    case 'ERR_UNSUPPORTED_MEDIA_TYPE':
      return new UnsupportedMediaTypeError(text)
    case 'ERR_METHOD_NOT_ALLOWED':
      return new MethodNotAllowedError(method, (res.headers.allow ?? '').split(',').map((m) => m.trim()).filter((m) => m !== ''))
    case 'ERR_PRECONDITION_FAILED':
      return new PreconditionFailedError(text)
    case 'ERR_TOO_LARGE':
    case 'ERR_VALUE_TOO_LARGE':
      return new TooLargeError(text)
    case 'ERR_RATE_LIMITED':
      return new RateLimitedError(retryAfter, text)
    case 'ERR_BUSY':
      return new BusyError(retryAfter, text)
    case 'ERR_INTERNAL':
      return new InternalError(text)
    case 'ERR_CLUSTER_PASSIVE':
      return new ClusterPassiveError(text)
    case 'ERR_INVALID_KEY':
      return new InvalidKeyError(text)
    case 'ERR_INVALID_OPTIONS':
      return new InvalidOptionsError('request', text)
    case 'ERR_INVALID_TAG':
      return new InvalidTagError('(rejected by the node)', text)
    case 'ERR_INVALID_VALUE':
      return new InvalidValueError(text)
    case 'ERR_STORE_UNAVAILABLE':
    case 'ERR_STORE_TIMEOUT':
      return new StoreUnavailableError(`${text} (${code})`)
    case 'ERR_STORE_FULL':
      return new StoreFullError(text)
    case 'ERR_CLOSED':
      return new ClosedError(text)
    case 'ERR_ACK_TIMEOUT': {
      // The node's AckTimeoutError message carries level, applied and required; the replicas header the applied count alone.
      const m = /Ack level (\w+): (\d+) of (\d+) replicas/.exec(message ?? '')
      if (m !== null) return new AckTimeoutError(Number(m[2]), Number(m[3]), m[1]!)
      const applied = Number(res.headers[HEADER_REPLICAS])
      return new AckTimeoutError(Number.isSafeInteger(applied) ? applied : 0, 0, 'unknown')
    }
  }
  // No code we know (a proxy, or an older node): fall back on the status alone.
  switch (res.status) {
    case 401:
      return new UnauthorizedError(text)
    case 412:
      return new PreconditionFailedError(text)
    case 413:
      return new TooLargeError(text)
    case 429:
      return new RateLimitedError(retryAfter, text)
    case 503:
      return new BusyError(retryAfter, text)
  }
  return new BadResponseError(`${node} answered HTTP ${res.status}${code === undefined ? '' : ` with unknown code ${code}`}`, { node, status: res.status })
}

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e !== null && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string') return code
    e = (e as { cause?: unknown }).cause
  }
  return undefined
}
