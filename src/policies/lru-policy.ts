import type { EvictionPolicy } from './eviction-policy.js'


/**
 * Least-recently-used order as a doubly linked list over typed arrays (as lru-cache does):
 * `head` is the most recently used slot, `tail` the next victim. Exact: every hit moves the
 * entry to the head. (Skipping moves for entries near the head, as memcached does, is
 * cheaper but lets a just-read entry be evicted before an older unread one; users who pick
 * `lru` pick it for predictability. TinyLFU, approximate by design, does skip.) Also measured
 * and not adopted (2026-12-01): logging hits in a 256-slot buffer and replaying the log in
 * order before anything that reads or changes the order, which stays exact but ran
 * 0.90-1.01x of relinking at once on get hits. Other layouts measured against this one are
 * listed in docs/ARCHITECTURE.md (Eviction).
 */
export class LruPolicy implements EvictionPolicy {
  readonly name = 'lru'
  /** Per-slot record of STRIDE int32s: next, prev (one cache line for a hit). */
  #meta: Int32Array
  #head = -1
  #tail = -1

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
    this.#linkHead(slot)
  }

  onAccess(slot: number): void {
    const head = this.#head
    if (slot === head) return
    // Unlink and relink at the head in one go: the slot is not the head, so it has a prev.
    const meta = this.#meta
    const r = slot * STRIDE
    const p = meta[r + PREV]
    const n = meta[r + NEXT]
    meta[p * STRIDE + NEXT] = n
    if (n === -1) this.#tail = p
    else meta[n * STRIDE + PREV] = p
    meta[r + PREV] = -1
    meta[r + NEXT] = head
    meta[head * STRIDE + PREV] = slot
    this.#head = slot
  }

  onUpdate(slot: number): void {
    this.onAccess(slot)
  }

  onRemove(slot: number): void {
    this.#unlink(slot)
  }

  victim(): number {
    return this.#tail
  }

  victimBeforeInsert(): number {
    // The slot keeps its place in the list and moves to the head, as a new entry would go.
    const slot = this.#tail
    if (slot !== -1) this.onAccess(slot)
    return slot
  }

  forEach(fn: (slot: number) => void): void {
    for (let s = this.#head; s !== -1; s = this.#meta[s * STRIDE + NEXT]) fn(s)
  }

  reset(): void {
    this.#meta = emptyRecords(this.#meta.length / STRIDE)
    this.#head = this.#tail = -1
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

const STRIDE = 2
const NEXT = 0
const PREV = 1

function emptyRecords(capacity: number): Int32Array {
  const meta = new Int32Array(capacity * STRIDE)
  for (let r = 0; r < meta.length; r += STRIDE) meta[r + NEXT] = meta[r + PREV] = -1
  return meta
}
