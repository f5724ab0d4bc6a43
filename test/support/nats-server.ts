/**
 * A real `nats-server` (no JetStream) on a free loopback port, with `kill()` (SIGKILL, as
 * a crash) and `restart()` on the same port, for the NATS bus transport tests.
 */
import { awaitReady, CrashableServer, freePort, HOST, portOpen, requireBinary, spawnServer, startWithRetry } from './server-process.js'

const START_TIMEOUT_MS = 15_000

export class NatsServer extends CrashableServer {
  readonly host = HOST
  readonly port: number
  readonly #binary: string
  #stopped = false

  private constructor(port: number, binary: string) {
    super()
    this.port = port
    this.#binary = binary
  }

  /** Starts a server on a free port (retried on a port race) and waits until it accepts connections. */
  static async start(): Promise<NatsServer> {
    const binary = requireBinary('nats-server', 'apt-get install nats-server')
    return startWithRetry(
      3,
      async () => new NatsServer(await freePort(), binary),
      (server) => server.spawn(),
    )
  }

  get url(): string {
    return `nats://${HOST}:${this.port}`
  }

  protected async spawn(): Promise<void> {
    if (this.#stopped) throw new Error('this NatsServer was stopped')
    const proc = spawnServer(this.#binary, ['-a', HOST, '-p', String(this.port), '--no_advertise'])
    this.proc = proc
    await awaitReady(proc, {
      name: 'nats-server',
      ready: () => portOpen(this.port),
      timeoutMs: START_TIMEOUT_MS,
      describe: () => `nats-server on ${HOST}:${this.port} did not accept connections`,
      cleanup: () => this.kill(),
    })
  }

  /** SIGSTOP: the server keeps its sockets open but answers nothing, like a hung host. */
  freeze(): void {
    this.proc?.child.kill('SIGSTOP')
  }

  /** SIGCONT: undoes `freeze()`. */
  thaw(): void {
    this.proc?.child.kill('SIGCONT')
  }

  /** Idempotent; safe in `after()` after a failure. */
  async stop(): Promise<void> {
    this.#stopped = true
    await this.kill()
  }
}
