/**
 * What every store's `scan` shares: option checks and a cursor codec. A cursor is opaque to
 * callers: base64url of a small JSON state, so a store can keep what it needs to resume
 * (a last key, a Redis cursor per master) and refuse what it did not hand out.
 */
import { InvalidOptionsError } from '../core/errors.js'
import type { ScanOptions } from './types.js'

/** Largest `limit` of one `scan` page. */
export const MAX_SCAN_LIMIT = 10_000
export const DEFAULT_SCAN_LIMIT = 100

export interface CheckedScan {
  readonly prefix: string
  readonly cursor: string | undefined
  readonly limit: number
}

/** Validates `scan`'s options (`ERR_INVALID_OPTIONS` naming the bad one). */
export function checkScanOptions(options: ScanOptions | undefined): CheckedScan {
  if (options === undefined) return { prefix: '', cursor: undefined, limit: DEFAULT_SCAN_LIMIT }
  if (typeof options !== 'object' || options === null) throw new InvalidOptionsError('scan', 'expected { prefix?, cursor?, limit? }')
  const { prefix = '', cursor, limit = DEFAULT_SCAN_LIMIT } = options
  if (typeof prefix !== 'string') throw new InvalidOptionsError('scan.prefix', `expected a string, got ${typeof prefix}`)
  if (cursor !== undefined && (typeof cursor !== 'string' || cursor === '')) throw new InvalidOptionsError('scan.cursor', 'expected the cursor of a previous page')
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_SCAN_LIMIT) throw new InvalidOptionsError('scan.limit', `expected an integer from 1 to ${MAX_SCAN_LIMIT}, got ${String(limit)}`)
  return { prefix, cursor, limit }
}

export function encodeCursor(state: unknown): string {
  return Buffer.from(JSON.stringify(state), 'utf8').toString('base64url')
}

/** The state inside a cursor, checked by `valid`; `ERR_INVALID_OPTIONS` when it is not one of ours. */
export function decodeCursor<T>(cursor: string, valid: (state: unknown) => state is T, store: string): T {
  let state: unknown
  try {
    state = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    state = undefined
  }
  if (!valid(state)) throw new InvalidOptionsError('scan.cursor', `not a cursor of this ${store} store's scan`)
  return state
}
