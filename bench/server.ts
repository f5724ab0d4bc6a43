/**
 * The `server` suite: a stratacache node's HTTP throughput and latency for GET hits and
 * PUTs of 100-byte values at 64 connections (autocannon, keep-alive, no pipelining), next
 * to a bare node:http server that returns a fixed 100-byte body (the ceiling of HTTP on
 * this machine), to fastify 5 serving the same GET route over the same engine (what a
 * framework's layer costs, decision 0240) and to redis-server measured with
 * redis-benchmark (-c 64 -d 100). PUTs run over distinct keys and on one hot key.
 *
 * Each server runs in its own child process (bench/server-child.ts) while autocannon
 * drives it from this process; redis-server is started on a free port by this suite (no
 * persistence). The node runs with its defaults: LMDB store in a temporary directory,
 * memory L1 — GET hits are answered from L1, PUTs are committed to LMDB before the answer.
 * On a shared 2-core machine the load generator competes with the server for CPU: read
 * the ratios, not the absolute figures.
 */
import { spawn, fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { startRedisServer } from '../test/support/redis-server.js'
import { fmtOps, fmtRatio, median, type Table } from './harness.js'

const CONNECTIONS = 64
export const KEYS = 1000
const VALUE = Buffer.alloc(100, 'v')

export interface Measure {
  rps: number
  /** Server process CPU (user + system) per request, µs: robust to other load on the machine. */
  cpuPerRequest: number
  p50: number
  p99: number
  errors: number
}

export type ServerKind = 'bare' | 'node' | 'fastify'

/** Asks the server child for its CPU time so far, µs. */
function cpuOf(child: ReturnType<typeof fork>): Promise<number> {
  return new Promise((resolve) => {
    const on = (m: unknown): void => {
      if (typeof m === 'object' && m !== null && 'cpuMicros' in m) {
        child.off('message', on)
        resolve((m as { cpuMicros: number }).cpuMicros)
      }
    }
    child.on('message', on)
    child.send('cpu')
  })
}

export async function withServer<T>(kind: ServerKind, run: (port: number, cpu: () => Promise<number>) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'stratacache-bench-'))
  const child = fork(fileURLToPath(new URL('./server-child.js', import.meta.url)), [kind, dir, String(KEYS)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m) => resolve((m as { port: number }).port))
      child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)))
    })
    return await run(port, () => cpuOf(child))
  } finally {
    child.send('stop')
    await new Promise((r) => child.once('exit', r))
    rmSync(dir, { recursive: true, force: true })
  }
}

export function fill(port: number): Promise<void> {
  const body = JSON.stringify({ entries: Array.from({ length: KEYS }, (_, k) => ({ key: `k${k}`, value: VALUE.toString('base64') })) })
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/mset', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume()
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`mset answered ${res.statusCode}`))))
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** autocannon against `port` for `seconds` (at most `rate` requests/s overall when given); the server's CPU per request when `cpu` is given. */
export async function cannon(port: number, method: 'GET' | 'PUT', pathOf: (i: number) => string, seconds: number, cpu?: () => Promise<number>, rate?: number): Promise<Measure> {
  let i = 0
  const cpu0 = cpu === undefined ? 0 : await cpu()
  const { m, total } = await new Promise<{ m: Omit<Measure, 'cpuPerRequest'>; total: number }>((resolve, reject) => {
    autocannon(
      {
        url: `http://127.0.0.1:${port}`,
        connections: CONNECTIONS,
        duration: seconds,
        ...(rate === undefined || rate <= 0 ? {} : { overallRate: rate }),
        requests: [{ method, body: method === 'PUT' ? VALUE : undefined, setupRequest: (req) => ({ ...req, path: pathOf(i++) }) }],
      },
      (err, result) => {
        if (err !== null && err !== undefined) return reject(err)
        resolve({ m: { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.timeouts + result.non2xx }, total: result.requests.total })
      },
    )
  })
  const used = cpu === undefined ? NaN : (await cpu()) - cpu0
  return { ...m, cpuPerRequest: used / total }
}

async function redisBenchmark(port: number, requests: number): Promise<Record<'GET' | 'SET', Measure>> {
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-c', String(CONNECTIONS), '-d', '100', '-n', String(requests), '-r', String(KEYS), '-t', 'get,set', '--csv'], { stdio: ['ignore', 'pipe', 'inherit'] })
    let text = ''
    p.stdout.on('data', (c: Buffer) => (text += c.toString()))
    p.once('error', reject)
    p.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`redis-benchmark exited with ${code}`))))
  })
  const lines = out.trim().split('\n').map((l) => l.split(',').map((f) => f.replaceAll('"', '')))
  const head = lines[0]
  const col = (name: string): number => head.indexOf(name)
  const measures: Partial<Record<'GET' | 'SET', Measure>> = {}
  for (const row of lines.slice(1)) {
    const test = row[col('test')]
    if (test !== 'GET' && test !== 'SET') continue
    measures[test] = { rps: Number(row[col('rps')]), cpuPerRequest: NaN, p50: Number(row[col('p50_latency_ms')]), p99: Number(row[col('p99_latency_ms')]), errors: 0 }
  }
  if (measures.GET === undefined || measures.SET === undefined) throw new Error(`unexpected redis-benchmark output: ${out}`)
  return measures as Record<'GET' | 'SET', Measure>
}

function pick(ms: Measure[]): Measure {
  return { rps: median(ms.map((m) => m.rps)), cpuPerRequest: median(ms.map((m) => m.cpuPerRequest)), p50: median(ms.map((m) => m.p50)), p99: median(ms.map((m) => m.p99)), errors: ms.reduce((a, m) => a + m.errors, 0) }
}

/** The median of per-pass ratios a[i] / b[i] (each pair measured back to back). */
function pairedRatio(a: readonly Measure[], b: readonly Measure[]): number {
  return median(a.map((x, i) => x.rps / b[i]!.rps))
}

/** The ratio of the medians of the two subjects' requests/s. */
function ratioOfMedians(a: readonly Measure[], b: readonly Measure[]): number {
  return median(a.map((x) => x.rps)) / median(b.map((x) => x.rps))
}

/**
 * The throughput ratio a/b that the server CPU per request implies when the server is the
 * bottleneck: the median over passes of b[i].cpu / a[i].cpu. Unlike requests/s it does not
 * move with what else runs on the machine (nor with the load generator taking a core).
 */
function cpuRatio(a: readonly Measure[], b: readonly Measure[]): number {
  return median(a.map((x, i) => b[i]!.cpuPerRequest / x.cpuPerRequest))
}

export async function serverSuite(c: { quick: boolean; passes: number }): Promise<{ params: Readonly<Record<string, unknown>>; results: Readonly<Record<string, unknown>>; tables: Table[] }> {
  const seconds = c.quick ? 2 : 6
  const passes = c.quick ? 1 : Math.min(c.passes, 3)
  const bare: Measure[] = []
  const barePut: Measure[] = []
  const get: Measure[] = []
  const fastify: Measure[] = []
  const put: Measure[] = []
  const hot: Measure[] = []
  const redisGet: Measure[] = []
  const redisSet: Measure[] = []
  const redis = await startRedisServer()
  try {
    for (let p = 0; p < passes; p++) {
      // Each server gets a one-second untimed warm-up (JIT, connection setup) before it is measured.
      await withServer('bare', async (port, cpu) => {
        await cannon(port, 'GET', () => '/', 1)
        bare.push(await cannon(port, 'GET', () => '/', seconds, cpu))
        barePut.push(await cannon(port, 'PUT', (i) => `/v1/keys/p${p}-${i}`, seconds, cpu))
      })
      await withServer('node', async (port, cpu) => {
        // Fill every key once so the GETs are hits: one mset on one short-lived connection
        // (a keep-alive pool left open here would count against the node's per-IP limit).
        await fill(port)
        await cannon(port, 'GET', (i) => `/v1/keys/k${i % KEYS}`, 1)
        get.push(await cannon(port, 'GET', (i) => `/v1/keys/k${i % KEYS}`, seconds, cpu))
        // Durable PUTs: every key distinct (a fresh key per request), then all on one key.
        put.push(await cannon(port, 'PUT', (i) => `/v1/keys/p${p}-${i}`, seconds, cpu))
        hot.push(await cannon(port, 'PUT', () => '/v1/keys/hot', seconds, cpu))
      })
      fastify.push(await withServer('fastify', async (port, cpu) => (await cannon(port, 'GET', (i) => `/v1/keys/k${i % KEYS}`, 1), cannon(port, 'GET', (i) => `/v1/keys/k${i % KEYS}`, seconds, cpu))))
      const r = await redisBenchmark(redis.port, c.quick ? 50_000 : 200_000)
      redisGet.push(r.GET)
      redisSet.push(r.SET)
    }
  } finally {
    await redis.stop()
  }
  const m = { bare: pick(bare), barePut: pick(barePut), get: pick(get), fastify: pick(fastify), put: pick(put), hot: pick(hot), redisGet: pick(redisGet), redisSet: pick(redisSet) }
  const three = (a: readonly Measure[], b: readonly Measure[]): { paired: number; ofMedians: number; cpu: number } => ({ paired: pairedRatio(a, b), ofMedians: ratioOfMedians(a, b), cpu: cpuRatio(a, b) })
  const ratios = { getVsBare: three(get, bare), barePutVsBare: three(barePut, bare), fastifyVsBare: three(fastify, bare), putVsGet: three(put, get), hotVsPut: three(hot, put) }
  // Met only when the requests/s medians and the CPU per request both say so (the median of
  // per-pass rate ratios alone said 0.95x while both of these said ~0.6x; decision 0360).
  const met = (x: { ofMedians: number; cpu: number }, target: number): string => `>= ${target}x: ${Math.min(x.ofMedians, x.cpu) >= target ? 'met' : 'NOT met'}`
  const fmt3 = (x: { paired: number; ofMedians: number; cpu: number }, of: string): string[] => [`${fmtRatio(x.paired)} ${of}`, `${fmtRatio(x.ofMedians)}`, `${fmtRatio(x.cpu)}`]
  const row = (name: string, x: Measure, ratio: string[], target = ''): string[] => [name, fmtOps(x.rps), Number.isFinite(x.cpuPerRequest) ? `${x.cpuPerRequest.toFixed(0)} µs` : '', `${x.p50.toFixed(2)} ms`, `${x.p99.toFixed(2)} ms`, ...ratio, String(x.errors), target]
  const tables: Table[] = [
    {
      title: `server: 100-byte values, ${CONNECTIONS} connections, ${KEYS} keys (autocannon ${seconds} s per run, ${passes} pass(es); redis-benchmark)`,
      columns: ['subject', 'requests/s (median)', 'server CPU / request', 'p50', 'p99', 'rate ratio (median of passes)', 'rate ratio (of medians)', 'CPU-derived ratio', 'errors', 'target'],
      align: 'lrrrrrrrrl',
      rows: [
        row('bare node:http, fixed body', m.bare, ['1.00x bare', '', '']),
        row('bare node:http PUT, body read, nothing stored', m.barePut, fmt3(ratios.barePutVsBare, 'bare')),
        row('stratacache node GET hit', m.get, fmt3(ratios.getVsBare, 'bare'), met(ratios.getVsBare, 0.9)),
        row('fastify 5, same GET route and admission', m.fastify, fmt3(ratios.fastifyVsBare, 'bare')),
        row('stratacache node PUT, distinct keys (LMDB commit)', m.put, fmt3(ratios.putVsGet, 'node GET'), met(ratios.putVsGet, 0.7)),
        row('stratacache node PUT, one hot key (group commit)', m.hot, fmt3(ratios.hotVsPut, 'distinct PUT'), met(ratios.hotVsPut, 0.5)),
        row('redis-server GET (redis-benchmark)', m.redisGet, ['', '', '']),
        row('redis-server SET (redis-benchmark)', m.redisSet, ['', '', '']),
      ],
      notes: [
        'autocannon runs in the bench process, each server in its own child process; on a 2-core machine the load generator takes a core from the server, which caps every HTTP figure alike. Three ratios of the same runs: the median of per-pass requests/s ratios (runs of a pass are seconds apart, but one pass whose rates swing can carry it), the ratio of the requests/s medians, and the CPU-derived ratio (median over passes of the other subject\'s server CPU per request over this one\'s: the throughput ratio when the server is the bottleneck, and the one least moved by other load on the machine). A target is met only when the ratio of medians and the CPU-derived ratio both meet it (decision 0360).',
        'PUTs answer after their LMDB commit; writes queued on one key share the next commit (group commit, decision 0241).',
        "The bare PUT row is a PUT's HTTP floor on this machine: node:http reading the 100-byte body and answering as the node does (JSON with version and TTL, etag, x-ttl), nothing stored; the node's PUT rows cost what they add over it.",
        'redis-benchmark is a C client speaking RESP (no HTTP parsing); its figures show what a native cache server reaches on this machine, not a like-for-like comparison.',
      ],
    },
  ]
  return { params: { connections: CONNECTIONS, keys: KEYS, valueBytes: VALUE.byteLength, seconds, passes }, results: { ...m, ratios }, tables }
}
