/**
 * The `transport` suite: candidate wire protocols for the cluster's MessageTransport
 * (docs/decisions/0142), one-way between two processes on loopback.
 *
 * - http1: persistent HTTP/1.1 through undici (a Pool of keep-alive connections; one POST
 *   per message, answered 204).
 * - http2: one node:http2 session, one stream per message (POST, answered 204).
 * - tcp: one net.Socket, length-prefixed frames (u32 length + payload), writes corked per
 *   tick: the floor of any framed protocol.
 * - stratacache / stratacache-tls: the chosen implementation, TcpTransport (cluster-secret
 *   handshake, per-frame HMAC in plain mode; TLS 1.3 with node certificates instead).
 *
 * The receiver is a child process (bench/transport-child.ts); this process sends. Every
 * payload starts with the sender's process.hrtime (CLOCK_MONOTONIC, one clock for every
 * process on the machine), so the child reads the one-way latency at arrival.
 * Per protocol and payload size: 500 messages of warm-up; then `latency` — messages one at
 * a time, 1 ms apart (no queueing), p50/p99; then `throughput` — a burst of n messages with
 * at most 256 requests in flight (http) or under the socket's backpressure (tcp), timed
 * from the first send to the last arrival.
 * Both processes share the 2 cores: read the ratios, not the absolute figures.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { connect as connectH2 } from 'node:http2'
import { connect as connectTcp } from 'node:net'
import { rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Pool } from 'undici'
import { TcpTransport } from '../src/cluster/tcp-transport.js'
import { makeClusterPki, readClusterPki } from '../test/support/cluster-pki.js'
import { fmtOps, median, type Table } from './harness.js'

export const PROTOCOLS = ['http1', 'http2', 'tcp', 'stratacache', 'stratacache-tls'] as const
type Protocol = (typeof PROTOCOLS)[number]

const WINDOW = 256
const SECRET = 'bench-cluster-secret-0123456789'

interface Sender {
  /** Sends one message; resolves when the sender may take another (backpressure). */
  send(payload: Buffer): Promise<void> | void
  /** Resolves when everything sent has been handed to the socket (and answered, for http). */
  flush(): Promise<void>
  close(): Promise<void>
}

function windowed(start: (payload: Buffer) => Promise<unknown>): Pick<Sender, 'send' | 'flush'> {
  const inflight = new Set<Promise<unknown>>()
  return {
    async send(payload) {
      const p = start(payload).catch(() => undefined)
      inflight.add(p)
      void p.then(() => inflight.delete(p))
      if (inflight.size >= WINDOW) await Promise.race(inflight)
    },
    async flush() {
      await Promise.all(inflight)
    },
  }
}

async function sender(protocol: Protocol, port: number, pki: string): Promise<Sender> {
  const origin = `http://127.0.0.1:${port}`
  switch (protocol) {
    case 'http1': {
      const pool = new Pool(origin, { connections: 4, pipelining: 1 })
      return {
        ...windowed(async (body) => {
          const res = await pool.request({ path: '/m', method: 'POST', body })
          await res.body.dump()
        }),
        close: () => pool.close(),
      }
    }
    case 'http2': {
      const session = connectH2(origin)
      await new Promise<void>((resolve, reject) => session.once('connect', () => resolve()).once('error', reject))
      return {
        ...windowed(
          (body) =>
            new Promise<void>((resolve, reject) => {
              const stream = session.request({ ':method': 'POST', ':path': '/m' })
              stream.on('response', () => undefined)
              stream.on('error', reject)
              stream.on('close', () => resolve())
              stream.resume()
              stream.end(body)
            }),
        ),
        close: () => new Promise<void>((resolve) => session.close(() => resolve())),
      }
    }
    case 'tcp': {
      const socket = connectTcp({ host: '127.0.0.1', port, noDelay: true })
      await new Promise<void>((resolve, reject) => socket.once('connect', () => resolve()).once('error', reject))
      let corked = false
      let ok = true
      return {
        async send(payload) {
          const header = Buffer.allocUnsafe(4)
          header.writeUInt32BE(payload.byteLength, 0)
          if (!corked) {
            corked = true
            socket.cork()
            process.nextTick(() => {
              corked = false
              socket.uncork()
            })
          }
          socket.write(header)
          ok = socket.write(payload)
          if (!ok) await new Promise((resolve) => socket.once('drain', resolve))
        },
        async flush() {
          // An empty write's callback runs once everything before it has been handed to the OS.
          await new Promise<void>((resolve) => socket.write(Buffer.alloc(0), () => resolve()))
        },
        close: () => new Promise<void>((resolve) => socket.end(() => resolve())),
      }
    }
    case 'stratacache':
    case 'stratacache-tls': {
      const transport = await TcpTransport.listen({
        nodeId: 'sender',
        listen: { host: '127.0.0.1', port: 0 },
        secret: SECRET,
        tls: protocol === 'stratacache-tls' ? readClusterPki(pki, 'sender') : undefined,
        peers: { receiver: { host: '127.0.0.1', port } },
        maxQueuedBytes: 256 * 1024 * 1024,
        maxQueuedFrames: 1_000_000,
      })
      let sent = 0
      return {
        async send(payload) {
          transport.send('receiver', payload)
          // Fire-and-forget: yield now and then so the queue drains into the socket.
          if (++sent % WINDOW === 0) await new Promise((resolve) => setImmediate(resolve))
        },
        async flush() {},
        close: () => transport.close(),
      }
    }
  }
}

interface Result {
  readonly protocol: Protocol
  readonly size: number
  readonly p50: number
  readonly p99: number
  readonly perSec: number
  /** CPU time per message during the burst, µs: sending process, receiving process. */
  readonly sendCpu: number
  readonly receiveCpu: number
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function stamp(size: number): Buffer {
  const b = Buffer.alloc(size, 0x61)
  b.writeBigUInt64BE(process.hrtime.bigint(), 0)
  return b
}

async function measure(protocol: Protocol, sizes: readonly number[], counts: { latency: number; burst: (size: number) => number }, pki: string): Promise<Result[]> {
  const child: ChildProcess = fork(fileURLToPath(new URL('./transport-child.js', import.meta.url)), [protocol, pki], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const messages: unknown[] = []
  const waiters: Array<(m: unknown) => void> = []
  child.on('message', (m) => {
    const w = waiters.shift()
    if (w !== undefined) w(m)
    else messages.push(m)
  })
  const next = <T>(): Promise<T> => new Promise<T>((resolve, reject) => {
    const m = messages.shift()
    if (m !== undefined) return resolve(m as T)
    waiters.push((x) => resolve(x as T))
    child.once('exit', (code) => reject(new Error(`${protocol} receiver exited with ${code}`)))
  })
  const { port } = await next<{ port: number }>()
  const s = await sender(protocol, port, pki)
  const out: Result[] = []
  try {
    for (const size of sizes) {
      const arm = async (n: number): Promise<void> => {
        child.send({ expect: n })
        await next()
      }
      await arm(500)
      for (let i = 0; i < 500; i++) await s.send(stamp(size))
      await s.flush()
      await next()
      await arm(counts.latency)
      for (let i = 0; i < counts.latency; i++) {
        await s.send(stamp(size))
        await sleep(1)
      }
      await s.flush()
      const lat = await next<{ latencies: number[] }>()
      const sorted = [...lat.latencies].sort((a, b) => a - b)
      const n = counts.burst(size)
      await arm(n)
      const cpu0 = process.cpuUsage()
      const t0 = process.hrtime.bigint()
      for (let i = 0; i < n; i++) await s.send(stamp(size))
      await s.flush()
      const done = await next<{ at: string; cpuUs: number }>()
      const cpu = process.cpuUsage(cpu0)
      const seconds = Number(BigInt(done.at) - t0) / 1e9
      out.push({
        protocol,
        size,
        p50: median(sorted),
        p99: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] as number,
        perSec: n / seconds,
        sendCpu: (cpu.user + cpu.system) / n,
        receiveCpu: done.cpuUs / n,
      })
      process.stderr.write('.')
    }
  } finally {
    await s.close()
    child.send({ stop: true })
    await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(undefined)))
  }
  return out
}

export async function transportSuite(c: { quick: boolean }): Promise<{ params: Readonly<Record<string, unknown>>; results: unknown; tables: Table[] }> {
  const sizes = [100, 10 * 1024]
  const counts = { latency: c.quick ? 300 : 2_000, burst: (size: number) => (size < 1024 ? (c.quick ? 10_000 : 50_000) : c.quick ? 2_000 : 10_000) }
  const only = process.env.STRATACACHE_BENCH_TRANSPORTS?.split(',').filter((p): p is Protocol => (PROTOCOLS as readonly string[]).includes(p))
  const protocols = only !== undefined && only.length > 0 ? only : PROTOCOLS
  const pki = makeClusterPki(['sender', 'receiver'])
  const results: Result[] = []
  try {
    for (const p of protocols) results.push(...(await measure(p, sizes, counts, pki)))
  } finally {
    rmSync(pki, { recursive: true, force: true })
  }
  process.stderr.write('\n')
  const tcpRate = (size: number): number => results.find((r) => r.protocol === 'tcp' && r.size === size)?.perSec ?? NaN
  return {
    params: { sizes, latencySamples: counts.latency, burst: sizes.map(counts.burst), window: WINDOW },
    results,
    tables: [
      {
        title: 'cluster transport candidates: one-way, two processes on loopback',
        columns: ['protocol', 'payload', 'p50 latency', 'p99 latency', 'messages/s (burst)', 'vs raw tcp', 'CPU µs/msg send', 'CPU µs/msg receive'],
        align: 'lrrrrrrr',
        rows: results.map((r) => [
          r.protocol,
          r.size < 1024 ? `${r.size} B` : `${r.size / 1024} KiB`,
          `${r.p50.toFixed(3)} ms`,
          `${r.p99.toFixed(3)} ms`,
          fmtOps(r.perSec),
          `${(r.perSec / tcpRate(r.size)).toFixed(2)}x`,
          r.sendCpu.toFixed(1),
          r.receiveCpu.toFixed(1),
        ]),
        notes: [
          `Latency: ${counts.latency} messages one at a time, 1 ms apart, timed from send to arrival in the receiving process (CLOCK_MONOTONIC). Throughput: a burst per size (${sizes.map(counts.burst).join(' / ')} messages), first send to last arrival.`,
          'CPU µs/msg: process CPU time (user + system) of each end during the burst, divided by the messages: steadier than rates on a loaded machine.',
          'http1: undici Pool, 4 keep-alive connections; http2: one session, a stream per message; tcp: length-prefixed frames, writes corked per tick; stratacache: TcpTransport (secret handshake + per-frame HMAC-SHA256); -tls: TLS 1.3 with node certificates, no frame MAC.',
        ],
      },
    ],
  }
}
