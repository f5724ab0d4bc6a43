import { Cache, createCache } from './cache.js'

let instance: Cache | undefined

/**
 * The process-wide cache used by `@cached()` when no `cache` option is given, created on
 * first use with the embedded defaults, and again on the first use after it was closed.
 */
export function defaultCache(): Cache {
  if (instance === undefined || instance.closed) instance = createCache()
  return instance
}
