/**
 * Belady's optimal replacement (OPT / MIN), computed offline over a whole trace.
 *
 * Belady, "A study of replacement algorithms for a virtual-storage computer", IBM Systems
 * Journal 5(2), 1966: when room is needed, evict the entry whose next use lies farthest in
 * the future. No online policy can do better, so it is the ceiling of the hit-ratio table.
 *
 * Two variants:
 * - with bypass (default): a missed key is not stored when its own next use is farther than
 *   that of every entry held (equivalently: insert, then evict the farthest, which may be the
 *   newcomer). This is the optimum for caches that may refuse an entry, as TinyLFU's
 *   admission filter does, and what Caffeine's simulator reports as "Clairvoyant".
 * - classic demand paging (`bypass: false`): every miss is stored, evicting the farthest.
 *
 * Implementation: one backward pass computes, for each request i, the index of the next
 * request to the same key (`trace.length` when there is none). The held keys sit in an
 * indexed binary max-heap keyed by next use, with each key's heap position in a typed array:
 * a hit only ever pushes a key's next use later, so it is a sift-up; a miss compares with
 * or replaces the top. O(n log capacity) time, O(n + keys) memory.
 */

export interface BeladyOptions {
  /** Allow not storing a missed key (the optimum for caches with admission). @default true */
  readonly bypass?: boolean
}

/** Number of hits Belady's optimal policy achieves on `trace` with room for `capacity` keys. */
export function beladyHits(trace: ArrayLike<number>, capacity: number, options: BeladyOptions = {}): number {
  if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`beladyHits: capacity must be a positive integer, got ${capacity}`)
  const bypass = options.bypass ?? true
  const n = trace.length
  if (n >= 2 ** 31 - 1) throw new RangeError('beladyHits: trace too long')
  const ids = denseKeys(trace)
  let maxKey = -1
  for (let i = 0; i < n; i++) if (ids[i] > maxKey) maxKey = ids[i]

  // nextUse[i]: index of the next request for the key of request i, or n when it is never requested again.
  const nextUse = new Int32Array(n)
  const last = new Int32Array(maxKey + 1).fill(n)
  for (let i = n - 1; i >= 0; i--) {
    const k = ids[i]
    nextUse[i] = last[k]
    last[k] = i
  }

  // Indexed max-heap (1-based) of held keys by next use.
  const heapKey = new Int32Array(capacity + 1)
  const heapPri = new Int32Array(capacity + 1)
  const pos = new Int32Array(maxKey + 1).fill(0) // 0 = not held
  let size = 0

  const siftUp = (i: number): void => {
    const key = heapKey[i]
    const pri = heapPri[i]
    while (i > 1) {
      const parent = i >>> 1
      if (heapPri[parent] >= pri) break
      heapKey[i] = heapKey[parent]
      heapPri[i] = heapPri[parent]
      pos[heapKey[i]] = i
      i = parent
    }
    heapKey[i] = key
    heapPri[i] = pri
    pos[key] = i
  }

  const siftDown = (i: number): void => {
    const key = heapKey[i]
    const pri = heapPri[i]
    for (;;) {
      let child = i << 1
      if (child > size) break
      if (child + 1 <= size && heapPri[child + 1] > heapPri[child]) child++
      if (heapPri[child] <= pri) break
      heapKey[i] = heapKey[child]
      heapPri[i] = heapPri[child]
      pos[heapKey[i]] = i
      i = child
    }
    heapKey[i] = key
    heapPri[i] = pri
    pos[key] = i
  }

  let hits = 0
  for (let i = 0; i < n; i++) {
    const k = ids[i]
    const nu = nextUse[i]
    const at = pos[k]
    if (at !== 0) {
      hits++
      heapPri[at] = nu // later than before (it was i)
      siftUp(at)
      continue
    }
    if (size < capacity) {
      size++
      heapKey[size] = k
      heapPri[size] = nu
      siftUp(size)
      continue
    }
    // Full: the top is the held key used farthest in the future.
    if (bypass && nu >= heapPri[1]) continue
    pos[heapKey[1]] = 0
    heapKey[1] = k
    heapPri[1] = nu
    siftDown(1)
  }
  return hits
}

/**
 * The trace as non-negative integer ids small enough to index typed arrays: used as they are
 * when they are dense, else renumbered in order of first appearance.
 */
function denseKeys(trace: ArrayLike<number>): Int32Array {
  const n = trace.length
  let dense = true
  for (let i = 0; i < n; i++) {
    const k = trace[i]
    if (!Number.isInteger(k) || k < 0) throw new RangeError(`beladyHits: keys must be non-negative integers, got ${k} at ${i}`)
    if (k > 4 * n + 1024) dense = false
  }
  const out = new Int32Array(n)
  if (dense) {
    for (let i = 0; i < n; i++) out[i] = trace[i]
    return out
  }
  const ids = new Map<number, number>()
  for (let i = 0; i < n; i++) {
    let id = ids.get(trace[i])
    if (id === undefined) ids.set(trace[i], (id = ids.size))
    out[i] = id
  }
  return out
}
