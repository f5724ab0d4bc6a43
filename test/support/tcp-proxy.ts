/**
 * A TCP proxy on a free loopback port in front of a server, that a test can pause: while
 * paused, bytes in both directions are held (not forwarded, not dropped) and the sockets
 * stay open — what a client sees when a NAT, a firewall or a hung peer silently stops its
 * connection. `resume()` forwards what was held and carries on.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net'

interface Pipe {
  readonly client: Socket
  readonly upstream: Socket
  held: Array<() => void>
  /** This connection's answers (upstream to client) are held, its requests still go through. */
  answersHeld: boolean
}

interface State {
  paused: boolean
  readonly pipes: Set<Pipe>
}

export class TcpProxy {
  readonly port: number
  readonly #server: Server
  readonly #state: State

  private constructor(server: Server, port: number, state: State) {
    this.#server = server
    this.port = port
    this.#state = state
  }

  static async start(targetPort: number, host = '127.0.0.1'): Promise<TcpProxy> {
    const proxy: State = { paused: false, pipes: new Set() }
    const server = createServer((client) => {
      const upstream = createConnection({ host, port: targetPort })
      const pipe: Pipe = { client, upstream, held: [], answersHeld: false }
      proxy.pipes.add(pipe)
      const forward = (from: Socket, to: Socket): void => {
        from.on('data', (chunk: Buffer) => {
          if (proxy.paused || (pipe.answersHeld && from === upstream)) pipe.held.push(() => to.write(chunk))
          else to.write(chunk)
        })
      }
      forward(client, upstream)
      forward(upstream, client)
      const end = (): void => {
        proxy.pipes.delete(pipe)
        client.destroy()
        upstream.destroy()
      }
      client.on('close', end)
      upstream.on('close', end)
      client.on('error', end)
      upstream.on('error', end)
    })
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, host, () => {
        const address = server.address()
        resolve(typeof address === 'object' && address !== null ? address.port : 0)
      })
    })
    return new TcpProxy(server, port, proxy)
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  pause(): void {
    this.#state.paused = true
  }

  /** Closes every connection open now (both ends), as when a NAT or a peer drops them; new ones are accepted (held while paused). */
  dropConnections(): void {
    for (const pipe of [...this.#state.pipes]) {
      this.#state.pipes.delete(pipe)
      pipe.client.destroy()
      pipe.upstream.destroy()
    }
  }

  /**
   * The connections open now lose their answers: requests still reach the server, its answers
   * are held (until `resume()`), as when a connection dies after the request went out.
   * Connections made afterwards are not affected.
   */
  holdAnswers(): void {
    for (const pipe of this.#state.pipes) pipe.answersHeld = true
  }

  resume(): void {
    this.#state.paused = false
    for (const pipe of this.#state.pipes) {
      pipe.answersHeld = false
      const held = pipe.held
      pipe.held = []
      for (const send of held) send()
    }
  }

  async close(): Promise<void> {
    for (const pipe of this.#state.pipes) {
      pipe.client.destroy()
      pipe.upstream.destroy()
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}
