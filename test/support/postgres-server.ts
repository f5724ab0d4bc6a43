/**
 * A throwaway PostgreSQL for tests: `initdb` into a temp dir, `postgres` on a free
 * loopback port with its unix socket in that dir, trust auth, no fsync. PostgreSQL refuses
 * to run as root, so when the test runs as root (CI does) the server runs as the
 * `postgres` OS user, in a directory that user owns.
 */
import { chownSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { awaitReady, freePort, HOST, killProcess, portOpen, postgresBinDir, run, spawnServer, startWithRetry, type Spawned } from './server-process.js'

const START_TIMEOUT_MS = 30_000

function osUser(name: string): { uid: number; gid: number } {
  const uid = spawnSync('id', ['-u', name], { encoding: 'utf8' })
  const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' })
  if (uid.status !== 0 || gid.status !== 0) throw new Error(`running as root, PostgreSQL needs the '${name}' OS user (created by the postgresql package)`)
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
}

export class PostgresServer {
  readonly host = HOST
  readonly port: number
  readonly dir: string
  readonly #bin: string
  readonly #asUser: string | undefined
  #proc: Spawned | undefined
  #stopped = false

  private constructor(port: number, bin: string) {
    this.port = port
    this.#bin = bin
    this.#asUser = userInfo().uid === 0 ? 'postgres' : undefined
    this.dir = mkdtempSync(join(tmpdir(), 'stratacache-pg-'))
    if (this.#asUser !== undefined) {
      const { uid, gid } = osUser(this.#asUser)
      chownSync(this.dir, uid, gid)
    }
  }

  /** initdb + start on a free port; resolves once it accepts connections. */
  static async start(): Promise<PostgresServer> {
    const bin = postgresBinDir()
    return startWithRetry(
      3,
      async () => new PostgresServer(await freePort(), bin),
      async (server) => {
        const init = await run(`${bin}/initdb`, ['-D', join(server.dir, 'data'), '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync'], { asUser: server.#asUser, timeoutMs: 60_000 })
        if (init.status !== 0) throw new Error(`initdb failed (${init.status}):\n${init.output.slice(-2000)}`)
        await server.#spawn()
      },
    )
  }

  /** A connection string for `pg` (user postgres, database postgres, trust auth). */
  get url(): string {
    return `postgres://postgres@${HOST}:${this.port}/postgres`
  }

  async #spawn(): Promise<void> {
    if (this.#stopped) throw new Error('this PostgresServer was stopped')
    const args = ['-D', join(this.dir, 'data'), '-p', String(this.port), '-k', this.dir, '-c', `listen_addresses=${HOST}`, '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']
    const proc = spawnServer(`${this.#bin}/postgres`, args, { asUser: this.#asUser })
    this.#proc = proc
    await awaitReady(proc, {
      name: 'postgres',
      ready: async () => proc.logTail(50).includes('ready to accept connections') && (await portOpen(this.port)),
      timeoutMs: START_TIMEOUT_MS,
      describe: () => `postgres on ${HOST}:${this.port} did not accept connections`,
      cleanup: () => this.kill(),
    })
  }

  /** Fast shutdown (SIGINT: sessions are cut, as a crash would from the clients' side); data stays for `restart()`. */
  async kill(): Promise<void> {
    const proc = this.#proc
    if (proc === undefined) return
    await killProcess(proc, 'SIGINT', 10_000)
    this.#proc = undefined
  }

  /** Starts again on the same port with the same data. */
  async restart(): Promise<void> {
    await this.kill()
    await this.#spawn()
  }

  /** Stops the server and removes its dir. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true
    await this.kill()
    rmSync(this.dir, { recursive: true, force: true })
  }
}
