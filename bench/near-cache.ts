/**
 * The `near-cache` suite (issue P10, "Benchmarks"): the client's near cache against one
 * real node process (`npm start`'s entry, a free loopback port, its own temp data dir).
 *
 * 1. Hits: `await client.get(k)` served by the near cache vs `await memoryCache.get(k)` (a
 *    `MemoryCache`, LRU, same keys, same value objects), rounds interleaved back to back in
 *    this process; each round is timed in CPU time (process.cpuUsage, user + system), so a
 *    round that other processes preempt is not charged for the wait. The ratio is the median
 *    of the paired per-round ratios. Target: >= 0.8x the awaited `MemoryCache.get` (the
 *    client's `get` is async, so the same call shape is the fair pairing; the bare
 *    synchronous `MemoryCache.get` is printed for reference).
 * 2. A read that misses the near cache vs a bare HTTP GET to the node (an undici `Pool`,
 *    same keys, same 100-byte values), one of each in turn: the miss is the whole path
 *    (lookup, claim, GET pinned to the watched node, fill, LRU eviction: the near cache
 *    holds 64 entries and the reads cycle over 2,000 keys, so each one misses).
 * 3. Invalidation delay: another client writes a key the near cache holds; from just before
 *    the write is sent until the key's message reaches the near cache (the `filter` seam sees
 *    it, and the entry is dropped in the same synchronous step), p50/p99, next to the
 *    write's own round trip.
 */
import { Pool } from 'undici'
import { fileURLToPath } from 'node:url'
import { createClient } from '../src/client/index.js'
import { MemoryCache } from '../src/memory/memory-cache.js'
import type { WatchMessage } from '../src/protocol/watch.js'
import { send, tempDir } from '../test/support/node-fixtures.js'
import { awaitReady, freePort, killProcess, spawnServer } from '../test/support/server-process.js'
import { fmtOps, fmtRatio, median, type Table } from './harness.js'

const ENTRY = fileURLToPath(new URL('../src/cli/serve-main.js', import.meta.url))

/** The target of the issue: near-cache hits >= this x `MemoryCache.get` hits. */
export const HIT_TARGET = 0.8

interface Sizes {
  readonly keys: number
  readonly hitOps: number
  readonly hitRounds: number
  readonly missPairs: number
  readonly invalidations: number
}
const FULL: Sizes = { keys: 1000, hitOps: 200_000, hitRounds: 15, missPairs: 3000, invalidations: 500 }
const QUICK: Sizes = { keys: 1000, hitOps: 50_000, hitRounds: 5, missPairs: 400, invalidations: 100 }

/** Untimed rounds first: the loops reach their optimized code only after a few hundred thousand calls. */
const WARMUP_ROUNDS = 3

/** Each timed loop is a small function of its own (as a caller's would be), optimized on its own. */
async function nearHits(client: { get(k: string): Promise<unknown> }, keys: readonly string[], n: number): Promise<number> {
  let found = 0
  for (let i = 0; i < n; i++) if ((await client.get(keys[i % keys.length]!)) !== undefined) found++
  return found
}

async function memoryHitsAwaited(mc: MemoryCache<string, unknown>, keys: readonly string[], n: number): Promise<number> {
  let found = 0
  for (let i = 0; i < n; i++) if ((await mc.get(keys[i % keys.length]!)) !== undefined) found++
  return found
}

function memoryHitsBare(mc: MemoryCache<string, unknown>, keys: readonly string[], n: number): number {
  let found = 0
  for (let i = 0; i < n; i++) if (mc.get(keys[i % keys.length]!) !== undefined) found++
  return found
}

/** The p-th percentile of sorted values (nearest rank). */
export function pct(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

const ms = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(3)} ms` : '-')
const cpuNow = (): number => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

/** A lone node as a child process; `stop()` kills it and removes its data dir. */
export async function startLoneNode(): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = tempDir('stratacache-bench-near-')
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const proc = spawnServer(process.execPath, [ENTRY, '--port', String(port), '--data-dir', dir.path, '--disk', '256mb', '--log-level', 'warn'])
  const stop = async (): Promise<void> => {
    if (proc.exit() === undefined) await killProcess(proc)
    dir.remove()
  }
  await awaitReady(proc, { name: 'node', ready: async () => (await send(url, 'GET', '/readyz', undefined, {}, 1000)).status === 200, timeoutMs: 30_000, describe: () => 'node not ready', cleanup: stop, logLines: 40 })
  return { url, stop }
}

export async function nearCacheSuite(c: { quick: boolean }): Promise<{ params: Readonly<Record<string, unknown>>; results: Readonly<Record<string, unknown>>; tables: Table[] }> {
  const s = c.quick ? QUICK : FULL
  const node = await startLoneNode()
  const arrivals = new Map<string, number>()
  const filter = (m: WatchMessage): boolean => {
    if (m.t === 'key') arrivals.set(m.k, performance.now())
    return true
  }
  const writer = createClient({ nodes: [node.url] })
  const client = createClient({ nodes: [node.url], nearCache: { maxEntries: 10_000, ttl: '10m', filter } })
  const small = createClient({ nodes: [node.url], nearCache: { maxEntries: 64, ttl: '10m' } })
  const pool = new Pool(node.url, { connections: 16 })
  const mc = new MemoryCache<string, unknown>({ maxEntries: 10_000, ttl: '10m', policy: 'lru' })
  try {
    const value = 'v'.repeat(100)
    const missKeys = 2000
    const keys = Array.from({ length: Math.max(s.keys, missKeys) }, (_, i) => `bench:${i}`)
    for (let i = 0; i < keys.length; i += 500) await writer.mset(keys.slice(i, i + 500).map((key) => ({ key, value })))
    const live = async (cl: typeof client): Promise<void> => {
      const t = performance.now()
      while (cl.nearCacheStats()!.state !== 'live') {
        if (performance.now() - t > 10_000) throw new Error('near cache never went live')
        await new Promise((r) => setTimeout(r, 10))
      }
    }
    await live(client)
    await live(small)
    const hitKeys = keys.slice(0, s.keys)
    for (const k of hitKeys) {
      const e = await client.get(k)
      mc.set(k, e)
    }

    // 1. hits, CPU time per round, paired
    const near: number[] = []
    const mcAwait: number[] = []
    const mcBare: number[] = []
    const ratios: number[] = []
    let sink = 0
    const hitsBefore = client.nearCacheStats()!.hits
    for (let round = 0; round < s.hitRounds + WARMUP_ROUNDS; round++) {
      let t = cpuNow()
      sink += await nearHits(client, hitKeys, s.hitOps)
      const a = s.hitOps / ((cpuNow() - t) / 1000)
      t = cpuNow()
      sink += await memoryHitsAwaited(mc, hitKeys, s.hitOps)
      const b = s.hitOps / ((cpuNow() - t) / 1000)
      t = cpuNow()
      sink += memoryHitsBare(mc, hitKeys, s.hitOps)
      const d = s.hitOps / ((cpuNow() - t) / 1000)
      if (round < WARMUP_ROUNDS) continue
      near.push(a)
      mcAwait.push(b)
      mcBare.push(d)
      ratios.push(a / b)
    }
    const hitsCounted = client.nearCacheStats()!.hits - hitsBefore
    const expectedHits = (s.hitRounds + WARMUP_ROUNDS) * s.hitOps
    const ratio = median(ratios)
    const bareRatio = median(near.map((x, i) => x / mcBare[i]!))
    const met = ratio >= HIT_TARGET

    // 2. a near-cache miss vs a bare GET, one of each in turn
    const miss: number[] = []
    const bare: number[] = []
    const refusedBefore = small.nearCacheStats()!
    for (let i = 0; i < s.missPairs + 100; i++) {
      const k = keys[i % missKeys]!
      let t = performance.now()
      sink += (await small.get(k))?.value.length ?? 0
      const m = performance.now() - t
      t = performance.now()
      const res = await pool.request({ method: 'GET', path: `/v1/keys/${encodeURIComponent(k)}` })
      sink += (await res.body.arrayBuffer()).byteLength
      const b = performance.now() - t
      if (i < 100) continue // warm-up
      miss.push(m)
      bare.push(b)
    }
    const smallStats = small.nearCacheStats()!
    const missesCounted = smallStats.misses - refusedBefore.misses
    const pairRatios = miss.map((m, i) => m / bare[i]!)
    miss.sort((x, y) => x - y)
    bare.sort((x, y) => x - y)

    // 3. invalidation delay
    const delays: number[] = []
    const writes: number[] = []
    for (let i = 0; i < s.invalidations; i++) {
      const key = hitKeys[i % s.keys]!
      await client.get(key) // held again (the previous round's write dropped it)
      arrivals.delete(key)
      const t0 = performance.now()
      await writer.set(key, `w${i}`)
      writes.push(performance.now() - t0)
      const deadline = t0 + 5000
      while (!arrivals.has(key) && performance.now() < deadline) await new Promise((r) => setImmediate(r))
      delays.push((arrivals.get(key) ?? NaN) - t0)
    }
    const lost = delays.filter((d) => Number.isNaN(d)).length
    const okDelays = delays.filter((d) => !Number.isNaN(d)).sort((x, y) => x - y)
    writes.sort((x, y) => x - y)

    const results = {
      hits: { nearCpuOpsPerSec: median(near), memoryCacheAwaitedCpuOpsPerSec: median(mcAwait), memoryCacheBareCpuOpsPerSec: median(mcBare), ratioVsAwaited: ratio, ratioVsBare: bareRatio, ratioRange: [Math.min(...ratios), Math.max(...ratios)], target: HIT_TARGET, met, hitsCounted, expectedHits },
      miss: { p50: pct(miss, 50), p99: pct(miss, 99), bareP50: pct(bare, 50), bareP99: pct(bare, 99), pairedRatioMedian: median(pairRatios), missesCounted, pairs: miss.length },
      invalidation: { p50: pct(okDelays, 50), p99: pct(okDelays, 99), max: okDelays[okDelays.length - 1], writeP50: pct(writes, 50), writeP99: pct(writes, 99), samples: okDelays.length, lost },
      sink,
    }
    const tables: Table[] = [
      {
        title: `near-cache hits vs MemoryCache.get hits: ${s.keys} keys, 100-byte values, ${s.hitRounds} rounds of ${s.hitOps.toLocaleString('en-US')} gets each, interleaved, CPU time`,
        columns: ['subject', 'gets per CPU-second (median)', 'near cache / subject (paired median)', 'target'],
        align: 'lrrl',
        rows: [
          ['client.get, near-cache hit (awaited)', fmtOps(median(near)), '', ''],
          ['MemoryCache.get (awaited)', fmtOps(median(mcAwait)), fmtRatio(ratio), `>= ${HIT_TARGET}x: ${met ? 'met' : 'NOT met'}`],
          ['MemoryCache.get (bare, synchronous; reference)', fmtOps(median(mcBare)), fmtRatio(bareRatio), ''],
        ],
        notes: [
          `Paired ratio range over the rounds: ${fmtRatio(Math.min(...ratios))} to ${fmtRatio(Math.max(...ratios))}. Near-cache hits counted by the client: ${hitsCounted.toLocaleString('en-US')} of ${expectedHits.toLocaleString('en-US')} gets (a shortfall means some reads went to the node).`,
          `CPU time (process.cpuUsage) per round, so preemption by other processes is not charged; rounds of the three subjects run back to back in this process, after ${WARMUP_ROUNDS} untimed rounds.`,
        ],
      },
      {
        title: `a read that misses the near cache vs a bare HTTP GET, one node process on loopback, ${miss.length} pairs, 100-byte values`,
        columns: ['read', 'p50', 'p99'],
        align: 'lrr',
        rows: [
          ['client.get, near-cache miss (claim, GET to the watched node, fill)', ms(pct(miss, 50)), ms(pct(miss, 99))],
          ['bare undici GET /v1/keys/:key', ms(pct(bare, 50)), ms(pct(bare, 99))],
          ['miss / bare (p50 ratio; paired median)', `${fmtRatio(pct(miss, 50) / pct(bare, 50))}; ${fmtRatio(median(pairRatios))}`, fmtRatio(pct(miss, 99) / pct(bare, 99))],
        ],
        notes: [`The near cache holds 64 entries and the reads cycle over ${missKeys} keys: every read misses (${missesCounted} misses counted) and its fill evicts one entry. Wall-clock latency: loaded-machine figures; the ratio is the comparison.`],
      },
      {
        title: `invalidation delay: another client's write -> the near cache drops the key, loopback, ${okDelays.length} writes`,
        columns: ['measure', 'p50', 'p99', 'max'],
        align: 'lrrr',
        rows: [
          ['write sent -> near cache dropped', ms(pct(okDelays, 50)), ms(pct(okDelays, 99)), ms(okDelays[okDelays.length - 1] ?? NaN)],
          ["the write's own round trip (PUT answered)", ms(pct(writes, 50)), ms(pct(writes, 99)), ms(writes[writes.length - 1] ?? NaN)],
        ],
        notes: [`From just before \`set\` is called on a second client until the key's message reaches the near cache (it drops the entry in the same step)${lost > 0 ? `; ${lost} messages did not arrive within 5 s (a gap: the next meta drops the partition)` : ''}. The node publishes after the write is applied, so the delay is about the write's round trip.`],
      },
    ]
    return { params: { ...s, missKeys, nearMaxEntries: { hits: 10_000, miss: 64 }, node: 'one child process (serve-main), loopback' }, results, tables }
  } finally {
    mc.close()
    await pool.close()
    await Promise.all([client.close(), writer.close(), small.close()])
    await node.stop()
  }
}
