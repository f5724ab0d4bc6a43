/**
 * The HTTP side of replication on a clustered node (decision 0217), kept out of
 * http-api.ts: `?ack=one|region|all` on the write routes, the `x-stratacache-token`
 * session token (merged from a request, sent on every answer), `x-stratacache-replicas` on
 * write answers (and on ERR_ACK_TIMEOUT: how many applied), and `x-stratacache-min-version`
 * on a GET (ERR_STALE_READ when the node holds an older version). On a lone node
 * (`sessionToken` undefined) none of these headers is sent and `ack` is accepted and
 * trivially met (one replica).
 */
import { AckTimeoutError, BadRequestError, StaleReadError } from '../core/errors.js'
import { HEADER_MIN_VERSION, HEADER_REPLICAS, HEADER_TOKEN } from '../protocol/wire.js'
import type { AckLevel } from '../cluster/replication/messages.js'
import type { Keyspace } from './keyspace.js'
import type { WriteOptions } from './node-engine.js'

type Headers = Readonly<Record<string, string | string[] | undefined>>

const LEVELS: readonly string[] = ['one', 'region', 'all']

function single(headers: Headers, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v[0] : v
}

function safeInt(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined
  if (!/^\d{1,16}$/.test(text.trim()) || !Number.isSafeInteger(Number(text))) throw new BadRequestError(`${name}: expected an integer >= 0`)
  return Number(text)
}

/** `x-stratacache-min-version`: a version, bare or as the `ETag` the node answered (`"<n>"`, also weak `W/"<n>"`). */
function leastVersion(text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const m = /^(?:(?:W\/)?"(\d{1,16})"|(\d{1,16}))$/.exec(text.trim())
  const n = m === null ? NaN : Number(m[1] ?? m[2])
  if (!Number.isSafeInteger(n)) throw new BadRequestError(`${HEADER_MIN_VERSION}: expected a version, bare or as its ETag ("<version>")`)
  return n
}

/** A write's replication options from `?ack=` and the token header; `headers()` gives the answer's replica count header once the write is answered. */
export function writeOptions(ack: string | undefined, headers: Headers): { options: WriteOptions; headers: () => Record<string, string> } {
  if (ack !== undefined && !LEVELS.includes(ack)) throw new BadRequestError(`ack: expected one, region or all, got ${JSON.stringify(ack.slice(0, 20))}`)
  const token = safeInt(single(headers, HEADER_TOKEN), HEADER_TOKEN)
  let replicas: number | undefined
  const options: WriteOptions = { ack: ack as AckLevel | undefined, token, onReplicas: (n) => (replicas = n) }
  return { options, headers: (): Record<string, string> => (replicas === undefined ? {} : { [HEADER_REPLICAS]: String(replicas) }) }
}

/**
 * Throws ERR_STALE_READ when the request names a least version newer than what the node
 * holds for `key`: the live entry's version, else its tombstone's (a delete the session saw
 * is an answer: 404), else 0. Returns true when the entry read missed (`live` undefined)
 * but the keyspace now holds a live record at least that new — a replica that landed
 * between the two reads: the caller reads the entry again instead of answering 404.
 */
export async function checkMinVersion(headers: Headers, key: string, live: number | undefined, keyspace: Pick<Keyspace, 'getRecord'>): Promise<boolean> {
  const need = leastVersion(single(headers, HEADER_MIN_VERSION))
  if (need === undefined || need === 0) return false
  const record = live === undefined ? await keyspace.getRecord(key) : undefined
  const have = live ?? record?.version.hlc ?? 0
  if (have < need) throw new StaleReadError(key, need, have)
  return record !== undefined && record.deleted !== true
}

/** True when the request carries a least version (the synchronous GET path then steps aside). */
export function hasMinVersion(headers: Headers): boolean {
  return headers[HEADER_MIN_VERSION] !== undefined
}

/** `headers` plus the session token (clustered node) and, for ERR_ACK_TIMEOUT, the replicas that applied. */
export function sessionHeaders(headers: Readonly<Record<string, string>>, token: number | undefined, error?: unknown): Readonly<Record<string, string>> {
  if (token === undefined) return headers
  // A copy by keys, not `{ ...headers, [HEADER_TOKEN]: … }`: a spread followed by a new property is V8's slow path on Node 20 (decision 0308).
  const out: Record<string, string> = {}
  for (const k of Object.keys(headers)) out[k] = headers[k]!
  out[HEADER_TOKEN] = String(token)
  if (error instanceof AckTimeoutError) out[HEADER_REPLICAS] = String(error.applied)
  return out
}
