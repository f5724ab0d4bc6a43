/**
 * `autoCache(fn, { region, expiry, client })`: Zerocache's `@auto_zerocache(region, expiry)`
 * for TypeScript. A call looks its result up on the nodes; on a miss it runs `fn` and
 * stores the result for `expiry` (default 60 s, as Zerocache). `autoCached(options)` is the
 * same as a standard (TC39) method decorator.
 *
 * Keys: `<region>/<name>(<stable arguments>)` — `stableKey` (src/cache/stable-key.ts), so
 * equal arguments give equal keys in every process, and arguments that cannot be keyed
 * safely are refused with `ERR_INVALID_KEY`. `<region>/<rest>` is exactly how a node maps
 * Zerocache's `/{region}/{key}` routes, so both families of clients share the keyspace.
 * Every entry carries the tag `auto:<region>:<name>` so `fn.clear()` drops them all.
 *
 * Values travel through the library's codec (msgpack: Date, BigInt, Map, Set, typed arrays
 * survive; compression above 1 KB; optional encryption).
 *
 * Failure policy (what Zerocache leaves to luck): the cache must never make `fn` fail.
 * A node error on the lookup runs `fn` directly (no write attempt after it: the nodes just
 * failed); a failed write or an entry that does not decode is a miss. Both are reported
 * to `onError`. Errors thrown by `fn` itself propagate and are not cached; `undefined`
 * results are returned and not cached (undefined means "absent"). Concurrent calls with
 * equal arguments in one process share one lookup and one run of `fn`.
 */
import { createCodec, type Codec, type CodecOptions } from '../codec/index.js'
import { stableKey } from '../cache/stable-key.js'
import { toMsOr, type Duration } from '../core/duration.js'
import { InvalidOptionsError, InvalidValueError, isCacheError } from '../core/errors.js'
import type { Client } from './client.js'

export interface AutoCacheOptions<A extends unknown[] = unknown[]> {
  /** The nodes' client. */
  client: Client
  /** Zerocache's region: the first segment of every key. No `/`, not `v1`. */
  region: string
  /** How long a result is kept. @default '60s' */
  expiry?: Duration
  /** The function's name in keys. @default `fn.name` (required when the function is anonymous) */
  name?: string
  /** Derives the part of the key after `<region>/` from the arguments. @default `<name>(<stable arguments>)` */
  key?: (...args: A) => string
  /** Extra tags for every entry. @default none */
  tags?: readonly string[]
  /** How results become bytes. @default msgpack with deflate above 1 KB */
  codec?: CodecOptions
  /** Called with every cache failure the wrapper absorbed. @default ignore */
  onError?: (error: unknown) => void
}

export interface AutoCached<A extends unknown[], R> {
  (...args: A): Promise<R>
  /** Deletes one call's entry on the nodes. */
  invalidate(...args: A): Promise<boolean>
  /** Invalidates every entry of this function on the nodes. */
  clear(): Promise<void>
  /** The node key of one call. */
  keyOf(...args: A): string
}

const TAG_UNSAFE = /[^A-Za-z0-9_.@+=-]/g

interface Resolved<A extends unknown[]> {
  readonly client: Client
  readonly region: string
  readonly expiryMs: number
  readonly key: ((...args: A) => string) | undefined
  readonly tags: string[]
  readonly codec: Codec
  readonly onError: (error: unknown) => void
}

function resolve<A extends unknown[]>(options: AutoCacheOptions<A>): Resolved<A> {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected { client, region, expiry? }')
  const { client, region } = options
  if (client === null || typeof client !== 'object' || typeof client.get !== 'function') throw new InvalidOptionsError('client', 'expected a client from createClient()')
  if (typeof region !== 'string' || region === '' || region.includes('/') || region === 'v1') throw new InvalidOptionsError('region', `expected a non-empty string without '/', not 'v1', got ${JSON.stringify(region)}`)
  const expiryMs = toMsOr(options.expiry, 60_000, 'expiry')
  if (!(expiryMs >= 1000)) throw new InvalidOptionsError('expiry', 'expected at least 1 s (or Infinity)')
  if (options.key !== undefined && typeof options.key !== 'function') throw new InvalidOptionsError('key', 'expected a function (...args) => string')
  if (options.onError !== undefined && typeof options.onError !== 'function') throw new InvalidOptionsError('onError', 'expected a function')
  const onError = options.onError
  return {
    client,
    region,
    expiryMs,
    key: options.key,
    tags: [...(options.tags ?? [])],
    codec: createCodec(options.codec),
    onError: (error) => {
      try {
        onError?.(error)
      } catch {
        // A throwing listener must not turn a cache failure into the caller's failure.
      }
    },
  }
}

/** Wraps `fn` so its results are cached on the nodes. */
export function autoCache<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options: AutoCacheOptions<A>): AutoCached<A, Awaited<R>> {
  if (typeof fn !== 'function') throw new InvalidOptionsError('fn', 'expected a function')
  const r = resolve(options)
  const name = options.name ?? fn.name
  if (typeof name !== 'string' || name === '') throw new InvalidOptionsError('name', 'the function is anonymous: give it a name (part of every key)')
  return build(r, name, (_self, args) => fn(...args))
}

/** `autoCache` as a standard method decorator: `@autoCached({ client, region: 'london', expiry: '42s' })`. */
export function autoCached<This, A extends unknown[], R>(options: AutoCacheOptions<A>) {
  const r = resolve(options)
  return function decorate(method: (this: This, ...args: A) => Promise<R>, context: ClassMethodDecoratorContext<This, (this: This, ...args: A) => Promise<R>>): AutoCached<A, R> {
    if (context.kind !== 'method') throw new InvalidOptionsError('autoCached', 'can only decorate methods')
    let owner = 'anonymous'
    context.addInitializer(function (this: This) {
      owner = typeof this === 'function' ? (this as { name: string }).name : ((this as object).constructor?.name ?? 'anonymous')
    })
    const methodName = String(context.name)
    return build(r, () => `${owner}.${methodName}`, (self, args) => method.apply(self as This, args)) as AutoCached<A, R>
  }
}

function build<A extends unknown[], R>(r: Resolved<A>, name: string | (() => string), run: (self: unknown, args: A) => R | Promise<R>): AutoCached<A, Awaited<R>> {
  const nameOf = typeof name === 'function' ? name : () => name
  const keyOf = (...args: A): string => `${r.region}/${r.key !== undefined ? r.key(...args) : `${nameOf()}(${stableKey(args)})`}`
  const tagOf = (): string => `auto:${r.region.replace(TAG_UNSAFE, '_')}:${nameOf().replace(TAG_UNSAFE, '_') || '_'}`
  const inflight = new Map<string, Promise<Awaited<R>>>()

  async function lookupOrRun(self: unknown, key: string, args: A): Promise<Awaited<R>> {
    let nodesFailed = false
    try {
      const entry = await r.client.get(key)
      if (entry !== undefined) {
        try {
          return r.codec.decode(entry.value, key) as Awaited<R>
        } catch (err) {
          r.onError(err) // undecodable: a miss, overwritten below
        }
      }
    } catch (err) {
      nodesFailed = true
      r.onError(err)
    }
    const result = await run(self, args)
    if (result !== undefined && !nodesFailed) {
      try {
        let bytes: Uint8Array
        try {
          bytes = r.codec.encode(result, key)
        } catch (err) {
          // What the serializer throws (a symbol, a cycle, a function) is a raw error: typed here, as the facade does.
          throw isCacheError(err) ? err : new InvalidValueError(`The result for key ${JSON.stringify(key)} cannot be encoded: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
        }
        await r.client.set(key, bytes, { ttl: r.expiryMs, tags: [...r.tags, tagOf()] })
      } catch (err) {
        r.onError(err)
      }
    }
    return result
  }

  const wrapped = function (this: unknown, ...args: A): Promise<Awaited<R>> {
    let key: string
    try {
      key = keyOf(...args)
    } catch (err) {
      return Promise.reject(err)
    }
    const joined = inflight.get(key)
    if (joined !== undefined) return joined
    const p = lookupOrRun(this, key, args).finally(() => inflight.delete(key))
    inflight.set(key, p)
    return p
  } as AutoCached<A, Awaited<R>>
  wrapped.keyOf = keyOf
  wrapped.invalidate = (...args: A) => r.client.delete(keyOf(...args))
  wrapped.clear = async () => {
    await r.client.invalidate([tagOf()])
  }
  return wrapped
}

