/**
 * Near-cache benchmark (not in `npm run bench`): run it by hand after a build,
 *
 *   npx tsc -p tsconfig.json && node dist/bench/near-cache.js
 *
 * One node in this process on a free loopback port (its own temp data dir), then:
 * 1. near-cache hits (`await client.get`) vs `MemoryCache.get` hits (awaited too, and bare),
 *    same keys, same run; target >= 0.8x the awaited MemoryCache;
 * 2. a read that misses the near cache (claim, GET pinned to the watched node, release)
 *    vs a bare undici GET to the node;
 * 3. invalidation delay: another client's write sent -> the key's message applied by the
 *    near cache (p50/p99), next to the write's own latency.
 * Takes about 20 s.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Pool } from 'undici'
import { createClient } from '../src/client/index.js'
import { MemoryCache } from '../src/memory/memory-cache.js'
import { startNode } from '../src/server/index.js'
import type { WatchMessage } from '../src/protocol/watch.js'

const KEYS = 1000
const HIT_OPS = 500_000

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'stratacache-bench-near-'))
  const node = await startNode({ host: '127.0.0.1', port: 0, dataDir, logLevel: 'silent', disk: '256mb', watchMetaInterval: '1s' })
  const arrivals = new Map<string, number>()
  const filter = (m: WatchMessage): boolean => {
    if (m.t === 'key') arrivals.set(m.k, performance.now())
    return true
  }
  const writer = createClient({ nodes: [node.url] })
  const client = createClient({ nodes: [node.url], nearCache: { maxEntries: 10_000, ttl: '10m', filter } })
  try {
    const keys = Array.from({ length: KEYS }, (_, i) => `bench:${i}`)
    for (let i = 0; i < KEYS; i += 500) await writer.mset(keys.slice(i, i + 500).map((key) => ({ key, value: 'v'.repeat(100) })))
    while (client.nearCacheStats()!.state !== 'live') await new Promise((r) => setTimeout(r, 10))
    for (const k of keys) await client.get(k)
    const mc = new MemoryCache<string, unknown>({ maxEntries: 10_000, ttl: '10m', policy: 'lru' })
    for (const k of keys) mc.set(k, { value: 'v'.repeat(100) })

    // 1. hits
    const rounds: Record<string, number[]> = { near: [], mcAwait: [], mcSync: [] }
    for (let round = 0; round < 5; round++) {
      let t = performance.now()
      for (let i = 0; i < HIT_OPS; i++) await client.get(keys[i % KEYS]!)
      rounds.near!.push(HIT_OPS / ((performance.now() - t) / 1000))
      t = performance.now()
      for (let i = 0; i < HIT_OPS; i++) await mc.get(keys[i % KEYS]!)
      rounds.mcAwait!.push(HIT_OPS / ((performance.now() - t) / 1000))
      t = performance.now()
      let n = 0
      for (let i = 0; i < HIT_OPS; i++) if (mc.get(keys[i % KEYS]!) !== undefined) n++
      rounds.mcSync!.push(n / ((performance.now() - t) / 1000))
    }
    const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
    const near = med(rounds.near!)
    const mcAwait = med(rounds.mcAwait!)
    const mcSync = med(rounds.mcSync!)
    console.log(`hits: near cache ${(near / 1e6).toFixed(2)} M/s, MemoryCache.get awaited ${(mcAwait / 1e6).toFixed(2)} M/s (ratio ${(near / mcAwait).toFixed(2)}x), MemoryCache.get bare ${(mcSync / 1e6).toFixed(2)} M/s (ratio ${(near / mcSync).toFixed(2)}x); hits counted ${client.nearCacheStats()!.hits}`)

    // 2. a near-cache miss (absent keys are never cached) vs a bare GET
    const pool = new Pool(node.url, { connections: 16 })
    const lat = { miss: [] as number[], bare: [] as number[] }
    for (let i = 0; i < 3000; i++) {
      let t = performance.now()
      await client.get(`absent:${i % 100}`)
      lat.miss.push(performance.now() - t)
      t = performance.now()
      const res = await pool.request({ method: 'GET', path: `/v1/keys/absent%3A${i % 100}` })
      await res.body.text()
      lat.bare.push(performance.now() - t)
    }
    await pool.close()
    for (const name of ['miss', 'bare'] as const) lat[name].sort((a, b) => a - b)
    console.log(`miss: near-cache miss p50 ${pct(lat.miss, 50).toFixed(3)} ms p99 ${pct(lat.miss, 99).toFixed(3)} ms; bare undici GET p50 ${pct(lat.bare, 50).toFixed(3)} ms p99 ${pct(lat.bare, 99).toFixed(3)} ms`)

    // 3. invalidation delay
    const delays: number[] = []
    const writes: number[] = []
    for (let i = 0; i < 500; i++) {
      const key = keys[i % KEYS]!
      arrivals.delete(key)
      const t0 = performance.now()
      await writer.set(key, `w${i}`)
      writes.push(performance.now() - t0)
      while (!arrivals.has(key)) await new Promise((r) => setImmediate(r))
      delays.push(arrivals.get(key)! - t0)
    }
    delays.sort((a, b) => a - b)
    writes.sort((a, b) => a - b)
    console.log(`invalidation: write sent -> near cache dropped p50 ${pct(delays, 50).toFixed(2)} ms p99 ${pct(delays, 99).toFixed(2)} ms (the write itself: p50 ${pct(writes, 50).toFixed(2)} ms p99 ${pct(writes, 99).toFixed(2)} ms)`)
    mc.close()
  } finally {
    await client.close()
    await writer.close()
    await node.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

await main()
