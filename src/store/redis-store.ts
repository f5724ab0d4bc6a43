/**
 * `redisStore`: the L2 `Store` on Redis (standalone, Sentinel or Cluster) through ioredis.
 *
 * Key mapping (cluster safety and exactness). A cache key K becomes
 *
 *   data key   prefix + '{' + tag(K) + '}'
 *   lock key   prefix + '{' + tag(K) + '}:lock'
 *   fence key  prefix + '{' + tag(K) + '}:fence'
 *
 * where tag(K) is K with `%`, `{`, `}` and every UTF-16 surrogate code unit escaped as
 * `%XX` / `%uXXXX` (one code unit at a time), and tag('') = '%' (Redis ignores an empty
 * `{}` hash tag, and a bare '%' is the escape of nothing else).
 * - The three keys of K hash to one slot: the tag is the text between the first `{` and the
 *   first `}`, and neither the prefix (validated) nor tag(K) (escaped) contains a brace.
 *   Every Lua script thus touches one slot, as Redis Cluster requires.
 * - Injective: the escaping is reversible, so distinct keys never share a Redis key; data
 *   keys end in `}` and lock/fence keys do not, so the kinds never collide either.
 * - Surrogates are escaped so that the Redis key (UTF-8) is exact for any JS string, lone
 *   surrogates included; per code unit so that tag(A + B) = tag(A) + tag(B), which lets
 *   `clear(p)` match exactly the data keys of keys starting with p: SCAN MATCH
 *   prefix + '{' + tag(p) + '*}' (glob characters escaped).
 *
 * Pipelining: clients we create set `enableAutoPipelining`, so concurrent callers share
 * round trips. Standalone batch calls are single commands (MGET, UNLINK, MULTI of SETs).
 * On Cluster, batches are per-key commands that auto-pipelining groups per node: keys of a
 * batch rarely share a slot (each key is its own hash tag), and MGET across slots is
 * refused. (ioredis's slot function lives in `cluster-key-slot`, not a dependency of ours.)
 *
 * Errors propagate: no retries and no breaker here (GuardedStore does both, above the
 * store); ioredis gets a small `maxRetriesPerRequest` so a dead server fails calls instead
 * of queueing them for long. The connections we create reconnect on the shared backoff
 * (core/backoff.ts, `reconnect`: 50 ms doubling to 2 s, ioredis's own bounds, ±25 %
 * jitter so that a fleet does not dial a restarted Redis in lockstep).
 */
import { createHash } from 'node:crypto'
import { Cluster, Redis, type ClusterOptions, type RedisOptions, type SentinelAddress } from 'ioredis'
import { backoffPolicy, type BackoffConfig, type BackoffPolicy, type ReconnectOptions } from '../core/backoff.js'
import { clockOption, type Clock, type TimerHandle } from '../core/clock.js'
import { toMs, type Duration } from '../core/duration.js'
import { AbortedError, CacheError, ClosedError, InvalidOptionsError, StoreFullError, StoreUnavailableError } from '../core/errors.js'
import { DISCONNECT_TIMEOUT_MS, quitRedis } from '../core/redis-quit.js'
import { checkRedisUrl } from '../core/redis-url.js'
import { optionNames, rejectUnknown } from '../core/known-options.js'
import { mathRandom, type Random, randomOption } from '../core/random.js'
import { systemClock } from '../core/system-clock.js'
import { SCRIPT_NAMES, SCRIPTS } from './redis-scripts.js'
import { checkScanOptions, decodeCursor, encodeCursor } from './scan-options.js'
import { checkStoreEntries, checkStoreKey, checkStoreList, checkStoreToken, checkStoreValue } from './store-input.js'
import type { LockGrant, ScanOptions, ScanPage, Store, StoreEntry, StoreLocks } from './types.js'

export interface RedisStoreOptions {
  /** `redis://[user:pass@]host:port[/db]` or `rediss://...`: we create (and close) the client. */
  url?: string
  /** A client you own: used as is (your options win) and never closed by the store. */
  client?: Redis | Cluster
  /** Sentinel addresses (with `name`): we create a Sentinel-managed client. */
  sentinels?: Partial<SentinelAddress>[]
  /** The Sentinel master group name (with `sentinels`). */
  name?: string
  /** Startup nodes of a Redis Cluster: we create a Cluster client. */
  cluster?: { nodes: readonly { host: string; port: number }[]; options?: ClusterOptions }
  /** Prepended to every Redis key and to the notification channel; no braces. @default 'sc:' */
  prefix?: string
  /** ioredis `commandTimeout`: a command without a reply by then rejects. @default none */
  commandTimeout?: Duration
  /** ioredis `maxRetriesPerRequest`. @default 1 */
  maxRetriesPerRequest?: number
  /** Extra ioredis options for the connections we create (ours: auto-pipelining, offline queue; a `retryStrategy` here replaces `reconnect`). */
  redisOptions?: RedisOptions
  /**
   * Reconnect delays of the connections we create (core/backoff.ts; with `cluster`, the
   * cluster's own reconnect): `initial` doubling per failed attempt up to `max`, each
   * jittered ±`jitter`. @default { initial: '50ms', max: '2s', jitter: 0.25 }
   */
  reconnect?: ReconnectOptions
  /** Source of the reconnect jitter. @default mathRandom */
  random?: Random
  /** How long a key's fencing state lives after its last lock use. @default '1d' */
  fenceRetention?: Duration
  /** SCAN COUNT hint of `clear`. @default 1000 */
  scanCount?: number
  /** Time source for waits. @default systemClock */
  clock?: Clock
  /** Connection errors of the clients we create (commands reject on their own). @default ignored */
  onError?: (error: Error) => void
}

/** The Redis keys of one cache key (see the mapping at the top of this file). */
export interface RedisKeys {
  readonly data: string
  readonly lock: string
  readonly fence: string
}

const ESCAPED = /[%{}\uD800-\uDFFF]/g
const GLOB = /[*?[\]\\]/g
/** Longest finite TTL sent to Redis (~4,460 years); longer ones would overflow its clock arithmetic. */
const MAX_PX = 2 ** 47
/** SCAN calls one `scan` page may make (a sparse prefix gives empty SCAN replies). */
const MAX_SCAN_ROUNDS = 16

/** A Redis scan cursor's state: master index, its SCAN cursor, keys left over, master-set digest. */
interface RedisScanState {
  n: number
  c: string
  r: string[]
  m: string
}

function isRedisScanState(state: unknown): state is RedisScanState {
  if (typeof state !== 'object' || state === null) return false
  const s = state as Partial<RedisScanState>
  return Number.isSafeInteger(s.n) && (s.n as number) >= 0 && typeof s.c === 'string' && /^\d+$/.test(s.c) && Array.isArray(s.r) && s.r.every((k) => typeof k === 'string') && typeof s.m === 'string'
}

/**
 * Redis past `maxmemory` (policy noeviction) answers writes with an OOM error, EXEC with
 * EXECABORT carrying it: a refusal, reported as ERR_STORE_FULL so the layer above neither
 * trips its breaker nor queues the write (reads and deletes still work).
 */
function refusedWhenFull(err: unknown): unknown {
  const previous = (err as { previousErrors?: unknown } | null)?.previousErrors
  const messages = [err, ...(Array.isArray(previous) ? previous : [])].map((e) => (e instanceof Error ? e.message : ''))
  if (!messages.some((m) => /^OOM\b|\bOOM command not allowed/.test(m))) return err
  return new StoreFullError(`redis is out of memory (maxmemory) and refused the write: ${messages.find((m) => m.includes('OOM')) ?? ''}`, { cause: err })
}

/** Where a client connects, for error messages: `host:port`, the Sentinel group, or the cluster's startup nodes. */
function describeClient(client: Redis | Cluster, options: RedisStoreOptions): string {
  if (client instanceof Cluster) {
    const nodes = options.cluster?.nodes ?? []
    return `cluster ${nodes.length === 0 ? '(your client)' : nodes.map((n) => `${n.host}:${n.port}`).join(',')}`
  }
  const o = client.options
  if (o.sentinels !== undefined && o.sentinels !== null && o.sentinels.length > 0) return `sentinel group ${String(o.name)} (${o.sentinels.map((n) => `${String(n.host)}:${String(n.port)}`).join(',')})`
  if (o.path !== undefined && o.path !== null && o.path !== '') return o.path
  return `${o.host ?? '127.0.0.1'}:${o.port ?? 6379}`
}

/** tag(K) of the mapping: reversible, brace-free, well-formed UTF-16, per code unit. */
export function keyTag(key: string): string {
  if (key === '') return '%'
  return key.replace(ESCAPED, (c) => {
    const code = c.charCodeAt(0)
    return code >= 0xd800 ? `%u${code.toString(16).toUpperCase()}` : `%${code.toString(16).toUpperCase()}`
  })
}

export function redisKeys(prefix: string, key: string): RedisKeys {
  const data = `${prefix}{${keyTag(key)}}`
  return { data, lock: `${data}:lock`, fence: `${data}:fence` }
}

const globEscape = (text: string): string => text.replace(GLOB, (c) => `\\${c}`)

/** A TTL or lease in whole ms for PX / PEXPIRE (rounded up: never shorter than asked). */
function px(ms: number, what: string): number {
  if (typeof ms !== 'number' || !(ms > 0) || !Number.isFinite(ms)) throw new InvalidOptionsError(what, `expected a finite number of ms > 0, got ${String(ms)}`)
  return Math.min(MAX_PX, Math.ceil(ms))
}

function ttlArgs(ttlMs: number): [] | ['PX', number] {
  return ttlMs === Infinity ? [] : ['PX', px(ttlMs, 'ttlMs')]
}

/** A plain copy: the parser's Buffer may be a view into a larger socket chunk. */
const copyOut = (buf: Buffer | null): Uint8Array | undefined => (buf === null ? undefined : new Uint8Array(buf))
/** A copy: the caller may reuse its buffer before auto-pipelining writes the command. */
const copyIn = (value: Uint8Array): Buffer => {
  checkStoreValue(value)
  return Buffer.from(value)
}

/** The commands `defineCommand` adds (typed here; ioredis adds them at run time). */
interface ScriptCommands {
  stratacacheAcquire(lock: string, fence: string, token: string, leaseMs: number, retentionMs: number): Promise<number | null>
  stratacacheExtend(lock: string, token: string, leaseMs: number): Promise<number>
  stratacacheRelease(lock: string, token: string, channel: string, message: string): Promise<number>
  stratacacheDrawFence(fence: string, retentionMs: number): Promise<number>
  stratacacheSetFenced(data: string, fence: string, value: Buffer, ttlMs: string, fenceNo: string, retentionMs: number, channel: string, message: string): Promise<number>
  stratacacheSetAbove(data: string, fence: string, value: Buffer, ttlMs: string, retentionMs: number, channel: string, message: string): Promise<number>
  stratacacheDeleteAbove(data: string, fence: string, retentionMs: number): Promise<number>
  stratacacheTouchPersist(data: string): Promise<number>
  stratacacheLockState(lock: string, fence: string): Promise<[held: number, token: string, hwm: string, pttl: number]>
}

interface Waiter {
  wake(): void
}


/** redisStore's option names: another is refused, not ignored (core/known-options.ts). */
const REDIS_OPTIONS = optionNames<RedisStoreOptions>({
  url: true, client: true, sentinels: true, name: true, cluster: true, prefix: true, commandTimeout: true, maxRetriesPerRequest: true,
  redisOptions: true, reconnect: true, random: true, fenceRetention: true, scanCount: true, clock: true, onError: true,
})

function validate(options: RedisStoreOptions): void {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionsError('redis', 'expected an options object')
  rejectUnknown(options, REDIS_OPTIONS, 'redis')
  const given = (['url', 'client', 'cluster', 'sentinels'] as const).filter((k) => options[k] !== undefined)
  if (given.length !== 1) {
    const option = given.length === 0 ? 'redis.url' : `redis.${given[1]}`
    throw new InvalidOptionsError(option, `expected exactly one of url, client, cluster or sentinels, got ${given.length === 0 ? 'none' : given.join(' and ')}`)
  }
  if (options.url !== undefined) checkRedisUrl(options.url, 'redis.url')
  if (options.client !== undefined) {
    if (!(options.client instanceof Redis) && !(options.client instanceof Cluster)) throw new InvalidOptionsError('redis.client', 'expected an ioredis Redis or Cluster instance')
    const c = options.client
    const keyPrefix = c.options.keyPrefix ?? (c instanceof Cluster ? c.options.redisOptions?.keyPrefix : undefined)
    // SCAN returns full names that a keyPrefix client would prefix again: use `prefix` instead.
    if (keyPrefix !== undefined && keyPrefix !== '') throw new InvalidOptionsError('redis.client', 'a client with ioredis keyPrefix is not supported; use the store option prefix')
  }
  if (options.cluster !== undefined) {
    const nodes: unknown = options.cluster.nodes
    if (!Array.isArray(nodes) || nodes.length === 0) throw new InvalidOptionsError('redis.cluster.nodes', 'expected a non-empty array of { host, port }')
  }
  if (options.sentinels !== undefined && (!Array.isArray(options.sentinels) || options.sentinels.length === 0)) throw new InvalidOptionsError('redis.sentinels', 'expected a non-empty array of { host, port }')
  if ((options.sentinels !== undefined) !== (options.name !== undefined)) throw new InvalidOptionsError('redis.name', 'sentinels and name go together')
  if (options.name !== undefined && (typeof options.name !== 'string' || options.name === '')) throw new InvalidOptionsError('redis.name', 'expected a non-empty string')
  const prefix: unknown = options.prefix
  if (prefix !== undefined && (typeof prefix !== 'string' || /[{}]/.test(prefix))) throw new InvalidOptionsError('redis.prefix', 'expected a string without { or } (braces would change the hash slot of keys)')
  const retries = options.maxRetriesPerRequest
  if (retries !== undefined && (!Number.isSafeInteger(retries) || retries < 0)) throw new InvalidOptionsError('redis.maxRetriesPerRequest', `expected an integer >= 0, got ${String(retries)}`)
  const scan = options.scanCount
  if (scan !== undefined && (!Number.isSafeInteger(scan) || scan < 1)) throw new InvalidOptionsError('redis.scanCount', `expected an integer >= 1, got ${String(scan)}`)
  // Before the client exists: a refusal after it would leave it connecting (and logging) for ever.
  if (options.onError !== undefined && typeof options.onError !== 'function') throw new InvalidOptionsError('redis.onError', 'expected a function')
  clockOption(options.clock, systemClock, 'redis.clock')
  const extra: unknown = options.redisOptions
  if (extra !== undefined && (typeof extra !== 'object' || extra === null || Array.isArray(extra))) throw new InvalidOptionsError('redis.redisOptions', 'expected an object of ioredis options')
  const clusterOptions: unknown = options.cluster?.options
  if (clusterOptions !== undefined && (typeof clusterOptions !== 'object' || clusterOptions === null || Array.isArray(clusterOptions))) throw new InvalidOptionsError('redis.cluster.options', 'expected an object of ioredis ClusterOptions')
  randomOption(options.random, 'redis.random', mathRandom)
  const isAddress = (n: unknown): boolean => typeof n === 'object' && n !== null && (typeof (n as { host?: unknown }).host === 'string' || typeof (n as { port?: unknown }).port === 'number')
  if (options.cluster !== undefined && !options.cluster.nodes.every(isAddress)) throw new InvalidOptionsError('redis.cluster.nodes', 'expected a non-empty array of { host, port }')
  if (options.sentinels !== undefined && !options.sentinels.every(isAddress)) throw new InvalidOptionsError('redis.sentinels', 'expected a non-empty array of { host, port }')
}

/** The store's reconnect defaults: ioredis's own bounds (50 ms to 2 s), now doubling and jittered. */
const RECONNECT_DEFAULTS: BackoffConfig = Object.freeze({ initial: 50, max: 2_000, jitter: 0.25 })

/** Creates the client for url / sentinels / cluster options. */
function createClient(options: RedisStoreOptions, reconnect: BackoffPolicy): Redis | Cluster {
  // ioredis counts attempts from 1 and resets them on a successful connection; never gives up.
  const retryStrategy = (attempt: number): number => reconnect.delay(attempt - 1)
  const commandTimeout = options.commandTimeout === undefined ? undefined : toMs(options.commandTimeout, 'redis.commandTimeout')
  if (commandTimeout !== undefined && !(commandTimeout > 0 && Number.isFinite(commandTimeout))) throw new InvalidOptionsError('redis.commandTimeout', 'expected a finite duration > 0')
  const perConnection: RedisOptions = {
    maxRetriesPerRequest: options.maxRetriesPerRequest ?? 1,
    retryStrategy,
    // The timer ioredis leaves behind a disconnect of a closed socket (core/redis-quit.ts).
    disconnectTimeout: DISCONNECT_TIMEOUT_MS,
    ...options.redisOptions,
    ...(commandTimeout === undefined ? {} : { commandTimeout: Math.ceil(commandTimeout) }),
    ...(options.maxRetriesPerRequest === undefined ? {} : { maxRetriesPerRequest: options.maxRetriesPerRequest }),
  }
  // The offline queue keeps commands sent while (re)connecting; the caller's timeout bounds them.
  const ours = { enableAutoPipelining: true, enableOfflineQueue: true }
  if (options.cluster !== undefined) {
    return new Cluster(
      options.cluster.nodes.map((n) => ({ host: n.host, port: n.port })),
      { ...ours, clusterRetryStrategy: retryStrategy, ...options.cluster.options, redisOptions: { ...options.cluster.options?.redisOptions, ...perConnection } },
    )
  }
  if (options.sentinels !== undefined) return new Redis({ ...ours, ...perConnection, sentinels: options.sentinels, name: options.name })
  return new Redis(options.url as string, { ...ours, ...perConnection })
}

class RedisStore implements Store {
  readonly name = 'redis'
  readonly location: string
  readonly locks: StoreLocks
  readonly #client: Redis | Cluster
  readonly #owned: boolean
  readonly #prefix: string
  readonly #channel: string
  readonly #clock: Clock
  readonly #retentionMs: number
  readonly #scanCount: number
  readonly #onError: (error: Error) => void
  readonly #scripts: ScriptCommands
  /** Waiters of waitForRelease by key tag. */
  readonly #waiters = new Map<string, Set<Waiter>>()
  #subscriber: Redis | Cluster | undefined
  #subscribed: Promise<void> | undefined
  #closing: Promise<void> | undefined
  /** The last connection error of the client (ECONNREFUSED, ...), until it is ready again. */
  #connectionError: Error | undefined

  constructor(options: RedisStoreOptions) {
    validate(options)
    this.#prefix = options.prefix ?? 'sc:'
    this.#channel = `${this.#prefix}release`
    this.#clock = options.clock ?? systemClock
    const retention = toMs(options.fenceRetention ?? '1d', 'redis.fenceRetention')
    if (!(retention > 0)) throw new InvalidOptionsError('redis.fenceRetention', 'expected a duration > 0')
    this.#retentionMs = Math.min(MAX_PX, Math.ceil(retention))
    this.#scanCount = options.scanCount ?? 1000
    this.#onError = options.onError ?? (() => {})
    this.#owned = options.client === undefined
    this.#client = options.client ?? createClient(options, backoffPolicy(options.reconnect, 'redis.reconnect', options.random ?? mathRandom, RECONNECT_DEFAULTS))
    this.location = describeClient(this.#client, options)
    // Without a listener ioredis logs every reconnect failure; commands still reject on their own.
    // (A client you own keeps its own listeners: we only watch how its connection fares.)
    if (this.#owned) this.#client.on('error', this.#onError)
    this.#client.on('error', (err: unknown) => {
      if (err instanceof Error) this.#connectionError = err
    })
    this.#client.on('ready', () => {
      this.#connectionError = undefined
    })
    for (const [method, name] of Object.entries(SCRIPT_NAMES) as [keyof typeof SCRIPT_NAMES, string][]) {
      // Redefining is harmless when several stores share one client (same Lua, same name).
      this.#client.defineCommand(name, SCRIPTS[method])
    }
    this.#scripts = this.#client as unknown as ScriptCommands
    this.locks = {
      // Explained as the data commands are: with Redis down they rejected with ioredis's raw
      // MaxRetriesPerRequestError, which the cache's guard did not take for an unavailable store.
      acquire: (key, token, leaseMs) => this.#explained(this.#acquire(key, token, leaseMs)),
      extend: (key, token, leaseMs) => this.#explained(this.#extend(key, token, leaseMs)),
      release: (key, token) => this.#explained(this.#release(key, token)),
      drawFence: (key) => this.#explained(this.#drawFence(key)),
      setFenced: (key, value, ttlMs, fence) => this.#explained(this.#setFenced(key, value, ttlMs, fence)),
      setAbove: (key, value, ttlMs) => this.#explained(this.#setAbove(key, value, ttlMs)),
      deleteAbove: (key) => this.#explained(this.#deleteAbove(key)),
      waitForRelease: (key, timeoutMs, signal) => this.#waitForRelease(key, timeoutMs, signal),
    }
  }

  /** The client: for tests and for users who need raw access. */
  get client(): Redis | Cluster {
    return this.#client
  }

  #keys(key: string): RedisKeys {
    checkStoreKey(key)
    return redisKeys(this.#prefix, key)
  }

  #data(key: string): string {
    checkStoreKey(key)
    return `${this.#prefix}{${keyTag(key)}}`
  }

  #open(): void {
    if (this.#closing !== undefined) throw new ClosedError('The redis store is closed')
  }

  /**
   * A failure with what the user needs to act on it: the address, and while the connection
   * is down the reason it is (ioredis's own error for a command only says that it gave up,
   * e.g. "Reached the max retries per request limit"). Redis's answers (ReplyError) and our
   * typed errors pass through unchanged.
   */
  #explain(err: unknown): unknown {
    if (err instanceof CacheError || (err instanceof Error && err.name === 'ReplyError')) return err
    const down = this.#connectionError
    const message = err instanceof Error ? err.message : String(err)
    const reason = down === undefined || down.message === message ? message : `${down.message} (${message})`
    return new StoreUnavailableError(`redis at ${this.location} is unreachable: ${reason}`, { cause: down ?? err })
  }

  /** `promise`, its failure explained (see #explain). */
  #explained<T>(promise: Promise<T>): Promise<T> {
    return promise.catch((err: unknown) => {
      throw this.#explain(err)
    })
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    this.#open()
    try {
      return copyOut(await this.#client.getBuffer(this.#data(key)))
    } catch (err) {
      throw this.#explain(err)
    }
  }

  async getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    this.#open()
    checkStoreList(keys, 'keys')
    if (keys.length === 0) return []
    const client = this.#client
    if (client instanceof Cluster) return Promise.all(keys.map((k) => this.get(k)))
    try {
      return (await client.mgetBuffer(keys.map((k) => this.#data(k)))).map(copyOut)
    } catch (err) {
      throw this.#explain(err)
    }
  }

  async set(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    this.#open()
    const args = ttlArgs(ttlMs)
    const data = this.#data(key)
    const buf = copyIn(value)
    try {
      await (args.length === 0 ? this.#client.set(data, buf) : this.#client.set(data, buf, args[0], args[1]))
    } catch (err) {
      throw this.#explain(refusedWhenFull(err))
    }
  }

  async setMany(entries: readonly StoreEntry[]): Promise<void> {
    this.#open()
    checkStoreEntries(entries)
    if (entries.length === 0) return
    const client = this.#client
    if (client instanceof Cluster) {
      // Per-key SETs; those of one key go to one node in order, so the last one wins.
      await Promise.all(entries.map((e) => this.set(e.key, e.value, e.ttlMs)))
      return
    }
    // One MULTI: one round trip, and no reader sees half a batch.
    const multi = client.multi()
    for (const e of entries) {
      const args = ttlArgs(e.ttlMs)
      if (args.length === 0) multi.set(this.#data(e.key), copyIn(e.value))
      else multi.set(this.#data(e.key), copyIn(e.value), args[0], args[1])
    }
    let results: [Error | null, unknown][] | null
    try {
      results = await multi.exec()
    } catch (err) {
      throw this.#explain(refusedWhenFull(err))
    }
    if (results === null) throw new Error('redis MULTI of setMany was discarded')
    for (const [err] of results) if (err !== null) throw refusedWhenFull(err)
  }

  async delete(key: string): Promise<boolean> {
    this.#open()
    try {
      return (await this.#client.unlink(this.#data(key))) === 1
    } catch (err) {
      throw this.#explain(err)
    }
  }

  deleteMany(keys: readonly string[]): Promise<number> {
    return this.#deleteMany(keys).catch((err: unknown) => {
      throw this.#explain(err)
    })
  }

  async #deleteMany(keys: readonly string[]): Promise<number> {
    this.#open()
    checkStoreList(keys, 'keys')
    // A key listed twice existed once.
    const unique = [...new Set(keys)]
    if (unique.length === 0) return 0
    const client = this.#client
    if (client instanceof Cluster) {
      const counts = await Promise.all(unique.map((k) => client.unlink(this.#data(k))))
      return counts.reduce((a, b) => a + b, 0)
    }
    return client.unlink(unique.map((k) => this.#data(k)))
  }

  async touch(key: string, ttlMs: number): Promise<boolean> {
    this.#open()
    const data = this.#data(key)
    const ms = ttlMs === Infinity ? Infinity : px(ttlMs, 'ttlMs')
    try {
      if (ms === Infinity) return (await this.#scripts.stratacacheTouchPersist(data)) === 1
      return (await this.#client.pexpire(data, ms)) === 1
    } catch (err) {
      throw this.#explain(err)
    }
  }

  /** SCAN (never KEYS) on every master, UNLINK per batch. Only data keys match: locks and fences stay. */
  clear(prefix: string): Promise<void> {
    return this.#clear(prefix).catch((err: unknown) => {
      throw this.#explain(err)
    })
  }

  async #clear(prefix: string): Promise<void> {
    this.#open()
    checkStoreKey(prefix, 'prefix')
    const pattern = `${globEscape(this.#prefix)}{${globEscape(prefix === '' ? '' : keyTag(prefix))}*}`
    const client = this.#client
    if (client instanceof Cluster) {
      // The node list is empty until the cluster has loaded its slot map.
      if (client.status !== 'ready') await client.ping()
      await Promise.all(
        client.nodes('master').map((node) =>
          this.#scan(node, pattern, async (batch) => {
            // Keys of one node span many slots: one UNLINK each, routed (and pipelined) by the cluster client.
            await Promise.all(batch.map((k) => client.unlink(k)))
          }),
        ),
      )
      return
    }
    await this.#scan(client, pattern, async (batch) => {
      await client.unlink(batch)
    })
  }

  /**
   * SCAN MATCH over the data keys (never KEYS), master after master on a Cluster (sorted by
   * address). The cursor holds the master's index, its SCAN cursor, a digest of the master
   * set, and the keys of the last SCAN reply that did not fit the page (SCAN's COUNT is a
   * hint: a reply may be longer). A changed master set (fail-over, added or removed master)
   * restarts the walk from the first master: keys repeat, none is lost. Redis itself skips
   * expired keys in SCAN. At most `MAX_SCAN_ROUNDS` SCAN calls per page.
   */
  scan(options?: ScanOptions): Promise<ScanPage> {
    return this.#scanPage(options).catch((err: unknown) => {
      throw this.#explain(err)
    })
  }

  async #scanPage(options?: ScanOptions): Promise<ScanPage> {
    this.#open()
    const { prefix, cursor, limit } = checkScanOptions(options)
    const pattern = `${globEscape(this.#prefix)}{${globEscape(prefix === '' ? '' : keyTag(prefix))}*}`
    const client = this.#client
    let masters: { node: Redis; id: string }[]
    if (client instanceof Cluster) {
      if (client.status !== 'ready') await client.ping()
      masters = client
        .nodes('master')
        .map((node) => ({ node, id: `${node.options.host ?? ''}:${node.options.port ?? ''}` }))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    } else {
      masters = [{ node: client, id: '' }]
    }
    const set = createHash('sha256').update(masters.map((m) => m.id).join(',')).digest('base64url').slice(0, 16)
    let state: RedisScanState = cursor === undefined ? { n: 0, c: '0', r: [], m: set } : decodeCursor(cursor, isRedisScanState, 'redis')
    if (state.m !== set) state = { n: 0, c: '0', r: state.r, m: set }
    const keys = state.r.slice(0, limit)
    const rest = state.r.slice(limit)
    let { n, c } = state
    for (let round = 0; keys.length < limit && n < masters.length && round < MAX_SCAN_ROUNDS; round++) {
      const [next, batch] = await (masters[n] as { node: Redis }).node.scanBuffer(c, 'MATCH', pattern, 'COUNT', Math.max(limit, 16))
      c = next.toString()
      if (c === '0') n++ // this master is done; the next starts at cursor 0
      for (const raw of batch) {
        const key = this.#userKey(raw.toString('utf8'))
        if (key === undefined) continue
        if (keys.length < limit) keys.push(key)
        else rest.push(key)
      }
    }
    if (n >= masters.length && rest.length === 0) return { keys, cursor: undefined }
    return { keys, cursor: encodeCursor({ n, c, r: rest, m: set } satisfies RedisScanState) }
  }

  /** The cache key of a data key (`prefix{tag}`), or undefined for anything else. */
  #userKey(redisKey: string): string | undefined {
    if (!redisKey.startsWith(`${this.#prefix}{`) || !redisKey.endsWith('}')) return undefined
    const tag = redisKey.slice(this.#prefix.length + 1, -1)
    return tag === '%' ? '' : tag.replace(/%u([0-9A-F]{4})|%([0-9A-F]{2})/g, (_, u: string | undefined, b: string | undefined) => String.fromCharCode(parseInt(u ?? b ?? '', 16)))
  }

  async #scan(node: Redis, pattern: string, onBatch: (keys: Buffer[]) => Promise<void>): Promise<void> {
    let cursor = '0'
    do {
      // Buffers: a non-UTF-8 key would not survive a round trip through a JS string.
      const [next, keys] = await node.scanBuffer(cursor, 'MATCH', pattern, 'COUNT', this.#scanCount)
      cursor = next.toString()
      if (keys.length > 0) await onBatch(keys)
    } while (cursor !== '0')
  }

  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    // Waiters resolve (a wait never rejects for an ending); they will find the store closed.
    for (const set of this.#waiters.values()) for (const w of [...set]) w.wake()
    const subscriber = this.#subscriber
    this.#subscriber = undefined
    // QUIT too, not disconnect(): a disconnect() while the connection is still being set up
    // fails its ready check and its SUBSCRIBE, and ioredis disconnects again for each, arming a
    // ref'd 2 s timer for a socket already closed that kept the process alive after close().
    await Promise.all([subscriber === undefined ? undefined : this.#quit(subscriber), this.#owned ? this.#quit(this.#client) : undefined])
  }

  /** QUIT, bounded, leaving no timer behind (core/redis-quit.ts). */
  #quit(client: Redis | Cluster): Promise<void> {
    return quitRedis(client, this.#clock)
  }

  // Locks

  async #acquire(key: string, token: string, leaseMs: number): Promise<LockGrant | undefined> {
    this.#open()
    const k = this.#keys(key)
    checkStoreToken(token)
    const lease = px(leaseMs, 'leaseMs')
    // The fencing state outlives the lease it was granted with.
    const fence = await this.#scripts.stratacacheAcquire(k.lock, k.fence, token, lease, Math.max(this.#retentionMs, lease)).catch((err: unknown) => {
      throw refusedWhenFull(err)
    })
    return fence === null ? undefined : { token, fence: Number(fence) }
  }

  async #extend(key: string, token: string, leaseMs: number): Promise<boolean> {
    this.#open()
    const lock = this.#keys(key).lock
    checkStoreToken(token)
    return (await this.#scripts.stratacacheExtend(lock, token, px(leaseMs, 'leaseMs'))) === 1
  }

  async #release(key: string, token: string): Promise<boolean> {
    this.#open()
    const lock = this.#keys(key).lock
    checkStoreToken(token)
    return (await this.#scripts.stratacacheRelease(lock, token, this.#channel, keyTag(key))) === 1
  }

  async #drawFence(key: string): Promise<number> {
    this.#open()
    const fence = await this.#scripts.stratacacheDrawFence(this.#keys(key).fence, this.#retentionMs).catch((err: unknown) => {
      throw refusedWhenFull(err)
    })
    return Number(fence)
  }

  async #setFenced(key: string, value: Uint8Array, ttlMs: number, fence: number): Promise<boolean> {
    this.#open()
    if (typeof fence !== 'number' || !Number.isFinite(fence)) throw new InvalidOptionsError('fence', `expected a finite number, got ${String(fence)}`)
    const k = this.#keys(key)
    const ttl = ttlMs === Infinity ? '' : String(px(ttlMs, 'ttlMs'))
    let done: unknown
    try {
      done = await this.#scripts.stratacacheSetFenced(k.data, k.fence, copyIn(value), ttl, String(fence), this.#retentionMs, this.#channel, keyTag(key))
    } catch (err) {
      throw refusedWhenFull(err)
    }
    return done === 1
  }

  /** One script, one round trip: the value and the fence mark change together. */
  async #setAbove(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    this.#open()
    const k = this.#keys(key)
    const ttl = ttlMs === Infinity ? '' : String(px(ttlMs, 'ttlMs'))
    try {
      await this.#scripts.stratacacheSetAbove(k.data, k.fence, copyIn(value), ttl, this.#retentionMs, this.#channel, keyTag(key))
    } catch (err) {
      throw refusedWhenFull(err)
    }
  }

  async #deleteAbove(key: string): Promise<boolean> {
    this.#open()
    const k = this.#keys(key)
    try {
      return (await this.#scripts.stratacacheDeleteAbove(k.data, k.fence, this.#retentionMs)) === 1
    } catch (err) {
      throw refusedWhenFull(err)
    }
  }

  /**
   * No lost wake-up: the waiter registers, reads the lock state (holder token, fence
   * high-water mark), makes sure the subscriber listens, then reads the state again. A
   * release or fenced write before the subscription took effect shows as a change (or a
   * free lock); one after it arrives as a message. Comparing states, rather than asking
   * "is there a value", keeps a waiter from spinning while a holder refreshes a value that
   * already exists. A lease that runs out sends no message (its holder paused or died): the
   * waiter reads the state again when the lease's PTTL has passed, and again after each
   * extension, so it wakes within a round trip of the lease's end. Resolves on the timeout;
   * rejects only for an abort or a Redis error.
   */
  #waitForRelease(key: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    let k: RedisKeys
    try {
      this.#open()
      // NaN set no timer: a wait on a held lock would never end.
      if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) throw new InvalidOptionsError('timeoutMs', `expected a number of ms >= 0, got ${String(timeoutMs)}`)
      k = this.#keys(key)
    } catch (err) {
      return Promise.reject(err)
    }
    if (signal?.aborted === true) return Promise.reject(new AbortedError('waitForRelease was aborted'))
    const tag = keyTag(key)
    return new Promise<void>((resolve, reject) => {
      let done = false
      let timer: TimerHandle | undefined
      let leaseTimer: TimerHandle | undefined
      const finish = (error?: unknown): void => {
        if (done) return
        done = true
        if (timer !== undefined) this.#clock.clearTimeout(timer)
        if (leaseTimer !== undefined) this.#clock.clearTimeout(leaseTimer)
        signal?.removeEventListener('abort', onAbort)
        const set = this.#waiters.get(tag)
        set?.delete(waiter)
        if (set?.size === 0) this.#waiters.delete(tag)
        if (error === undefined) resolve()
        else reject(error)
      }
      const onAbort = (): void => finish(new AbortedError('waitForRelease was aborted'))
      const waiter: Waiter = { wake: () => finish() }
      let set = this.#waiters.get(tag)
      if (set === undefined) this.#waiters.set(tag, (set = new Set()))
      set.add(waiter)
      if (Number.isFinite(timeoutMs)) timer = this.#clock.setTimeout(() => finish(), Math.max(0, timeoutMs))
      signal?.addEventListener('abort', onAbort, { once: true })
      /** The holder and fence mark ('' when free), and the ms left of the lease. */
      const state = (): Promise<{ id: string; left: number }> =>
        this.#scripts.stratacacheLockState(k.lock, k.fence).then(([held, token, hwm, pttl]) => ({ id: held === 1 ? `${hwm}|${token}` : '', left: Number(pttl) }))
      /** Same holder and mark: look again when the lease (as it stands now) has run out. */
      const recheck = (was: string, left: number): void => {
        if (done) return
        // PTTL -1 (no expiry) cannot happen for a lock set with PX; never poll for it.
        if (left < 0) return
        leaseTimer = this.#clock.setTimeout(
          () => {
            leaseTimer = undefined
            state().then(
              (now) => (now.id !== was ? finish() : recheck(was, now.left)),
              (err: unknown) => finish(err),
            )
          },
          // +1: PTTL rounds down, and Redis expires a key only once its time is past.
          left + 1,
        )
      }
      // Sent now, so it is ordered before any release or write issued after this call.
      const before = state()
      Promise.all([before, this.#subscribe()])
        .then(async ([was]) => {
          if (done) return
          const now = await state()
          // Free when the wait began, or changed before the subscription took effect.
          if (was.id === '' || now.id !== was.id) finish()
          else recheck(was.id, now.left)
        })
        .catch((err: unknown) => finish(err))
    })
  }

  /** The shared subscriber connection, created on first use. */
  #subscribe(): Promise<void> {
    if (this.#subscribed !== undefined) return this.#subscribed
    const client = this.#client
    const sub: Redis | Cluster = client instanceof Cluster ? client.duplicate() : client.duplicate()
    sub.on('error', this.#onError)
    sub.on('message', (channel: string, message: string) => {
      if (channel !== this.#channel) return
      const set = this.#waiters.get(message)
      if (set !== undefined) for (const w of [...set]) w.wake()
    })
    let connects = 0
    sub.on('ready', () => {
      // After a reconnect, releases sent while we were away are lost: wake every waiter so
      // it checks again (a wait may end early; it never ends late).
      if (++connects > 1) for (const set of this.#waiters.values()) for (const w of [...set]) w.wake()
    })
    this.#subscriber = sub
    this.#subscribed = sub.subscribe(this.#channel).then(
      () => undefined,
      (err: unknown) => {
        // Start over on the next wait.
        this.#subscribed = undefined
        // After close() took the subscriber, its QUIT ends it (see #close).
        if (this.#subscriber === sub) {
          this.#subscriber = undefined
          sub.disconnect()
        }
        throw err
      },
    )
    return this.#subscribed
  }
}

/** A Redis-backed `Store` (with locks). See the file comment for the key mapping. */
export function redisStore(options: RedisStoreOptions): Store & { readonly locks: StoreLocks; readonly client: Redis | Cluster; scan(options?: ScanOptions): Promise<ScanPage> } {
  return new RedisStore(options)
}
