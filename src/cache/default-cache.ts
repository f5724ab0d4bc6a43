import { Cache, createCache } from './cache.js'

let instance: Cache | undefined

/**
 * The process-wide cache used by `@cached()` when no `cache` option is given, created on
 * first use with the embedded defaults.
 */
export function defaultCache(): Cache {
  instance ??= createCache()
  return instance
}
