/**
 * Reading change notices from the wire. Parsers never throw: a notice they cannot read
 * yields a reason string, which the feed counts as malformed and ignores.
 *
 * AMQP routing keys, as kazoo publishes document changes: four dot-separated words,
 * `<prefix>.<db>.<type>.<id>`, where the prefix is `doc` or kazoo's `doc_<action>`
 * (`doc_edited`, `doc_created`, `doc_deleted`). Words are percent-decoded, so a db like
 * `account/ab/cd/ef` travels as `account%2Fab%2Fcd%2Fef` and a dot inside a word as `%2E`.
 */
import type { ChangeNotice } from './types.js'

const MAX_FIELD_LENGTH = 1024
const PREFIX = /^doc(_[a-z_]+)?$/

function decodeWord(word: string): string | undefined {
  try {
    const v = decodeURIComponent(word)
    return v.length === 0 || v.length > MAX_FIELD_LENGTH ? undefined : v
  } catch {
    return undefined
  }
}

/** `doc.accounts.user.42` -> `{ db: 'accounts', type: 'user', id: '42' }`, or why not. */
export function parseRoutingKey(routingKey: string): ChangeNotice | string {
  const words = routingKey.split('.')
  if (words.length !== 4) return `expected <prefix>.<db>.<type>.<id>, got ${words.length} words`
  if (!PREFIX.test(words[0] as string)) return `unknown prefix ${JSON.stringify(words[0])} (expected doc or doc_<action>)`
  const [db, type, id] = words.slice(1).map(decodeWord)
  if (db === undefined || type === undefined || id === undefined) return 'empty, too long or badly percent-encoded word'
  return { db, type, id }
}

/**
 * What a topic binding can deliver, as a notice: the literal db/type/id words before any
 * wildcard. `doc.accounts.#` -> `{ db: 'accounts' }`; `doc.*.user.*` -> `{ type: 'user' }`;
 * `#` -> `{}` (everything).
 */
export function scopeOfBinding(binding: string): ChangeNotice {
  const words = binding.split('.')
  const scope: { db?: string; type?: string; id?: string } = {}
  const fields = ['db', 'type', 'id'] as const
  for (let i = 1; i < 4 && i < words.length; i++) {
    const w = words[i] as string
    if (w === '#' || words[0] === '#') break
    if (w === '*') continue
    const v = decodeWord(w)
    if (v !== undefined) scope[fields[i - 1] as 'db' | 'type' | 'id'] = v
  }
  return words[0] === '#' ? {} : scope
}

/**
 * A JSON notice: an object with string (or integer) `db`, `type`, `id`, at least one of
 * them; other fields (`op`, `table`, …) are ignored.
 */
export function parseJsonNotice(text: string): ChangeNotice | string {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return 'not JSON'
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'expected a JSON object'
  const out: { db?: string; type?: string; id?: string } = {}
  for (const f of ['db', 'type', 'id'] as const) {
    const v = (value as Record<string, unknown>)[f]
    if (v === undefined || v === null) continue
    if (typeof v === 'number' && Number.isSafeInteger(v)) out[f] = String(v)
    else if (typeof v === 'string' && v.length > 0 && v.length <= MAX_FIELD_LENGTH) out[f] = v
    else return `${f} must be a non-empty string or an integer`
  }
  if (out.db === undefined && out.type === undefined && out.id === undefined) return 'names none of db, type, id'
  return out
}
