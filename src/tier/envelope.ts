/**
 * What the facade keeps per key when a value needs more than the engine's own TTL and TTI:
 * the value plus its logical freshness, its tag snapshot and fail-safe state. Stored in L1
 * and, encoded as a record, in L2.
 *
 * A value with none of that (no tags, no grace, no refresh-ahead, no L2 idle tracking) is
 * stored in L1 bare: its freshness is the engine's deadline, and a hit costs no extra
 * object to read. `instanceof Envelope` tells the two apart; users cannot construct an
 * Envelope, so a cached value is never mistaken for one.
 */
export class Envelope<V> {
  retryAt = 0
  failures = 0
  /** Last time a read of this entry sent an L2 touch (time-to-idle de-bouncing). */
  touchedAt: number

  constructor(
    readonly value: V,
    readonly createdAt: number,
    readonly freshUntil: number,
    readonly ttl: number,
    /** When the entry is dropped everywhere (freshUntil + grace). */
    readonly keepUntil: number,
    /** Time-to-idle (Infinity: none); kept so an entry read back from L2 idles the same way. */
    readonly tti: number,
    /** A `TagSnapshot`, or undefined for an untagged entry. */
    readonly tags: unknown,
    /** Signature of the tag definition the entry was written under (see `tagSignature`). */
    readonly tagSig: string,
  ) {
    this.touchedAt = createdAt
  }
}
