/**
 * ARC, the Adaptive Replacement Cache, as an offline simulator for the hit-ratio bench.
 *
 * Written from the paper's pseudocode (Megiddo & Modha, "ARC: A Self-Tuning, Low Overhead
 * Replacement Cache", USENIX FAST '03, pp. 115-130, Fig. 4):
 * - T1 holds pages seen once recently, T2 pages seen at least twice; B1 and B2 are their
 *   "ghost" lists (keys only) of pages recently evicted from T1 and T2. |T1| + |T2| <= c,
 *   |T1| + |B1| <= c, and the four lists together hold at most 2c keys.
 * - p, the target size of T1, adapts: a hit in B1 (T1 was too small) raises it by
 *   max(1, |B2| / |B1|), a hit in B2 lowers it by max(1, |B1| / |B2|), within [0, c].
 * - REPLACE evicts T1's LRU page into B1 when |T1| exceeds p (or equals it and the request
 *   hit B2), else T2's LRU page into B2.
 * p is kept as a real number, as the paper's learning rule gives it (|B2| / |B1| is a
 * ratio): rounding the increments to integers gives slightly different hit ratios.
 *
 * Keys must be dense non-negative integer ids (bench/real-traces.ts renumbers them): the
 * four lists are doubly linked through typed arrays indexed by key, so a request is O(1)
 * and allocates nothing.
 */

const NONE = 0
const T1 = 1
const T2 = 2
const B1 = 3
const B2 = 4

/**
 * Number of hits ARC with room for `c` pages achieves on `trace` (dense ids, each < `keySpace`).
 * With `hitAt`, also sets hitAt[i] to 1 for every request i that hit (bench/hit-ratio-check.ts).
 */
export function arcHits(trace: ArrayLike<number>, c: number, keySpace?: number, hitAt?: Uint8Array): number {
  if (!Number.isInteger(c) || c < 1) throw new RangeError(`arcHits: c must be a positive integer, got ${c}`)
  let space = keySpace ?? 0
  if (keySpace === undefined) for (let i = 0; i < trace.length; i++) if (trace[i] >= space) space = trace[i] + 1
  const where = new Uint8Array(space)
  const next = new Int32Array(space)
  const prev = new Int32Array(space)
  // Per list: head = MRU end, tail = LRU end, and size. Index 0 unused.
  const head = new Int32Array(5).fill(-1)
  const tail = new Int32Array(5).fill(-1)
  const size = new Int32Array(5)

  const unlink = (x: number): void => {
    const l = where[x]
    const p = prev[x]
    const n = next[x]
    if (p === -1) head[l] = n
    else next[p] = n
    if (n === -1) tail[l] = p
    else prev[n] = p
    size[l]--
    where[x] = NONE
  }
  const pushMru = (l: number, x: number): void => {
    const h = head[l]
    prev[x] = -1
    next[x] = h
    if (h === -1) tail[l] = x
    else prev[h] = x
    head[l] = x
    size[l]++
    where[x] = l
  }
  const moveMru = (l: number, x: number): void => {
    unlink(x)
    pushMru(l, x)
  }

  let p = 0
  /** The paper's REPLACE(x, p): makes room in the cache by demoting an LRU page to its ghost list. */
  const replace = (inB2: boolean): void => {
    const t1 = size[T1]
    if (t1 >= 1 && ((inB2 && t1 === p) || t1 > p)) moveMru(B1, tail[T1])
    else moveMru(B2, tail[T2])
  }

  let hits = 0
  for (let i = 0; i < trace.length; i++) {
    const x = trace[i]
    const l = where[x]
    if (l === T1 || l === T2) {
      // Case I: a cache hit; x becomes the MRU page of T2.
      hits++
      if (hitAt !== undefined) hitAt[i] = 1
      moveMru(T2, x)
    } else if (l === B1) {
      // Case II: a ghost hit in B1: T1 deserved more room.
      const b1 = size[B1]
      const b2 = size[B2]
      p = Math.min(c, p + (b1 >= b2 ? 1 : b2 / b1))
      replace(false)
      moveMru(T2, x)
    } else if (l === B2) {
      // Case III: a ghost hit in B2: T2 deserved more room.
      const b1 = size[B1]
      const b2 = size[B2]
      p = Math.max(0, p - (b2 >= b1 ? 1 : b1 / b2))
      replace(true)
      moveMru(T2, x)
    } else {
      // Case IV: a complete miss.
      const l1 = size[T1] + size[B1]
      const total = l1 + size[T2] + size[B2]
      if (l1 === c) {
        if (size[T1] < c) {
          unlink(tail[B1])
          replace(false)
        } else {
          unlink(tail[T1]) // B1 is empty: T1's LRU page leaves the cache and the directory
        }
      } else if (total >= c) {
        if (total === 2 * c) unlink(tail[B2])
        replace(false)
      }
      pushMru(T1, x)
    }
  }
  return hits
}
