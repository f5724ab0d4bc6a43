/**
 * A rough, bounded estimate of a value's heap footprint in bytes, used as the default
 * `sizeOf` when a cache is bounded by `maxBytes`. It is an estimate, not a measurement:
 * strings count 2 bytes per UTF-16 unit, binary data its byteLength, objects a fixed
 * overhead plus their keys and values. The walk stops after a budget of nodes so a huge
 * or cyclic value costs bounded time; callers who know their sizes should pass `size`.
 */
const OBJECT_OVERHEAD = 32
const BUDGET = 10_000

export function estimateSize(value: unknown): number {
  const seen = new Set<object>()
  let budget = BUDGET
  const walk = (v: unknown): number => {
    if (--budget < 0) return 0
    switch (typeof v) {
      case 'string':
        return 16 + 2 * v.length
      case 'number':
        return 8
      case 'boolean':
        return 4
      case 'bigint':
        return 16 + Math.ceil(v.toString(16).length / 2)
      case 'undefined':
      case 'symbol':
      case 'function':
        return 8
      case 'object': {
        if (v === null) return 8
        if (seen.has(v)) return 8
        seen.add(v)
        if (ArrayBuffer.isView(v)) return OBJECT_OVERHEAD + v.byteLength
        if (v instanceof ArrayBuffer) return OBJECT_OVERHEAD + v.byteLength
        if (v instanceof Date) return OBJECT_OVERHEAD
        let total = OBJECT_OVERHEAD
        if (v instanceof Map) {
          for (const [k, x] of v) total += walk(k) + walk(x)
        } else if (v instanceof Set) {
          for (const x of v) total += walk(x)
        } else if (Array.isArray(v)) {
          for (const x of v) total += 8 + walk(x)
        } else {
          for (const k of Object.keys(v)) total += 16 + 2 * k.length + walk((v as Record<string, unknown>)[k])
        }
        return total
      }
    }
    return 8
  }
  return walk(value)
}
