// The codec module: values to L2-store bytes and back (serialization, compression, encryption).
export { createCodec } from './codec.js'
export type { Codec, CodecOptions } from './codec.js'
export type { CompressionAlgorithm } from './compression.js'
export type { EncryptionOptions } from './encryption.js'
export { jsonSerializer, msgpackSerializer } from './serializers.js'
export type { Serializer } from './serializers.js'
