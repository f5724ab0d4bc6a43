/**
 * `InvalidationSequenceTracker`: what a near cache knows of one invalidation stream's
 * sequences (LoomCache's tracker, Hazelcast's repairing handler; our own code). Pure: no
 * I/O, no clock; the near cache (near-cache.ts) acts on its verdicts.
 *
 * The stream numbers changes per partition (`partitions` of them) plus one global
 * sequence (index `partitions`) for changes that concern every key. The tracker keeps the
 * last sequence seen of each and, per message:
 * - `q <= seen`: late or duplicate → `discard` (its change was applied, or its partition
 *   was already dropped when the gap was found);
 * - `q === seen + 1`: in order → `apply`;
 * - `q > seen + 1`: messages were lost → `gap`: apply this one and drop the partition.
 * `hello` (a new stream) and `meta` (periodic) carry every current sequence: partitions
 * that moved past what was seen lost messages (`repair.partitions`); a moved global
 * sequence, or a `hello` from another `sourceId` (the node restarted, sequences restarted),
 * means everything must go (`repair.flush`).
 */

/** What a `hello` or `meta` says must be dropped. */
export interface SequenceRepair {
  /** Drop everything (new source, or the global sequence moved). */
  readonly flush: boolean
  /** Partitions that lost messages: drop their entries. */
  readonly partitions: readonly number[]
}

export type SequenceVerdict = 'apply' | 'gap' | 'discard'

export class InvalidationSequenceTracker {
  readonly #partitions: number
  readonly #seen: Float64Array
  #source: string | undefined

  /** `partitions`: partitions of the stream (the global sequence is one more). */
  constructor(partitions: number) {
    this.#partitions = partitions
    this.#seen = new Float64Array(partitions + 1)
  }

  /** The stream's source id, once a `hello` came. */
  get source(): string | undefined {
    return this.#source
  }

  /** The last sequence seen of `partition` (`partitions` for the global one). */
  seen(partition: number): number {
    return this.#seen[partition]!
  }

  /** A new stream began with these sequences. */
  hello(source: string, seqs: ArrayLike<number>): SequenceRepair {
    if (source !== this.#source) {
      this.#source = source
      this.#seen.set(seqs)
      return { flush: true, partitions: [] }
    }
    return this.meta(source, seqs)
  }

  /** Periodic sequences of the current source. A foreign source is ignored (empty repair). */
  meta(source: string, seqs: ArrayLike<number>): SequenceRepair {
    if (source !== this.#source || seqs.length !== this.#partitions + 1) return { flush: false, partitions: [] }
    const moved: number[] = []
    for (let p = 0; p < this.#partitions; p++) {
      if (seqs[p]! > this.#seen[p]!) {
        this.#seen[p] = seqs[p]!
        moved.push(p)
      }
    }
    const g = this.#partitions
    const flush = seqs[g]! > this.#seen[g]!
    if (flush) this.#seen[g] = seqs[g]!
    return { flush, partitions: moved }
  }

  /** A change of `partition` (`partitions` for a global one) numbered `sequence`. */
  message(source: string, partition: number, sequence: number): SequenceVerdict {
    if (source !== this.#source || !(partition >= 0 && partition <= this.#partitions)) return 'discard'
    const seen = this.#seen[partition]!
    if (sequence <= seen) return 'discard'
    this.#seen[partition] = sequence
    return sequence === seen + 1 ? 'apply' : 'gap'
  }
}
