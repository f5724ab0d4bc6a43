/**
 * The `facade` suite: `getOrSet` hits against the facades people use today, and the cost
 * of dependency tags.
 *
 * - getOrSet hits: 100k keys, a Zipf(0.99) stream, every key cached (TTL 1 h). Each subject
 *   runs in a fresh process (this file, forked with a job in argv[2]); "sequential" awaits
 *   one call after another, "64 concurrent" runs 64 async callers over the same stream.
 *   "detectRecursion off" shows what AsyncLocalStorage's promise hooks cost on Node 20.
 *   Peers: lru-cache `fetch()` (with a fetchMethod), bentocache `getOrSet` (memory layer
 *   only), cache-manager `wrap` (its default in-memory store).
 * - tag check cost: reads of entries carrying 1, 10 or 1,000 tags, right after an unrelated
 *   invalidation (each read walks its tags once, then is O(1) again), and in steady state.
 * - invalidation cost: `invalidateTags(['org:1'])` with 100k dependent entries.
 */
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { createCache as createCacheManager } from 'cache-manager'
import { LRUCache } from 'lru-cache'
import { createCache } from '../src/cache/cache.js'
import { fmtOps, fmtRatio, median, type Table } from './harness.js'
import { zipfStream } from './traces.js'

type FacadeSubject = 'stratacache getOrSet' | 'stratacache, detectRecursion off' | 'lru-cache fetch' | 'bentocache getOrSet' | 'cache-manager wrap'
const FACADE_SUBJECTS: readonly FacadeSubject[] = ['stratacache getOrSet', 'stratacache, detectRecursion off', 'lru-cache fetch', 'bentocache getOrSet', 'cache-manager wrap']

interface FacadeJob {
  subject: FacadeSubject
  concurrency: number
  keys: number
  streamLength: number
  rounds: number
}

type Get = (key: string) => Promise<unknown>

async function makeGet(subject: FacadeSubject, keys: number): Promise<Get> {
  const load = async (k: string): Promise<number> => Number(k.slice(4))
  switch (subject) {
    case 'stratacache getOrSet': {
      const cache = createCache<number>({ memory: { maxEntries: keys }, defaults: { ttl: '1h' } })
      return (k) => cache.getOrSet(k, () => load(k))
    }
    case 'stratacache, detectRecursion off': {
      const cache = createCache<number>({ memory: { maxEntries: keys }, defaults: { ttl: '1h' }, flight: { detectRecursion: false } })
      return (k) => cache.getOrSet(k, () => load(k))
    }
    case 'lru-cache fetch': {
      const cache = new LRUCache<string, number>({ max: keys, ttl: 3_600_000, fetchMethod: load })
      return (k) => cache.fetch(k)
    }
    case 'bentocache getOrSet': {
      const bento = new BentoCache({ default: 'memory', stores: { memory: bentostore().useL1Layer(memoryDriver({ maxItems: keys })) } })
      return (k) => bento.getOrSet({ key: k, factory: () => load(k), ttl: '1h' })
    }
    case 'cache-manager wrap': {
      const cache = createCacheManager()
      return (k) => cache.wrap(k, () => load(k), 3_600_000)
    }
  }
}

async function runJob(job: FacadeJob): Promise<number[]> {
  const names = Array.from({ length: job.keys }, (_, i) => `key:${i}`)
  const stream = Array.from(zipfStream(job.keys, 0.99, job.streamLength, 42), (i) => names[i])
  const get = await makeGet(job.subject, job.keys)
  for (const k of names) await get(k)
  const pass = async (): Promise<number> => {
    let sink = 0
    if (job.concurrency === 1) {
      for (let i = 0; i < stream.length; i++) sink += (await get(stream[i])) as number
    } else {
      let next = 0
      const worker = async (): Promise<void> => {
        while (next < stream.length) sink += (await get(stream[next++])) as number
      }
      await Promise.all(Array.from({ length: job.concurrency }, worker))
    }
    return sink
  }
  await pass() // warm-up
  const rates: number[] = []
  for (let r = 0; r < job.rounds; r++) {
    const t = performance.now()
    const sink = await pass()
    rates.push(stream.length / ((performance.now() - t) / 1000))
    if (!(sink > 0)) throw new Error(`${job.subject}: no values returned`)
  }
  return rates
}

function child(job: FacadeJob): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const p = fork(fileURLToPath(import.meta.url), [JSON.stringify(job)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    p.once('message', (m) => resolve(m as number[]))
    p.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`facade child ${job.subject} exited ${code}`))))
    p.once('error', reject)
  })
}

/** Reads per second of entries carrying `tagCount` tags, after an unrelated invalidation. */
async function tagCheckCost(tagCount: number, entries: number): Promise<{ afterInvalidation: number; steady: number }> {
  const cache = createCache<number>({ memory: { maxEntries: entries }, defaults: { ttl: '1h' } })
  const tags = Array.from({ length: tagCount }, (_, i) => `org:${i % 7}:team:${i}`)
  for (let i = 0; i < entries; i++) await cache.set(`k${i}`, i, { tags })
  const read = async (): Promise<number> => {
    const t = performance.now()
    for (let i = 0; i < entries; i++) await cache.getOrSet(`k${i}`, () => -1, { tags })
    return entries / ((performance.now() - t) / 1000)
  }
  await read()
  await cache.invalidateTags(['unrelated:tag'])
  const afterInvalidation = await read()
  const steady = await read()
  await cache.close()
  return { afterInvalidation, steady }
}

async function invalidationCost(entries: number): Promise<{ invalidateMs: number; entries: number }> {
  const cache = createCache<number>({ memory: { maxEntries: entries }, defaults: { ttl: '1h' } })
  for (let i = 0; i < entries; i++) await cache.set(`u${i}`, i, { tags: [`org:1:user:${i}`] })
  const t = performance.now()
  await cache.invalidateTags(['org:1'])
  const invalidateMs = performance.now() - t
  if ((await cache.get('u0')) !== undefined) throw new Error('invalidation did not reach a dependent entry')
  await cache.close()
  return { invalidateMs, entries }
}

export async function facadeSuite(c: { quick: boolean; passes: number }): Promise<{ params: Readonly<Record<string, unknown>>; results: Readonly<Record<string, unknown>>; tables: Table[] }> {
  const base = { keys: 100_000, streamLength: c.quick ? 100_000 : 500_000, rounds: c.quick ? 2 : 4 }
  const results: Record<string, Record<string, number>> = {}
  const tables: Table[] = []
  for (const concurrency of [1, 64]) {
    const rates = new Map<FacadeSubject, number[]>()
    for (let p = 0; p < c.passes; p++) {
      for (const subject of FACADE_SUBJECTS) rates.set(subject, [...(rates.get(subject) ?? []), ...(await child({ ...base, subject, concurrency }))])
    }
    const med = new Map([...rates].map(([s, r]) => [s, median(r)]))
    const lru = med.get('lru-cache fetch')!
    const label = concurrency === 1 ? 'sequential' : `${concurrency} concurrent callers`
    results[label] = Object.fromEntries(med)
    tables.push({
      title: `getOrSet hits, ${label}: 100k keys, Zipf(0.99), TTL 1 h`,
      columns: ['subject', 'hits/s (median)', 'vs lru-cache fetch', 'target'],
      align: 'lrrl',
      rows: FACADE_SUBJECTS.map((s) => [s, fmtOps(med.get(s)!), fmtRatio(med.get(s)! / lru), s.startsWith('stratacache') ? `>= 1.0x: ${med.get(s)! >= lru ? 'met' : 'NOT met'}` : '']),
    })
  }
  const tagRows: string[][] = []
  for (const n of [1, 10, 1000]) {
    const r = await tagCheckCost(n, n === 1000 ? (c.quick ? 500 : 2000) : c.quick ? 5000 : 20000)
    results[`tags ${n}`] = r
    tagRows.push([String(n), fmtOps(r.afterInvalidation), fmtOps(r.steady)])
  }
  tables.push({
    title: 'tag check cost: getOrSet hits on entries with N tags',
    columns: ['tags per entry', 'reads/s, first read after an invalidation', 'reads/s, steady state'],
    align: 'rrr',
    rows: tagRows,
    notes: ['After any invalidation each entry walks its tags once (O(sum of tag depths)), then reads are O(1) again until the next invalidation.'],
  })
  const inv = await invalidationCost(c.quick ? 20_000 : 100_000)
  results.invalidation = inv
  tables.push({
    title: 'invalidation cost',
    columns: ['dependent entries', 'invalidateTags([org:1])'],
    align: 'rr',
    rows: [[String(inv.entries), `${inv.invalidateMs.toFixed(3)} ms`]],
    notes: ['O(depth of the tag): independent of how many entries depend on it; entries are dropped lazily when next read.'],
  })
  return { params: { ...base, passes: c.passes }, results, tables }
}

// Child mode: run one job and send the rates back.
if (process.argv[2] !== undefined && process.send !== undefined) {
  const job = JSON.parse(process.argv[2]) as FacadeJob
  runJob(job).then(
    (rates) => {
      process.send!(rates, () => process.exit(0))
    },
    (err: unknown) => {
      console.error(err)
      process.exit(1)
    },
  )
}
