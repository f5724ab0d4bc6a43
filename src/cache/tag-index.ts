/**
 * What the facade needs from a dependency-tag engine. The versioned prefix trie in
 * src/tags implements it; the facade stores the opaque snapshot with each entry.
 */
export type TagState = 'valid' | 'stale' | 'invalid'

export interface TagIndex {
  /** Throws `ERR_INVALID_TAG` for a malformed tag. */
  validate(tag: unknown): void
  /** The newest version so far: taken before a value is computed, passed to `snapshot`. */
  currentVersion(): number
  /**
   * A snapshot for an entry whose data was read at version `at` (default: now): any
   * invalidation after `at`, even one that landed while the value was being computed,
   * makes it invalid.
   */
  snapshot(tags: readonly string[], at?: number): unknown
  /** Whether an entry written with `snapshot` is still valid, soft-invalidated, or invalid. */
  check(snapshot: unknown): TagState
  invalidate(tag: string, mode: 'hard' | 'soft'): void
  /** The cache evicted (memory is short): prune idle nodes, throttled by the index. */
  pruneUnderPressure(): number
  stats(): { readonly nodes: number }
  /** Stops background work (pruning timers). */
  close(): void
}
