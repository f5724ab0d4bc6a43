/** One `serve` setting: a flag, a STRATACACHE_* variable and a config-file key (serve.ts, serve-cluster.ts). */
import type { NodeOptions } from '../server/node-options.js'

/** How a setting's text is read; `list`: comma-separated (or, in the config file, a JSON array of strings). */
export type Kind = 'string' | 'int' | 'number' | 'bytes' | 'duration' | 'bool' | 'list'

export interface Setting {
  readonly name: keyof NodeOptions
  readonly kind: Kind
  readonly def: string
  readonly help: string
  readonly secret?: boolean
}
