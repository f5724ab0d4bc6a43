/**
 * The codec: a value to the bytes an L2 store holds, and back.
 *
 * Wire format, version 1:
 *
 *   offset  size  field
 *   0       1     magic 0xC1: a byte MessagePack never uses and UTF-8 never starts with, so raw
 *                 msgpack or JSON written by another program is never taken for ours
 *   1       1     wire-format version: 1
 *   2       1     flags  bits 0-3  serializer id (1 msgpack, 2 json, 0 and 3..15 custom)
 *                        bits 4-5  compression: 0 none, 1 gzip, 2 deflate (zlib format), 3 brotli
 *                        bit  6    encrypted (AES-256-GCM)
 *                        bit  7    reserved, 0; a reader rejects 1
 *   -- only if encrypted --
 *   3       1     key id length n (1..255)
 *   4       n     key id, UTF-8
 *   4+n     12    IV, random for each value
 *   -- always --
 *   ...           payload: the serialized value, compressed if flagged, then encrypted if flagged;
 *                 a brotli stream is followed by a CRC-32 (big-endian) of the uncompressed bytes,
 *                 since brotli has no checksum of its own (gzip and zlib do)
 *   end-16  16    GCM tag (only if encrypted)
 *
 * Encryption's associated data is the whole header (magic through IV) followed by the cache
 * key as UTF-16LE (unlike UTF-8, one byte string per JS string, lone surrogates included). So
 * a value copied under another key, a changed flag or key id, or any flipped bit fails
 * authentication. Compression comes first: ciphertext does not compress.
 *
 * Without encryption nothing checks an uncompressed payload: a flipped bit in it can decode to
 * another value. Checksums cover compressed payloads; only encryption authenticates.
 */
import { constants as bufferConstants } from 'node:buffer'
import { randomFillSync } from 'node:crypto'
import { toBytes, type ByteSize } from '../core/duration.js'
import { DecodeError, DecryptError, InvalidKeyError, InvalidOptionsError, ValueTooLargeError, describeKey } from '../core/errors.js'
import { rejectUnknown } from '../core/known-options.js'
import { ALGORITHM_CODES, compress, decompress, type CompressionAlgorithm } from './compression.js'
import { createKeyring, IV_BYTES, open, seal, TAG_BYTES, type EncryptionOptions, type Keyring } from './encryption.js'
import { jsonSerializer, msgpackSerializer, type Serializer } from './serializers.js'

export interface CodecOptions {
  /** How values become bytes. Default `'msgpack'`. Values written by either built-in stay readable after a switch. */
  serializer?: 'msgpack' | 'json' | Serializer
  /** Default `{ algorithm: 'deflate', threshold: '1kb' }`; `false` turns it off (compressed values stay readable). */
  compression?: false | { algorithm?: CompressionAlgorithm; threshold?: ByteSize }
  /** AES-256-GCM. Keys are 32 bytes: a Uint8Array, 64 hex characters or base64. Default: none. */
  encryption?: EncryptionOptions
  /** Largest encoded value, default `'16mb'`. The serialized form may be at most 8 times this. */
  maxValueBytes?: ByteSize
}

export interface Codec {
  /** Bytes for `value` stored under `key`. Throws ValueTooLargeError, or what the serializer throws. */
  encode(value: unknown, key: string): Uint8Array
  /** The value `encode` was given. Throws DecodeError or DecryptError, never another value. */
  decode(bytes: Uint8Array, key: string): unknown
}

const MAGIC = 0xc1
const VERSION = 1
const PLAIN_HEADER_BYTES = 3
const SERIALIZER_MASK = 0x0f
const COMPRESSION_SHIFT = 4
const COMPRESSION_MASK = 0x30
const ENCRYPTED = 0x40
const RESERVED = 0x80

const DEFAULT_MAX_VALUE_BYTES = 16 * 1024 ** 2
const DEFAULT_THRESHOLD_BYTES = 1024
// Without a bound on the inflated size, a few KB of crafted deflate could claim gigabytes.
// Encode applies the same bound, so whatever this codec writes, it can read back.
const MAX_EXPANSION = 8

const BUILT_IN: readonly Serializer[] = [msgpackSerializer, jsonSerializer]

interface Config {
  serializer: Serializer
  readers: readonly (Serializer | undefined)[]
  compression: number // 0 = off, else the algorithm's code
  threshold: number
  keyring: Keyring | undefined
  maxValueBytes: number
  maxSerializedBytes: number
}

/** Builds a codec; every option is checked here, and a bad one raises InvalidOptionsError naming it. */
export function createCodec(options: CodecOptions = {}): Codec {
  return new WireCodec(resolve(options, 'codec'))
}

class WireCodec implements Codec {
  readonly #c: Config

  constructor(config: Config) {
    this.#c = config
  }

  encode(value: unknown, key: string): Uint8Array {
    const c = this.#c
    const serialized = c.serializer.serialize(value)
    // Anything else was framed and stored as a value no read could decode (ERR_DECODE on every read).
    if (!(serialized instanceof Uint8Array)) {
      throw new InvalidOptionsError('codec.serializer', `serialize() must return a Uint8Array, got ${serialized === null ? 'null' : Array.isArray(serialized) ? 'an array' : typeof serialized}`)
    }
    if (serialized.length > c.maxSerializedBytes) throw new ValueTooLargeError(serialized.length, c.maxSerializedBytes, 'serialized value')
    let payload = serialized
    let flags = c.serializer.id
    if (c.compression !== 0 && serialized.length >= c.threshold) {
      const packed = compress(c.compression, serialized)
      // Incompressible data (already compressed, random) is kept as is: smaller and faster to read.
      if (packed.length < serialized.length) {
        payload = packed
        flags |= c.compression << COMPRESSION_SHIFT
      }
    }
    return c.keyring === undefined ? this.#frame(flags, payload) : this.#seal(c.keyring, flags, payload, key)
  }

  decode(bytes: Uint8Array, key: string): unknown {
    const c = this.#c
    if (!(bytes instanceof Uint8Array)) throw new DecodeError(`Stored value for key ${describeKey(key)} is not bytes`)
    if (bytes.length > c.maxValueBytes) {
      const cause = new ValueTooLargeError(bytes.length, c.maxValueBytes, 'stored value')
      throw new DecodeError(`Stored value for key ${describeKey(key)} is larger than maxValueBytes`, { cause })
    }
    if (bytes.length < PLAIN_HEADER_BYTES || bytes[0] !== MAGIC) throw fail(key, 'it is not a stratacache value (bad magic byte or too short)')
    if (bytes[1] !== VERSION) throw fail(key, `unknown wire-format version ${bytes[1]}`)
    const flags = bytes[2]
    if ((flags & RESERVED) !== 0) throw fail(key, 'a reserved flag bit is set')
    const serializer = c.readers[flags & SERIALIZER_MASK]
    if (serializer === undefined) throw fail(key, `unknown serializer id ${flags & SERIALIZER_MASK}`)

    let payload: Uint8Array
    if ((flags & ENCRYPTED) !== 0) payload = this.#open(bytes, key)
    // Accepting plaintext here would let anyone who can write to the store bypass authentication.
    else if (c.keyring !== undefined) throw new DecryptError(`Stored value for key ${describeKey(key)} is not encrypted, but this codec requires encryption`)
    else payload = bytes.subarray(PLAIN_HEADER_BYTES)

    const algorithm = (flags & COMPRESSION_MASK) >> COMPRESSION_SHIFT
    try {
      if (algorithm !== 0) payload = decompress(algorithm, payload, c.maxSerializedBytes)
      return serializer.deserialize(payload)
    } catch (cause) {
      throw fail(key, algorithm !== 0 ? 'corrupt compressed payload or serialized value' : 'corrupt serialized value', cause)
    }
  }

  #frame(flags: number, payload: Uint8Array): Uint8Array {
    const size = PLAIN_HEADER_BYTES + payload.length
    this.#checkSize(size)
    // One copy: the serializer's output may be a view into a reused slab (msgpackr's is).
    const out = Buffer.allocUnsafe(size)
    out[0] = MAGIC
    out[1] = VERSION
    out[2] = flags
    out.set(payload, PLAIN_HEADER_BYTES)
    return out
  }

  #seal(keyring: Keyring, flags: number, payload: Uint8Array, key: string): Uint8Array {
    const cacheKey = keyBytes(key)
    const idBytes = keyring.activeIdBytes
    const ivAt = PLAIN_HEADER_BYTES + 1 + idBytes.length
    const headerBytes = ivAt + IV_BYTES
    const size = headerBytes + payload.length + TAG_BYTES
    this.#checkSize(size)
    const out = Buffer.allocUnsafe(size)
    out[0] = MAGIC
    out[1] = VERSION
    out[2] = flags | ENCRYPTED
    out[3] = idBytes.length
    idBytes.copy(out, PLAIN_HEADER_BYTES + 1)
    // A GCM IV must never repeat under one key; 96 random bits make that safe for about 2^32 values per key.
    randomFillSync(out, ivAt, IV_BYTES)
    seal(keyring.activeKey, out.subarray(ivAt, headerBytes), out.subarray(0, headerBytes), cacheKey, payload, out, headerBytes)
    return out
  }

  #open(bytes: Uint8Array, key: string): Uint8Array {
    const keyring = this.#c.keyring
    if (keyring === undefined) throw new DecryptError(`Stored value for key ${describeKey(key)} is encrypted, but this codec has no keys`)
    const cacheKey = keyBytes(key)
    if (bytes.length < PLAIN_HEADER_BYTES + 1) throw fail(key, 'truncated header')
    const idLength = bytes[PLAIN_HEADER_BYTES]
    const ivAt = PLAIN_HEADER_BYTES + 1 + idLength
    const headerBytes = ivAt + IV_BYTES
    if (idLength === 0) throw fail(key, 'empty key id')
    if (bytes.length < headerBytes + TAG_BYTES) throw fail(key, 'truncated encrypted value')
    const id = Buffer.from(bytes.buffer, bytes.byteOffset + PLAIN_HEADER_BYTES + 1, idLength).toString('utf8')
    const secret = keyring.keys.get(id)
    if (secret === undefined) throw new DecryptError(`Stored value for key ${describeKey(key)} was encrypted with key id ${JSON.stringify(id)}, which is not configured`)
    const tagAt = bytes.length - TAG_BYTES
    try {
      return open(secret, bytes.subarray(ivAt, headerBytes), bytes.subarray(0, headerBytes), cacheKey, bytes.subarray(headerBytes, tagAt), bytes.subarray(tagAt))
    } catch (cause) {
      throw new DecryptError(`Stored value for key ${describeKey(key)} failed authentication (tampered, wrong key, or written under another key)`, { cause })
    }
  }

  #checkSize(size: number): void {
    if (size > this.#c.maxValueBytes) throw new ValueTooLargeError(size, this.#c.maxValueBytes)
  }
}

function fail(key: string, reason: string, cause?: unknown): DecodeError {
  return new DecodeError(`Stored value for key ${describeKey(key)} cannot be decoded: ${reason}`, cause === undefined ? undefined : { cause })
}

function keyBytes(key: string): Buffer {
  // Buffer.from would happily turn an array or an ArrayBuffer into bytes; only a string is a cache key.
  if (typeof key !== 'string') throw new InvalidKeyError(`A cache key must be a string to bind encrypted values, got ${typeof key}`)
  return Buffer.from(key, 'utf16le')
}

function resolve(options: unknown, prefix: string): Config {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError(prefix, 'expected an object')
  rejectUnknown(options, ['serializer', 'compression', 'encryption', 'maxValueBytes'], prefix)
  const o = options as CodecOptions
  const serializer = resolveSerializer(o.serializer, `${prefix}.serializer`)
  const readers: (Serializer | undefined)[] = new Array<Serializer | undefined>(SERIALIZER_MASK + 1).fill(undefined)
  for (const s of BUILT_IN) readers[s.id] = s
  readers[serializer.id] = serializer

  // deflate by measurement: gzip's ratio and speed less 12 bytes of framing, the fastest to
  // inflate at every size (a cache reads more than it writes). Brotli was 11-16% smaller but
  // up to 50% slower to compress small values and 20-35% slower to inflate large ones.
  let compression = ALGORITHM_CODES.deflate
  let threshold = DEFAULT_THRESHOLD_BYTES
  if (o.compression === false) compression = 0
  else if (o.compression !== undefined) {
    const opt = `${prefix}.compression`
    if (o.compression === null || typeof o.compression !== 'object') throw new InvalidOptionsError(opt, 'expected false or { algorithm, threshold }')
    rejectUnknown(o.compression, ['algorithm', 'threshold'], opt)
    const { algorithm, threshold: t } = o.compression
    if (algorithm !== undefined) {
      if (typeof algorithm !== 'string' || !Object.hasOwn(ALGORITHM_CODES, algorithm)) {
        throw new InvalidOptionsError(`${opt}.algorithm`, `expected 'gzip', 'brotli' or 'deflate', got ${JSON.stringify(algorithm)}`)
      }
      compression = ALGORITHM_CODES[algorithm]
    }
    // 0 means "compress everything"; toBytes wants at least 1 byte.
    if (t !== undefined) threshold = t === 0 ? 0 : toBytes(t, `${opt}.threshold`)
  }

  const keyring = o.encryption === undefined ? undefined : createKeyring(o.encryption, `${prefix}.encryption`)
  const maxValueBytes = o.maxValueBytes === undefined ? DEFAULT_MAX_VALUE_BYTES : toBytes(o.maxValueBytes, `${prefix}.maxValueBytes`)
  const maxSerializedBytes = Math.min(maxValueBytes * MAX_EXPANSION, bufferConstants.MAX_LENGTH)
  return { serializer, readers, compression, threshold, keyring, maxValueBytes, maxSerializedBytes }
}

function resolveSerializer(value: unknown, option: string): Serializer {
  if (value === undefined || value === 'msgpack') return msgpackSerializer
  if (value === 'json') return jsonSerializer
  if (value === null || typeof value !== 'object') throw new InvalidOptionsError(option, `expected 'msgpack', 'json' or a Serializer, got ${JSON.stringify(value)}`)
  const s = value as Partial<Serializer>
  if (typeof s.serialize !== 'function' || typeof s.deserialize !== 'function') {
    throw new InvalidOptionsError(option, 'a custom serializer needs serialize(value) and deserialize(bytes) methods')
  }
  if (BUILT_IN.includes(s as Serializer)) return s as Serializer
  const id = s.id
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > SERIALIZER_MASK) {
    throw new InvalidOptionsError(`${option}.id`, `expected an integer from 0 to 15, got ${String(id)}`)
  }
  // A custom serializer reading data the built-in wrote under the same id would return garbage.
  if (BUILT_IN.some((b) => b.id === id)) throw new InvalidOptionsError(`${option}.id`, `ids 1 and 2 belong to the built-in serializers; use 0 or 3..15`)
  return s as Serializer
}
