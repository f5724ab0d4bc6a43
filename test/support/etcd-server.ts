/**
 * Real `etcd` (3.4) members for tests: a 3-member cluster (or a single member) on free
 * loopback ports, each with its data dir in one temp dir, with per-member `kill()` (SIGKILL,
 * as a crash), `pause()` / `resume()` (SIGSTOP / SIGCONT: a hung host that keeps its
 * sockets) and `restart()` on the same ports and data (it rejoins the cluster).
 *
 * Readiness is etcd's own `/health` on the client port ({"health":"true"} once the member
 * sees a leader and can serve), read over plain HTTP so that the harness never depends on
 * the code under test. A start that fails (a port taken between `freePort()` and the bind)
 * is retried on fresh ports.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { awaitReady, CrashableServer, freePort, HOST, requireBinary, spawnServer, waitUntil } from './server-process.js'

const START_TIMEOUT_MS = 30_000

/** GET /health on a member's client port: true when it answers {"health":"true"}. */
export function etcdHealthy(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: HOST, port, path: '/health', timeout: timeoutMs }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)))
      res.on('error', () => resolve(false))
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(false))
    req.end()
  })
}

interface MemberPlan {
  readonly name: string
  readonly clientPort: number
  readonly peerPort: number
}

/** One etcd member process. */
export class EtcdMember extends CrashableServer {
  readonly host = HOST
  readonly name: string
  readonly clientPort: number
  readonly peerPort: number
  readonly dataDir: string
  readonly #binary: string
  readonly #initialCluster: string
  readonly #token: string
  #booted = false
  #stopped = false

  constructor(plan: MemberPlan, root: string, binary: string, initialCluster: string, token: string) {
    super()
    this.name = plan.name
    this.clientPort = plan.clientPort
    this.peerPort = plan.peerPort
    this.dataDir = join(root, plan.name)
    mkdirSync(this.dataDir, { recursive: true })
    this.#binary = binary
    this.#initialCluster = initialCluster
    this.#token = token
  }

  /** The client URL (`http://127.0.0.1:port`), as `etcdStore({ endpoints })` takes it. */
  get endpoint(): string {
    return `http://${HOST}:${this.clientPort}`
  }

  get pid(): number | undefined {
    return this.proc?.child.pid
  }

  /** Spawns the process; readiness is awaited by the cluster (members of a new cluster wait for each other). */
  launch(): void {
    if (this.#stopped) throw new Error(`etcd member ${this.name} was stopped`)
    const client = `http://${HOST}:${this.clientPort}`
    const peer = `http://${HOST}:${this.peerPort}`
    this.proc = spawnServer(this.#binary, [
      '--name', this.name,
      '--data-dir', this.dataDir,
      '--listen-client-urls', client,
      '--advertise-client-urls', client,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', this.#initialCluster,
      // A restart reuses the data dir: etcd ignores the initial-cluster flags then.
      '--initial-cluster-state', this.#booted ? 'existing' : 'new',
      '--initial-cluster-token', this.#token,
      '--logger', 'zap',
      '--log-level', 'warn',
    ])
    this.#booted = true
  }

  /** Waits for /health; fails early (with the log) if the process exits. */
  async ready(timeoutMs = START_TIMEOUT_MS): Promise<void> {
    const proc = this.proc
    if (proc === undefined) throw new Error(`etcd member ${this.name} is not running`)
    await awaitReady(proc, {
      name: `etcd ${this.name}`,
      ready: () => etcdHealthy(this.clientPort),
      timeoutMs,
      describe: () => `etcd member ${this.name} on ${HOST}:${this.clientPort} did not report healthy`,
      cleanup: () => this.kill(),
      pollMs: 100,
    })
  }

  protected async spawn(): Promise<void> {
    this.launch()
    await this.ready()
  }

  /** SIGSTOP: the member keeps its sockets open but answers nothing (a hung host, a GC pause). */
  pause(): void {
    this.proc?.child.kill('SIGSTOP')
  }

  /** SIGCONT: undoes `pause()`. */
  resume(): void {
    this.proc?.child.kill('SIGCONT')
  }

  /** The last lines the member logged. */
  logTail(lines = 20): string {
    return this.proc?.logTail(lines) ?? ''
  }

  async stop(): Promise<void> {
    this.#stopped = true
    this.resume()
    await this.kill()
  }
}

export interface EtcdCluster {
  readonly members: readonly EtcdMember[]
  /** Every member's client URL. */
  readonly endpoints: readonly string[]
  readonly dir: string
  /** The member that is leader now (by asking each running member's /v3 status), or undefined. */
  leader(): Promise<EtcdMember | undefined>
  /** Kills every member and removes the temp dir. Idempotent; safe in `after()`. */
  stop(): Promise<void>
}

/** POST a v3 JSON-gateway call (status) to a member; undefined when it does not answer. */
function gatewayPost(port: number, path: string, body: string, timeoutMs = 1_000): Promise<unknown> {
  return new Promise((resolve) => {
    const req = request({ host: HOST, port, path, method: 'POST', timeout: timeoutMs, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = ''
      res.on('data', (c: Buffer) => (text += c.toString()))
      res.on('end', () => {
        try {
          resolve(JSON.parse(text))
        } catch {
          resolve(undefined)
        }
      })
      res.on('error', () => resolve(undefined))
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(undefined))
    req.end(body)
  })
}

/**
 * Starts `members` (default 3) etcd members as one new cluster on free loopback ports and
 * resolves once every member reports healthy. Retried on fresh ports if a start fails.
 */
export async function startEtcdCluster(options: { members?: number } = {}): Promise<EtcdCluster> {
  const binary = requireBinary('etcd', 'apt-get install etcd-server')
  const size = options.members ?? 3
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), 'stratacache-etcd-'))
    const plans: MemberPlan[] = []
    for (let i = 0; i < size; i++) plans.push({ name: `m${i}`, clientPort: await freePort(), peerPort: await freePort() })
    const initialCluster = plans.map((p) => `${p.name}=http://${HOST}:${p.peerPort}`).join(',')
    const token = `stratacache-${process.pid}-${attempt}-${plans[0]?.clientPort ?? 0}`
    const members = plans.map((p) => new EtcdMember(p, dir, binary, initialCluster, token))
    let stopped = false
    const cluster: EtcdCluster = {
      members,
      endpoints: members.map((m) => m.endpoint),
      dir,
      leader: async () => {
        for (const m of members) {
          if (!m.running) continue
          const status = (await gatewayPost(m.clientPort, '/v3/maintenance/status', '{}')) as { header?: { member_id?: string }; leader?: string } | undefined
          if (status?.leader === undefined || status.header?.member_id === undefined) continue
          if (status.leader === status.header.member_id) return m
        }
        return undefined
      },
      stop: async () => {
        if (stopped) return
        stopped = true
        await Promise.all(members.map((m) => m.stop()))
        rmSync(dir, { recursive: true, force: true })
      },
    }
    try {
      // All at once: the members of a new cluster wait for each other before they are healthy.
      for (const m of members) m.launch()
      await Promise.all(members.map((m) => m.ready()))
      return cluster
    } catch (err) {
      lastError = err
      await cluster.stop()
    }
  }
  throw lastError
}

/** Waits until some running member is leader (after a kill or pause of the old one). */
export async function waitForLeader(cluster: EtcdCluster, timeoutMs = 20_000): Promise<EtcdMember> {
  let found: EtcdMember | undefined
  await waitUntil(
    async () => (found = await cluster.leader()) !== undefined,
    timeoutMs,
    () => `no etcd member became leader (ports ${cluster.members.map((m) => m.clientPort).join(', ')})`,
    100,
  )
  return found as EtcdMember
}
