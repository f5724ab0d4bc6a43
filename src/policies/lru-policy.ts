import { type EvictionPolicy, growInt32, growUint32 } from './eviction-policy.js'

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
  #next: Int32Array
  #prev: Int32Array
  #ticket: Uint32Array
  #head = -1
  #tail = -1
  #counter = 0
  #count = 0

  constructor(capacity: number) {
    this.#next = new Int32Array(capacity).fill(-1)
    this.#prev = new Int32Array(capacity).fill(-1)
    this.#ticket = new Uint32Array(capacity)
  }

  grow(capacity: number): void {
    this.#next = growInt32(this.#next, capacity)
    this.#prev = growInt32(this.#prev, capacity)
    this.#ticket = growUint32(this.#ticket, capacity)
  }

  onInsert(slot: number): void {
    this.#count++
    this.#linkHead(slot)
  }

  onAccess(slot: number): void {
    const count = this.#count
    // Uint32 arithmetic: correct across counter wrap-around.
    if (count >= SKIP_MIN && ((this.#counter - this.#ticket[slot]) >>> 0) < count >>> 4) return
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
    for (let s = this.#head; s !== -1; s = this.#next[s]) fn(s)
  }

  reset(): void {
    this.#next.fill(-1)
    this.#prev.fill(-1)
    this.#head = this.#tail = -1
    this.#count = 0
  }

  #linkHead(slot: number): void {
    const head = this.#head
    this.#prev[slot] = -1
    this.#next[slot] = head
    if (head === -1) this.#tail = slot
    else this.#prev[head] = slot
    this.#head = slot
    this.#ticket[slot] = this.#counter = (this.#counter + 1) >>> 0
  }

  #unlink(slot: number): void {
    const p = this.#prev[slot]
    const n = this.#next[slot]
    if (p === -1) this.#head = n
    else this.#next[p] = n
    if (n === -1) this.#tail = p
    else this.#prev[n] = p
    this.#next[slot] = this.#prev[slot] = -1
  }
}
