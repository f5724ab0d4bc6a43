/**
 * The near cache's link to a node's invalidation stream (`GET /v1/watch`, protocol/watch.ts):
 * connects, parses Server-Sent Events, feeds the `NearCache` (cache/near-cache.ts), and
 * reconnects with the shared backoff (core/backoff.ts) when the stream ends.
 *
 * - One stream at a time, to the *watched* node: the first of `nodes` that answers, in
 *   order. In a cluster every node's stream carries every change it applies, replicated
 *   ones included; the client fills its near cache only from the watched node (reads that
 *   populate it are pinned there), so what it caches and what it hears about agree.
 * - The stream is lost when it ends, errors, does not say `hello` within `connectTimeoutMs`,
 *   or is silent for 3 metadata intervals (the node sends `meta` every interval): the near
 *   cache bypasses at once, and the link reconnects after a backoff.
 * - `filter` is a test seam: a message it refuses is dropped as if lost on the wire.
 */
import type { Backoff, BackoffPolicy } from '../core/backoff.js'
import type { Clock, TimerHandle } from '../core/clock.js'
import type { NearCache } from '../cache/near-cache.js'
import { parseWatchMessage, WATCH_PATH, type WatchMessage } from '../protocol/watch.js'
import type { Transport } from './transport.js'

/** Silent intervals after which a stream is declared lost. */
export const SILENT_INTERVALS = 3

export interface NearCacheLinkOptions<V> {
  readonly near: NearCache<V>
  readonly transport: Transport
  readonly nodes: readonly string[]
  readonly headers: Readonly<Record<string, string>>
  readonly clock: Clock
  readonly backoff: BackoffPolicy
  /** How long a new stream may take to say `hello`, ms. */
  readonly connectTimeoutMs: number
  /** Test seam: `false` drops the message. */
  readonly filter?: (message: WatchMessage) => boolean
}

export class NearCacheLink<V> {
  readonly #o: NearCacheLinkOptions<V>
  readonly #delays: Backoff
  #closed = false
  #watched: string | undefined
  #next = 0
  #controller: AbortController | undefined
  #timer: TimerHandle | undefined
  #sleep: { timer: TimerHandle; wake: () => void } | undefined
  #lastMessage = 0
  #silenceMs = Infinity
  #streams = 0
  #running: Promise<void> | undefined

  constructor(options: NearCacheLinkOptions<V>) {
    this.#o = options
    this.#delays = options.backoff.attempts()
  }

  /** The node whose stream is live (reads that fill the near cache go there), if any. */
  get watched(): string | undefined {
    return this.#o.near.live ? this.#watched : undefined
  }

  /**
   * False once no message was read for longer than the silence bound (3 intervals). The timer
   * that declares the stream lost needs a turn of the event loop; a reader awaiting only hits
   * runs on microtasks and never gives it one, nor the stream's bytes: its hits must stop here.
   */
  get heard(): boolean {
    return this.#o.clock.now() - this.#lastMessage <= this.#silenceMs
  }

  /** Streams opened so far. */
  get streams(): number {
    return this.#streams
  }

  start(): void {
    this.#running ??= this.#run()
  }

  /** Cuts the current stream (it reconnects after the backoff); for tests and operators. */
  cut(): void {
    this.#controller?.abort()
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#controller?.abort()
    this.#disarm()
    if (this.#sleep !== undefined) {
      this.#o.clock.clearTimeout(this.#sleep.timer)
      this.#sleep.wake()
    }
    await this.#running
  }

  async #run(): Promise<void> {
    const { nodes, transport } = this.#o
    while (!this.#closed) {
      const origin = nodes[this.#next % nodes.length]!
      const controller = new AbortController()
      this.#controller = controller
      this.#watched = origin
      let healthy = false
      try {
        this.#silenceMs = this.#o.connectTimeoutMs
        this.#lastMessage = this.#o.clock.now()
        this.#arm(controller)
        const res = await transport.stream!(origin, { method: 'GET', path: WATCH_PATH, headers: { ...this.#o.headers, accept: 'text/event-stream' }, signal: controller.signal })
        if (res.status !== 200) {
          for await (const _ of res.body) {
            // drain the error body
          }
        } else {
          this.#streams++
          healthy = await this.#consume(res.body)
        }
      } catch {
        // refused, reset, aborted: the stream is lost either way
      } finally {
        this.#disarm()
        controller.abort()
        this.#o.near.down()
      }
      if (this.#closed) break
      if (healthy) this.#delays.reset()
      else this.#next++
      await this.#wait(this.#delays.next())
    }
  }

  /** Reads the stream until it ends; true when it said hello (the node was reachable). */
  async #consume(body: AsyncIterable<Buffer>): Promise<boolean> {
    let text = ''
    let hello = false
    for await (const chunk of body) {
      text += chunk.toString('utf8')
      let end: number
      while ((end = text.indexOf('\n\n')) !== -1) {
        const event = text.slice(0, end)
        text = text.slice(end + 2)
        let data = ''
        for (const line of event.split('\n')) if (line.startsWith('data:')) data += line.slice(line.charCodeAt(5) === 32 ? 6 : 5)
        const m = parseWatchMessage(data)
        if (m === undefined) continue
        this.#lastMessage = this.#o.clock.now()
        if (m.t === 'hello') {
          hello = true
          this.#silenceMs = SILENT_INTERVALS * m.interval
        }
        // Only `false` drops (the documented seam): a filter that returns nothing kept nothing.
        if (this.#o.filter !== undefined && this.#o.filter(m) === false) continue
        this.#dispatch(m)
      }
      if (this.#closed) break
    }
    return hello
  }

  #dispatch(m: WatchMessage): void {
    const near = this.#o.near
    switch (m.t) {
      case 'hello':
        near.up(m.s, m.seqs)
        return
      case 'key':
        near.key(m.s, m.p, m.q, m.k)
        return
      case 'all':
        near.all(m.s, m.q, m.why, m.prefix, m.tags)
        return
      case 'meta':
        near.meta(m.s, m.seqs)
    }
  }

  /** One timer per stream, re-armed only when it fires early (not on every message). */
  #arm(controller: AbortController): void {
    const clock = this.#o.clock
    const check = (): void => {
      this.#timer = undefined
      const left = this.#lastMessage + this.#silenceMs - clock.now()
      if (left > 0) this.#timer = clock.setTimeout(check, left, { unref: true })
      else {
        // Silent too long: the stream is lost even if its socket still looks open.
        this.#o.near.down()
        controller.abort()
      }
    }
    this.#timer = clock.setTimeout(check, this.#silenceMs, { unref: true })
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        timer: this.#o.clock.setTimeout(() => {
          this.#sleep = undefined
          resolve()
        }, ms, { unref: true }),
        wake: resolve,
      }
      this.#sleep = entry
    })
  }
}
