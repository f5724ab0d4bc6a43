/**
 * The node's HTTP API (docs/PROTOCOL.md) as a function from a fully read request to a
 * response — no sockets here. The node's socket layer (`node.ts`) reads bodies within
 * limits, applies admission (auth, rate, concurrency, draining) and writes the answer;
 * tests can call `handle` directly (`NodeHandle.inject`).
 *
 * Every failure becomes a typed JSON error `{ code, message }`: validation throws
 * `CacheError`s with codes from `STATUS_OF_CODE`; anything else is a bug, answered
 * `500 ERR_INTERNAL` and reported through `onInternalError`.
 */
import { BadRequestError, CacheError, InternalError, InvalidKeyError, MethodNotAllowedError, NotFoundError, TooLargeError, UnsupportedMediaTypeError, type ErrorCode } from '../core/errors.js'
import {
  API_PREFIX,
  CONFIRM_CLEAR,
  HEADER_CONFIRM,
  HEADER_TAGS,
  HEADER_TTL,
  STATUS_OF_CODE,
  TTL_NONE,
  type MgetResult,
  type WireEntry,
} from '../protocol/wire.js'
import { checkKey, decodeBase64, formatEtag, noneMatchNames, parseIfMatch, parseJsonObject, parseKeySegment, parseTagsJson, parseTagsParam, parseTtlJson, parseTtlParam } from '../protocol/validate.js'
import type { EngineWrite, EntryView, NodeEngine } from './node-engine.js'
import { checkMinVersion, sessionHeaders, writeOptions } from './replication-http.js'

export type Headers = Readonly<Record<string, string | string[] | undefined>>

/** A request with its body read. Header names are lower-case (as node:http gives them). */
export interface ApiRequest {
  readonly method: string
  /** Path and query, as sent (`/v1/keys/a%2Fb?ttl=60`). */
  readonly url: string
  readonly headers: Headers
  readonly body: Uint8Array
}

export interface ApiResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array | string
}

export interface ApiLimits {
  readonly maxKeyBytes: number
  readonly maxValueBytes: number
  readonly maxBodyBytes: number
  readonly maxBatch: number
}

/** What the API needs from the node around it. */
export interface ApiHost {
  readonly engine: NodeEngine
  readonly limits: ApiLimits
  ready(): boolean
  stats(): unknown
  metrics(): Promise<{ contentType: string; body: string }>
  onInternalError(error: unknown, request: ApiRequest): void
  /**
   * Answers a request before the API's own routes when it returns a response (the
   * cluster routes, and the refusal of writes while the cluster is PASSIVE); `undefined`
   * lets the API route it. @default none
   */
  preRoute?(request: ApiRequest, method: string, path: string): ApiResponse | undefined
  /** The watch stream's current `hello` (`GET /v1/watch` without a socket answers it as JSON). @default none: 404 */
  watch?(): unknown
}

/** Keys in a page of `GET /v1/keys` when `limit` is not given. */
export const LIST_DEFAULT_LIMIT = 100
/** Largest `limit` of `GET /v1/keys`. */
export const LIST_MAX_LIMIT = 1000

/** Body limit of requests that carry no payload (GET, DELETE, HEAD…): a body is read and ignored up to this. */
const NO_PAYLOAD_LIMIT = 64 * 1024
const JSON_TYPE = 'application/json'
const TEXT_TYPE = 'text/plain; charset=utf-8'
const BYTES_TYPE = 'application/octet-stream'

/** Routes that are not subject to auth, rate limits or the concurrency bound. */
export function isProbe(method: string, path: string): boolean {
  return method === 'GET' && (path === '/healthz' || path === '/readyz' || path === '/ping')
}

/** Splits `url` into its path and query string (without '?'). */
export function splitUrl(url: string): { path: string; query: string } {
  const q = url.indexOf('?')
  return q === -1 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q + 1) }
}

export function errorResponse(code: ErrorCode, message: string, status = STATUS_OF_CODE[code] ?? 500, extra?: Record<string, string>): ApiResponse {
  return { status, headers: { 'content-type': JSON_TYPE, ...extra }, body: JSON.stringify({ code, message }) }
}

function json(value: unknown, extra?: Record<string, string>): ApiResponse {
  return { status: 200, headers: extra === undefined ? { 'content-type': JSON_TYPE } : { 'content-type': JSON_TYPE, ...extra }, body: JSON.stringify(value) }
}

function text(body: string, status = 200): ApiResponse {
  return { status, headers: { 'content-type': TEXT_TYPE }, body }
}

/** The body of a 304. */
const NO_BODY = new Uint8Array(0)

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name]
  if (v === undefined) return undefined
  if (typeof v === 'string') return v
  throw new BadRequestError(`Header ${name} given more than once`)
}

/**
 * JSON routes take `Content-Type: application/json` only (parameters allowed). A web page
 * can POST `text/plain`, a form type or a typeless Blob cross-site without a CORS
 * preflight; it cannot send `application/json` that way (issue 14).
 */
function requireJson(headers: Headers): void {
  const type = header(headers, 'content-type')
  const media = type === undefined ? '' : type.split(';', 1)[0].trim().toLowerCase()
  if (media !== JSON_TYPE) throw new UnsupportedMediaTypeError(`This route takes Content-Type: ${JSON_TYPE}, got ${type === undefined ? 'none' : JSON.stringify(type.slice(0, 80))}`)
}

/** The parameters of an empty query (shared: no Map per request). */
const NO_PARAMS: ReadonlyMap<string, string> = new Map()

/** Query parameters, each at most once and only from `allowed`. */
export function queryParams(query: string, allowed: readonly string[]): ReadonlyMap<string, string> {
  if (query === '') return NO_PARAMS
  const out = new Map<string, string>()
  if (query.length > 32 * 1024) throw new BadRequestError('Query string too long')
  let params: URLSearchParams
  try {
    params = new URLSearchParams(query)
  } catch (err) {
    throw new BadRequestError('Malformed query string', { cause: err })
  }
  for (const [name, value] of params) {
    if (!allowed.includes(name)) throw new BadRequestError(`Unknown query parameter ${JSON.stringify(name.slice(0, 40))}; allowed: ${allowed.join(', ') || 'none'}`)
    if (out.has(name)) throw new BadRequestError(`Query parameter ${name} given more than once`)
    out.set(name, value)
  }
  return out
}

/**
 * The `prefix` of `GET`/`DELETE /v1/keys`, held to the key rules: at most `maxKeyBytes`
 * (413) and well-formed percent-encoded UTF-8 (400 ERR_INVALID_KEY, as a key segment).
 * URLSearchParams decodes leniently — a malformed escape stays literal, invalid UTF-8
 * becomes U+FFFD — which would list or clear other keys than the ones asked for; only a
 * decoded prefix holding `%` or U+FFFD can come from that, so only then is the raw text
 * decoded strictly.
 */
function prefixParam(params: ReadonlyMap<string, string>, query: string, maxKeyBytes: number): string {
  const prefix = params.get('prefix') ?? ''
  if (prefix.length > maxKeyBytes || Buffer.byteLength(prefix, 'utf8') > maxKeyBytes) throw new TooLargeError(`Prefix is over the key limit of ${maxKeyBytes} bytes`)
  if (!prefix.includes('%') && !prefix.includes('\uFFFD')) return prefix
  for (const part of query.split('&')) {
    if (!new URLSearchParams(part).has('prefix')) continue
    const raw = part.slice(part.indexOf('=') + 1)
    try {
      decodeURIComponent(raw.replace(/\+/g, ' '))
    } catch {
      throw new InvalidKeyError(`Prefix is not valid percent-encoded UTF-8: ${JSON.stringify(raw.slice(0, 80))}`)
    }
  }
  return prefix
}

/** Refuses a JSON body field the route does not take (a typo such as "mdoe" must not pass as the default). */
function onlyFields(body: Record<string, unknown>, allowed: readonly string[], route: string): void {
  for (const name of Object.keys(body)) {
    if (!allowed.includes(name)) throw new BadRequestError(`${route} body has an unknown field ${JSON.stringify(name.slice(0, 40))}; allowed: ${allowed.join(', ')}`)
  }
}

function toWire(key: string, e: EntryView): WireEntry {
  return { key, value: Buffer.from(e.value.buffer, e.value.byteOffset, e.value.byteLength).toString('base64'), version: e.version, ttl: e.ttl, tags: e.tags }
}

// Answer headers are object literals with their names written out: a computed name such as
// `[HEADER_TTL]` in a literal makes V8 define it through its runtime on every call (decision
// 0360). `satisfies` fails to compile if the protocol's name changes.
type EntryHeaders = Record<'content-type' | 'etag' | typeof HEADER_TTL, string>

function entryHeaders(e: EntryView, contentType: string): Record<string, string> {
  const h: Record<string, string> = { 'content-type': contentType, etag: formatEtag(e.version), 'x-ttl': e.ttl === null ? TTL_NONE : String(e.ttl) } satisfies EntryHeaders
  if (e.tags.length > 0) h[HEADER_TAGS] = e.tags.join(',')
  return h
}

/** The headers of a write's answer: etag, TTL, and the replica count a clustered write adds. */
function writeHeaders(contentType: string, version: number, ttl: number | null | undefined, replicas: Record<string, string>): Record<string, string> {
  const h: Record<string, string> =
    ttl === undefined ? { 'content-type': contentType, etag: formatEtag(version) } : ({ 'content-type': contentType, etag: formatEtag(version), 'x-ttl': ttl === null ? TTL_NONE : String(ttl) } satisfies EntryHeaders)
  for (const name in replicas) h[name] = replicas[name]!
  return h
}

type Route =
  | { kind: 'key'; key: string }
  | { kind: 'keys' | 'mget' | 'mset' | 'invalidate' | 'stats' | 'healthz' | 'readyz' | 'metrics' | 'ping' | 'watch' }
  | { kind: 'zerocache'; key: string }

const ALLOW: Readonly<Record<Route['kind'], readonly string[]>> = {
  key: ['GET', 'PUT', 'DELETE'],
  keys: ['GET', 'DELETE'],
  mget: ['POST'],
  mset: ['POST'],
  invalidate: ['POST'],
  stats: ['GET'],
  healthz: ['GET'],
  readyz: ['GET'],
  metrics: ['GET'],
  ping: ['GET'],
  zerocache: ['GET', 'PUT', 'DELETE'],
  watch: ['GET'],
}

// A Map, not an object literal: a path such as `constructor` or `__proto__` must not find
// Object.prototype's members (it did, and answered 500).
const FIXED: ReadonlyMap<string, Route['kind']> = new Map([
  [`${API_PREFIX}/keys`, 'keys'],
  [`${API_PREFIX}/mget`, 'mget'],
  [`${API_PREFIX}/mset`, 'mset'],
  [`${API_PREFIX}/invalidate`, 'invalidate'],
  [`${API_PREFIX}/stats`, 'stats'],
  [`${API_PREFIX}/watch`, 'watch'],
  ['/healthz', 'healthz'],
  ['/readyz', 'readyz'],
  ['/metrics', 'metrics'],
  ['/ping', 'ping'],
])

const KEY_PREFIX = `${API_PREFIX}/keys/`

function route(path: string, maxKeyBytes: number): Route {
  const fixed = FIXED.get(path)
  if (fixed !== undefined) return { kind: fixed } as Route
  if (path.startsWith(KEY_PREFIX)) {
    const segment = path.slice(KEY_PREFIX.length)
    if (segment.includes('/')) throw new BadRequestError('A key in a path must be one percent-encoded segment (encode "/" as %2F)')
    return { kind: 'key', key: parseKeySegment(segment, maxKeyBytes) }
  }
  if (path.startsWith(`${API_PREFIX}/`) || path === API_PREFIX) throw new NotFoundError(`No route ${JSON.stringify(path.slice(0, 80))}`)
  // Zerocache: /{region}/{key}, two non-empty segments.
  const parts = path.split('/')
  if (parts.length === 3 && parts[0] === '' && parts[1] !== '' && parts[2] !== '') {
    if (path.length > maxKeyBytes * 3 + 2) throw new TooLargeError(`Key is over the limit of ${maxKeyBytes} bytes`)
    const region = parseKeySegment(parts[1], maxKeyBytes)
    const key = `${region}/${parseKeySegment(parts[2], maxKeyBytes)}`
    checkKey(key, maxKeyBytes)
    return { kind: 'zerocache', key }
  }
  throw new NotFoundError(`No route ${JSON.stringify(path.slice(0, 80))}`)
}

/**
 * Whether a path segment is a key as it stands: printable ASCII without `%` (nothing to
 * decode), within the key limit. Such a segment is what `parseKeySegment` would return
 * (its UTF-8 length is its length, it has no surrogates); anything else goes through it.
 */
function isPlainSegment(segment: string, maxKeyBytes: number): boolean {
  if (segment.length > maxKeyBytes) return false
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i)
    if (c < 0x21 || c > 0x7e || c === 0x25) return false
  }
  return true
}

export class HttpApi {
  readonly #host: ApiHost
  readonly #limits: ApiLimits

  constructor(host: ApiHost) {
    this.#host = host
    this.#limits = host.limits
  }

  /** How many body bytes a request to this method and path may carry (checked before reading it). */
  bodyLimit(method: string, _path: string): number {
    if (method === 'PUT') return this.#limits.maxValueBytes
    if (method === 'POST') return this.#limits.maxBodyBytes
    return NO_PAYLOAD_LIMIT
  }

  /**
   * The answer to `GET /v1/keys/{key}` (no query) when the in-process tier holds the key
   * live, computed synchronously; `undefined` for anything else (another route, a query, a
   * key that does not parse, a miss), which `handle` then answers. Where it answers, the
   * answer is the one `handle` gives. The node's socket layer tries it first for bodiless
   * GETs: a hit costs no promise (decision 0240).
   */
  getHit(url: string): ApiResponse | undefined {
    if (!url.startsWith(KEY_PREFIX) || url.includes('?')) return undefined
    const segment = url.slice(KEY_PREFIX.length)
    if (segment.length === 0 || segment.includes('/')) return undefined
    let key: string
    if (isPlainSegment(segment, this.#limits.maxKeyBytes)) key = segment
    else {
      try {
        key = parseKeySegment(segment, this.#limits.maxKeyBytes)
      } catch {
        return undefined
      }
    }
    const e = this.#host.engine.getHeld(key)
    if (e === undefined) return undefined
    return { status: 200, headers: sessionHeaders(entryHeaders(e, BYTES_TYPE), this.#host.engine.sessionToken), body: e.value }
  }

  /** Answers one request; never rejects. */
  async handle(request: ApiRequest): Promise<ApiResponse> {
    try {
      const res = await this.#dispatch(request)
      const headers = sessionHeaders(res.headers, this.#host.engine.sessionToken)
      return headers === res.headers ? res : { ...res, headers }
    } catch (err) {
      if (err instanceof CacheError) {
        const status = STATUS_OF_CODE[err.code]
        if (status !== undefined) {
          const extra: Record<string, string> | undefined = err instanceof MethodNotAllowedError ? { allow: err.allow.join(', ') } : undefined
          const res = errorResponse(err.code, err.message, status, extra)
          return { ...res, headers: sessionHeaders(res.headers, this.#host.engine.sessionToken, err) }
        }
      }
      this.#host.onInternalError(err, request)
      const internal = new InternalError('The node failed while serving this request', { cause: err })
      return errorResponse(internal.code, internal.message)
    }
  }

  async #dispatch(request: ApiRequest): Promise<ApiResponse> {
    const { method } = request
    const { path, query } = splitUrl(request.url)
    const early = this.#host.preRoute?.(request, method, path)
    if (early !== undefined) return early
    const r = route(path, this.#limits.maxKeyBytes)
    const allow = ALLOW[r.kind]
    if (!allow.includes(method)) throw new MethodNotAllowedError(method, allow)
    const engine = this.#host.engine
    switch (r.kind) {
      case 'key':
        return this.#key(r.key, method, query, request)
      case 'zerocache':
        return this.#zerocache(r.key, method, query, request)
      case 'mget':
        queryParams(query, [])
        requireJson(request.headers)
        return this.#mget(request.body)
      case 'mset': {
        const w = writeOptions(queryParams(query, ['ack']).get('ack'), request.headers)
        requireJson(request.headers)
        return this.#mset(request.body, w)
      }
      case 'invalidate': {
        const w = writeOptions(queryParams(query, ['ack']).get('ack'), request.headers)
        requireJson(request.headers)
        const body = parseJsonObject(request.body)
        onlyFields(body, ['tags', 'mode'], 'invalidate')
        const tags = parseTagsJson(body.tags)
        if (body.tags === undefined) throw new BadRequestError('Body must have "tags": an array of tags')
        // Left out means hard; null is not a mode (it was taken as hard).
        const mode = body.mode === undefined ? 'hard' : body.mode
        if (mode !== 'hard' && mode !== 'soft') throw new BadRequestError('"mode" must be "hard" or "soft"')
        const invalidated = await engine.invalidate(tags, mode, w.options)
        return json({ invalidated }, w.headers())
      }
      case 'keys': {
        if (method === 'GET') return this.#listKeys(query)
        const params = queryParams(query, ['prefix', 'ack'])
        const prefix = prefixParam(params, query, this.#limits.maxKeyBytes)
        if (header(request.headers, HEADER_CONFIRM) !== CONFIRM_CLEAR) throw new BadRequestError(`Clearing keys needs the header ${HEADER_CONFIRM}: ${CONFIRM_CLEAR}`)
        const w = writeOptions(params.get('ack'), request.headers)
        await engine.clear(prefix, w.options)
        return json({ cleared: true }, w.headers())
      }
      case 'stats':
        queryParams(query, [])
        return json(this.#host.stats())
      case 'watch': {
        // Over a socket the node streams (node.ts); here, without one, the current sequences.
        queryParams(query, [])
        const hello = this.#host.watch?.()
        if (hello === undefined) throw new NotFoundError('This node has no watch stream')
        return json(hello)
      }
      case 'healthz':
        return text('ok')
      case 'readyz':
        return this.#host.ready() ? text('ready') : errorResponse('ERR_BUSY', 'The node is not ready (starting or draining)', 503, { 'retry-after': '1' })
      case 'ping':
        return text('pong')
      case 'metrics': {
        const m = await this.#host.metrics()
        return { status: 200, headers: { 'content-type': m.contentType }, body: m.body }
      }
    }
  }

  /** `GET /v1/keys?prefix=&cursor=&limit=`: one page of live keys (`NodeEngine.listKeys`). */
  async #listKeys(query: string): Promise<ApiResponse> {
    const params = queryParams(query, ['prefix', 'cursor', 'limit'])
    const prefix = prefixParam(params, query, this.#limits.maxKeyBytes)
    const cursor = params.get('cursor')
    if (cursor === '') throw new BadRequestError('"cursor" is empty: leave it out for the first page, then pass the "cursor" of the previous page')
    const rawLimit = params.get('limit')
    let limit = LIST_DEFAULT_LIMIT
    if (rawLimit !== undefined) {
      limit = /^[1-9]\d{0,6}$/.test(rawLimit) ? Number(rawLimit) : NaN
      if (!(limit >= 1 && limit <= LIST_MAX_LIMIT)) throw new BadRequestError(`"limit" must be an integer from 1 to ${LIST_MAX_LIMIT}, got ${JSON.stringify(rawLimit.slice(0, 20))}`)
    }
    const page = await this.#host.engine.listKeys(prefix, cursor, limit)
    return json({ keys: page.keys, cursor: page.cursor ?? null })
  }

  async #key(key: string, method: string, query: string, request: ApiRequest): Promise<ApiResponse> {
    const engine = this.#host.engine
    if (method === 'GET') return this.#getEntry(key, query, request)
    const ifMatch = parseIfMatch(header(request.headers, 'if-match'))
    if (method === 'PUT') {
      const params = queryParams(query, ['ttl', 'tags', 'ack'])
      const ttl = parseTtlParam(params.get('ttl'), 'ttl')
      const tags = parseTagsParam(params.get('tags'))
      this.#checkValue(request.body.byteLength)
      const w = writeOptions(params.get('ack'), request.headers)
      const r = await engine.put({ key, value: request.body, ttl, tags, ifMatch }, w.options)
      return { status: 200, headers: writeHeaders(JSON_TYPE, r.version, r.ttl, w.headers()), body: JSON.stringify(r) }
    }
    const w = writeOptions(queryParams(query, ['ack']).get('ack'), request.headers)
    const deleted = await engine.delete(key, ifMatch, w.options)
    return json({ deleted }, w.headers())
  }

  /** GET of one key, the same in both APIs: the raw bytes, the entry's metadata in headers, 404 when absent. */
  async #getEntry(key: string, query: string, request: ApiRequest): Promise<ApiResponse> {
    queryParams(query, [])
    let e = await this.#host.engine.get(key)
    // A replica that landed after the read above is read again rather than answered 404.
    if (await checkMinVersion(request.headers, key, e?.version, this.#host.engine.keyspace)) e = await this.#host.engine.get(key)
    if (e === undefined) throw new NotFoundError('No live entry under this key')
    const headers = entryHeaders(e, BYTES_TYPE)
    // The caller holds this version already: 304 with the entry's metadata, no body.
    const noneMatch = header(request.headers, 'if-none-match')
    if (noneMatch !== undefined && noneMatchNames(noneMatch, e.version)) {
      delete headers['content-type']
      return { status: 304, headers, body: NO_BODY }
    }
    return { status: 200, headers, body: e.value }
  }

  async #zerocache(key: string, method: string, query: string, request: ApiRequest): Promise<ApiResponse> {
    const engine = this.#host.engine
    if (method === 'GET') return this.#getEntry(key, query, request)
    // If-Match as on the v1 routes: a precondition ignored would turn a conditional write into a blind one.
    const ifMatch = parseIfMatch(header(request.headers, 'if-match'))
    if (method === 'PUT') {
      const params = queryParams(query, ['expiry', 'ack'])
      const ttl = parseTtlParam(params.get('expiry'), 'expiry')
      this.#checkValue(request.body.byteLength)
      const w = writeOptions(params.get('ack'), request.headers)
      const r = await engine.put({ key, value: request.body, ttl, tags: [], ifMatch }, w.options)
      return { status: 200, headers: writeHeaders(TEXT_TYPE, r.version, undefined, w.headers()), body: 'OK' }
    }
    const w = writeOptions(queryParams(query, ['ack']).get('ack'), request.headers)
    await engine.delete(key, ifMatch, w.options)
    return { status: 200, headers: { 'content-type': TEXT_TYPE, ...w.headers() }, body: 'OK' }
  }

  async #mget(body: Uint8Array): Promise<ApiResponse> {
    const parsed = parseJsonObject(body)
    onlyFields(parsed, ['keys'], 'mget')
    const keys = parsed.keys
    if (!Array.isArray(keys)) throw new BadRequestError('Body must have "keys": an array of keys')
    if (keys.length > this.#limits.maxBatch) throw new TooLargeError(`mget of ${keys.length} keys is over the limit of ${this.#limits.maxBatch}`)
    for (const key of keys as unknown[]) checkKey(key, this.#limits.maxKeyBytes)
    const found = await this.#host.engine.getMany(keys as string[])
    const result: MgetResult = { entries: found.map((e, i) => (e === undefined ? null : toWire(keys[i] as string, e))) }
    return json(result)
  }

  async #mset(body: Uint8Array, w: ReturnType<typeof writeOptions>): Promise<ApiResponse> {
    const parsed = parseJsonObject(body)
    onlyFields(parsed, ['entries'], 'mset')
    const entries = parsed.entries
    if (!Array.isArray(entries)) throw new BadRequestError('Body must have "entries": an array of { key, value, ttl?, tags? }')
    if (entries.length > this.#limits.maxBatch) throw new TooLargeError(`mset of ${entries.length} entries is over the limit of ${this.#limits.maxBatch}`)
    // Validate everything before writing anything.
    const writes: EngineWrite[] = []
    for (let i = 0; i < entries.length; i++) {
      const e: unknown = entries[i]
      if (e === null || typeof e !== 'object' || Array.isArray(e)) throw new BadRequestError(`entries[${i}] must be an object`)
      const entry = e as Record<string, unknown>
      for (const name of Object.keys(entry)) {
        if (name !== 'key' && name !== 'value' && name !== 'ttl' && name !== 'tags') throw new BadRequestError(`entries[${i}] has an unknown field ${JSON.stringify(name.slice(0, 40))}`)
      }
      checkKey(entry.key, this.#limits.maxKeyBytes)
      const value = decodeBase64(entry.value, `entries[${i}].value`)
      this.#checkValue(value.byteLength)
      writes.push({ key: entry.key, value, ttl: parseTtlJson(entry.ttl, `entries[${i}].ttl`), tags: parseTagsJson(entry.tags, `entries[${i}].tags`) })
    }
    const versions = await this.#host.engine.putMany(writes, w.options)
    return json({ versions }, w.headers())
  }

  #checkValue(bytes: number): void {
    if (bytes > this.#limits.maxValueBytes) throw new TooLargeError(`Value of ${bytes} bytes is over the limit of ${this.#limits.maxValueBytes}`)
  }
}
