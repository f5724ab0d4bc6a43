/**
 * Growing the engine's parallel arrays (key index, eviction policies, expiry wheel) to an
 * exact capacity. In core because policies/, expiry/ and memory/ all use them: the expiry
 * wheel has no other reason to depend on the eviction policies.
 */
/** The smallest power of two >= n (and >= 1). */
export function nextPowerOfTwo(n: number): number {
  let p = 1
  while (p < n) p *= 2
  return p
}

/**
 * Grows a plain array to exactly `capacity` elements (a new array, holes filled with
 * undefined), keeping its contents; growth by push would over-allocate by half.
 */
export function growArray<T>(a: (T | undefined)[], capacity: number): (T | undefined)[] {
  if (capacity <= a.length) return a
  const b = new Array<T | undefined>(capacity)
  for (let i = 0; i < a.length; i++) b[i] = a[i]
  for (let i = a.length; i < capacity; i++) b[i] = undefined
  return b
}

/** Grows an Int32Array to `capacity`, keeping its contents and filling new cells with `fill`. */
export function growInt32(a: Int32Array, capacity: number, fill = -1): Int32Array {
  if (capacity <= a.length) return a
  const b = new Int32Array(capacity)
  b.set(a)
  if (fill !== 0) b.fill(fill, a.length)
  return b
}

export function growFloat64(a: Float64Array, capacity: number, fill = 0): Float64Array {
  if (capacity <= a.length) return a
  const b = new Float64Array(capacity)
  b.set(a)
  if (fill !== 0) b.fill(fill, a.length)
  return b
}
