/**
 * A 32-bit hash of a cache key for the frequency sketch (TinyLFU). Computed on insert, at
 * admission when the policy's small caches miss, and on the hits that still need the
 * sketch (those of keys not yet at its cap); never stored per slot. Strings use a Murmur-style mix
 * over pairs of their UTF-16 units; numbers their bits; objects an identity number.
 */
const objectIds = new WeakMap<object, number>()
let nextObjectId = 1

export function hashKey(key: unknown): number {
  if (typeof key === 'string') return hashString(key)
  if (typeof key === 'number') {
    if (Number.isInteger(key) && Math.abs(key) < 2 ** 31) return mix(key | 0)
    return hashString(String(key))
  }
  if ((typeof key === 'object' && key !== null) || typeof key === 'function') {
    let id = objectIds.get(key)
    if (id === undefined) objectIds.set(key, (id = nextObjectId++))
    return mix(id)
  }
  return hashString(String(key))
}

function hashString(s: string): number {
  // Two UTF-16 units per round (half the multiplications of one per unit).
  const n = s.length
  let h = 0x811c9dc5 ^ n
  let i = 0
  for (; i + 1 < n; i += 2) {
    h = Math.imul(h ^ (s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16)), 0x5bd1e995)
    h ^= h >>> 15
  }
  if (i < n) {
    h = Math.imul(h ^ s.charCodeAt(i), 0x5bd1e995)
    h ^= h >>> 15
  }
  return mix(h)
}

function mix(x: number): number {
  let h = Math.imul(x ^ (x >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) | 0
}
