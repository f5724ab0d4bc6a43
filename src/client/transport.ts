/**
 * The seam between the client's policy (rotation, retries, timeouts) and the network. The
 * client speaks to a `Transport`; `undiciTransport` (undici-transport.ts) is the real one,
 * and unit tests pass an in-memory one driven by a ManualClock, so retry, backoff and
 * ejection are tested without sockets and without sleeping.
 */

export interface HttpRequest {
  readonly method: 'GET' | 'PUT' | 'POST' | 'DELETE'
  /** Path and query, already percent-encoded: `/v1/keys/a%2Fb?ttl=60`. */
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body?: Uint8Array
  /** Aborted by the client when the attempt's timeout passes; the transport must then reject. */
  readonly signal: AbortSignal
}

export interface HttpResponse {
  readonly status: number
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly body: Buffer
}

/** A response whose body is read as it arrives (the `/v1/watch` stream). */
export interface HttpStream {
  readonly status: number
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string | undefined>>
  /** The body's chunks; ends when the response does; aborting the request's signal ends it too. */
  readonly body: AsyncIterable<Buffer>
}

export interface Transport {
  /**
   * One streaming request (its own connection, outside the request pool). Optional: a
   * transport without it cannot carry the near cache's invalidation stream.
   */
  stream?(origin: string, request: HttpRequest): Promise<HttpStream>
  /** One request to `origin` (`http://127.0.0.1:7700`). Rejects on network failure or abort. */
  request(origin: string, request: HttpRequest): Promise<HttpResponse>
  /** Closes pooled connections. Idempotent. */
  close(): Promise<void>
}

/**
 * Error codes that prove a request never reached the node (the connection was never
 * made), so retrying it cannot apply a write twice. Anything else after the request left
 * (reset, closed socket, timeout) is ambiguous for a write.
 */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
])

/** True when `err` shows the request was never sent. */
export function isNotSent(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== null && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && NOT_SENT_CODES.has(code)) return true
    e = (e as { cause?: unknown }).cause
  }
  return false
}
