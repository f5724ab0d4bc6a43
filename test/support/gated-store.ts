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

/**
 * A store whose `set` of a key containing "slow" waits for `gate` and of one containing
 * "bad" rejects ('disk full'); every other call goes straight to `target`. For tests of what
 * waits on which write (the replica store's barriers, replication's answers).
 */
export function slowSets<T extends object>(target: T, gate: Promise<void>): T {
  return new Proxy(target, {
    get(t, p) {
      const f: unknown = Reflect.get(t, p)
      if (typeof f !== 'function') return f
      if (p !== 'set') return (f as (...a: unknown[]) => unknown).bind(t)
      return async (...args: unknown[]) => {
        if (String(args[0]).includes('slow')) await gate
        if (String(args[0]).includes('bad')) throw new Error('disk full')
        return (f as (...a: unknown[]) => unknown).apply(t, args)
      }
    },
  })
}
