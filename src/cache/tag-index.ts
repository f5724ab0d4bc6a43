/**
 * What the facade needs from a dependency-tag engine. The versioned prefix trie in
 * src/tags implements it; the facade stores the opaque snapshot with each entry.
 */
export type TagState = 'valid' | 'stale' | 'invalid'

export interface TagIndex {
  /** Throws `ERR_INVALID_TAG` for a malformed tag. */
  validate(tag: unknown): void
  /** A snapshot of the current versions of `tags`, stored with an entry written now. */
  snapshot(tags: readonly string[]): unknown
  /** Whether an entry written with `snapshot` is still valid, soft-invalidated, or invalid. */
  check(snapshot: unknown): TagState
  invalidate(tag: string, mode: 'hard' | 'soft'): void
  /** Stops background work (pruning timers). */
  close(): void
}
