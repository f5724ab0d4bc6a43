/**
 * An in-memory `Transport` for client unit tests: each request is answered by a handler the
 * test writes (respond, fail with a network error code, or hang until the client aborts).
 * Every request is recorded with the clock time it was made.
 */
import type { Clock } from '../../src/core/clock.js'
import type { HttpRequest, HttpResponse, Transport } from '../../src/client/transport.js'

export interface RecordedRequest {
  readonly origin: string
  readonly method: string
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: Buffer | undefined
  readonly at: number
}

export type Handler = (origin: string, req: RecordedRequest) => HttpResponse | Promise<HttpResponse> | 'hang' | NetworkFailure

export class NetworkFailure {
  constructor(readonly code: string) {}
}

export const respond = (status: number, body: unknown = '', headers: Record<string, string> = {}): HttpResponse => {
  const buf = Buffer.isBuffer(body) ? body : typeof body === 'string' ? Buffer.from(body) : Buffer.from(JSON.stringify(body))
  return { status, headers: { ...headers }, body: buf }
}

export const wireError = (status: number, code: string, headers: Record<string, string> = {}): HttpResponse => respond(status, { code, message: `${code} from the test` }, { 'content-type': 'application/json', ...headers })

export class ScriptedTransport implements Transport {
  readonly requests: RecordedRequest[] = []
  closed = false
  constructor(
    readonly clock: Clock,
    public handler: Handler,
  ) {}

  request(origin: string, req: HttpRequest): Promise<HttpResponse> {
    const rec: RecordedRequest = { origin, method: req.method, path: req.path, headers: req.headers, body: req.body === undefined ? undefined : Buffer.from(req.body), at: this.clock.now() }
    this.requests.push(rec)
    let outcome: ReturnType<Handler>
    try {
      outcome = this.handler(origin, rec)
    } catch (err) {
      return Promise.reject(err)
    }
    if (outcome === 'hang') {
      return new Promise((_, reject) => {
        if (req.signal.aborted) reject(abortError())
        req.signal.addEventListener('abort', () => reject(abortError()), { once: true })
      })
    }
    if (outcome instanceof NetworkFailure) {
      const err = Object.assign(new Error(`simulated ${outcome.code}`), { code: outcome.code })
      return Promise.reject(err)
    }
    return Promise.resolve(outcome)
  }

  async close(): Promise<void> {
    this.closed = true
  }

  to(origin: string): RecordedRequest[] {
    return this.requests.filter((r) => r.origin === origin)
  }
}

function abortError(): Error {
  return Object.assign(new Error('aborted'), { name: 'AbortError', code: 'UND_ERR_ABORTED' })
}

/** A Random that returns the values given, then repeats the last one. */
export function fixedRandom(...values: number[]): { next(): number } {
  let i = 0
  return { next: () => values[Math.min(i++, values.length - 1)] }
}
