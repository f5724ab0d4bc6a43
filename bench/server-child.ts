// A server for the `server` bench suite, in its own process: `bare` (node:http returning a
// fixed 100-byte body) or `node` (a stratacache node with its defaults in the given
// directory). Sends its port to the parent, stops on the parent's 'stop'.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { startNode } from '../src/server/index.js'

const [kind, dir] = process.argv.slice(2)
const BODY = Buffer.alloc(100, 'v')

if (kind === 'bare') {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BODY.byteLength })
    res.end(BODY)
  })
  server.keepAliveTimeout = 5000
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }))
  process.on('message', () => {
    server.closeAllConnections()
    server.close(() => process.exit(0))
  })
} else {
  const node = await startNode({ port: 0, dataDir: dir, logLevel: 'warn' })
  process.send?.({ port: node.port })
  process.on('message', () => {
    void node.close().then(() => process.exit(0))
  })
}
