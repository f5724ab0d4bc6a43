/**
 * Read-your-writes across nodes (P10, decision 0224): the client's session. It keeps the
 * highest session token (`x-stratacache-token`, a clustered node's clock) any answer carried
 * and sends it on every request, so a node versions the session's next write after
 * everything the session saw. It also remembers, per key, the version (ETag) of the
 * session's own last write, in a bounded LRU map, and a read of that key sends it as
 * `x-stratacache-min-version`: a node that has not caught up answers 409 ERR_STALE_READ
 * instead of the older value (the client then tries another node). With `monotonic`, the
 * versions of entries the session read from a node are remembered the same way (same map,
 * same bound), so a later read of the key never goes back to an older version. Pure
 * bookkeeping: no I/O, no clock.
 */
import { HEADER_MIN_VERSION, HEADER_TOKEN } from '../protocol/wire.js'

/** Default number of keys whose last written version a session remembers. */
export const DEFAULT_SESSION_KEYS = 10_000

/** A client's session state: the highest token seen and the versions of its own recent writes. */
export class Session {
  readonly #max: number
  readonly #monotonic: boolean
  #token = 0
  /** key → version of the session's last write and when it expires (clock ms; Infinity: never); Map order is recency (oldest first). */
  readonly #written = new Map<string, { version: number; expiresAt: number }>()

  /**
   * `maxKeys`: how many keys' versions are remembered (least recently written, or read with
   * `monotonic`, dropped first). @default 10,000. `monotonic`: remember versions read too. @default false
   */
  constructor(maxKeys = DEFAULT_SESSION_KEYS, monotonic = false) {
    this.#max = Math.max(1, Math.floor(maxKeys))
    this.#monotonic = monotonic
  }

  /** Whether versions read are remembered (monotonic reads). */
  get monotonic(): boolean {
    return this.#monotonic
  }

  /** With `monotonic`: the session read `key` at `version`, live until `expiresAt`; as `wrote` (a higher version remembered wins). Otherwise nothing. */
  read(key: string, version: number, expiresAt = Infinity): void {
    if (this.#monotonic) this.wrote(key, version, expiresAt)
  }

  /** The highest session token seen so far (0: none). */
  get token(): number {
    return this.#token
  }

  /** Number of keys whose written version is remembered. */
  get size(): number {
    return this.#written.size
  }

  /** Takes the token of an answer's headers, if it carries a higher one than the session's. */
  observe(headers: Readonly<Record<string, string | undefined>>): void {
    const raw = headers[HEADER_TOKEN]
    if (raw === undefined || !/^\d{1,16}$/.test(raw.trim())) return
    const n = Number(raw)
    if (Number.isSafeInteger(n) && n > this.#token) this.#token = n
  }

  /**
   * Records that the session wrote `key` at `version`, live until `expiresAt` (clock ms;
   * after it the node holds nothing for the key and asking for the version would never be
   * answered). A newer write of the key replaces it.
   */
  wrote(key: string, version: number, expiresAt = Infinity): void {
    if (!Number.isSafeInteger(version) || version <= 0) return
    const had = this.#written.get(key)
    this.#written.delete(key)
    this.#written.set(key, had !== undefined && had.version > version ? had : { version, expiresAt })
    if (this.#written.size > this.#max) this.#written.delete(this.#written.keys().next().value!)
  }

  /** Forgets the version the session wrote for `key` (after a delete: the 404 answers it). */
  forget(key: string): void {
    this.#written.delete(key)
  }

  /** Forgets every key starting with `prefix` (all with `''`): after a clear, which leaves no versions behind. */
  forgetPrefix(prefix: string): void {
    if (prefix === '') this.#written.clear()
    else for (const key of [...this.#written.keys()]) if (key.startsWith(prefix)) this.#written.delete(key)
  }

  /** The least version a read of `key` may see at clock time `now` (the session's last write of it, unless expired), if any. */
  minVersion(key: string, now = 0): number | undefined {
    const w = this.#written.get(key)
    if (w === undefined) return undefined
    if (w.expiresAt <= now) {
      this.#written.delete(key)
      return undefined
    }
    return w.version
  }

  /** `headers` plus the session token (when one was seen) and, for a read of `key`, its least version. */
  headers(headers: Readonly<Record<string, string>>, key?: string): Record<string, string> {
    const out: Record<string, string> = { ...headers }
    if (this.#token > 0) out[HEADER_TOKEN] = String(this.#token)
    const need = key === undefined ? undefined : this.#written.get(key)?.version
    if (need !== undefined) out[HEADER_MIN_VERSION] = String(need)
    return out
  }
}
