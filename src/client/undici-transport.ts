/**
 * The real transport: one undici `Pool` per node, HTTP/1.1 keep-alive, no pipelining (a
 * slow response must not hold up the ones queued behind it on the same socket). This is
 * the only file that imports undici.
 *
 * Why undici: it is Node's own HTTP client (the engine under `fetch`), its pools keep
 * sockets alive across requests, and `request()` skips the WHATWG Request/Response
 * layers of `fetch`. Timeouts are not undici's: the client aborts
 * through the request's signal on its injected Clock.
 */
import { Client, Pool, type Dispatcher } from 'undici'
import { BadResponseError } from '../core/errors.js'
import type { HttpRequest, HttpResponse, HttpStream, Transport } from './transport.js'

export interface UndiciTransportOptions {
  /** Sockets per node. */
  connections: number
  /** Largest response body accepted, in bytes (a bigger one fails with ERR_BAD_RESPONSE). */
  maxResponseBytes: number
  /** Idle keep-alive sockets are closed after this many ms. */
  keepAliveMs: number
  /** Extra TLS options for `https://` nodes (for example `ca` for a private CA). */
  tls?: { ca?: string | Buffer | (string | Buffer)[]; rejectUnauthorized?: boolean }
}

/**
 * Drops a response body unread. undici's body reports the abort as an 'error' event a tick
 * later; with no listener (nothing reads it any more) that would be an uncaught exception
 * that ends the process.
 */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => undefined)
  body.destroy()
}

export function undiciTransport(options: UndiciTransportOptions): Transport {
  return new UndiciTransport(options)
}

/**
 * Closes the pool of `origin` when `transport` is the built-in one (a node the client no
 * longer lists): its idle pool (about 19 KB) was kept for the client's life, one per node
 * ever reached. Requests in flight on it finish first; a later request opens a new pool.
 * Another transport is left alone. Returns whether a pool was closed.
 */
export function releaseOrigin(transport: Transport, origin: string): boolean {
  return transport instanceof UndiciTransport && transport.release(origin)
}

/** Pools the built-in transport holds (tests); undefined for another transport. */
export function poolCount(transport: Transport): number | undefined {
  return transport instanceof UndiciTransport ? transport.pools : undefined
}

class UndiciTransport implements Transport {
  readonly #options: UndiciTransportOptions
  readonly #pools = new Map<string, Pool>()
  readonly #streams = new Set<Client>()
  #closed = false

  constructor(options: UndiciTransportOptions) {
    this.#options = options
  }

  #pool(origin: string): Pool {
    let pool = this.#pools.get(origin)
    if (pool === undefined) {
      const o = this.#options
      pool = new Pool(origin, {
        connections: o.connections,
        pipelining: 1,
        keepAliveTimeout: o.keepAliveMs,
        // The client's own timer aborts a slow request; these only stop undici from
        // imposing its 300 s defaults on top of it.
        headersTimeout: 0,
        bodyTimeout: 0,
        ...(o.tls === undefined ? {} : { connect: { ...o.tls } }),
      })
      this.#pools.set(origin, pool)
    }
    return pool
  }

  get pools(): number {
    return this.#pools.size
  }

  release(origin: string): boolean {
    const pool = this.#pools.get(origin)
    if (pool === undefined) return false
    this.#pools.delete(origin)
    pool.close().catch(() => undefined)
    return true
  }

  async request(origin: string, req: HttpRequest): Promise<HttpResponse> {
    if (this.#closed) throw new Error('transport closed')
    const res = await this.#pool(origin).request({
      method: req.method,
      path: req.path,
      headers: req.headers,
      body: req.body === undefined ? undefined : Buffer.from(req.body.buffer, req.body.byteOffset, req.body.byteLength),
      signal: req.signal,
    })
    const limit = this.#options.maxResponseBytes
    const declared = Number(res.headers['content-length'])
    if (Number.isFinite(declared) && declared > limit) {
      discard(res.body)
      throw new BadResponseError(`Response of ${declared} bytes is over maxResponseBytes (${limit})`, { node: origin })
    }
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of res.body) {
      const buf = chunk as Buffer
      size += buf.length
      if (size > limit) {
        discard(res.body)
        throw new BadResponseError(`Response is over maxResponseBytes (${limit})`, { node: origin })
      }
      chunks.push(buf)
    }
    const headers: Record<string, string | undefined> = {}
    for (const [name, value] of Object.entries(res.headers)) {
      headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value
    }
    return { status: res.statusCode, headers, body: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size) }
  }

  /** A streaming request on a connection of its own (a long stream must not hold a pool socket); closed when the body ends. */
  async stream(origin: string, req: HttpRequest): Promise<HttpStream> {
    if (this.#closed) throw new Error('transport closed')
    const o = this.#options
    const client = new Client(origin, { headersTimeout: 0, bodyTimeout: 0, ...(o.tls === undefined ? {} : { connect: { ...o.tls } }) })
    this.#streams.add(client)
    const done = (): void => {
      this.#streams.delete(client)
      client.destroy().catch(() => undefined)
    }
    let res: Dispatcher.ResponseData
    try {
      res = await client.request({ method: req.method, path: req.path, headers: req.headers, signal: req.signal })
    } catch (err) {
      done()
      throw err
    }
    const headers: Record<string, string | undefined> = {}
    for (const [name, value] of Object.entries(res.headers)) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : (value as string | undefined)
    const source = res.body
    async function* body(): AsyncGenerator<Buffer> {
      try {
        for await (const chunk of source) yield chunk as Buffer
      } finally {
        done()
      }
    }
    return { status: res.statusCode, headers, body: body() }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const c of this.#streams) c.destroy().catch(() => undefined)
    this.#streams.clear()
    const pools = [...this.#pools.values()]
    this.#pools.clear()
    // destroy, not close: close waits for in-flight requests, which the client has already given up on.
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)))
  }
}
