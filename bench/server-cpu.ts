/**
 * Server CPU per request at a fixed request rate, paired: each pass starts a bare
 * node:http server, a stratacache node and fastify 5 serving the node's GET route with the
 * node's admission (bench/server-child.ts), each in its own process, and drives them one
 * at a time, in an order that rotates from pass to pass, each by autocannon (64
 * connections, `--rate` requests/s, `--seconds`). Each server's idle CPU (measured over
 * 1 s just before its run) is subtracted. Then the node takes durable PUTs at the same
 * rate, over distinct keys and on one hot key. Ratios are taken within a pass (the runs of
 * one pass are seconds apart) and their median over the passes is printed, so a load that
 * changes slowly cancels out. Decisions 0240 (GET layer) and 0320 (PUT path) cite it.
 *
 *   node dist/bench/server-cpu.js [--passes 5] [--rate 1500] [--seconds 5]   (--rate 0: as fast as autocannon goes)
 */
import { loadavg } from 'node:os'
import { cannon, fill, KEYS, withServer, type Measure } from './server.js'

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? fallback : Number(process.argv[i + 1])
}

const passes = arg('passes', 5)
const rate = arg('rate', 1500)
const seconds = arg('seconds', 5)
const IDLE_MS = 1000

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

/** CPU per request net of the server's idle CPU over the same time (µs). */
function net(m: Measure, idlePerMs: number): number {
  return m.cpuPerRequest - (idlePerMs * seconds * 1000) / Math.max(1, m.rps * seconds)
}

interface Pass {
  bare: number
  get: number
  fastify: number
  put: number
  hot: number
  rps: Record<string, number>
  load: number
}

const getPath = (i: number): string => `/v1/keys/k${i % KEYS}`
const results: Pass[] = []
for (let p = 0; p < passes; p++) {
  const load = loadavg()[0]!
  const pass = await withServer('bare', (barePort, bareCpu) =>
    withServer('node', (nodePort, nodeCpu) =>
      withServer('fastify', async (fastPort, fastCpu) => {
        await fill(nodePort)
        const subjects = [
          { port: barePort, cpu: bareCpu, pathOf: (): string => '/' },
          { port: nodePort, cpu: nodeCpu, pathOf: getPath },
          { port: fastPort, cpu: fastCpu, pathOf: getPath },
        ]
        const measured: number[] = []
        const rps: number[] = []
        // One subject at a time (a single load generator keeps its rate), order rotated per pass.
        for (let k = 0; k < subjects.length; k++) {
          const at = (k + p) % subjects.length
          const s = subjects[at]!
          await cannon(s.port, 'GET', s.pathOf, 1, undefined, rate)
          const idle0 = await s.cpu()
          await new Promise((r) => setTimeout(r, IDLE_MS))
          const idle = ((await s.cpu()) - idle0) / IDLE_MS
          const m = await cannon(s.port, 'GET', s.pathOf, seconds, s.cpu, rate)
          if (m.errors > 0) throw new Error(`errors in a run: ${JSON.stringify(m)}`)
          measured[at] = net(m, idle)
          rps[at] = Math.round(m.rps)
        }
        const nodeIdle0 = await nodeCpu()
        await new Promise((r) => setTimeout(r, IDLE_MS))
        const nodeIdle = ((await nodeCpu()) - nodeIdle0) / IDLE_MS
        const put = await cannon(nodePort, 'PUT', (i) => `/v1/keys/p${p}-${i}`, seconds, nodeCpu, rate)
        const hot = await cannon(nodePort, 'PUT', () => '/v1/keys/hot', seconds, nodeCpu, rate)
        for (const m of [put, hot]) if (m.errors > 0) throw new Error(`errors in a run: ${JSON.stringify(m)}`)
        return {
          bare: measured[0]!,
          get: measured[1]!,
          fastify: measured[2]!,
          put: net(put, nodeIdle),
          hot: net(hot, nodeIdle),
          rps: { bare: rps[0]!, get: rps[1]!, fastify: rps[2]!, put: Math.round(put.rps), hot: Math.round(hot.rps) },
          load,
        } satisfies Pass
      }),
    ),
  )
  results.push(pass)
  const r = (x: number): string => x.toFixed(0)
  console.log(`pass ${p + 1} (load ${load.toFixed(1)}): µs/request bare ${r(pass.bare)}, node GET ${r(pass.get)}, fastify GET ${r(pass.fastify)}, node PUT distinct ${r(pass.put)}, PUT hot ${r(pass.hot)}; req/s ${JSON.stringify(pass.rps)}`)
}
const ratio = (a: keyof Pass, b: keyof Pass): string => median(results.map((x) => (x[a] as number) / (x[b] as number))).toFixed(2)
console.log(`rate ${rate} req/s per server, ${seconds} s, ${passes} passes, load ${results.map((x) => x.load.toFixed(1)).join(' ')}`)
console.log(`median µs/request: bare ${median(results.map((x) => x.bare)).toFixed(0)}, node GET ${median(results.map((x) => x.get)).toFixed(0)}, fastify GET ${median(results.map((x) => x.fastify)).toFixed(0)}, PUT distinct ${median(results.map((x) => x.put)).toFixed(0)}, PUT hot ${median(results.map((x) => x.hot)).toFixed(0)}`)
console.log(`median of paired CPU ratios: node GET / bare ${ratio('get', 'bare')}, fastify GET / bare ${ratio('fastify', 'bare')}, fastify / node GET ${ratio('fastify', 'get')}, PUT distinct / node GET ${ratio('put', 'get')}, PUT hot / PUT distinct ${ratio('hot', 'put')}`)
