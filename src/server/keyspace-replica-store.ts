/**
 * `KeyspaceReplicaStore`: the replication machine's synchronous `ReplicaStore`
 * (cluster/replication/replica-store.ts) over the node's asynchronous `Keyspace` — the
 * write-behind adapter planned in docs/decisions/0210 and built in 0215.
 *
 * What it keeps in memory is an index, not the data: per key its version, absolute expiry,
 * tags and whether it is a tombstone (the value is the marker `LAZY_VALUE`), plus the
 * Merkle tree, the prefix tombstones and the tag invalidations — everything the machine
 * reads synchronously. It is a `MemoryReplicaStore` holding such value-less records, so the
 * semantics (LWW, tombstone grace, prefix tombstones, tags, hashes, ranges) are the ones the
 * simulations test, and its tree's digests equal the keyspace's (same `keyHash`,
 * `recordHash`, 1,024 buckets; pinned by test/server/keyspace-replica-store.test.ts).
 *
 * Data flow.
 * - `apply`, `clear`, `invalidate` decide against the index at once (the machine needs the
 *   answer in its step) and, when they changed it, queue the same operation on the keyspace
 *   (`applyIfNewer` with the real bytes, `clear(prefix, version)`, `invalidate`), in call
 *   order. The keyspace decides again by the same rules, so both agree.
 * - `flush()` resolves once every queued keyspace write is durable (or rejects with the
 *   first failure). The node's runner awaits it before it performs a step's sends
 *   (`KernelRunner`'s `beforeSend`): an ack, a relay or a client answer never announces a
 *   write that is not on disk — the kernel's persist-before-send rule, generalised.
 * - `prepare(message)` fills the values the index does not hold: anti-entropy `recs` name
 *   live records with `LAZY_VALUE`; each is read from the keyspace (one `getRecord`; a newer
 *   state there is shipped instead, a vanished record is dropped). The machine's own `get`
 *   answers would carry `LAZY_VALUE` too: the node serves reads from the keyspace instead.
 *
 * `open` builds the index with one `Keyspace.scan` of every record and tombstone, then the
 * keyspace's prefix tombstones and tag invalidations (about 100 bytes a key in memory).
 * Every write of a clustered node must go through the machine (and so this store): a write
 * straight to the keyspace would not be in the index. A keyspace write that fails leaves the
 * index ahead of the disk for that key (counted in `stats.writeFailures`; the runner sends
 * nothing of that step; a restart rebuilds the index from the disk).
 */
import { Buffer } from 'node:buffer'
import type { Clock } from '../core/clock.js'
import { InvalidOptionsError } from '../core/errors.js'
import { compareVersions } from '../core/hlc.js'
import { MemoryReplicaStore, type ReplicaRecord, type TagInvalidation } from '../cluster/replication/replica-store.js'
import type { ReplicationMessage, WireRecord } from '../cluster/replication/messages.js'
import type { Version } from '../core/hlc.js'
import type { Keyspace, KeyspaceRecord } from './keyspace.js'

/** The value of a live record in the index: not held here, read from the keyspace by `prepare`. Never a base64 string. */
export const LAZY_VALUE = '\u0000'

export interface KeyspaceReplicaStoreOptions {
  readonly keyspace: Keyspace
  /** The node's clock (tombstone grace at open). */
  readonly clock: Clock
  /** Must equal the keyspace's `tombstoneTtl`. @default 86_400_000 (24 h, the keyspace's default) */
  readonly tombstoneTtlMs?: number
}

export interface KeyspaceReplicaStoreStats {
  /** Keyspace writes queued (applies, clears, invalidations that changed the index). */
  readonly writes: number
  /** Of those, writes that failed (the index is ahead of the disk for them until a restart). */
  readonly writeFailures: number
  /** Keyspace writes not yet settled. */
  readonly pending: number
  /** Values read from the keyspace by `prepare`. */
  readonly valueReads: number
}

/** A replica record as the keyspace stores it (base64 value decoded). */
export function toKeyspaceRecord(record: ReplicaRecord): KeyspaceRecord {
  if (record.deleted === true) return { key: record.key, version: record.version, deleted: true }
  return { key: record.key, version: record.version, value: Buffer.from(record.value, 'base64'), expiresAt: record.expiresAt, tags: record.tags }
}

/** A keyspace record as replication carries it (value base64). */
export function fromKeyspaceRecord(record: KeyspaceRecord): ReplicaRecord {
  if (record.deleted === true) return { key: record.key, version: record.version, deleted: true }
  return { key: record.key, version: record.version, value: Buffer.from(record.value).toString('base64'), expiresAt: record.expiresAt, tags: record.tags }
}

export class KeyspaceReplicaStore extends MemoryReplicaStore {
  readonly #keyspace: Keyspace
  /**
   * Queued keyspace writes in queue order from the oldest not yet settled (`#head`); later
   * ones may have settled already (distinct keys commit out of order). Every write below the
   * head's sequence number is settled: that is what a barrier waits for (decision 0308).
   */
  #inflight: QueuedWrite[] = []
  #head = 0
  /** The sequence number of the next queued write. */
  #seq = 0
  #pendingCount = 0
  /** Barriers and flushes waiting, in the order taken (so by `upTo`, never decreasing). */
  #waiters: Waiter[] = []
  #waitersHead = 0
  /** Failures not yet reported by a barrier, in settle order (flush throws the first). */
  #failures: unknown[] = []
  /** While true (during `open`), changes go to the index only: they come from the keyspace. */
  #loading = true
  #writes = 0
  #writeFailures = 0
  #valueReads = 0

  private constructor(options: KeyspaceReplicaStoreOptions) {
    super({ tombstoneTtlMs: options.tombstoneTtlMs })
    this.#keyspace = options.keyspace
  }

  /** Builds the index from the keyspace (a scan of every record, its prefix tombstones and tag invalidations). */
  static async open(options: KeyspaceReplicaStoreOptions): Promise<KeyspaceReplicaStore> {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object')
    if (typeof options.keyspace?.scan !== 'function') throw new InvalidOptionsError('keyspace', 'expected a Keyspace')
    if (typeof options.clock?.now !== 'function') throw new InvalidOptionsError('clock', 'expected a Clock')
    const store = new KeyspaceReplicaStore(options)
    const ks = options.keyspace
    const now = options.clock.now()
    for (const p of ks.prefixTombstones()) store.clear(p.prefix, p.version, now)
    let cursor: string | undefined
    do {
      const page = await ks.scan({ cursor, limit: 1000 })
      cursor = page.cursor
      for (const r of page.records) store.apply(fromKeyspaceRecord(r), now)
    } while (cursor !== undefined)
    for (const t of await ks.tagInvalidations()) store.invalidate(t)
    store.#loading = false
    return store
  }

  get stats(): KeyspaceReplicaStoreStats {
    return { writes: this.#writes, writeFailures: this.#writeFailures, pending: this.#pendingCount, valueReads: this.#valueReads }
  }

  override apply(record: ReplicaRecord, now: number): boolean {
    if (record.deleted !== true && record.value === LAZY_VALUE && !this.#loading) throw new InvalidOptionsError('record', 'a record without its value cannot be applied')
    const index: ReplicaRecord = record.deleted === true ? record : { ...record, value: LAZY_VALUE }
    if (!super.apply(index, now)) return false
    if (!this.#loading) this.#queue(this.#keyspace.applyIfNewer(toKeyspaceRecord(record)))
    return true
  }

  override clear(prefix: string, version: Version, now: number): boolean {
    if (!super.clear(prefix, version, now)) return false
    if (!this.#loading) this.#queue(this.#keyspace.clear(prefix, version))
    return true
  }

  override invalidate(inv: TagInvalidation): boolean {
    if (!super.invalidate(inv)) return false
    if (!this.#loading) this.#queue(this.#keyspace.invalidate([inv.tag], inv.mode, inv.hlc))
    return true
  }

  /**
   * Resolves when every keyspace write queued before the call is durable; rejects with the
   * first failure since the last flush (the runner then sends nothing of the step).
   */
  async flush(): Promise<void> {
    if (this.#pendingCount > 0) await new Promise<void>((resolve) => this.#wait({ upTo: this.#seq, claims: false, resolve, reject: () => resolve(), failed: undefined }))
    if (this.#failures.length > 0) {
      const [first] = this.#failures
      this.#failures = []
      throw first
    }
  }

  /**
   * Resolves when every keyspace write queued before the call (and not yet settled) is
   * durable; rejects with the first failure among them, which `flush` then no longer
   * reports. Unlike `flush`, writes queued after the call are not waited for: the node takes
   * one barrier per step, so a step's sends wait for its own writes and earlier ones only.
   * O(1) per call and per settled write (a watermark over the queue, not a copy of it).
   */
  barrier(): Promise<void> {
    if (this.#pendingCount === 0) return Promise.resolve()
    return new Promise<void>((resolve, reject) => this.#wait({ upTo: this.#seq, claims: true, resolve, reject, failed: undefined }))
  }

  /** `message` with every `LAZY_VALUE` replaced by the keyspace's bytes (see the header); other messages as they are. */
  async prepare(message: ReplicationMessage): Promise<ReplicationMessage> {
    if (message.kind === 'recs') {
      if (!message.records.some((w) => w.length >= 5 && w[3] === LAZY_VALUE)) return message
      const records = (await Promise.all(message.records.map((w) => this.#fill(w)))).filter((w): w is WireRecord => w !== undefined)
      return { ...message, records }
    }
    return message
  }

  async #fill(w: WireRecord): Promise<WireRecord | undefined> {
    if (w.length < 5 || w[3] !== LAZY_VALUE) return w
    const [key, hlc, nodeId] = w
    this.#valueReads++
    const current = await this.#keyspace.getRecord(key)
    if (current === undefined) return undefined
    const cmp = compareVersions(current.version, { hlc, nodeId })
    if (cmp < 0) return undefined
    // The same version, or a newer state the index has not seen yet: ship what the disk holds.
    const r = fromKeyspaceRecord(current)
    if (r.deleted === true) return [r.key, r.version.hlc, r.version.nodeId]
    return r.tags.length === 0 ? [r.key, r.version.hlc, r.version.nodeId, r.value, r.expiresAt] : [r.key, r.version.hlc, r.version.nodeId, r.value, r.expiresAt, r.tags]
  }

  #queue(write: Promise<unknown>): void {
    this.#writes++
    this.#pendingCount++
    const w: QueuedWrite = { seq: this.#seq++, settled: false }
    this.#inflight.push(w)
    write.then(
      () => this.#settle(w, false, undefined),
      (err: unknown) => this.#settle(w, true, err),
    )
  }

  #wait(waiter: Waiter): void {
    this.#waiters.push(waiter)
  }

  #settle(w: QueuedWrite, failed: boolean, err: unknown): void {
    w.settled = true
    this.#pendingCount--
    if (failed) {
      this.#writeFailures++
      // Kept for `flush()`, which reports the first; bounded (the count is in writeFailures).
      if (this.#failures.length < MAX_KEPT_FAILURES) this.#failures.push(err)
      // Every barrier waiting now that was taken after this write was queued reports it.
      for (let i = this.#waitersHead; i < this.#waiters.length; i++) {
        const b = this.#waiters[i]!
        if (b.upTo > w.seq) (b.failed ??= []).push({ seq: w.seq, err })
      }
    }
    const q = this.#inflight
    while (this.#head < q.length && q[this.#head]!.settled) this.#head++
    if (this.#head === q.length) {
      this.#inflight = []
      this.#head = 0
    } else if (this.#head >= 1024 && this.#head * 2 >= q.length) {
      this.#inflight = q.slice(this.#head)
      this.#head = 0
    }
    // Every write below `low` is settled.
    const low = this.#head < this.#inflight.length ? this.#inflight[this.#head]!.seq : this.#seq
    const ws = this.#waiters
    while (this.#waitersHead < ws.length && ws[this.#waitersHead]!.upTo <= low) {
      const b = ws[this.#waitersHead]!
      ws[this.#waitersHead++] = undefined as unknown as Waiter
      this.#release(b)
    }
    if (this.#waitersHead === ws.length) {
      this.#waiters = []
      this.#waitersHead = 0
    } else if (this.#waitersHead >= 1024 && this.#waitersHead * 2 >= ws.length) {
      this.#waiters = ws.slice(this.#waitersHead)
      this.#waitersHead = 0
    }
  }

  #release(b: Waiter): void {
    if (b.failed === undefined || !b.claims) {
      b.resolve()
      return
    }
    let first = b.failed[0]!
    for (const f of b.failed) if (f.seq < first.seq) first = f
    const reported = new Set(b.failed.map((f) => f.err))
    this.#failures = this.#failures.filter((f) => !reported.has(f))
    b.reject(first.err)
  }
}

/** Unreported write failures kept for `flush()` (which reports the first one). */
const MAX_KEPT_FAILURES = 64

/** One queued keyspace write. */
interface QueuedWrite {
  readonly seq: number
  settled: boolean
}

/** A barrier (`claims`: reports and takes the failures among its writes) or a flush, waiting for every write below `upTo`. */
interface Waiter {
  readonly upTo: number
  readonly claims: boolean
  readonly resolve: () => void
  readonly reject: (err: unknown) => void
  failed: Array<{ readonly seq: number; readonly err: unknown }> | undefined
}
