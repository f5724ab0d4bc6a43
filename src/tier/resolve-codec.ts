/** Turns the facade's `codec` option into a codec: options go to `createCodec`, a ready codec is used as is. */
import { InvalidOptionsError } from '../core/errors.js'
import { createCodec, type CodecOptions } from '../codec/index.js'
import type { ValueCodec } from './l2-tier.js'

export type { CodecOptions }

export function resolveCodec(codec: CodecOptions | ValueCodec | undefined): ValueCodec {
  if (codec === undefined) return createCodec()
  if (codec === null || typeof codec !== 'object') throw new InvalidOptionsError('codec', 'expected codec options or an object with encode and decode')
  const c = codec as Partial<ValueCodec>
  if (typeof c.encode === 'function' && typeof c.decode === 'function') return codec as ValueCodec
  return createCodec(codec as CodecOptions)
}
