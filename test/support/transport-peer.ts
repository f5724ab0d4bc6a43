/**
 * A cluster node's transport in a child process, for the multi-process transport test:
 * `node transport-peer.js <nodeId> <secret> <parentId> <parentPort>` (forked, with IPC).
 * Listens on a free loopback port and sends `{ port }` to the parent; answers every message
 * from a peer with `echo:` + the message, to that peer; `{ stop: true }` closes and exits.
 */
import { TcpTransport } from '../../src/cluster/tcp-transport.js'

const [nodeId, secret, parentId, parentPort] = process.argv.slice(2) as [string, string, string, string]
const transport = await TcpTransport.listen({
  nodeId,
  secret,
  listen: { host: '127.0.0.1', port: 0 },
  peers: { [parentId]: { host: '127.0.0.1', port: Number(parentPort) } },
})
const prefix = new TextEncoder().encode('echo:')
transport.onReceive((from, payload) => {
  const reply = new Uint8Array(prefix.byteLength + payload.byteLength)
  reply.set(prefix, 0)
  reply.set(payload, prefix.byteLength)
  transport.send(from, reply)
})
process.on('message', (m: { stop?: boolean }) => {
  if (m.stop === true) void transport.close().then(() => process.exit(0))
})
process.on('disconnect', () => process.exit(0))
process.send?.({ port: transport.advertised.port })
