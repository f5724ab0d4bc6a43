// Helpers for the node's tests (not a test file itself).
import { mkdtempSync, rmSync } from 'node:fs'
import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, type Socket } from 'node:net'
import { startNode, type NodeHandle, type NodeOptions } from '../../src/server/index.js'
import type { Store, StoreEntry } from '../../src/store/types.js'

/** A fresh temporary directory and its remover. */
export function tempDir(prefix = 'stratacache-node-'): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) }
}

/** A store whose `close` is a no-op, so a "restarted" node in the same process finds the same data. */
export function survivingStore(inner: Store): Store {
  return {
    name: inner.name,
    get: (k) => inner.get(k),
    getMany: (k) => inner.getMany(k),
    set: (k, v, t) => inner.set(k, v, t),
    setMany: (e: readonly StoreEntry[]) => inner.setMany(e),
    delete: (k) => inner.delete(k),
    deleteMany: (k) => inner.deleteMany(k),
    touch: (k, t) => inner.touch(k, t),
    clear: (p) => inner.clear(p),
    ...(inner.scan === undefined ? {} : { scan: (o) => (inner.scan as NonNullable<Store['scan']>).call(inner, o) }),
    close: async () => undefined,
  }
}

/** A store that answers every operation after `delayMs` of real time (overload tests). */
export function slowStore(inner: Store, delayMs: number): Store {
  const later = <T>(f: () => Promise<T>): Promise<T> => new Promise((resolve, reject) => setTimeout(() => f().then(resolve, reject), delayMs))
  return {
    name: `slow-${inner.name}`,
    get: (k) => later(() => inner.get(k)),
    getMany: (k) => later(() => inner.getMany(k)),
    set: (k, v, t) => later(() => inner.set(k, v, t)),
    setMany: (e) => later(() => inner.setMany(e)),
    delete: (k) => later(() => inner.delete(k)),
    deleteMany: (k) => later(() => inner.deleteMany(k)),
    touch: (k, t) => later(() => inner.touch(k, t)),
    clear: (p) => later(() => inner.clear(p)),
    ...(inner.scan === undefined ? {} : { scan: (o) => later(() => (inner.scan as NonNullable<Store['scan']>).call(inner, o)) }),
    close: () => inner.close(),
  }
}

export interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

/** One HTTP request on a fresh connection (no pooling), with a timeout. */
export function send(base: string, method: string, path: string, body?: Uint8Array | string, headers: OutgoingHttpHeaders = {}, timeoutMs = 10_000): Promise<Reply> {
  const url = new URL(base)
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`request timed out after ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end(body)
  })
}

/** Parses a JSON error body and checks its shape; returns the code. */
export function errorCode(body: Buffer | Uint8Array | string): string {
  const parsed: unknown = JSON.parse(typeof body === 'string' ? body : Buffer.from(body).toString('utf8'))
  if (parsed === null || typeof parsed !== 'object') throw new Error(`error body is not an object: ${String(body)}`)
  const { code, message } = parsed as { code?: unknown; message?: unknown }
  if (typeof code !== 'string' || !/^ERR_[A-Z_]+$/.test(code) || typeof message !== 'string') throw new Error(`not a typed error: ${String(body)}`)
  return code
}

/** A raw TCP connection to the node: the socket, and everything it receives until it closes. */
export interface RawConnection {
  socket: Socket
  received: Promise<string>
}

/** Opens a raw TCP connection to the node (from `localAddress`, to test per-address limits). */
export function raw(node: NodeHandle, localAddress?: string): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port: node.port, host: node.host, localAddress })
    const chunks: Buffer[] = []
    const received = new Promise<string>((done) => {
      socket.on('data', (c: Buffer) => chunks.push(c))
      socket.on('close', () => done(Buffer.concat(chunks).toString('latin1')))
    })
    socket.on('error', () => undefined)
    socket.once('connect', () => resolve({ socket, received }))
    socket.once('error', reject)
  })
}

/** The status code of a raw HTTP/1.1 reply (0 when there is none). */
export function statusOf(reply: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1] ?? 0)
}

/** The body of a raw HTTP reply. */
export function bodyOf(reply: string): string {
  return reply.slice(reply.indexOf('\r\n\r\n') + 4)
}

/** A header of a raw HTTP reply (case-insensitive name). */
export function headerOf(reply: string, name: string): string | undefined {
  const head = reply.slice(0, reply.indexOf('\r\n\r\n'))
  return new RegExp(`\\r\\n${name}: ([^\\r\\n]*)`, 'i').exec(head)?.[1]
}

/** A logger that drops everything (the node tests read stats, not logs). */
export const silentLogger: NonNullable<NodeOptions['logger']> = { info: () => undefined, warn: () => undefined, error: () => undefined }

/** The nodes and data directories of one test file, closed and removed together by `close()`. */
export interface NodeTestbed {
  /** A temporary directory removed by `close()`. */
  dir(prefix?: string): { path: string; remove: () => void }
  /** A node on a free port, silent, with a 64 MB disk and its own data directory (unless given one or a store). */
  start(options?: NodeOptions): Promise<NodeHandle>
  close(): Promise<void>
}

export function nodeTestbed(): NodeTestbed {
  const dirs: Array<{ remove: () => void }> = []
  const nodes: NodeHandle[] = []
  const dir = (prefix?: string): { path: string; remove: () => void } => {
    const d = tempDir(prefix)
    dirs.push(d)
    return d
  }
  return {
    dir,
    async start(options: NodeOptions = {}) {
      const dataDir = options.dataDir ?? (options.store === undefined ? dir().path : undefined)
      const n = await startNode({ port: 0, logger: silentLogger, disk: '64mb', ...options, dataDir })
      nodes.push(n)
      return n
    },
    async close() {
      for (const n of nodes) await n.close()
      for (const d of dirs) d.remove()
    },
  }
}
