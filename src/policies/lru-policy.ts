import type { EvictionPolicy } from './eviction-policy.js'

/** Lists shorter than this are kept in exact LRU order. */
const SKIP_MIN = 1024

/**
 * Least-recently-used order as a doubly linked list over typed arrays (as lru-cache does):
 * `head` is the most recently used slot, `tail` the next victim.
 *
 * Bump skipping (as memcached limits how often an item is bumped): every link at the head
 * takes a ticket from a counter, so an entry's distance from the head is at most
 * `counter - ticket`. A hit on an entry still within the most recent 1/16 of the list does
 * not relink it; relinking touches three or four scattered cache lines and dominates the
 * cost of a hit. The order is exact for lists under 1024 entries, and for larger ones
 * exact except among entries that are all in the most recent 1/16, far from the victim end.
 */
export class LruPolicy implements EvictionPolicy {
  readonly name = 'lru'
  /** Per-slot record of STRIDE int32s: next, prev, bump ticket (one cache line for a hit). */
  #meta: Int32Array
  #head = -1
  #tail = -1
  #counter = 0
  #count = 0

  constructor(capacity: number) {
    this.#meta = emptyRecords(capacity)
  }

  grow(capacity: number): void {
    if (capacity * STRIDE <= this.#meta.length) return
    const meta = emptyRecords(capacity)
    meta.set(this.#meta)
    this.#meta = meta
  }

  onInsert(slot: number): void {
    this.#count++
    this.#linkHead(slot)
  }

  onAccess(slot: number): void {
    const count = this.#count
    // Uint32 arithmetic: correct across counter wrap-around.
    if (count >= SKIP_MIN && ((this.#counter - this.#meta[slot * STRIDE + TICKET]) >>> 0) < count >>> 4) return
    if (slot === this.#head) return
    this.#unlink(slot)
    this.#linkHead(slot)
  }

  onUpdate(slot: number): void {
    this.onAccess(slot)
  }

  onRemove(slot: number): void {
    this.#count--
    this.#unlink(slot)
  }

  victim(): number {
    return this.#tail
  }

  forEach(fn: (slot: number) => void): void {
    for (let s = this.#head; s !== -1; s = this.#meta[s * STRIDE + NEXT]) fn(s)
  }

  reset(): void {
    this.#meta = emptyRecords(this.#meta.length / STRIDE)
    this.#head = this.#tail = -1
    this.#count = 0
  }

  #linkHead(slot: number): void {
    const meta = this.#meta
    const r = slot * STRIDE
    const head = this.#head
    meta[r + PREV] = -1
    meta[r + NEXT] = head
    if (head === -1) this.#tail = slot
    else meta[head * STRIDE + PREV] = slot
    this.#head = slot
    meta[r + TICKET] = this.#counter = (this.#counter + 1) >>> 0
  }

  #unlink(slot: number): void {
    const meta = this.#meta
    const r = slot * STRIDE
    const p = meta[r + PREV]
    const n = meta[r + NEXT]
    if (p === -1) this.#head = n
    else meta[p * STRIDE + NEXT] = n
    if (n === -1) this.#tail = p
    else meta[n * STRIDE + PREV] = p
    meta[r + NEXT] = meta[r + PREV] = -1
  }
}

const STRIDE = 3
const NEXT = 0
const PREV = 1
const TICKET = 2

function emptyRecords(capacity: number): Int32Array {
  const meta = new Int32Array(capacity * STRIDE)
  for (let r = 0; r < meta.length; r += STRIDE) meta[r + NEXT] = meta[r + PREV] = -1
  return meta
}
