/**
 * `stratacache get | set | del | invalidate | stats | keys`: one request each (keys --all: one
 * per page) through the client (retries, round-robin over `--node`s, the read ladder with
 * `--region`), output for people by default and `--json` for
 * scripts, exit codes from `EXIT` (cli-io.ts).
 */
import { createReadStream } from 'node:fs'
import { MAX_TTL_SECONDS, type Client, type ClientEntry } from '../client/client.js'
import type { Duration } from '../core/duration.js'
import { CacheError } from '../core/errors.js'
import { clientFrom, COMMON_HELP, COMMON_OPTIONS, describeError, EXIT, MAX_CLI_VALUE_BYTES, parse, readBounded, tooLargeMessage, UsageError, type CliIo } from './cli-io.js'

export const GET_HELP = `Usage: stratacache get <key> [options]

Prints the value of <key> to stdout as raw bytes (binary-safe; on a terminal a newline is
added when the value does not end with one). Exit code 1 when the key is absent or expired. With --json: { key, value, encoding: "utf8" | "base64", version, ttl, tags }
(ttl in seconds, null for no expiry).

${COMMON_HELP}`

export const SET_HELP = `Usage: stratacache set <key> [value] [options]

Stores [value] under <key>; without [value] (or with "-") the value is read from stdin, with
--file from a file (at most 1 GiB, the most any node accepts). Prints the new version
(--json: { version, ttl }).

Options:
  --ttl <ttl>          A bare number is SECONDS (as in the HTTP API); or a duration with
                       its unit ('90s', '5m', '1d'), or 'none' [default: the node's
                       default, 3600 s]
  --tags <a,b>         Comma-separated dependency tags (org:1:user:42); repeat to add more
  --if-version <n|*>   Write only if the current version is n ('*': only if it exists);
                       exit code 4 when it is not
  --file <path>        Read the value from a file
${COMMON_HELP}`

export const DEL_HELP = `Usage: stratacache del <key> [options]

Deletes <key>. Exit code 1 when it did not exist.

Options:
  --if-version <n|*>   Delete only if the current version is n
${COMMON_HELP}`

export const INVALIDATE_HELP = `Usage: stratacache invalidate <tag>... [options]

Invalidates every entry depending on a tag or a tag below it (invalidate org:1 reaches
org:1:user:42). Prints the node's count of invalidated tags.

Options:
  --soft               Entries become stale (recomputed on the next read, still usable as
                       fallbacks) instead of never being served again
${COMMON_HELP}`

export const STATS_HELP = `Usage: stratacache stats [options]

Prints the statistics of every --node as JSON (one object; keyed by node when there are
several). With several, a node that fails is printed as {"error": {"code", "message"}}
(and on stderr) and the exit code is 3; the others are printed all the same.

${COMMON_HELP}`

export const KEYS_HELP = `Usage: stratacache keys [options]

Lists live keys (no deleted or expired ones), one per line, in pages: one page by default,
every page with --all. When more keys remain, the cursor of the next page is printed on
stderr (pass it back with --cursor and the same --prefix). With --json: { keys: [...], cursor: string | null }
(--all: { keys: [...], cursor: null }).

Options:
  --prefix <p>         Only keys starting with <p> [default: every key]
  --cursor <c>         Continue a listing from the cursor a previous page printed
                       (with the same --prefix)
  --limit <n>          Keys per page, 1..1000 [default 100]
  --all                Follow the cursor to the end of the listing (pages of --limit)
${COMMON_HELP}`

async function withClient<T>(client: Client, fn: (client: Client) => Promise<T>): Promise<T> {
  try {
    return await fn(client)
  } finally {
    await client.close()
  }
}

function one(positionals: string[], what: string, max = 1): string {
  if (positionals.length === 0) throw new UsageError(`missing <${what}> (see --help)`)
  if (positionals.length > max) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[max])} (see --help)`)
  return positionals[0]
}

function ttlArg(raw: string | undefined): Duration | undefined {
  if (raw === undefined) return undefined
  if (raw === 'none') return Infinity
  if (/^\d+(?:\.\d*)?$/.test(raw)) {
    // A bare number is seconds, as in the HTTP API: refuse it in seconds, not as the milliseconds it would become.
    // Written as the HTTP API takes them: no leading zero, no decimal point.
    const seconds = /^[1-9]\d*$/.test(raw) ? Number(raw) : NaN
    if (!(seconds <= MAX_TTL_SECONDS)) throw new UsageError(`--ttl expects whole seconds from 1 to ${MAX_TTL_SECONDS}, a duration with its unit ('10m') or 'none', got ${JSON.stringify(raw)}`)
    return seconds * 1000
  }
  return raw as Duration
}

function versionArg(raw: string | undefined): number | '*' | undefined {
  if (raw === undefined) return undefined
  if (raw === '*') return '*'
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || !Number.isSafeInteger(Number(raw))) throw new UsageError(`--if-version expects a positive integer or '*', got ${JSON.stringify(raw)}`)
  return Number(raw)
}

const ttlSeconds = (ttlMs: number): number | null => (ttlMs === Infinity ? null : Math.round(ttlMs / 1000))

function entryJson(key: string, e: ClientEntry): string {
  const text = e.value.toString('utf8')
  const utf8 = Buffer.from(text, 'utf8').equals(e.value)
  return `${JSON.stringify({ key, value: utf8 ? text : e.value.toString('base64'), encoding: utf8 ? 'utf8' : 'base64', version: e.version, ttl: ttlSeconds(e.ttlMs), tags: e.tags })}\n`
}

export async function getCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv, COMMON_OPTIONS)
  if (values.help === true) {
    io.out.write(`${GET_HELP}\n`)
    return EXIT.OK
  }
  const key = one(positionals, 'key')
  return withClient(clientFrom(values, io), async (client) => {
    const entry = await client.get(key)
    if (entry === undefined) {
      io.err.write(`stratacache: ${JSON.stringify(key)} not found\n`)
      return EXIT.NOT_FOUND
    }
    io.out.write(values.json === true ? entryJson(key, entry) : entry.value)
    // On a terminal, end the line so the prompt does not follow the value (a pipe gets the bytes exactly).
    if (values.json !== true && io.out.isTTY === true && entry.value[entry.value.length - 1] !== 0x0a) io.out.write('\n')
    return EXIT.OK
  })
}

export async function setCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv, { ...COMMON_OPTIONS, ttl: { type: 'string' }, tags: { type: 'string', multiple: true }, 'if-version': { type: 'string' }, file: { type: 'string' } })
  if (values.help === true) {
    io.out.write(`${SET_HELP}\n`)
    return EXIT.OK
  }
  const key = one(positionals, 'key', 2)
  let value: Uint8Array
  if (values.file !== undefined) {
    if (positionals.length > 1) throw new UsageError('give the value either as an argument or with --file, not both')
    try {
      value = await readBounded(createReadStream(values.file, { highWaterMark: 1024 * 1024 }), MAX_CLI_VALUE_BYTES)
    } catch (err) {
      if (err instanceof UsageError) throw err
      throw new UsageError(`cannot read ${values.file}: ${err instanceof Error ? err.message : String(err)}`)
    }
  } else if (positionals.length > 1 && positionals[1] !== '-') {
    value = Buffer.from(positionals[1], 'utf8')
  } else {
    const stdin = await io.readStdin(MAX_CLI_VALUE_BYTES)
    if (stdin === undefined) throw new UsageError('no value: give it as an argument, with --file, or on stdin')
    value = stdin
  }
  if (value.byteLength > MAX_CLI_VALUE_BYTES) throw new UsageError(tooLargeMessage(MAX_CLI_VALUE_BYTES))
  // --tags adds up when repeated (as --node does). `--tags ''` is no tags; an empty tag within
  // a list (a,,b) is refused by the client's tag check, as the node would.
  const tags = values.tags?.flatMap((list) => (list === '' ? [] : list.split(',').map((t) => t.trim())))
  const ifVersion = versionArg(values['if-version'])
  const ttl = ttlArg(values.ttl)
  return withClient(clientFrom(values, io), async (client) => {
    const result = await client.set(key, value, { ttl, tags, ifVersion })
    io.out.write(values.json === true ? `${JSON.stringify({ version: result.version, ttl: ttlSeconds(result.ttlMs) })}\n` : `${result.version}\n`)
    return EXIT.OK
  })
}

export async function delCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv, { ...COMMON_OPTIONS, 'if-version': { type: 'string' } })
  if (values.help === true) {
    io.out.write(`${DEL_HELP}\n`)
    return EXIT.OK
  }
  const key = one(positionals, 'key')
  const ifVersion = versionArg(values['if-version'])
  return withClient(clientFrom(values, io), async (client) => {
    const deleted = await client.delete(key, { ifVersion })
    if (values.json === true) io.out.write(`${JSON.stringify({ deleted })}\n`)
    else if (!deleted) io.err.write(`stratacache: ${JSON.stringify(key)} not found\n`)
    return deleted ? EXIT.OK : EXIT.NOT_FOUND
  })
}

export async function invalidateCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv, { ...COMMON_OPTIONS, soft: { type: 'boolean' } })
  if (values.help === true) {
    io.out.write(`${INVALIDATE_HELP}\n`)
    return EXIT.OK
  }
  if (positionals.length === 0) throw new UsageError('missing <tag> (see --help)')
  return withClient(clientFrom(values, io), async (client) => {
    const n = await client.invalidate(positionals, { mode: values.soft === true ? 'soft' : 'hard' })
    io.out.write(values.json === true ? `${JSON.stringify({ invalidated: n })}\n` : `${n}\n`)
    return EXIT.OK
  })
}

export async function statsCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv, COMMON_OPTIONS)
  if (values.help === true) {
    io.out.write(`${STATS_HELP}\n`)
    return EXIT.OK
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])} (see --help)`)
  return withClient(clientFrom(values, io), async (client) => {
    const nodes = client.nodes().map((s) => s.node)
    // One node: its stats, or its error as for any command. Several: every answer, each
    // failed node as { error: { code, message } } (and on stderr), exit 3 if any failed.
    if (nodes.length === 1) {
      const one = await client.stats({ node: nodes[0] })
      io.out.write(`${values.json === true ? JSON.stringify(one) : JSON.stringify(one, null, 2)}\n`)
      return EXIT.OK
    }
    const all = await Promise.allSettled(nodes.map((node) => client.stats({ node })))
    let failed = false
    const body = Object.fromEntries(
      nodes.map((n, i) => {
        const r = all[i]!
        if (r.status === 'fulfilled') return [n, r.value]
        failed = true
        io.err.write(`stratacache stats: ${n}: ${describeError(r.reason)}\n`)
        const code = r.reason instanceof CacheError ? r.reason.code : 'ERR_INTERNAL'
        return [n, { error: { code, message: r.reason instanceof Error ? r.reason.message : String(r.reason) } }]
      }),
    )
    io.out.write(`${values.json === true ? JSON.stringify(body) : JSON.stringify(body, null, 2)}\n`)
    return failed ? EXIT.UNAVAILABLE : EXIT.OK
  })
}

export async function keysCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv, { ...COMMON_OPTIONS, prefix: { type: 'string' }, cursor: { type: 'string' }, limit: { type: 'string' }, all: { type: 'boolean' } })
  if (values.help === true) {
    io.out.write(`${KEYS_HELP}\n`)
    return EXIT.OK
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])} (use --prefix to list keys under a prefix)`)
  let limit: number | undefined
  if (values.limit !== undefined) {
    limit = /^\d{1,4}$/.test(values.limit) ? Number(values.limit) : NaN
    if (!(limit >= 1 && limit <= 1000)) throw new UsageError(`--limit expects an integer from 1 to 1000, got ${JSON.stringify(values.limit)}`)
  }
  if (values.cursor === '') throw new UsageError('--cursor expects the cursor a previous page printed')
  return withClient(clientFrom(values, io), async (client) => {
    const json = values.json === true
    const all: string[] = []
    let cursor = values.cursor
    do {
      const page = await client.keys({ prefix: values.prefix, cursor, limit })
      // Text goes out page by page (a long --all listing streams); JSON once, at the end.
      if (json) all.push(...page.keys)
      else if (page.keys.length > 0) io.out.write(`${page.keys.join('\n')}\n`)
      cursor = page.cursor
    } while (values.all === true && cursor !== undefined)
    if (json) io.out.write(`${JSON.stringify({ keys: all, cursor: cursor ?? null })}\n`)
    else if (cursor !== undefined) io.err.write(`stratacache: more keys: --cursor ${cursor}\n`)
    return EXIT.OK
  })
}
