/**
 * `stratacache serve` (and `npm start`): runs one cache node until SIGINT/SIGTERM.
 *
 * Configuration, highest precedence first: command-line flags, `STRATACACHE_*`
 * environment variables, a JSON config file (`--config` / `STRATACACHE_CONFIG`), the
 * defaults. Every setting has the three spellings of one `NodeOptions` field
 * (`--max-in-flight`, `STRATACACHE_MAX_IN_FLIGHT`, `"maxInFlight"`). The effective
 * configuration, with the source of each value, is printed at start (secrets masked).
 *
 * Exit codes: 0 after a clean shutdown; 1 when the node fails to start (the message ends
 * with the error's code, e.g. `[ERR_DATA_DIR_LOCKED]` when another node holds the data
 * directory) or to close;
 * 2 for a usage error (unknown flag, invalid value); 130 when a second signal forces the
 * exit during the start or the drain. A signal during the start lets it finish, then drains.
 */
import { readFileSync } from 'node:fs'
import { CacheError } from '../core/errors.js'
import { didYouMean } from './did-you-mean.js'
import { startNode, type NodeHandle } from '../server/node.js'
import type { NodeOptions } from '../server/node-options.js'
import { CLUSTER_SETTINGS, SERVE_ALIASES } from './serve-cluster.js'
import type { Setting } from './serve-setting.js'

export type { Kind, Setting } from './serve-setting.js'

/** Every setting `serve` accepts; docs/reference/options.md (Node configuration) lists the same rows. */
export const SERVE_SETTINGS: readonly Setting[] = [
  { name: 'host', kind: 'string', def: '127.0.0.1', help: 'Interface to listen on.' },
  { name: 'port', kind: 'int', def: '7700', help: 'TCP port (0 = any free port).' },
  { name: 'dataDir', kind: 'string', def: './stratacache-data', help: 'Directory of the embedded on-disk store (LMDB).' },
  { name: 'disk', kind: 'bytes', def: '1gb', help: 'Capacity of the on-disk store; past it writes get 507 ERR_STORE_FULL.' },
  { name: 'memory', kind: 'bytes', def: '128mb', help: 'Bytes the in-process tier (L1) may hold.' },
  { name: 'maxKeyBytes', kind: 'int', def: '1024', help: 'Longest key in UTF-8 bytes (413 past it).' },
  { name: 'maxValueBytes', kind: 'bytes', def: '16mb', help: 'Largest value (413 past it).' },
  { name: 'maxBodyBytes', kind: 'bytes', def: '32mb', help: 'Largest JSON body of mget/mset/invalidate (413 past it).' },
  { name: 'maxBatch', kind: 'int', def: '1000', help: 'Most keys in one mget or mset.' },
  { name: 'maxInFlight', kind: 'int', def: '256', help: 'Requests processed at once; past it 503 ERR_BUSY with Retry-After.' },
  { name: 'rateLimit', kind: 'number', def: '0', help: 'Requests per second per client IP (token bucket); 0 = off.' },
  { name: 'rateBurst', kind: 'int', def: 'max(1, ceil(rateLimit))', help: 'Token-bucket burst per client IP.' },
  { name: 'maxConnectionsPerIp', kind: 'int', def: '256', help: 'Open connections per client IP; past it 503 and close.' },
  { name: 'maxConnections', kind: 'int', def: '4096', help: 'Open connections node-wide; past it 503 and close.' },
  { name: 'maxUploadsPerIp', kind: 'int', def: '32', help: 'Requests per client IP whose body is still arriving; past it 503.' },
  { name: 'maxBufferedBodyBytes', kind: 'bytes', def: 'max(256mb, maxBodyBytes, maxValueBytes)', help: 'Request body bytes held in memory node-wide; past it 503 with Retry-After.' },
  { name: 'bodyTimeout', kind: 'duration', def: '5s', help: 'A body must arrive within this, plus 1 s per minBodyRate bytes (408 past it).' },
  { name: 'minBodyRate', kind: 'bytes', def: '64kb', help: 'Bytes of body that earn one more second of bodyTimeout.' },
  { name: 'headersTimeout', kind: 'duration', def: '10s', help: 'Time to receive request headers (408 past it).' },
  { name: 'requestTimeout', kind: 'duration', def: '30s', help: 'Time to receive a whole request (408 past it).' },
  { name: 'keepAliveTimeout', kind: 'duration', def: '5s', help: 'Idle keep-alive connections close after this.' },
  { name: 'drainTimeout', kind: 'duration', def: '10s', help: 'On shutdown, how long in-flight requests may take.' },
  { name: 'storeTimeout', kind: 'duration', def: '5s', help: 'Timeout of one store operation.' },
  { name: 'tombstoneTtl', kind: 'duration', def: '24h', help: 'How long deletes and prefix clears are remembered (a late older write cannot bring a key back).' },
  { name: 'authToken', kind: 'string', def: 'none', help: 'Require Authorization: Bearer <token> (not for /healthz, /readyz, /ping).', secret: true },
  { name: 'tlsCert', kind: 'string', def: 'none', help: 'PEM certificate path; with --tls-key serves HTTPS.' },
  { name: 'tlsKey', kind: 'string', def: 'none', help: 'PEM private key path.' },
  { name: 'logLevel', kind: 'string', def: 'info', help: 'fatal, error, warn, info, debug, trace or silent.' },
  { name: 'logRequests', kind: 'bool', def: 'false', help: 'One log line per request.' },
  { name: 'nodeId', kind: 'string', def: '<host>:<port>', help: "This node's name in logs and headers." },
  { name: 'region', kind: 'string', def: 'default', help: 'Region of this node (for the cluster).' },
]

/** `maxInFlight` → `--max-in-flight`. */
export function flagOf(name: string): string {
  return `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
}

/** `maxInFlight` → `STRATACACHE_MAX_IN_FLIGHT`. */
export function envOf(name: string): string {
  return `STRATACACHE_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`
}

/** Every setting `serve` accepts: the node's (README's table) and the cluster's (docs/guide/cluster.md). */
export const ALL_SERVE_SETTINGS: readonly Setting[] = [...SERVE_SETTINGS, ...CLUSTER_SETTINGS]

const settingHelp = (s: Setting): string => `  ${`${flagOf(s.name)} <${s.kind}>`.padEnd(34)} ${s.help} [default ${s.def}]\n${' '.repeat(37)}env ${envOf(s.name)}`

export const SERVE_HELP = `Usage: stratacache serve [options]

Runs a cache node (HTTP API, docs/PROTOCOL.md) until SIGINT or SIGTERM, then drains
in-flight requests and closes its store. Precedence: flags > STRATACACHE_* environment
> config file > defaults.

Options:
  --config <file>  JSON file of settings (keys as in NodeOptions, e.g. "maxInFlight")
                   env STRATACACHE_CONFIG
  --store <url>    A store instead of the embedded LMDB one (data-dir and disk are then
                   unused): etcd://host:port[,host:port]/namespace — a stateless node
                   env STRATACACHE_STORE, config key "store"
${SERVE_SETTINGS.map(settingHelp).join('\n')}
  -h, --help       This help.

Cluster (docs/guide/cluster.md; no seeds, discovery or secret = a one-node cluster):
  --id <string>                      Same as --node-id (a clustered node without one
                                     generates an id once and keeps it in --data-dir).
${CLUSTER_SETTINGS.map(settingHelp).join('\n')}

Sizes: bytes or '64kb', '16mb', '1gb'. Durations: a bare number is MILLISECONDS (as in the
library), or give the unit: '500ms', '10s', '5m'. (TTLs in the HTTP API are seconds.)
Exit codes: 0 clean shutdown, 1 failed to start or stop, 2 usage error, 130 forced by a
second signal.
`

class UsageError extends Error {}

export interface ServeIo {
  /** Where the configuration and usage are printed. @default process.stdout */
  out?: (text: string) => void
  /** Where usage errors are printed. @default process.stderr */
  err?: (text: string) => void
  /** Stops the node like SIGTERM (for tests and embedding). */
  signal?: AbortSignal
}

function convert(setting: Setting, raw: unknown, source: string): unknown {
  const where = `${setting.name} (${source})`
  if (setting.kind === 'string') {
    if (typeof raw !== 'string' || raw.length === 0) throw new UsageError(`${where}: expected a non-empty string`)
    return raw
  }
  if (setting.kind === 'list') {
    if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) return raw
    if (typeof raw !== 'string' || raw.trim() === '') throw new UsageError(`${where}: expected a comma-separated list`)
    return raw
  }
  if (setting.kind === 'bool') {
    if (typeof raw === 'boolean') return raw
    if (raw === 'true' || raw === '1' || raw === '') return true
    if (raw === 'false' || raw === '0') return false
    throw new UsageError(`${where}: expected true or false, got ${JSON.stringify(raw)}`)
  }
  if (typeof raw === 'number') return raw
  if (typeof raw !== 'string') throw new UsageError(`${where}: expected a ${setting.kind}, got ${typeof raw}`)
  if (setting.kind === 'int' || setting.kind === 'number') {
    if (!/^-?\d+(\.\d+)?$/.test(raw)) throw new UsageError(`${where}: expected a number, got ${JSON.stringify(raw)}`)
    return Number(raw)
  }
  // bytes and durations: plain digits are a number, anything else is parsed by the node.
  return /^\d+$/.test(raw) ? Number(raw) : raw
}

/** Options from flags, env and config file, and where each came from. Throws UsageError. */
export function parseServeArgs(argv: readonly string[], env: NodeJS.ProcessEnv): { options: NodeOptions; sources: Map<string, string>; help: boolean } {
  const byFlag = new Map(ALL_SERVE_SETTINGS.map((s) => [flagOf(s.name), s]))
  for (const [alias, name] of SERVE_ALIASES) {
    const s = ALL_SERVE_SETTINGS.find((x) => x.name === name)
    if (s !== undefined) byFlag.set(alias, s)
  }
  const flags = new Map<string, unknown>()
  let configPath: string | undefined = env.STRATACACHE_CONFIG
  // --store is not a SERVE_SETTINGS row: its value is a URL the node turns into a Store.
  let storeUrl: string | undefined
  let storeSource: string | undefined
  let help = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--help' || arg === '-h') {
      help = true
      continue
    }
    if (/^-[^-]/.test(arg)) throw new UsageError(`Unknown option ${arg} (serve takes long options such as --port; see --help)`)
    if (!arg.startsWith('--')) throw new UsageError(`Unexpected argument ${JSON.stringify(arg)}`)
    const eq = arg.indexOf('=')
    const flag = eq === -1 ? arg : arg.slice(0, eq)
    const inline = eq === -1 ? undefined : arg.slice(eq + 1)
    if (flag === '--store') {
      storeUrl = inline ?? argv[++i]
      if (storeUrl === undefined || storeUrl === '') throw new UsageError('--store needs a URL (etcd://host:port/namespace)')
      storeSource = 'flag'
      continue
    }
    if (flag === '--config') {
      configPath = inline ?? argv[++i]
      if (configPath === undefined) throw new UsageError('--config needs a file path')
      continue
    }
    const setting = byFlag.get(flag)
    if (setting === undefined) {
      const guess = didYouMean(flag, ['--config', ...byFlag.keys()])
      throw new UsageError(`Unknown option ${flag}${guess === undefined ? '' : ` (did you mean ${guess}?)`} (see --help)`)
    }
    let value: string | undefined = inline
    if (value === undefined) {
      const next = argv[i + 1]
      if (setting.kind === 'bool' && (next === undefined || next.startsWith('--'))) value = 'true'
      else {
        value = next
        i++
      }
    }
    if (value === undefined) throw new UsageError(`${flag} needs a value`)
    flags.set(setting.name, value)
  }
  let config: Record<string, unknown> = {}
  if (configPath !== undefined) {
    let text: string
    try {
      text = readFileSync(configPath, 'utf8')
    } catch (err) {
      throw new UsageError(`Cannot read config file ${configPath}: ${err instanceof Error ? err.message : String(err)}`)
    }
    try {
      const parsed: unknown = JSON.parse(text)
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('expected a JSON object')
      config = parsed as Record<string, unknown>
    } catch (err) {
      throw new UsageError(`Config file ${configPath} is not a JSON object: ${err instanceof Error ? err.message : String(err)}`)
    }
    const known = new Set<string>([...ALL_SERVE_SETTINGS.map((s) => s.name), 'store'])
    for (const key of Object.keys(config)) if (!known.has(key)) throw new UsageError(`Config file ${configPath}: unknown setting ${JSON.stringify(key)}`)
  }
  const options: Record<string, unknown> = {}
  const sources = new Map<string, string>()
  for (const s of ALL_SERVE_SETTINGS) {
    const envName = envOf(s.name)
    if (flags.has(s.name)) {
      options[s.name] = convert(s, flags.get(s.name), flagOf(s.name))
      sources.set(s.name, 'flag')
    } else if (env[envName] !== undefined) {
      options[s.name] = convert(s, env[envName], envName)
      sources.set(s.name, 'env')
    } else if (config[s.name] !== undefined) {
      options[s.name] = convert(s, config[s.name], 'config file')
      sources.set(s.name, 'config')
    }
  }
  if (storeUrl === undefined && env.STRATACACHE_STORE !== undefined && env.STRATACACHE_STORE !== '') [storeUrl, storeSource] = [env.STRATACACHE_STORE, 'env']
  if (storeUrl === undefined && config.store !== undefined) {
    if (typeof config.store !== 'string') throw new UsageError(`Config file ${String(configPath)}: store: expected a URL string`)
    ;[storeUrl, storeSource] = [config.store, 'config']
  }
  if (storeUrl !== undefined) {
    options.store = storeUrl
    sources.set('store', storeSource as string)
  }
  return { options: options as NodeOptions, sources, help }
}

function describeConfig(options: NodeOptions, sources: Map<string, string>): string {
  const lines = ['stratacache node configuration:']
  for (const s of ALL_SERVE_SETTINGS) {
    const value = (options as Record<string, unknown>)[s.name]
    if (value === undefined && CLUSTER_SETTINGS.includes(s)) continue
    const shown = value === undefined ? s.def : s.secret === true ? '***' : String(value)
    lines.push(`  ${s.name.padEnd(20)} ${shown.padEnd(22)} (${sources.get(s.name) ?? 'default'})`)
  }
  if (typeof options.store === 'string') lines.push(`  ${'store'.padEnd(20)} ${options.store.padEnd(22)} (${sources.get('store') ?? 'default'})`)
  return `${lines.join('\n')}\n`
}

/**
 * Parses flags, env and config file, prints the effective configuration, runs the node
 * until SIGINT/SIGTERM (or `io.signal`), and resolves with the exit code.
 */
export async function serveCommand(argv: string[], env: NodeJS.ProcessEnv, io: ServeIo = {}): Promise<number> {
  const out = io.out ?? ((text: string) => void process.stdout.write(text))
  const err = io.err ?? ((text: string) => void process.stderr.write(text))
  let parsed: ReturnType<typeof parseServeArgs>
  try {
    parsed = parseServeArgs(argv, env)
  } catch (e) {
    if (e instanceof UsageError) {
      err(`stratacache serve: ${e.message}\n`)
      return 2
    }
    throw e
  }
  if (parsed.help) {
    out(SERVE_HELP)
    return 0
  }
  // The handlers go in before anything starts: a signal that arrives while the store opens
  // or the socket binds must not end the process the default way (mid-commit, no drain).
  // Such a signal lets the start finish (or fail), then the node drains and closes.
  return new Promise<number>((resolve) => {
    let signals = 0
    let node: NodeHandle | undefined
    let closing = false
    let settled = false
    const finish = (code: number): void => {
      if (settled) return
      settled = true
      cleanup()
      resolve(code)
    }
    const beginClose = (): void => {
      if (closing || node === undefined) return
      closing = true
      node.close().then(
        () => finish(0),
        (e: unknown) => {
          err(`stratacache serve: shutdown failed: ${e instanceof Error ? e.message : String(e)}\n`)
          finish(1)
        },
      )
    }
    const stop = (): void => {
      signals++
      // A second signal: the operator does not want to wait for the start or the drain.
      if (signals > 1) finish(130)
      else beginClose()
    }
    const cleanup = (): void => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      io.signal?.removeEventListener('abort', stop)
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
    io.signal?.addEventListener('abort', stop)
    out(describeConfig(parsed.options, parsed.sources))
    startNode(parsed.options).then(
      (started) => {
        node = started
        if (settled) {
          // Forced out (130) while starting: release the port and the store, best effort.
          void started.close().catch(() => undefined)
          return
        }
        if (signals > 0 || io.signal?.aborted === true) {
          out('stratacache node: stop requested while starting; draining\n')
          if (signals === 0) signals = 1
          beginClose()
        } else {
          out(`stratacache node listening on ${started.url}\n`)
        }
      },
      (e: unknown) => {
        if (settled) return
        const usage = e instanceof CacheError && e.code === 'ERR_INVALID_OPTIONS'
        // The stable code goes with the message, for scripts (ERR_DATA_DIR_LOCKED: another node holds --data-dir).
        const code = e instanceof CacheError && !usage ? ` [${e.code}]` : ''
        err(`stratacache serve: ${usage ? '' : 'cannot start: '}${e instanceof Error ? e.message : String(e)}${code}\n`)
        finish(usage ? 2 : 1)
      },
    )
  })
}
