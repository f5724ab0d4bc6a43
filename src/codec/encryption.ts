import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto'
import { InvalidOptionsError } from '../core/errors.js'
import { rejectUnknown } from '../core/known-options.js'

export const IV_BYTES = 12
export const TAG_BYTES = 16
const KEY_BYTES = 32
const MAX_KEY_ID_BYTES = 255 // its length is one byte in the header
const HEX_KEY = /^[0-9a-fA-F]{64}$/
// 32 bytes are 43 base64 characters plus one '=' of padding (optional); base64url allowed.
const BASE64_KEY = /^[A-Za-z0-9+/]{43}=?$|^[A-Za-z0-9_-]{43}=?$/

export interface EncryptionOptions {
  keys: Record<string, Uint8Array | string>
  activeKeyId: string
}

/** Validated key material: new values use `activeId`; any listed key decrypts. */
export interface Keyring {
  readonly activeId: string
  readonly activeIdBytes: Buffer
  readonly activeKey: KeyObject
  readonly keys: ReadonlyMap<string, KeyObject>
}

export function createKeyring(options: unknown, prefix: string): Keyring {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError(prefix, 'expected { keys, activeKeyId }')
  rejectUnknown(options, ['keys', 'activeKeyId'], prefix)
  const { keys, activeKeyId } = options as Partial<EncryptionOptions>
  if (keys === null || typeof keys !== 'object' || Array.isArray(keys)) {
    throw new InvalidOptionsError(`${prefix}.keys`, 'expected an object mapping key ids to 32-byte keys')
  }
  const ring = new Map<string, KeyObject>()
  for (const [id, material] of Object.entries(keys)) {
    const idBytes = Buffer.byteLength(id, 'utf8')
    if (idBytes === 0 || idBytes > MAX_KEY_ID_BYTES) {
      throw new InvalidOptionsError(`${prefix}.keys`, `key ids must be 1 to ${MAX_KEY_ID_BYTES} bytes of UTF-8, got ${JSON.stringify(id)}`)
    }
    ring.set(id, toKey(material, `${prefix}.keys.${id}`))
  }
  if (ring.size === 0) throw new InvalidOptionsError(`${prefix}.keys`, 'expected at least one key')
  if (typeof activeKeyId !== 'string' || !ring.has(activeKeyId)) {
    throw new InvalidOptionsError(`${prefix}.activeKeyId`, `expected one of the ids in ${prefix}.keys, got ${JSON.stringify(activeKeyId)}`)
  }
  return { activeId: activeKeyId, activeIdBytes: Buffer.from(activeKeyId, 'utf8'), activeKey: ring.get(activeKeyId) as KeyObject, keys: ring }
}

// A KeyObject copies the material: a caller zeroing or reusing its array changes nothing here.
function toKey(material: unknown, option: string): KeyObject {
  let bytes: Buffer
  if (material instanceof Uint8Array) {
    bytes = Buffer.from(material)
  } else if (typeof material === 'string' && HEX_KEY.test(material)) {
    bytes = Buffer.from(material, 'hex')
  } else if (typeof material === 'string' && BASE64_KEY.test(material)) {
    bytes = Buffer.from(material, material.includes('-') || material.includes('_') ? 'base64url' : 'base64')
  } else if (typeof material === 'string') {
    throw new InvalidOptionsError(option, 'expected 32 bytes as a Uint8Array, 64 hex characters or 44 base64 characters')
  } else {
    throw new InvalidOptionsError(option, `expected a Uint8Array or a hex/base64 string, got ${typeof material}`)
  }
  if (bytes.length !== KEY_BYTES) throw new InvalidOptionsError(option, `expected a key of exactly ${KEY_BYTES} bytes, got ${bytes.length}`)
  return createSecretKey(bytes)
}


/**
 * Encrypts `plaintext` into `out` from `at`, then writes the tag. `header` is the whole header
 * (IV included) and `cacheKey` the associated data binding it to this key. `out` must hold
 * `at + plaintext.length + TAG_BYTES` bytes.
 */
export function seal(key: KeyObject, iv: Uint8Array, header: Uint8Array, cacheKey: Uint8Array, plaintext: Uint8Array, out: Buffer, at: number): void {
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
  cipher.setAAD(header)
  cipher.setAAD(cacheKey)
  // GCM is a stream mode: ciphertext is exactly as long as plaintext.
  const body = cipher.update(plaintext)
  body.copy(out, at)
  const rest = cipher.final()
  rest.copy(out, at + body.length)
  cipher.getAuthTag().copy(out, at + plaintext.length)
}

/** Decrypts and authenticates; throws (OpenSSL's error) when anything does not match. */
export function open(key: KeyObject, iv: Uint8Array, header: Uint8Array, cacheKey: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
  decipher.setAAD(header)
  decipher.setAAD(cacheKey)
  decipher.setAuthTag(tag)
  const body = decipher.update(ciphertext)
  const rest = decipher.final()
  return rest.length === 0 ? body : Buffer.concat([body, rest])
}

