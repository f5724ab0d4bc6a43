/**
 * An eviction policy orders the engine's slots and names the next victim. It never holds
 * keys or values: the engine (src/memory/memory-cache.ts) owns those in parallel arrays
 * and identifies entries by slot index. Policies keep their own typed-array links, so an
 * access is a few integer writes and no allocation.
 */
export interface EvictionPolicy {
  readonly name: 'lru' | 'tinylfu'
  /** Makes room for slots [0, capacity). Called before any slot >= the old capacity is used. */
  grow(capacity: number): void
  /** A new entry took `slot`. `hash` is the key's 32-bit hash, `weight` its bound unit (1 or bytes). */
  onInsert(slot: number, hash: number, weight: number): void
  /** The entry in `slot` was read by `get`. */
  onAccess(slot: number): void
  /** The entry in `slot` was overwritten; its weight may have changed. Counts as an access. */
  onUpdate(slot: number, weight: number): void
  /** The entry in `slot` left the cache, whatever the reason. */
  onRemove(slot: number): void
  /**
   * The slot to evict next while the cache is over a bound, or -1 if empty. May reorder
   * slots (TinyLFU moves an admitted candidate into its main space).
   */
  victim(): number
  /**
   * For an engine at its entry bound about to insert a new key (32-bit `hash`) where nothing
   * observes the order of the steps: the slot that `onInsert` followed by `victim()` would
   * evict, named before the insert, with every effect those two calls would have on the policy
   * (TinyLFU counts the new key and decides admission here). Returns -1, having changed
   * nothing, when that cannot be told cheaply; the engine then inserts and evicts as usual.
   * The slot returned is already placed as `onInsert` would place the new entry (it was
   * `onReuse`, a call of its own: decision 0396): the engine gives it to the new key at once.
   */
  victimBeforeInsert(hash: number): number
  /** Calls `fn` for every slot, most valuable (most recently used) first. */
  forEach(fn: (slot: number) => void): void
  /** Forgets every slot (the engine cleared); what a policy knows of past accesses may stay. */
  reset(): void
}
