/**
 * A stable string for a list of arguments, for keys derived by `@cached` and `wrap`.
 * Equal values give equal strings in every process: object keys are sorted, Maps and Sets
 * are ordered by their entries' strings, types are marked so `1` and `'1'` differ.
 * Values that cannot be keyed without risking a silent collision (functions, symbols,
 * class instances without `toJSON`, cycles) raise `ERR_INVALID_KEY` naming the argument.
 * Long results are replaced by a SHA-256 digest so keys stay short.
 */
import { createHash } from 'node:crypto'
import { InvalidKeyError } from '../core/errors.js'

const DIGEST_OVER = 200

export function stableKey(args: readonly unknown[]): string {
  const parts = args.map((arg, i) => encode(arg, `argument ${i}`, new Set()))
  const text = parts.join(',')
  return text.length > DIGEST_OVER ? `#${createHash('sha256').update(text).digest('base64url')}` : text
}

function encode(value: unknown, path: string, seen: Set<object>): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value)
    case 'number':
      return Object.is(value, -0) ? '-0' : String(value)
    case 'boolean':
      return String(value)
    case 'undefined':
      return 'undefined'
    case 'bigint':
      return `${value}n`
    case 'function':
    case 'symbol':
      throw new InvalidKeyError(`${path} is a ${typeof value} and cannot be part of a cache key; pass a key function`)
  }
  if (value === null) return 'null'
  const obj = value as object
  if (seen.has(obj)) throw new InvalidKeyError(`${path} is cyclic and cannot be part of a cache key`)
  seen.add(obj)
  try {
    if (Array.isArray(obj)) return `[${obj.map((v, i) => encode(v, `${path}[${i}]`, seen)).join(',')}]`
    if (obj instanceof Date) {
      if (Number.isNaN(obj.getTime())) throw new InvalidKeyError(`${path} is an invalid Date`)
      return `Date(${obj.toISOString()})`
    }
    if (obj instanceof Map) {
      const entries = [...obj].map(([k, v], i) => `${encode(k, `${path}<key ${i}>`, seen)}=>${encode(v, `${path}<value ${i}>`, seen)}`)
      return `Map(${entries.sort().join(',')})`
    }
    if (obj instanceof Set) return `Set(${[...obj].map((v, i) => encode(v, `${path}<${i}>`, seen)).sort().join(',')})`
    if (ArrayBuffer.isView(obj)) return `${obj.constructor.name}(${Buffer.from(obj.buffer, obj.byteOffset, obj.byteLength).toString('base64')})`
    const proto = Object.getPrototypeOf(obj) as object | null
    if (proto === Object.prototype || proto === null) {
      const record = obj as Record<string, unknown>
      const keys = Object.keys(record).sort()
      return `{${keys.map((k) => `${JSON.stringify(k)}:${encode(record[k], `${path}.${k}`, seen)}`).join(',')}}`
    }
    const toJSON = (obj as { toJSON?: unknown }).toJSON
    if (typeof toJSON === 'function') return `${obj.constructor?.name ?? 'Object'}(${encode(toJSON.call(obj), path, seen)})`
    throw new InvalidKeyError(`${path} is a ${obj.constructor?.name ?? 'object'} instance and cannot be keyed safely; give it toJSON() or pass a key function`)
  } finally {
    seen.delete(obj)
  }
}
