/**
 * Bus messages and their wire format.
 *
 * Layout: byte 0 = 0x5C (magic), byte 1 = format version (1), then msgpack of a
 * fixed-position array `[sender, epoch, seq, kind, namespace, body]`:
 * - `sender`: the sending Bus's random id (a process ignores its own messages);
 * - `epoch`: the sender's start time in ms plus a random fraction: a restarted sender has
 *   a new, larger epoch;
 * - `seq`: per sender and epoch, 1, 2, 3, … for data messages; a heartbeat carries the seq
 *   of the sender's last data message, so a receiver notices a lost message even when no
 *   other data message follows it;
 * - `kind` and `body`: `d` delete (body = keys), `t` tags (body = [tag, version, mode 0|1]
 *   triples), `c` clear (body = null), `h` heartbeat and `b` goodbye (a sender closing:
 *   namespace '' and body null; both carry the seq of the sender's last data message).
 * Anything else (wrong magic, unknown version, malformed array) is refused with
 * `ERR_DECODE`; the Bus counts it and drops it.
 */
import { Packr } from 'msgpackr'
import { DecodeError } from '../core/errors.js'

export const BUS_MAGIC = 0x5c
export const BUS_FORMAT = 1

export type BusBody =
  | { readonly kind: 'delete'; readonly namespace: string; readonly keys: readonly string[] }
  | { readonly kind: 'tags'; readonly namespace: string; readonly tags: readonly TagVersion[] }
  | { readonly kind: 'clear'; readonly namespace: string }
  | { readonly kind: 'heartbeat' }
  | { readonly kind: 'bye' }

export interface TagVersion {
  readonly tag: string
  readonly version: number
  readonly mode: 'hard' | 'soft'
}

export interface BusMessage {
  readonly sender: string
  readonly epoch: number
  readonly seq: number
  readonly body: BusBody
}

const packr = new Packr({ useRecords: false })

export function encodeMessage(m: BusMessage): Uint8Array {
  const b = m.body
  let kind: string
  let namespace = ''
  let body: unknown = null
  switch (b.kind) {
    case 'delete':
      kind = 'd'
      namespace = b.namespace
      body = b.keys
      break
    case 'tags':
      kind = 't'
      namespace = b.namespace
      body = b.tags.map((t) => [t.tag, t.version, t.mode === 'hard' ? 0 : 1])
      break
    case 'clear':
      kind = 'c'
      namespace = b.namespace
      break
    case 'heartbeat':
      kind = 'h'
      break
    case 'bye':
      kind = 'b'
      break
  }
  const packed = packr.pack([m.sender, m.epoch, m.seq, kind, namespace, body])
  const out = new Uint8Array(packed.length + 2)
  out[0] = BUS_MAGIC
  out[1] = BUS_FORMAT
  out.set(packed, 2)
  return out
}

export function decodeMessage(bytes: Uint8Array): BusMessage {
  if (bytes.length < 3 || bytes[0] !== BUS_MAGIC) throw new DecodeError('Not a stratacache bus message')
  if (bytes[1] !== BUS_FORMAT) throw new DecodeError(`Unknown bus message format ${String(bytes[1])}`)
  let raw: unknown
  try {
    raw = packr.unpack(bytes.subarray(2))
  } catch (err) {
    throw new DecodeError('Malformed bus message', { cause: err })
  }
  if (!Array.isArray(raw) || raw.length !== 6) throw new DecodeError('Malformed bus message')
  const [sender, epoch, seq, kind, namespace, body] = raw as [unknown, unknown, unknown, unknown, unknown, unknown]
  if (typeof sender !== 'string' || typeof epoch !== 'number' || !Number.isSafeInteger(seq) || (seq as number) < 0 || typeof namespace !== 'string') {
    throw new DecodeError('Malformed bus message header')
  }
  const head = { sender, epoch, seq: seq as number }
  switch (kind) {
    case 'd':
      if (!Array.isArray(body) || !body.every((k) => typeof k === 'string')) throw new DecodeError('Malformed delete message')
      return { ...head, body: { kind: 'delete', namespace, keys: body as string[] } }
    case 't': {
      if (!Array.isArray(body)) throw new DecodeError('Malformed tags message')
      const tags = body.map((t: unknown) => {
        if (!Array.isArray(t) || typeof t[0] !== 'string' || !Number.isSafeInteger(t[1]) || (t[2] !== 0 && t[2] !== 1)) throw new DecodeError('Malformed tag in tags message')
        return { tag: t[0], version: t[1] as number, mode: t[2] === 0 ? ('hard' as const) : ('soft' as const) }
      })
      return { ...head, body: { kind: 'tags', namespace, tags } }
    }
    case 'c':
      return { ...head, body: { kind: 'clear', namespace } }
    case 'h':
      return { ...head, body: { kind: 'heartbeat' } }
    case 'b':
      return { ...head, body: { kind: 'bye' } }
    default:
      throw new DecodeError(`Unknown bus message kind ${JSON.stringify(kind)}`)
  }
}
