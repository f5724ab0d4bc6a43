// A server for the `server` bench suite, in its own process: `bare` (node:http returning a
// fixed 100-byte body; a PUT's body read and answered as the node answers, nothing stored), `node` (a stratacache node with its defaults in the given
// directory), or `fastify` (fastify 5 serving the node's GET route: the same NodeEngine on
// an LMDB store in the given directory, filled with the suite's keys by this process, the
// same answer headers, and the node's per-request admission with its defaults — what the
// framework's own layer costs next to the node's hand-written one; decision 0240). Sends
// its port to the parent, answers 'cpu' with its CPU time so far (µs, user + system) and
// its young-generation collections so far, stops
// on 'stop'.
import { createServer } from 'node:http'
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks'
import { isIP, type AddressInfo, type Socket } from 'node:net'
import Fastify, { type FastifyReply } from 'fastify'
import { DEFAULT_TTL_SECONDS, HEADER_TTL, TTL_NONE } from '../src/protocol/wire.js'
import { formatEtag, parseKeySegment } from '../src/protocol/validate.js'
import { resolveNodeOptions } from '../src/server/node-options.js'
import { TokenBucketLimiter } from '../src/server/token-bucket.js'
import { startNode } from '../src/server/index.js'
import { NodeEngine, type EntryView } from '../src/server/node-engine.js'
import { lmdbStore } from '../src/store/lmdb-store.js'

const [kind, dir, keys] = process.argv.slice(2)
const BODY = Buffer.alloc(100, 'v')

// Young-generation collections so far: they count allocation, and unlike CPU time they do
// not depend on what else runs on the machine (decision 0360).
let scavenges = 0
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if ((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++
}).observe({ entryTypes: ['gc'] })

process.on('message', (m) => {
  if (m !== 'cpu') return
  const u = process.cpuUsage()
  process.send?.({ cpuMicros: u.user + u.system, scavenges })
})

if (kind === 'bare') {
  let version = 0
  let last = BODY
  const server = createServer((req, res) => {
    if (req.method !== 'PUT') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BODY.byteLength })
      res.end(BODY)
      return
    }
    // A PUT's HTTP floor: the body read in full and an answer shaped as the node's (JSON with
    // the version and TTL, etag and x-ttl), nothing stored.
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      last = Buffer.concat(chunks)
      const body = JSON.stringify({ version: ++version, ttl: DEFAULT_TTL_SECONDS, bytes: last.byteLength })
      res.writeHead(200, { 'content-type': 'application/json', etag: formatEtag(version), [HEADER_TTL]: String(DEFAULT_TTL_SECONDS), 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
  })
  server.keepAliveTimeout = 5000
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }))
  process.on('message', (m) => {
    if (m !== 'stop') return
    server.closeAllConnections()
    server.close(() => process.exit(0))
  })
} else if (kind === 'fastify') {
  // The node's defaults: its clock (no ticker thread, decision 0360), and the keys filled as
  // the suite's mset fills the node's, with the default TTL, so each hit checks its expiry
  // against the clock as the node's hits do.
  const o = resolveNodeOptions({ dataDir: dir })
  const clock = o.clock
  const store = lmdbStore({ path: dir, clock, exclusive: true })
  const engine = await NodeEngine.open({ store, clock, memoryBytes: 64 * 1024 * 1024, maxValueBytes: 1024 * 1024, storeTimeoutMs: Infinity })
  await engine.putMany(Array.from({ length: Number(keys ?? 1000) }, (_, k) => ({ key: `k${k}`, value: BODY, ttl: DEFAULT_TTL_SECONDS, tags: [] })))
  const app = Fastify({ logger: false, keepAliveTimeout: 5000 })
  // The node's admission with its defaults, as node.ts applies it per connection and per
  // request before a GET hit is answered: connection limits (node-wide, per IP), a typed
  // 400 without Host, draining, cross-site checks (Sec-Fetch-Site, Host naming the node,
  // Origin), the rate limiter and the token when configured (off by default, checked as
  // node.ts checks them), the in-flight bound, request and error counters.
  const limiter = o.rateLimit > 0 ? new TokenBucketLimiter(clock, o.rateLimit, o.rateBurst) : undefined
  const token = o.authToken
  const byIp = new Map<string, number>()
  let connections = 0
  let requests = 0
  let clientErrors = 0
  let inFlight = 0
  const draining = false
  let acceptedHost: string | undefined
  app.server.on('connection', (socket: Socket) => {
    const ip = socket.remoteAddress ?? 'unknown'
    const open = (byIp.get(ip) ?? 0) + 1
    if (connections >= o.maxConnections || open > o.maxConnectionsPerIp) return void socket.destroy()
    byIp.set(ip, open)
    connections++
    socket.once('close', () => {
      connections--
      const n = (byIp.get(ip) ?? 1) - 1
      if (n <= 0) byIp.delete(ip)
      else byIp.set(ip, n)
    })
  })
  const refuse = (reply: FastifyReply, status: number, code: string, message: string): FastifyReply => {
    clientErrors++
    return reply.code(status).header('x-stratacache-node', 'bench').send({ code, message })
  }
  app.addHook('onRequest', (req, reply, done) => {
    requests++
    const h = req.headers
    if (h.host === undefined && req.raw.httpVersion !== '1.0') return void refuse(reply, 400, 'ERR_BAD_REQUEST', 'An HTTP/1.1 request needs a Host header')
    if (draining) return void refuse(reply, 503, 'ERR_BUSY', 'The node is shutting down')
    const site = h['sec-fetch-site']
    if (site === 'cross-site' || site === 'same-site') return void refuse(reply, 403, 'ERR_FORBIDDEN', 'Cross-site requests are refused')
    const host = h.host
    if (token === undefined && host !== undefined && host !== acceptedHost) {
      const name = host.trim().toLowerCase().replace(/:\d+$/, '')
      if (isIP(name) === 0 && name !== 'localhost' && !name.endsWith('.localhost') && name !== o.host.toLowerCase()) return void refuse(reply, 403, 'ERR_FORBIDDEN', 'Host does not name this node')
      acceptedHost = host
    }
    if (h.origin !== undefined && h.origin.toLowerCase() !== `http://${host?.trim() ?? ''}`.toLowerCase()) return void refuse(reply, 403, 'ERR_FORBIDDEN', 'Cross-origin requests are refused')
    if (limiter !== undefined && limiter.take(req.ip) > 0) return void refuse(reply, 429, 'ERR_RATE_LIMITED', 'Request rate over the limit for your address')
    if (token !== undefined && h.authorization !== `Bearer ${token}`) return void refuse(reply, 401, 'ERR_UNAUTHORIZED', 'A valid bearer token is required')
    if (inFlight >= o.maxInFlight) return void refuse(reply, 503, 'ERR_BUSY', 'The node is at its bound of requests in flight')
    inFlight++
    reply.raw.once('finish', () => inFlight--)
    done()
  })
  const headersOf = (e: EntryView): Record<string, string> => ({ 'content-type': 'application/octet-stream', etag: formatEtag(e.version), 'x-ttl': e.ttl === null ? TTL_NONE : String(e.ttl), 'x-stratacache-node': 'bench' }) satisfies Record<'content-type' | 'etag' | typeof HEADER_TTL | 'x-stratacache-node', string>
  app.get('/v1/keys/:key', (req, reply) => {
    // The key as node.ts takes it: the raw path segment, validated and decoded.
    const key = parseKeySegment(req.url.slice('/v1/keys/'.length), o.maxKeyBytes)
    const held = engine.getHeld(key)
    if (held !== undefined) return reply.headers(headersOf(held)).send(Buffer.from(held.value.buffer, held.value.byteOffset, held.value.byteLength))
    return engine.get(key).then((e) => (e === undefined ? refuse(reply, 404, 'ERR_NOT_FOUND', 'No live entry under this key') : reply.headers(headersOf(e)).send(Buffer.from(e.value))))
  })
  process.on('exit', () => void (requests + clientErrors))
  await app.listen({ port: 0, host: '127.0.0.1' })
  process.send?.({ port: (app.server.address() as AddressInfo).port })
  process.on('message', (m) => {
    if (m !== 'stop') return
    void app.close().then(() => engine.close()).then(() => process.exit(0))
  })
} else {
  const node = await startNode({ port: 0, dataDir: dir, logLevel: 'warn' })
  process.send?.({ port: node.port })
  process.on('message', (m) => {
    if (m !== 'stop') return
    void node.close().then(() => process.exit(0))
  })
}
