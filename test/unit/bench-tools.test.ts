import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { gzipSync } from 'node:zlib'
import { beladyHits } from '../../bench/belady.js'
import { machine } from '../../bench/harness.js'
import { listOtherTraces, loadOtherTrace, otherTraceSizes } from '../../bench/other-traces.js'
import { zipfStream } from '../../bench/traces.js'

test("Belady's optimum on hand-computed traces", () => {
  // capacity 2: a b c a b a → a,b miss; c miss (bypass: c is never used again); a hit; b hit; a hit
  assert.equal(beladyHits([1, 2, 3, 1, 2, 1], 2), 3)
  // capacity 1 on a loop of 2 keys: OPT keeps 1 (bypassing 2, needed later) and hits it twice
  assert.equal(beladyHits([1, 2, 1, 2, 1, 2], 1), 2)
  // capacity 2, a b c b c a: evicting a (used last) at c gives hits on b and c
  assert.equal(beladyHits([1, 2, 3, 2, 3, 1], 2), 2)
  // everything fits: hits = requests - distinct keys
  assert.equal(beladyHits([1, 2, 1, 2, 3, 3], 3), 3)
})

test('Zipf streams are deterministic per seed and skewed', () => {
  const a = zipfStream(1000, 0.99, 20_000, 5)
  assert.deepEqual(a, zipfStream(1000, 0.99, 20_000, 5))
  assert.notDeepEqual(a, zipfStream(1000, 0.99, 20_000, 6))
  const counts = new Map<number, number>()
  for (const k of a) counts.set(k, (counts.get(k) ?? 0) + 1)
  const sorted = [...counts.values()].sort((x, y) => y - x)
  // The most popular key of Zipf(0.99) over 1000 keys takes about 13% of requests.
  assert.ok(sorted[0] / a.length > 0.1 && sorted[0] / a.length < 0.17, `top share ${sorted[0] / a.length}`)
  assert.ok(sorted[0] > 20 * sorted[99])
})

test('the machine line names the CPU family and model where /proc/cpuinfo has them', () => {
  let info = ''
  try {
    info = readFileSync('/proc/cpuinfo', 'latin1')
  } catch {
    // not Linux: the line carries the model name alone
  }
  const family = /^cpu family\s*:\s*(\d+)/m.exec(info)?.[1]
  const model = /^model\s*:\s*(\d+)/m.exec(info)?.[1]
  if (family !== undefined && model !== undefined) assert.ok(machine().cpu.endsWith(` (family ${family} model ${model})`), machine().cpu)
  else assert.doesNotMatch(machine().cpu, /family/)
})

test("Caffeine's trace formats are read into dense keys in order of first use", () => {
  const dir = mkdtempSync(join(tmpdir(), 'stratacache-traces-'))
  try {
    const put = (format: string, file: string, bytes: Buffer): void => {
      mkdirSync(join(dir, format), { recursive: true })
      writeFileSync(join(dir, format, file), bytes)
    }
    put('lirs', 'zz.trace.gz', gzipSync('7\n9\n*\n7\n\n3\n'))
    put('address', 'gcc.trace.gz', gzipSync('R 0x1f 0\nW 0x20 0\nR 0x1f 0\n'))
    const ints = Buffer.alloc(12)
    ;[-5, 6, -5].forEach((v, i) => ints.writeInt32BE(v, i * 4))
    put('cache2k', 'web.trace.xz', execFileSync('xz', ['-c'], { input: ints }))
    const longs = Buffer.alloc(24)
    ;[2n ** 40n, 1n, 2n ** 40n].forEach((v, i) => longs.writeBigInt64BE(v, i * 8))
    put('corda', 'trace_vault.gz', gzipSync(longs))
    put('lirs', 'README', Buffer.from('not a trace'))
    assert.deepEqual(listOtherTraces(dir), ['lirs/zz', 'address/gcc', 'cache2k/web', 'corda/trace_vault'])
    assert.deepEqual([...loadOtherTrace('lirs/zz', dir)!.keys], [0, 1, 0, 2])
    assert.deepEqual([...loadOtherTrace('address/gcc', dir)!.keys], [0, 1, 0])
    assert.deepEqual([...loadOtherTrace('cache2k/web', dir)!.keys], [0, 1, 0])
    const corda = loadOtherTrace('corda/trace_vault', dir)!
    assert.deepEqual([...corda.keys], [0, 1, 0])
    assert.deepEqual(corda.params, { requests: 3, distinct: 2 })
    assert.equal(loadOtherTrace('lirs/absent', dir), undefined)
    assert.throws(() => loadOtherTrace('nope/zz', dir), /format one of/)
    put('address', 'bad.trace.gz', gzipSync('R 1f\n'))
    assert.throws(() => loadOtherTrace('address/bad', dir), /malformed line/)
    // 0.5-40 % of the distinct keys, at least 32 entries, each size once.
    assert.deepEqual(otherTraceSizes(10_000), [50, 200, 500, 1000, 2000, 4000])
    assert.deepEqual(otherTraceSizes(100), [32, 40])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
