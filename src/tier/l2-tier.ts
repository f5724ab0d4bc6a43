/**
 * The facade's view of its second tier: records, tag versions, time-to-idle touches and
 * the lock protocol on top of a guarded store.
 *
 * Keys. A cache key K lives at `<namespace>:K`; the versions of tag T at
 * `<namespace>#h:T` (hard) and `<namespace>#s:T` (soft). `clear()` removes the
 * `<namespace>:` prefix only, so tag versions survive a clear (an entry another process
 * still holds in its L1 must stay judged by them).
 * Tag versions have no TTL, except those of origin tags (`@origin…`, derived from change
 * notices): they live `originVersionTtl`, which every entry with origins is capped to (see
 * src/tags/origin-lifetime.ts), so a feed over ever new documents does not grow L2 for ever.
 *
 * Records. An L2 value is the codec's encoding of a fixed-position array
 * `[RECORD_V1, value, createdAt, freshUntil, keepUntil, ttl, tti, tags, version, tagSig]`
 * (`Infinity` is written as null, so a JSON serializer keeps it). The codec adds its own
 * wire-format version, compression and encryption around it.
 *
 * Passive resync (Zoocache). Invalidations write the tag's new version to L2. A tagged
 * record read from L2 brings its tags' versions with it (one `getMany` of every tag and
 * ancestor path): they are observed into the local trie, which ratchets its hybrid clock
 * and node versions forward, and only then is the record's snapshot checked. So a process
 * that never saw an invalidation message still never serves an entry that an invalidation
 * recorded in L2 made stale. Concurrent invalidations of one tag by two processes are
 * last-writer-wins in L2 (a generic store has no compare-and-set); the lower version can
 * win only when both happened within the clock skew of each other.
 */
import type { Clock } from '../core/clock.js'
import { DecodeError, isCacheError, type CacheError } from '../core/errors.js'
import { Envelope } from './envelope.js'
import type { GuardedStore } from '../resilience/guarded-store.js'
import { parseTagSnapshot, type TagSnapshot } from '../tags/tag-snapshot.js'
import type { TagTrie } from '../tags/tag-trie.js'
import { TAG_SEPARATOR } from '../tags/validate-tag.js'
import { versionKeyTtl } from '../tags/origin-lifetime.js'
import { TouchQueue, type TouchQueueStats } from './touch-queue.js'

/** What the tier needs from a codec (`createCodec` returns one). */
export interface ValueCodec {
  encode(value: unknown, key: string): Uint8Array
  decode(bytes: Uint8Array, key: string): unknown
}

export interface L2TierOptions {
  namespace: string
  clock: Clock
  codec: ValueCodec
  tags: TagTrie
  /** At most one L2 touch per key per this interval. */
  touchInterval: number
  touchQueueSize: number
  /** L2 TTL of origin-tag versions (`origins.versionTtl`, see src/tags/origin-lifetime.ts). @default Infinity */
  originVersionTtl?: number
  /**
   * `lock: 'distributed'`: plain writes and deletes of records raise the key's fence mark
   * (`setAbove` / `deleteAbove`), so no lock holder granted before them overwrites or
   * resurrects the key. Without it they are plain store writes, and cost nothing more. @default false
   */
  ordered?: boolean
  onError: (error: CacheError, key: string | undefined) => void
}

export interface L2TierStats {
  readonly hits: number
  readonly misses: number
  /** Records that failed to decode or decrypt (each counted as a miss too). */
  readonly decodeErrors: number
  readonly writes: number
  /** Fenced writes refused because a newer lock holder had written. */
  readonly fencedRefused: number
  readonly touches: TouchQueueStats
}

const RECORD_V1 = 1
const enc = new TextEncoder()
const dec = new TextDecoder()

export class L2Tier<V> {
  readonly store: GuardedStore
  readonly #ns: string
  readonly #clock: Clock
  readonly #codec: ValueCodec
  readonly #tags: TagTrie
  readonly #touchInterval: number
  readonly #touches: TouchQueue
  readonly #originVersionTtl: number
  readonly #ordered: boolean
  readonly #onError: (error: CacheError, key: string | undefined) => void
  #hits = 0
  #misses = 0
  #decodeErrors = 0
  #writes = 0
  #fencedRefused = 0

  constructor(store: GuardedStore, options: L2TierOptions) {
    this.store = store
    this.#ns = options.namespace
    this.#clock = options.clock
    this.#codec = options.codec
    this.#tags = options.tags
    this.#touchInterval = options.touchInterval
    this.#onError = options.onError
    this.#originVersionTtl = options.originVersionTtl ?? Infinity
    this.#ordered = options.ordered === true
    this.#touches = new TouchQueue(options.clock, options.touchQueueSize, (key, ttl) => this.store.touch(this.#key(key), ttl))
  }

  /** The L1 time-to-idle for an entry that also lives in L2 (see `touchDebounce`). */
  l1Tti(tti: number): number {
    return tti === Infinity ? tti : Math.max(1, tti - this.touchDebounce(tti))
  }

  /**
   * How long a read may go without touching L2. At most half the TTI, so that L2 still
   * holds the entry when L1's idle deadline (TTI minus this) passes.
   */
  touchDebounce(tti: number): number {
    return Math.min(this.#touchInterval, tti / 2)
  }

  /** An L1 hit on an entry with a time-to-idle: touch L2 if it was not touched lately. */
  touched(key: string, env: Envelope<V>, now: number): void {
    if (now - env.touchedAt < this.touchDebounce(env.tti)) return
    env.touchedAt = now
    this.#touches.push(key, Math.max(1, Math.min(env.tti, env.keepUntil - now)))
  }

  /**
   * The record under `key` as an envelope, with its tag versions observed; undefined when
   * absent, expired, undecodable, or invalidated (hard). Never rejects.
   */
  async read(key: string): Promise<Envelope<V> | undefined> {
    let bytes: Uint8Array | undefined
    try {
      bytes = await this.store.get(this.#key(key))
    } catch {
      this.#misses++
      return undefined
    }
    const env = bytes === undefined ? undefined : this.#decode(key, bytes)
    if (env === undefined || env.keepUntil <= this.#clock.now()) {
      this.#misses++
      return undefined
    }
    if (env.tags !== undefined && !(await this.#resync([env.tags as TagSnapshot], key))) {
      this.#misses++
      return undefined
    }
    this.#hits++
    return env
  }

  /**
   * `read` for many keys: one `getMany` for the records and, if any is tagged, one more for
   * all their tags' versions, whatever the number of keys.
   */
  async readMany(keys: readonly string[]): Promise<(Envelope<V> | undefined)[]> {
    let all: (Uint8Array | undefined)[]
    try {
      all = await this.store.getMany(keys.map((k) => this.#key(k)))
    } catch {
      this.#misses += keys.length
      return keys.map(() => undefined)
    }
    const now = this.#clock.now()
    const out = keys.map((key, i) => {
      const bytes = all[i]
      const env = bytes === undefined ? undefined : this.#decode(key, bytes)
      return env === undefined || env.keepUntil <= now ? undefined : env
    })
    const snapshots = out.flatMap((env) => (env?.tags === undefined ? [] : [env.tags as TagSnapshot]))
    const resynced = snapshots.length === 0 || (await this.#resync(snapshots, undefined))
    for (let i = 0; i < out.length; i++) {
      const env = out[i]
      if (env !== undefined && env.tags !== undefined && (!resynced || this.#tags.check(env.tags as TagSnapshot) === 'invalid')) out[i] = undefined
      if (out[i] === undefined) this.#misses++
      else this.#hits++
    }
    return out
  }

  /**
   * Encodes an envelope as an L2 record. Throws what the codec throws (`ERR_VALUE_TOO_LARGE`,
   * a serializer's error for a value it cannot represent).
   */
  encode(key: string, env: Envelope<V>): Uint8Array {
    // A serializer writes a Promise as {} (msgpack, JSON): a set(key, load()) that forgot its
    // await would give other processes an empty object. Refused like any value it cannot represent.
    if (env.value instanceof Promise) throw new TypeError('a Promise cannot be encoded (await it first)')
    const snap = env.tags as TagSnapshot | undefined
    const record = [RECORD_V1, env.value, env.createdAt, fin(env.freshUntil), fin(env.keepUntil), fin(env.ttl), fin(env.tti), snap?.tags ?? null, snap?.version ?? null, env.tagSig]
    return this.#codec.encode(record, key)
  }

  /**
   * Writes an encoded record (queued by the guarded store if L2 is down; when `ordered`,
   * above every lock holder so far, and queued as a delete). Never rejects, unless the store has `strictWrites`.
   */
  async write(key: string, env: Envelope<V>, bytes: Uint8Array): Promise<void> {
    this.#writes++
    if (this.#ordered) await this.store.setAbove(this.#key(key), bytes, this.#ttl(env))
    else await this.store.set(this.#key(key), bytes, this.#ttl(env))
  }

  /**
   * Writes under a lock's fence: 'refused' when a newer holder (or a waiter that stopped
   * waiting) wrote first, 'failed' when L2 failed (reported; the write may or may not have
   * landed). Never rejects. Fenced writes are never queued: a replay could not keep the order.
   */
  async writeFenced(key: string, env: Envelope<V>, bytes: Uint8Array, fence: number): Promise<'written' | 'refused' | 'failed'> {
    try {
      const ok = await this.store.setFenced(this.#key(key), bytes, this.#ttl(env), fence)
      if (ok) this.#writes++
      else this.#fencedRefused++
      return ok ? 'written' : 'refused'
    } catch {
      return 'failed'
    }
  }

  /** Deletes a record (when `ordered`, above every lock holder so far: none can write it back). */
  delete(key: string): Promise<void> {
    return this.#ordered ? this.store.deleteAbove(this.#key(key)) : this.store.delete(this.#key(key))
  }

  clear(): Promise<void> {
    return this.store.clear(`${this.#ns}:`)
  }

  /**
   * Records an invalidation in L2 for processes that read entries from there. If the store
   * refuses the write (full), the older version stays: deleting it would forget earlier
   * invalidations too. User-tag versions are kept for ever; origin-tag versions for
   * `originVersionTtl`, which outlives every record they can invalidate (origin-lifetime.ts).
   */
  publishInvalidation(tag: string, mode: 'hard' | 'soft', version: number): Promise<void> {
    return this.store.set(this.#tagKey(tag, mode), enc.encode(String(version)), versionKeyTtl(tag, this.#originVersionTtl), true)
  }

  lockKey(key: string): string {
    return this.#key(key)
  }

  stats(): L2TierStats {
    return {
      hits: this.#hits,
      misses: this.#misses,
      decodeErrors: this.#decodeErrors,
      writes: this.#writes,
      fencedRefused: this.#fencedRefused,
      touches: this.#touches.stats(),
    }
  }

  close(): void {
    this.#touches.close()
    this.store.close()
  }

  // ---- internals ---------------------------------------------------------------------

  #key(key: string): string {
    return `${this.#ns}:${key}`
  }

  #tagKey(tag: string, mode: 'hard' | 'soft'): string {
    return `${this.#ns}#${mode === 'hard' ? 'h' : 's'}:${tag}`
  }

  /** L2's lifetime for an entry: until keepUntil, or one idle period if shorter. */
  #ttl(env: Envelope<V>): number {
    const remaining = env.keepUntil - this.#clock.now()
    return Math.max(1, Math.min(remaining, env.tti))
  }

  #decode(key: string, bytes: Uint8Array): Envelope<V> | undefined {
    try {
      const r = this.#codec.decode(bytes, key)
      if (!Array.isArray(r) || r.length !== 10 || r[0] !== RECORD_V1) throw new DecodeError(`L2 record for ${JSON.stringify(key)} has an unknown layout`)
      const [, value, createdAt, freshUntil, keepUntil, ttl, tti, tags, version, tagSig] = r as [number, V, number, number | null, number | null, number | null, number | null, string[] | null, number | null, string]
      if (typeof createdAt !== 'number' || typeof tagSig !== 'string' || value === undefined) throw new DecodeError(`L2 record for ${JSON.stringify(key)} is malformed`)
      let snapshot: TagSnapshot | undefined
      if (tags !== null) {
        try {
          snapshot = parseTagSnapshot({ tags, version })
        } catch (err) {
          throw new DecodeError(`L2 record for ${JSON.stringify(key)} has a malformed tag snapshot`, { cause: err })
        }
      }
      const env = new Envelope<V>(value, createdAt, inf(freshUntil), inf(ttl), inf(keepUntil), inf(tti), snapshot, tagSig)
      env.touchedAt = this.#clock.now()
      return env
    } catch (err) {
      this.#decodeErrors++
      this.#report(err, key)
      return undefined
    }
  }

  /**
   * Observes the L2 versions of every path of the snapshots' tags. False if a single
   * snapshot is now invalid, or if the versions could not be read (then no entry can be
   * vouched for: a miss, never a lie).
   */
  async #resync(snapshots: readonly TagSnapshot[], key: string | undefined): Promise<boolean> {
    const paths = new Set<string>()
    for (const tag of snapshots.flatMap((s) => s.tags)) {
      let at = tag.indexOf(TAG_SEPARATOR)
      while (at !== -1) {
        paths.add(tag.slice(0, at))
        at = tag.indexOf(TAG_SEPARATOR, at + 1)
      }
      paths.add(tag)
    }
    const list = [...paths]
    const keys = list.flatMap((p) => [this.#tagKey(p, 'hard'), this.#tagKey(p, 'soft')])
    let versions: (Uint8Array | undefined)[]
    try {
      versions = await this.store.getMany(keys)
    } catch {
      return false
    }
    for (let i = 0; i < list.length; i++) {
      for (const mode of ['hard', 'soft'] as const) {
        const bytes = versions[2 * i + (mode === 'hard' ? 0 : 1)]
        if (bytes === undefined) continue
        const version = Number(dec.decode(bytes))
        if (Number.isSafeInteger(version) && version > 0) this.#tags.observe(list[i] as string, version, mode)
        else this.#report(new DecodeError(`Tag version of ${JSON.stringify(list[i])} in L2 is malformed`), key)
      }
    }
    return snapshots.length !== 1 || this.#tags.check(snapshots[0] as TagSnapshot) !== 'invalid'
  }

  #report(err: unknown, key: string | undefined): void {
    const error = isCacheError(err) ? err : new DecodeError(`L2 data for ${JSON.stringify(key ?? 'tag versions')} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    this.#onError(error, key)
  }
}

function fin(n: number): number | null {
  return n === Infinity ? null : n
}

function inf(n: number | null): number {
  return n === null ? Infinity : n
}
