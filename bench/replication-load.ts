// The load generator of the `replication` bench suite, in its own process (forked by
// bench/replication.ts, driven over IPC), so that its CPU is not charged to the suite's
// bookkeeping and the nodes' CPU can be read apart from it.
//
// - `cannon`: closed-loop PUTs of 100-byte values, every key distinct, with autocannon
//   (keep-alive, no pipelining): one autocannon instance per target node with that
//   target's connections, all started together and run for the same seconds.
// - `lag`: open-loop PUTs (ack=one) at a fixed total rate, round-robin over the nodes,
//   while this process holds a `/v1/watch` stream (SSE) on every node. Per write: the time
//   it was sent, the time its answer arrived, and the time each node's stream reported the
//   key (every node publishes every change it applies, its own included). All times are
//   this process's `performance.now()`, so they share one clock; their resolution is this
//   process's event-loop delay, which is measured and returned.
import { Agent, request, type IncomingMessage } from 'node:http'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import autocannon from 'autocannon'

const VALUE = Buffer.alloc(100, 'v')

export interface CannonJob {
  readonly mode: 'cannon'
  readonly targets: ReadonlyArray<{ readonly url: string; readonly connections: number }>
  readonly seconds: number
  /** Keys are `<prefix>-<target>-<i>`: distinct within the run; a new prefix per run. */
  readonly prefix: string
  readonly ack: 'one' | 'region' | 'all'
}

export interface CannonResult {
  readonly kind: 'cannon'
  /** 2xx answers per target. */
  readonly ok: readonly number[]
  readonly errors: number
  readonly seconds: number
  /** Median of the instances' p50, max of their p99 (ms). */
  readonly p50: number
  readonly p99: number
}

export interface LagJob {
  readonly mode: 'lag'
  readonly nodes: ReadonlyArray<{ readonly url: string; readonly region: string }>
  /** Writes per second, all nodes together. */
  readonly rate: number
  readonly seconds: number
  /** How long to wait after the last write for the streams to report it, ms. */
  readonly drainMs: number
  readonly prefix: string
}

export interface LagResult {
  readonly kind: 'lag'
  readonly sent: number
  readonly acked: number
  readonly failed: number
  /** Achieved rate of sends, per second. */
  readonly rate: number
  /** Per acked write, ms from its send: its answer. */
  readonly ack: readonly number[]
  /** Per acked write and per other node of the origin's region, ms from its send until that node's stream reported it. */
  readonly sameRegion: readonly number[]
  /** Per acked write and per node of another region. */
  readonly remoteRegion: readonly number[]
  /** Per acked write, until every node had reported it. */
  readonly everywhere: readonly number[]
  /** (write, node) pairs never reported within drainMs. */
  readonly missing: number
  /** This process's event-loop delay during the run, ms. */
  readonly loopDelayP50: number
  readonly loopDelayP99: number
}

function runCannon(job: CannonJob): Promise<CannonResult> {
  const runs = job.targets.map(
    (t, n) =>
      new Promise<autocannon.Result>((resolve, reject) => {
        let i = 0
        autocannon(
          {
            url: t.url,
            connections: t.connections,
            duration: job.seconds,
            requests: [{ method: 'PUT', body: VALUE, setupRequest: (req) => ({ ...req, path: `/v1/keys/${job.prefix}-${n}-${i++}?ack=${job.ack}` }) }],
          },
          (err, result) => (err !== null && err !== undefined ? reject(err) : resolve(result)),
        )
      }),
  )
  return Promise.all(runs).then((rs) => {
    const p50s = rs.map((r) => r.latency.p50).sort((a, b) => a - b)
    return {
      kind: 'cannon',
      ok: rs.map((r) => r['2xx']),
      errors: rs.reduce((a, r) => a + r.errors + r.timeouts + r.non2xx, 0),
      seconds: job.seconds,
      p50: p50s[Math.floor(p50s.length / 2)] ?? NaN,
      p99: Math.max(...rs.map((r) => r.latency.p99)),
    }
  })
}

/** Opens `url`'s watch stream; `onKey` gets every key it reports, with the arrival time. */
function watch(url: string, onKey: (key: string, at: number) => void): Promise<{ close: () => void }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/v1/watch`, { agent: false, headers: { accept: 'text/event-stream' } }, (res: IncomingMessage) => {
      if (res.statusCode !== 200) return reject(new Error(`${url}/v1/watch answered ${res.statusCode}`))
      res.setEncoding('utf8')
      let carry = ''
      res.on('data', (chunk: string) => {
        const at = performance.now()
        const text = carry + chunk
        const end = text.lastIndexOf('\n')
        carry = text.slice(end + 1)
        // Cheap scan: only `key` messages carry `"k":"`; the key is the JSON string after it.
        let from = 0
        for (;;) {
          const k = text.indexOf('"k":"', from)
          if (k === -1 || k > end) break
          const close = text.indexOf('"', k + 5)
          onKey(text.slice(k + 5, close), at)
          from = close + 1
        }
      })
      resolve({ close: () => req.destroy() })
    })
    req.on('error', reject)
    req.end()
  })
}

async function runLag(job: LagJob): Promise<LagResult> {
  const n = job.nodes.length
  const sentAt: number[] = []
  const ackAt: number[] = []
  const origin: number[] = []
  /** seen[node][i]: when node's stream reported write i. */
  const seen = job.nodes.map(() => new Float64Array(Math.ceil(job.rate * job.seconds * 1.2) + 16))
  const prefix = `${job.prefix}-`
  const streams = await Promise.all(
    job.nodes.map((node, j) =>
      watch(node.url, (key, at) => {
        if (!key.startsWith(prefix)) return
        const i = Number(key.slice(prefix.length))
        if (i < seen[j]!.length && seen[j]![i] === 0) seen[j]![i] = at
      }),
    ),
  )
  const agents = job.nodes.map(() => new Agent({ keepAlive: true, maxSockets: 32 }))
  let failed = 0
  let acked = 0
  let inFlight = 0
  const put = (i: number, j: number): void => {
    inFlight++
    const req = request(`${job.nodes[j]!.url}/v1/keys/${prefix}${i}?ack=one`, { method: 'PUT', agent: agents[j], headers: { 'content-length': VALUE.byteLength } }, (res) => {
      res.resume()
      res.on('end', () => {
        inFlight--
        if (res.statusCode === 200) {
          ackAt[i] = performance.now()
          acked++
        } else failed++
      })
    })
    req.on('error', () => {
      inFlight--
      failed++
    })
    req.end(VALUE)
  }
  const delay = monitorEventLoopDelay({ resolution: 5 })
  delay.enable()
  const start = performance.now()
  const total = Math.floor(job.rate * job.seconds)
  let next = 0
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * job.rate))
      while (next < due) {
        const j = next % n
        sentAt[next] = performance.now()
        origin[next] = j
        put(next, j)
        next++
      }
      if (next >= total) resolve()
      else setTimeout(tick, 2)
    }
    tick()
  })
  const sendSeconds = (performance.now() - start) / 1000
  const drainUntil = performance.now() + job.drainMs
  while (performance.now() < drainUntil && (inFlight > 0 || !seen.every((s) => s.subarray(0, total).every((x) => x > 0)))) await new Promise((r) => setTimeout(r, 20))
  delay.disable()
  for (const s of streams) s.close()
  for (const a of agents) a.destroy()

  const ack: number[] = []
  const sameRegion: number[] = []
  const remoteRegion: number[] = []
  const everywhere: number[] = []
  let missing = 0
  for (let i = 0; i < total; i++) {
    if (ackAt[i] === undefined) continue
    const t0 = sentAt[i]!
    ack.push(ackAt[i]! - t0)
    const o = origin[i]!
    let last = 0
    let complete = true
    for (let j = 0; j < n; j++) {
      const at = seen[j]![i]!
      if (at === 0) {
        missing++
        complete = false
        continue
      }
      last = Math.max(last, at - t0)
      if (j === o) continue
      ;(job.nodes[j]!.region === job.nodes[o]!.region ? sameRegion : remoteRegion).push(at - t0)
    }
    if (complete) everywhere.push(last)
  }
  return {
    kind: 'lag',
    sent: total,
    acked,
    failed,
    rate: total / sendSeconds,
    ack,
    sameRegion,
    remoteRegion,
    everywhere,
    missing,
    loopDelayP50: delay.percentile(50) / 1e6,
    loopDelayP99: delay.percentile(99) / 1e6,
  }
}

process.on('message', (job: CannonJob | LagJob | 'stop') => {
  if (job === 'stop') process.exit(0)
  const run = job.mode === 'cannon' ? runCannon(job) : runLag(job)
  run.then(
    (r) => process.send?.(r),
    (err: unknown) => process.send?.({ kind: 'error', message: err instanceof Error ? err.message : String(err) }),
  )
})
process.send?.({ kind: 'ready' })
