import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { InvalidTagError, isCacheError } from '../../src/index.js'
import { MAX_TAG_DEPTH, MAX_TAG_LENGTH, normalizeTags, validateTag } from '../../src/tags/index.js'

const isTagError = (e: unknown): boolean => isCacheError(e, 'ERR_INVALID_TAG') && e instanceof InvalidTagError

describe('validateTag', () => {
  test('accepts paths of letters, digits and _ - . @ / + =, up to the length and depth limits', () => {
    const deepest = Array.from({ length: MAX_TAG_DEPTH }, () => 'x').join(':')
    const longest = 'a'.repeat(MAX_TAG_LENGTH)
    for (const ok of ['org', 'org:1', 'org:1:user:42', 'a-b.c@d/e+f=g_h', 'A:Z:0:9', deepest, longest]) validateTag(ok)
  })

  test('rejects malformed tags with ERR_INVALID_TAG and a message that says why', () => {
    const cases: Array<[unknown, RegExp]> = [
      ['', /empty/],
      [':', /segment 1 is empty/],
      ['org:', /segment 2 is empty/],
      [':org', /segment 1 is empty/],
      ['org::1', /segment 2 is empty/],
      ['has space', /" " at index 3/],
      ['tab\tbed', /"\\t"/],
      ['star*', /"\*"/],
      ['org:1:*', /"\*"/],
      ['caf\u00e9', /"é"/],
      ['a'.repeat(MAX_TAG_LENGTH + 1), /longer than 256/],
      [Array.from({ length: MAX_TAG_DEPTH + 1 }, () => 'x').join(':'), /deeper than 32 segments \(33\)/],
      [42, /expected a string, got number/],
      [null, /got null/],
      [undefined, /got undefined/],
      [['org'], /got object/],
    ]
    for (const [bad, message] of cases) {
      assert.throws(() => validateTag(bad), (e: unknown) => isTagError(e) && message.test((e as Error).message), `${String(bad)}`)
    }
  })

  test('values that JSON cannot print still get the typed error', () => {
    const cyclic: { self?: unknown } = {}
    cyclic.self = cyclic
    for (const bad of [10n, Symbol('t'), () => 'x', cyclic]) {
      assert.throws(() => validateTag(bad), isTagError)
    }
  })

  test('a huge string is refused without a huge message', () => {
    const huge = 'x'.repeat(1_000_000)
    assert.throws(
      () => validateTag(huge),
      (e: unknown) => isTagError(e) && (e as Error).message.length < 500,
    )
  })
})

describe('normalizeTags', () => {
  test('validates, dedupes and sorts by code unit (locale independent); input untouched', () => {
    const input = ['b', 'a:2', 'B', 'a', 'b', 'a:10']
    assert.deepEqual(normalizeTags(input), ['B', 'a', 'a:10', 'a:2', 'b'])
    assert.deepEqual(input, ['b', 'a:2', 'B', 'a', 'b', 'a:10'])
    assert.deepEqual(normalizeTags([]), [])
    assert.deepEqual(normalizeTags(['only']), ['only'])
    assert.deepEqual(normalizeTags(['z', 'z', 'z']), ['z'])
  })

  test('equal tag sets give equal arrays whatever the order', () => {
    assert.deepEqual(normalizeTags(['x:1', 'y', 'x']), normalizeTags(['x', 'x:1', 'y', 'y']))
  })

  test('any bad tag, or a non-array, raises ERR_INVALID_TAG', () => {
    assert.throws(() => normalizeTags(['ok', 'not ok']), isTagError)
    assert.throws(() => normalizeTags(['ok', 7 as unknown as string]), isTagError)
    assert.throws(() => normalizeTags('org:1' as unknown as string[]), isTagError)
    assert.throws(() => normalizeTags(undefined as unknown as string[]), isTagError)
  })
})
