/**
 * Real `redis-server` processes for tests: one standalone server, or a 3-master cluster,
 * each on free loopback ports with its own temp dir and no persistence.
 *
 * Robustness on a noisy 2-core machine:
 * - Every wait has a deadline and fails with an error that says what was awaited, on which
 *   port, and the server's last log lines.
 * - No orphans: children are spawned under `setpriv --pdeathsig SIGKILL` where available
 *   (the kernel kills them if this process dies, even by SIGKILL), and an `exit` hook kills
 *   any still running. Callers still `stop()` in an `after()` hook so that a failing test
 *   cleans up at once.
 * - A free port is found by binding port 0 and closing it; another process may take it in
 *   between, so a start that fails with "Address already in use" is retried on new ports.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, hasBinary, HOST, killOnExit, waitUntil } from './server-process.js'

export { freePort }

const START_TIMEOUT_MS = 15_000
const CLUSTER_TIMEOUT_MS = 30_000
const POLL_MS = 25

const SETPRIV = hasBinary('setpriv')

type Reply = string | number | null | Error

/**
 * Sends one command over a fresh raw connection and reads one reply (simple, error,
 * integer or bulk string: enough for PING, INFO and CLUSTER INFO). Independent of ioredis,
 * so that the harness never depends on the code under test.
 */
export function rawCommand(port: number, args: readonly string[], timeoutMs = 2_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: HOST, port })
    let data = Buffer.alloc(0)
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`redis ${HOST}:${port} did not answer ${args[0]} within ${timeoutMs} ms`))
    }, timeoutMs)
    const done = (fn: () => void): void => {
      clearTimeout(timer)
      socket.destroy()
      fn()
    }
    socket.once('error', (err) => done(() => reject(err)))
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk])
      const reply = parseReply(data)
      if (reply !== undefined) done(() => resolve(reply))
    })
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`)
  })
}

/** One complete reply, or undefined while more bytes are needed. */
function parseReply(data: Buffer): Reply | undefined {
  const eol = data.indexOf('\r\n')
  if (eol < 0) return undefined
  const line = data.subarray(1, eol).toString()
  switch (String.fromCharCode(data[0])) {
    case '+':
      return line
    case '-':
      return new Error(line)
    case ':':
      return Number(line)
    case '$': {
      const len = Number(line)
      if (len < 0) return null
      if (data.length < eol + 2 + len + 2) return undefined
      return data.subarray(eol + 2, eol + 2 + len).toString()
    }
    default:
      return new Error(`unexpected reply ${JSON.stringify(data.subarray(0, 40).toString())}`)
  }
}

export interface RedisServerOptions {
  /** Extra `redis-server` arguments, e.g. `['--cluster-enabled', 'yes']`. */
  args?: readonly string[]
  /** How long start/restart may take before failing. @default 15000 */
  startTimeoutMs?: number
  /** Contents of a config file, written to the server's dir and passed first (Sentinel needs one). */
  config?: string
}

/** A `redis-server` child process on a loopback port. */
export class RedisServer {
  readonly host = HOST
  port: number
  /** The cluster bus port (cluster nodes only). */
  busPort: number
  readonly dir: string
  readonly #args: readonly string[]
  readonly #startTimeoutMs: number
  readonly #config: string | undefined
  #child: ChildProcess | undefined
  #exited: Promise<void> = Promise.resolve()
  #log: string[] = []
  #stopped = false

  private constructor(port: number, busPort: number, options: RedisServerOptions) {
    this.port = port
    this.busPort = busPort
    this.#args = options.args ?? []
    this.#startTimeoutMs = options.startTimeoutMs ?? START_TIMEOUT_MS
    this.#config = options.config
    this.dir = mkdtempSync(join(tmpdir(), 'stratacache-redis-'))
  }

  /** Starts a server on free ports (retried on a port race) and waits until it answers PING. */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    let lastError: unknown
    for (let attempt = 0; attempt < 3; attempt++) {
      const server = new RedisServer(await freePort(), await freePort(), options)
      try {
        await server.#spawn()
        return server
      } catch (err) {
        lastError = err
        await server.stop()
        if (!(err instanceof Error) || !/in use/i.test(err.message)) break
      }
    }
    throw lastError
  }

  get url(): string {
    return `redis://${HOST}:${this.port}`
  }

  get running(): boolean {
    return this.#child !== undefined
  }

  /** The last lines the server logged, for error messages. */
  logTail(lines = 15): string {
    return this.#log.slice(-lines).join('\n')
  }

  async #spawn(): Promise<void> {
    if (this.#stopped) throw new Error('this RedisServer was stopped')
    const serverArgs = ['--port', String(this.port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', this.dir, '--daemonize', 'no', ...this.#args]
    if (this.#args.includes('--cluster-enabled')) serverArgs.push('--cluster-port', String(this.busPort))
    if (this.#config !== undefined) {
      const file = join(this.dir, 'redis.conf')
      writeFileSync(file, this.#config)
      serverArgs.unshift(file)
    }
    const [cmd, args] = SETPRIV ? ['setpriv', ['--pdeathsig', 'SIGKILL', '--', 'redis-server', ...serverArgs]] : ['redis-server', serverArgs]
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    this.#child = child
    killOnExit(child)
    const onOutput = (chunk: Buffer): void => {
      this.#log.push(...chunk.toString().split('\n').filter((l) => l.trim() !== ''))
      if (this.#log.length > 200) this.#log = this.#log.slice(-100)
    }
    child.stdout?.on('data', onOutput)
    child.stderr?.on('data', onOutput)
    let exitCode: string | undefined
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        exitCode = signal ?? String(code)
        if (this.#child === child) this.#child = undefined
        resolve()
      })
      child.once('error', (err) => {
        exitCode = err.message
        if (this.#child === child) this.#child = undefined
        resolve()
      })
    })
    try {
      await waitUntil(
        async () => {
          if (exitCode !== undefined) throw new Error(`redis-server exited (${exitCode}): ${this.logTail(5)}`)
          return (await rawCommand(this.port, ['PING'], 1_000)) === 'PONG'
        },
        this.#startTimeoutMs,
        () => `redis-server on ${HOST}:${this.port} did not answer PING`,
        POLL_MS,
      )
    } catch (err) {
      await this.kill()
      const log = this.logTail()
      throw new Error(`${(err as Error).message}${log === '' ? '' : `\n--- redis-server log ---\n${log}`}`, { cause: err })
    }
  }

  /** Kills the server (SIGKILL, as a crash would) and waits for it to exit. The port stays reserved for `restart()`. */
  async kill(): Promise<void> {
    const child = this.#child
    if (child === undefined) return
    child.kill('SIGKILL')
    await this.#exited
  }

  /** Starts the server again on the same port (killing it first if it still runs). Data is not kept. */
  async restart(): Promise<void> {
    await this.kill()
    await this.#spawn()
  }

  /** SIGSTOP: the server keeps its socket open but answers nothing, like a hung host. */
  freeze(): void {
    this.#child?.kill('SIGSTOP')
  }

  /** SIGCONT: undoes `freeze()`. */
  thaw(): void {
    this.#child?.kill('SIGCONT')
  }

  /** Kills the server and removes its temp dir. Idempotent; safe in `after()` after a failure. */
  async stop(): Promise<void> {
    this.#stopped = true
    await this.kill()
    rmSync(this.dir, { recursive: true, force: true })
  }

  /** One command over a raw connection (see `rawCommand`). */
  command(...args: string[]): Promise<Reply> {
    return rawCommand(this.port, args)
  }
}

export function startRedisServer(options?: RedisServerOptions): Promise<RedisServer> {
  return RedisServer.start(options)
}

/**
 * A Sentinel (`redis-server --sentinel`) monitoring `master` under `name`; it answers
 * SENTINEL get-master-addr-by-name at once (quorum 1), which is all a client needs.
 */
export async function startRedisSentinel(master: RedisServer, name = 'mymaster'): Promise<RedisServer> {
  const sentinel = await RedisServer.start({ config: `sentinel monitor ${name} ${master.host} ${master.port} 1\n`, args: ['--sentinel'] })
  try {
    await waitUntil(
      async () => {
        const reply = await sentinel.command('SENTINEL', 'CKQUORUM', name)
        return typeof reply === 'string' && reply.startsWith('OK')
      },
      START_TIMEOUT_MS,
      () => `sentinel on port ${sentinel.port} did not report a quorum for ${name}`,
      POLL_MS,
    )
    return sentinel
  } catch (err) {
    await sentinel.stop()
    throw err
  }
}

export interface RedisCluster {
  readonly servers: readonly RedisServer[]
  /** Startup nodes for `new Cluster(nodes)` / `redisStore({ cluster: { nodes } })`. */
  readonly nodes: readonly { host: string; port: number }[]
  stop(): Promise<void>
}

const CLUSTER_SLOTS = 16_384

/**
 * Starts `masters` cluster-enabled servers and joins them into one cluster with no replicas,
 * with `redis-cli --cluster create` when it exists (and `join` is not 'manual'), else by
 * CLUSTER MEET + ADDSLOTSRANGE.
 * Resolves once every node reports `cluster_state:ok` and knows every other node.
 */
export async function startRedisCluster(options: { masters?: number; join?: 'cli' | 'manual' } = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3
  const servers: RedisServer[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.stop()))
  }
  try {
    // Sequential starts: parallel ones would fight for the two cores and for ports.
    for (let i = 0; i < masters; i++) {
      servers.push(await RedisServer.start({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000'] }))
    }
    if ((options.join ?? 'cli') === 'cli' && hasBinary('redis-cli')) await createWithCli(servers)
    else await createByHand(servers)
    await waitUntil(
      async () => {
        for (const s of servers) {
          const info = await s.command('CLUSTER', 'INFO')
          if (typeof info !== 'string') return false
          if (!info.includes('cluster_state:ok') || !info.includes(`cluster_slots_assigned:${CLUSTER_SLOTS}`) || !info.includes(`cluster_known_nodes:${masters}`)) return false
        }
        return true
      },
      CLUSTER_TIMEOUT_MS,
      () => `cluster on ports ${servers.map((s) => s.port).join(', ')} did not reach cluster_state:ok`,
      POLL_MS,
    )
    return { servers, nodes: servers.map((s) => ({ host: s.host, port: s.port })), stop }
  } catch (err) {
    await stop()
    throw err
  }
}

async function createWithCli(servers: readonly RedisServer[]): Promise<void> {
  const args = ['--cluster', 'create', ...servers.map((s) => `${s.host}:${s.port}`), '--cluster-replicas', '0', '--cluster-yes']
  await new Promise<void>((resolve, reject) => {
    const cli = spawn('redis-cli', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    cli.stdout.on('data', (c: Buffer) => (output += c.toString()))
    cli.stderr.on('data', (c: Buffer) => (output += c.toString()))
    const timer = setTimeout(() => {
      cli.kill('SIGKILL')
      reject(new Error(`redis-cli --cluster create timed out after ${CLUSTER_TIMEOUT_MS} ms:\n${output.slice(-2000)}`))
    }, CLUSTER_TIMEOUT_MS)
    cli.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    cli.once('exit', (code) => {
      clearTimeout(timer)
      if (code === 0) resolve()
      else reject(new Error(`redis-cli --cluster create exited with ${code}:\n${output.slice(-2000)}`))
    })
  })
}

async function createByHand(servers: readonly RedisServer[]): Promise<void> {
  const per = Math.ceil(CLUSTER_SLOTS / servers.length)
  for (const [i, s] of servers.entries()) {
    const first = i * per
    const last = Math.min(CLUSTER_SLOTS, first + per) - 1
    const reply = await s.command('CLUSTER', 'ADDSLOTSRANGE', String(first), String(last))
    if (reply instanceof Error) throw reply
  }
  const [head] = servers
  for (const s of servers.slice(1)) {
    const reply = await head.command('CLUSTER', 'MEET', s.host, String(s.port), String(s.busPort))
    if (reply instanceof Error) throw reply
  }
}
