/**
 * The engine's index from key to slot, in place of a `Map<key, slot>`.
 *
 * Design: open addressing with linear probing over an Int32Array of cells, at most half
 * full, and backward-shift deletion (no tombstones, so probe sequences never lengthen with
 * churn). A cell holds slot + 1 (0 is empty) in the bits of the table's mask and, above
 * them, the high bits of its key's hash as a tag: a probe compares the tag in the cell it
 * has just read before it looks at any key, so a lookup reads its cells (consecutive) and
 * one key. Each slot also keeps its key's full 32-bit hash (`hashKey`), which insertion,
 * removal, growth and TinyLFU use, but a lookup does not: on get hits over 100k keys that
 * saved a cache miss per get, +12% for `lru` (paired runs, 2026-12-01).
 *
 * Why not the `Map` (measured 2026-12-01, paired in one process, `key:<i>` strings): a
 * lookup here costs our own hash of the key, where the `Map` reuses the hash V8 caches in a
 * string after its first use, and yet gets over a Zipf(0.99) stream of 100k keys ran 1.41x
 * the `Map`'s speed with the same key objects and 2.37x with freshly built key strings (as
 * keys built per request are: the `Map` must hash those too, then walks a bucket chain
 * comparing strings); inserts and deletes ran 1.8x (a FIFO of 10k). Per entry it takes
 * 4 bytes of hash and 8-16 bytes of cells, against about 28 for a `Map` entry. TinyLFU reads
 * the stored hash instead of rehashing keys.
 *
 * Keys follow `Map` semantics (SameValueZero): any value, objects by identity, NaN equal to
 * NaN, +0 equal to -0 (`hashKey` gives those equal hashes).
 *
 * Object and function keys go to a `Map` of their own instead of the cells: their hash is
 * an identity number from a WeakMap (hashKey), a lookup that a `Map` keyed by the object
 * does not need (V8 keeps an object's identity hash in the object). Their hash is still
 * computed on sets (TinyLFU's sketch counts by it), never on reads.
 *
 * Hash flooding: keys crafted to share a hash would make one long run of cells and every
 * operation on them linear. Each index hashes with its own random seed (the engine draws
 * it with secretSeed: the OS CSPRNG by default), so such keys cannot be computed without
 * knowing the seed; V8's `Map` relies on the same defence (a per-process seed).
 */
import { growArray, growInt32, nextPowerOfTwo } from '../core/grow-array.js'
import { hashKey, hashString as importedHashString } from './hash-key.js'

/**
 * hashString as a module-private constant: V8 reads an imported binding from its cell and
 * checks it is initialised at every call; a private const it folds (decisions 0396, 0401).
 */
const hashString = importedHashString

export class KeyIndex<K> {
  /** Per cell: 0 when empty, else slot + 1 in the bits of #mask and the key's hash above them (cellOf). */
  #cells: Int32Array
  #mask: number
  /** Per slot: its key (undefined when free) and the key's hash. */
  #keys: (K | undefined)[]
  #hashes: Int32Array
  #size = 0
  readonly #seed: number
  /** Object and function keys -> slot; created with the first such key. */
  #objects: Map<K, number> | undefined

  /** @param seed  this index's hash seed (see hashKey): draw it at random. */
  constructor(capacity: number, seed: number) {
    this.#seed = seed | 0
    this.#keys = growArray<K>([], capacity)
    this.#hashes = new Int32Array(capacity)
    this.#cells = new Int32Array(cellsFor(capacity))
    this.#mask = this.#cells.length - 1
  }

  /** Keys held. */
  get size(): number {
    return this.#size
  }

  /**
   * The slot holding `key`, or -1. A string key goes straight to its hash (hashKey's type
   * dispatch skipped): this is the call on every get, and V8 does not inline the hash into
   * it (see docs/ARCHITECTURE.md, "The key index").
   */
  find(key: K): number {
    if (typeof key === 'string') return this.#probe(key, hashString(key, this.#seed))
    if (isObject(key)) return this.#findObject(key)
    return this.#probe(key, hashKey(key, this.#seed))
  }

  /** The hash this index files `key` under (hashKey with its seed; a string straight to hashString, as in `find`). */
  hash(key: K): number {
    return typeof key === 'string' ? hashString(key, this.#seed) : hashKey(key, this.#seed)
  }

  /** The hash of the key last given to `lookup`. */
  lastHash = 0

  /**
   * `findHashed(key, hash(key))` in one call, leaving the hash in `lastHash` for the insert
   * that usually follows (the engine's stores; decision 0396).
   */
  lookup(key: K): number {
    if (typeof key === 'string') {
      const hash = hashString(key, this.#seed)
      this.lastHash = hash
      return this.#probe(key, hash)
    }
    const hash = hashKey(key, this.#seed)
    this.lastHash = hash
    return isObject(key) ? this.#findObject(key) : this.#probe(key, hash)
  }

  /** As `find`, with the key's hash already computed. */
  findHashed(key: K, hash: number): number {
    if (isObject(key)) return this.#findObject(key)
    return this.#probe(key, hash)
  }

  /** Linear probe for a key that is not an object, by its hash. */
  #probe(key: K, hash: number): number {
    const cells = this.#cells
    const mask = this.#mask
    const keys = this.#keys
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const c = cells[i]
      if (c === 0) return -1
      // The cell's tag is the high bits of its key's hash: compared here, in the cell's own
      // cache line, so that a probe past another key reads neither its hash nor its key.
      if (((c ^ hash) & ~mask) === 0) {
        const slot = (c & mask) - 1
        const k = keys[slot]
        // SameValueZero, as Map: NaN equals NaN.
        if (k === key || (k !== k && key !== key)) return slot
      }
    }
  }

  /** Puts `key`, which must not be held, in free slot `slot`; `hash` is this.hash(key). */
  insert(key: K, slot: number, hash: number): void {
    this.#keys[slot] = key
    this.#hashes[slot] = hash
    this.#size++
    if (isObject(key)) return this.#insertObject(key, slot)
    const cells = this.#cells
    const mask = this.#mask
    let i = hash & mask
    while (cells[i] !== 0) i = (i + 1) & mask
    cells[i] = cellOf(hash, slot, mask)
  }

  /** Frees `slot` (which must hold a key). */
  remove(slot: number): void {
    this.#size--
    if (this.#objects !== undefined && this.#removeObject(slot)) return
    this.#keys[slot] = undefined
    this.#freeCell(slot)
  }

  /**
   * Gives `slot` (which holds a key) to `key` (not held; `hash` is this.hash(key)): `remove(slot)`
   * then `insert(key, slot, hash)` in one call, for the engine's recycled slots (decision 0396).
   */
  replace(slot: number, key: K, hash: number): void {
    if (this.#objects !== undefined || (typeof key !== 'string' && isObject(key))) {
      this.remove(slot)
      this.insert(key, slot, hash)
      return
    }
    // As remove (the old key's hash still in place: the shift reads the hashes of the run).
    this.#freeCell(slot)
    // As insert.
    this.#keys[slot] = key
    this.#hashes[slot] = hash
    const cells = this.#cells
    const mask = this.#mask
    let k = hash & mask
    while (cells[k] !== 0) k = (k + 1) & mask
    cells[k] = cellOf(hash, slot, mask)
  }

  /** Empties the cell of `slot` (a non-object key, its hash still stored) and closes the hole. */
  #freeCell(slot: number): void {
    const cells = this.#cells
    const mask = this.#mask
    const hashes = this.#hashes
    let i = hashes[slot] & mask
    while ((cells[i] & mask) !== slot + 1) i = (i + 1) & mask
    // Backward shift: pull later cells of the run into the hole when their home allows.
    for (let j = (i + 1) & mask; cells[j] !== 0; j = (j + 1) & mask) {
      const home = hashes[(cells[j] & mask) - 1] & mask
      if (((j - home) & mask) >= ((j - i) & mask)) {
        cells[i] = cells[j]
        i = j
      }
    }
    cells[i] = 0
  }

  // Object keys, out of line: the hot paths above stay small enough for V8 to inline.
  #findObject(key: K): number {
    return this.#objects?.get(key) ?? -1
  }

  #insertObject(key: K, slot: number): void {
    ;(this.#objects ??= new Map()).set(key, slot)
  }

  /** Removes `slot` if its key is an object; says whether it was. */
  #removeObject(slot: number): boolean {
    const key = this.#keys[slot]
    if (!isObject(key)) return false
    this.#objects!.delete(key as K)
    this.#keys[slot] = undefined
    return true
  }

  keyOf(slot: number): K | undefined {
    return this.#keys[slot]
  }

  hashOf(slot: number): number {
    return this.#hashes[slot]
  }

  /** The slots held, in table order (a snapshot: safe to change the index meanwhile). */
  slots(): number[] {
    const out: number[] = []
    const cells = this.#cells
    const mask = this.#mask
    for (let i = 0; i < cells.length; i++) if (cells[i] !== 0) out.push((cells[i] & mask) - 1)
    if (this.#objects !== undefined) for (const slot of this.#objects.values()) out.push(slot)
    return out
  }

  /** Makes room for slots [0, capacity); rehashes when the table would be over half full. */
  grow(capacity: number): void {
    if (capacity > this.#keys.length) {
      this.#keys = growArray(this.#keys, capacity)
      this.#hashes = growInt32(this.#hashes, capacity, 0)
    }
    const size = cellsFor(capacity)
    if (size <= this.#cells.length) return
    const old = this.#cells
    const oldMask = this.#mask
    const cells = new Int32Array(size)
    const mask = size - 1
    for (let i = 0; i < old.length; i++) {
      if (old[i] === 0) continue
      const slot = (old[i] & oldMask) - 1
      const hash = this.#hashes[slot]
      let j = hash & mask
      while (cells[j] !== 0) j = (j + 1) & mask
      cells[j] = cellOf(hash, slot, mask)
    }
    this.#cells = cells
    this.#mask = mask
  }

  /** Forgets every key, keeping the capacity. */
  clear(): void {
    this.#cells.fill(0)
    this.#keys.fill(undefined)
    this.#objects?.clear()
    this.#size = 0
  }
}

/** Keys a `Map` finds by identity: objects and functions. */
function isObject(key: unknown): key is object {
  return typeof key === 'object' ? key !== null : typeof key === 'function'
}

/**
 * A cell: `slot + 1` in the bits of the mask (a table has at least twice as many cells as
 * slots, so it fits), the key's hash above them. Never 0, which marks an empty cell. A
 * constant, not a function declaration: V8 re-checks a module function's binding at every
 * inlined call (decisions 0385, 0401).
 */
const cellOf = (hash: number, slot: number, mask: number): number => (hash & ~mask) | (slot + 1)

/** Cells for `capacity` slots: a power of two at least twice as many, so at most half full. */
function cellsFor(capacity: number): number {
  return nextPowerOfTwo(Math.max(16, capacity * 2))
}
