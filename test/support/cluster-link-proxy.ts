/**
 * Fault injection on the cluster transport between node processes: a `LinkProxy` in front
 * of each node's cluster port (the node advertises the proxy's port with
 * `--advertise-cluster-port`, so every peer dials it through the proxy), all sharing one
 * `LinkRules` that says which links (dialer → node) are cut.
 *
 * Cluster connections are one-way (the dialer sends, the node it dialled receives; see
 * src/cluster/tcp-transport.ts), so a connection is one directed link. The dialer's node id
 * is read from its first frame (AUTH: u32 length, a type byte, then a msgpack array
 * `[version, clientId, serverId, …]`, sent in clear before the MAC'ed frames). While a
 * link is cut, its connections forward nothing in either direction: open ones are closed
 * when the cut starts (as a router that drops a flow's state), new ones are accepted and
 * black-holed after their AUTH (the dialer's handshake times out, as against a silent
 * firewall). `heal()` closes the black-holed connections so dialers start afresh.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { unpack } from 'msgpackr'

/** Which directed links are cut, shared by every proxy of a test. */
export class LinkRules {
  #cut: (from: string, to: string) => boolean = () => false
  readonly #proxies = new Set<LinkProxy>()

  /** Cuts every link `blocked` answers true for (both directions must be named to cut both). */
  cut(blocked: (from: string, to: string) => boolean): void {
    this.#cut = blocked
    for (const p of this.#proxies) p.enforce()
  }

  /** Every link forwards again. */
  heal(): void {
    this.#cut = () => false
    for (const p of this.#proxies) p.enforce()
  }

  blocked(from: string, to: string): boolean {
    return this.#cut(from, to)
  }

  /** @internal */
  register(proxy: LinkProxy): void {
    this.#proxies.add(proxy)
  }

  /** @internal */
  unregister(proxy: LinkProxy): void {
    this.#proxies.delete(proxy)
  }
}

interface Link {
  readonly client: Socket
  readonly upstream: Socket
  /** The dialer's node id, once its AUTH frame is read. */
  from: string | undefined
  /** Bytes from the dialer before its AUTH frame was complete. */
  head: Buffer
  /** Black-holed: nothing forwarded either way. */
  held: boolean
}

export interface LinkProxyStats {
  readonly connections: number
  /** Connections closed or black-holed because their link was cut. */
  readonly cut: number
}

/** A TCP proxy in front of one node's cluster port (`to`: that node's id). */
export class LinkProxy {
  readonly port: number
  readonly #server: Server
  readonly #links = new Set<Link>()
  readonly #rules: LinkRules
  readonly #to: string
  #connections = 0
  #cutCount = 0

  private constructor(server: Server, port: number, rules: LinkRules, to: string) {
    this.#server = server
    this.port = port
    this.#rules = rules
    this.#to = to
  }

  static async start(rules: LinkRules, to: string, targetPort: number, host = '127.0.0.1'): Promise<LinkProxy> {
    const made: { proxy?: LinkProxy } = {}
    const server = createServer((client) => made.proxy?.accept(client, targetPort, host))
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, host, () => {
        const address = server.address()
        resolve(typeof address === 'object' && address !== null ? address.port : 0)
      })
    })
    const proxy = new LinkProxy(server, port, rules, to)
    made.proxy = proxy
    rules.register(proxy)
    return proxy
  }

  get stats(): LinkProxyStats {
    return { connections: this.#connections, cut: this.#cutCount }
  }

  /** @internal Applies the rules to the connections open now. */
  enforce(): void {
    for (const link of [...this.#links]) {
      if (link.from === undefined) continue
      const blocked = this.#rules.blocked(link.from, this.#to)
      if (blocked && !link.held) {
        this.#cutCount++
        this.#drop(link)
      } else if (!blocked && link.held) {
        this.#drop(link)
      }
    }
  }

  /** @internal */
  accept(client: Socket, targetPort: number, host: string): void {
    this.#connections++
    const upstream = createConnection({ host, port: targetPort })
    const link: Link = { client, upstream, from: undefined, head: Buffer.alloc(0), held: false }
    this.#links.add(link)
    client.on('data', (chunk: Buffer) => {
      if (link.held) return
      if (link.from !== undefined) {
        upstream.write(chunk)
        return
      }
      link.head = Buffer.concat([link.head, chunk])
      if (link.head.length < 4) return
      const length = link.head.readUInt32BE(0)
      if (link.head.length < 4 + length) return
      link.from = dialerOf(link.head.subarray(4, 4 + length)) ?? '?'
      if (this.#rules.blocked(link.from, this.#to)) {
        this.#cutCount++
        link.held = true
        link.head = Buffer.alloc(0)
        return
      }
      upstream.write(link.head)
      link.head = Buffer.alloc(0)
    })
    upstream.on('data', (chunk: Buffer) => {
      if (!link.held) client.write(chunk)
    })
    const end = (): void => this.#drop(link)
    for (const s of [client, upstream]) {
      s.on('close', end)
      s.on('error', end)
    }
  }

  async close(): Promise<void> {
    this.#rules.unregister(this)
    for (const link of [...this.#links]) this.#drop(link)
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  #drop(link: Link): void {
    this.#links.delete(link)
    link.client.destroy()
    link.upstream.destroy()
  }
}

/** The client id of an AUTH frame body (type byte, msgpack `[version, clientId, …]`), or undefined. */
function dialerOf(body: Buffer): string | undefined {
  try {
    const value: unknown = unpack(body.subarray(1))
    return Array.isArray(value) && typeof value[1] === 'string' ? value[1] : undefined
  } catch {
    return undefined
  }
}
