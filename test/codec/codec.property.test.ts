import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { createCodec, type CodecOptions } from '../../src/codec/index.js'
import { cacheKey, KEY_A, richValue, throwsCode } from './fixtures.js'

const encryption = { keys: { a: KEY_A }, activeKeyId: 'a' }
const RUNS = { numRuns: 150 }

// Each combination of the wire format's features; threshold 0 forces compression.
const combinations: Record<string, CodecOptions> = {
  plain: { compression: false },
  default: {},
  gzip: { compression: { algorithm: 'gzip', threshold: 0 } },
  deflate: { compression: { algorithm: 'deflate', threshold: 0 } },
  brotli: { compression: { algorithm: 'brotli', threshold: 0 } },
  encrypted: { compression: false, encryption },
  'compressed+encrypted': { compression: { threshold: 0 }, encryption },
  'brotli+encrypted': { compression: { algorithm: 'brotli', threshold: 0 }, encryption },
}

describe('codec round trip (msgpack)', () => {
  for (const [name, options] of Object.entries(combinations)) {
    test(`${name}: decode(encode(v)) deep-equals v`, () => {
      const codec = createCodec(options)
      fc.assert(
        fc.property(richValue, cacheKey, (value, key) => {
          assert.deepStrictEqual(codec.decode(codec.encode(value, key), key), value)
        }),
        RUNS,
      )
    })
  }

  test('compressed combinations really compress (flags byte)', () => {
    const codec = createCodec({ compression: { algorithm: 'gzip', threshold: 0 } })
    const bytes = codec.encode({ text: 'abc'.repeat(200) }, 'k')
    assert.equal((bytes[2] >> 4) & 3, 1)
  })
})

describe('codec round trip (json)', () => {
  for (const [name, options] of Object.entries(combinations)) {
    test(`${name}: decode(encode(v)) equals JSON's own round trip`, () => {
      const codec = createCodec({ ...options, serializer: 'json' })
      fc.assert(
        fc.property(fc.jsonValue(), cacheKey, (value, key) => {
          assert.deepStrictEqual(codec.decode(codec.encode(value, key), key), JSON.parse(JSON.stringify(value)))
        }),
        RUNS,
      )
    })
  }
})

describe('codec binding (property)', () => {
  test('an encrypted value never decodes under another cache key', () => {
    const codec = createCodec({ encryption })
    fc.assert(
      fc.property(richValue, cacheKey, cacheKey, (value, key, other) => {
        fc.pre(key !== other)
        throwsCode(() => codec.decode(codec.encode(value, key), other), ['ERR_DECRYPT'])
      }),
      RUNS,
    )
  })
})
