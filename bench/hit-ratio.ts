/**
 * Hit ratios on deterministic traces (bench/traces.ts) and on the ARC paper's real traces
 * when present (bench/real-traces.ts): every subject is simulated as a read-through cache
 * (get; on a miss, set), and compared with ARC (bench/arc.ts, from Megiddo & Modha, FAST '03)
 * and Belady's optimum (bench/belady.ts, with bypass). Exact counts, so this runs
 * in-process and untimed.
 */
import { arcHits } from './arc.js'
import { beladyHits } from './belady.js'
import { makeCache, type Subject, type SyncCache } from './harness.js'
import type { Trace } from './traces.js'

export const HIT_RATIO_SUBJECTS: readonly Subject[] = ['stratacache-lru', 'stratacache-tinylfu', 'lru-cache', 'quick-lru']
/** The subjects of the real traces (lru-cache and quick-lru would repeat LRU). */
export const REAL_TRACE_SUBJECTS: readonly Subject[] = ['stratacache-lru', 'stratacache-tinylfu']

export interface HitRatioRow {
  readonly size: number
  /** Hit ratio per subject, plus 'ARC' and 'Belady OPT'. */
  readonly ratios: Readonly<Record<string, number>>
}

function simulate(cache: SyncCache<number, number>, keys: Uint32Array): number {
  let hits = 0
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]
    if (cache.get(k) !== undefined) hits++
    else cache.set(k, i)
  }
  return hits
}

export function hitRatios(trace: Trace, sizes: readonly number[], subjects: readonly Subject[] = HIT_RATIO_SUBJECTS): HitRatioRow[] {
  const n = trace.keys.length
  let keySpace = 0
  for (let i = 0; i < n; i++) if (trace.keys[i] >= keySpace) keySpace = trace.keys[i] + 1
  return sizes.map((size) => {
    const ratios: Record<string, number> = {}
    for (const subject of subjects) {
      const { cache, close } = makeCache<number, number>(subject, size, false)
      ratios[subject] = simulate(cache, trace.keys) / n
      if (cache.size > size) throw new Error(`${subject} holds ${cache.size} entries, more than its bound ${size}`)
      close()
    }
    ratios.ARC = arcHits(trace.keys, size, keySpace) / n
    ratios['Belady OPT'] = beladyHits(trace.keys, size) / n
    return { size, ratios }
  })
}
