/**
 * Real traces from outside the ARC paper, for checking that the hit-ratio results generalize
 * (decision 0400): the trace files Caffeine's simulator ships (ben-manes/caffeine,
 * simulator/src/main/resources/com/github/benmanes/caffeine/cache/simulator/parser/), read
 * from a directory laid out as that one: `<format>/<name>[.trace].{gz,xz}`. Nothing here is
 * in the repository; the formats are those of Caffeine's trace readers:
 *
 * - `lirs/`: text, one block number per line (`*` lines are checkpoints, skipped). From the
 *   LIRS paper: S. Jiang and X. Zhang, "LIRS: An Efficient Low Inter-reference Recency Set
 *   Replacement Policy to Improve Buffer Cache Performance," ACM SIGMETRICS 2002.
 * - `address/`: text, `<op> 0x<address> ...` per line, the address is the key (SPEC CPU
 *   memory address traces).
 * - `cache2k/`: big-endian int32 keys (headissue GmbH, Jens Wilke; CC BY 4.0): database
 *   object accesses of an e-commerce application (orm-busy, orm-night) and web page
 *   accesses (web07, web12).
 * - `cloud_physics/`: big-endian uint32 keys (CloudPhysics block trace w106).
 * - `corda/`, `scarab/`: big-endian int64 keys (R3 Corda's vault service; Scarab Research's
 *   recommendation service).
 *
 * `.gz` is read with node:zlib, `.xz` with the `xz` command. Keys are renumbered densely in
 * order of first appearance, as for the ARC traces (bench/real-traces.ts).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import type { Trace } from './traces.js'

/** The formats read, by the name of their directory. */
export const OTHER_TRACE_FORMATS = ['lirs', 'address', 'cache2k', 'cloud_physics', 'corda', 'scarab'] as const
type Format = (typeof OTHER_TRACE_FORMATS)[number]

/** The cache sizes a trace is run at: these shares of its distinct keys (at least 32 entries). */
export const OTHER_TRACE_SHARES = [0.005, 0.02, 0.05, 0.1, 0.2, 0.4]

/** `format/name` of every readable trace file under `dir`. */
export function listOtherTraces(dir: string): string[] {
  const out: string[] = []
  for (const format of OTHER_TRACE_FORMATS) {
    const sub = join(dir, format)
    if (!existsSync(sub)) continue
    for (const f of readdirSync(sub).sort()) {
      const m = /^(.+?)(\.trace|\.trc)?\.(gz|xz)$/.exec(f)
      if (m !== null) out.push(`${format}/${m[1]}`)
    }
  }
  return out
}

function readCompressed(path: string): Buffer {
  if (path.endsWith('.gz')) return gunzipSync(readFileSync(path))
  return execFileSync('xz', ['-dc', path], { maxBuffer: 1 << 30 })
}

/** Loads `dir/<format>/<name>[.trace].{gz,xz}` (`id` is `format/name`), or undefined when it is not there. */
export function loadOtherTrace(id: string, dir: string): Trace | undefined {
  const [format, name] = id.split('/') as [Format, string]
  if (!(OTHER_TRACE_FORMATS as readonly string[]).includes(format) || name === undefined) throw new Error(`${id}: expected <format>/<name>, format one of ${OTHER_TRACE_FORMATS.join(', ')}`)
  const file = ['trace.gz', 'trace.xz', 'trc.gz', 'gz', 'xz'].map((ext) => join(dir, format, `${name}.${ext}`)).find((p) => existsSync(p))
  if (file === undefined) return undefined
  const raw = readCompressed(file)
  const ids = new Map<number | bigint | string, number>()
  const keys: number[] = []
  const add = (k: number | bigint | string): void => {
    let id = ids.get(k)
    if (id === undefined) ids.set(k, (id = ids.size))
    keys.push(id)
  }
  if (format === 'lirs' || format === 'address') {
    for (const line of raw.toString('latin1').split('\n')) {
      const t = line.trim()
      if (t === '' || t === '*') continue
      if (format === 'lirs') add(Number(t))
      else {
        const address = t.split(' ')[1]
        if (address === undefined || !address.startsWith('0x')) throw new Error(`${id}: malformed line ${JSON.stringify(line)}`)
        add(address)
      }
    }
  } else if (format === 'corda' || format === 'scarab') {
    for (let i = 0; i + 8 <= raw.length; i += 8) add(raw.readBigInt64BE(i))
  } else {
    for (let i = 0; i + 4 <= raw.length; i += 4) add(format === 'cache2k' ? raw.readInt32BE(i) : raw.readUInt32BE(i))
  }
  const requests = keys.length
  return {
    name: id,
    description: `${id}: ${requests.toLocaleString('en-US')} requests, ${ids.size.toLocaleString('en-US')} distinct keys`,
    params: { requests, distinct: ids.size },
    keys: Uint32Array.from(keys),
  }
}

/** The sizes `loadOtherTrace`'s trace is run at (OTHER_TRACE_SHARES of its distinct keys, deduplicated). */
export function otherTraceSizes(distinct: number): number[] {
  return [...new Set(OTHER_TRACE_SHARES.map((s) => Math.max(32, Math.round(distinct * s))))]
}
