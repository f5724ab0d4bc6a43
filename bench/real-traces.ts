/**
 * Real block traces for the hit-ratio bench, read from ../shared/traces (outside the repo).
 *
 * The traces are those of the ARC paper, which must be cited wherever they are used:
 * N. Megiddo and D. S. Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache,"
 * USENIX FAST '03, pp. 115-130, 2003 (redistributed by moka-rs/cache-trace, `arc/`).
 *
 * Format (zstd-compressed text, read with the `zstd` command): each line is
 * `start_block count _ request_no`, standing for `count` requests, one per block
 * start_block ... start_block + count - 1; every block is one key. Keys are renumbered in
 * order of first appearance (dense ids from 0), which changes no policy's hit ratio and lets
 * the simulators (bench/arc.ts, bench/belady.ts) index typed arrays by key.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Trace } from './traces.js'

export const ARC_CITATION = 'N. Megiddo and D. S. Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache," USENIX FAST \'03, pp. 115-130, 2003'

/** The ARC traces the bench looks for, and the cache sizes (entries) the paper uses for them. */
export const ARC_TRACES = ['P3', 'P6'] as const
export const ARC_SIZES = [1_024, 4_096, 16_384, 65_536, 262_144]

/** The sizes the ARC paper reports for a trace: its own for OLTP (Table IV), ARC_SIZES for the P traces and others. */
export function arcPaperSizes(name: string): readonly number[] {
  return name === 'OLTP' ? [1_000, 2_000, 5_000, 10_000, 15_000] : ARC_SIZES
}

/** ../shared/traces relative to the repository root (bench/ is compiled to dist/bench/). */
export function defaultTraceDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url))
  // dist/bench/ -> repo root is two levels up; the shared directory sits beside the repo.
  return join(here, '..', '..', '..', 'shared', 'traces')
}

/** Parses the text of an ARC `.lis` trace into dense keys. */
export function parseArcTrace(name: string, text: string): Trace {
  let requests = 0
  let maxBlock = 0
  const lines = text.split('\n')
  const starts = new Float64Array(lines.length)
  const counts = new Float64Array(lines.length)
  let n = 0
  for (const line of lines) {
    if (line.length === 0) continue
    const fields = line.trim().split(/\s+/)
    const start = Number(fields[0])
    const count = Number(fields[1])
    if (fields.length < 2 || !Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0) {
      throw new Error(`${name}: malformed line ${n + 1}: ${JSON.stringify(line)}`)
    }
    starts[n] = start
    counts[n] = count
    n++
    requests += count
    if (start + count > maxBlock) maxBlock = start + count
  }
  const keys = new Uint32Array(requests)
  const ids = new Int32Array(maxBlock).fill(-1)
  let distinct = 0
  let k = 0
  for (let i = 0; i < n; i++) {
    for (let b = starts[i], end = starts[i] + counts[i]; b < end; b++) {
      let id = ids[b]
      if (id === -1) ids[b] = id = distinct++
      keys[k++] = id
    }
  }
  return {
    name,
    description: `ARC trace ${name}: ${requests.toLocaleString('en-US')} requests, ${distinct.toLocaleString('en-US')} distinct blocks (${ARC_CITATION})`,
    params: { requests, distinct },
    keys,
  }
}

/** Loads `<dir>/<name>.lis.zst`, or returns undefined when the file is not there. */
export function loadArcTrace(name: string, dir = defaultTraceDir()): Trace | undefined {
  const path = join(dir, `${name}.lis.zst`)
  if (!existsSync(path)) return undefined
  const text = execFileSync('zstd', ['-dc', path], { encoding: 'utf8', maxBuffer: 1 << 30 })
  return parseArcTrace(name, text)
}
