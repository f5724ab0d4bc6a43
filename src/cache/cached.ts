/**
 * `@cached()`: a standard (TC39) method decorator that caches a method's results.
 *
 * Key: `<Class>.<method>(<stable arguments>)` unless `key` is given. Instance state is not
 * part of the key: two instances share entries for equal arguments (pass `key` when the
 * instance matters). Every entry also carries the tag `cached:<Class>:<method>`, so
 * `method.clear()` invalidates them all in one O(depth) tag invalidation, and
 * `method.invalidate(...args)` deletes one call's entry. Only methods returning a Promise
 * can be decorated (the cached method always answers asynchronously); a sync method is a
 * type error.
 */
import { InvalidOptionsError } from '../core/errors.js'
import { validateTag } from '../tags/validate-tag.js'
import type { Cache } from './cache.js'
import { defaultCache } from './default-cache.js'
import { checkEntryOptionNames, DEFAULT_OPTIONS } from './option-names.js'
import { resolveOptions } from './resolve-options.js'
import { stableKey } from './stable-key.js'
import type { EntryOptions } from './types.js'

export interface CachedOptions<A extends unknown[] = unknown[]> extends Omit<EntryOptions, 'signal' | 'tags'> {
  /** The cache to use. @default the process-wide cache from `defaultCache()` */
  cache?: Cache
  /** Derives the key from the arguments. @default `<Class>.<method>(<stable arguments>)` */
  key?: (...args: A) => string
  /** Extra tags for every entry. @default none */
  tags?: readonly string[]
}

export interface CachedMethod<A extends unknown[], R> {
  (...args: A): Promise<R>
  /** Deletes the entry of one call. */
  invalidate(...args: A): Promise<boolean>
  /** Invalidates every entry of this method. */
  clear(): Promise<void>
}

/** `@cached`'s option names: a call's but `signal`, and the cache and key function. */
const CACHED_OPTIONS = [...DEFAULT_OPTIONS, 'cache', 'key']

export function cached<This, A extends unknown[], R>(options: CachedOptions<A> = {}) {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object')
  if (options.key !== undefined && typeof options.key !== 'function') throw new InvalidOptionsError('key', 'expected a function (...args) => string')
  checkEntryOptionNames(options, '', CACHED_OPTIONS)
  const { cache: explicit, key, tags: extraTags, ...entry } = options
  // Checked here, once: tags given as a string were spread into one tag per character, and a
  // `cache` that is not one failed every call with a raw TypeError.
  if (explicit !== undefined && (explicit === null || typeof explicit !== 'object' || typeof (explicit as Partial<Cache>).getOrSet !== 'function')) {
    throw new InvalidOptionsError('cache', 'expected a Cache (createCache(...))')
  }
  if (extraTags !== undefined) {
    if (!Array.isArray(extraTags)) throw new InvalidOptionsError('tags', 'expected an array of tags')
    for (const tag of extraTags) {
      try {
        validateTag(tag)
      } catch (err) {
        throw new InvalidOptionsError('tags', err instanceof Error ? err.message : String(err), { cause: err })
      }
    }
  }
  resolveOptions(entry, undefined, '')
  return function decorate(method: (this: This, ...args: A) => Promise<R>, context: ClassMethodDecoratorContext<This, (this: This, ...args: A) => Promise<R>>): CachedMethod<A, R> {
    if (context.kind !== 'method') throw new InvalidOptionsError('cached', 'can only decorate methods')
    const methodName = sanitize(String(context.name))
    let className = 'anonymous'
    context.addInitializer(function (this: This) {
      className = sanitize(typeof this === 'function' ? (this as { name: string }).name : ((this as object).constructor?.name ?? 'anonymous'))
    })
    const cacheOf = (): Cache => explicit ?? defaultCache()
    const keyOf = (args: A): string => (key !== undefined ? key(...args) : `${className}.${methodName}(${stableKey(args)})`)
    const tagOf = (): string => `cached:${className}:${methodName}`
    const replacement = function (this: This, ...args: A): Promise<R> {
      try {
        return cacheOf().getOrSet(keyOf(args), () => method.apply(this, args), { ...entry, tags: [...(extraTags ?? []), tagOf()] }) as Promise<R>
      } catch (err) {
        // An async method reports bad arguments as a rejection, never a synchronous throw.
        return Promise.reject(err)
      }
    } as CachedMethod<A, R>
    replacement.invalidate = (...args: A) => {
      try {
        return cacheOf().delete(keyOf(args))
      } catch (err) {
        // Arguments that cannot be keyed: a rejection, as from the method itself.
        return Promise.reject(err)
      }
    }
    replacement.clear = () => cacheOf().invalidateTags([tagOf()])
    return replacement
  }
}

function sanitize(name: string): string {
  const s = name.replace(/[^A-Za-z0-9_]/g, '_')
  return s.length === 0 ? 'anonymous' : s
}
