/**
 * The engine alone under durable PUTs (decisions 0320, 0321, 0365): a `NodeEngine` on an
 * `lmdbStore` (exclusive, as the node opens it; store-call timeout 5 s, the node's default)
 * in this process, `--writers` concurrent writers, each awaiting its PUT (committed to
 * LMDB, fsync included) before the next; 100-byte values, each its own buffer as over HTTP.
 * Prints one JSON line: CPU per PUT (process: every thread, LMDB's commits and V8's GC
 * helpers included; main: this thread alone, from /proc), young-generation collections per
 * 1,000 PUTs (load-independent: they count allocation), the rate and the load average.
 *
 *   node --expose-gc dist/bench/engine-put.js [--mode distinct|hot|rewrite] [--n 20000]
 *     [--writers 64 | --rate R] [--store lmdb|memory] [--dist DIR]   (DIR: another build's dist/, for paired before/after runs)
 *
 *   --heap FILE: also writes a sampling heap profile of the measured PUTs (collected objects
 *   included: where the allocation comes from).
 *
 *   --pairs K --dist-a DIR --dist-b DIR: runs A and B alternately K times, each in a fresh
 *   process, and prints every run and the medians (A then B, then B then A, ...).
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { PerformanceObserver, constants } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? fallback : process.argv[i + 1]!
}

const here = dirname(fileURLToPath(import.meta.url))
const mode = arg('mode', 'distinct')
const n = Number(arg('n', '20000'))
const writers = Number(arg('writers', '64'))
const pairs = Number(arg('pairs', '0'))

interface Run {
  cpu: number
  main: number
  scavenges: number
  rate: number
  load: number
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

/** A thread's CPU time, µs (utime + stime of /proc/self/task/<tid>/stat; 10 ms resolution). */
function threadCpu(tid: string): { name: string; us: number } {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), us: (Number(fields[11]) + Number(fields[12])) * 10_000 }
}

const mainCpu = (): number => threadCpu(String(process.pid)).us

/** CPU µs by thread name (threads of one name summed). */
function threadsCpu(): Map<string, number> {
  const out = new Map<string, number>()
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const t = threadCpu(tid)
      out.set(tid === String(process.pid) ? "main" : `${t.name}#${tid}`, t.us)
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out
}

if (pairs > 0) {
  const a = resolve(arg('dist-a', join(here, '..')))
  const b = resolve(arg('dist-b', join(here, '..')))
  const runs: Record<'A' | 'B', Run[]> = { A: [], B: [] }
  for (let p = 0; p < pairs; p++) {
    const order: Array<['A' | 'B', string]> = p % 2 === 0 ? [['A', a], ['B', b]] : [['B', b], ['A', a]]
    for (const [name, dist] of order) {
      const out = execFileSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--store', arg('store', 'lmdb'), '--mode', mode, '--n', String(n), '--writers', String(writers), '--rate', arg('rate', '0'), '--dist', dist], { encoding: 'utf8' })
      const run = JSON.parse(out.trim().split('\n').pop()!) as Run
      runs[name].push(run)
      console.log(name, JSON.stringify(run))
    }
  }
  for (const name of ['A', 'B'] as const) {
    const rs = runs[name]
    const f = (k: keyof Run): string => `${median(rs.map((r) => r[k])).toFixed(1)} (${Math.min(...rs.map((r) => r[k])).toFixed(1)}–${Math.max(...rs.map((r) => r[k])).toFixed(1)})`
    console.log(`${name} median (min–max): cpu µs/PUT ${f('cpu')}, main µs/PUT ${f('main')}, scavenges/1k ${f('scavenges')}, rate ${f('rate')}, load ${f('load')}`)
  }
  const ratio = runs.B.map((r, i) => r.cpu / runs.A[i]!.cpu)
  console.log(`B/A cpu per pair: ${ratio.map((r) => r.toFixed(2)).join(' ')}; median ${median(ratio).toFixed(2)}`)
} else {
  const dist = resolve(arg('dist', join(here, '..')))
  const { NodeEngine } = (await import(join(dist, 'src/server/node-engine.js'))) as typeof import('../src/server/node-engine.js')
  const { lmdbStore } = (await import(join(dist, 'src/store/lmdb-store.js'))) as typeof import('../src/store/lmdb-store.js')
  const { systemClock } = (await import(join(dist, 'src/core/system-clock.js'))) as typeof import('../src/core/system-clock.js')
  const dir = mkdtempSync(join(tmpdir(), 'engine-put-'))
  // --store memory: the same engine on memoryStore (no LMDB: what the keyspace and engine cost alone).
  const { memoryStore } = (await import(join(dist, 'src/store/memory-store.js'))) as typeof import('../src/store/memory-store.js')
  const store = arg('store', 'lmdb') === 'memory' ? memoryStore({ clock: systemClock }) : lmdbStore({ path: dir, clock: systemClock, exclusive: true })
  const engine = await NodeEngine.open({ store, clock: systemClock, memoryBytes: 64 * 1024 * 1024, maxValueBytes: 1024 * 1024, storeTimeoutMs: 5000 })
  const keyOf = (phase: string, i: number): string => (mode === 'hot' ? 'hot' : mode === 'rewrite' ? `r${i % 1000}` : `${phase}${i}`)
  // --rate R: open loop, R PUTs per second issued on a 1 ms timer whatever is still under way
  // (as autocannon's fixed-rate runs over HTTP), instead of --writers closed-loop writers.
  const rate = Number(arg('rate', '0'))
  const drive = async (phase: string, count: number): Promise<void> => {
    if (rate > 0) {
      const started = performance.now()
      const writes: Promise<unknown>[] = []
      await new Promise<void>((resolve) => {
        const tick = setInterval(() => {
          const due = Math.min(count, Math.floor(((performance.now() - started) * rate) / 1000))
          while (writes.length < due) {
            const i = writes.length
            writes.push(engine.put({ key: keyOf(phase, i), value: Buffer.alloc(100, i & 0xff), ttl: null, tags: [] }))
          }
          if (writes.length >= count) {
            clearInterval(tick)
            resolve()
          }
        }, 1)
      })
      await Promise.all(writes)
      return
    }
    let next = 0
    await Promise.all(
      Array.from({ length: writers }, async () => {
        while (next < count) {
          const i = next++
          await engine.put({ key: keyOf(phase, i), value: Buffer.alloc(100, i & 0xff), ttl: null, tags: [] })
        }
      }),
    )
  }
  await drive('w', Math.min(n, 5000))
  ;(globalThis as { gc?: () => void }).gc?.()
  let scavenges = 0
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++
  })
  obs.observe({ entryTypes: ['gc'] })
  // --heap FILE: a sampling heap profile of the measured PUTs, collected objects included (where allocation comes from).
  const heapFile = arg('heap', '')
  const session = heapFile === '' ? undefined : new Session()
  const post = (method: string, params?: object): Promise<unknown> => new Promise((ok, fail) => session!.post(method, params, (err, res) => (err === null ? ok(res) : fail(err))))
  if (session !== undefined) {
    session.connect()
    await post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
  }
  const threads0 = threadsCpu()
  const cpu0 = process.cpuUsage()
  const main0 = mainCpu()
  const t0 = performance.now()
  await drive('k', n)
  const ms = performance.now() - t0
  const cpu1 = process.cpuUsage(cpu0)
  const main1 = mainCpu()
  const threads: Record<string, number> = {}
  for (const [name, us] of threadsCpu()) threads[name] = Math.round(((us - (threads0.get(name) ?? 0)) / n) * 10) / 10
  if (session !== undefined) {
    const { profile } = (await post('HeapProfiler.stopSampling')) as { profile: unknown }
    writeFileSync(heapFile, JSON.stringify(profile))
    session.disconnect()
  }
  // GC entries are delivered on a later turn of the event loop.
  await new Promise((r) => setTimeout(r, 100))
  obs.disconnect()
  await engine.close()
  rmSync(dir, { recursive: true, force: true })
  const run: Run = {
    cpu: (cpu1.user + cpu1.system) / n,
    main: (main1 - main0) / n,
    scavenges: (scavenges * 1000) / n,
    rate: Math.round((n / ms) * 1000),
    load: loadavg()[0]!,
  }
  console.log(JSON.stringify({ ...run, threads }))
}
