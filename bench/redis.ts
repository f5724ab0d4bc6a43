/**
 * The `redis` suite: stratacache's L2 path against raw ioredis and bentocache's Redis
 * driver, on a redis-server this suite starts on a free port (no persistence).
 *
 * - L2 reads: 10k keys held only in Redis, 64 concurrent callers, a uniform random stream.
 *   raw ioredis `get` with auto-pipelining (the ceiling); stratacache `getOrSet` with its L1
 *   cut to one entry, so every read goes to Redis and back through the codec; bentocache
 *   `getOrSet` with only its Redis layer. Each subject runs in a fresh child process.
 * - Batch reads: `getOrSetMany` of 100 keys held in Redis: Redis commands per call (from
 *   INFO) and latency, next to 100 auto-pipelined GETs and one MGET.
 * - Cross-process stampede: 4 processes x 250 callers on one missing key; total factory
 *   calls. stratacache with `lock: 'distributed'` against bentocache (whose stampede
 *   protection is per process).
 */
import { fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { redisDriver } from 'bentocache/drivers/redis'
import { Redis } from 'ioredis'
import { createCache } from '../src/cache/cache.js'
import { lmdbStore } from '../src/store/lmdb-store.js'
import { redisStore } from '../src/store/redis-store.js'
import type { Store } from '../src/store/types.js'
import { rawCommand, startRedisServer } from '../test/support/redis-server.js'
import { fmtOps, fmtRatio, median, type Table } from './harness.js'

type Subject = 'ioredis GET' | 'stratacache getOrSet' | 'bentocache getOrSet' | 'stratacache getOrSet (lmdb)'
const SUBJECTS: readonly Subject[] = ['ioredis GET', 'stratacache getOrSet', 'bentocache getOrSet', 'stratacache getOrSet (lmdb)']

interface ReadJob {
  kind: 'read'
  subject: Subject
  port: number
  keys: number
  reads: number
  concurrency: number
  rounds: number
}

interface StampedeJob {
  kind: 'stampede'
  subject: 'stratacache' | 'bentocache'
  port: number
  key: string
  callers: number
}

type Get = (key: string) => Promise<unknown>

interface Client {
  get: Get
  close(): Promise<void>
}

const value = (i: number): { id: number; name: string; tags: string[] } => ({ id: i, name: `user ${i}`, tags: ['a', 'b'] })

/**
 * stratacache's facade over `store` with its L1 cut to one entry (every read goes to the
 * store and back through the codec), `keys` values preloaded; `cleanup` runs after closing.
 */
async function facadeClient(store: Store, keys: number, cleanup: () => void): Promise<Client> {
  const cache = createCache<unknown>({ store, memory: { maxEntries: 1, policy: 'lru' }, defaults: { ttl: '1h' } })
  await Promise.all(Array.from({ length: keys }, (_, i) => cache.set(String(i), value(i))))
  return {
    get: (k) => cache.getOrSet(k, () => value(Number(k))),
    close: async () => {
      await cache.close()
      await store.close()
      cleanup()
    },
  }
}

async function makeClient(subject: Subject, port: number, keys: number): Promise<Client> {
  const url = `redis://127.0.0.1:${port}`
  switch (subject) {
    case 'ioredis GET': {
      const redis = new Redis(url, { enableAutoPipelining: true })
      for (let i = 0; i < keys; i++) void redis.set(`raw:${i}`, JSON.stringify(value(i)))
      await redis.ping()
      return {
        get: async (k) => {
          const s = await redis.get(`raw:${k}`)
          return s === null ? undefined : (JSON.parse(s) as unknown)
        },
        close: async () => void (await redis.quit()),
      }
    }
    case 'stratacache getOrSet':
      return facadeClient(redisStore({ url, prefix: 'sc:' }), keys, () => {})
    case 'stratacache getOrSet (lmdb)': {
      // For reference: the same facade path over the embedded store instead of Redis.
      const path = mkdtempSync(join(tmpdir(), 'stratacache-bench-lmdb-'))
      return facadeClient(lmdbStore({ path }), keys, () => rmSync(path, { recursive: true, force: true }))
    }
    case 'bentocache getOrSet': {
      const bento = new BentoCache({ default: 'redis', stores: { redis: bentostore().useL2Layer(redisDriver({ connection: { host: '127.0.0.1', port } })) } })
      await Promise.all(Array.from({ length: keys }, (_, i) => bento.set({ key: `b${i}`, value: value(i), ttl: '1h' })))
      return {
        get: (k) => bento.getOrSet({ key: `b${k}`, factory: () => value(Number(k)), ttl: '1h' }),
        close: async () => void (await bento.disconnectAll()),
      }
    }
  }
}

async function runRead(job: ReadJob): Promise<number[]> {
  const client = await makeClient(job.subject, job.port, job.keys)
  // A fixed pseudo-random stream (same for every subject).
  let seed = 12345
  const stream = Array.from({ length: job.reads }, () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    return String(seed % job.keys)
  })
  const pass = async (): Promise<void> => {
    let next = 0
    let misses = 0
    const worker = async (): Promise<void> => {
      while (next < stream.length) if ((await client.get(stream[next++] as string)) === undefined) misses++
    }
    await Promise.all(Array.from({ length: job.concurrency }, worker))
    if (misses > 0) throw new Error(`${job.subject}: ${misses} reads found nothing`)
  }
  await pass()
  const rates: number[] = []
  for (let r = 0; r < job.rounds; r++) {
    const t = performance.now()
    await pass()
    rates.push(stream.length / ((performance.now() - t) / 1000))
  }
  await client.close()
  return rates
}

async function runStampede(job: StampedeJob): Promise<number> {
  const url = `redis://127.0.0.1:${job.port}`
  let calls = 0
  const factory = async (): Promise<string> => {
    calls++
    await new Promise((resolve) => setTimeout(resolve, 200))
    return 'value'
  }
  let get: () => Promise<unknown>
  let close: () => Promise<void>
  if (job.subject === 'stratacache') {
    const store = redisStore({ url, prefix: 'stampede:' })
    const cache = createCache<string>({ store, lock: { mode: 'distributed', wait: '20s' }, l2: { timeout: '2s' } })
    get = () => cache.getOrSet(job.key, factory)
    close = async () => {
      await cache.close()
      await store.close()
    }
  } else {
    const bento = new BentoCache({ default: 'r', stores: { r: bentostore().useL1Layer(memoryDriver({ maxItems: 1000 })).useL2Layer(redisDriver({ connection: { host: '127.0.0.1', port: job.port } })) } })
    get = () => bento.getOrSet({ key: job.key, factory, ttl: '1h' })
    close = async () => void (await bento.disconnectAll())
  }
  await new Promise<void>((resolve) => {
    process.once('message', () => resolve())
    process.send?.('ready')
  })
  await Promise.all(Array.from({ length: job.callers }, get))
  await close()
  return calls
}

function child<T>(job: ReadJob | StampedeJob, onReady?: () => void): { result: Promise<T>; go: () => void } {
  const p = fork(fileURLToPath(import.meta.url), [JSON.stringify(job)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const result = new Promise<T>((resolve, reject) => {
    p.on('message', (m) => {
      if (m === 'ready') onReady?.()
      else resolve(m as T)
    })
    p.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`redis bench child exited ${code}`))))
    p.once('error', reject)
  })
  return { result, go: () => p.send('go') }
}

async function commandsFor(port: number, fn: () => Promise<unknown>): Promise<number> {
  const count = async (): Promise<number> => {
    const info = String(await rawCommand(port, ['INFO', 'stats']))
    return Number(/total_commands_processed:(\d+)/.exec(info)?.[1])
  }
  const before = await count()
  await fn()
  // INFO itself is one command.
  return (await count()) - before - 1
}

async function batchReads(port: number, quick: boolean): Promise<{ rows: string[][]; results: Record<string, number> }> {
  const url = `redis://127.0.0.1:${port}`
  const store = redisStore({ url, prefix: 'batch:' })
  const cache = createCache<unknown>({ store, memory: { maxEntries: 1, policy: 'lru' } })
  const redis = new Redis(url, { enableAutoPipelining: true })
  const keys = Array.from({ length: 100 }, (_, i) => String(i))
  await Promise.all(keys.map((k) => cache.set(k, value(Number(k)))))
  await Promise.all(keys.map((k) => redis.set(`raw:${k}`, JSON.stringify(value(Number(k))))))
  const ours = () => cache.getOrSetMany(keys, () => new Map())
  const gets = () => Promise.all(keys.map((k) => redis.get(`raw:${k}`)))
  const mget = () => redis.mget(keys.map((k) => `raw:${k}`))
  const commands = { ours: await commandsFor(port, ours), gets: await commandsFor(port, gets), mget: await commandsFor(port, mget) }
  const time = async (fn: () => Promise<unknown>): Promise<number> => {
    const n = quick ? 200 : 2000
    for (let i = 0; i < 50; i++) await fn()
    const t = performance.now()
    for (let i = 0; i < n; i++) await fn()
    return ((performance.now() - t) * 1000) / n
  }
  const us = { ours: await time(ours), gets: await time(gets), mget: await time(mget) }
  await cache.close()
  await store.close()
  await redis.quit()
  return {
    rows: [
      ['stratacache getOrSetMany(100)', String(commands.ours), `${us.ours.toFixed(0)} µs`],
      ['ioredis: 100 GETs (auto-pipelined)', String(commands.gets), `${us.gets.toFixed(0)} µs`],
      ['ioredis: one MGET of 100', String(commands.mget), `${us.mget.toFixed(0)} µs`],
    ],
    results: { oursCommands: commands.ours, oursUs: us.ours, getsUs: us.gets, mgetUs: us.mget },
  }
}

async function stampede(port: number, subject: 'stratacache' | 'bentocache'): Promise<number> {
  let ready = 0
  const children: Array<{ result: Promise<number>; go: () => void }> = []
  const allReady = new Promise<void>((resolve) => {
    for (let i = 0; i < 4; i++) {
      children.push(
        child<number>({ kind: 'stampede', subject, port, key: `hot-${subject}`, callers: 250 }, () => {
          if (++ready === 4) resolve()
        }),
      )
    }
  })
  await allReady
  for (const c of children) c.go()
  const calls = await Promise.all(children.map((c) => c.result))
  return calls.reduce((a, b) => a + b, 0)
}

export async function redisSuite(c: { quick: boolean; passes: number }): Promise<{ params: Readonly<Record<string, unknown>>; results: Readonly<Record<string, unknown>>; tables: Table[] }> {
  const server = await startRedisServer()
  try {
    const base = { port: server.port, keys: 10_000, reads: c.quick ? 20_000 : 100_000, concurrency: 64, rounds: c.quick ? 2 : 4 }
    const rates = new Map<Subject, number[]>()
    for (let p = 0; p < c.passes; p++) {
      for (const subject of SUBJECTS) rates.set(subject, [...(rates.get(subject) ?? []), ...(await child<number[]>({ kind: 'read', subject, ...base }).result)])
    }
    const med = new Map([...rates].map(([s, r]) => [s, median(r)]))
    const raw = med.get('ioredis GET') as number
    const bento = med.get('bentocache getOrSet') as number
    const ours = med.get('stratacache getOrSet') as number
    const tables: Table[] = [
      {
        title: 'L2 reads: 10k keys held only in Redis, 64 concurrent callers, uniform stream',
        columns: ['subject', 'reads/s (median)', 'vs raw ioredis', 'vs bentocache', 'target'],
        align: 'lrrrl',
        rows: SUBJECTS.map((s) => [
          s,
          fmtOps(med.get(s) as number),
          fmtRatio((med.get(s) as number) / raw),
          fmtRatio((med.get(s) as number) / bento),
          s === 'stratacache getOrSet' ? `>= 0.8x raw: ${ours >= 0.8 * raw ? 'met' : 'NOT met'}; >= 2x bento: ${ours >= 2 * bento ? 'met' : 'NOT met'}` : '',
        ]),
        notes: [
          'stratacache runs with a one-entry L1 so that every read goes to Redis and through the codec (msgpack); raw ioredis stores JSON strings and parses them.',
          'stratacache getOrSet (lmdb): the same one-entry L1 over lmdbStore on local disk instead of Redis (for reference; no target).',
        ],
      },
    ]
    const batch = await batchReads(server.port, c.quick)
    tables.push({ title: 'batch reads: 100 keys held in Redis', columns: ['call', 'Redis commands', 'latency (mean)'], align: 'lrr', rows: batch.rows })
    const stampedes = { stratacache: await stampede(server.port, 'stratacache'), bentocache: await stampede(server.port, 'bentocache') }
    tables.push({
      title: 'cross-process stampede: 4 processes x 250 callers on one missing key (factory takes 200 ms)',
      columns: ['subject', 'factory calls in total'],
      align: 'lr',
      rows: [
        ["stratacache, lock: 'distributed'", String(stampedes.stratacache)],
        ['bentocache (per-process stampede protection)', String(stampedes.bentocache)],
      ],
    })
    return { params: { ...base, passes: c.passes }, results: { reads: Object.fromEntries(med), batch: batch.results, stampede: stampedes }, tables }
  } finally {
    await server.stop()
  }
}

// Child mode: run one job and send the result back.
if (process.argv[2] !== undefined && process.send !== undefined) {
  const job = JSON.parse(process.argv[2]) as ReadJob | StampedeJob
  const work: Promise<unknown> = job.kind === 'read' ? runRead(job) : runStampede(job)
  work.then(
    (result) => {
      process.send!(result as object, () => process.exit(0))
    },
    (err: unknown) => {
      console.error(err)
      process.exit(1)
    },
  )
}
