// KeyFilter: a Bloom filter of strings; absence answers are exact.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { KeyFilter } from '../../src/server/key-filter.js'

test('KeyFilter: every added key is reported; unseen keys mostly not; saturation only adds positives', () => {
  const f = new KeyFilter(16)
  assert.equal(f.mightHave('k'), false, 'empty: nothing')
  for (let i = 0; i < 5000; i++) f.add(`key-${i}`)
  for (let i = 0; i < 5000; i++) assert.equal(f.mightHave(`key-${i}`), true)
  let positives = 0
  for (let i = 0; i < 10000; i++) if (f.mightHave(`other-${i}`)) positives++
  // 65,536 bits, 5,000 keys, 3 probes: about 1 % expected.
  assert.ok(positives < 400, `false positives ${positives} of 10000`)
  const tiny = new KeyFilter(5)
  for (let i = 0; i < 1000; i++) tiny.add(`x${i}`)
  assert.equal(tiny.mightHave('anything'), true, 'a saturated filter says maybe to everything')
  assert.equal(new KeyFilter().mightHave(''), false)
  assert.throws(() => new KeyFilter(4), RangeError)
  assert.throws(() => new KeyFilter(32), RangeError)
})
