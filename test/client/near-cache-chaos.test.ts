/**
 * The near cache under chaos, against a real node on loopback: 10 % of invalidation
 * messages dropped (the link's `filter` seam, seeded), the stream stalled (a TCP proxy
 * holds its bytes) and restored, the node restarted on the same data dir (new sourceId).
 * A writer writes increasing values straight to the node; a reader with a near cache reads
 * through the proxy. A history checker measures the real staleness of every read: how long
 * before the read began a newer value had been acknowledged. With sequence tracking it
 * stays within the stated bound (3 meta intervals + slack); without it the same run breaks
 * the bound (asserted too: the tracking is what keeps it).
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as yieldLoop } from 'node:timers/promises'
import { after, test } from 'node:test'
import { SeededRandom } from '../../src/core/random.js'
import { createClient } from '../../src/client/index.js'
import type { WatchMessage } from '../../src/protocol/watch.js'
import { startTestNode, type TestNode } from '../support/node-fixture.js'
import { TcpProxy } from '../support/tcp-proxy.js'

const META_MS = 100
/** The stated bound: a silent stream is declared lost after 3 intervals; slack for a loaded 2-core machine. */
const BOUND_MS = 3 * META_MS + 400
const KEYS = 40
const RUN_MS = 4000

interface Write {
  readonly key: number
  readonly value: number
  readonly ackAt: number
}
interface Read {
  readonly key: number
  readonly value: number
  readonly startAt: number
}

/** Staleness of a read: time since the first write newer than what it returned was acknowledged, before the read began (0 if none). */
function maxStaleness(writes: readonly Write[], reads: readonly Read[]): { max: number; stale: number } {
  const byKey = new Map<number, Write[]>()
  for (const w of writes) {
    let list = byKey.get(w.key)
    if (list === undefined) byKey.set(w.key, (list = []))
    list.push(w)
  }
  let max = 0
  let stale = 0
  for (const r of reads) {
    let first = Infinity
    for (const w of byKey.get(r.key) ?? []) if (w.value > r.value && w.ackAt < r.startAt && w.ackAt < first) first = w.ackAt
    if (first !== Infinity) {
      stale++
      max = Math.max(max, r.startAt - first)
    }
  }
  return { max, stale }
}

const dirs: string[] = []
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

async function run(trackSequences: boolean, seed: number): Promise<{ max: number; stale: number; writes: number; reads: number; hits: number; gaps: number; flushes: number; dropped: number }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'stratacache-near-'))
  dirs.push(dataDir)
  let node: TestNode = await startTestNode({ dataDir, watchMetaInterval: META_MS })
  const port = node.node.port
  const proxy = await TcpProxy.start(port)
  const random = new SeededRandom(seed)
  let dropped = 0
  const filter = (m: WatchMessage): boolean => {
    if (m.t !== 'key' && m.t !== 'all') return true
    if (random.next() < 0.1) {
      dropped++
      return false
    }
    return true
  }
  const cleanup = async (): Promise<void> => {
    await proxy.close().catch(() => undefined)
    await node.node.close().catch(() => undefined)
  }
  try {
  const writer = createClient({ nodes: [node.url], timeout: 1000, retry: false })
  const reader = createClient({ nodes: [`http://127.0.0.1:${proxy.port}`], timeout: 300, retry: false, nearCache: { maxEntries: 1000, ttl: '60s', trackSequences, filter } })
  const writes: Write[] = []
  const reads: Read[] = []
  let counter = 0
  for (let k = 0; k < KEYS; k++) {
    const value = ++counter
    await writer.set(`k${k}`, String(value))
    writes.push({ key: k, value, ackAt: performance.now() })
  }
  const started = performance.now()
  let stop = false
  const writing = (async () => {
    while (!stop) {
      const key = Math.floor(random.next() * KEYS)
      const value = ++counter
      try {
        await writer.set(`k${key}`, String(value))
        writes.push({ key, value, ackAt: performance.now() })
      } catch {
        // the node is restarting: not acknowledged
      }
      await new Promise((r) => setTimeout(r, 3))
    }
  })()
  const reading = (async () => {
    while (!stop) {
      const key = Math.floor(random.next() * KEYS)
      const startAt = performance.now()
      try {
        const e = await reader.get(`k${key}`)
        reads.push({ key, value: e === undefined ? -1 : Number(e.value.toString()), startAt })
      } catch {
        // stalled or restarting: a failed read is not a stale one
      }
      await yieldLoop()
    }
  })()
  const at = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, started + ms - performance.now())))
  await at(1000)
  proxy.pause() // the stream goes silent (and so do the reader's requests)
  await at(1800)
  proxy.resume()
  await at(2500)
  await node.node.close() // restart on the same data dir and port: a new sourceId
  node = await startTestNode({ dataDir, port, watchMetaInterval: META_MS })
  await at(RUN_MS)
  stop = true
  await Promise.all([writing, reading])
  const s = reader.nearCacheStats()!
  await reader.close()
  await writer.close()
  return { ...maxStaleness(writes, reads), writes: writes.length, reads: reads.length, hits: s.hits, gaps: s.gaps, flushes: s.flushes, dropped }
  } finally {
    await cleanup()
  }
}

test('near cache under chaos: staleness within the bound with sequence tracking, not without', { timeout: 60_000 }, async () => {
  const tracked = await run(true, 7)
  console.log('tracked', JSON.stringify(tracked))
  assert.ok(tracked.dropped >= 5, `the seam dropped messages (${tracked.dropped})`)
  assert.ok(tracked.hits > 1000, `the near cache answered reads (${tracked.hits} hits)`)
  assert.ok(tracked.gaps > 0, 'gaps were found')
  assert.ok(tracked.flushes >= 1, 'the restart (new sourceId) flushed')
  assert.ok(tracked.max <= BOUND_MS, `max staleness ${tracked.max.toFixed(0)} ms within ${BOUND_MS} ms`)

  const blind = await run(false, 7)
  console.log('untracked', JSON.stringify(blind))
  assert.ok(blind.max > BOUND_MS, `without tracking the bound breaks (max staleness ${blind.max.toFixed(0)} ms)`)
})
