/**
 * `stratacache bench`: a load generator against running nodes.
 *
 * `--concurrency` workers each run one request at a time, back to back, for `--duration`
 * (or until `--requests` in total), on a key space of `--keys` keys (`<prefix><i>`, chosen
 * uniformly) with values of `--value-size` bytes; a fraction `--reads` of the requests are
 * GETs, the rest PUTs. The key space is written first (`mset`) so GETs hit, unless
 * `--no-prefill`. The client runs without retries (a retry would hide the latency of the
 * failure it retries) and with one keep-alive socket per worker; busy answers (503/429) are
 * counted apart from errors.
 *
 * Latency is measured per request with a high-resolution clock from the first byte sent
 * to the last byte read; percentiles are exact (every sample kept, sorted once at the end).
 * On a TTY a progress line on stderr is redrawn every second. This measures the whole path
 * client → node → client on this machine, client cost included: for the node's own ceiling
 * see `npm run bench`.
 */
import { mathRandom, type Random } from '../core/random.js'
import { CacheError, isCacheError } from '../core/errors.js'
import { toMs } from '../core/duration.js'
import type { Client } from '../client/client.js'
import { clientFrom, COMMON_HELP, COMMON_OPTIONS, EXIT, parse, UsageError, describeError, type CliIo } from './cli-io.js'

export const BENCH_HELP = `Usage: stratacache bench [options]

Load generator against the node(s): prints a live progress line (on a terminal) and a
summary with throughput and p50/p90/p99/max latency. Exit code 3 when a request failed
(busy answers are counted, not failures) or no node answers.

Options:
  -c, --concurrency <n>  Requests in flight (one keep-alive socket each) [default 16];
                         above the node's per-IP connection limit (256) the extra
                         connections are refused with 503 and counted as busy
  -d, --duration <dur>   How long to run: '10s', '1m', ms [default 10s]
  -r, --requests <n>     Stop after n requests instead of after --duration
  --keys <n>             Size of the key space [default 1000]
  --value-size <bytes>   Size of every value written [default 100]
  --reads <fraction>     Fraction of requests that are GETs, 0..1 [default 0.9]
  --ttl <seconds>        TTL of written values [default 3600]
  --prefix <text>        Key prefix [default bench:]
  --no-prefill           Do not write the key space before starting
${COMMON_HELP}`

export interface BenchConfig {
  readonly concurrency: number
  readonly durationMs: number
  readonly requests: number | undefined
  readonly keys: number
  readonly valueSize: number
  readonly reads: number
  readonly ttlSeconds: number
  readonly prefix: string
  readonly prefill: boolean
}

export interface BenchSummary {
  readonly nodes: string[]
  readonly concurrency: number
  readonly elapsedMs: number
  readonly requests: number
  readonly gets: number
  readonly sets: number
  readonly hits: number
  readonly misses: number
  readonly busy: number
  readonly errors: number
  readonly errorCodes: Record<string, number>
  readonly throughput: number
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number; readonly mean: number }
}

function intFlag(raw: string | undefined, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (raw === undefined) return fallback
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new UsageError(`--${name} expects an integer in ${min}..${max}, got ${JSON.stringify(raw)}`)
  return Number(raw)
}

/** A growable array of latency samples, sorted once at the end. */
class Samples {
  #data = new Float64Array(1 << 16)
  #n = 0
  add(ms: number): void {
    if (this.#n === this.#data.length) {
      const next = new Float64Array(this.#data.length * 2)
      next.set(this.#data)
      this.#data = next
    }
    this.#data[this.#n++] = ms
  }
  get count(): number {
    return this.#n
  }
  sorted(): Float64Array {
    return this.#data.slice(0, this.#n).sort()
  }
  /** Percentile of the samples from index `from` on (the progress line's last second). */
  recent(from: number, p: number): number {
    return percentile(this.#data.slice(from, this.#n).sort(), p)
  }
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US')
const ms = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2))

export async function benchCommand(argv: string[], io: CliIo, random: Random = mathRandom): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...COMMON_OPTIONS,
    concurrency: { type: 'string', short: 'c' },
    duration: { type: 'string', short: 'd' },
    requests: { type: 'string', short: 'r' },
    keys: { type: 'string' },
    'value-size': { type: 'string' },
    reads: { type: 'string' },
    ttl: { type: 'string' },
    prefix: { type: 'string' },
    'no-prefill': { type: 'boolean' },
  })
  if (values.help === true) {
    io.out.write(`${BENCH_HELP}\n`)
    return EXIT.OK
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])} (see --help)`)
  let durationMs = 10_000
  if (values.duration !== undefined) {
    try {
      durationMs = toMs(/^\d+$/.test(values.duration) ? Number(values.duration) : values.duration, '--duration')
    } catch (err) {
      throw new UsageError(describeError(err))
    }
    if (!(durationMs > 0) || durationMs === Infinity) throw new UsageError('--duration must be finite and > 0')
  }
  const reads = values.reads === undefined ? 0.9 : Number(values.reads)
  if (!(reads >= 0 && reads <= 1)) throw new UsageError(`--reads expects a fraction in 0..1, got ${JSON.stringify(values.reads)}`)
  const config: BenchConfig = {
    concurrency: intFlag(values.concurrency, 'concurrency', 16, 1, 10_000),
    durationMs,
    requests: values.requests === undefined ? undefined : intFlag(values.requests, 'requests', 0, 1),
    keys: intFlag(values.keys, 'keys', 1000, 1, 100_000_000),
    valueSize: intFlag(values['value-size'], 'value-size', 100, 0, 16 * 1024 * 1024),
    reads,
    ttlSeconds: intFlag(values.ttl, 'ttl', 3600, 1, 99_999_999),
    prefix: values.prefix ?? 'bench:',
    prefill: values['no-prefill'] !== true,
  }
  const client = clientFrom(values, io, { retry: false, connections: config.concurrency })
  try {
    const pings = await client.ping()
    if (!pings.some((p) => p.ok)) {
      for (const p of pings) io.err.write(`stratacache: ${p.node}: ${describeError(p.error)}\n`)
      return EXIT.UNAVAILABLE
    }
    const summary = await runBench(client, config, io, random)
    io.out.write(values.json === true ? `${JSON.stringify(summary)}\n` : formatSummary(summary, config))
    return summary.errors > 0 || summary.requests === 0 ? EXIT.UNAVAILABLE : EXIT.OK
  } finally {
    await client.close()
  }
}

export async function runBench(client: Client, c: BenchConfig, io: CliIo, random: Random): Promise<BenchSummary> {
  const value = Buffer.alloc(c.valueSize, 0x61)
  const keyOf = (i: number): string => `${c.prefix}${i}`
  if (c.prefill) {
    for (let start = 0; start < c.keys; start += 500) {
      const batch = []
      for (let i = start; i < Math.min(c.keys, start + 500); i++) batch.push({ key: keyOf(i), value, ttl: c.ttlSeconds * 1000 })
      await client.mset(batch)
    }
  }
  const samples = new Samples()
  const errorCodes: Record<string, number> = {}
  let gets = 0
  let sets = 0
  let hits = 0
  let misses = 0
  let busy = 0
  let errors = 0
  let issued = 0
  const began = io.now()
  const end = began + c.durationMs
  const more = (): boolean => (c.requests !== undefined ? issued < c.requests : io.now() < end)

  const worker = async (): Promise<void> => {
    while (more()) {
      issued++
      const key = keyOf(Math.floor(random.next() * c.keys))
      const isGet = random.next() < c.reads
      const t0 = io.now()
      try {
        if (isGet) {
          gets++
          const entry = await client.get(key)
          if (entry === undefined) misses++
          else hits++
        } else {
          sets++
          await client.set(key, value, { ttl: c.ttlSeconds * 1000 })
        }
        samples.add(io.now() - t0)
      } catch (err) {
        if (isCacheError(err, 'ERR_BUSY') || isCacheError(err, 'ERR_RATE_LIMITED')) {
          busy++
          samples.add(io.now() - t0)
        } else {
          errors++
          const code = err instanceof CacheError ? err.code : 'ERR_UNKNOWN'
          errorCodes[code] = (errorCodes[code] ?? 0) + 1
        }
      }
    }
  }

  let progress: ReturnType<CliIo['clock']['setTimeout']> | undefined
  let drawnUpTo = 0
  const draw = (): void => {
    const elapsed = (io.now() - began) / 1000
    const done = samples.count + errors
    // p99 of the last interval only: sorting every sample each second would slow the run.
    const p99 = samples.recent(drawnUpTo, 99)
    drawnUpTo = samples.count
    io.err.write(`\r\x1b[2K  ${elapsed.toFixed(1)}s  ${fmt(done)} req  ${fmt(done / Math.max(elapsed, 1e-3))} req/s  p99 ${ms(p99)} ms (last 1s)  busy ${fmt(busy)}  errors ${fmt(errors)}`)
  }
  const tick = (): void => {
    draw()
    progress = io.clock.setTimeout(tick, 1000)
  }
  if (io.err.isTTY === true) progress = io.clock.setTimeout(tick, 1000)
  try {
    await Promise.all(Array.from({ length: c.concurrency }, worker))
  } finally {
    if (progress !== undefined) io.clock.clearTimeout(progress)
  }
  const elapsedMs = io.now() - began
  if (io.err.isTTY === true) {
    draw()
    io.err.write('\n')
  }
  const sorted = samples.sorted()
  let sum = 0
  for (const s of sorted) sum += s
  const requests = samples.count + errors
  return {
    nodes: client.nodes().map((s) => s.node),
    concurrency: c.concurrency,
    elapsedMs,
    requests,
    gets,
    sets,
    hits,
    misses,
    busy,
    errors,
    errorCodes,
    throughput: requests / (elapsedMs / 1000),
    latencyMs: { p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: sorted.length === 0 ? 0 : sorted[sorted.length - 1], mean: sorted.length === 0 ? 0 : sum / sorted.length },
  }
}

export function formatSummary(s: BenchSummary, c: BenchConfig): string {
  const codes = Object.entries(s.errorCodes).map(([code, n]) => `${code} ${fmt(n)}`).join(', ')
  return [
    `stratacache bench: ${s.nodes.join(', ')}, ${s.concurrency} connections, ${(s.elapsedMs / 1000).toFixed(1)} s, ${fmt(c.keys)} keys, ${fmt(c.valueSize)}-byte values, ${Math.round(c.reads * 100)}% reads`,
    `  requests    ${fmt(s.requests)} (gets ${fmt(s.gets)}: ${fmt(s.hits)} hits, ${fmt(s.misses)} misses; sets ${fmt(s.sets)})`,
    `  throughput  ${fmt(s.throughput)} req/s`,
    `  latency     p50 ${ms(s.latencyMs.p50)} ms  p90 ${ms(s.latencyMs.p90)} ms  p99 ${ms(s.latencyMs.p99)} ms  max ${ms(s.latencyMs.max)} ms`,
    `  busy        ${fmt(s.busy)} (503/429)`,
    `  errors      ${fmt(s.errors)}${codes === '' ? '' : ` (${codes})`}`,
    '',
  ].join('\n')
}
