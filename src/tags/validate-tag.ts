import { InvalidTagError } from '../core/errors.js'

/**
 * Tag syntax. A tag is a `:`-separated path of segments, coarse to fine: `org:1:user:42`.
 *
 * - every segment is non-empty and made of ASCII letters, digits and `_ - . @ / + =`
 *   (no whitespace, no `:` inside a segment, no `*` — reserved for patterns later);
 * - at most `MAX_TAG_LENGTH` characters and `MAX_TAG_DEPTH` segments.
 *
 * The set is small on purpose: tags travel in bus messages, Redis keys and file names,
 * and a tag that means the same thing must be spelled one way.
 *
 * Reserved root. Tags whose first segment is `@origin` are the cache's own: the origin
 * tags an entry's `origins` derive (src/feeds/origin-tags.ts). A user tag may not create
 * one (it could forge or shadow an origin) nor invalidate one (it would flush entries a
 * change feed owns): user-facing validation (`validateTag`, `normalizeTags`) rejects them.
 * Internal paths (tags read back from L2 records, bus messages, the trie's own methods)
 * pass `internal = true` and accept them; the syntax is the same either way.
 */
export const TAG_SEPARATOR = ':'
/** Longest tag accepted, in UTF-16 code units (all allowed characters are ASCII). */
export const MAX_TAG_LENGTH = 256
/** Most segments in one tag. Bounds the cost of an invalidation and of a slow check. */
export const MAX_TAG_DEPTH = 32

/** The first segment of the tags the cache derives from `origins`; user tags cannot use it. */
export const ORIGIN_TAG_ROOT = '@origin'

const SEGMENT_CHARS = 'letters, digits and _ - . @ / + ='
const TAG_RE = /^[A-Za-z0-9_.@/+=-]+(?::[A-Za-z0-9_.@/+=-]+)*$/
const SEGMENT_CHAR_RE = /^[A-Za-z0-9_.@/+=-]$/

/** Whether `tag`'s first segment is the reserved `@origin` (one char test for other tags). */
export function isOriginTag(tag: string): boolean {
  return tag.charCodeAt(0) === 64 && tag.startsWith(ORIGIN_TAG_ROOT) && (tag.length === ORIGIN_TAG_ROOT.length || tag[ORIGIN_TAG_ROOT.length] === TAG_SEPARATOR)
}

/**
 * Throws `InvalidTagError` (`ERR_INVALID_TAG`) unless `tag` is a well-formed tag (and,
 * unless `internal`, not under the reserved `@origin` root). Non-strings are rejected
 * with the same error.
 */
export function validateTag(tag: unknown, internal = false): asserts tag is string {
  if (typeof tag !== 'string') throw new InvalidTagError(describable(tag), `expected a string, got ${tag === null ? 'null' : typeof tag}`)
  if (tag.length > MAX_TAG_LENGTH) throw new InvalidTagError(clip(tag), `longer than ${MAX_TAG_LENGTH} characters (${tag.length})`)
  if (!TAG_RE.test(tag)) throw new InvalidTagError(tag, diagnose(tag))
  let depth = 1
  for (let i = tag.indexOf(TAG_SEPARATOR); i !== -1; i = tag.indexOf(TAG_SEPARATOR, i + 1)) depth++
  if (depth > MAX_TAG_DEPTH) throw new InvalidTagError(tag, `deeper than ${MAX_TAG_DEPTH} segments (${depth})`)
  if (!internal && isOriginTag(tag)) throw new InvalidTagError(tag, `the root segment "${ORIGIN_TAG_ROOT}" is reserved for the tags the cache derives from origins (use the \`origins\` option)`)
}

/**
 * Validates every tag, then returns them deduplicated and sorted (by UTF-16 code units,
 * independent of locale), so that equal tag sets always give snapshots of the same shape.
 * Returns a new array; the input is not modified.
 */
export function normalizeTags(tags: readonly string[], internal = false): string[] {
  if (!Array.isArray(tags)) throw new InvalidTagError(describable(tags), 'expected an array of tags')
  const n = tags.length
  if (n === 0) return []
  if (n === 1) {
    const only: unknown = tags[0]
    validateTag(only, internal)
    return [only]
  }
  const out: string[] = new Array<string>(n)
  for (let i = 0; i < n; i++) {
    const tag: unknown = tags[i]
    validateTag(tag, internal)
    out[i] = tag
  }
  out.sort()
  let w = 1
  for (let r = 1; r < n; r++) if (out[r] !== out[w - 1]) out[w++] = out[r]
  out.length = w
  return out
}

/** Says precisely what is wrong with a string that failed `TAG_RE`. */
function diagnose(tag: string): string {
  if (tag.length === 0) return 'a tag cannot be empty'
  let segment = 0
  let segmentStart = 0
  for (let i = 0; i <= tag.length; i++) {
    if (i === tag.length || tag[i] === TAG_SEPARATOR) {
      if (i === segmentStart) return `segment ${segment + 1} is empty (leading, trailing or doubled ":")`
      segment++
      segmentStart = i + 1
    } else if (!SEGMENT_CHAR_RE.test(tag[i])) {
      return `character ${JSON.stringify(tag[i])} at index ${i} is not allowed (use ${SEGMENT_CHARS}, segments separated by ":")`
    }
  }
  return `not a valid tag (use ${SEGMENT_CHARS}, segments separated by ":")`
}

/** Keeps error messages bounded when someone passes a megabyte as a tag. */
function clip(tag: string): string {
  return tag.length > 300 ? `${tag.slice(0, 297)}...` : tag
}

/**
 * `InvalidTagError` puts `JSON.stringify(tag)` in its message, which itself throws on
 * bigints and cyclic objects; hand it a description instead so bad input always gets the
 * typed error.
 */
function describable(value: unknown): unknown {
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value === 'function') return '[function]'
  if (typeof value === 'symbol') return value.toString()
  if (typeof value === 'object' && value !== null) {
    try {
      JSON.stringify(value)
    } catch {
      return '[object]'
    }
  }
  return value
}
