/**
 * `etcdStore`: the L2 `Store` on etcd (v3 API, through the `etcd3` client), for data where a
 * stale or lost write is worse than a slower one. Writes go through Raft; reads are
 * linearizable by default (a quorum round trip), `serializable` on request (served by the
 * member the client talks to: faster, may lag). See docs/decisions/0190.
 *
 * Key mapping. A cache key K lives under the namespace N as
 *
 *   N + 'd/' + tag(K)   the value: 8 bytes of absolute expiry (float64 BE ms, Infinity) + bytes
 *   N + 'l/' + tag(K)   the lock: JSON { t: token, u: lease end (ms) }
 *   N + 'g/' + tag(K)   touched by every grant and drawn fence (its mod revision: the last one)
 *   N + 'm/' + tag(K)   the fence mark: the highest fence written, 20 decimal digits
 *
 * where tag(K) escapes '%' and every UTF-16 surrogate code unit (`%25`, `%uD83D`), one code
 * unit at a time: reversible (scan decodes keys), valid UTF-8 for any JS string (a lone
 * surrogate would otherwise become U+FFFD and collide), and tag(A + B) = tag(A) + tag(B), so
 * the keys starting with p are exactly the range starting with N + 'd/' + tag(p).
 *
 * Expiry is checked on read against the store's clock (the header), so `get` never returns
 * an expired entry whatever etcd does. etcd leases only collect garbage: each finite TTL
 * attaches the key to a shared lease that ends at or after the expiry. Leases are grouped in
 * buckets whose width doubles with the distance (1 s up to TTL/8), so a store holds at most a
 * few hundred leases whatever the number of keys, and an expired key is deleted by etcd at
 * most ~TTL/8 + 1 s late ("at least" the TTL; etcd also extends leases on a leader change).
 * Expiry compares to the local clock: processes whose clocks disagree disagree on expiry by
 * as much (as for lock leases below).
 *
 * Fencing is real: a fence is an etcd revision. A grant (or `drawFence`) is one transaction
 * that writes the grant key, and its revision is the fence, larger than every earlier grant's
 * and smaller than every later one's, across keys and restarts (revisions never go back).
 * `setFenced` is ONE transaction: "if mark > fence then nothing, else put value and mark =
 * fence" (a missing mark compares false: the write goes through). `setAbove` / `deleteAbove`
 * read the grant key and mark at revision R, then in one transaction, if no grant or draw
 * happened since R and the mark did not move, write (or delete) the value with mark = R + 1:
 * above every fence granted so far, below every later grant (whose revision is > R + 1).
 * Lock leases are client-clock ends stored in the lock record (etcd lease TTLs are whole
 * seconds, far too coarse for a stampede lock); acquire, extend and release are
 * read-then-compare-and-swap on the lock key's mod revision.
 *
 * Limits: etcd refuses a request over `--max-request-bytes` (1.5 MiB by default): a value
 * that cannot fit is refused here with `ERR_VALUE_TOO_LARGE` before it is sent. Batches are
 * split into transactions of at most 64 operations (etcd's `--max-txn-ops` is 128) and under
 * the request limit. Failures to reach a quorum (a minority partition, a deadline) reject with
 * `ERR_STORE_UNAVAILABLE`: the store fails closed, it never answers from a stale member unless
 * asked for `serializable` reads.
 */
// Types only here: the package is loaded on first use (see #etcd), so that importing stratacache
// neither needs etcd3 installed nor pays for loading grpc-js (~0.6 s) unless an etcd store is used.
import type { Etcd3, ICompare, IKeyValue, IOptions, IRequestOp, ITxnResponse } from 'etcd3'
import { clockOption, MAX_TIMER_MS, type Clock, type TimerHandle } from '../core/clock.js'
import { toMs, type Duration } from '../core/duration.js'
import { AbortedError, CacheError, ClosedError, InvalidOptionsError, StoreUnavailableError, ValueTooLargeError } from '../core/errors.js'
import { optionNames, rejectUnknown } from '../core/known-options.js'
import { neverAbortedSignal } from '../core/never-aborted-signal.js'
import { systemClock } from '../core/system-clock.js'
import { checkScanOptions, decodeCursor, encodeCursor } from './scan-options.js'
import { checkStoreEntries, checkStoreKey, checkStoreList, checkStoreToken, checkStoreValue } from './store-input.js'
import type { ConditionalWrites, LockGrant, RevisionedValue, ScanOptions, ScanPage, Store, StoreChange, StoreEntry, StoreLocks } from './types.js'

export type EtcdConsistency = 'linearizable' | 'serializable'

/** Per-read options of `etcdStore`'s `get` / `getMany`. */
export interface EtcdReadOptions {
  /** This read's consistency; @default the store's `consistency` option ('linearizable'). */
  consistency?: EtcdConsistency
}

/**
 * What `watchChanges` reports, in etcd's order:
 * - `changed`: these store keys were written (`value`: the bytes, undefined for a delete or an
 *   expired entry; etcd deleting an expired lease's keys included) in the response at `revision`;
 * - `lost`: changes may be missed from now on (the stream broke, or etcd cancelled the watch
 *   because the revision it had to resume from was compacted); what was derived from the
 *   store cannot be trusted until `synced`;
 * - `synced`: watching again, every change from here on will be reported; whatever happened
 *   while lost was not (so a cache flushes again here).
 */
export type EtcdChange = StoreChange

/** A running `watchChanges`. */
export interface EtcdWatch {
  /** Resolves at the first `synced` (the watch is in place); never rejects. */
  readonly ready: Promise<void>
  /** Stops watching. Idempotent. */
  close(): Promise<void>
}

export interface EtcdStoreOptions {
  /** Client URLs of the members, e.g. `['http://10.0.0.1:2379', ...]`. */
  endpoints: readonly string[]
  /** Prepended to every etcd key; one namespace per store. @default 'sc/' */
  namespace?: string
  /** etcd user authentication. */
  auth?: { username: string; password: string }
  /** TLS: the CA that signed the members' certificates, and a client certificate if they ask for one (PEM). */
  tls?: { ca: string | Buffer; cert?: string | Buffer; key?: string | Buffer }
  /**
   * Reads: `linearizable` (a quorum confirms the member is current: never stale, one more
   * round trip) or `serializable` (the member's local state: faster, may lag the leader by
   * a few ms, or more behind a partition). Writes always go through Raft. @default 'linearizable'
   */
  consistency?: EtcdConsistency
  /**
   * Deadline of each request to etcd; past it the request fails (ERR_STORE_UNAVAILABLE). A store
   * call may make several requests (a read asked again: READ_ATTEMPTS; a request that never left
   * sent to the next member: SEND_ATTEMPTS; a lease grant before a write), so it can take a few
   * times this; bound whole calls above (the cache's `l2.timeout`, the node's `storeTimeout`). @default '5s'
   */
  timeout?: Duration
  /** etcd's `--max-request-bytes` (values that cannot fit are refused with ERR_VALUE_TOO_LARGE). @default 1.5 MiB */
  maxRequestBytes?: number
  /** How long a key's fencing state lives after its last lock use. @default '1d' */
  fenceRetention?: Duration
  /** Time source for expiry, lock leases and waits. @default systemClock */
  clock?: Clock
}

const ESCAPED = /[%\uD800-\uDFFF]/g
const UNESCAPE = /%u([0-9A-F]{4})|%([0-9A-F]{2})/g
const HEADER = 8
/** Room for the key, the lease id and the protobuf framing of one put. */
const PUT_OVERHEAD = 1_024
const MAX_TXN_OPS = 64
const MIN_BUCKET_MS = 1_000
/** etcd's MaxLeaseTTL (seconds); a longer TTL gets no lease (it outlives any deployment). */
const MAX_LEASE_TTL_S = 9_000_000_000
const CAS_ATTEMPTS = 16
const POLL_MS = 15
const FENCE_DIGITS = 20

/** How many times a call that never left this process is tried (each time on the next member). */
const SEND_ATTEMPTS = 3
/** How many times an idempotent read is tried after a failure whose outcome is unknown. */
const READ_ATTEMPTS = 3

/**
 * True when grpc-js failed the call before any byte of it was written: no connection to pick
 * ("No connection established", a member down) or the deadline passed while waiting for one.
 * Such a call cannot have reached etcd, so sending it elsewhere cannot apply it twice.
 */
export function etcdCallNeverSent(err: unknown): boolean {
  const message = err instanceof Error ? err.message : ''
  return /No connection established|Waiting for LB pick/.test(message)
}

type GlobalPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>

/**
 * etcd3's global fault policy for this store, in place of its default: the default
 * (`retry(handleWhen(isRecoverableError), { maxAttempts: 3 })`) re-sends ANY call after a
 * deadline, a dropped connection, an "unavailable" — including a write whose request reached
 * etcd and whose answer was lost, which then lands twice (the cause of the non-linearizable
 * Jepsen history, decision 0190). Here a call is re-sent (to the next member) only when it
 * provably never left (`etcdCallNeverSent`); every other failure is the caller's, as an unknown
 * outcome. Idempotent reads are retried by the store itself (`#read`).
 */
function sendOncePolicy(): GlobalPolicy {
  const noEvent = (): { dispose(): void } => ({ dispose: () => undefined })
  const policy = {
    onSuccess: noEvent,
    onFailure: noEvent,
    async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn({ signal: neverAbortedSignal() })
        } catch (err) {
          if (attempt >= SEND_ATTEMPTS || !etcdCallNeverSent(err)) throw err
        }
      }
    },
  }
  return policy as unknown as GlobalPolicy
}

/**
 * Delays between the watch stream's reconnects (etcd3's default climbs to 30 s, during which
 * an attached L1 is bypassed): 100 ms doubling to 2 s. etcd3 resets it once a stream works.
 */
function watchBackoff(ms: number): NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']> {
  return { duration: ms, next: () => watchBackoff(Math.min(ms * 2, 2_000)) }
}

/** tag(K): reversible, valid UTF-8, per code unit (see the file comment). */
export function etcdKeyTag(key: string): string {
  return key.replace(ESCAPED, (c) => {
    const code = c.charCodeAt(0)
    return code >= 0xd800 ? `%u${code.toString(16).toUpperCase()}` : `%${code.toString(16).toUpperCase()}`
  })
}

function untag(tag: string): string {
  return tag.replace(UNESCAPE, (_m, u: string | undefined, b: string | undefined) => String.fromCharCode(parseInt(u ?? b ?? '', 16)))
}

/** The first key after every key starting with `prefix` (etcd's prefix range end). */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix)
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1
      return end.subarray(0, i + 1)
    }
  }
  return Buffer.from([0])
}

const padFence = (fence: number): Buffer => Buffer.from(String(Math.max(0, Math.floor(fence))).padStart(FENCE_DIGITS, '0'))

function checkTtl(ttlMs: number, what = 'ttlMs'): void {
  if (typeof ttlMs !== 'number' || !(ttlMs > 0)) throw new InvalidOptionsError(what, `expected a number of ms > 0 or Infinity, got ${String(ttlMs)}`)
}

function encodeValue(value: Uint8Array, expiresAt: number): Buffer {
  checkStoreValue(value)
  const out = Buffer.allocUnsafe(HEADER + value.byteLength)
  out.writeDoubleBE(expiresAt, 0)
  out.set(value, HEADER)
  return out
}

interface LockRecord {
  t: string
  u: number
}

function decodeLock(kv: IKeyValue | undefined): LockRecord | undefined {
  if (kv === undefined) return undefined
  try {
    const r = JSON.parse(kv.value.toString('utf8')) as Partial<LockRecord>
    return typeof r.t === 'string' && typeof r.u === 'number' ? { t: r.t, u: r.u } : undefined
  } catch {
    return undefined
  }
}

const isScanState = (s: unknown): s is { k: string } => typeof s === 'object' && s !== null && typeof (s as { k?: unknown }).k === 'string'

interface Bucket {
  readonly end: number
  readonly id: Promise<string>
}

interface Waiter {
  wake(): void
}

const range = (key: Buffer, serializable = false): IRequestOp => ({ request_range: { key, serializable } })
const put = (key: Buffer, value: Buffer, lease: string): IRequestOp => ({ request_put: { key, value, lease } })
const modIs = (key: Buffer, rev: string | number, result: 'Equal' | 'Less' = 'Equal'): ICompare => ({ key, target: 'Mod', result, mod_revision: rev })

/** etcdStore's option names: another is refused, not ignored (core/known-options.ts). */
const ETCD_AUTH_OPTIONS = optionNames<NonNullable<EtcdStoreOptions['auth']>>({ username: true, password: true })
const ETCD_TLS_OPTIONS = optionNames<NonNullable<EtcdStoreOptions['tls']>>({ ca: true, cert: true, key: true })
const ETCD_OPTIONS = optionNames<EtcdStoreOptions>({ endpoints: true, namespace: true, auth: true, tls: true, consistency: true, timeout: true, maxRequestBytes: true, fenceRetention: true, clock: true })

function validate(options: EtcdStoreOptions): void {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionsError('etcd', 'expected an options object')
  rejectUnknown(options, ETCD_OPTIONS, 'etcd')
  const { endpoints, namespace, consistency } = options
  if (!Array.isArray(endpoints) || endpoints.length === 0 || !endpoints.every((e) => typeof e === 'string' && e !== '')) {
    throw new InvalidOptionsError('etcd.endpoints', 'expected a non-empty array of client URLs')
  }
  if (namespace !== undefined && (typeof namespace !== 'string' || namespace === '')) throw new InvalidOptionsError('etcd.namespace', 'expected a non-empty string')
  if (consistency !== undefined && consistency !== 'linearizable' && consistency !== 'serializable') {
    throw new InvalidOptionsError('etcd.consistency', `expected 'linearizable' or 'serializable', got ${String(consistency)}`)
  }
  const max = options.maxRequestBytes
  if (max !== undefined && (!Number.isSafeInteger(max) || max < 4 * PUT_OVERHEAD)) throw new InvalidOptionsError('etcd.maxRequestBytes', `expected an integer >= ${4 * PUT_OVERHEAD}`)
  clockOption(options.clock, systemClock, 'etcd.clock')
  const auth: unknown = options.auth
  if (auth !== undefined && (typeof auth !== 'object' || auth === null || typeof (auth as { username?: unknown }).username !== 'string' || typeof (auth as { password?: unknown }).password !== 'string')) {
    throw new InvalidOptionsError('etcd.auth', 'expected { username, password } (strings)')
  }
  if (auth !== undefined) rejectUnknown(auth as object, ETCD_AUTH_OPTIONS, 'etcd.auth')
  const tls: unknown = options.tls
  const pem = (v: unknown): boolean => typeof v === 'string' || v instanceof Uint8Array
  if (tls !== undefined) {
    const t = tls as { ca?: unknown; cert?: unknown; key?: unknown }
    if (typeof tls !== 'object' || tls === null || !pem(t.ca) || (t.cert !== undefined && !pem(t.cert)) || (t.key !== undefined && !pem(t.key))) {
      throw new InvalidOptionsError('etcd.tls', 'expected { ca, cert?, key? } as PEM strings or Buffers')
    }
    // A misspelt `key` or `cert` would dial without the client certificate, and fail as a handshake error.
    rejectUnknown(tls, ETCD_TLS_OPTIONS, 'etcd.tls')
  }
}

class EtcdStoreImpl implements Store {
  readonly name = 'etcd'
  readonly location: string
  readonly locks: StoreLocks
  readonly conditional: ConditionalWrites
  readonly consistency: EtcdConsistency
  readonly namespace: string
  readonly #clientOptions: IOptions
  #client: Promise<Etcd3> | undefined
  #recoverable: (err: Error) => boolean = () => false
  readonly #clock: Clock
  readonly #root: string
  readonly #serializable: boolean
  readonly #maxRequestBytes: number
  readonly #retentionMs: number
  readonly #buckets = new Map<string, Bucket>()
  readonly #waiters = new Set<Waiter>()
  #closing: Promise<void> | undefined

  constructor(options: EtcdStoreOptions) {
    validate(options)
    this.#clock = options.clock ?? systemClock
    this.#root = options.namespace ?? 'sc/'
    this.namespace = this.#root
    this.consistency = options.consistency ?? 'linearizable'
    this.#serializable = this.consistency === 'serializable'
    this.#maxRequestBytes = options.maxRequestBytes ?? 1.5 * 1024 * 1024
    const retention = toMs(options.fenceRetention ?? '1d', 'etcd.fenceRetention')
    if (!(retention > 0)) throw new InvalidOptionsError('etcd.fenceRetention', 'expected a duration > 0')
    this.#retentionMs = retention
    const timeoutMs = toMs(options.timeout ?? '5s', 'etcd.timeout')
    // 0 would be a deadline every call misses before it is sent; past grpc-js's range (1e8 hours) a
    // call throws outside any promise (a crash): bounded by Node's longest timer, ~24.8 days.
    if (!(timeoutMs > 0 && timeoutMs <= MAX_TIMER_MS)) throw new InvalidOptionsError('etcd.timeout', `expected a duration > 0 and at most ${MAX_TIMER_MS} ms (~24.8 days), got ${String(options.timeout)}`)
    this.location = options.endpoints.join(',')
    const clientOptions: IOptions = {
      hosts: [...options.endpoints],
      // A page of large values is bigger than grpc-js's 4 MiB default.
      grpcOptions: {
        'grpc.max_receive_message_length': 256 * 1024 * 1024,
        'grpc.max_send_message_length': this.#maxRequestBytes + 64 * 1024,
        // A silently dead connection (half-open TCP) is noticed within ~15 s even when idle:
        // a watch on it then reports 'lost' (above etcd's 5 s minimum ping interval).
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc.keepalive_permit_without_calls': 1,
      },
      // A deadline on every call: a member behind a partition must not hold a caller forever.
      // Real time even under an injected (test) clock: gRPC deadlines are wall-clock instants.
      // Not on streams: a deadline would end the watch stream (watchChanges) after `timeout`.
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: systemClock.now() + timeoutMs }),
      // Never re-send a call that may have reached etcd (see sendOncePolicy); the per-member
      // circuit breaker stays etcd3's (it refuses before sending: safe).
      faultHandling: { global: sendOncePolicy(), watchBackoff: watchBackoff(100) },
    }
    if (options.auth !== undefined) clientOptions.auth = { username: options.auth.username, password: options.auth.password }
    if (options.tls !== undefined) {
      const pem = (v: string | Buffer | undefined): Buffer | undefined => (v === undefined ? undefined : Buffer.from(v))
      clientOptions.credentials = { rootCertificate: Buffer.from(options.tls.ca), certChain: pem(options.tls.cert), privateKey: pem(options.tls.key) }
    }
    this.#clientOptions = clientOptions
    this.conditional = {
      getRevisions: (keys) => this.#guard(() => this.#getRevisions(keys)),
      commitIf: (expect, set, remove) => this.#guard(() => this.#commitIf(expect, set, remove)),
      watch: (listener) => this.watchChanges(listener),
    }
    this.locks = {
      acquire: (key, token, leaseMs) => this.#guard(() => this.#acquire(key, token, leaseMs)),
      extend: (key, token, leaseMs) => this.#guard(() => this.#extend(key, token, leaseMs)),
      release: (key, token) => this.#guard(() => this.#release(key, token)),
      drawFence: (key) => this.#guard(() => this.#drawFence(key)),
      setFenced: (key, value, ttlMs, fence) => this.#guard(() => this.#setFenced(key, value, ttlMs, fence)),
      setAbove: (key, value, ttlMs) => this.#guard(() => this.#setAbove(key, value, ttlMs)),
      deleteAbove: (key) => this.#guard(() => this.#deleteAbove(key)),
      waitForRelease: (key, timeoutMs, signal) => this.#waitForRelease(key, timeoutMs, signal),
    }
  }

  // ---- keys and values --------------------------------------------------------------

  #key(kind: 'd' | 'l' | 'g' | 'm', key: string): Buffer {
    checkStoreKey(key)
    return Buffer.from(`${this.#root}${kind}/${etcdKeyTag(key)}`, 'utf8')
  }

  /** The live bytes of a data entry, or undefined (absent or expired). A copy: the caller's. */
  #live(kv: IKeyValue | undefined): Uint8Array | undefined {
    if (kv === undefined || kv.value.length < HEADER) return undefined
    if (!(kv.value.readDoubleBE(0) > this.#clock.now())) return undefined
    return new Uint8Array(kv.value.subarray(HEADER))
  }

  #checkSize(key: Buffer, value: Uint8Array): void {
    checkStoreValue(value)
    const size = key.length + HEADER + value.byteLength + PUT_OVERHEAD
    if (size > this.#maxRequestBytes) throw new ValueTooLargeError(HEADER + value.byteLength, this.#maxRequestBytes - PUT_OVERHEAD - key.length, 'etcd value')
  }

  /**
   * A shared lease that ends at or after `deleteAt` ('0', no lease, for Infinity). Buckets
   * widen with the distance (see the file comment) so that their number stays bounded.
   */
  #lease(deleteAt: number): Promise<string> {
    const now = this.#clock.now()
    const ttlS = Math.ceil((deleteAt - now) / 1000) + 1
    if (!Number.isFinite(deleteAt) || ttlS > MAX_LEASE_TTL_S) return Promise.resolve('0')
    let width = MIN_BUCKET_MS
    while (width < (deleteAt - now) / 8) width *= 2
    const end = Math.ceil(deleteAt / width) * width
    const name = `${width}:${end}`
    const found = this.#buckets.get(name)
    if (found !== undefined) return found.id
    for (const [n, b] of this.#buckets) if (b.end < now) this.#buckets.delete(n)
    // +1 s: the grant's TTL counts from the leader's receipt, a little after `now`.
    const id = this.#etcd()
      .then((c) => c.leaseClient.leaseGrant({ TTL: Math.ceil((end - now) / 1000) + 1 }))
      .then((r) => String(r.ID))
    id.catch(() => this.#buckets.delete(name))
    this.#buckets.set(name, { end, id })
    return id
  }

  /** Runs a transaction built with fresh leases; a lease that ran out under us (rare) is dropped and granted again, once. */
  async #txnWithLeases(build: () => Promise<{ compare?: ICompare[]; success?: IRequestOp[]; failure?: IRequestOp[] }>): Promise<ITxnResponse> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await (await this.#etcd()).kv.txn(await build())
      } catch (err) {
        if (attempt > 0 || !/lease not found/i.test(err instanceof Error ? err.message : '')) throw err
        this.#buckets.clear()
      }
    }
  }

  // ---- plumbing ----------------------------------------------------------------------

  #open(): void {
    if (this.#closing !== undefined) throw new ClosedError('The etcd store is closed')
  }

  /** Typed errors: ours pass, etcd's request limit is ERR_VALUE_TOO_LARGE, anything else (no quorum, deadline, connection) ERR_STORE_UNAVAILABLE. */
  async #guard<T>(fn: () => Promise<T>): Promise<T> {
    this.#open()
    try {
      return await fn()
    } catch (err) {
      if (err instanceof CacheError) throw err
      const message = err instanceof Error ? err.message : String(err)
      if (/request is too large|message larger than max/i.test(message)) {
        // grpc's refusal names the request's size and the server's limit: "(4194347 vs. 2097152)".
        const sizes = /\((\d+) vs\. (\d+)\)/.exec(message)
        throw sizes === null ? new ValueTooLargeError(0, this.#maxRequestBytes, `etcd request (${message})`) : new ValueTooLargeError(Number(sizes[1]), Number(sizes[2]), `etcd request (refused by etcd: ${message})`)
      }
      throw new StoreUnavailableError(`etcd ${this.location}: ${message}`, { cause: err })
    }
  }

  /**
   * An idempotent read, tried again (etcd3 picks the next member) after a failure etcd3 calls
   * recoverable (deadline, unavailable, ...), up to READ_ATTEMPTS: a read applies nothing, so
   * sending it twice is harmless, unlike a write (see sendOncePolicy).
   */
  async #read<T>(call: (client: Etcd3) => Promise<T>): Promise<T> {
    const client = await this.#etcd()
    for (let attempt = 1; ; attempt++) {
      try {
        return await call(client)
      } catch (err) {
        if (attempt >= READ_ATTEMPTS || !(err instanceof Error) || !this.#recoverable(err) || this.#closing !== undefined) throw err
      }
    }
  }

  /** Read-only transaction of ranges: one consistent snapshot, one round trip. */
  async #readMany(keys: readonly Buffer[], serializable = this.#serializable): Promise<{ kvs: (IKeyValue | undefined)[]; revision: number }> {
    const res = await this.#read((c) => c.kv.txn({ success: keys.map((k) => range(k, serializable)) }))
    return { kvs: res.responses.map((r) => r.response_range.kvs[0]), revision: Number(res.header.revision) }
  }

  // ---- Store -------------------------------------------------------------------------

  /**
   * The live value of `key`. `options.consistency` overrides the store's for this read:
   * `linearizable` (a quorum confirms the member is current: never stale; fails closed with
   * ERR_STORE_UNAVAILABLE without a quorum) or `serializable` (the member's own state: about
   * half the latency, may lag, answers even from a member cut off from the quorum).
   */
  get(key: string, options?: EtcdReadOptions): Promise<Uint8Array | undefined> {
    return this.#guard(async () => {
      const serializable = this.#isSerializable(options)
      const res = await this.#read((c) => c.kv.range({ key: this.#key('d', key), serializable }))
      return this.#live(res.kvs[0])
    })
  }

  /** Like `get`, for many keys, in one consistent snapshot per 64 keys. */
  getMany(keys: readonly string[], options?: EtcdReadOptions): Promise<(Uint8Array | undefined)[]> {
    return this.#guard(async () => {
      checkStoreList(keys, 'keys')
      const serializable = this.#isSerializable(options)
      const unique = [...new Set(keys)]
      const found = new Map<string, IKeyValue | undefined>()
      for (let i = 0; i < unique.length; i += MAX_TXN_OPS) {
        const chunk = unique.slice(i, i + MAX_TXN_OPS)
        const { kvs } = await this.#readMany(chunk.map((k) => this.#key('d', k)), serializable)
        chunk.forEach((k, j) => found.set(k, kvs[j]))
      }
      // Each answer is its own copy, duplicates included.
      return keys.map((k) => this.#live(found.get(k)))
    })
  }

  #isSerializable(options: EtcdReadOptions | undefined): boolean {
    if (options !== undefined && (typeof options !== 'object' || options === null)) throw new InvalidOptionsError('options', `expected { consistency } or nothing, got ${options === null ? 'null' : typeof options}`)
    const c = options?.consistency
    if (c === undefined) return this.#serializable
    if (c !== 'linearizable' && c !== 'serializable') throw new InvalidOptionsError('consistency', `expected 'linearizable' or 'serializable', got ${String(c)}`)
    return c === 'serializable'
  }

  set(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    return this.setMany([{ key, value, ttlMs }])
  }

  setMany(entries: readonly StoreEntry[]): Promise<void> {
    return this.#guard(async () => {
      checkStoreEntries(entries)
      // The last entry for a key wins (etcd refuses a key twice in one transaction).
      const last = new Map<string, StoreEntry>()
      for (const e of entries) {
        checkTtl(e.ttlMs)
        this.#checkSize(this.#key('d', e.key), e.value)
        last.delete(e.key)
        last.set(e.key, e)
      }
      const now = this.#clock.now()
      // Copied now: the caller may reuse its buffer while the request is in flight.
      const prepared = [...last.values()].map((e) => ({ key: this.#key('d', e.key), value: encodeValue(e.value, now + e.ttlMs), expiresAt: now + e.ttlMs }))
      let batch: typeof prepared = []
      let bytes = 0
      const flush = async (): Promise<void> => {
        if (batch.length === 0) return
        const ops = batch
        batch = []
        bytes = 0
        await this.#txnWithLeases(async () => ({ success: await Promise.all(ops.map(async (p) => put(p.key, p.value, await this.#lease(p.expiresAt)))) }))
      }
      for (const p of prepared) {
        const size = p.key.length + p.value.length + PUT_OVERHEAD
        if (batch.length >= MAX_TXN_OPS || bytes + size > this.#maxRequestBytes) await flush()
        batch.push(p)
        bytes += size
      }
      await flush()
    })
  }

  delete(key: string): Promise<boolean> {
    return this.deleteMany([key]).then((n) => n === 1)
  }

  deleteMany(keys: readonly string[]): Promise<number> {
    return this.#guard(async () => {
      checkStoreList(keys, 'keys')
      const unique = [...new Set(keys)]
      let count = 0
      for (let i = 0; i < unique.length; i += MAX_TXN_OPS) {
        const ops = unique.slice(i, i + MAX_TXN_OPS).map((k): IRequestOp => ({ request_delete_range: { key: this.#key('d', k), prev_kv: true } }))
        const res = await (await this.#etcd()).kv.txn({ success: ops })
        // An expired entry that etcd had not collected yet did not exist for the caller.
        for (const r of res.responses) if (this.#live(r.response_delete_range.prev_kvs[0]) !== undefined) count++
      }
      return count
    })
  }

  touch(key: string, ttlMs: number): Promise<boolean> {
    return this.#guard(async () => {
      checkTtl(ttlMs)
      const k = this.#key('d', key)
      for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        const kv = (await this.#read((c) => c.kv.range({ key: k }))).kvs[0]
        const bytes = this.#live(kv)
        if (kv === undefined || bytes === undefined) return false
        const expiresAt = this.#clock.now() + ttlMs
        const res = await this.#txnWithLeases(async () => ({ compare: [modIs(k, kv.mod_revision)], success: [put(k, encodeValue(bytes, expiresAt), await this.#lease(expiresAt))] }))
        if (res.succeeded) return true
      }
      throw new StoreUnavailableError(`etcd ${this.location}: touch lost ${CAS_ATTEMPTS} races in a row`)
    })
  }

  async #getRevisions(keys: readonly string[]): Promise<RevisionedValue[]> {
    checkStoreList(keys, 'keys')
    if (keys.length > MAX_TXN_OPS) throw new InvalidOptionsError('keys', `expected at most ${MAX_TXN_OPS} keys`)
    const { kvs } = await this.#readMany(keys.map((k) => this.#key('d', k)))
    return kvs.map((kv) => ({ value: this.#live(kv), revision: kv === undefined ? 0 : Number(kv.mod_revision) }))
  }

  /** One transaction: compares on every expected key's mod revision, then puts and deletes (sent once, like every write). */
  async #commitIf(expect: readonly { readonly key: string; readonly revision: number }[], set: readonly StoreEntry[], remove: readonly string[]): Promise<boolean> {
    checkStoreList(expect, 'expect')
    checkStoreEntries(set)
    checkStoreList(remove, 'remove')
    for (const x of expect) {
      if (typeof x !== 'object' || x === null || !Number.isSafeInteger(x.revision) || x.revision < 0) throw new InvalidOptionsError('expect', `expected { key, revision } with a revision >= 0 (0: absent), got ${x === null ? 'null' : typeof x === 'object' ? String(x.revision) : typeof x}`)
    }
    if (expect.length + set.length + remove.length > MAX_TXN_OPS) throw new InvalidOptionsError('commitIf', `expected at most ${MAX_TXN_OPS} operations`)
    const now = this.#clock.now()
    const prepared = set.map((e) => {
      checkTtl(e.ttlMs)
      const key = this.#key('d', e.key)
      this.#checkSize(key, e.value)
      return { key, value: encodeValue(e.value, now + e.ttlMs), expiresAt: now + e.ttlMs }
    })
    const res = await this.#txnWithLeases(async () => ({
      compare: expect.map((x) => modIs(this.#key('d', x.key), x.revision)),
      success: [
        ...(await Promise.all(prepared.map(async (p) => put(p.key, p.value, await this.#lease(p.expiresAt))))),
        ...remove.map((k): IRequestOp => ({ request_delete_range: { key: this.#key('d', k) } })),
      ],
    }))
    return res.succeeded
  }

  clear(prefix: string): Promise<void> {
    return this.#guard(async () => {
      const start = this.#key('d', prefix)
      await (await this.#etcd()).kv.deleteRange({ key: start, range_end: prefixEnd(start) })
    })
  }

  scan(options?: ScanOptions): Promise<ScanPage> {
    return this.#guard(async () => {
      const { prefix, cursor, limit } = checkScanOptions(options)
      const dataRoot = `${this.#root}d/`
      const tagPrefix = etcdKeyTag(prefix)
      const first = Buffer.from(dataRoot + tagPrefix, 'utf8')
      let start = first
      if (cursor !== undefined) {
        const { k } = decodeCursor(cursor, isScanState, 'etcd')
        if (!k.startsWith(tagPrefix)) throw new InvalidOptionsError('scan.cursor', 'this cursor belongs to a scan of another prefix')
        // Just after the last key handed out.
        start = Buffer.concat([Buffer.from(dataRoot + k, 'utf8'), Buffer.from([0])])
      }
      const res = await this.#read((c) => c.kv.range({ key: start, range_end: prefixEnd(first), limit, serializable: this.#serializable }))
      const keys: string[] = []
      let lastTag: string | undefined
      for (const kv of res.kvs) {
        lastTag = kv.key.toString('utf8').slice(dataRoot.length)
        if (this.#live(kv) !== undefined) keys.push(untag(lastTag))
      }
      return { keys, cursor: res.more && lastTag !== undefined ? encodeCursor({ k: lastTag }) : undefined }
    })
  }

  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    // Waiters resolve (a wait never rejects for an ending); they find the store closed.
    for (const w of [...this.#waiters]) w.wake()
    const client = this.#client
    if (client !== undefined) (await client.catch(() => undefined))?.close()
  }

  /**
   * Watches every data key of this store's namespace through etcd's watch stream: etcd
   * delivers each revision once and in order, so nothing is missed while the stream holds.
   * When it breaks (`lost: 'disconnected'`) or etcd cancels it (`lost: 'cancelled'`: a watcher
   * that fell behind past a compaction, or any other cancel), a new watch starts from the
   * current revision once etcd answers again — never a resume from an old revision, which a
   * compaction could have erased — and reports `synced`. Keys are the
   * store's keys (decoded). A listener that throws is ignored (it must not stop the stream).
   */
  watchChanges(listener: (change: EtcdChange) => void): EtcdWatch {
    this.#open()
    if (typeof listener !== 'function') throw new InvalidOptionsError('listener', `expected a function, got ${listener === null ? 'null' : typeof listener}`)
    const prefix = Buffer.from(`${this.#root}d/`, 'utf8')
    const dataRoot = prefix.toString('utf8')
    let closed = false
    let lost = true
    let watcher: import('etcd3').Watcher | undefined
    let retry: TimerHandle | undefined
    /** Delay before watching afresh after a loss: 100 ms doubling to 2 s, reset once connected. */
    let delayMs = 100
    const again = (): void => {
      if (closed || retry !== undefined) return
      retry = this.#clock.setTimeout(() => {
        retry = undefined
        start()
      }, delayMs, { unref: true })
      delayMs = Math.min(delayMs * 2, 2_000)
    }
    let readyResolve!: () => void
    const ready = new Promise<void>((resolve) => (readyResolve = resolve))
    const emit = (change: EtcdChange): void => {
      if (closed) return
      try {
        listener(change)
      } catch {
        // The listener's problem; the stream goes on.
      }
    }
    const markLost = (reason: 'disconnected' | 'compacted' | 'cancelled'): void => {
      if (lost) return
      lost = true
      emit({ kind: 'lost', reason })
    }
    const start = (): void => {
      if (closed) return
      this.#etcd().then(
        (client) => {
          if (closed) return
          // From the current revision: a fresh watch after a cancel (what came before is lost).
          // watcher() attaches at once, so no event comes before these listeners.
          const w = client.watch().prefix(prefix).watcher()
          watcher = w
          w.on('connected', (res: { header: { revision: string } }) => {
            delayMs = 100
            const wasLost = lost
            lost = false
            if (wasLost) emit({ kind: 'synced', revision: Number(res.header.revision) })
            readyResolve()
          })
          // A broken stream: etcd3 would re-create this watch from the revision after the last
          // event it saw (and can then be cancelled if that was compacted). Instead: drop it and
          // watch afresh from the current revision once the stream is back; the 'synced' flush
          // covers what happened meanwhile. So a lost stream never depends on etcd's history.
          w.on('disconnected', () => {
            markLost('disconnected')
            if (watcher !== w) return
            watcher = undefined
            void w.cancel().catch(() => undefined)
            again()
          })
          w.on('data', (res) => {
            const entries = res.events.map((e) => ({ key: untag(e.kv.key.toString('utf8').slice(dataRoot.length)), value: e.type === 'Put' ? this.#live(e.kv) : undefined }))
            if (entries.length > 0) emit({ kind: 'changed', entries, revision: Number(res.header.revision) })
          })
          w.on('error', (err: Error) => {
            // etcd cancelled the watch (a consumer so slow that its next revision was compacted,
            // or anything else): watch afresh.
            markLost(/compact/i.test(err.message) ? 'compacted' : 'cancelled')
            // (etcd3 already dropped the cancelled watcher.)
            if (watcher === w) watcher = undefined
            again()
          })
        },
        () => {
          // No etcd3 package (or no client): nothing to watch; the stream stays lost.
        },
      )
    }
    start()
    return {
      ready,
      close: async () => {
        if (closed) return
        closed = true
        readyResolve()
        if (retry !== undefined) this.#clock.clearTimeout(retry)
        await watcher?.cancel().catch(() => undefined)
      },
    }
  }

  /** The etcd3 client (created on first use): for tests and for users who need raw access. */
  etcdClient(): Promise<Etcd3> {
    this.#open()
    return this.#etcd()
  }

  /** Loads etcd3 and connects, once; a missing package is a clear error, not a crash at import. */
  #etcd(): Promise<Etcd3> {
    this.#client ??= import('etcd3').then(
      ({ Etcd3: Client, isRecoverableError }) => {
        this.#recoverable = isRecoverableError
        return new Client(this.#clientOptions)
      },
      (err: unknown) => {
        this.#client = undefined
        throw new StoreUnavailableError('etcdStore needs the etcd3 package (npm install etcd3)', { cause: err })
      },
    )
    return this.#client
  }

  // ---- locks -------------------------------------------------------------------------

  async #acquire(key: string, token: string, leaseMs: number): Promise<LockGrant | undefined> {
    checkTtl(leaseMs, 'leaseMs')
    const l = this.#key('l', key)
    checkStoreToken(token)
    const g = this.#key('g', key)
    let sent = false
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const kv = (await this.#read((c) => c.kv.range({ key: l }))).kvs[0]
      const held = decodeLock(kv)
      const now = this.#clock.now()
      // Our own create landed although a previous attempt saw it refused (defensive: writes are
      // never re-sent, see sendOncePolicy): the grant is ours, its fence the record's create revision.
      if (sent && kv !== undefined && held !== undefined && held.t === token && held.u > now) return { token, fence: Number(kv.create_revision) }
      if (held !== undefined && held.u > now) return undefined
      if (kv !== undefined) {
        // An ended lease: delete the record first, so that the new one's create revision is
        // its grant's (waitForRelease compares the fence mark against it).
        await (await this.#etcd()).kv.txn({ compare: [modIs(l, kv.mod_revision)], success: [{ request_delete_range: { key: l } }] })
        continue
      }
      const until = now + leaseMs
      const record = Buffer.from(JSON.stringify({ t: token, u: until }))
      sent = true
      const res = await this.#txnWithLeases(async () => ({
        compare: [modIs(l, 0)],
        success: [put(l, record, await this.#lease(until + MIN_BUCKET_MS)), put(g, Buffer.from(token), await this.#lease(now + Math.max(this.#retentionMs, leaseMs)))],
      }))
      // The revision of this transaction is the fence: above every earlier grant and draw.
      if (res.succeeded) return { token, fence: Number(res.header.revision) }
    }
    return undefined
  }

  /** Read-then-CAS on the lock record held by `token` (unexpired); `change` gives the new record or undefined to delete. */
  async #withHeldLock(key: string, token: string, change: (now: number) => LockRecord | undefined): Promise<boolean> {
    const l = this.#key('l', key)
    checkStoreToken(token)
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const kv = (await this.#read((c) => c.kv.range({ key: l }))).kvs[0]
      const held = decodeLock(kv)
      const now = this.#clock.now()
      if (kv === undefined || held === undefined || held.t !== token || !(held.u > now)) return false
      const next = change(now)
      const res = await this.#txnWithLeases(async () => ({
        compare: [modIs(l, kv.mod_revision)],
        success: [next === undefined ? { request_delete_range: { key: l } } : put(l, Buffer.from(JSON.stringify(next)), await this.#lease(next.u + MIN_BUCKET_MS))],
      }))
      if (res.succeeded) return true
    }
    return false
  }

  #extend(key: string, token: string, leaseMs: number): Promise<boolean> {
    checkTtl(leaseMs, 'leaseMs')
    return this.#withHeldLock(key, token, (now) => ({ t: token, u: now + leaseMs }))
  }

  #release(key: string, token: string): Promise<boolean> {
    return this.#withHeldLock(key, token, () => undefined)
  }

  async #drawFence(key: string): Promise<number> {
    const g = this.#key('g', key)
    const res = await (await this.#etcd()).kv.put({ key: g, value: Buffer.from('draw'), lease: await this.#lease(this.#clock.now() + this.#retentionMs) })
    return Number(res.header.revision)
  }

  async #setFenced(key: string, value: Uint8Array, ttlMs: number, fence: number): Promise<boolean> {
    if (typeof fence !== 'number' || !Number.isFinite(fence)) throw new InvalidOptionsError('fence', `expected a finite number, got ${String(fence)}`)
    checkTtl(ttlMs)
    const d = this.#key('d', key)
    const m = this.#key('m', key)
    this.#checkSize(d, value)
    const now = this.#clock.now()
    const encoded = encodeValue(value, now + ttlMs)
    const mark = padFence(fence)
    // One transaction: refused when the mark is above the fence (a missing mark compares false).
    const res = await this.#txnWithLeases(async () => ({
      compare: [{ key: m, target: 'Value', result: 'Greater', value: mark }],
      failure: [put(d, encoded, await this.#lease(now + ttlMs)), put(m, mark, await this.#lease(now + this.#retentionMs))],
    }))
    return !res.succeeded
  }

  /**
   * `setAbove` / `deleteAbove`: the write (`op`) and mark = R + 1 in one transaction, on the
   * condition that no grant or draw happened and the mark did not move since revision R.
   * A key with no fencing state is written without creating any.
   */
  async #above(key: string, op: () => Promise<IRequestOp>): Promise<ITxnResponse> {
    const g = this.#key('g', key)
    const m = this.#key('m', key)
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const { kvs, revision } = await this.#read((c) => c.kv.txn({ success: [range(g), range(m)] })).then((r) => ({ kvs: r.responses.map((x) => x.response_range.kvs[0]), revision: Number(r.header.revision) }))
      const [gkv, mkv] = kvs
      const res =
        gkv === undefined && mkv === undefined
          ? await this.#txnWithLeases(async () => ({
              compare: [modIs(g, 0), modIs(m, 0)],
              success: [await op()],
            }))
          : await this.#txnWithLeases(async () => {
              const current = mkv === undefined ? 0 : Number(mkv.value.toString('utf8'))
              const mark = padFence(Math.max(current, revision + 1))
              return {
                compare: [modIs(g, revision + 1, 'Less'), modIs(m, mkv?.mod_revision ?? 0)],
                success: [await op(), put(m, mark, await this.#lease(this.#clock.now() + this.#retentionMs))],
              }
            })
      if (res.succeeded) return res
    }
    throw new StoreUnavailableError(`etcd ${this.location}: a fenced write on ${JSON.stringify(key).slice(0, 80)} lost ${CAS_ATTEMPTS} races in a row`)
  }

  async #setAbove(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    checkTtl(ttlMs)
    const d = this.#key('d', key)
    this.#checkSize(d, value)
    const now = this.#clock.now()
    const encoded = encodeValue(value, now + ttlMs)
    await this.#above(key, async () => put(d, encoded, await this.#lease(now + ttlMs)))
  }

  async #deleteAbove(key: string): Promise<boolean> {
    const d = this.#key('d', key)
    const res = await this.#above(key, async () => ({ request_delete_range: { key: d, prev_kv: true } }))
    return this.#live(res.responses[0]?.response_delete_range.prev_kvs[0]) !== undefined
  }

  /**
   * Polls the lock record and the fence mark every 15 ms (one read-only transaction): wakes
   * when the lock is gone, its lease (client clock) has ended, its holder changed (released
   * and taken again), or the mark moved (a fenced write or setAbove landed) during the wait or
   * since the grant (the lock record is created by its grant: its create revision). A poll rather
   * than a watch: a lease end has no event to watch, and a poll cannot miss a change made
   * before it started. Resolves on the timeout; rejects only for an abort or an etcd error.
   */
  #waitForRelease(key: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    let l: Buffer
    let m: Buffer
    try {
      this.#open()
      if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) throw new InvalidOptionsError('timeoutMs', `expected a number of ms >= 0, got ${String(timeoutMs)}`)
      l = this.#key('l', key)
      m = this.#key('m', key)
    } catch (err) {
      return Promise.reject(err)
    }
    if (signal?.aborted === true) return Promise.reject(new AbortedError('waitForRelease was aborted'))
    return new Promise<void>((resolve, reject) => {
      let done = false
      let timer: TimerHandle | undefined
      let poll: TimerHandle | undefined
      const finish = (error?: unknown): void => {
        if (done) return
        done = true
        if (timer !== undefined) this.#clock.clearTimeout(timer)
        if (poll !== undefined) this.#clock.clearTimeout(poll)
        signal?.removeEventListener('abort', onAbort)
        this.#waiters.delete(waiter)
        if (error === undefined) resolve()
        else reject(error)
      }
      const onAbort = (): void => finish(new AbortedError('waitForRelease was aborted'))
      const waiter: Waiter = { wake: () => finish() }
      this.#waiters.add(waiter)
      if (Number.isFinite(timeoutMs)) timer = this.#clock.setTimeout(() => finish(), Math.max(0, timeoutMs))
      signal?.addEventListener('abort', onAbort, { once: true })
      let was: string | undefined
      const look = (): void => {
        poll = undefined
        this.#guard(() => this.#readMany([l, m])).then(
          ({ kvs: [lkv, mkv] }) => {
            if (done) return
            const held = decodeLock(lkv)
            // The holder's token, not the record's revision: an extension rewrites the record.
            const state = `${held?.t ?? ''}|${mkv?.mod_revision ?? 0}`
            // A mark written after this grant (the record's create revision): the value is there.
            const writtenUnder = lkv !== undefined && mkv !== undefined && Number(mkv.mod_revision) > Number(lkv.create_revision)
            if (held === undefined || !(held.u > this.#clock.now()) || writtenUnder || (was !== undefined && state !== was)) return finish()
            was ??= state
            poll = this.#clock.setTimeout(look, POLL_MS, { unref: true })
          },
          (err: unknown) => finish(err),
        )
      }
      look()
    })
  }
}

export type EtcdStore = Store & {
  get(key: string, options?: EtcdReadOptions): Promise<Uint8Array | undefined>
  getMany(keys: readonly string[], options?: EtcdReadOptions): Promise<(Uint8Array | undefined)[]>
  readonly locks: StoreLocks
  readonly conditional: ConditionalWrites
  etcdClient(): Promise<Etcd3>
  readonly consistency: EtcdConsistency
  /** The etcd key prefix of this store (`namespace` option). */
  readonly namespace: string
  scan(options?: ScanOptions): Promise<ScanPage>
  watchChanges(listener: (change: EtcdChange) => void): EtcdWatch
}

/** An etcd-backed `Store` (with fenced locks). See the file comment for the mapping and the guarantees. */
export function etcdStore(options: EtcdStoreOptions): EtcdStore {
  return new EtcdStoreImpl(options)
}
