/**
 * `lmdbStore`: the embedded on-disk L2 (the `lmdb` package), shared safely by every process
 * of one host that opens the same directory, and surviving restarts.
 *
 * Design note.
 * - One LMDB environment per directory with three named databases: `data` (cache entries),
 *   `locks` (lease and fence mark per key) and `meta` (the store-wide fence counter and the
 *   usage counters). LMDB serialises write transactions across processes with a lock file
 *   and gives readers MVCC snapshots, so a read-check-write inside one write transaction is
 *   atomic for every process on the host: that is what makes leases and fences safe here.
 * - Every mutation runs as a child transaction of lmdb-js's batched write transaction
 *   (`childTransaction`): many concurrent writes share one commit, and a mutation that
 *   throws (a full store, bad input found late) is rolled back alone, so nothing is ever
 *   half-written. A mutation's promise resolves only after the commit.
 * - Keys are UTF-8 bytes (byte order = code point order, so `clear(prefix)` is one range
 *   scan). A key longer than `DIRECT_KEY_MAX` bytes is stored as its first
 *   `DIRECT_KEY_MAX` bytes plus a SHA-256 of the whole key (no direct key has that length,
 *   so the mapping stays injective), and the whole key is kept in the value so a long
 *   `clear` prefix is still matched exactly. Keys that are not well-formed UTF-16 (lone
 *   surrogates) are refused: UTF-8 cannot tell them apart.
 * - Reads see every commit made before they start, by any process: lmdb-js would keep
 *   reading through a snapshot it renews only on a later macrotask, so a process told of
 *   another's write (a lock release, a bus message) could still read the old state. Each
 *   `get`, `getMany` and lock-state read starts a fresh snapshot (about 1 µs).
 * - A value is `[format u8][expiresAt f64][fullKeyLength u32][fullKey][bytes]`. Expiry is
 *   absolute wall-clock time, checked on every read; a periodic sweep (unref'd timer on the
 *   injected clock) deletes expired entries and idle lock records in bounded batches, each
 *   re-checked inside its write transaction (another process may have rewritten the key).
 * - Capacity (`mapSize`): lmdb-js grows its memory map on demand and never reports a full
 *   map by itself, so the store accounts for what it holds (key, value, header and a fixed
 *   per-entry overhead; large values rounded up to whole pages, as LMDB stores them on
 *   overflow pages). The counters live in `meta` and change in the same transaction as the
 *   data (Zoocache's "atomic counter sync"): a write that would pass the limit throws
 *   `StoreFullError` inside its transaction, which rolls it back. Process-local counters
 *   (sweeps, refusals) are bumped only after the commit.
 * - Locks (cachekit's lockable backend, with fencing): `acquire` takes the lease when it is
 *   free or expired and grants a fence one above both the store-wide counter and the key's
 *   fence mark (`drawFence` draws the same way, without the lease); `setFenced` writes only
 *   when its fence is >= the mark and raises the mark, in the same transaction as the value;
 *   `setAbove` / `deleteAbove` write or delete and raise the mark above the counter in one
 *   transaction (for keys with a lock record: the others have no holder to refuse).
 *   There is no cross-process notification in LMDB: `waitForRelease` wakes at once for a
 *   release or fenced write made by this store instance, and otherwise polls the key's lock
 *   record with the shared backoff (core/backoff.ts: from 1 ms, doubling, ±25 % jitter so
 *   that processes waiting on one key do not poll in step, never more than
 *   `lockPollInterval`), one poller per key
 *   however many callers wait, and always at the lease's end. A waiter in another process
 *   therefore notices a release within `lockPollInterval` (default 25 ms), and a lease that
 *   ran out with no release when it ends.
 *
 * The `lmdb` package is imported here and nowhere else.
 */
import { createHash, randomUUID } from 'node:crypto'
import { open, type Database, type RootDatabase } from 'lmdb'
import { BackoffPolicy, type Backoff } from '../core/backoff.js'
import type { Clock, TimerHandle } from '../core/clock.js'
import { toBytes, toMs, type ByteSize, type Duration } from '../core/duration.js'
import { AbortedError, CacheError, ClosedError, DataDirLockedError, InvalidKeyError, InvalidOptionsError, StoreFullError, StoreUnavailableError } from '../core/errors.js'
import { optionNames, rejectUnknown } from '../core/known-options.js'
import { makeDirectory } from '../core/make-dir.js'
import { mathRandom, type Random, randomOption } from '../core/random.js'
import { systemClock } from '../core/system-clock.js'
import { isAlive, selfIdentity, type ProcessIdentity } from './process-identity.js'
import { checkScanOptions, decodeCursor, encodeCursor } from './scan-options.js'
import { checkStoreToken } from './store-input.js'
import type { LockGrant, ScanOptions, ScanPage, Store, StoreEntry, StoreLocks } from './types.js'

const isLmdbCursor = (state: unknown): state is { k: string } => typeof state === 'object' && state !== null && typeof (state as { k?: unknown }).k === 'string'

export interface LmdbStoreOptions {
  /** Directory of the LMDB environment (created if missing). Every process that passes the same directory shares the store. */
  path: string
  /**
   * Capacity: the most bytes of entries the store accepts (keys, values, a 32-byte header
   * per entry; values over 2 KB count in whole 4 KB pages). Past it writes fail with
   * `ERR_STORE_FULL` and write nothing. The LMDB file grows on demand and may take up to
   * about twice this on disk (page fill, free pages kept for readers). Give every process
   * of a directory the same value. @default '1gb'
   */
  mapSize?: ByteSize
  /** Time source for expiry, leases and timers; processes sharing a directory must share a time base (one host). @default systemClock */
  clock?: Clock
  /** How often the sweep reclaims expired entries and idle lock records. @default '1m' */
  sweepInterval?: Duration
  /** Entries examined per sweep transaction. @default 1000 */
  sweepBatch?: number
  /** Longest gap between two checks of a held lock by `waitForRelease` (the cross-process wake-up bound). @default '25ms' */
  lockPollInterval?: Duration
  /** Source of the lock-poll jitter. @default mathRandom */
  random?: Random
  /** How long a key's lock record (its fence mark) is kept after its last use. @default '1d' */
  fenceRetention?: Duration
  /** Most concurrent LMDB readers (threads and processes together). @default 126 */
  maxReaders?: number
  /**
   * Claim the directory for this store alone while it is open (the cache node does, for its
   * data directory: two nodes on one directory would each trust their own L1 and drift
   * apart). Opening the directory again — exclusive or not, from any process, this one
   * included — then throws `ERR_DATA_DIR_LOCKED` naming the holder. The claim is a record
   * checked for liveness, not a lock a process must release: a holder that died (even by
   * SIGKILL) does not block the next open. See docs/decisions/0130. @default false
   */
  exclusive?: boolean
}

export interface LmdbStoreStats {
  /** Entries stored, shared by every process of the directory (expired ones count until swept). */
  readonly entries: number
  /** Bytes accounted against `mapSize` (shared by every process of the directory). */
  readonly bytes: number
  /** The capacity (`mapSize`) this store enforces. */
  readonly capacity: number
  /** Expired entries and idle lock records this process's sweep removed. */
  readonly swept: number
  /** Writes this process refused with ERR_STORE_FULL. */
  readonly fullRefusals: number
}

/**
 * The exclusive claim of a directory, kept in `meta` under `owner` (JSON): who holds it, so
 * that another opener can tell a live holder from a dead one.
 */
interface OwnerRecord extends ProcessIdentity {
  /** When the claim was made (ms since the epoch, the store's clock). */
  readonly since: number
  /** This claim (a process may open, close and reopen a directory). */
  readonly token: string
}

/** A `Store` with LMDB-specific statistics. */
export interface LmdbStore extends Store {
  readonly locks: StoreLocks
  scan(options?: ScanOptions): Promise<ScanPage>
  /** Usage read from the store (committed values only) and this process's counters. */
  stats(): LmdbStoreStats
  /**
   * Runs one sweep lap now (it also runs every `sweepInterval`): removes expired entries and
   * idle lock records; resolves with how many it removed.
   */
  sweep(): Promise<number>
  /**
   * Entries whose key starts with `prefix` ('' = all), read from the store (every process's
   * writes), synchronously and without reading values: an expired entry counts until the
   * sweep removes it.
   */
  count(prefix?: string): number
}

const FORMAT = 1
/** Value header: format u8, expiresAt f64, full-key length u32. */
const HEADER = 13
/** Per-entry bytes charged on top of key, header and value (LMDB node header and slot). */
const ENTRY_OVERHEAD = 16
/** A value larger than this lives on overflow pages and is charged in whole pages. */
const OVERFLOW_AT = 2000
const PAGE = 4096
/** Longest key stored as is; longer keys are truncated to this and given a hash suffix. */
const DIRECT_KEY_MAX = 1900
const LOCK_HEADER = 24
const META_STATE = Buffer.from('state')
const META_FORMAT = Buffer.from('format')
const META_OWNER = Buffer.from('owner')
/** First poll of a held lock; doubles up to lockPollInterval. */
const FIRST_POLL_MS = 1
/** Deletes per clear transaction (a huge clear does not hold the writer for long). */
const CLEAR_BATCH = 10_000
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Opens (or creates) the store at `options.path`. Throws `ERR_INVALID_OPTIONS` for bad options, `ERR_STORE_UNAVAILABLE` when LMDB cannot open the directory. */
export function lmdbStore(options: LmdbStoreOptions): LmdbStore {
  return new LmdbStoreImpl(options)
}

/** A `set` waiting in a group of sets (see `#startPuts`). */
interface QueuedPut {
  readonly key: Buffer
  /** The stored record, built when the set was called (its expiry is written in the transaction). */
  readonly record: Buffer
  readonly ttlMs: number
  readonly resolve: () => void
  readonly reject: (err: unknown) => void
  /** Set inside the transaction when this set alone would pass the capacity. */
  refusal: StoreFullError | undefined
}

interface Usage {
  fence: number
  entries: number
  bytes: number
}

interface LockRecord {
  /** Lease end; 0 when released. */
  expiresAt: number
  /** Highest fence written through setFenced; -Infinity when none. */
  highWater: number
  /** Last acquire, extend, release or fenced write: the retention clock. */
  lastUsed: number
  /** Holder's token; '' when free. */
  token: string
}

interface Waiter {
  readonly deadline: number
  /** The lock as the waiter first saw it: any change of holder or fence mark wakes it. */
  readonly token: string
  readonly highWater: number
  readonly wake: (err?: AbortedError) => void
}

interface SweepLap {
  /** Entries first, then lock records. */
  onData: boolean
  /** The last key examined; the next batch starts after it. */
  cursor: Buffer | undefined
}

interface KeyWaiters {
  readonly waiters: Set<Waiter>
  timer: TimerHandle | undefined
  /** Poll delays: the current attempt's is the next poll's. */
  readonly polls: Backoff
}

function checkTtl(ms: unknown, name: string): asserts ms is number {
  if (typeof ms !== 'number' || !(ms > 0)) throw new InvalidOptionsError(name, `expected a number of ms > 0 or Infinity, got ${String(ms)}`)
}

function checkValue(value: unknown): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new InvalidOptionsError('value', `expected a Uint8Array, got ${typeof value}`)
}

/** UTF-8 bytes of a key or prefix; refuses what UTF-8 cannot represent exactly. */
function utf8(text: unknown, what: string): Buffer {
  if (typeof text !== 'string') throw new InvalidKeyError(`A store ${what} must be a string, got ${typeof text}`)
  if (LONE_SURROGATE.test(text)) throw new InvalidKeyError(`A store ${what} must be well-formed UTF-16 (it has a lone surrogate)`)
  return Buffer.from(text, 'utf8')
}

/** The LMDB key of a store key (see the design note): the bytes, or a truncated prefix plus a hash. */
function encodeKey(full: Buffer): Buffer {
  if (full.length === 0) throw new InvalidKeyError('A store key must not be empty')
  if (full.length <= DIRECT_KEY_MAX) return full
  const hash = createHash('sha256').update(full).digest()
  return Buffer.concat([full.subarray(0, DIRECT_KEY_MAX), hash])
}

/** Bytes charged against the capacity for an entry. */
function cost(keyLength: number, recordLength: number): number {
  const stored = recordLength > OVERFLOW_AT ? Math.ceil(recordLength / PAGE) * PAGE : recordLength
  return keyLength + stored + ENTRY_OVERHEAD
}

function record(full: Buffer, lmdbKey: Buffer, value: Uint8Array, expiresAt: number): Buffer {
  const keyPart = full === lmdbKey ? 0 : full.length
  const out = Buffer.allocUnsafe(HEADER + keyPart + value.byteLength)
  out[0] = FORMAT
  out.writeDoubleLE(expiresAt, 1)
  out.writeUInt32LE(keyPart, 9)
  if (keyPart > 0) full.copy(out, HEADER)
  out.set(value, HEADER + keyPart)
  return out
}

function recordExpiry(rec: Uint8Array): number {
  if (rec.length < HEADER || rec[0] !== FORMAT) return -Infinity // unknown layout: treated as expired, so the sweep reclaims it
  return Buffer.from(rec.buffer, rec.byteOffset, rec.length).readDoubleLE(1)
}

function recordKeyLength(rec: Uint8Array): number {
  return Buffer.from(rec.buffer, rec.byteOffset, rec.length).readUInt32LE(9)
}

function encodeLock(lock: LockRecord): Buffer {
  const token = Buffer.from(lock.token, 'utf8')
  const out = Buffer.allocUnsafe(LOCK_HEADER + token.length)
  out.writeDoubleLE(lock.expiresAt, 0)
  out.writeDoubleLE(lock.highWater, 8)
  out.writeDoubleLE(lock.lastUsed, 16)
  token.copy(out, LOCK_HEADER)
  return out
}

function decodeLock(buf: Uint8Array | undefined): LockRecord | undefined {
  if (buf === undefined || buf.length < LOCK_HEADER) return undefined
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length)
  return { expiresAt: b.readDoubleLE(0), highWater: b.readDoubleLE(8), lastUsed: b.readDoubleLE(16), token: b.toString('utf8', LOCK_HEADER, buf.length) }
}

function encodeUsage(u: Usage): Buffer {
  const out = Buffer.allocUnsafe(24)
  out.writeDoubleLE(u.fence, 0)
  out.writeDoubleLE(u.entries, 8)
  out.writeDoubleLE(u.bytes, 16)
  return out
}

/** Maps a failure of LMDB itself to a typed error (our own CacheErrors pass through). */
function storeError(err: unknown, operation: string): CacheError {
  if (err instanceof CacheError) return err
  const message = err instanceof Error ? err.message : String(err)
  if (/MDB_MAP_FULL|ENOSPC|No space left/i.test(message)) return new StoreFullError(`lmdb ${operation}: the disk or map is full (${message}); nothing was written`, { cause: err })
  return new StoreUnavailableError(`lmdb ${operation} failed: ${message}`, { cause: err })
}

/** lmdbStore's option names: another is refused, not ignored (core/known-options.ts). */
const LMDB_OPTIONS = optionNames<LmdbStoreOptions>({ path: true, mapSize: true, clock: true, sweepInterval: true, sweepBatch: true, lockPollInterval: true, random: true, fenceRetention: true, maxReaders: true, exclusive: true })

function validate(options: LmdbStoreOptions): void {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionsError('lmdbStore', 'expected an options object with a path')
  rejectUnknown(options, LMDB_OPTIONS, 'lmdb')
  if (typeof options.path !== 'string' || options.path.trim() === '') throw new InvalidOptionsError('lmdb.path', 'expected a directory path')
  const { clock, sweepBatch, maxReaders } = options
  if (clock !== undefined && (typeof clock?.now !== 'function' || typeof clock.setTimeout !== 'function' || typeof clock.clearTimeout !== 'function')) {
    throw new InvalidOptionsError('lmdb.clock', 'expected a Clock')
  }
  if (sweepBatch !== undefined && (!Number.isSafeInteger(sweepBatch) || sweepBatch < 1)) throw new InvalidOptionsError('lmdb.sweepBatch', `expected an integer >= 1, got ${String(sweepBatch)}`)
  if (maxReaders !== undefined && (!Number.isSafeInteger(maxReaders) || maxReaders < 1)) throw new InvalidOptionsError('lmdb.maxReaders', `expected an integer >= 1, got ${String(maxReaders)}`)
  randomOption(options.random, 'lmdb.random', mathRandom)
  if (options.exclusive !== undefined && typeof options.exclusive !== 'boolean') throw new InvalidOptionsError('lmdb.exclusive', `expected a boolean, got ${typeof options.exclusive}`)
}

function decodeOwner(buf: Uint8Array | undefined): OwnerRecord | undefined {
  if (buf === undefined) return undefined
  try {
    const o = JSON.parse(Buffer.from(buf).toString('utf8')) as OwnerRecord
    return typeof o === 'object' && o !== null && typeof o.pid === 'number' && typeof o.token === 'string' ? o : undefined
  } catch {
    return undefined // unreadable: no claim anyone can check, so none
  }
}

function lockedError(path: string, owner: OwnerRecord, self: boolean): DataDirLockedError {
  const who = self ? 'this process' : `another live process (pid ${owner.pid} on ${owner.host})`
  return new DataDirLockedError(
    path,
    owner.pid,
    `The data directory ${JSON.stringify(path)} is held by ${who}, exclusively since ${new Date(owner.since).toISOString()}; ` +
      'two processes serving one directory would drift apart. Stop the other one, or use another directory.',
  )
}

function positiveMs(value: Duration | undefined, fallback: Duration, option: string): number {
  const ms = toMs(value ?? fallback, option)
  if (!(ms > 0) || ms === Infinity) throw new InvalidOptionsError(option, `expected a finite duration > 0, got ${String(value)}`)
  return ms
}

class LmdbStoreImpl implements LmdbStore {
  readonly name = 'lmdb'
  readonly locks: StoreLocks
  readonly #clock: Clock
  readonly #capacity: number
  readonly #sweepInterval: number
  readonly #sweepBatch: number
  readonly #polls: BackoffPolicy
  readonly #retention: number
  readonly #root: RootDatabase
  readonly #data: Database<Buffer, Buffer>
  readonly #locks: Database<Buffer, Buffer>
  readonly #meta: Database<Buffer, Buffer>
  readonly #waiting = new Map<string, KeyWaiters>()
  /** Mutations in flight: close waits for them before closing the environment. */
  readonly #pending = new Set<Promise<unknown>>()
  /** Sets waiting for their group's child transaction to run (see #startPuts); undefined when none is open. */
  #openPuts: QueuedPut[] | undefined
  #sweepTimer: TimerHandle | undefined
  #sweeping: Promise<void> | undefined
  #closing: Promise<void> | undefined
  #swept = 0
  #fullRefusals = 0
  /** This store's exclusive claim, released on close. */
  readonly #owner: string | undefined

  constructor(options: LmdbStoreOptions) {
    validate(options)
    this.#clock = options.clock ?? systemClock
    this.#capacity = toBytes(options.mapSize ?? '1gb', 'lmdb.mapSize')
    this.#sweepInterval = positiveMs(options.sweepInterval, '1m', 'lmdb.sweepInterval')
    this.#sweepBatch = options.sweepBatch ?? 1000
    const pollMax = positiveMs(options.lockPollInterval, '25ms', 'lmdb.lockPollInterval')
    this.#polls = new BackoffPolicy({ initial: Math.min(FIRST_POLL_MS, pollMax), max: pollMax, jitter: 0.25 }, options.random ?? mathRandom, 'lmdb.lockPoll')
    this.#retention = positiveMs(options.fenceRetention, '1d', 'lmdb.fenceRetention')
    let root: RootDatabase | undefined
    try {
      // Made here first: lmdb-js's own recursive mkdir never ends under /proc (core/make-dir.ts).
      makeDirectory(options.path)
      // noSubdir false: `path` is always a directory, whatever it looks like.
      root = open({ path: options.path, noSubdir: false, maxDbs: 4, maxReaders: options.maxReaders ?? 126 })
      const binary = { encoding: 'binary', keyEncoding: 'binary' } as const
      this.#data = root.openDB<Buffer, Buffer>({ name: 'data', ...binary })
      this.#locks = root.openDB<Buffer, Buffer>({ name: 'locks', ...binary })
      const meta = root.openDB<Buffer, Buffer>({ name: 'meta', ...binary })
      this.#meta = meta
      const format = meta.get(META_FORMAT)
      if (format === undefined) {
        meta.transactionSync(() => {
          if (meta.get(META_FORMAT) === undefined) meta.putSync(META_FORMAT, Buffer.from([FORMAT]))
        })
      } else if (format[0] !== FORMAT) {
        throw new InvalidOptionsError('lmdb.path', `holds a store of format ${String(format[0])}; this version reads format ${FORMAT}`)
      }
      this.#owner = this.#claim(meta, options.path, options.exclusive === true)
      this.#root = root
    } catch (err) {
      // Whatever failed after the environment opened, do not leave it open.
      root?.close().catch(() => {})
      if (err instanceof CacheError) throw err
      throw new StoreUnavailableError(`lmdb could not open ${JSON.stringify(options.path)}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    }
    this.locks = {
      acquire: (key, token, leaseMs) => this.#acquire(key, token, leaseMs),
      extend: (key, token, leaseMs) => this.#extend(key, token, leaseMs),
      release: (key, token) => this.#release(key, token),
      drawFence: (key) => this.#drawFence(key),
      setFenced: (key, value, ttlMs, fence) => this.#setFenced(key, value, ttlMs, fence),
      setAbove: (key, value, ttlMs) => this.#setAbove(key, value, ttlMs),
      deleteAbove: (key) => this.#deleteAbove(key),
      waitForRelease: (key, timeoutMs, signal) => this.#waitForRelease(key, timeoutMs, signal),
    }
    this.#scheduleSweep()
  }

  /**
   * Checks the directory's claim, and takes it when `exclusive`. Check and take run in one
   * write transaction, which LMDB serialises across processes (its writer mutex is robust:
   * a writer killed mid-transaction does not keep it), so two openers cannot both win.
   */
  #claim(meta: Database<Buffer, Buffer>, path: string, exclusive: boolean): string | undefined {
    const self = selfIdentity()
    const check = (): OwnerRecord | undefined => {
      const owner = decodeOwner(meta.get(META_OWNER))
      if (owner !== undefined && isAlive(owner)) throw lockedError(path, owner, owner.pid === self.pid && owner.start === self.start)
      return owner
    }
    if (!exclusive) {
      check()
      return undefined
    }
    const token = randomUUID()
    meta.transactionSync(() => {
      check()
      const record: OwnerRecord = { ...self, since: this.#clock.now(), token }
      meta.putSync(META_OWNER, Buffer.from(JSON.stringify(record), 'utf8'))
    })
    return token
  }

  // ---- Store ---------------------------------------------------------------------------

  async get(key: string): Promise<Uint8Array | undefined> {
    this.#open()
    const k = encodeKey(utf8(key, 'key'))
    this.#root.resetReadTxn()
    return this.#read(k, this.#clock.now())
  }

  async getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    this.#open()
    checkArray(keys, 'keys')
    const encoded = keys.map((key) => encodeKey(utf8(key, 'key')))
    this.#root.resetReadTxn()
    const now = this.#clock.now()
    return encoded.map((k) => this.#read(k, now))
  }

  async set(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    this.#open()
    const full = utf8(key, 'key')
    const k = encodeKey(full)
    checkValue(value)
    checkTtl(ttlMs, 'ttlMs')
    // The record is built now, with the value copied into it (the caller may reuse its buffer
    // before the transaction runs): one copy, the expiry is filled in inside the transaction.
    const rec = record(full, k, value, 0)
    return new Promise<void>((resolve, reject) => {
      const put: QueuedPut = { key: k, record: rec, ttlMs, resolve, reject, refusal: undefined }
      const open = this.#openPuts
      if (open !== undefined) open.push(put)
      else this.#startPuts([put])
    })
  }

  /**
   * Sets share one child transaction per lmdb-js batch (decision 0243): the first set opens
   * a group and queues one child transaction for it; sets arriving before lmdb-js runs that
   * child join the group, so one batch does one nested transaction and one usage update for
   * all of them instead of one each. Inside the child each set is decided alone, in arrival
   * order: one that would pass the capacity writes nothing and fails alone with
   * `ERR_STORE_FULL` (the check precedes its write); any other failure rolls the whole group
   * back and fails each of its sets. Every set settles after the batch's commit.
   */
  #startPuts(group: QueuedPut[]): void {
    let started = false
    let run: Promise<void>
    try {
      run = this.#mutate('set', (usage) => {
        // From here on a set starts a new group (lmdb-js puts it in the next batch).
        started = true
        if (this.#openPuts === group) this.#openPuts = undefined
        const now = this.#clock.now()
        for (const p of group) {
          try {
            p.record.writeDoubleLE(now + p.ttlMs, 1)
            this.#putRecord(usage, p.key, p.record)
          } catch (err) {
            if (!(err instanceof StoreFullError)) throw err
            p.refusal = err
          }
        }
      })
    } catch (err) {
      for (const p of group) p.reject(storeError(err, 'set'))
      return
    }
    // Open until its transaction starts (at once when already inside a write transaction).
    if (!started) this.#openPuts = group
    run.then(
      () => {
        let refused = false
        for (const p of group) {
          if (p.refusal === undefined) p.resolve()
          else {
            refused = true
            this.#fullRefusals++
            p.reject(p.refusal)
          }
        }
        // Room held by expired entries comes back now, not at the next interval.
        if (refused) this.#sweepNow()
      },
      (err: unknown) => {
        if (this.#openPuts === group) this.#openPuts = undefined
        for (const p of group) p.reject(err)
      },
    )
  }

  async setMany(entries: readonly StoreEntry[]): Promise<void> {
    this.#open()
    // Validate and copy everything first: a bad entry must not leave the batch half written.
    checkArray(entries, 'entries')
    const prepared = entries.map((e) => {
      if (typeof e !== 'object' || e === null) throw new InvalidOptionsError('entries', 'expected { key, value, ttlMs } objects')
      const full = utf8(e.key, 'key')
      checkValue(e.value)
      checkTtl(e.ttlMs, 'ttlMs')
      return { full, key: encodeKey(full), value: new Uint8Array(e.value), ttlMs: e.ttlMs }
    })
    if (prepared.length === 0) return
    await this.#mutate('setMany', (usage) => {
      const now = this.#clock.now()
      for (const e of prepared) this.#put(usage, e.full, e.key, e.value, now + e.ttlMs)
    })
  }

  async delete(key: string): Promise<boolean> {
    this.#open()
    const k = encodeKey(utf8(key, 'key'))
    return this.#mutate('delete', (usage) => this.#remove(usage, k, this.#clock.now()))
  }

  async deleteMany(keys: readonly string[]): Promise<number> {
    this.#open()
    checkArray(keys, 'keys')
    const encoded = keys.map((key) => encodeKey(utf8(key, 'key')))
    if (encoded.length === 0) return 0
    return this.#mutate('deleteMany', (usage) => {
      const now = this.#clock.now()
      let n = 0
      // A duplicate finds nothing the second time, so it counts once.
      for (const k of encoded) if (this.#remove(usage, k, now)) n++
      return n
    })
  }

  async touch(key: string, ttlMs: number): Promise<boolean> {
    this.#open()
    const k = encodeKey(utf8(key, 'key'))
    checkTtl(ttlMs, 'ttlMs')
    return this.#mutate('touch', () => {
      const now = this.#clock.now()
      const rec = this.#data.getBinary(k)
      if (rec === undefined || now >= recordExpiry(rec)) return false
      // Same size: the usage counters do not change.
      const copy = Buffer.from(rec)
      copy.writeDoubleLE(now + ttlMs, 1)
      this.#data.putSync(k, copy)
      return true
    })
  }

  async clear(prefix: string): Promise<void> {
    this.#open()
    const full = utf8(prefix, 'prefix')
    // A prefix longer than the direct part only matches hashed keys: scan their direct part
    // and compare the whole key kept in each value.
    const scan = full.length > DIRECT_KEY_MAX ? full.subarray(0, DIRECT_KEY_MAX) : full
    const exact = full.length > DIRECT_KEY_MAX ? full : undefined
    for (;;) {
      const removed = await this.#mutate('clear', (usage) => {
        let n = 0
        const victims: { key: Buffer; size: number }[] = []
        for (const { key, value } of this.#data.getRange({ start: scan.length === 0 ? undefined : scan, snapshot: false })) {
          if (!startsWith(key, scan)) break
          if (exact !== undefined && !fullKeyStartsWith(value, exact)) continue
          victims.push({ key: Buffer.from(key), size: value.length })
          if (victims.length >= CLEAR_BATCH) break
        }
        for (const v of victims) {
          if (this.#data.removeSync(v.key)) {
            usage.entries--
            usage.bytes -= cost(v.key.length, v.size)
            n++
          }
        }
        return n
      })
      if (removed < CLEAR_BATCH) return
    }
    // Lock records (fence marks) survive a clear: they guard writes, not values.
  }

  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  /**
   * Walks the keys in LMDB key order (UTF-8 bytes); the cursor is the last LMDB key examined,
   * so writes and deletes meanwhile never shift the walk. One read snapshot per page; at
   * most `4 × limit + 256` records examined per page (expired ones are skipped, so a page
   * may come back short, or empty with a cursor).
   */
  async scan(options?: ScanOptions): Promise<ScanPage> {
    this.#open()
    const { prefix, cursor, limit } = checkScanOptions(options)
    const full = utf8(prefix, 'prefix')
    // A prefix longer than the direct part only matches hashed keys (see clear).
    const direct = full.length > DIRECT_KEY_MAX ? full.subarray(0, DIRECT_KEY_MAX) : full
    const exact = full.length > DIRECT_KEY_MAX ? full : undefined
    const after = cursor === undefined ? undefined : Buffer.from(decodeCursor(cursor, isLmdbCursor, 'lmdb').k, 'base64url')
    let start: Buffer | undefined = direct.length === 0 ? undefined : direct
    let exclusiveStart = false
    if (after !== undefined && (start === undefined || Buffer.compare(after, start) >= 0)) {
      start = after
      exclusiveStart = true
    }
    const budget = 4 * limit + 256
    const keys: string[] = []
    let last: Buffer | undefined
    let examined = 0
    let done = true
    try {
      this.#root.resetReadTxn()
      const now = this.#clock.now()
      for (const { key, value } of this.#data.getRange({ start, exclusiveStart })) {
        if (!startsWith(key, direct)) break
        if (keys.length >= limit || examined >= budget) {
          done = false
          break
        }
        examined++
        last = Buffer.from(key) // lmdb-js may reuse the key's buffer for the next record
        if (exact !== undefined && !fullKeyStartsWith(value, exact)) continue
        if (now >= recordExpiry(value)) continue
        const n = recordKeyLength(value)
        keys.push(n > 0 ? Buffer.from(value.buffer, value.byteOffset + HEADER, n).toString('utf8') : key.toString('utf8'))
      }
    } catch (err) {
      throw storeError(err, 'scan')
    }
    return { keys, cursor: done || last === undefined ? undefined : encodeCursor({ k: last.toString('base64url') }) }
  }

  count(prefix = ''): number {
    this.#open()
    const full = utf8(prefix, 'prefix')
    this.#root.resetReadTxn()
    try {
      if (full.length > DIRECT_KEY_MAX) {
        // Only hashed keys can match: compare the whole key kept in each value.
        let n = 0
        const scan = full.subarray(0, DIRECT_KEY_MAX)
        for (const { key, value } of this.#data.getRange({ start: scan })) {
          if (!startsWith(key, scan)) break
          if (fullKeyStartsWith(value, full)) n++
        }
        return n
      }
      // LMDB keeps the total (O(1)) but no range counts: counting a range walks it (about
      // 40 ms per million keys, on the event loop). So the keys inside the prefix and those
      // outside it are walked in step, and whichever side ends first gives the count (the
      // inside, or the total minus the outside): about twice the smaller side. The node's
      // namespace beside a few tombstones costs those few; a small prefix, its own keys.
      const total = (this.#data.getStats() as { entryCount: number }).entryCount
      if (full.length === 0) return total
      const end = prefixEnd(full)
      const data = this.#data
      const inside = data.getKeys({ start: full, end })[Symbol.iterator]()
      const outside = (function* () {
        yield* data.getKeys({ end: full })
        if (end !== undefined) yield* data.getKeys({ start: end })
      })()
      let n = 0
      try {
        for (;;) {
          if (inside.next().done === true) return n
          if (outside.next().done === true) return total - n
          n++
        }
      } finally {
        inside.return?.()
        outside.return()
      }
    } catch (err) {
      throw storeError(err, 'count')
    }
  }

  stats(): LmdbStoreStats {
    this.#open()
    const usage = this.#usage()
    return { entries: usage.entries, bytes: usage.bytes, capacity: this.#capacity, swept: this.#swept, fullRefusals: this.#fullRefusals }
  }

  // ---- locks ---------------------------------------------------------------------------

  async #acquire(key: string, token: string, leaseMs: number): Promise<LockGrant | undefined> {
    this.#open()
    const k = encodeKey(utf8(key, 'key'))
    checkStoreToken(token)
    checkTtl(leaseMs, 'leaseMs')
    return this.#mutate('acquire', (usage) => {
      const now = this.#clock.now()
      const lock = decodeLock(this.#locks.getBinary(k))
      if (lock !== undefined && lock.token !== '' && now < lock.expiresAt) return undefined
      const highWater = lock?.highWater ?? -Infinity
      // Above the key's mark too, or a caller that once wrote with a made-up high fence would
      // lock every later holder out of setFenced.
      const fence = Math.max(usage.fence, Math.floor(highWater)) + 1
      usage.fence = fence
      this.#locks.putSync(k, encodeLock({ expiresAt: now + leaseMs, highWater, lastUsed: now, token }))
      return { token, fence }
    })
  }

  async #extend(key: string, token: string, leaseMs: number): Promise<boolean> {
    this.#open()
    const k = encodeKey(utf8(key, 'key'))
    checkStoreToken(token)
    checkTtl(leaseMs, 'leaseMs')
    return this.#mutate('extend', () => {
      const now = this.#clock.now()
      const lock = decodeLock(this.#locks.getBinary(k))
      if (lock === undefined || lock.token !== token || token === '' || now >= lock.expiresAt) return false
      this.#locks.putSync(k, encodeLock({ ...lock, expiresAt: now + leaseMs, lastUsed: now }))
      return true
    })
  }

  async #release(key: string, token: string): Promise<boolean> {
    this.#open()
    const k = encodeKey(utf8(key, 'key'))
    checkStoreToken(token)
    const released = await this.#mutate('release', () => {
      const now = this.#clock.now()
      const lock = decodeLock(this.#locks.getBinary(k))
      if (lock === undefined || lock.token !== token || token === '' || now >= lock.expiresAt) return false
      this.#locks.putSync(k, encodeLock({ ...lock, expiresAt: 0, token: '', lastUsed: now }))
      return true
    })
    // After the commit: a woken waiter that re-reads finds the lock free.
    if (released) this.#wakeAll(k)
    return released
  }

  async #drawFence(key: string): Promise<number> {
    this.#open()
    const k = encodeKey(utf8(key, 'key'))
    return this.#mutate('drawFence', (usage) => {
      // As a grant's fence, without the lease: above the counter and the key's mark.
      const lock = decodeLock(this.#locks.getBinary(k))
      const fence = Math.max(usage.fence, Math.floor(lock?.highWater ?? -Infinity)) + 1
      usage.fence = fence
      // Recorded: setAbove raises the mark of keys with a record only.
      const now = this.#clock.now()
      this.#locks.putSync(k, encodeLock({ expiresAt: lock?.expiresAt ?? 0, highWater: lock?.highWater ?? -Infinity, lastUsed: now, token: lock?.token ?? '' }))
      return fence
    })
  }

  async #setAbove(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    this.#open()
    const full = utf8(key, 'key')
    const k = encodeKey(full)
    checkValue(value)
    checkTtl(ttlMs, 'ttlMs')
    const bytes = new Uint8Array(value)
    const raised = await this.#mutate('setAbove', (usage) => {
      const now = this.#clock.now()
      this.#put(usage, full, k, bytes, now + ttlMs)
      return this.#raiseMark(usage, k, now)
    })
    if (raised) this.#wakeAll(k)
  }

  async #deleteAbove(key: string): Promise<boolean> {
    this.#open()
    const k = encodeKey(utf8(key, 'key'))
    return this.#mutate('deleteAbove', (usage) => {
      const now = this.#clock.now()
      const existed = this.#remove(usage, k, now)
      this.#raiseMark(usage, k, now)
      return existed
    })
  }

  /**
   * Inside a write transaction: raises the key's fence mark above every fence granted or
   * drawn so far (the store-wide counter) if the key has a lock record; false if it has
   * none. A key without one had no grant or draw within `fenceRetention` (acquire and
   * drawFence write it, the sweep drops it only after that long idle): nobody to refuse,
   * and no record is created for keys that are only ever written explicitly.
   */
  #raiseMark(usage: Usage, k: Buffer, now: number): boolean {
    const lock = decodeLock(this.#locks.getBinary(k))
    if (lock === undefined) return false
    const mark = Math.max(usage.fence, Math.floor(lock.highWater)) + 1
    usage.fence = mark
    this.#locks.putSync(k, encodeLock({ ...lock, highWater: mark, lastUsed: now }))
    return true
  }

  async #setFenced(key: string, value: Uint8Array, ttlMs: number, fence: number): Promise<boolean> {
    this.#open()
    const full = utf8(key, 'key')
    const k = encodeKey(full)
    checkValue(value)
    checkTtl(ttlMs, 'ttlMs')
    if (typeof fence !== 'number' || !Number.isFinite(fence)) throw new InvalidOptionsError('fence', `expected a finite number, got ${String(fence)}`)
    const bytes = new Uint8Array(value)
    const written = await this.#mutate('setFenced', (usage) => {
      const now = this.#clock.now()
      const lock = decodeLock(this.#locks.getBinary(k))
      if (lock !== undefined && fence < lock.highWater) return false
      // Value and mark in one transaction: a full store refuses both.
      this.#put(usage, full, k, bytes, now + ttlMs)
      this.#locks.putSync(k, encodeLock({ expiresAt: lock?.expiresAt ?? 0, highWater: fence, lastUsed: now, token: lock?.token ?? '' }))
      return true
    })
    if (written) this.#wakeAll(k)
    return written
  }

  #waitForRelease(key: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    let k: Buffer
    let lock: LockRecord | undefined
    try {
      this.#open()
      k = encodeKey(utf8(key, 'key'))
      if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) throw new InvalidOptionsError('timeoutMs', `expected a number of ms >= 0, got ${String(timeoutMs)}`)
      if (signal?.aborted === true) throw new AbortedError('waitForRelease was aborted', { cause: signal.reason })
      this.#root.resetReadTxn()
      lock = decodeLock(this.#locks.getBinary(k))
    } catch (err) {
      return Promise.reject(storeError(err, 'waitForRelease'))
    }
    const now = this.#clock.now()
    if (lock === undefined || lock.token === '' || now >= lock.expiresAt || timeoutMs === 0) return Promise.resolve()
    const held = lock
    const id = k.toString('latin1')
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => waiter.wake(new AbortedError('waitForRelease was aborted', { cause: signal?.reason }))
      const waiter: Waiter = {
        deadline: now + timeoutMs,
        token: held.token,
        highWater: held.highWater,
        wake: (err) => {
          const entry = this.#waiting.get(id)
          if (entry === undefined || !entry.waiters.delete(waiter)) return
          if (entry.waiters.size === 0) {
            if (entry.timer !== undefined) this.#clock.clearTimeout(entry.timer)
            this.#waiting.delete(id)
          }
          signal?.removeEventListener('abort', onAbort)
          if (err === undefined) resolve()
          else reject(err)
        },
      }
      let entry = this.#waiting.get(id)
      if (entry === undefined) {
        entry = { waiters: new Set(), timer: undefined, polls: this.#polls.attempts() }
        this.#waiting.set(id, entry)
      }
      entry.waiters.add(waiter)
      signal?.addEventListener('abort', onAbort, { once: true })
      // A new waiter polls soon again: its caller wants the news now.
      entry.polls.reset()
      this.#arm(id, k, entry, held.expiresAt)
    })
  }

  /** (Re)arms the key's poller: the next poll, a waiter's deadline or the lease end, whichever is first. */
  #arm(id: string, k: Buffer, entry: KeyWaiters, leaseEnd: number): void {
    if (entry.timer !== undefined) this.#clock.clearTimeout(entry.timer)
    const now = this.#clock.now()
    let at = Math.min(now + entry.polls.current(), leaseEnd)
    for (const w of entry.waiters) if (w.deadline < at) at = w.deadline
    entry.timer = this.#clock.setTimeout(() => this.#poll(id, k, entry), Math.max(0, at - now))
  }

  #poll(id: string, k: Buffer, entry: KeyWaiters): void {
    entry.timer = undefined
    if (this.#waiting.get(id) !== entry) return
    const now = this.#clock.now()
    let lock: LockRecord | undefined
    try {
      this.#root.resetReadTxn() // a fresh snapshot: see the note at the top
      lock = decodeLock(this.#locks.getBinary(k))
    } catch {
      lock = undefined // the store failed (closing): let the waiters go, as on a release
    }
    for (const w of [...entry.waiters]) {
      const changed = lock === undefined || lock.token === '' || now >= lock.expiresAt || lock.token !== w.token || lock.highWater !== w.highWater
      if (changed || now >= w.deadline) w.wake()
    }
    if (entry.waiters.size === 0) return
    entry.polls.next()
    this.#arm(id, k, entry, lock?.expiresAt ?? now)
  }

  #wakeAll(k: Buffer): void {
    const entry = this.#waiting.get(k.toString('latin1'))
    if (entry === undefined) return
    for (const w of [...entry.waiters]) w.wake()
  }

  // ---- internals -----------------------------------------------------------------------

  #open(): void {
    if (this.#closing !== undefined) throw new ClosedError('The lmdb store is closed')
  }

  #read(k: Buffer, now: number): Uint8Array | undefined {
    let rec: Buffer | undefined
    try {
      rec = this.#data.getBinary(k)
    } catch (err) {
      throw storeError(err, 'get')
    }
    if (rec === undefined || now >= recordExpiry(rec)) return undefined
    // A fresh copy owned by the caller (getBinary may hand out a shared buffer).
    return new Uint8Array(rec.subarray(HEADER + recordKeyLength(rec), rec.length))
  }

  /** Writes one entry inside a transaction, keeping the usage counters; throws StoreFullError past the capacity. */
  #put(usage: Usage, full: Buffer, k: Buffer, value: Uint8Array, expiresAt: number): void {
    this.#putRecord(usage, k, record(full, k, value, expiresAt))
  }

  /** Writes one encoded record inside a transaction, as `#put`. */
  #putRecord(usage: Usage, k: Buffer, rec: Buffer): void {
    const old = this.#data.getBinaryFast(k)
    const oldCost = old === undefined ? 0 : cost(k.length, old.length)
    const newCost = cost(k.length, rec.length)
    const bytes = usage.bytes - oldCost + newCost
    if (bytes > this.#capacity) {
      throw new StoreFullError(`lmdb store is full: writing ${newCost} bytes would make ${bytes} of ${this.#capacity} (mapSize); nothing was written`)
    }
    this.#data.putSync(k, rec)
    usage.bytes = bytes
    if (old === undefined) usage.entries++
  }

  /** Removes an entry inside a transaction; true when it existed and had not expired. */
  #remove(usage: Usage, k: Buffer, now: number): boolean {
    const old = this.#data.getBinaryFast(k)
    if (old === undefined) return false
    const live = now < recordExpiry(old)
    const size = old.length
    this.#data.removeSync(k)
    usage.entries--
    usage.bytes -= cost(k.length, size)
    return live
  }

  #usage(): Usage {
    const buf = this.#meta.getBinaryFast(META_STATE)
    if (buf === undefined || buf.length < 24) return { fence: 0, entries: 0, bytes: 0 }
    const b = Buffer.from(buf.buffer, buf.byteOffset, 24)
    return { fence: b.readDoubleLE(0), entries: b.readDoubleLE(8), bytes: b.readDoubleLE(16) }
  }

  /**
   * Runs `fn` in its own child transaction of the next batched write: the usage counters are
   * read inside it and written back only if they changed; a throw rolls back everything `fn`
   * did. Resolves after the commit.
   */
  #mutate<T>(operation: string, fn: (usage: Usage) => T): Promise<T> {
    // A set issued after this mutation must not join a group queued before it (see #startPuts).
    this.#openPuts = undefined
    const run = this.#root.childTransaction(() => {
      const usage = this.#usage()
      const before = encodeUsage(usage)
      const result = fn(usage)
      const after = encodeUsage(usage)
      if (!after.equals(before)) this.#meta.putSync(META_STATE, after)
      return result
    })
    const tracked = run.then(
      (result) => result,
      (err: unknown) => {
        const error = storeError(err, operation)
        if (error instanceof StoreFullError) {
          this.#fullRefusals++
          // Room held by expired entries comes back now, not at the next interval.
          this.#sweepNow()
        }
        throw error
      },
    )
    this.#pending.add(tracked)
    const done = (): void => {
      this.#pending.delete(tracked)
    }
    tracked.then(done, done)
    return tracked
  }

  /** Starts a sweep lap unless one runs; its timer restarts after it. */
  #sweepNow(): void {
    if (this.#sweeping !== undefined || this.#closing !== undefined) return
    if (this.#sweepTimer !== undefined) this.#clock.clearTimeout(this.#sweepTimer)
    this.#sweepTimer = undefined
    this.#runSweep()
  }

  #runSweep(): void {
    this.#sweeping = this.sweep()
      .then(() => undefined)
      .catch(() => {
        // A failed sweep is retried at the next interval; reads never depend on it.
      })
      .finally(() => {
        this.#sweeping = undefined
        this.#scheduleSweep()
      })
  }

  #scheduleSweep(): void {
    if (this.#closing !== undefined) return
    this.#sweepTimer = this.#clock.setTimeout(
      () => {
        this.#sweepTimer = undefined
        this.#runSweep()
      },
      this.#sweepInterval,
      { unref: true },
    )
  }

  /**
   * One lap of the sweep: every entry and lock record examined once, in batches of
   * `sweepBatch` per write transaction, removing expired entries and lock records idle for
   * longer than `fenceRetention`.
   */
  async sweep(): Promise<number> {
    this.#open()
    const before = this.#swept
    // The lap's own cursor: a timed lap and a called one may overlap harmlessly (every
    // removal is re-checked inside its transaction).
    const lap: SweepLap = { onData: true, cursor: undefined }
    while (this.#closing === undefined && (await this.#sweepStep(lap)));
    return this.#swept - before
  }

  /** One batch of a lap: up to `sweepBatch` records in one write transaction; true while the lap has more. */
  async #sweepStep(lap: SweepLap): Promise<boolean> {
    const { onData, cursor: start } = lap
    const db = onData ? this.#data : this.#locks
    const result = await this.#mutate('sweep', (usage) => {
      const now = this.#clock.now()
      let seen = 0
      let last: Buffer | undefined
      let removed = 0
      const victims: { key: Buffer; size: number }[] = []
      for (const { key, value } of db.getRange({ start, exclusiveStart: start !== undefined, snapshot: false })) {
        last = Buffer.from(key)
        if (onData ? now >= recordExpiry(value) : isIdle(decodeLock(value), now, this.#retention)) victims.push({ key: last, size: value.length })
        if (++seen >= this.#sweepBatch) break
      }
      for (const v of victims) {
        if (!db.removeSync(v.key)) continue
        removed++
        if (onData) {
          usage.entries--
          usage.bytes -= cost(v.key.length, v.size)
        }
      }
      return { last, more: seen >= this.#sweepBatch && last !== undefined, removed }
    })
    // Counted after the commit (atomic counter sync).
    this.#swept += result.removed
    if (result.more) {
      lap.cursor = result.last
      return true
    }
    if (!onData) return false
    // The entries are done: the lock records next.
    lap.onData = false
    lap.cursor = undefined
    return true
  }

  async #close(): Promise<void> {
    if (this.#sweepTimer !== undefined) this.#clock.clearTimeout(this.#sweepTimer)
    this.#sweepTimer = undefined
    // Nobody here can release a lock any more: let waiters go (they resolve, as on a timeout).
    for (const entry of [...this.#waiting.values()]) for (const w of [...entry.waiters]) w.wake()
    this.#waiting.clear()
    await this.#sweeping
    await Promise.allSettled([...this.#pending])
    const owner = this.#owner
    if (owner !== undefined) {
      try {
        // Only our own claim: after a SIGKILL of ours, another process may hold a newer one.
        this.#meta.transactionSync(() => {
          if (decodeOwner(this.#meta.get(META_OWNER))?.token === owner) this.#meta.removeSync(META_OWNER)
        })
      } catch {
        // The claim stays; its holder (this process) is gone once it exits, so it is stale.
      }
    }
    try {
      await this.#root.close()
    } catch {
      // Already closed by LMDB (process exit): nothing left to release.
    }
  }
}

function checkArray(list: unknown, name: string): void {
  if (!Array.isArray(list)) throw new InvalidOptionsError(name, `expected an array, got ${typeof list}`)
}

function isIdle(lock: LockRecord | undefined, now: number, retention: number): boolean {
  if (lock === undefined) return true
  const held = lock.token !== '' && now < lock.expiresAt
  return !held && now - Math.max(lock.lastUsed, lock.expiresAt) > retention
}

/** The first key after every key starting with `prefix` (undefined: no such key, the range is open). */
function prefixEnd(prefix: Buffer): Buffer | undefined {
  let end = prefix.length
  while (end > 0 && prefix[end - 1] === 0xff) end--
  if (end === 0) return undefined
  const out = Buffer.from(prefix.subarray(0, end))
  out[end - 1]++
  return out
}

function startsWith(key: Uint8Array, prefix: Uint8Array): boolean {
  if (key.length < prefix.length) return false
  for (let i = 0; i < prefix.length; i++) if (key[i] !== prefix[i]) return false
  return true
}

/** For a hashed key: whether the whole key kept in the value starts with `prefix`. */
function fullKeyStartsWith(rec: Uint8Array, prefix: Buffer): boolean {
  if (rec.length < HEADER || rec[0] !== FORMAT) return false
  const n = recordKeyLength(rec)
  if (n === 0 || n < prefix.length || rec.length < HEADER + n) return false
  return startsWith(rec.subarray(HEADER, HEADER + prefix.length), prefix)
}
