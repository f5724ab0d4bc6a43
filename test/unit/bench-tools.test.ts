import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { beladyHits } from '../../bench/belady.js'
import { machine } from '../../bench/harness.js'
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
