/**
 * What every client command of the CLI shares: its I/O seam (so tests and the bench can
 * capture output and time), the exit codes, the common flags and how a failure becomes an
 * exit code and one line on stderr.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { createClient, isNodeAnswer, type Client } from '../client/client.js'
import type { Clock } from '../core/clock.js'
import { CacheError, type ErrorCode } from '../core/errors.js'
import { didYouMean } from './did-you-mean.js'

export { didYouMean }

/**
 * Exit codes scripts can rely on.
 * - 0 `OK`
 * - 1 `NOT_FOUND`: `get` or `del` of a key that is absent (or expired)
 * - 2 `USAGE`: bad flags or arguments, or input refused before sending (invalid key, TTL, tag)
 * - 3 `UNAVAILABLE`: no node answered usefully: unreachable, timeout, busy/rate limited
 *   past the retry budget, 5xx, or an answer that is not the protocol; `bench` with failed requests
 * - 4 `REFUSED`: a node refused the request: 401, 412 (`--if-version` mismatch), 413, 400
 */
export const EXIT = { OK: 0, NOT_FOUND: 1, USAGE: 2, UNAVAILABLE: 3, REFUSED: 4 } as const

export interface CliIo {
  /** Standard output: text or raw bytes (a value printed by `get`). */
  readonly out: { write(chunk: string | Uint8Array): unknown; readonly isTTY?: boolean }
  /** Standard error: messages and the bench's progress line. */
  readonly err: { write(chunk: string): unknown; readonly isTTY?: boolean }
  /**
   * All of standard input (a value for `set`), or undefined when stdin is a terminal.
   * Past `maxBytes` it stops reading and rejects with a UsageError (`readBounded`).
   */
  readStdin(maxBytes: number): Promise<Buffer | undefined>
  readonly env: NodeJS.ProcessEnv
  /** Timers and coarse time. */
  readonly clock: Clock
  /** High-resolution monotonic milliseconds, for latency measurements. */
  readonly now: () => number
}

/** The largest value any node accepts (`maxValueBytes` is at most 1gb): `set` reads no more of a file or stdin. */
export const MAX_CLI_VALUE_BYTES = 1024 ** 3

/**
 * All of `source`, joined; past `maxBytes` it stops reading (`set k < /dev/zero` ends at
 * the bound instead of filling memory), drops what it read and throws a UsageError.
 */
export async function readBounded(source: AsyncIterable<Uint8Array | string>, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of source) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    total += b.byteLength
    if (total > maxBytes) throw new UsageError(tooLargeMessage(maxBytes))
    chunks.push(b)
  }
  return Buffer.concat(chunks, total)
}

/** The refusal of a value over `maxBytes` that `set` will not send. */
export function tooLargeMessage(maxBytes: number): string {
  return `the value is over ${maxBytes} bytes, more than ${maxBytes === MAX_CLI_VALUE_BYTES ? 'any node accepts (maxValueBytes is at most 1gb)' : 'allowed'}: not sent`
}

/** A usage error: exit code 2, message on stderr. */
export class UsageError extends Error {}

const LOCAL_INPUT_CODES: ReadonlySet<ErrorCode> = new Set(['ERR_INVALID_OPTIONS', 'ERR_INVALID_KEY', 'ERR_INVALID_TAG', 'ERR_INVALID_VALUE'])
const REFUSED_CODES: ReadonlySet<ErrorCode> = new Set(['ERR_UNAUTHORIZED', 'ERR_FORBIDDEN', 'ERR_UNSUPPORTED_MEDIA_TYPE', 'ERR_PRECONDITION_FAILED', 'ERR_TOO_LARGE', 'ERR_BAD_REQUEST', 'ERR_METHOD_NOT_ALLOWED', 'ERR_NOT_FOUND', 'ERR_STORE_FULL', 'ERR_CLUSTER_PASSIVE'])

/** The exit code for an error a command threw. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return EXIT.USAGE
  if (err instanceof CacheError) {
    // A status means the node answered: its 400s are refusals, not our usage errors.
    if (LOCAL_INPUT_CODES.has(err.code)) return isNodeAnswer(err) ? EXIT.REFUSED : EXIT.USAGE
    if (err.code === 'ERR_TOO_LARGE' && !isNodeAnswer(err)) return EXIT.USAGE
    if (REFUSED_CODES.has(err.code)) return EXIT.REFUSED
    return EXIT.UNAVAILABLE
  }
  return EXIT.UNAVAILABLE
}

/** One line for stderr: `stratacache: ERR_CODE message`. */
export function describeError(err: unknown): string {
  if (err instanceof CacheError) return `${err.code} ${err.message}`
  if (err instanceof Error) return err.message
  return String(err)
}

/** Flags every client command takes. */
export const COMMON_OPTIONS = {
  node: { type: 'string', short: 'n', multiple: true },
  region: { type: 'string' },
  token: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options']

export const COMMON_HELP = `Common options:
  -n, --node <url>     A node: http://host:port or host[:port] (7700); repeat or comma-separate
                       for several (round-robin). env STRATACACHE_NODES (comma-separated)
                       [default http://127.0.0.1:7700]
  --region <r>         The client's region: reads go to live nodes of this region, then
                       down the ladder (topology from /v1/cluster of any --node).
                       env STRATACACHE_REGION [default none: round-robin over --node]
  --token <token>      Bearer token for nodes started with --auth-token.
                       env STRATACACHE_AUTH_TOKEN [default none]
  --timeout <dur>      Timeout of each attempt, with its unit: '500ms', '5s' [default 5s]
  --json               Machine-readable output
  -h, --help           This help

Exit codes: 0 ok, 1 not found, 2 usage error, 3 node unreachable / timeout / busy /
server error, 4 request refused by the node (auth, version mismatch, too large).`

type Parsed<O extends ParseArgsConfig['options']> = ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>>

/** parseArgs with strict checking; its errors become usage errors (with a "did you mean"). */
export function parse<O extends NonNullable<ParseArgsConfig['options']>>(argv: readonly string[], options: O): Parsed<O> {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals: true, strict: true }) as Parsed<O>
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    const unknown = (err as { code?: unknown }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(--?[^'\s=]+)/.exec(message)?.[1] : undefined
    const guess = unknown === undefined ? undefined : didYouMean(unknown, Object.keys(options).map((o) => `--${o}`))
    if (guess !== undefined) throw new UsageError(`${message.split('.')[0]}. Did you mean ${guess}?`)
    // Node's own text for an unknown option runs on and ends on an unbalanced quote: one line instead.
    if (unknown !== undefined) throw new UsageError(`${message.split('.')[0]} (see --help; a value that starts with - goes after --: -- ${JSON.stringify(unknown)})`)
    throw new UsageError(message)
  }
}

export interface CommonValues {
  node?: string[]
  region?: string
  token?: string
  timeout?: string
}

/**
 * The node addresses in STRATACACHE_NODES (comma-separated), or undefined when it is unset
 * or empty. Set to blanks and commas only, it names no node: a usage error, rather than the
 * default node a typo would silently reach.
 */
export function nodesFromEnv(env: NodeJS.ProcessEnv): string[] | undefined {
  const raw = env.STRATACACHE_NODES
  if (raw === undefined || raw === '') return undefined
  const nodes = raw.split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (nodes.length === 0) throw new UsageError(`STRATACACHE_NODES names no node address (${JSON.stringify(raw)}); expected e.g. http://127.0.0.1:7700, or unset it`)
  return nodes
}

/** The client the common flags describe. Options the client refuses are usage errors. */
export function clientFrom(values: CommonValues, io: CliIo, extra: { retry?: false; connections?: number } = {}): Client {
  const split = (list: readonly string[]): string[] => list.flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '')
  const fromFlags = values.node === undefined ? undefined : split(values.node)
  if (fromFlags !== undefined && fromFlags.length === 0) throw new UsageError('--node expects a node address like http://127.0.0.1:7700')
  const nodes = fromFlags ?? nodesFromEnv(io.env) ?? ['http://127.0.0.1:7700']
  const token = values.token ?? (io.env.STRATACACHE_AUTH_TOKEN === '' ? undefined : io.env.STRATACACHE_AUTH_TOKEN)
  const region = values.region ?? (io.env.STRATACACHE_REGION === '' ? undefined : io.env.STRATACACHE_REGION)
  if (region !== undefined && region.trim() === '') throw new UsageError('--region expects a region name')
  try {
    return createClient({ nodes, token, region, timeout: (values.timeout as `${number}s` | undefined) ?? '5s', clock: io.clock, ...extra })
  } catch (err) {
    throw new UsageError(describeError(err))
  }
}
