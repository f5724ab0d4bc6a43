/**
 * The 32-bit hash of a cache key: the engine's key index (key-index.ts) stores it per slot
 * and probes with it, and TinyLFU's frequency sketch counts by it. Computed once per get,
 * set, has or delete. Strings use a Murmur-style mix over pairs of their UTF-16 units (two lanes);
 * numbers their bits (integers in int32 range directly, so +0 and -0 agree; others through
 * their string form, so NaN agrees with NaN); objects an identity number from a WeakMap.
 */
const objectIds = new WeakMap<object, number>()
let nextObjectId = 1

/**
 * `seed` (any int32) changes every hash: each cache draws its own (secretSeed in
 * core/random.ts), so that keys chosen to collide (hash flooding, which would make the key
 * index probe long runs) cannot be computed in advance, as V8 seeds its own string hashes
 * per process.
 */
export function hashKey(key: unknown, seed = 0): number {
  if (typeof key === 'string') return hashString(key, seed)
  if (typeof key === 'number') {
    if (Number.isInteger(key) && Math.abs(key) < 2 ** 31) return mix((key | 0) ^ seed)
    return hashString(String(key), seed)
  }
  if ((typeof key === 'object' && key !== null) || typeof key === 'function') {
    let id = objectIds.get(key)
    if (id === undefined) objectIds.set(key, (id = nextObjectId++))
    return mix(id ^ seed)
  }
  return hashString(String(key), seed)
}

export function hashString(s: string, seed: number): number {
  // Two UTF-16 units per round, in two independent lanes (four units per iteration): the
  // multiply chains of the lanes overlap, which halves the latency of a key's hash.
  const n = s.length
  let a = 0x811c9dc5 ^ n ^ seed
  let b = 0x2545f491 ^ seed
  let i = 0
  for (; i + 3 < n; i += 4) {
    a = Math.imul(a ^ (s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16)), 0x5bd1e995)
    b = Math.imul(b ^ (s.charCodeAt(i + 2) | (s.charCodeAt(i + 3) << 16)), 0x27d4eb2f)
    a ^= a >>> 15
    b ^= b >>> 15
  }
  if (i + 1 < n) {
    a = Math.imul(a ^ (s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16)), 0x5bd1e995)
    a ^= a >>> 15
    i += 2
  }
  if (i < n) {
    b = Math.imul(b ^ s.charCodeAt(i), 0x27d4eb2f)
    b ^= b >>> 15
  }
  // Not symmetric in the lanes: swapping two 4-unit blocks' halves changes the hash.
  return mix(a ^ Math.imul(b, 0x165667b1))
}

/** A constant, not a function declaration: V8 re-checks a module function's binding at every inlined call. */
const mix = (x: number): number => {
  let h = Math.imul(x ^ (x >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) | 0
}
