/**
 * A real RabbitMQ node for tests, fully private: its own node name, AMQP port,
 * distribution port, epmd port, Erlang cookie (HOME), Mnesia and log dirs, no plugins.
 * It never touches the machine's own RabbitMQ or epmd.
 *
 * RabbitMQ boots in seconds, so a test file starts ONE node and shares it (`kill()` and
 * `restart()` keep the same ports for broker-loss tests). `stop()` halts it with
 * `rabbitmqctl -n <node> stop`, kills its epmd and removes its dirs.
 *
 * A crashed run cannot block the next: the node runs under `setpriv --pdeathsig SIGKILL`
 * (it dies with this process), every node is recorded in a registry dir, and `start()`
 * first reaps the records of runs whose process is gone (kills a surviving node and its
 * epmd, removes its dirs). Names and ports are fresh per start, so nothing stale collides.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { awaitReady, CrashableServer, exitsWithin, freePort, HOST, portOpen, requireBinary, run, spawnServer, startWithRetry } from './server-process.js'

const START_TIMEOUT_MS = 90_000
// Per OS user: another user's nodes are not ours to reap (and its dir not ours to write).
const REGISTRY = join(tmpdir(), `stratacache-rabbitmq-nodes-${userInfo().uid}`)
const SCRIPTS = '/usr/lib/rabbitmq/bin'

interface Record {
  owner: number
  node: string
  dir: string
  epmdPort: number
  pid: number | undefined
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Kills what a dead run left behind. */
async function reapStale(): Promise<void> {
  if (!existsSync(REGISTRY)) return
  for (const file of readdirSync(REGISTRY)) {
    const path = join(REGISTRY, file)
    let rec: Record
    try {
      rec = JSON.parse(readFileSync(path, 'utf8')) as Record
    } catch {
      rmSync(path, { force: true })
      continue
    }
    if (alive(rec.owner)) continue
    if (rec.pid !== undefined && alive(rec.pid)) {
      // Only if that pid is still our node (pids get reused).
      let cmdline = ''
      try {
        cmdline = readFileSync(`/proc/${rec.pid}/cmdline`, 'utf8')
      } catch {
        // gone meanwhile
      }
      if (cmdline.includes(rec.node.split('@')[0] ?? rec.node)) process.kill(rec.pid, 'SIGKILL')
    }
    await run('epmd', ['-port', String(rec.epmdPort), '-kill'], { timeoutMs: 5_000 })
    rmSync(rec.dir, { recursive: true, force: true })
    rmSync(path, { force: true })
  }
}

export class RabbitMqServer extends CrashableServer {
  readonly host = HOST
  readonly node: string
  readonly port: number
  readonly distPort: number
  readonly epmdPort: number
  readonly dir: string
  #stopped = false

  private constructor(port: number, distPort: number, epmdPort: number) {
    super()
    this.port = port
    this.distPort = distPort
    this.epmdPort = epmdPort
    this.node = `stratacache-${process.pid}-${port}@localhost`
    this.dir = mkdtempSync(join(tmpdir(), 'stratacache-rabbitmq-'))
    writeFileSync(join(this.dir, 'enabled_plugins'), '[].\n')
    // Small tmp filesystems must not trip the disk alarm (it blocks publishers).
    writeFileSync(join(this.dir, 'rabbitmq.conf'), 'disk_free_limit.absolute = 1MB\nvm_memory_high_watermark.relative = 0.9\n')
  }

  /** Starts a node on free ports and waits until it accepts AMQP connections and finished booting. */
  static async start(): Promise<RabbitMqServer> {
    requireBinary('rabbitmq-server', 'apt-get install rabbitmq-server')
    if (!existsSync(`${SCRIPTS}/rabbitmq-server`)) throw new Error(`rabbitmq-server is installed but ${SCRIPTS}/rabbitmq-server is missing (the Debian/Ubuntu package layout is expected)`)
    requireBinary('epmd', 'installed with rabbitmq-server (erlang-base)')
    await reapStale()
    mkdirSync(REGISTRY, { recursive: true })
    return startWithRetry(
      2,
      async () => new RabbitMqServer(await freePort(), await freePort(), await freePort()),
      (server) => server.spawn(),
    )
  }

  get url(): string {
    return `amqp://guest:guest@${HOST}:${this.port}`
  }

  #env(): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      LANG: 'C.UTF-8',
      HOME: this.dir,
      ERL_EPMD_PORT: String(this.epmdPort),
      RABBITMQ_NODENAME: this.node,
      RABBITMQ_NODE_IP_ADDRESS: HOST,
      RABBITMQ_NODE_PORT: String(this.port),
      RABBITMQ_DIST_PORT: String(this.distPort),
      RABBITMQ_MNESIA_BASE: join(this.dir, 'mnesia'),
      RABBITMQ_LOG_BASE: join(this.dir, 'log'),
      RABBITMQ_LOGS: '-',
      RABBITMQ_ENABLED_PLUGINS_FILE: join(this.dir, 'enabled_plugins'),
      RABBITMQ_CONFIG_FILE: join(this.dir, 'rabbitmq'),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(this.dir, 'advanced.config'),
      RABBITMQ_PID_FILE: join(this.dir, 'node.pid'),
      // Exec the VM directly (no signal-proxy shell), so the child we hold is the node.
      RUNNING_UNDER_SYSTEMD: '1',
    }
  }

  #record(pid: number | undefined): void {
    const rec: Record = { owner: process.pid, node: this.node, dir: this.dir, epmdPort: this.epmdPort, pid }
    writeFileSync(join(REGISTRY, `${this.port}.json`), JSON.stringify(rec))
  }

  protected async spawn(): Promise<void> {
    if (this.#stopped) throw new Error('this RabbitMqServer was stopped')
    this.#record(undefined)
    const proc = spawnServer(`${SCRIPTS}/rabbitmq-server`, [], { env: this.#env(), cwd: this.dir })
    this.proc = proc
    this.#record(proc.child.pid)
    await awaitReady(proc, {
      name: 'rabbitmq-server',
      ready: async () => proc.logTail(400).includes('Server startup complete') && (await portOpen(this.port)),
      timeoutMs: START_TIMEOUT_MS,
      describe: () => `rabbitmq node ${this.node} did not accept AMQP connections on ${HOST}:${this.port}`,
      cleanup: () => this.kill(),
      logLines: 30,
      pollMs: 200,
    })
  }

  /** A `rabbitmqctl` command against this node. */
  ctl(...args: string[]): Promise<{ status: number | null; output: string }> {
    return run(`${SCRIPTS}/rabbitmqctl`, ['-n', this.node, ...args], { env: this.#env(), timeoutMs: 30_000 })
  }

  /** Halts the node (`rabbitmqctl stop`, SIGKILL if that fails), its epmd, and removes its dirs. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped && this.proc === undefined) return
    this.#stopped = true
    const proc = this.proc
    if (proc !== undefined && proc.exit() === undefined) {
      await this.ctl('stop')
      if (!(await exitsWithin(proc, 10_000))) await this.kill()
    }
    this.proc = undefined
    await run('epmd', ['-port', String(this.epmdPort), '-kill'], { timeoutMs: 5_000 })
    rmSync(this.dir, { recursive: true, force: true })
    rmSync(join(REGISTRY, `${this.port}.json`), { force: true })
  }
}
