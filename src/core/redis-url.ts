/**
 * The check of a Redis URL given to redisStore or redisTransport, before ioredis sees it:
 * ioredis takes another scheme's URL for a unix socket path ("connect ENOENT //host:port"),
 * and parses the URL inside its constructor, where a port of 99999 or a bad host threw its
 * raw TypeError. Here, so that the store and bus layers (which share nothing else) check alike.
 */
import { InvalidOptionsError } from './errors.js'

/** Throws ERR_INVALID_OPTIONS naming `option` unless `url` is a non-empty string ioredis can dial. */
export function checkRedisUrl(url: unknown, option: string): asserts url is string {
  if (typeof url !== 'string' || url === '') throw new InvalidOptionsError(option, 'expected a non-empty string')
  const otherScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !/^rediss?:\/\//i.test(url)
  if (otherScheme || !parsesAsRedisUrl(url)) throw new InvalidOptionsError(option, `expected a redis:// or rediss:// URL, got ${JSON.stringify(url.slice(0, 100))}`)
}

/** Whether ioredis can parse `url` as it does (a socket path, `redis[s]://…`, `//host`, or `host:port`). */
function parsesAsRedisUrl(url: string): boolean {
  if (url.startsWith('/') && !url.startsWith('//')) return true
  try {
    new URL(/^rediss?:\/\//i.test(url) ? url : url.startsWith('//') ? `redis:${url}` : `redis://${url}`)
    return true
  } catch {
    return false
  }
}
