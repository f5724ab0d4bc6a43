/**
 * The receiving end of the `transport` bench suite, in its own process (forked by
 * bench/transport.ts): listens with the protocol named in argv[2] (argv[3]: the
 * directory of test/support/cluster-pki.ts certificates, for TLS) on a free loopback port,
 * sends `{ port }` to the parent, then counts messages. Each payload starts with the
 * sender's `process.hrtime.bigint()` (CLOCK_MONOTONIC, shared by every process on the
 * machine), so the one-way latency is read here, at arrival. On `{ expect: n }` it answers `{ armed }`,
 * then `{ at, latencies, cpuUs }` (its CPU time since armed) once n more messages have arrived.
 */
import { createServer as createHttpServer } from 'node:http'
import { createServer as createH2Server } from 'node:http2'
import { createServer as createTcpServer, type AddressInfo } from 'node:net'
import { FrameReader } from '../src/cluster/frame-reader.js'
import { TcpTransport } from '../src/cluster/tcp-transport.js'
import { readClusterPki } from '../test/support/cluster-pki.js'

const protocol = process.argv[2]

let expected = Infinity
let count = 0
let latencies: number[] = []
let cpuAtArm = process.cpuUsage()

function arrived(payload: Uint8Array): void {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength)
  const now = process.hrtime.bigint()
  latencies.push(Number(now - view.getBigUint64(0)) / 1e6)
  if (++count === expected) {
    const cpu = process.cpuUsage(cpuAtArm)
    process.send?.({ at: now.toString(), latencies, cpuUs: cpu.user + cpu.system })
    expected = Infinity
  }
}

process.on('message', (m: { expect?: number; stop?: boolean }) => {
  if (m.stop === true) process.exit(0)
  if (m.expect !== undefined) {
    count = 0
    latencies = []
    expected = m.expect
    cpuAtArm = process.cpuUsage()
    process.send?.({ armed: true })
  }
})

const ready = (port: number): void => void process.send?.({ port })

if (protocol === 'http1') {
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      arrived(Buffer.concat(chunks))
      res.writeHead(204).end()
    })
  })
  server.keepAliveTimeout = 60_000
  server.listen(0, '127.0.0.1', () => ready((server.address() as AddressInfo).port))
} else if (protocol === 'http2') {
  const server = createH2Server()
  server.on('stream', (stream) => {
    const chunks: Buffer[] = []
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () => {
      arrived(Buffer.concat(chunks))
      stream.respond({ ':status': 204 }, { endStream: true })
    })
  })
  server.listen(0, '127.0.0.1', () => ready((server.address() as AddressInfo).port))
} else if (protocol === 'tcp') {
  const server = createTcpServer((socket) => {
    const reader = new FrameReader(64 * 1024 * 1024)
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk, (frame) => {
        arrived(frame)
        return true
      })
    })
  })
  server.listen(0, '127.0.0.1', () => ready((server.address() as AddressInfo).port))
} else if (protocol === 'stratacache' || protocol === 'stratacache-tls') {
  const transport = await TcpTransport.listen({
    nodeId: 'receiver',
    listen: { host: '127.0.0.1', port: 0 },
    secret: 'bench-cluster-secret-0123456789',
    tls: protocol === 'stratacache-tls' ? readClusterPki(process.argv[3] as string, 'receiver') : undefined,
    maxQueuedBytes: 256 * 1024 * 1024,
  })
  transport.onReceive((_from, payload) => arrived(payload))
  ready(transport.advertised.port)
} else {
  console.error(`unknown protocol ${protocol}`)
  process.exit(2)
}
