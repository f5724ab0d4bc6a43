#!/usr/bin/env node
/**
 * The `stratacache` command: `serve | get | set | del | invalidate | stats | keys | bench | cluster`.
 * `runCli` dispatches and turns every failure into an exit code (cli-io.ts `EXIT`) and one
 * line on stderr; nothing throws out of it. Run directly (the package's `bin`), it wires
 * the real process in and sets `process.exitCode`.
 */
import { readFileSync, realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { systemClock } from '../core/system-clock.js'
import { benchCommand } from './bench-command.js'
import { delCommand, getCommand, invalidateCommand, keysCommand, setCommand, statsCommand } from './client-commands.js'
import { describeError, didYouMean, EXIT, exitCodeOf, readBounded, type CliIo } from './cli-io.js'

export const MAIN_HELP = `Usage: stratacache <command> [options]

Commands:
  serve                 Run a cache node (HTTP API on 127.0.0.1:7700 by default)
  get <key>             Print a value
  set <key> [value]     Store a value (from the argument, --file or stdin)
  del <key>             Delete a key
  invalidate <tag>...   Invalidate entries by dependency tag
  stats                 Print node statistics
  keys                  List live keys (--prefix, --limit, --cursor, --all)
  bench                 Load generator: throughput and latency percentiles
  cluster status        The cluster as a node sees it (members by region, phi, RTT)
  cluster state <s>     Set the cluster state: passive, no-migration or active
  cluster digest        A node's replica digest (equal on replicas that agree)

Run 'stratacache <command> --help' for a command's options; 'stratacache --version'
prints the version.

Exit codes: 0 ok, 1 not found (get, del), 2 usage error, 3 node unreachable / timeout /
busy / server error, 4 request refused by the node (auth, version mismatch, too large).
serve: 0 after a clean shutdown, 1 failed to start, 2 usage error.`

type Command = (argv: string[], io: CliIo) => Promise<number>

const COMMANDS: Readonly<Record<string, Command>> = {
  // Loaded on demand: the node's modules (LMDB, pino, prom-client) would slow every client command's start.
  serve: async (argv, io) => (await import('./serve.js')).serveCommand(argv, io.env),
  get: getCommand,
  set: setCommand,
  del: delCommand,
  delete: delCommand,
  invalidate: invalidateCommand,
  stats: statsCommand,
  keys: keysCommand,
  bench: (argv, io) => benchCommand(argv, io),
  cluster: async (argv, io) => (await import('./cluster-command.js')).clusterCommand(argv, io),
}

/** Runs one command line; resolves with its exit code, never rejects. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const out = name === undefined ? io.err : io.out
    out.write(`${MAIN_HELP}\n`)
    return name === undefined ? EXIT.USAGE : EXIT.OK
  }
  if (name === '--version' || name === '-v') {
    io.out.write(`${version()}\n`)
    return EXIT.OK
  }
  const command = COMMANDS[name]
  if (command === undefined || !Object.hasOwn(COMMANDS, name)) {
    const guess = didYouMean(name, Object.keys(COMMANDS))
    io.err.write(`stratacache: unknown command ${JSON.stringify(name)}${guess === undefined ? '' : ` (did you mean ${guess}?)`}\n\n${MAIN_HELP}\n`)
    return EXIT.USAGE
  }
  try {
    return await command(rest, io)
  } catch (err) {
    io.err.write(`stratacache ${name}: ${describeError(err)}\n`)
    return exitCodeOf(err)
  }
}

/** The package version (dist/src/cli/main.js → package.json). */
function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown }
    return typeof pkg.version === 'string' ? pkg.version : 'unknown'
  } catch {
    return 'unknown'
  }
}

/** The real process as a CliIo. */
export function processIo(): CliIo {
  return {
    out: process.stdout,
    err: process.stderr,
    env: process.env,
    clock: systemClock,
    // The bench measures request latencies below the clock's 1 ms resolution.
    now: () => performance.now(),
    async readStdin(maxBytes: number) {
      if (process.stdin.isTTY === true) return undefined
      return readBounded(process.stdin, maxBytes)
    },
  }
}

function isMain(): boolean {
  const entry = process.argv[1]
  if (entry === undefined) return false
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isMain()) {
  // A reader that stops early (`stratacache keys --all | head`) closes the pipe: the next
  // write fails with EPIPE, an 'error' event that would otherwise crash the process with a
  // stack trace and exit 1 ("not found"). The reader has what it wanted: end quietly, 0.
  // Any other failure to write stdout (a full disk) is one line on stderr and exit 3.
  // Not for serve: its stdout is its log, and a node must not stop without its drain.
  if (process.argv[2] !== 'serve') {
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') process.stderr.write(`stratacache: cannot write to stdout: ${err.message}\n`)
      process.exit(err.code === 'EPIPE' ? EXIT.OK : EXIT.UNAVAILABLE)
    })
    // Nothing can be reported once stderr itself is gone; the exit code still tells.
    process.stderr.on('error', () => undefined)
  }
  const code = await runCli(process.argv.slice(2), processIo())
  process.exitCode = code
  if (process.argv[2] === 'serve') {
    // As serve-main.ts: the node is closed by now; a handle left open must not keep the
    // process alive after a clean shutdown.
    systemClock.setTimeout(() => process.exit(code), code === 0 ? 2000 : 0, { unref: code === 0 })
  }
}
