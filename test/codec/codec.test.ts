import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { randomBytes } from 'node:crypto'
import { deflateSync } from 'node:zlib'
import { createCodec, jsonSerializer, msgpackSerializer, type CodecOptions, type Serializer } from '../../src/codec/index.js'
import { crc32js } from '../../src/codec/compression.js'
import { DecodeError, InvalidOptionsError, ValueTooLargeError, isCacheError } from '../../src/core/errors.js'
import { bigRecord, KEY_A, KEY_B, throwsCode } from './fixtures.js'

const SAMPLE = { id: 7, name: 'ada', at: new Date(1_700_000_000_000), tags: new Set(['x']), n: 2n ** 70n, bytes: new Uint8Array([1, 2, 3]) }
const onlyA = { keys: { a: KEY_A }, activeKeyId: 'a' }

/** Header byte 2 decoded. */
function flags(bytes: Uint8Array): { serializer: number; compression: number; encrypted: boolean } {
  return { serializer: bytes[2] & 0x0f, compression: (bytes[2] >> 4) & 3, encrypted: (bytes[2] & 0x40) !== 0 }
}

describe('wire format', () => {
  test('plain value: magic, version, flags, then the msgpack bytes unchanged', () => {
    const bytes = createCodec({ compression: false }).encode(SAMPLE, 'k')
    assert.deepStrictEqual([...bytes.subarray(0, 3)], [0xc1, 1, 0x01])
    assert.deepStrictEqual(Buffer.from(bytes.subarray(3)), Buffer.from(msgpackSerializer.serialize(SAMPLE)))
  })

  test('json and custom serializers put their id in the flags', () => {
    assert.equal(flags(createCodec({ serializer: 'json' }).encode({ a: 1 }, 'k')).serializer, 2)
    const custom: Serializer = { id: 9, serialize: (v) => Buffer.from(String(v)), deserialize: (b) => Buffer.from(b).toString() }
    assert.equal(flags(createCodec({ serializer: custom }).encode('hi', 'k')).serializer, 9)
  })

  test('compression codes: gzip 1, deflate 2, brotli 3', () => {
    const value = bigRecord()
    for (const [algorithm, code] of [['gzip', 1], ['deflate', 2], ['brotli', 3]] as const) {
      const bytes = createCodec({ compression: { algorithm } }).encode(value, 'k')
      assert.equal(flags(bytes).compression, code, algorithm)
    }
  })

  test('encrypted layout: key id length, key id, 12-byte IV, ciphertext, 16-byte tag', () => {
    const codec = createCodec({ compression: false, encryption: { keys: { 'key-2024': KEY_A }, activeKeyId: 'key-2024' } })
    const bytes = codec.encode(SAMPLE, 'k')
    assert.deepStrictEqual(flags(bytes), { serializer: 1, compression: 0, encrypted: true })
    assert.equal(bytes[3], 8)
    assert.equal(Buffer.from(bytes.subarray(4, 12)).toString(), 'key-2024')
    const plainLength = msgpackSerializer.serialize(SAMPLE).length
    assert.equal(bytes.length, 3 + 1 + 8 + 12 + plainLength + 16)
  })

  test('a fresh IV for every value: the same value encrypts differently each time', () => {
    const codec = createCodec({ encryption: onlyA })
    const one = Buffer.from(codec.encode(SAMPLE, 'k'))
    const two = Buffer.from(codec.encode(SAMPLE, 'k'))
    assert.notDeepStrictEqual(one.subarray(5, 17), two.subarray(5, 17))
    assert.deepStrictEqual(codec.decode(one, 'k'), codec.decode(two, 'k'))
  })

  test('encoded bytes stand alone: later encodes do not overwrite earlier results', () => {
    const codec = createCodec({ compression: false })
    const first = codec.encode({ a: 'first' }, 'k')
    const copy = Buffer.from(first)
    for (let i = 0; i < 1000; i++) codec.encode({ a: `value ${i}`, pad: 'x'.repeat(i) }, 'k')
    assert.deepStrictEqual(Buffer.from(first), copy)
    assert.deepStrictEqual(codec.decode(first, 'k'), { a: 'first' })
  })
})

describe('compression choices', () => {
  test('default: deflate above 1 KB, nothing below', () => {
    const codec = createCodec()
    const big = codec.encode(bigRecord(), 'k')
    assert.equal(flags(big).compression, 2)
    assert.ok(big.length < msgpackSerializer.serialize(bigRecord()).length / 2, 'compressed well')
    const small = { a: 'x'.repeat(900) }
    assert.equal(flags(codec.encode(small, 'k')).compression, 0)
  })

  test('the threshold is inclusive and accepts strings', () => {
    const value = 'y'.repeat(3000)
    const size = msgpackSerializer.serialize(value).length
    assert.equal(flags(createCodec({ compression: { threshold: size } }).encode(value, 'k')).compression, 2)
    assert.equal(flags(createCodec({ compression: { threshold: size + 1 } }).encode(value, 'k')).compression, 0)
    assert.equal(flags(createCodec({ compression: { threshold: '4kb' } }).encode(value, 'k')).compression, 0)
  })

  test('incompressible data is stored uncompressed', () => {
    const random = new Uint8Array(randomBytes(4096))
    const bytes = createCodec({ compression: { threshold: 0 } }).encode(random, 'k')
    assert.equal(flags(bytes).compression, 0)
  })

  test('compression: false still reads compressed values, and any codec reads any built-in serializer', () => {
    const written = createCodec({ serializer: 'json', compression: { algorithm: 'brotli', threshold: 0 } }).encode({ a: [1, 2] }, 'k')
    assert.deepStrictEqual(createCodec({ compression: false }).decode(written, 'k'), { a: [1, 2] })
    const packed = createCodec().encode(SAMPLE, 'k')
    assert.deepStrictEqual(createCodec({ serializer: 'json' }).decode(packed, 'k'), SAMPLE)
  })

  test('the JavaScript CRC-32 fallback matches zlib', async () => {
    const { crc32 } = await import('node:zlib')
    for (const text of ['', 'a', 'The quick brown fox', 'x'.repeat(10_000)]) assert.equal(crc32js(Buffer.from(text)), crc32(text))
    assert.equal(crc32js(Buffer.from('123456789')), 0xcbf43926) // the standard check value
  })
})

describe('decode refuses bad input with DecodeError', () => {
  const plain = createCodec({ compression: false })
  const record = bigRecord(12)
  const samples: Record<string, { codec: ReturnType<typeof createCodec>; bytes: Uint8Array; value: unknown }> = {}
  for (const [name, options, value] of [
    ['msgpack', { compression: false }, SAMPLE],
    ['gzip', { compression: { algorithm: 'gzip', threshold: 0 } }, record],
    ['deflate', { compression: { algorithm: 'deflate', threshold: 0 } }, record],
    ['brotli', { compression: { algorithm: 'brotli', threshold: 0 } }, record],
    ['json object', { serializer: 'json', compression: false }, { a: [1, 2, 'three'] }],
    ['json number', { serializer: 'json', compression: false }, 1234567],
  ] as const) {
    const codec = createCodec(options as CodecOptions)
    samples[name] = { codec, bytes: codec.encode(value, 'k'), value }
  }

  test('the compressed samples are compressed', () => {
    for (const [name, code] of [['gzip', 1], ['deflate', 2], ['brotli', 3]] as const) assert.equal(flags(samples[name].bytes).compression, code, name)
  })

  for (const [name, { codec, bytes, value }] of Object.entries(samples)) {
    test(`${name}: truncation at every length`, () => {
      assert.deepStrictEqual(codec.decode(bytes, 'k'), value)
      for (let length = 0; length < bytes.length; length++) throwsCode(() => codec.decode(bytes.subarray(0, length), 'k'), ['ERR_DECODE'])
    })
  }

  for (const name of ['gzip', 'deflate', 'brotli']) {
    test(`${name}: a flipped bit in the compressed payload never yields a wrong value`, () => {
      const { codec, bytes, value } = samples[name]
      let refused = 0
      for (let i = 3; i < bytes.length; i++) {
        for (let bit = 0; bit < 8; bit++) {
          const copy = Buffer.from(bytes)
          copy[i] ^= 1 << bit
          try {
            // gzip ignores a few header fields (mtime, OS): those flips decode to the same value.
            assert.deepStrictEqual(codec.decode(copy, 'k'), value)
          } catch (err) {
            assert.ok(isCacheError(err, 'ERR_DECODE'), `byte ${i} bit ${bit}: ${String(err)}`)
            refused++
          }
        }
      }
      assert.ok(refused > (bytes.length - 3) * 6, `most flips are refused (${refused})`)
    })
  }

  test('unknown version byte', () => {
    const bytes = Buffer.from(samples.msgpack.bytes)
    for (const version of [0, 2, 255]) {
      bytes[1] = version
      assert.throws(() => plain.decode(bytes, 'k'), (err: unknown) => err instanceof DecodeError && err.message.includes(`version ${version}`))
    }
  })

  test('bad magic, reserved flag bit, unknown serializer id, unknown compression', () => {
    const base = samples.msgpack.bytes
    const mutate = (at: number, value: number): Buffer => {
      const copy = Buffer.from(base)
      copy[at] = value
      return copy
    }
    throwsCode(() => plain.decode(mutate(0, 0x82), 'k'), ['ERR_DECODE'])
    throwsCode(() => plain.decode(mutate(2, 0x81), 'k'), ['ERR_DECODE'])
    for (const id of [0, 3, 15]) throwsCode(() => plain.decode(mutate(2, id), 'k'), ['ERR_DECODE'])
    // Raw msgpack written by another program (no header) is not taken for ours.
    throwsCode(() => plain.decode(Buffer.from(msgpackSerializer.serialize({ a: 1 })), 'k'), ['ERR_DECODE'])
  })

  test('a value written by a custom serializer is unreadable without it', () => {
    const custom: Serializer = { id: 5, serialize: (v) => Buffer.from(JSON.stringify(v)), deserialize: (b) => JSON.parse(Buffer.from(b).toString()) }
    const bytes = createCodec({ serializer: custom }).encode({ a: 1 }, 'k')
    assert.deepStrictEqual(createCodec({ serializer: custom }).decode(bytes, 'k'), { a: 1 })
    throwsCode(() => plain.decode(bytes, 'k'), ['ERR_DECODE'])
  })

  test('a custom serializer whose serialize() does not return a Uint8Array is refused at encode (ERR_INVALID_OPTIONS naming codec.serializer), not written as a value no read can decode', () => {
    // Serializer.serialize(value): Uint8Array. A string or an array was framed and stored; every read was then ERR_DECODE.
    for (const [label, out] of [['string', '{"a":1}'], ['array', [1, 2]], ['number', 5], ['null', null], ['object', { length: 3 }]] as const) {
      const custom: Serializer = { id: 5, serialize: () => out as never, deserialize: (b) => b }
      throwsCode(() => createCodec({ serializer: custom }).encode({ a: 1 }, 'k'), ['ERR_INVALID_OPTIONS'])
      try {
        createCodec({ serializer: custom }).encode({ a: 1 }, 'k')
      } catch (err) {
        assert.equal((err as InvalidOptionsError).option, 'codec.serializer', label)
      }
    }
    const buffer: Serializer = { id: 5, serialize: (v) => Buffer.from(JSON.stringify(v)), deserialize: (b) => JSON.parse(Buffer.from(b).toString()) }
    assert.deepStrictEqual(createCodec({ serializer: buffer }).decode(createCodec({ serializer: buffer }).encode({ a: 1 }, 'k'), 'k'), { a: 1 })
  })

  test('anything a serializer or zlib throws arrives as DecodeError with the cause', () => {
    const broken = Buffer.concat([Buffer.from([0xc1, 1, 0x21]), Buffer.from('not deflate')])
    assert.throws(() => plain.decode(broken, 'k'), (err: unknown) => err instanceof DecodeError && err.cause instanceof Error)
    const badMsgpack = Buffer.from([0xc1, 1, 0x01, 0x92, 0x01]) // an array of two holding one item
    assert.throws(() => plain.decode(badMsgpack, 'k'), (err: unknown) => err instanceof DecodeError && err.cause instanceof Error)
  })

  test('input that is not bytes', () => {
    throwsCode(() => plain.decode('hello' as unknown as Uint8Array, 'k'), ['ERR_DECODE'])
    throwsCode(() => plain.decode(undefined as unknown as Uint8Array, 'k'), ['ERR_DECODE'])
  })

  test('decoded binary data does not alias the stored bytes', () => {
    const stored = Buffer.from(plain.encode({ buf: Buffer.from([9, 9]) }, 'k'))
    const value = plain.decode(stored, 'k') as { buf: Buffer }
    stored.fill(0)
    assert.deepStrictEqual([...value.buf], [9, 9])
    assert.ok(Buffer.isBuffer((plain.decode(new Uint8Array(plain.encode({ buf: Buffer.from([1]) }, 'k')), 'k') as { buf: unknown }).buf))
  })
})

describe('encryption', () => {
  const codec = createCodec({ encryption: onlyA })

  test('a flipped bit anywhere in a small encrypted value is refused', () => {
    const bytes = codec.encode({ a: 1 }, 'k')
    const seen = new Set<string>()
    for (let i = 0; i < bytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const copy = Buffer.from(bytes)
        copy[i] ^= 1 << bit
        const code = throwsCode(() => codec.decode(copy, 'k'), ['ERR_DECRYPT', 'ERR_DECODE'])
        // Past the key id length byte, every flip is an authentication failure (or an unknown key id).
        if (i >= 4) assert.equal(code, 'ERR_DECRYPT', `byte ${i} bit ${bit}`)
        seen.add(code)
      }
    }
    assert.deepStrictEqual([...seen].sort(), ['ERR_DECODE', 'ERR_DECRYPT'])
  })

  test('truncation at every length is refused', () => {
    const bytes = createCodec({ encryption: onlyA, compression: { threshold: 0 } }).encode(SAMPLE, 'k')
    for (let length = 0; length < bytes.length; length++) throwsCode(() => codec.decode(bytes.subarray(0, length), 'k'), ['ERR_DECODE', 'ERR_DECRYPT'])
  })

  test('wrong key under the same id', () => {
    const other = createCodec({ encryption: { keys: { a: KEY_B }, activeKeyId: 'a' } })
    throwsCode(() => other.decode(codec.encode(SAMPLE, 'k'), 'k'), ['ERR_DECRYPT'])
  })

  test('unknown key id', () => {
    const other = createCodec({ encryption: { keys: { b: KEY_A }, activeKeyId: 'b' } })
    assert.throws(() => other.decode(codec.encode(SAMPLE, 'k'), 'k'), (err: unknown) => isCacheError(err, 'ERR_DECRYPT') && err.message.includes('"a"'))
  })

  test('ciphertext replayed under another cache key', () => {
    const bytes = codec.encode(SAMPLE, 'user:1')
    assert.deepStrictEqual(codec.decode(bytes, 'user:1'), SAMPLE)
    for (const other of ['user:2', 'user:1 ', '', 'USER:1']) throwsCode(() => codec.decode(bytes, other), ['ERR_DECRYPT'])
  })

  test('keys that are equal in UTF-8 (lone surrogates) are still distinct', () => {
    assert.deepStrictEqual(Buffer.from('\uD800'), Buffer.from('\uDBFF'))
    throwsCode(() => codec.decode(codec.encode(SAMPLE, '\uD800'), '\uDBFF'), ['ERR_DECRYPT'])
  })

  test('rotation: old values decode while their key is listed, and not after', () => {
    const oldValue = createCodec({ encryption: { keys: { a: KEY_A }, activeKeyId: 'a' } }).encode(SAMPLE, 'k')
    const rotated = createCodec({ encryption: { keys: { a: KEY_A, b: KEY_B }, activeKeyId: 'b' } })
    assert.deepStrictEqual(rotated.decode(oldValue, 'k'), SAMPLE)
    const newValue = rotated.encode(SAMPLE, 'k')
    assert.equal(Buffer.from(newValue.subarray(4, 5)).toString(), 'b')
    const retired = createCodec({ encryption: { keys: { b: KEY_B }, activeKeyId: 'b' } })
    assert.deepStrictEqual(retired.decode(newValue, 'k'), SAMPLE)
    throwsCode(() => retired.decode(oldValue, 'k'), ['ERR_DECRYPT'])
  })

  test('plaintext is refused when encryption is on, and ciphertext when it is off', () => {
    throwsCode(() => codec.decode(createCodec().encode(SAMPLE, 'k'), 'k'), ['ERR_DECRYPT'])
    throwsCode(() => createCodec().decode(codec.encode(SAMPLE, 'k'), 'k'), ['ERR_DECRYPT'])
  })

  test('the flags byte is authenticated: clearing the compressed bits is refused', () => {
    const bytes = Buffer.from(createCodec({ encryption: onlyA, compression: { threshold: 0 } }).encode(bigRecord(), 'k'))
    assert.equal(flags(bytes).compression, 2)
    bytes[2] &= ~0x30
    throwsCode(() => codec.decode(bytes, 'k'), ['ERR_DECRYPT'])
  })

  test('key material as hex, base64 and base64url is the same key', () => {
    const written = codec.encode(SAMPLE, 'k')
    for (const material of [KEY_A.toString('hex'), KEY_A.toString('base64'), KEY_A.toString('base64url'), new Uint8Array(KEY_A)]) {
      assert.deepStrictEqual(createCodec({ encryption: { keys: { a: material }, activeKeyId: 'a' } }).decode(written, 'k'), SAMPLE)
    }
  })

  test('the key material is copied: zeroing the caller array changes nothing', () => {
    const material = Buffer.from(KEY_A)
    const mine = createCodec({ encryption: { keys: { a: material }, activeKeyId: 'a' } })
    material.fill(0)
    assert.deepStrictEqual(codec.decode(mine.encode(SAMPLE, 'k'), 'k'), SAMPLE)
  })

  test('a non-string cache key is refused rather than coerced', () => {
    throwsCode(() => codec.encode(SAMPLE, ['k'] as unknown as string), ['ERR_INVALID_KEY'])
  })
})

describe('maxValueBytes', () => {
  test('encode: the limit applies to the encoded size, inclusive', () => {
    const value = { s: 'z'.repeat(500) }
    const size = createCodec({ compression: false }).encode(value, 'k').length
    assert.equal(createCodec({ compression: false, maxValueBytes: size }).encode(value, 'k').length, size)
    assert.throws(
      () => createCodec({ compression: false, maxValueBytes: size - 1 }).encode(value, 'k'),
      (err: unknown) => err instanceof ValueTooLargeError && err.code === 'ERR_VALUE_TOO_LARGE' && err.size === size && err.limit === size - 1,
    )
  })

  test('encode: the encryption overhead counts', () => {
    const value = { s: 'z'.repeat(500) }
    const size = createCodec({ compression: false }).encode(value, 'k').length
    throwsCode(() => createCodec({ compression: false, maxValueBytes: size, encryption: onlyA }).encode(value, 'k'), ['ERR_VALUE_TOO_LARGE'])
  })

  test('encode: compression can bring a value under the limit, up to 8x', () => {
    const codec = createCodec({ maxValueBytes: '1kb' })
    assert.ok(codec.encode('a'.repeat(6000), 'k').length < 1024)
    throwsCode(() => codec.encode('a'.repeat(9000), 'k'), ['ERR_VALUE_TOO_LARGE'])
  })

  test('decode: larger input is refused with a DecodeError carrying the size', () => {
    const bytes = createCodec({ compression: false }).encode({ s: 'z'.repeat(2000) }, 'k')
    assert.throws(
      () => createCodec({ maxValueBytes: '1kb' }).decode(bytes, 'k'),
      (err: unknown) => err instanceof DecodeError && err.cause instanceof ValueTooLargeError && err.cause.size === bytes.length,
    )
  })

  test('decode: a decompression bomb stops at 8x the limit', () => {
    const serialized = Buffer.from(msgpackSerializer.serialize(new Uint8Array(10 * 1024 * 1024)))
    const bomb = Buffer.concat([Buffer.from([0xc1, 1, 0x21]), deflateSync(serialized)])
    assert.ok(bomb.length < 16 * 1024, `bomb is small (${bomb.length} bytes)`)
    assert.throws(
      () => createCodec({ maxValueBytes: '64kb' }).decode(bomb, 'k'),
      (err: unknown) => err instanceof DecodeError && err.cause instanceof RangeError,
    )
    assert.equal((createCodec({ maxValueBytes: '2mb' }).decode(bomb, 'k') as Uint8Array).length, 10 * 1024 * 1024)
  })
})

describe('options', () => {
  const serialize = (): Uint8Array => new Uint8Array(0)
  const deserialize = (): unknown => null
  const cases: [string, unknown, string][] = [
    ['not an object', 'msgpack', 'codec'],
    ['null', null, 'codec'],
    ['misspelt option', { encrpytion: onlyA }, 'codec.encrpytion'],
    ['unknown serializer name', { serializer: 'cbor' }, 'codec.serializer'],
    ['serializer without methods', { serializer: { id: 3 } }, 'codec.serializer'],
    ['serializer id out of range', { serializer: { id: 16, serialize, deserialize } }, 'codec.serializer.id'],
    ['serializer id not an integer', { serializer: { id: 3.5, serialize, deserialize } }, 'codec.serializer.id'],
    ['serializer id taken by a built-in', { serializer: { id: 1, serialize, deserialize } }, 'codec.serializer.id'],
    ['compression: true', { compression: true }, 'codec.compression'],
    ['compression: null', { compression: null }, 'codec.compression'],
    ['unknown algorithm', { compression: { algorithm: 'zstd' } }, 'codec.compression.algorithm'],
    ['negative threshold', { compression: { threshold: -1 } }, 'codec.compression.threshold'],
    ['malformed threshold', { compression: { threshold: '1 furlong' } }, 'codec.compression.threshold'],
    ['unknown compression option', { compression: { level: 9 } }, 'codec.compression.level'],
    ['encryption not an object', { encryption: 'secret' }, 'codec.encryption'],
    ['encryption without keys', { encryption: { activeKeyId: 'a' } }, 'codec.encryption.keys'],
    ['encryption with no keys', { encryption: { keys: {}, activeKeyId: 'a' } }, 'codec.encryption.keys'],
    ['short key', { encryption: { keys: { a: new Uint8Array(16) }, activeKeyId: 'a' } }, 'codec.encryption.keys.a'],
    ['long key', { encryption: { keys: { a: new Uint8Array(33) }, activeKeyId: 'a' } }, 'codec.encryption.keys.a'],
    ['short hex key', { encryption: { keys: { a: 'ab'.repeat(31) }, activeKeyId: 'a' } }, 'codec.encryption.keys.a'],
    ['base64 of 31 bytes', { encryption: { keys: { a: Buffer.alloc(31).toString('base64') }, activeKeyId: 'a' } }, 'codec.encryption.keys.a'],
    ['a passphrase', { encryption: { keys: { a: 'correct horse battery staple' }, activeKeyId: 'a' } }, 'codec.encryption.keys.a'],
    ['key of the wrong type', { encryption: { keys: { a: 42 }, activeKeyId: 'a' } }, 'codec.encryption.keys.a'],
    ['empty key id', { encryption: { keys: { '': KEY_A }, activeKeyId: '' } }, 'codec.encryption.keys'],
    ['key id over 255 bytes', { encryption: { keys: { ['é'.repeat(128)]: KEY_A }, activeKeyId: 'é'.repeat(128) } }, 'codec.encryption.keys'],
    ['activeKeyId not listed', { encryption: { keys: { a: KEY_A }, activeKeyId: 'b' } }, 'codec.encryption.activeKeyId'],
    ['activeKeyId missing', { encryption: { keys: { a: KEY_A } } }, 'codec.encryption.activeKeyId'],
    ['unknown encryption option', { encryption: { ...onlyA, algorithm: 'aes-128-cbc' } }, 'codec.encryption.algorithm'],
    ['maxValueBytes 0', { maxValueBytes: 0 }, 'codec.maxValueBytes'],
    ['maxValueBytes malformed', { maxValueBytes: '16 megs' }, 'codec.maxValueBytes'],
  ]
  for (const [name, options, option] of cases) {
    test(`${name} -> ERR_INVALID_OPTIONS naming ${option}`, () => {
      assert.throws(
        () => createCodec(options as CodecOptions),
        (err: unknown) => err instanceof InvalidOptionsError && err.code === 'ERR_INVALID_OPTIONS' && err.option === option && err.message.includes(option),
      )
    })
  }

  test('valid options are accepted', () => {
    const valid: CodecOptions[] = [
      {},
      { serializer: 'json', compression: false },
      { serializer: msgpackSerializer },
      { serializer: jsonSerializer },
      { serializer: { id: 0, serialize, deserialize } },
      { compression: { algorithm: 'gzip', threshold: '64kb' } },
      { compression: { threshold: 0 } },
      { encryption: { keys: { a: KEY_A.toString('hex'), b: KEY_B.toString('base64') }, activeKeyId: 'b' }, maxValueBytes: '1mb' },
    ]
    for (const options of valid) assert.equal(typeof createCodec(options).encode, 'function')
  })
})
