/**
 * One measurement in a fresh process (forked by harness.runChild with --expose-gc): the job
 * comes as JSON in argv[2], the result goes back over IPC.
 *
 * Speed jobs measure a small group of subjects (a stratacache engine and lru-cache) side by
 * side: each gets its own cache and its own copy of the timed loop (so every hot call site
 * stays monomorphic, as in a process of its own), and their timed rounds are interleaved,
 * back to back. On a shared VM whose speed drifts by up to 2x from one second or process to
 * the next, the ratio of two rounds run back to back is far steadier than the ratio of two
 * processes' medians; run.ts reports the median of those paired ratios.
 *
 * Timing rules: inputs (keys, streams) are precomputed; every loop is warmed up untimed
 * before it is timed (so it runs optimized code); every result flows into a sink that is
 * sent back and checked, so no loop can be eliminated as dead code.
 */
import { zipfStream } from './traces.js'
import {
  fullGc,
  type GetHitsJob,
  type HeapJob,
  type HeapResult,
  type Job,
  makeCache,
  type SetEvictJob,
  type SpeedResult,
  type SyncCache,
} from './harness.js'

function now(): number {
  return Number(process.hrtime.bigint()) / 1e6
}

/** The timed loop of `get hits`: one get per stream element. */
function getLoop(cache: SyncCache<string, number>, stream: readonly string[]): number {
  let sink = 0
  for (let i = 0; i < stream.length; i++) {
    const v = cache.get(stream[i])
    if (v !== undefined) sink += v
    else sink -= 1_000_000_000 // a miss: reported as a broken run below
  }
  return sink
}

/**
 * A copy of `loop` with its own bytecode and type feedback. Several caches share one process
 * here, and a loop shared between them would see several cache classes and go polymorphic;
 * a copy per subject keeps every hot call site monomorphic, as in a process of its own.
 */
function ownCopy<F>(loop: F): F {
  return new Function(`return ${String(loop)}`)() as F
}

/** Rounds of all subjects interleaved: round i of every subject runs back to back, in an order that alternates. */
function interleaved(count: number, rounds: number, round: (subject: number) => number): number[][] {
  const out: number[][] = Array.from({ length: count }, () => [])
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < count; k++) {
      const i = r % 2 === 0 ? k : count - 1 - k
      out[i].push(round(i))
    }
  }
  return out
}

function getHits(job: GetHitsJob): SpeedResult {
  const keys = Array.from({ length: job.keys }, (_, i) => `key:${i}`)
  const ids = zipfStream(job.keys, job.zipf, job.streamLength, job.seed)
  const stream = Array.from(ids, (id) => keys[id])
  let expected = 0
  for (let i = 0; i < ids.length; i++) expected += ids[i]
  let sink = 0
  const subjects = job.subjects.map((subject) => {
    const { cache, close } = makeCache<string, number>(subject, job.keys, job.ttl)
    for (let i = 0; i < job.keys; i++) cache.set(keys[i], i)
    if (cache.size !== job.keys) throw new Error(`${subject} holds ${cache.size} of ${job.keys} keys after the fill`)
    const loop = ownCopy(getLoop)
    const pass = (): void => {
      const s = loop(cache, stream)
      if (s !== expected) throw new Error(`${subject}: a get missed or returned a wrong value (sum ${s}, expected ${expected})`)
      sink += s / expected
    }
    // Warm-up: at least 3 passes and warmupMs.
    const w0 = now()
    for (let p = 0; p < 3 || now() - w0 < job.warmupMs; p++) pass()
    // Calibrate: repeat the stream so that a round lasts about roundMs.
    const c0 = now()
    pass()
    const passes = Math.max(1, Math.round(job.roundMs / Math.max(now() - c0, 0.01)))
    return { pass, passes, close }
  })
  const rounds = interleaved(subjects.length, job.rounds, (i) => {
    const { pass, passes } = subjects[i]
    const t0 = process.hrtime.bigint()
    for (let p = 0; p < passes; p++) pass()
    const ns = Number(process.hrtime.bigint() - t0)
    return (passes * stream.length) / (ns / 1e9)
  })
  for (const s of subjects) s.close()
  return { kind: 'speed', rounds, sink }
}

/** The timed loop of `set with eviction`: every key once. */
function setLoop(cache: SyncCache<string, number>, keys: readonly string[]): number {
  for (let i = 0; i < keys.length; i++) cache.set(keys[i], i)
  return cache.size
}

/**
 * One cache for all rounds: the cache holds the last `bound` keys of the previous round, so
 * every set of the next round is still a new key that evicts one. (A fresh cache per round
 * is a trap: once a forced GC collects the previous instance, V8 drops the optimized code
 * that embedded it ("weak objects") and, after a few such rounds, stops optimizing the loop,
 * making every subject about 3x slower for reasons that have nothing to do with caches.)
 */
function setEvict(job: SetEvictJob): SpeedResult {
  const keys = Array.from({ length: job.keys }, (_, i) => `key:${i}`)
  let sink = 0
  const subjects = job.subjects.map((subject) => {
    const { cache, close } = makeCache<string, number>(subject, job.bound, job.ttl)
    const loop = ownCopy(setLoop)
    const round = (): void => {
      const size = loop(cache, keys)
      if (size !== job.bound) throw new Error(`${subject} holds ${size} entries after a round, expected ${job.bound}`)
      if (cache.get(keys[keys.length - 1]) !== keys.length - 1) throw new Error(`${subject} lost the last key set`)
      sink += size
    }
    for (let r = 0; r < job.warmupRounds; r++) round()
    return { round, close }
  })
  const rounds = interleaved(subjects.length, job.rounds, (i) => {
    fullGc() // the previous round's garbage is not charged to this one
    const t0 = process.hrtime.bigint()
    subjects[i].round()
    const ns = Number(process.hrtime.bigint() - t0)
    return keys.length / (ns / 1e9)
  })
  for (const s of subjects) s.close()
  return { kind: 'speed', rounds, sink }
}

/**
 * A distinct, flat string of exactly `chars` ASCII characters (one byte each in V8's
 * one-byte representation): the decimal index, padded with '.'. Built through a Buffer so
 * that it is a sequential string, not a rope of concatenations.
 */
function value(i: number, chars: number, scratch: Buffer): string {
  scratch.fill(0x2e)
  scratch.write(String(i), 'latin1')
  return scratch.toString('latin1', 0, chars)
}

function heap(job: HeapJob): HeapResult {
  const n = job.entries
  fullGc()
  const m0 = process.memoryUsage()
  // Keys and values exist before the cache: only its own structure is charged to it.
  const keys = Array.from({ length: n }, (_, i) => `key:${i}`)
  const scratch = Buffer.alloc(job.valueChars)
  const values = Array.from({ length: n }, (_, i) => value(i, job.valueChars, scratch))
  fullGc()
  const m1 = process.memoryUsage()
  const { cache, close } = makeCache<string, string>(job.subject, n, job.ttl)
  for (let i = 0; i < n; i++) cache.set(keys[i], values[i])
  fullGc()
  const m2 = process.memoryUsage()
  if (cache.size !== n) throw new Error(`${job.subject} holds ${cache.size} of ${n} entries`)
  let sink = 0
  for (let i = 0; i < n; i += 997) {
    const v = cache.get(keys[i])
    if (v !== values[i]) throw new Error(`${job.subject} lost entry ${i}`)
    sink += v.length
  }
  const result: HeapResult = {
    kind: 'heap',
    entries: n,
    heapUsed: (m2.heapUsed - m1.heapUsed) / n,
    arrayBuffers: (m2.arrayBuffers - m1.arrayBuffers) / n,
    payload: (m1.heapUsed - m0.heapUsed) / n,
    sink,
  }
  close()
  return result
}

function parseJob(raw: string | undefined): Job {
  if (raw === undefined) throw new Error('usage: node --expose-gc dist/bench/child.js <job JSON>')
  const job: unknown = JSON.parse(raw)
  if (typeof job !== 'object' || job === null || !('kind' in job) || !('subject' in job || 'subjects' in job)) throw new Error(`bad job: ${raw}`)
  return job as Job
}

function main(): void {
  const job = parseJob(process.argv[2])
  const result = job.kind === 'get-hits' ? getHits(job) : job.kind === 'set-evict' ? setEvict(job) : heap(job)
  if (process.send === undefined) {
    console.log(JSON.stringify(result))
    return
  }
  process.send(result, () => process.disconnect())
}

main()
