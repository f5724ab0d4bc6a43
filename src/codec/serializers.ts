import { Packr } from 'msgpackr'

/**
 * Turns a value into bytes and back. `id` (0..15) is written into every encoded value's
 * header so a reader knows which serializer wrote it; ids 1 and 2 belong to the built-ins.
 *
 * `deserialize` must throw on input it did not produce, including truncated input: the
 * codec reports any throw as a DecodeError, but cannot tell a wrong value from a right one.
 * The codec copies the result of `serialize` before the next call, so a serializer may
 * return a view into a reused buffer.
 */
export interface Serializer {
  readonly id: number
  serialize(value: unknown): Uint8Array
  deserialize(bytes: Uint8Array): unknown
}

// moreTypes: Map, Set, RegExp, Error, typed arrays and bigints wider than 64 bits (an
// extension) round-trip; 64-bit bigints go as int64 and come back as bigint (the default
// int64AsType), so a BigInt never turns into a float. Plain numbers stay numbers.
//
// Records (msgpackr's default) stay on: with `useRecords: false` a plain object and a Map are
// both MessagePack maps and one of them comes back as the other. Without shared structures
// each record definition is written inline, so every value decodes on its own.
//
// copyBuffers: a decoded Buffer would otherwise be a view into the input, which the store
// may reuse (LMDB) or hand to others; the copy is paid only by values holding binary data.
//
// Not structuredClone: it tracks object identity on every encode (about 30% slower in our
// measurement) to support cycles and shared references, which cached data rarely has.
//
// writeFunction: msgpackr writes a function (the value itself, or one inside it) as
// undefined, so another process would read a decode error or the value without it; throwing
// here makes the codec refuse it (ERR_INVALID_VALUE) before anything is written. It is called
// for functions only: other values pay nothing.
const packr = new Packr({
  moreTypes: true,
  copyBuffers: true,
  writeFunction: (): never => {
    throw new TypeError('a function cannot be encoded')
  },
})

/**
 * MessagePack via msgpackr, the default (id 1). Round-trips Date, BigInt of any size, Map,
 * Set, RegExp, Error, typed arrays, Buffer, null, and undefined inside objects and arrays.
 * Known losses: -0 becomes 0, lone UTF-16 surrogates become U+FFFD, an own `__proto__` key
 * is renamed `__proto_` (msgpackr's guard against prototype pollution), class instances
 * come back as plain objects. Cycles, symbols and functions (anywhere in the value) are not
 * supported (encode throws).
 */
export const msgpackSerializer: Serializer = {
  id: 1,
  serialize(value: unknown): Uint8Array {
    return packr.pack(value)
  },
  deserialize(bytes: Uint8Array): unknown {
    // msgpackr gives back a Buffer value as Buffer only when its input is a Buffer; a view
    // over the same memory costs no copy.
    const input = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    return packr.unpack(input)
  },
}

const NEWLINE = 0x0a
const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Plain JSON (id 2), for stores read by other programs. Lossy: Date becomes an ISO string,
 * Map/Set become `{}`, undefined properties vanish, BigInt cannot be encoded (TypeError),
 * -0 becomes 0. The text ends with a newline: a JSON number cut short is still a valid
 * number, so the newline is what lets a truncated value be told from a complete one.
 */
export const jsonSerializer: Serializer = {
  id: 2,
  serialize(value: unknown): Uint8Array {
    const text = JSON.stringify(value)
    // JSON.stringify returns undefined (not a string) for undefined, functions and symbols.
    if (typeof text !== 'string') throw new TypeError(`A value of type ${typeof value} cannot be encoded as JSON`)
    return Buffer.from(`${text}\n`, 'utf8')
  },
  deserialize(bytes: Uint8Array): unknown {
    if (bytes.length === 0 || bytes[bytes.length - 1] !== NEWLINE) throw new Error('JSON payload is truncated (no final newline)')
    // fatal: invalid UTF-8 must fail, not decode into U+FFFD and a different string.
    return JSON.parse(utf8.decode(bytes))
  },
}
