import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { jsonSerializer, msgpackSerializer } from '../../src/codec/index.js'

const roundTrip = (value: unknown): unknown => msgpackSerializer.deserialize(Buffer.from(msgpackSerializer.serialize(value)))

describe('msgpackSerializer', () => {
  test('has id 1', () => assert.equal(msgpackSerializer.id, 1))

  test('round-trips every promised type, deep-equal', () => {
    const value = {
      date: new Date(1_234_567_890_123),
      oldDate: new Date(-62_000_000_000_000),
      small: 5n,
      int64: -(2n ** 63n),
      uint64: 2n ** 64n - 1n,
      wide: -(2n ** 200n) + 12345n,
      map: new Map<unknown, unknown>([[1, 'one'], ['k', { x: [1, 2] }], [true, null]]),
      emptyMap: new Map(),
      set: new Set([1, 'a', 2n]),
      u8: new Uint8Array([0, 255]),
      f64: new Float64Array([1.5, NaN, -0, Infinity]),
      i16: new Int16Array([-3, 7]),
      u64: new BigUint64Array([2n ** 64n - 1n]),
      buf: Buffer.from('bytes'),
      nil: null,
      undef: undefined,
      list: [undefined, null, 0, '', [], {}],
      regex: /a(b+)c/gimsu,
      nested: { a: { b: { c: [{ d: new Map([['e', new Set([new Date(0)])]]) }] } } },
      big: 2 ** 60,
      float: 0.1,
      unicode: 'é😀\u0000',
    }
    assert.deepStrictEqual(roundTrip(value), value)
  })

  test('a BigInt stays a BigInt at every width (no float, no string)', () => {
    for (const n of [0n, 1n, -1n, 2n ** 53n + 1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n, 2n ** 1000n + 1n, -(2n ** 1000n)]) {
      const out = roundTrip(n)
      assert.equal(typeof out, 'bigint', `type of ${n}`)
      assert.equal(out, n)
    }
  })

  test('numbers stay numbers, including integers beyond 2^53', () => {
    for (const n of [0, -1, 2 ** 31, 2 ** 53 + 2, -(2 ** 60), 1e300, NaN, Infinity]) assert.equal(roundTrip(n), n)
  })

  test('Buffer comes back as Buffer and Uint8Array as Uint8Array, whatever the input type', () => {
    const bytes = msgpackSerializer.serialize({ buf: Buffer.from([1, 2]), u8: new Uint8Array([3]) })
    const fromPlain = msgpackSerializer.deserialize(new Uint8Array(bytes)) as { buf: unknown; u8: unknown }
    assert.ok(Buffer.isBuffer(fromPlain.buf))
    assert.equal(Object.getPrototypeOf(fromPlain.u8), Uint8Array.prototype)
  })

  test('decoded binary data is a copy, not a view into the input', () => {
    const input = Buffer.from(msgpackSerializer.serialize({ buf: Buffer.from([1, 2, 3]) }))
    const out = msgpackSerializer.deserialize(input) as { buf: Buffer }
    input.fill(0)
    assert.deepStrictEqual([...out.buf], [1, 2, 3])
  })

  test('an invalid Date comes back invalid', () => {
    const out = roundTrip(new Date(NaN))
    assert.ok(out instanceof Date)
    assert.ok(Number.isNaN(out.getTime()))
  })

  test('documented losses: -0 becomes 0, an own __proto__ key is renamed', () => {
    assert.ok(Object.is(roundTrip(-0), 0))
    const out = roundTrip(JSON.parse('{"__proto__": 1}')) as Record<string, unknown>
    assert.equal(Object.getPrototypeOf(out), Object.prototype, 'no prototype pollution')
    assert.deepStrictEqual(Object.keys(out), ['__proto_'])
  })

  test('refuses a function anywhere in the value (msgpackr would write it as undefined)', () => {
    assert.throws(() => msgpackSerializer.serialize(() => 1), TypeError)
    assert.throws(() => msgpackSerializer.serialize({ id: 1, load() {} }), TypeError)
    assert.throws(() => msgpackSerializer.serialize([1, [async () => 2]]), TypeError)
    assert.throws(() => msgpackSerializer.serialize(new Map([['k', () => 3]])), TypeError)
  })

  test('throws on empty, truncated and trailing-garbage input', () => {
    const bytes = Buffer.from(msgpackSerializer.serialize({ a: [1, 2, 3] }))
    assert.throws(() => msgpackSerializer.deserialize(new Uint8Array(0)))
    assert.throws(() => msgpackSerializer.deserialize(bytes.subarray(0, bytes.length - 1)))
    assert.throws(() => msgpackSerializer.deserialize(Buffer.concat([bytes, Buffer.from([0])])))
  })
})

describe('jsonSerializer', () => {
  test('has id 2 and writes newline-terminated JSON text', () => {
    assert.equal(jsonSerializer.id, 2)
    assert.equal(Buffer.from(jsonSerializer.serialize({ a: [1, 'x'] })).toString('utf8'), '{"a":[1,"x"]}\n')
  })

  test('is lossy the way JSON is', () => {
    const out = jsonSerializer.deserialize(jsonSerializer.serialize({ d: new Date(0), m: new Map([[1, 2]]), u: undefined, n: -0 }))
    assert.deepStrictEqual(out, { d: '1970-01-01T00:00:00.000Z', m: {}, n: 0 })
  })

  test('a number cut short is refused, not read as a smaller number', () => {
    const bytes = jsonSerializer.serialize(12345)
    assert.equal(jsonSerializer.deserialize(bytes), 12345)
    assert.throws(() => jsonSerializer.deserialize(bytes.subarray(0, bytes.length - 1)), /truncated/)
    assert.throws(() => jsonSerializer.deserialize(bytes.subarray(0, 3)), /truncated/)
  })

  test('invalid UTF-8 is refused, not replaced', () => {
    assert.throws(() => jsonSerializer.deserialize(Buffer.from([0x22, 0xff, 0x22, 0x0a])), TypeError)
  })

  test('refuses what JSON cannot encode', () => {
    assert.throws(() => jsonSerializer.serialize(undefined), TypeError)
    assert.throws(() => jsonSerializer.serialize(() => 1), TypeError)
    assert.throws(() => jsonSerializer.serialize({ n: 1n }), TypeError)
  })
})
