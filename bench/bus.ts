/**
 * The `bus` suite: invalidation propagation per bus on loopback.
 *
 * - Propagation latency: cache A deletes a key; we time from the call to the moment
 *   process B's Bus hands the message to B's cache (the L1 drop happens in that same
 *   call). Sequential: one delete in flight at a time. p50 / p99 / max.
 * - Tag invalidations per second: A runs `invalidateTags([tag])` with 64 concurrent callers
 *   (distinct tags); the rate is counted until B has observed every one (the publish queue
 *   merges concurrent invalidations into fewer messages; the message count is shown).
 *
 * A and B are two caches in this one process, each with its own Bus and transport (own
 * connections for Redis), so the figure includes the broker round trip but both ends share
 * one event loop. Add a bus with one line in BUSES.
 */
import type { BusListener } from '../src/bus/bus.js'
import { createBus } from '../src/bus/bus.js'
import { MemoryBusHub, memoryTransport } from '../src/bus/memory-transport.js'
import { redisTransport } from '../src/bus/redis-transport.js'
import { natsTransport } from '../src/bus/nats-transport.js'
import { amqpTransport } from '../src/bus/amqp-transport.js'
import type { BusTransport } from '../src/bus/types.js'
import { createCache } from '../src/cache/cache.js'
import type { TagVersion } from '../src/bus/message.js'
import { startRedisServer } from '../test/support/redis-server.js'
import { NatsServer } from '../test/support/nats-server.js'
import { RabbitMqServer } from '../test/support/rabbitmq-server.js'
import { fmtOps, type Table } from './harness.js'

interface BusUnderTest {
  /** A new transport, as a separate process would have. */
  transport(): BusTransport
  close(): Promise<void>
}

/** One line per bus: name and how to start its broker. */
const BUSES: ReadonlyArray<readonly [string, () => Promise<BusUnderTest>]> = [
  ['memory', async () => ((hub) => ({ transport: () => memoryTransport({ hub }), close: async () => {} }))(new MemoryBusHub())],
  ['redis', async () => ((server) => ({ transport: () => redisTransport({ url: server.url }), close: () => server.stop() }))(await startRedisServer())],
  ['nats', async () => ((server) => ({ transport: () => natsTransport({ servers: server.url }), close: () => server.stop() }))(await NatsServer.start())],
  ['amqp', async () => ((server) => ({ transport: () => amqpTransport({ url: server.url }), close: () => server.stop() }))(await RabbitMqServer.start())],
]

class Probe implements BusListener {
  onDelete: (() => void) | undefined
  tagsSeen = 0
  onTags: (() => void) | undefined
  delete(): void {
    this.onDelete?.()
  }
  tags(tags: readonly TagVersion[]): void {
    this.tagsSeen += tags.length
    this.onTags?.()
  }
  clear(): void {}
  flush(): void {}
  health(): void {}
}

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number

async function measure(under: BusUnderTest, quick: boolean): Promise<{ p50: number; p99: number; max: number; n: number; tagsPerSec: number; tagMessages: number }> {
  const channel = `bench-${process.pid}`
  const busA = createBus({ transport: under.transport(), channel })
  const busB = createBus({ transport: under.transport(), channel })
  const a = createCache<string>({ bus: busA })
  const b = createCache<string>({ bus: busB })
  const probe = new Probe()
  const detach = busB.attach('cache', probe)
  await Promise.all([busA.start(), busB.start()])
  try {
    const n = quick ? 300 : 3_000
    const latencies: number[] = []
    for (let i = 0; i < n + 50; i++) {
      const arrived = new Promise<number>((resolve) => (probe.onDelete = () => resolve(performance.now())))
      const start = performance.now()
      await a.delete(`k${i % 100}`)
      const at = await arrived
      if (i >= 50) latencies.push(at - start) // the first 50 warm up
    }
    probe.onDelete = undefined
    latencies.sort((x, y) => x - y)
    const tags = quick ? 5_000 : 50_000
    const before = busA.stats().published
    const allSeen = new Promise<void>((resolve) => {
      probe.onTags = () => {
        if (probe.tagsSeen >= tags) resolve()
      }
    })
    const start = performance.now()
    let next = 0
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < tags) await a.invalidateTags([`bench:${next++}`])
      }),
    )
    await allSeen
    const seconds = (performance.now() - start) / 1000
    return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) as number, n, tagsPerSec: tags / seconds, tagMessages: busA.stats().published - before }
  } finally {
    detach()
    await a.close()
    await b.close()
  }
}

export async function busSuite(c: { quick: boolean }): Promise<{ params: Readonly<Record<string, unknown>>; results: Readonly<Record<string, unknown>>; tables: Table[] }> {
  const results: Record<string, unknown> = {}
  const latencyRows: string[][] = []
  const tagRows: string[][] = []
  for (const [name, start] of BUSES) {
    const under = await start()
    try {
      const r = await measure(under, c.quick)
      results[name] = r
      latencyRows.push([name, `${r.p50.toFixed(3)} ms`, `${r.p99.toFixed(3)} ms`, `${r.max.toFixed(3)} ms`, String(r.n)])
      tagRows.push([name, fmtOps(r.tagsPerSec), String(r.tagMessages)])
    } finally {
      await under.close()
    }
  }
  return {
    params: { quick: c.quick },
    results,
    tables: [
      {
        title: 'invalidation propagation: delete in A -> L1 drop in B (loopback, one delete in flight)',
        columns: ['bus', 'p50', 'p99', 'max', 'samples'],
        align: 'lrrrr',
        rows: latencyRows,
        notes: ['A and B are two caches with their own Bus and connections in one process (one event loop for both ends).'],
      },
      {
        title: 'tag invalidations per second, A -> observed in B (64 concurrent callers, distinct tags)',
        columns: ['bus', 'invalidations/s', 'bus messages'],
        align: 'lrr',
        rows: tagRows,
        notes: ['Concurrent invalidations are merged by the publish queue while a message is in flight: fewer messages than invalidations.'],
      },
    ],
  }
}
