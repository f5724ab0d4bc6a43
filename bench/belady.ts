/**
 * Belady's optimal replacement (L. A. Belady, "A study of replacement algorithms for a
 * virtual-storage computer", IBM Systems Journal, 1966), computed offline as the hit-ratio
 * ceiling: on a miss with a full cache, evict the key whose next use is farthest away —
 * or do not admit the new key when it is itself the farthest (the bypass variant, the true
 * optimum for a cache that may decline to store, as TinyLFU may).
 *
 * Next uses are precomputed in one backward pass; the cache is a max-heap on next use
 * with lazy deletion (an entry is stale when its key's current next use differs).
 */
export function beladyHits(trace: ArrayLike<number>, capacity: number): number {
  const n = trace.length
  const nextUse = new Float64Array(n)
  const last = new Map<number, number>()
  for (let i = n - 1; i >= 0; i--) {
    nextUse[i] = last.get(trace[i]) ?? Infinity
    last.set(trace[i], i)
  }
  const current = new Map<number, number>() // key -> its next use while cached
  const heapUse: number[] = []
  const heapKey: number[] = []
  const push = (use: number, key: number): void => {
    let i = heapUse.length
    heapUse.push(use)
    heapKey.push(key)
    while (i > 0) {
      const p = (i - 1) >> 1
      if (heapUse[p] >= use) break
      heapUse[i] = heapUse[p]
      heapKey[i] = heapKey[p]
      i = p
    }
    heapUse[i] = use
    heapKey[i] = key
  }
  const pop = (): void => {
    const use = heapUse.pop()!
    const key = heapKey.pop()!
    if (heapUse.length === 0) return
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= heapUse.length) break
      const c = l + 1 < heapUse.length && heapUse[l + 1] > heapUse[l] ? l + 1 : l
      if (heapUse[c] <= use) break
      heapUse[i] = heapUse[c]
      heapKey[i] = heapKey[c]
      i = c
    }
    heapUse[i] = use
    heapKey[i] = key
  }
  /** The cached key with the farthest next use (dropping stale heap entries). */
  const top = (): number => {
    while (current.get(heapKey[0]) !== heapUse[0]) pop()
    return heapKey[0]
  }
  let hits = 0
  for (let i = 0; i < n; i++) {
    const key = trace[i]
    const use = nextUse[i]
    if (current.has(key)) {
      hits++
    } else if (current.size >= capacity) {
      const victim = top()
      if (current.get(victim)! <= use) continue // the newcomer is needed last: bypass
      current.delete(victim)
      pop()
    }
    current.set(key, use)
    push(use, key)
  }
  return hits
}
