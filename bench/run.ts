/**
 * `npm run bench [-- --quick] [--passes N] [suite...]`: stratacache's L1 engine against its peers, all in
 * one run, with ratios. Suites: get-hits, set-evict, heap, hit-ratio, facade, redis, etcd, bus, server, transport, membership, near-cache, ladder, replication (default: all).
 *
 * Method:
 * - Speed (get-hits, set-evict): each stratacache engine is measured next to lru-cache in a
 *   fresh child process of their own (bench/child.ts): precomputed inputs, an untimed
 *   warm-up, then timed rounds of the two interleaved back to back; the whole sequence is
 *   repeated `passes` times (5; get-hits 10). The ratio to lru-cache is the median of the paired per-round
 *   ratios, which this shared VM's drifting speed (up to 2x between processes) barely
 *   moves; "±" is half their min-max range relative to that median. Absolute rates (the
 *   median of all rounds) are printed too, but only the ratios are meant to be compared.
 * - Heap: one child per subject; keys and values are allocated first, then the cache is
 *   filled; the growth of the JS heap *and* of typed-array backing stores (which V8 keeps
 *   outside the heap, and which both lru-cache and stratacache use) is charged to the cache.
 * - Hit ratio: exact, in-process, on deterministic traces; see bench/traces.ts.
 *
 * Output: Markdown tables on stdout; bench/results/latest.json and latest.md
 * (latest-quick.* with --quick). A run of some suites only updates those suites in the files.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { facadeSuite } from './facade.js'
import { redisSuite } from './redis.js'
import { etcdSuite } from './etcd.js'
import { busSuite } from './bus.js'
import { serverSuite } from './server.js'
import { transportSuite } from './transport.js'
import { membershipSuite } from './membership.js'
import { nearCacheSuite } from './near-cache.js'
import { ladderSuite } from './ladder.js'
import { replicationSuite } from './replication.js'
import { HIT_RATIO_SUBJECTS, hitRatios, REAL_TRACE_SUBJECTS } from './hit-ratio.js'
import { ARC_CITATION, ARC_SIZES, ARC_TRACES, defaultTraceDir, loadArcTrace } from './real-traces.js'
import {
  fmtCount,
  fmtOps,
  fmtPct,
  fmtRatio,
  type GetHitsJob,
  type HeapJob,
  type HeapResult,
  type Machine,
  machine,
  median,
  renderTable,
  runChild,
  type SetEvictJob,
  type SpeedResult,
  spread,
  type Subject,
  type Table,
} from './harness.js'
import { loopHeavyTrace, scanMixedTrace, type Trace } from './traces.js'

const SUITES = ['get-hits', 'set-evict', 'heap', 'hit-ratio', 'facade', 'redis', 'etcd', 'bus', 'server', 'transport', 'membership', 'near-cache', 'ladder', 'replication'] as const
type SuiteName = (typeof SUITES)[number]

interface SuiteReport {
  readonly date: string
  readonly quick: boolean
  readonly seconds: number
  readonly params: Readonly<Record<string, unknown>>
  readonly results: unknown
  readonly tables: readonly Table[]
}

interface Config {
  readonly quick: boolean
  readonly passes: number
  /**
   * Passes of the get-hits suite: its paired ratios spread about ±25% from round to round on
   * this VM (set-evict's much less), and its `lru` target sits within a few percent of the
   * measured ratio, so it takes more passes to pin the median down.
   */
  readonly getHitsPasses: number
  readonly getHits: Omit<GetHitsJob, 'kind' | 'subjects' | 'ttl'>
  readonly setEvict: Omit<SetEvictJob, 'kind' | 'subjects' | 'ttl'>
  readonly heap: Omit<HeapJob, 'kind' | 'subject' | 'ttl'>
  readonly traceLength: { readonly scanMixed: number; readonly loopHeavy: number }
}

const FULL: Config = {
  quick: false,
  passes: 5,
  getHitsPasses: 10,
  getHits: { keys: 100_000, zipf: 0.99, streamLength: 1_000_000, seed: 42, rounds: 4, roundMs: 150, warmupMs: 300 },
  setEvict: { bound: 10_000, keys: 1_000_000, rounds: 3, warmupRounds: 2 },
  heap: { entries: 1_000_000, valueChars: 100 },
  traceLength: { scanMixed: 1_400_000, loopHeavy: 1_000_000 },
}

const QUICK: Config = {
  quick: true,
  passes: 1,
  getHitsPasses: 1,
  getHits: { keys: 100_000, zipf: 0.99, streamLength: 200_000, seed: 42, rounds: 3, roundMs: 40, warmupMs: 60 },
  setEvict: { bound: 10_000, keys: 200_000, rounds: 3, warmupRounds: 1 },
  heap: { entries: 100_000, valueChars: 100 },
  traceLength: { scanMixed: 280_000, loopHeavy: 200_000 },
}

/** Cache sizes of the hit-ratio tables; the loop-heavy loop (12k keys) is just above 10k. */
const SCAN_MIXED_SIZES = [1_000, 4_000, 16_000, 64_000]
const LOOP_HEAVY_SIZES = [2_500, 5_000, 10_000, 15_000]

const ENGINES: readonly Subject[] = ['stratacache-lru', 'stratacache-tinylfu', 'lru-cache']

/** Everything every child returned, summed, printed at the end (keeps the work observable). */
let sink = 0

// ---- speed -----------------------------------------------------------------------------------

interface SpeedFigure {
  readonly median: number
  readonly spread: number
  readonly best: number
  readonly rounds: readonly number[]
  /** Median over all rounds of (this subject's round / the lru-cache round run right next to it). */
  readonly vsLruCache: number
  /** Half the min-max range of those paired ratios, relative to their median. */
  readonly ratioSpread: number
}

type SpeedVariants = Record<string, Partial<Record<Subject, SpeedFigure>>>

const REFERENCE: Subject = 'lru-cache'

/**
 * Runs every (variant, group) child `passes` times, interleaved, and pools the rounds. Each
 * group is measured in one process with its rounds interleaved (bench/child.ts) and holds
 * lru-cache, so every subject's ratio to lru-cache comes from rounds run back to back.
 */
async function speed(
  passes: number,
  variants: readonly string[],
  groups: readonly (readonly Subject[])[],
  job: (variant: string, subjects: readonly Subject[]) => GetHitsJob | SetEvictJob,
): Promise<SpeedVariants> {
  const pooled = new Map<string, number[]>()
  const ratios = new Map<string, number[]>()
  const add = (m: Map<string, number[]>, id: string, xs: readonly number[]): void => {
    m.set(id, [...(m.get(id) ?? []), ...xs])
  }
  for (let p = 0; p < passes; p++) {
    for (const variant of variants) {
      for (const group of groups) {
        const r = await runChild<SpeedResult>(job(variant, group), 'speed')
        sink += r.sink
        const ref = r.rounds[group.indexOf(REFERENCE)]
        group.forEach((subject, i) => {
          add(pooled, `${variant}\u0000${subject}`, r.rounds[i])
          add(ratios, `${variant}\u0000${subject}`, r.rounds[i].map((x, k) => x / ref[k]))
        })
        process.stderr.write('.')
      }
    }
  }
  process.stderr.write('\n')
  const out: SpeedVariants = {}
  for (const variant of variants) {
    out[variant] = {}
    for (const subject of new Set(groups.flat())) {
      const rounds = pooled.get(`${variant}\u0000${subject}`) ?? []
      const paired = ratios.get(`${variant}\u0000${subject}`) ?? []
      out[variant][subject] = { median: median(rounds), spread: spread(rounds), best: Math.max(...rounds), rounds, vsLruCache: median(paired), ratioSpread: spread(paired) }
    }
  }
  return out
}

/** Paired ratios spread beyond this (±, relative to their median) flag a table as noisy. */
const NOISY = 0.25

function speedTable(title: string, unit: string, figures: Partial<Record<Subject, SpeedFigure>>, targets: Partial<Record<Subject, number>>): Table {
  const noisy = Object.values(figures).some((f) => f !== undefined && f.ratioSpread > NOISY)
  const ratioOf = (s: Subject): number => figures[s]?.vsLruCache ?? NaN
  const rows = Object.entries(figures).map(([name, f]) => {
    const s = name as Subject
    const target = targets[s]
    const ratio = ratioOf(s)
    return [
      s,
      fmtOps(f?.median ?? NaN),
      fmtOps(f?.best ?? NaN),
      fmtRatio(ratio),
      s === REFERENCE ? '' : `±${fmtPct(f?.ratioSpread ?? 0, 0)}`,
      fmtRatio(ratio / ratioOf('stratacache-lru')),
      fmtRatio(ratio / ratioOf('stratacache-tinylfu')),
      target === undefined ? '' : `>= ${target.toFixed(1)}x vs lru-cache: ${ratio >= target ? 'met' : 'NOT met'}`,
    ]
  })
  return {
    title,
    columns: ['subject', `${unit} (median)`, 'best round', 'vs lru-cache (paired)', '±', 'vs stratacache-lru', 'vs stratacache-tinylfu', 'target'],
    align: 'lrrrrrrl',
    rows,
    notes: [
      'vs lru-cache: the median, over every round, of this subject\'s round divided by the lru-cache round run right next to it in the same process; ' +
        '± is half the range of those ratios. Absolute rates drift with the load of the shared machine; the paired ratios much less.',
      ...(noisy ? [`Noisy: some paired ratios ranged over more than ±${fmtPct(NOISY, 0)} of their median (bursts of other load); rerun when the machine is quiet.`] : []),
    ],
  }
}

/** Each stratacache engine (and the Map ceiling) measured in its own process next to lru-cache. */
const PAIRS: readonly (readonly Subject[])[] = [
  ['stratacache-lru', 'lru-cache'],
  ['stratacache-tinylfu', 'lru-cache'],
]

async function getHitsSuite(c: Config): Promise<Omit<SuiteReport, 'date' | 'quick' | 'seconds'>> {
  const variants = ['ttl', 'no-ttl']
  const figures = await speed(c.getHitsPasses, variants, [...PAIRS, ['Map', 'lru-cache']], (variant, subjects) => ({ kind: 'get-hits' as const, subjects, ttl: variant === 'ttl', ...c.getHits }))
  const g = c.getHits
  const what = `${fmtCount(g.keys)} keys \`key:<i>\`, all held (sized to ${fmtCount(g.keys)}), Zipf(${g.zipf}) stream of ${fmtCount(g.streamLength)} gets, seed ${g.seed}`
  const ttlTable = speedTable(`get hits: ${what}, TTL 1 h on every entry`, 'gets/s', figures.ttl, { 'stratacache-lru': 1.5, 'stratacache-tinylfu': 1.0 })
  const noTtlTable = speedTable(`get hits: same, no TTL (for reference)`, 'gets/s', figures['no-ttl'], {})
  const mapNote = 'Map: a plain Map.get loop, no TTL and no bound: the ceiling.'
  ttlTable.notes = [mapNote, ...(ttlTable.notes ?? [])]
  return { params: { ...g, passes: c.getHitsPasses }, results: figures, tables: [ttlTable, noTtlTable] }
}

async function setEvictSuite(c: Config): Promise<Omit<SuiteReport, 'date' | 'quick' | 'seconds'>> {
  const variants = ['no-ttl', 'ttl']
  const figures = await speed(c.passes, variants, [...PAIRS, ['Map-fifo', 'lru-cache']], (variant, subjects) => ({ kind: 'set-evict' as const, subjects, ttl: variant === 'ttl', ...c.setEvict }))
  const s = c.setEvict
  const what = `bound ${fmtCount(s.bound)} entries, ${fmtCount(s.keys)} distinct keys set in sequence, every set a new key`
  const targets = { 'stratacache-lru': 1.0, 'stratacache-tinylfu': 1.0 }
  const tables = [speedTable(`set with eviction: ${what}`, 'sets/s', figures['no-ttl'], targets), speedTable(`set with eviction: ${what}, TTL 1 h`, 'sets/s', figures.ttl, targets)]
  const floorNote = 'Map-fifo: a Map bounded first-in-first-out, never any TTL (one Map.get, one Map.set and one Map.delete per set): the floor of any cache indexed by a Map.'
  for (const t of tables) t.notes = [floorNote, ...(t.notes ?? [])]
  return { params: { ...s, passes: c.passes }, results: figures, tables }
}

// ---- heap --------------------------------------------------------------------------------

async function heapSuite(c: Config): Promise<Omit<SuiteReport, 'date' | 'quick' | 'seconds'>> {
  const runs: Array<{ subject: Subject; ttl: boolean; r: HeapResult }> = []
  for (const ttl of [false, true]) {
    for (const subject of [...ENGINES, 'Map'] as const) {
      if (subject === 'Map' && ttl) continue
      const r = await runChild<HeapResult>({ kind: 'heap', subject, ttl, ...c.heap }, 'heap')
      sink += r.sink
      runs.push({ subject, ttl, r })
      process.stderr.write('.')
    }
  }
  process.stderr.write('\n')
  const total = (r: HeapResult): number => r.heapUsed + r.arrayBuffers
  const base = (ttl: boolean): number => {
    const b = runs.find((x) => x.subject === 'lru-cache' && x.ttl === ttl)
    return b === undefined ? NaN : total(b.r)
  }
  const rows = runs.map(({ subject, ttl, r }) => {
    const ratio = total(r) / base(ttl)
    return [
      subject,
      subject === 'Map' ? '-' : ttl ? '1 h' : 'none',
      total(r).toFixed(1),
      r.heapUsed.toFixed(1),
      r.arrayBuffers.toFixed(1),
      fmtRatio(ratio),
      subject.startsWith('stratacache') ? `<= 1.0x: ${ratio <= 1 ? 'met' : 'NOT met'}` : '',
    ]
  })
  const payload = median(runs.map((x) => x.r.payload))
  const n = fmtCount(c.heap.entries)
  return {
    params: { ...c.heap, value: `a distinct flat string of ${c.heap.valueChars} ASCII characters per entry; keys "key:<i>"` },
    results: runs.map(({ subject, ttl, r }) => ({ subject, ttl, ...r, total: total(r) })),
    tables: [
      {
        title: `heap bytes per entry: ${n} entries, each value a distinct ${c.heap.valueChars}-char ASCII string; cache sized to hold all`,
        columns: ['subject', 'TTL', 'bytes/entry', 'JS heap', 'typed arrays', 'vs lru-cache (same TTL)', 'target'],
        align: 'llrrrrl',
        rows,
        notes: [
          `Bytes/entry = growth of heapUsed + arrayBuffers after a full GC, divided by ${n}; the keys and values are ` +
            `allocated before the cache and not charged (they took ${payload.toFixed(0)} B/entry of heap, including the arrays holding them).`,
        ],
      },
    ],
  }
}

// ---- hit ratio -------------------------------------------------------------------------------

function hitRatioTable(trace: Trace, sizes: readonly number[], mark: boolean): { table: Table; rows: ReturnType<typeof hitRatios>; allBeat: boolean } {
  const rows = hitRatios(trace, sizes)
  const names = [...HIT_RATIO_SUBJECTS, 'ARC', 'Belady OPT']
  const beats = rows.map((r) => r.ratios['stratacache-tinylfu'] > r.ratios['lru-cache'] && r.ratios['stratacache-tinylfu'] > r.ratios['quick-lru'])
  const tableRows = names.map((name) => [name === 'quick-lru' ? 'quick-lru (maxSize = size/2)' : name, ...rows.map((r) => fmtPct(r.ratios[name]))])
  tableRows.push(['tinylfu beats lru-cache and quick-lru', ...beats.map((b) => (b ? 'yes' : 'NO'))])
  const allBeat = beats.every(Boolean)
  const notes = [`Trace: ${trace.description}.`]
  if (mark) notes.push(`Target: tinylfu beats lru-cache and quick-lru at every size: ${allBeat ? 'met' : 'NOT met'}.`)
  return {
    table: { title: `hit ratio, ${trace.name} (cache size in entries)`, columns: ['policy', ...sizes.map((s) => fmtCount(s))], align: `l${'r'.repeat(sizes.length)}`, rows: tableRows, notes },
    rows,
    allBeat,
  }
}

/** A real trace's table: LRU, tinylfu, ARC and Belady, and the P11 target (tinylfu >= max(LRU, ARC) - 0.5 points). */
function realTraceTable(trace: Trace): { table: Table; rows: ReturnType<typeof hitRatios>; allMet: boolean } {
  const rows = hitRatios(trace, ARC_SIZES, REAL_TRACE_SUBJECTS)
  const names = [...REAL_TRACE_SUBJECTS, 'ARC', 'Belady OPT']
  const met = rows.map((r) => r.ratios['stratacache-tinylfu'] >= Math.max(r.ratios['stratacache-lru'], r.ratios.ARC) - 0.005)
  const tableRows = names.map((name) => [name, ...rows.map((r) => fmtPct(r.ratios[name]))])
  tableRows.push(['tinylfu >= max(LRU, ARC) - 0.5', ...met.map((b) => (b ? 'yes' : 'NO'))])
  const allMet = met.every(Boolean)
  return {
    table: {
      title: `hit ratio, ARC trace ${trace.name} (cache size in entries)`,
      columns: ['policy', ...ARC_SIZES.map((s) => fmtCount(s))],
      align: `l${'r'.repeat(ARC_SIZES.length)}`,
      rows: tableRows,
      notes: [`Trace: ${trace.description}.`, `Target: tinylfu >= max(LRU, ARC) - 0.5 points at every size: ${allMet ? 'met' : 'NOT met'}.`],
    },
    rows,
    allMet,
  }
}

async function hitRatioSuite(c: Config): Promise<Omit<SuiteReport, 'date' | 'quick' | 'seconds'>> {
  const scan = scanMixedTrace({ length: c.traceLength.scanMixed })
  const scanResult = hitRatioTable(scan, SCAN_MIXED_SIZES, true)
  const loop = loopHeavyTrace({ length: c.traceLength.loopHeavy })
  const loopResult = hitRatioTable(loop, LOOP_HEAVY_SIZES, false)
  const common = [
    'Each policy is run as a read-through cache (get; on a miss, set) over the whole trace, cold start included.',
    'quick-lru keeps between maxSize and 2 x maxSize - 1 entries, so it gets maxSize = ceil(size / 2) and never holds more than `size` entries.',
    "stratacache-tinylfu draws admission randomness from SeededRandom(7). ARC is simulated from the paper (bench/arc.ts; Megiddo & Modha, FAST '03). Belady OPT is the offline optimum with bypass (bench/belady.ts).",
  ]
  // The ARC paper's traces live outside the repository (../shared/traces); skipped when absent.
  const dir = defaultTraceDir()
  const real: Record<string, unknown> = {}
  const realTables: Table[] = []
  const skipped: string[] = []
  for (const name of ARC_TRACES) {
    const trace = loadArcTrace(name, dir)
    if (trace === undefined) {
      skipped.push(name)
      continue
    }
    const r = realTraceTable(trace)
    real[name] = { rows: r.rows, targetMet: r.allMet }
    realTables.push(r.table)
  }
  if (skipped.length > 0) console.log(`hit-ratio: skipped ARC traces ${skipped.join(', ')} (no ${skipped.map((n) => `${n}.lis.zst`).join(', ')} in ${dir})`)
  if (realTables.length > 0) {
    const last = realTables[realTables.length - 1]
    realTables[realTables.length - 1] = { ...last, notes: [...(last.notes ?? []), `ARC traces by permission, citing: ${ARC_CITATION}.`] }
  }
  return {
    params: { scanMixed: { ...scan.params, sizes: SCAN_MIXED_SIZES }, loopHeavy: { ...loop.params, sizes: LOOP_HEAVY_SIZES }, arcTraces: { dir, sizes: ARC_SIZES, skipped } },
    results: { scanMixed: scanResult.rows, loopHeavy: loopResult.rows, tinylfuBeatsOnScanMixed: scanResult.allBeat, arcTraces: real },
    tables: [{ ...scanResult.table, notes: [...(scanResult.table.notes ?? []), ...common] }, loopResult.table, ...realTables],
  }
}

// ---- main --------------------------------------------------------------------------------------

const RUNNERS: Record<SuiteName, (c: Config) => Promise<Omit<SuiteReport, 'date' | 'quick' | 'seconds'>>> = {
  'get-hits': getHitsSuite,
  'set-evict': setEvictSuite,
  heap: heapSuite,
  'hit-ratio': hitRatioSuite,
  facade: facadeSuite,
  redis: redisSuite,
  etcd: etcdSuite,
  bus: busSuite,
  server: serverSuite,
  transport: transportSuite,
  membership: membershipSuite,
  'near-cache': nearCacheSuite,
  ladder: ladderSuite,
  replication: replicationSuite,
}

interface ResultsFile {
  machine: Machine
  suites: Partial<Record<SuiteName, SuiteReport & { machine: Machine }>>
}

function isResultsFile(x: unknown): x is ResultsFile {
  return typeof x === 'object' && x !== null && 'machine' in x && 'suites' in x && typeof x.suites === 'object' && x.suites !== null
}

function usage(): string {
  return [
    'usage: npm run bench -- [--quick] [--passes N] [suite...]',
    `suites: ${SUITES.join(', ')} (default: all)`,
    '--quick      small op counts: a smoke test (results go to bench/results/latest-quick.*)',
    `--passes N   repeat every speed child N times, interleaved (default ${FULL.passes}, get-hits ${FULL.getHitsPasses}; quick ${QUICK.passes}); more passes, steadier medians`,
  ].join('\n')
}

function header(m: Machine, quick: boolean): string {
  return `Measured ${m.date.slice(0, 16).replace('T', ' ')} UTC: ${m.cpu} x${m.cores}, ${m.memoryGb} GB, node ${m.node} (V8 ${m.v8}), ${m.platform}, load ${m.loadavg.join(' ')}${quick ? ' (--quick: small op counts, a smoke test)' : ''}`
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  if (args.includes('--help') || args.includes('-h')) {
    console.log(usage())
    return
  }
  const passesAt = args.indexOf('--passes')
  const passesArg = passesAt === -1 ? undefined : Number(args[passesAt + 1])
  if (passesArg !== undefined && !(Number.isInteger(passesArg) && passesArg >= 1)) {
    console.error(`--passes needs a positive integer\n${usage()}`)
    process.exitCode = 2
    return
  }
  const rest = passesAt === -1 ? args : [...args.slice(0, passesAt), ...args.slice(passesAt + 2)]
  const unknownFlags = rest.filter((a) => a.startsWith('-') && a !== '--quick')
  const names = rest.filter((a) => !a.startsWith('-'))
  const bad = names.filter((n) => !SUITES.some((s) => s === n))
  if (unknownFlags.length > 0 || bad.length > 0) {
    console.error(`unknown ${[...unknownFlags, ...bad].join(', ')}\n${usage()}`)
    process.exitCode = 2
    return
  }
  if (globalThis.gc === undefined) {
    console.error('run with --expose-gc (npm run bench does)')
    process.exitCode = 2
    return
  }
  const preset = args.includes('--quick') ? QUICK : FULL
  const config: Config = passesArg === undefined ? preset : { ...preset, passes: passesArg, getHitsPasses: passesArg }
  const selected = SUITES.filter((s) => names.length === 0 || names.includes(s))
  const m = machine()
  console.log(`# stratacache bench\n\n${header(m, config.quick)}\n`)

  const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url))
  const base = `${dir}latest${config.quick ? '-quick' : ''}`
  let file: ResultsFile = { machine: m, suites: {} }
  if (existsSync(`${base}.json`)) {
    try {
      const old: unknown = JSON.parse(readFileSync(`${base}.json`, 'utf8'))
      if (isResultsFile(old) && names.length > 0) file = { machine: m, suites: old.suites }
    } catch {
      // an unreadable old file is replaced
    }
  }
  const started = performance.now()
  for (const name of selected) {
    const t0 = performance.now()
    process.stderr.write(`${name} `)
    const report = await RUNNERS[name](config)
    const full: SuiteReport & { machine: Machine } = { date: new Date().toISOString(), quick: config.quick, seconds: Math.round((performance.now() - t0) / 100) / 10, machine: m, ...report }
    file.suites[name] = full
    for (const t of report.tables) console.log(`${renderTable(t)}\n`)
  }
  console.log(`total ${((performance.now() - started) / 1000).toFixed(1)} s; sink ${sink.toFixed(3)}`)

  mkdirSync(dir, { recursive: true })
  const ordered: ResultsFile = { machine: m, suites: {} }
  for (const s of SUITES) if (file.suites[s] !== undefined) ordered.suites[s] = file.suites[s]
  writeFileSync(`${base}.json`, `${JSON.stringify(ordered, null, 2)}\n`)
  const md = [`${header(m, config.quick)}`, '']
  for (const s of SUITES) {
    const r = ordered.suites[s]
    if (r === undefined) continue
    if (r.machine.date !== m.date) md.push(`(${s}: from an earlier run, ${r.date.slice(0, 16).replace('T', ' ')} UTC)`, '')
    for (const t of r.tables) md.push(renderTable(t), '')
  }
  writeFileSync(`${base}.md`, md.join('\n'))
  console.log(`wrote ${base}.json and ${base}.md`)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
