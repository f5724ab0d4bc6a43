/**
 * Origin tags: origins carried into L2 and across processes by the dependency-tag
 * machinery, so that a change notice reaches an entry no process holds in its L1.
 *
 * The gap this closes. The origin index (origin-index.ts) lives in one process's memory
 * and holds a key only while that process's L1 does. An L2 record whose writer has
 * dropped it (evicted, restarted) is found by no notice, and would be served until its
 * TTL — a lie. Tags do not have that gap: an entry's tags travel with its L2 record, and
 * an invalidation writes the tag's version to L2 and publishes it on the bus (passive
 * resync, see src/tier/l2-tier.ts). So origins become tags.
 *
 * The matching rule (types.ts): an origin O and a notice N match when they agree on every
 * field that BOTH name; a field only one names is a wildcard. Tags match by equality (or
 * path prefix), not by wildcards, so the wildcards are compiled into the tags on both sides.
 *
 * Derivation. Write F(X) for the set of fields X names (a subset of {db, type, id}), and
 * X|S for X restricted to the fields S. A notice PATTERN is P = F(N). C(P, I, v) is an
 * injective encoding of a pattern P, a subset I ⊆ P and values v for the fields I.
 * - An origin O derives, for each of the 7 non-empty patterns P, the tag
 *   C(P, I, O|I) with I = P ∩ F(O): "what a notice of pattern P must say to concern O".
 *   (Distinct patterns may give equal tags only through distinct P: none coincide.)
 * - A notice N with pattern P = F(N) invalidates, for each I' ⊆ P, the tag C(P, I', N|I')
 *   (2^|P| tags): "every origin that names exactly I' of my fields, with my values
 *   there". One of them is never derived: C(P, ∅) for the full pattern (every origin
 *   names a field, so P ∩ F(O) is never empty when P is all three) — skipped, so a notice
 *   has at most 7 tags (full: 7, two fields: 4, one field: 2).
 *
 * Claim: N matches O  ⟺  N invalidates one of O's derived tags.
 * (⇒) Let P = F(N), I = P ∩ F(O) = the fields both name. O derived C(P, I, O|I). Since
 *     I ⊆ P, N invalidates C(P, I, N|I). They match, so O|I = N|I: the same tag.
 * (⇐) Say O's tag C(P1, I1, O|I1), I1 = P1 ∩ F(O), equals N's C(P2, I2, N|I2), P2 = F(N),
 *     I2 ⊆ P2. C is injective, so P1 = P2 = F(N), I1 = I2 = F(N) ∩ F(O) (the fields both
 *     name) and O|I1 = N|I1: they agree on every field both name — they match. ∎
 * (⇒) uses only that C is a function, so a notice never misses an entry; injectivity
 * only buys precision. Where the encoding below can collide (a SHA-256 collision between
 * long values, or two strings with lone surrogates that UTF-8 maps alike), a notice
 * erases more than it must — a miss, never a lie.
 *
 * The empty notice `{}` (a feed's scope "everything", used by the reconnect flush) is no
 * eighth pattern: no origin is ever tagged for it, yet the tag trie invalidates a path and
 * everything below it, and every origin tag lies below the root `@origin`. So `{}` maps to
 * the root alone — one invalidation that reaches every entry with origins, at no cost per
 * entry. Wire notices always name a field (the parsers reject the others).
 *
 * Encoding. A tag is `@origin:<P>.<I>[.<value>...]`: the reserved root (user tags cannot
 * use it, see validate-tag.ts), then ONE segment — P and I as 3-bit masks (db 1, type 2,
 * id 4), then the values of the fields in I in db, type, id order. I fixes the number of
 * values, so the segment parses one way, and one segment means no origin tag is a path
 * prefix of another (the trie's prefix rule adds nothing but the root's "everything"),
 * and an L2 read resyncs 2 paths per tag (the root is shared). A value is the base64url of
 * its UTF-8 when that is at most 80 characters (60 bytes), else `=` and the base64url of
 * its SHA-256 (`=` is not in the base64url alphabet: the two forms never meet). A tag is
 * thus at most 8 + 3 + 3 × 81 = 254 characters, under MAX_TAG_LENGTH.
 *
 * Cost. Entries without origins: nothing (their tags and signature are what they were;
 * user tag validation gains one character test). An entry with origins carries up to 7
 * tags per distinct origin (distinct derived tags are deduplicated): 7 for one origin,
 * less when several share patterns' projections. That costs their encoding on every
 * store, a larger L2 record, a trie walk over them when the trie has changed since the
 * entry was last checked, and on an L2 read one more `getMany` of up to 2 × (1 + 7k)
 * version keys (k origins). A notice costs up to 7 local trie invalidations, 7 L2 writes
 * (keys that expire after `origins.versionTtl`, see origin-lifetime.ts)
 * and one bus message — and, as any tag invalidation does, it sends every tagged L1 entry
 * through one slow check on its next read (the trie's change counter moved).
 * Indicative figures (memory store, one full origin, a shared 2-core machine — orders of
 * magnitude only): `set` about 5 → 12 µs, an L2 read by a fresh process about 4 → 14 µs;
 * entries without origins unchanged within noise.
 */
import { createHash } from 'node:crypto'
import { normalizeTags, ORIGIN_TAG_ROOT, TAG_SEPARATOR } from '../tags/validate-tag.js'
import type { ChangeNotice, OriginDescriptor } from './types.js'

const DB = 1
const TYPE = 2
const ID = 4
const MAX_LITERAL = 80
const enc = new TextEncoder()
const PREFIX = `${ORIGIN_TAG_ROOT}${TAG_SEPARATOR}`

function maskOf(d: ChangeNotice): number {
  return (d.db !== undefined ? DB : 0) | (d.type !== undefined ? TYPE : 0) | (d.id !== undefined ? ID : 0)
}

function encodeValue(value: string): string {
  const bytes = enc.encode(value)
  const literal = Buffer.from(bytes).toString('base64url')
  return literal.length <= MAX_LITERAL ? literal : `=${createHash('sha256').update(bytes).digest('base64url')}`
}

/** A descriptor's values, each encoded once (a tag uses up to three of them). */
function encodeAll(d: ChangeNotice): [string, string, string] {
  return [d.db === undefined ? '' : `.${encodeValue(d.db)}`, d.type === undefined ? '' : `.${encodeValue(d.type)}`, d.id === undefined ? '' : `.${encodeValue(d.id)}`]
}

/** C(P, I, d|I): the tag for pattern `p`, subset `i` of it, and `d`'s (encoded) values on `i`. */
function tagOf(p: number, i: number, v: readonly [string, string, string]): string {
  return `${PREFIX}${p}.${i}${i & DB ? v[0] : ''}${i & TYPE ? v[1] : ''}${i & ID ? v[2] : ''}`
}

/** The tags an entry with `origins` (validated descriptors) depends on, deduplicated. */
export function originTags(origins: readonly OriginDescriptor[]): string[] {
  if (origins.length === 1) {
    const o = origins[0] as OriginDescriptor
    const f = maskOf(o)
    const v = encodeAll(o)
    const out = new Array<string>(7)
    for (let p = 1; p < 8; p++) out[p - 1] = tagOf(p, p & f, v)
    return out
  }
  const out = new Set<string>()
  for (const o of origins) {
    const f = maskOf(o)
    const v = encodeAll(o)
    for (let p = 1; p < 8; p++) out.add(tagOf(p, p & f, v))
  }
  return [...out]
}

/**
 * The tags a change notice invalidates (hard): one per subset of the fields it names;
 * `{}` gives the root, which is above every origin tag.
 */
export function noticeTags(notice: ChangeNotice): string[] {
  const p = maskOf(notice)
  if (p === 0) return [ORIGIN_TAG_ROOT]
  const v = encodeAll(notice)
  const out: string[] = []
  // Every subset of p, p itself included and the empty set last (except for the full
  // pattern, whose empty subset no origin derives).
  for (let i = p; ; i = (i - 1) & p) {
    if (i === 0 && p === 7) break
    out.push(tagOf(p, i, v))
    if (i === 0) break
  }
  return out
}

/**
 * An entry's user tags (validated as user tags: none under `@origin`) with its origin
 * tags added; pass the result to the trie's `snapshot` as internal.
 */
export function withOriginTags(tags: readonly string[] | undefined, origins: readonly OriginDescriptor[]): string[] {
  const own = originTags(origins)
  return tags === undefined ? own : [...normalizeTags(tags), ...own]
}

/**
 * The part of a tag-definition signature that origins add (see `tagSignature` in
 * src/cache/cache.ts): the descriptors themselves, sorted, or a function's source text.
 * An entry written under other origins is a miss, as under other tags: a notice about
 * the new origins must be able to reach every entry served.
 */
export function originSignature(origins: readonly OriginDescriptor[] | ((value: never) => unknown)): string {
  if (typeof origins === 'function') return `|o:fn:${String(origins)}`
  const parts = origins.map((o) => JSON.stringify([o.db ?? null, o.type ?? null, o.id ?? null]))
  return `|o:${parts.length === 1 ? parts[0] : [...new Set(parts)].sort().join(',')}`
}
