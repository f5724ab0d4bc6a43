/**
 * Strict parsing of what arrives on the wire (docs/PROTOCOL.md). Every function either
 * returns a well-formed value or throws a typed `CacheError` whose code maps to an HTTP
 * status (`STATUS_OF_CODE`); none of them throws anything else, whatever the input. The
 * client uses the same functions to refuse bad input before it is sent.
 */
import { BadRequestError, InvalidKeyError, InvalidOptionsError, InvalidTagError, TooLargeError } from '../core/errors.js'
import { validateTag } from '../tags/validate-tag.js'
import { DEFAULT_MAX_KEY_BYTES, DEFAULT_TTL_SECONDS, MAX_TAGS, MAX_TTL_SECONDS, MIN_TTL_SECONDS, TTL_NONE } from './wire.js'

/** Whole seconds as written in a query: no sign, no leading zero (`010` is refused, not read as 10 or 8). */
const DIGITS_RE = /^(?:0|[1-9][0-9]{0,9})$/
const LONE_SURROGATE_RE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const VERSION_RE = /^(?:(?:W\/)?"([0-9]{1,16})"|([0-9]{1,16}))$/

/** A short, safe rendering of untrusted input for error messages. */
export function clip(text: string, max = 60): string {
  const s = text.length > max ? `${text.slice(0, max)}...` : text
  return JSON.stringify(s)
}

/**
 * Checks a decoded key: a string of 1..maxKeyBytes bytes of UTF-8 without lone surrogates.
 * Empty or malformed: `ERR_INVALID_KEY` (400); too long: `ERR_TOO_LARGE` (413).
 */
export function checkKey(key: unknown, maxKeyBytes = DEFAULT_MAX_KEY_BYTES): asserts key is string {
  if (typeof key !== 'string') throw new InvalidKeyError(`Keys must be strings, got ${key === null ? 'null' : typeof key}`)
  if (key.length === 0) throw new InvalidKeyError('Keys must not be empty')
  // A UTF-16 string is never shorter in UTF-8 than its length; check the cheap bound first.
  if (key.length > maxKeyBytes || Buffer.byteLength(key, 'utf8') > maxKeyBytes) throw new TooLargeError(`Key of ${Buffer.byteLength(key, 'utf8')} bytes is over the limit of ${maxKeyBytes}`)
  if (LONE_SURROGATE_RE.test(key)) throw new InvalidKeyError('Keys must be well-formed Unicode (no lone surrogates)')
}

/**
 * Checks a key prefix the client is given (`keys`, `clear`): a string of well-formed
 * Unicode, since a lone surrogate has no UTF-8 and so no percent-encoding (URLSearchParams
 * would send U+FFFD, another prefix). `ERR_INVALID_OPTIONS` naming `prefix` otherwise.
 */
export function checkPrefix(prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string') throw new InvalidOptionsError('prefix', 'expected a string')
  if (LONE_SURROGATE_RE.test(prefix)) throw new InvalidOptionsError('prefix', 'expected well-formed Unicode (no lone surrogates)')
}

/** Decodes a percent-encoded path segment into a key and checks it (see `checkKey`). */
export function parseKeySegment(segment: string, maxKeyBytes = DEFAULT_MAX_KEY_BYTES): string {
  // Encoded, a key is at most 9 characters per byte (%XX of 4-byte sequences is 12 for 4).
  if (segment.length > maxKeyBytes * 3) throw new TooLargeError(`Key is over the limit of ${maxKeyBytes} bytes`)
  let key: string
  try {
    key = decodeURIComponent(segment)
  } catch {
    throw new InvalidKeyError(`Key is not valid percent-encoded UTF-8: ${clip(segment)}`)
  }
  checkKey(key, maxKeyBytes)
  return key
}

/**
 * A TTL in seconds from a query parameter (`ttl` or Zerocache's `expiry`): absent → the
 * default; `none` → `null` (no expiry); otherwise a whole number in 1..99,999,999.
 */
export function parseTtlParam(raw: string | null | undefined, name = 'ttl', fallback: number | null = DEFAULT_TTL_SECONDS): number | null {
  if (raw === null || raw === undefined) return fallback
  if (raw === TTL_NONE) return null
  if (!DIGITS_RE.test(raw)) throw new InvalidOptionsError(name, `expected whole seconds in ${MIN_TTL_SECONDS}..${MAX_TTL_SECONDS} or '${TTL_NONE}', got ${clip(raw)}`)
  return checkTtlSeconds(Number(raw), name)
}

/** A TTL from JSON: absent → default; `null` or `'none'` → no expiry; else whole seconds in range. */
export function parseTtlJson(value: unknown, name = 'ttl', fallback: number | null = DEFAULT_TTL_SECONDS): number | null {
  if (value === undefined) return fallback
  if (value === null || value === TTL_NONE) return null
  if (typeof value !== 'number') throw new InvalidOptionsError(name, `expected whole seconds, null or '${TTL_NONE}', got ${typeof value}`)
  return checkTtlSeconds(value, name)
}

function checkTtlSeconds(n: number, name: string): number {
  if (!Number.isInteger(n) || n < MIN_TTL_SECONDS || n > MAX_TTL_SECONDS) {
    throw new InvalidOptionsError(name, `expected whole seconds in ${MIN_TTL_SECONDS}..${MAX_TTL_SECONDS} or '${TTL_NONE}', got ${String(n)}`)
  }
  return n
}

/** Tags from a comma-separated query parameter (`tags=a,b:c`); absent or empty → none. */
export function parseTagsParam(raw: string | null | undefined): string[] {
  if (raw === null || raw === undefined || raw === '') return []
  if (raw.length > MAX_TAGS * 257) throw new InvalidTagError(raw.slice(0, 60), `more than ${MAX_TAGS} tags`)
  return checkTags(raw.split(','))
}

/** Tags from JSON: absent → none; otherwise an array of valid tags (at most `MAX_TAGS`). */
export function parseTagsJson(value: unknown, name = 'tags'): string[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw new InvalidTagError(name, 'expected an array of tags')
  return checkTags(value as unknown[])
}

function checkTags(tags: readonly unknown[]): string[] {
  if (tags.length > MAX_TAGS) throw new InvalidTagError(`${tags.length} tags`, `more than ${MAX_TAGS} tags`)
  const out: string[] = []
  for (const tag of tags) {
    validateTag(tag)
    if (!out.includes(tag)) out.push(tag)
  }
  return out
}

/**
 * The `If-Match` header: absent → `undefined`; `*` → any existing entry; `"<n>"` (or `n`,
 * `W/"n"`) → that version. Anything else (lists included): `ERR_BAD_REQUEST`.
 */
export function parseIfMatch(raw: string | undefined): number | '*' | undefined {
  if (raw === undefined) return undefined
  const text = raw.trim()
  if (text === '*') return '*'
  const m = VERSION_RE.exec(text)
  const n = m === null ? NaN : Number(m[1] ?? m[2])
  if (!Number.isSafeInteger(n) || n < 1) throw new BadRequestError(`If-Match must be "*" or one quoted version number, got ${clip(raw)}`)
  return n
}

/** The `ETag` of a version. */
export function formatEtag(version: number): string {
  return `"${version}"`
}

/**
 * Whether an `If-None-Match` list names the entry of `version`: `*` (any entry), or its
 * entity tag, weak (`W/"12"`) or strong (`"12"`): RFC 9110's weak comparison, as a GET's
 * If-None-Match uses. Entries of the list that are not tags of ours match nothing.
 */
export function noneMatchNames(raw: string, version: number): boolean {
  const tag = formatEtag(version)
  for (const part of raw.split(',')) {
    const t = part.trim()
    if (t === '*' || t === tag || t === `W/${tag}`) return true
  }
  return false
}

/** Reads an `ETag` header back into a version (`undefined` when absent or malformed). */
export function parseEtag(raw: string | null | undefined): number | undefined {
  if (raw === null || raw === undefined) return undefined
  const m = VERSION_RE.exec(raw.trim())
  if (m === null) return undefined
  const n = Number(m[1] ?? m[2])
  return Number.isSafeInteger(n) && n > 0 ? n : undefined
}

/** 1 for each character code of the standard base64 alphabet (A-Z a-z 0-9 + /). */
const BASE64_ALPHABET = new Uint8Array(128)
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') BASE64_ALPHABET[c.charCodeAt(0)] = 1

/**
 * True when `text` is padded base64: alphabet characters, then at most two '=', the whole a
 * multiple of 4 long. A plain loop, not a regex: a regex with a repeated group recursed per
 * group in V8 and overflowed the stack past ~4.4 M characters (a 3.2 MB value, answered 500).
 */
function isPaddedBase64(text: string): boolean {
  const n = text.length
  if (n % 4 !== 0) return false
  let end = n
  if (end > 0 && text.charCodeAt(end - 1) === 61) end--
  if (end > 0 && text.charCodeAt(end - 1) === 61 && end === n - 1) end--
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i)
    if (c >= 128 || BASE64_ALPHABET[c] !== 1) return false
  }
  return true
}

/** Strict base64 (standard alphabet, padded) to bytes; `ERR_BAD_REQUEST` otherwise. */
export function decodeBase64(text: unknown, name: string): Buffer {
  if (typeof text !== 'string' || !isPaddedBase64(text)) throw new BadRequestError(`${name} must be a padded base64 string`)
  return Buffer.from(text, 'base64')
}

/** Parses a JSON body; anything but an object: `ERR_BAD_REQUEST`. */
export function parseJsonObject(body: Uint8Array): Record<string, unknown> {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'))
  } catch (err) {
    throw new BadRequestError('Body is not valid JSON', { cause: err })
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new BadRequestError('Body must be a JSON object')
  return parsed as Record<string, unknown>
}
