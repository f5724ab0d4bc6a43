/**
 * A store seen through a switch: while `isDown()` every call (locks included) rejects at
 * once, like a Redis that refuses connections; `calls` records the methods called. Wraps a
 * real store (usually `memoryStore`), so the lock paths stay the real ones.
 */
export function gated<T extends object>(target: T, isDown: () => boolean, calls: string[] = []): T {
  return new Proxy(target, {
    get(t, p) {
      const v: unknown = Reflect.get(t, p)
      if (p === 'locks' && typeof v === 'object' && v !== null) return gated(v, isDown, calls)
      if (typeof v !== 'function' || p === 'close') return v
      return (...args: unknown[]) => {
        calls.push(String(p))
        return isDown() ? Promise.reject(new Error('connect ECONNREFUSED')) : (v as (...a: unknown[]) => unknown).apply(t, args)
      }
    },
  })
}
