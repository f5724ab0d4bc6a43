/**
 * What the NATS, RabbitMQ and PostgreSQL harnesses share: finding binaries (a missing one
 * fails the test with a clear message, never skips it), spawning children that die with
 * this process, bounded waits with useful errors, and TCP readiness checks.
 *
 * No orphans: children are spawned under `setpriv --pdeathsig SIGKILL` (the kernel kills
 * them if this process dies, even by SIGKILL), and an `exit` hook kills any still running.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { pollUntil, stalledNote } from '../../src/core/poll-until.js'
import { systemClock } from '../../src/core/system-clock.js'

export const HOST = '127.0.0.1'

/**
 * Ports handed out from below Linux's ephemeral range (32768-60999 by default), where the
 * kernel never puts the local end of an outgoing connection: a port taken by `listen(0)`
 * comes from that range too, and between our check and the child's bind, any of the
 * hundreds of loopback connections a test run opens could take it (a cluster test's node
 * once failed to start with EADDRINUSE on such a port). Each port is handed out once per
 * process.
 */
const PORT_LOW = 20_000
const PORT_HIGH = 32_767
const handedOut = new Set<number>()

/** True when nothing listens on `port` of HOST now. */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.unref()
    server.once('error', () => resolve(false))
    server.listen(port, HOST, () => server.close(() => resolve(true)))
  })
}

/** A port nobody listens on right now, outside the ephemeral range, not handed out before by this process. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = PORT_LOW + Math.floor(Math.random() * (PORT_HIGH - PORT_LOW + 1))
    if (handedOut.has(port)) continue
    handedOut.add(port)
    if (await bindable(port)) return port
  }
  throw new Error(`no free port found in ${PORT_LOW}-${PORT_HIGH} after 200 tries`)
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export function hasBinary(name: string): boolean {
  return spawnSync('which', [name], { stdio: 'ignore' }).status === 0
}

/** The path of `name` on PATH, or a thrown error saying what to install. */
export function requireBinary(name: string, install: string): string {
  const found = spawnSync('which', [name], { encoding: 'utf8' })
  if (found.status !== 0) throw new Error(`${name} is not installed: this test needs a real ${name} (${install}); .ci/run installs it with apt`)
  return found.stdout.trim()
}

/** The newest `/usr/lib/postgresql/<major>/bin`, or a thrown error saying what to install. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql'
  const majors = existsSync(root) ? readdirSync(root).filter((d) => /^\d+$/.test(d) && existsSync(`${root}/${d}/bin/initdb`)) : []
  if (majors.length === 0) throw new Error(`PostgreSQL is not installed (no ${root}/*/bin/initdb): this test needs a real server (apt-get install postgresql); .ci/run installs it`)
  majors.sort((a, b) => Number(b) - Number(a))
  return `${root}/${majors[0]}/bin`
}

const SETPRIV = hasBinary('setpriv')

const live = new Set<ChildProcess>()
const killAll = (): void => {
  for (const child of live) child.kill('SIGKILL')
}

/** Kills `child` (SIGKILL) if it still runs when this process exits; forgets it once it exits. */
export function killOnExit(child: ChildProcess): void {
  live.add(child)
  const forget = (): void => void live.delete(child)
  child.once('exit', forget)
  child.once('error', forget)
}
process.once('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll()
    process.kill(process.pid, signal)
  })
}

export interface Spawned {
  readonly child: ChildProcess
  /** Resolves when the child has exited (or failed to start). */
  readonly exited: Promise<void>
  /** The exit code or signal once exited. */
  exit(): string | undefined
  /** The last lines of its output. */
  logTail(lines?: number): string
}

/**
 * Spawns `command` so that it dies with this process. `asUser`: run as that OS user
 * (setpriv --reuid), for servers that refuse root (PostgreSQL).
 */
export function spawnServer(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; asUser?: string; cwd?: string } = {}): Spawned {
  const pre: string[] = []
  if (options.asUser !== undefined) {
    if (!SETPRIV) throw new Error(`setpriv (util-linux) is needed to run ${command} as ${options.asUser}`)
    pre.push('--reuid', options.asUser, '--regid', options.asUser, '--init-groups')
  }
  const [cmd, argv] = SETPRIV ? ['setpriv', [...pre, '--pdeathsig', 'SIGKILL', '--', command, ...args]] : [command, [...args]]
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env, cwd: options.cwd })
  live.add(child)
  let log: string[] = []
  const onOutput = (chunk: Buffer): void => {
    log.push(...chunk.toString().split('\n').filter((l) => l.trim() !== ''))
    if (log.length > 400) log = log.slice(-200)
  }
  child.stdout?.on('data', onOutput)
  child.stderr?.on('data', onOutput)
  let code: string | undefined
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (c, signal) => {
      code = signal ?? String(c)
      live.delete(child)
      resolve()
    })
    child.once('error', (err) => {
      code = err.message
      live.delete(child)
      resolve()
    })
  })
  return { child, exited, exit: () => code, logTail: (lines = 20) => log.slice(-lines).join('\n') }
}

/**
 * Polls `check` until it returns true; throws `describe()` after `timeoutMs` of time this
 * process ran (a stall moves the deadline: core/poll-until.ts). A `check` that throws
 * counts as false; the last error is named.
 */
export async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs: number, describe: () => string, pollMs = 50): Promise<void> {
  let lastError: unknown
  const r = await pollUntil(
    systemClock,
    timeoutMs,
    async () => {
      try {
        return await check()
      } catch (err) {
        lastError = err
        return false
      }
    },
    pollMs,
  )
  if (r.held) return
  const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : ''
  throw new Error(`${describe()} after ${timeoutMs} ms${stalledNote(r)}${why}`)
}

/**
 * Starts a server on fresh ports, retried (a free port may be taken before the server binds
 * it): `make` builds one, `boot` starts it; a failed one is `stop()`ped before the next try.
 */
export async function startWithRetry<T extends { stop(): Promise<void> }>(attempts: number, make: () => Promise<T>, boot: (server: T) => Promise<void>): Promise<T> {
  let lastError: unknown
  for (let attempt = 0; attempt < attempts; attempt++) {
    const server = await make()
    try {
      await boot(server)
      return server
    } catch (err) {
      lastError = err
      await server.stop()
    }
  }
  throw lastError
}

/**
 * Waits until the spawned server is `ready`, failing early if it exits. On failure `cleanup`
 * runs (kill it) and the error carries the server's last `logLines` log lines.
 */
export async function awaitReady(
  proc: Spawned,
  options: { name: string; ready: () => Promise<boolean>; timeoutMs: number; describe: () => string; cleanup: () => Promise<void>; logLines?: number; pollMs?: number },
): Promise<void> {
  try {
    await waitUntil(
      async () => {
        const code = proc.exit()
        if (code !== undefined) throw new Error(`${options.name} exited (${code})`)
        return options.ready()
      },
      options.timeoutMs,
      options.describe,
      options.pollMs,
    )
  } catch (err) {
    await options.cleanup()
    throw new Error(`${(err as Error).message}\n--- ${options.name} log ---\n${proc.logTail(options.logLines ?? 20)}`, { cause: err })
  }
}

/** Whether the child exits within `ms` (it is not signalled here). */
export function exitsWithin(proc: Spawned, ms: number): Promise<boolean> {
  return Promise.race([proc.exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms).unref())])
}

/** Sends `signal` and waits for the exit; SIGKILL if it has not exited after `graceMs`. */
export async function killProcess(proc: Spawned, signal: NodeJS.Signals = 'SIGKILL', graceMs = 10_000): Promise<void> {
  proc.child.kill(signal)
  if (signal !== 'SIGKILL' && !(await exitsWithin(proc, graceMs))) proc.child.kill('SIGKILL')
  await proc.exited
}

/**
 * A server process that tests crash and bring back: `kill()` (SIGKILL, as a crash; its ports
 * and data stay reserved) and `restart()` (kill if running, then boot again on the same
 * ports). A subclass boots in `spawn()`, which sets `proc` and waits until it is ready.
 */
export abstract class CrashableServer {
  protected proc: Spawned | undefined

  protected abstract spawn(): Promise<void>

  get running(): boolean {
    return this.proc !== undefined && this.proc.exit() === undefined
  }

  /** SIGKILL, as a crash; ports and data stay for `restart()`. */
  async kill(): Promise<void> {
    const proc = this.proc
    if (proc === undefined) return
    await killProcess(proc)
    this.proc = undefined
  }

  /** Boots again on the same ports (killing first if running). */
  async restart(): Promise<void> {
    await this.kill()
    await this.spawn()
  }
}

/** Whether something accepts TCP connections on HOST:port. */
export function portOpen(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port })
    const done = (open: boolean): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(open)
    }
    const timer = setTimeout(() => done(false), timeoutMs)
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

/** Runs a command to completion (bounded); resolves with its exit status and output. */
export function run(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; asUser?: string } = {}): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const [cmd, argv] = options.asUser === undefined ? [command, [...args]] : ['setpriv', ['--reuid', options.asUser, '--regid', options.asUser, '--init-groups', '--', command, ...args]]
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env })
    let output = ''
    child.stdout.on('data', (c: Buffer) => (output += c.toString()))
    child.stderr.on('data', (c: Buffer) => (output += c.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000)
    child.once('error', (err) => {
      clearTimeout(timer)
      resolve({ status: null, output: err.message })
    })
    child.once('exit', (status) => {
      clearTimeout(timer)
      resolve({ status, output })
    })
  })
}
