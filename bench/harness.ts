/**
 * Shared pieces of the benchmark: the subjects under test, child-process jobs, statistics,
 * machine description and table rendering.
 */
import { fork } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { LRUCache } from 'lru-cache'
import QuickLRU from 'quick-lru'
import { SeededRandom } from '../src/core/random.js'
import { MemoryCache } from '../src/index.js'

export const HOUR = 3_600_000

/** Everything compared somewhere in the benchmark. */
export type Subject = 'stratacache-lru' | 'stratacache-tinylfu' | 'lru-cache' | 'quick-lru' | 'Map' | 'Map-fifo'
export const SUBJECTS: readonly Subject[] = ['stratacache-lru', 'stratacache-tinylfu', 'lru-cache', 'quick-lru', 'Map', 'Map-fifo']

/** The synchronous surface every subject shares. */
export interface SyncCache<K, V> {
  get(key: K): V | undefined
  set(key: K, value: V): unknown
  readonly size: number
}

export interface Made<K, V> {
  readonly cache: SyncCache<K, V>
  /** Releases the cache (MemoryCache.close: stops its sweep timer). */
  readonly close: () => void
}

/** Seed of TinyLFU's admission randomness, so hit ratios are reproducible. */
export const TINYLFU_SEED = 7

/**
 * A subject holding at most `max` entries, with a TTL of one hour on every entry when
 * `ttl`. `Map` is unbounded (the ceiling: no bookkeeping at all) and ignores `ttl`;
 * `Map-fifo` is bounded by first-in-first-out and ignores `ttl` (the floor of set with eviction).
 * quick-lru keeps between maxSize and 2 x maxSize - 1 entries (two generations of Maps), so
 * it gets maxSize = ceil(max / 2): it never holds more than `max` entries, like the others.
 */
export function makeCache<K extends number | string, V extends number | string>(subject: Subject, max: number, ttl: boolean): Made<K, V> {
  switch (subject) {
    case 'stratacache-lru':
    case 'stratacache-tinylfu': {
      const cache = new MemoryCache<K, V>({
        maxEntries: max,
        policy: subject === 'stratacache-lru' ? 'lru' : 'tinylfu',
        random: new SeededRandom(TINYLFU_SEED),
        ...(ttl ? { ttl: HOUR } : {}),
      })
      return { cache, close: () => cache.close() }
    }
    case 'lru-cache': {
      const cache = new LRUCache<K, V>({ max, ...(ttl ? { ttl: HOUR } : {}) })
      return { cache, close: () => cache.clear() }
    }
    case 'quick-lru': {
      const cache = new QuickLRU<K, V>({ maxSize: Math.ceil(max / 2), ...(ttl ? { maxAge: HOUR } : {}) })
      return { cache, close: () => cache.clear() }
    }
    case 'Map': {
      const cache = new Map<K, V>()
      return { cache, close: () => cache.clear() }
    }
    case 'Map-fifo': {
      const cache = new FifoMap<K, V>(max)
      return { cache, close: () => cache.clear() }
    }
  }
}

/**
 * The floor of a bounded cache indexed by a Map: a set of a new key costs one Map.get (is it
 * there?), one Map.set and, when full, one Map.delete of the oldest key, and nothing else
 * (no recency, no TTL). Any such cache, lru-cache and stratacache included, does at least
 * these three Map operations per set with eviction.
 */
class FifoMap<K, V> implements SyncCache<K, V> {
  readonly #map = new Map<K, V>()
  readonly #ring: (K | undefined)[]
  #next = 0

  constructor(readonly max: number) {
    this.#ring = new Array<K | undefined>(max).fill(undefined)
  }

  get size(): number {
    return this.#map.size
  }

  get(key: K): V | undefined {
    return this.#map.get(key)
  }

  set(key: K, value: V): this {
    if (this.#map.get(key) === undefined) {
      const oldest = this.#ring[this.#next]
      if (oldest !== undefined) this.#map.delete(oldest)
      this.#ring[this.#next] = key
      this.#next = this.#next + 1 === this.max ? 0 : this.#next + 1
    }
    this.#map.set(key, value)
    return this
  }

  clear(): void {
    this.#map.clear()
    this.#ring.fill(undefined)
  }
}

// ---- jobs run in a child process ---------------------------------------------------------

export interface GetHitsJob {
  readonly kind: 'get-hits'
  /** Measured side by side in one process, their timed rounds interleaved (see bench/child.ts). */
  readonly subjects: readonly Subject[]
  readonly ttl: boolean
  readonly keys: number
  readonly zipf: number
  readonly streamLength: number
  readonly seed: number
  readonly rounds: number
  /** Target duration of one timed round; a round repeats the stream to reach it. */
  readonly roundMs: number
  readonly warmupMs: number
}

export interface SetEvictJob {
  readonly kind: 'set-evict'
  readonly subjects: readonly Subject[]
  readonly ttl: boolean
  readonly bound: number
  readonly keys: number
  readonly rounds: number
  readonly warmupRounds: number
}

export interface HeapJob {
  readonly kind: 'heap'
  readonly subject: Subject
  readonly ttl: boolean
  readonly entries: number
  readonly valueChars: number
}

export type Job = GetHitsJob | SetEvictJob | HeapJob

export interface SpeedResult {
  readonly kind: 'speed'
  /** Per subject (in the job's order), operations per second of each timed round; round i of every subject ran back to back. */
  readonly rounds: number[][]
  readonly sink: number
}

export interface HeapResult {
  readonly kind: 'heap'
  readonly entries: number
  /** Growth of `heapUsed` per entry while filling the cache. */
  readonly heapUsed: number
  /** Growth of `arrayBuffers` (typed-array backing stores, outside the JS heap) per entry. */
  readonly arrayBuffers: number
  /** `heapUsed` per entry taken by the keys and values themselves (allocated beforehand). */
  readonly payload: number
  readonly sink: number
}

export type JobResult = SpeedResult | HeapResult

function isNumberArray(x: unknown): x is number[] {
  return Array.isArray(x) && x.every((v) => typeof v === 'number')
}

export function isJobResult(x: unknown): x is JobResult {
  if (typeof x !== 'object' || x === null || !('kind' in x)) return false
  const r = x as Record<string, unknown>
  if (r.kind === 'speed') return Array.isArray(r.rounds) && r.rounds.every(isNumberArray) && typeof r.sink === 'number'
  if (r.kind === 'heap') return ['entries', 'heapUsed', 'arrayBuffers', 'payload', 'sink'].every((k) => typeof r[k] === 'number')
  return false
}

const CHILD = fileURLToPath(new URL('./child.js', import.meta.url))
const CHILD_TIMEOUT_MS = 180_000

/** Runs `job` in a fresh `node --expose-gc` process and returns what it reports. */
export function runChild<R extends JobResult>(job: Job, kind: R['kind']): Promise<R> {
  return new Promise((resolve, reject) => {
    const child = fork(CHILD, [JSON.stringify(job)], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    let result: JobResult | undefined
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS)
    child.on('message', (message: unknown) => {
      if (isJobResult(message)) result = message
    })
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      if (result !== undefined && result.kind === kind) resolve(result as R)
      else reject(new Error(`bench child ${job.kind}/${'subject' in job ? job.subject : job.subjects.join('+')} failed (exit ${code ?? signal}) without a ${kind} result`))
    })
  })
}

// ---- statistics ------------------------------------------------------------------------

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Half the min-max range, relative to the median: a rough "±" of the rounds. */
export function spread(xs: readonly number[]): number {
  if (xs.length < 2) return 0
  return (Math.max(...xs) - Math.min(...xs)) / 2 / median(xs)
}

/** Full GC, a few times (finalizers and weak references can free more on a second pass). */
export function fullGc(): void {
  const gc = globalThis.gc
  if (gc === undefined) throw new Error('the benchmark needs --expose-gc (npm run bench passes it)')
  for (let i = 0; i < 3; i++) gc()
}

// ---- machine and output ------------------------------------------------------------------

export interface Machine {
  readonly cpu: string
  readonly cores: number
  readonly memoryGb: number
  readonly node: string
  readonly v8: string
  readonly platform: string
  readonly date: string
  readonly loadavg: readonly number[]
}

export function machine(): Machine {
  const c = cpus()
  return {
    cpu: `${c[0]?.model.trim() ?? 'unknown'}${cpuFamily()}`,
    cores: c.length,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
  }
}

/**
 * ' (family F model M)' from /proc/cpuinfo on Linux, else ''. A VM often names its CPU only
 * "AMD EPYC" or the like; the family and model tell which generation ran the numbers, and
 * ratios to Map-based peers differ between generations (docs/benchmarks.md).
 */
function cpuFamily(): string {
  try {
    const info = readFileSync('/proc/cpuinfo', 'latin1')
    const family = /^cpu family\s*:\s*(\d+)/m.exec(info)?.[1]
    const model = /^model\s*:\s*(\d+)/m.exec(info)?.[1]
    return family === undefined || model === undefined ? '' : ` (family ${family} model ${model})`
  } catch {
    return ''
  }
}

export interface Table {
  readonly title: string
  readonly columns: readonly string[]
  /** 'l' or 'r' per column. */
  readonly align: string
  readonly rows: ReadonlyArray<readonly string[]>
  notes?: readonly string[]
}

/** A GitHub-flavoured Markdown table (readable in a terminal, pasteable into docs/benchmarks.md). */
export function renderTable(t: Table): string {
  const widths = t.columns.map((c, i) => Math.max(c.length, 3, ...t.rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => (t.align[i] === 'r' ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`
  const rule = `|${widths.map((w, i) => (t.align[i] === 'r' ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`
  const out = [`#### ${t.title}`, '', line(t.columns), rule, ...t.rows.map(line)]
  if (t.notes !== undefined && t.notes.length > 0) out.push('', ...t.notes)
  return out.join('\n')
}

export function fmtOps(n: number): string {
  if (!Number.isFinite(n)) return String(n)
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(1)
}

/** A count as 100k, 2.5k, 1M, 1.4M. */
export function fmtCount(n: number): string {
  const trim = (x: number): string => String(Math.round(x * 10) / 10)
  return n >= 1e6 ? `${trim(n / 1e6)}M` : n >= 1e3 ? `${trim(n / 1e3)}k` : String(n)
}

export function fmtRatio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}x` : '-'
}

export function fmtPct(x: number, digits = 2): string {
  return `${(100 * x).toFixed(digits)}%`
}
