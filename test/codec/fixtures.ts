import assert from 'node:assert/strict'
import fc from 'fast-check'
import type { ErrorCode } from '../../src/core/errors.js'
import { isCacheError } from '../../src/core/errors.js'

/** Fixed 32-byte keys, so failures reproduce. */
export const KEY_A = Buffer.alloc(32, 0xa1)
export const KEY_B = Buffer.alloc(32, 0xb2)

// Object keys the msgpack serializer keeps exactly: '__proto__' is renamed by msgpackr (by design).
const objectKey = fc.string({ unit: 'grapheme', maxLength: 6 }).filter((k) => k !== '__proto__')
// -0 is written as the integer 0 (documented); every other double, NaN and infinities included, survives.
const double = fc.double().map((d) => (Object.is(d, -0) ? 0 : d))

const leaf = fc.oneof(
  fc.integer(),
  double,
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }), // int64 / uint64 range
  fc.bigInt(), // up to 256 bits: msgpackr's bigint extension
  fc.date({ noInvalidDate: true }),
  fc.uint8Array({ maxLength: 12 }),
  fc.uint8Array({ maxLength: 12 }).map((a) => Buffer.from(a)),
  fc.float64Array({ maxLength: 4 }),
  fc.int32Array({ maxLength: 4 }),
  fc.constantFrom(/ab+c/gi, /^\d{2,}$/m),
)

/** Nested values of every type the msgpack serializer promises to round-trip. */
export const richValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  tree: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('object'), tie('map'), tie('set')),
  array: fc.array(tie('tree'), { maxLength: 5 }),
  object: fc.dictionary(objectKey, tie('tree'), { maxKeys: 5, noNullPrototype: true }),
  map: fc.array(fc.tuple(fc.oneof(objectKey, fc.integer()), tie('tree')), { maxLength: 4 }).map((entries) => new Map(entries)),
  set: fc.array(leaf, { maxLength: 4 }).map((items) => new Set(items)),
})).tree

/** Any string, lone surrogates included: cache keys are bound as UTF-16. */
export const cacheKey = fc.string({ unit: 'binary', maxLength: 20 })

/** Asserts that `fn` throws a CacheError with one of `codes`; returns the code seen. */
export function throwsCode(fn: () => unknown, codes: readonly ErrorCode[]): ErrorCode {
  let seen: ErrorCode | undefined
  assert.throws(fn, (err: unknown) => {
    assert.ok(isCacheError(err), `expected a CacheError, got ${String(err)}`)
    assert.ok(codes.includes(err.code), `expected ${codes.join(' or ')}, got ${err.code}: ${err.message}`)
    seen = err.code
    return true
  })
  return seen as ErrorCode
}

/** A value that serializes to well over 1 KB and compresses well. */
export function bigRecord(n = 40): unknown {
  return {
    rows: Array.from({ length: n }, (_, i) => ({ id: i, name: `user-${i}`, email: `user${i}@example.com`, at: new Date(1_700_000_000_000 + i), tags: ['a', 'b'] })),
  }
}
