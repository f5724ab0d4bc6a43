/**
 * Checks of what a caller hands a `Store` directly (the cache always passes valid input;
 * an application calling a store from JavaScript may not): a typed refusal instead of a
 * raw TypeError, a value silently stored as other bytes, or a caller's mistake reported as
 * an unavailable server.
 */
import { InvalidKeyError, InvalidOptionsError } from '../core/errors.js'

/** A store key (or prefix) is a string. */
export function checkStoreKey(key: unknown, what = 'key'): asserts key is string {
  if (typeof key !== 'string') throw new InvalidKeyError(`A store ${what} must be a string, got ${key === null ? 'null' : typeof key}`)
}

/** A stored value is bytes. */
export function checkStoreValue(value: unknown): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new InvalidOptionsError('value', `expected a Uint8Array, got ${value === null ? 'null' : typeof value}`)
}

/** A list of keys, or of entries, is an array. */
export function checkStoreList(list: unknown, name: string): asserts list is readonly unknown[] {
  if (!Array.isArray(list)) throw new InvalidOptionsError(name, `expected an array, got ${list === null ? 'null' : typeof list}`)
}

/** A list of keys: an array of strings. */
export function checkStoreKeys(keys: unknown): asserts keys is readonly string[] {
  checkStoreList(keys, 'keys')
  for (const key of keys) checkStoreKey(key)
}

/** Every entry of a batch is `{ key: string, value: Uint8Array }` (its TTL is the store's to check). */
export function checkStoreEntries(entries: unknown): void {
  checkStoreList(entries, 'entries')
  for (const e of entries) {
    if (typeof e !== 'object' || e === null) throw new InvalidOptionsError('entries', `expected { key, value, ttlMs } entries, got ${e === null ? 'null' : typeof e}`)
    checkStoreKey((e as { key?: unknown }).key)
    checkStoreValue((e as { value?: unknown }).value)
  }
}

/** A lock token is a non-empty string (a number or '' would be granted, or, on Redis, sent as its text). */
export function checkStoreToken(token: unknown): asserts token is string {
  if (typeof token !== 'string' || token === '') throw new InvalidOptionsError('token', `expected a non-empty string, got ${token === '' ? "''" : token === null ? 'null' : typeof token}`)
}
