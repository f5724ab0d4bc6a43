/**
 * A fast check of the P11 hit-ratio targets for the default `tinylfu`, for iterating on the
 * policy (the full table with Belady and the other subjects is `npm run bench -- hit-ratio`).
 *
 *   node dist/bench/hit-ratio-check.js                       every target (ARC traces + scan-mixed)
 *   node dist/bench/hit-ratio-check.js P3 262144             one trace and size
 *   node dist/bench/hit-ratio-check.js P3 262144 200000      ... and the hit ratio per 200,000 requests
 *   node dist/bench/hit-ratio-check.js --dir DIR [OLTP,P2]    the same rule on other ARC traces (DIR/<name>.lis.zst;
 *                                                            every one in DIR when no names), a check that the
 *                                                            policy generalizes (decision 0395); no scan-mixed
 *   node dist/bench/hit-ratio-check.js --other DIR [lirs/loop,cache2k/web07]
 *                                                            the same comparison on traces outside the ARC paper
 *                                                            (Caffeine's simulator traces, bench/other-traces.ts),
 *                                                            at 0.5-40% of each trace's distinct keys; a report,
 *                                                            not a target (decision 0400)
 *
 * Targets: on each ARC trace in ../shared/traces at every size the ARC paper uses, tinylfu >=
 * max(LRU, ARC) - 0.5 points; on scan-mixed (the full bench's length), tinylfu >= LRU + 3.
 * Everything is simulated as in bench/hit-ratio.ts (read-through, cold start, SeededRandom(7)),
 * so the figures are those of the bench. ARC traces: N. Megiddo and D. S. Modha, "ARC: A
 * Self-Tuning, Low Overhead Replacement Cache," USENIX FAST '03, pp. 115-130, 2003.
 */
import { MemoryCache } from '../src/index.js'
import { SeededRandom } from '../src/core/random.js'
import { arcHits } from './arc.js'
import { readdirSync } from 'node:fs'
import { ARC_TRACES, arcPaperSizes, defaultTraceDir, loadArcTrace } from './real-traces.js'
import { listOtherTraces, loadOtherTrace, otherTraceSizes } from './other-traces.js'
import { scanMixedTrace } from './traces.js'

const SCAN_MIXED_SIZES = [1_000, 4_000, 16_000, 64_000]

/** Per request, 1 when the policy hit. */
function simulate(policy: 'lru' | 'tinylfu', keys: Uint32Array, size: number): Uint8Array {
  const cache = new MemoryCache<number, number>({ maxEntries: size, policy, random: new SeededRandom(7) })
  const hit = new Uint8Array(keys.length)
  for (let i = 0; i < keys.length; i++) {
    if (cache.get(keys[i]) !== undefined) hit[i] = 1
    else cache.set(keys[i], i)
  }
  cache.close()
  return hit
}

function pct(hit: Uint8Array, from = 0, to = hit.length): number {
  let h = 0
  for (let i = from; i < to; i++) h += hit[i]
  return (100 * h) / (to - from)
}

function keySpace(keys: Uint32Array): number {
  let n = 0
  for (let i = 0; i < keys.length; i++) if (keys[i] >= n) n = keys[i] + 1
  return n
}

const other = process.argv[2] === '--other'
const heldOut = process.argv[2] === '--dir' || other
const traceDir = heldOut ? (process.argv[3] ?? '.') : defaultTraceDir()
const [onlyTrace, onlySize, phaseArg] = heldOut ? [undefined, undefined, undefined] : process.argv.slice(2)
const traceNames: readonly string[] = !heldOut
  ? ARC_TRACES
  : process.argv[4] !== undefined
    ? process.argv[4].split(',')
    : other
      ? listOtherTraces(traceDir)
      : readdirSync(traceDir)
        .filter((f) => f.endsWith('.lis.zst'))
        .map((f) => f.slice(0, -'.lis.zst'.length))
        .sort()
const phase = phaseArg === undefined ? 0 : Number(phaseArg)
let allMet = true
let cells = 0
let short = 0
const report = (label: string, tinylfu: number, target: number, others: string): void => {
  const met = tinylfu >= target - 0.005
  if (!met) allMet = false
  cells++
  if (!met) short++
  console.log(`${label.padEnd(other ? 36 : 22)} tinylfu ${tinylfu.toFixed(2).padStart(6)}  target ${target.toFixed(2).padStart(6)}  margin ${(tinylfu - target).toFixed(2).padStart(6)} ${met ? '   ' : 'NO '} ${others}`)
}

for (const name of traceNames) {
  if (onlyTrace !== undefined && onlyTrace !== name && onlyTrace !== 'all') continue
  const trace = other ? loadOtherTrace(name, traceDir) : loadArcTrace(name, traceDir)
  if (trace === undefined) {
    console.log(`${name}: not found in ${traceDir}, skipped`)
    continue
  }
  const space = keySpace(trace.keys)
  for (const size of other ? otherTraceSizes(space) : arcPaperSizes(name)) {
    if (onlySize !== undefined && Number(onlySize) !== size) continue
    const t = simulate('tinylfu', trace.keys, size)
    const l = simulate('lru', trace.keys, size)
    const a = new Uint8Array(trace.keys.length)
    arcHits(trace.keys, size, space, a)
    const [tp, lp, ap] = [pct(t), pct(l), pct(a)]
    report(`${name} @ ${size}`, tp, Math.max(lp, ap) - 0.5, `LRU ${lp.toFixed(2)}  ARC ${ap.toFixed(2)}`)
    if (phase > 0) {
      console.log('  requests      tinylfu   LRU   ARC')
      for (let from = 0; from < t.length; from += phase) {
        const to = Math.min(t.length, from + phase)
        console.log(`  ${`${(from / 1e6).toFixed(2)}M-${(to / 1e6).toFixed(2)}M`.padEnd(12)} ${pct(t, from, to).toFixed(0).padStart(7)} ${pct(l, from, to).toFixed(0).padStart(5)} ${pct(a, from, to).toFixed(0).padStart(5)}`)
      }
    }
  }
}
if (!heldOut && (onlyTrace === undefined || onlyTrace === 'scan-mixed' || onlyTrace === 'all')) {
  const scan = scanMixedTrace({ length: 1_400_000 })
  for (const size of SCAN_MIXED_SIZES) {
    if (onlySize !== undefined && Number(onlySize) !== size) continue
    const tp = pct(simulate('tinylfu', scan.keys, size))
    const lp = pct(simulate('lru', scan.keys, size))
    report(`scan-mixed @ ${size}`, tp, lp + 3, `LRU ${lp.toFixed(2)}`)
  }
}
if (other) console.log(`${cells - short} of ${cells} cells at or above max(LRU, ARC) - 0.5 (a report: these traces carry no target)`)
else console.log(allMet ? 'all targets met' : 'targets NOT met')
