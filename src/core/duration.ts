import { InvalidOptionsError } from './errors.js'

/**
 * A duration: milliseconds as a number, a string with one unit (`'500ms'`, `'30s'`,
 * `'5m'`, `'2h'`, `'1d'`, decimals allowed: `'1.5s'`), or `Infinity` for "never".
 */
export type Duration = number | `${number}${DurationUnit}` | 'Infinity'
export type DurationUnit = 'ms' | 's' | 'm' | 'h' | 'd'

/** A byte size: a number of bytes or a string such as `'512b'`, `'64kb'`, `'64mb'`, `'1gb'` (binary units). */
export type ByteSize = number | `${number}${ByteUnit}`
export type ByteUnit = 'b' | 'kb' | 'mb' | 'gb'

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const BYTE_UNITS: Readonly<Record<string, number>> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }
const parsed = new Map<string, number>()
const DURATION_RE = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i
const BYTES_RE = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)\s*$/i

/**
 * Converts a duration to milliseconds. `option` names the option in the error raised for
 * a malformed or negative input. The result is >= 0, or `Infinity`.
 */
export function toMs(value: unknown, option: string): number {
  if (typeof value === 'number') {
    if (value === Infinity) return Infinity
    if (Number.isFinite(value) && value >= 0) return value
    throw new InvalidOptionsError(option, `expected a duration >= 0 in ms, got ${String(value)}`)
  }
  if (typeof value === 'string') {
    // Per-call options repeat a few duration strings: parse each once.
    const known = parsed.get(value)
    if (known !== undefined) return known
    if (value.trim() === 'Infinity') return Infinity
    const m = DURATION_RE.exec(value)
    if (m !== null) {
      // Rounded to the microsecond: '1.1h' is 3,960,000 ms, not 3,960,000.0000000005.
      const ms = Math.round(Number(m[1]) * DURATION_UNITS[m[2].toLowerCase()] * 1000) / 1000
      if (parsed.size < 1024) parsed.set(value, ms)
      return ms
    }
    throw new InvalidOptionsError(option, `expected a duration like '500ms', '30s', '5m', '2h', '1d', got ${JSON.stringify(value)}`)
  }
  throw new InvalidOptionsError(option, `expected a duration (number of ms or string like '30s'), got ${typeof value}`)
}

/** Like `toMs` but `undefined` gives `fallback`. */
export function toMsOr(value: unknown, fallback: number, option: string): number {
  return value === undefined ? fallback : toMs(value, option)
}

/** Converts a byte size (at least 1 byte) to a whole number of bytes, rounded down. */
export function toBytes(value: unknown, option: string): number {
  let n: number
  if (typeof value === 'number') n = value
  else if (typeof value === 'string') {
    const m = BYTES_RE.exec(value)
    if (m === null) throw new InvalidOptionsError(option, `expected a size like 1024, '64kb', '64mb', '1gb', got ${JSON.stringify(value)}`)
    n = Number(m[1]) * BYTE_UNITS[m[2].toLowerCase()]
  } else {
    throw new InvalidOptionsError(option, `expected a byte size, got ${typeof value}`)
  }
  // Under one byte would floor to a bound of 0, which keeps nothing.
  if (!Number.isFinite(n) || n < 1) throw new InvalidOptionsError(option, `expected a size of at least 1 byte, got ${String(value)}`)
  return Math.floor(n)
}
