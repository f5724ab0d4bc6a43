// A server for the `server` bench suite, in its own process: `bare` (node:http returning a
// fixed 100-byte body), `node` (a stratacache node with its defaults in the given
// directory), or `fastify` (fastify 5 serving the node's GET route: the same NodeEngine on
// an LMDB store in the given directory, filled with the suite's keys by this process, and
// the same answer headers, without the node's admission checks — what the framework's own
// layer costs next to the node's hand-written one; decision 0240). Sends its port to the
// parent, answers 'cpu' with its CPU time so far (µs, user + system), stops on 'stop'.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { systemClock } from '../src/core/system-clock.js'
import { HEADER_TTL, TTL_NONE } from '../src/protocol/wire.js'
import { formatEtag } from '../src/protocol/validate.js'
import { startNode } from '../src/server/index.js'
import { NodeEngine, type EntryView } from '../src/server/node-engine.js'
import { lmdbStore } from '../src/store/lmdb-store.js'

const [kind, dir, keys] = process.argv.slice(2)
const BODY = Buffer.alloc(100, 'v')

process.on('message', (m) => {
  if (m !== 'cpu') return
  const u = process.cpuUsage()
  process.send?.({ cpuMicros: u.user + u.system })
})

if (kind === 'bare') {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BODY.byteLength })
    res.end(BODY)
  })
  server.keepAliveTimeout = 5000
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }))
  process.on('message', (m) => {
    if (m !== 'stop') return
    server.closeAllConnections()
    server.close(() => process.exit(0))
  })
} else if (kind === 'fastify') {
  const store = lmdbStore({ path: dir, clock: systemClock, exclusive: true })
  const engine = await NodeEngine.open({ store, clock: systemClock, memoryBytes: 64 * 1024 * 1024, maxValueBytes: 1024 * 1024, storeTimeoutMs: Infinity })
  await engine.putMany(Array.from({ length: Number(keys ?? 1000) }, (_, k) => ({ key: `k${k}`, value: BODY, ttl: null, tags: [] })))
  const app = Fastify({ logger: false, keepAliveTimeout: 5000 })
  const headersOf = (e: EntryView): Record<string, string> => ({ 'content-type': 'application/octet-stream', etag: formatEtag(e.version), [HEADER_TTL]: e.ttl === null ? TTL_NONE : String(e.ttl), 'x-stratacache-node': 'bench' })
  app.get<{ Params: { key: string } }>('/v1/keys/:key', (req, reply) => {
    const key = req.params.key
    const held = engine.getHeld(key)
    if (held !== undefined) return reply.headers(headersOf(held)).send(Buffer.from(held.value.buffer, held.value.byteOffset, held.value.byteLength))
    return engine.get(key).then((e) => (e === undefined ? reply.code(404).send({ code: 'ERR_NOT_FOUND', message: 'No live entry under this key' }) : reply.headers(headersOf(e)).send(Buffer.from(e.value))))
  })
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
