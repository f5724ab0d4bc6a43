/**
 * The node's live dashboard (issue 20, P12 item 3): one static page at `GET /dashboard`
 * (dashboard-page.ts) fed by Server-Sent Events from `GET /v1/dashboard/events`, and the
 * same snapshot as JSON at `GET /v1/dashboard/snapshot`.
 *
 * Data flow: while at least one stream is open, one ticker (the node's `Clock`, every
 * `intervalMs`) builds ONE snapshot — the node's stats, its cluster view (`GET /v1/cluster`
 * through the node's own API, or, on a node without cluster wiring, the node alone as a
 * one-member cluster), and rates computed against the previous tick — serialises it once
 * and writes the same frame to every stream. With no stream open there is no timer: an
 * idle node pays nothing (decision 0271).
 *
 * Invariants:
 * - A stream never holds an in-flight slot and is not "active" work: a shutdown ends every
 *   stream first (`close()`), it does not wait for them.
 * - A slow reader never makes the node buffer without bound: a frame is skipped for a
 *   stream whose socket still holds more than `MAX_BUFFERED_BYTES` (every frame is the whole
 *   state, so a skipped one loses nothing), and a stream that skipped every frame for
 *   `STALL_LIMIT_MS` is ended.
 * - At most `maxStreams` streams are open; past it `subscribe` refuses (the node answers
 *   503), so the dashboard cannot be used to hold unbounded timers or buffers.
 * - Nothing a stream does (closing mid-write, erroring) throws into the ticker; a failing
 *   snapshot source is logged by the caller and the stream gets a lone-node view.
 */
import type { Clock, TimerHandle } from '../core/clock.js'
import type { ClusterView } from '../cluster/membership.js'
import { API_PREFIX } from '../protocol/wire.js'
import { DASHBOARD_HTML, DASHBOARD_PAGE_HEADERS } from './dashboard-page.js'
import type { ApiResponse } from './http-api.js'

/** Path of the dashboard page. */
export const DASHBOARD_PATH = '/dashboard'
/** Path of the dashboard's Server-Sent Events stream (one `snapshot` event per interval). */
export const DASHBOARD_EVENTS_PATH = `${API_PREFIX}/dashboard/events`
/** Path of one dashboard snapshot as JSON. */
export const DASHBOARD_SNAPSHOT_PATH = `${API_PREFIX}/dashboard/snapshot`

/** True for the dashboard's three paths (they take the same auth as the API, or HTTP Basic with the token as password). */
export function isDashboardPath(path: string): boolean {
  return path === DASHBOARD_PATH || path === DASHBOARD_EVENTS_PATH || path === DASHBOARD_SNAPSHOT_PATH
}

/** A frame is skipped for a stream whose socket holds more than this many unsent bytes. */
export const MAX_BUFFERED_BYTES = 256 * 1024
/** A stream that could take no frame for this long is ended (its client is gone or stuck). */
export const STALL_LIMIT_MS = 30_000
/** What the browser waits before reconnecting a dropped stream (SSE `retry:`), ms. */
const RECONNECT_MS = 2000

/** Rates over the window since the previous sample (`null` figures when nothing to divide). */
export interface DashboardRates {
  /** Length of the window, ms. */
  readonly windowMs: number
  /** HTTP requests per second answered by the node (the dashboard's own stream counts once, when it opens). */
  readonly requestsPerSec: number
  /** Cache reads (hits + misses) per second. */
  readonly readsPerSec: number
  /** Hits / reads in the window; `null` when there were no reads. */
  readonly hitRatio: number | null
}

/** What `GET /v1/dashboard/snapshot` returns and each SSE `snapshot` event carries. */
export interface DashboardSnapshot {
  /** Shape version of this object. */
  readonly v: 1
  /** When it was built (ms since the Unix epoch, the node's clock). */
  readonly at: number
  /** The node that built it. */
  readonly node: { readonly id: string; readonly url: string; readonly region: string }
  /** The node's cluster view; on a node without cluster wiring, the node alone. */
  readonly cluster: ClusterView
  /** True when the node is alone: a one-node cluster (no seeds or discovery), or no cluster view yet. */
  readonly standalone: boolean
  /** `null` on the first frame of a stream after the ticker was idle (no window yet). */
  readonly rates: DashboardRates | null
  /** Hits / reads since the node started; `null` before the first read. */
  readonly hitRatioTotal: number | null
  /**
   * `GET /v1/stats` as is: `node`, `requests`, `cache`, `store`, and whatever sections later
   * layers add (replication, hints, near-cache clients): the page shows each section it
   * finds and hides those it does not.
   */
  readonly stats: Readonly<Record<string, unknown>>
}

/** What the dashboard reads from the node around it. */
export interface DashboardSource {
  readonly clock: Clock
  /** The node's id (known once it listens). */
  id(): string
  /** The node's base URL (`http://host:port`). */
  url(): string
  /** The node's configured region. */
  readonly region: string
  /** The node's stats (`GET /v1/stats`). */
  stats(): unknown
  /** The node's cluster view, or `undefined` when it has none (no cluster wiring). */
  cluster(): Promise<ClusterView | undefined>
  /** Called when building a snapshot failed in an unexpected way (logged by the node). */
  onError(error: unknown): void
}

export interface DashboardOptions {
  /** How often a snapshot is pushed to open streams, ms. @default 1000 */
  readonly intervalMs?: number
  /** Most streams open at once. @default 32 */
  readonly maxStreams?: number
}

/** Where a stream's frames go: a `ServerResponse` fits. */
export interface EventSink {
  /** Writes a chunk; the return value is ignored (back-pressure is read from `writableLength`). */
  write(chunk: string): unknown
  /** Bytes queued on the socket, not yet sent. */
  readonly writableLength: number
  /** True once the sink is gone (a `ServerResponse` whose socket closed): the stream is dropped at its next frame. */
  readonly destroyed?: boolean
  /** Ends the stream. */
  end(): void
}

interface Stream {
  readonly sink: EventSink
  /** When this stream last took a frame (or opened). */
  lastSent: number
}

interface Sample {
  readonly at: number
  readonly requests: number
  readonly hits: number
  readonly misses: number
}

/** Reads a number at `path` in `stats`, 0 when absent or not a finite number. */
function numberAt(stats: unknown, section: string, field: string): number {
  if (stats === null || typeof stats !== 'object') return 0
  const s = (stats as Record<string, unknown>)[section]
  if (s === null || typeof s !== 'object') return 0
  const v = (s as Record<string, unknown>)[field]
  return typeof v === 'number' && Number.isFinite(v) ? v : 0
}

function sampleOf(stats: unknown, at: number): Sample {
  return { at, requests: numberAt(stats, 'requests', 'total'), hits: numberAt(stats, 'cache', 'hits'), misses: numberAt(stats, 'cache', 'misses') }
}

const round = (x: number, digits: number): number => {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** The rates between two samples; `null` when the window is empty. */
export function ratesBetween(prev: Sample, next: Sample): DashboardRates | null {
  const windowMs = next.at - prev.at
  if (!(windowMs > 0)) return null
  const perSec = (d: number): number => round((Math.max(0, d) * 1000) / windowMs, 1)
  const hits = Math.max(0, next.hits - prev.hits)
  const reads = hits + Math.max(0, next.misses - prev.misses)
  return { windowMs: Math.round(windowMs), requestsPerSec: perSec(next.requests - prev.requests), readsPerSec: perSec(reads), hitRatio: reads === 0 ? null : round(hits / reads, 4) }
}

/**
 * The view a node without cluster wiring shows: itself, alive, alone in its region, in
 * the initial cluster state (`ACTIVE`, version 0).
 */
export function loneClusterView(id: string, region: string, url: string): ClusterView {
  let address = url
  try {
    address = new URL(url).host
  } catch {
    // keep the URL as given
  }
  return {
    self: id,
    region,
    incarnation: 0,
    status: 'alive',
    state: { state: 'ACTIVE', version: 0, origin: '' },
    regions: [{ region, rank: 0, rttMs: null, members: [{ id, region, address, status: 'alive', incarnation: 0, phi: null, rttMs: null, self: true }] }],
  }
}

/** The dashboard's page, snapshots and live streams (see the file header). */
export class Dashboard {
  readonly #source: DashboardSource
  readonly #intervalMs: number
  readonly #maxStreams: number
  readonly #streams = new Set<Stream>()
  /** The last tick's sample: the start of the next rates window. */
  #prev: Sample
  #timer: TimerHandle | undefined
  /** A snapshot is being built (ticks never overlap). */
  #building = false
  #seq = 0
  #closed = false

  constructor(source: DashboardSource, options: DashboardOptions = {}) {
    this.#source = source
    this.#intervalMs = options.intervalMs ?? 1000
    this.#maxStreams = options.maxStreams ?? 32
    if (!(Number.isInteger(this.#intervalMs) && this.#intervalMs >= 10)) throw new RangeError(`intervalMs must be an integer >= 10, got ${this.#intervalMs}`)
    if (!(Number.isInteger(this.#maxStreams) && this.#maxStreams >= 1)) throw new RangeError(`maxStreams must be an integer >= 1, got ${this.#maxStreams}`)
    this.#prev = sampleOf(undefined, source.clock.now())
  }

  /** Streams open now. */
  get streams(): number {
    return this.#streams.size
  }

  /** True when `subscribe` would refuse (`maxStreams` open, or closed). */
  get full(): boolean {
    return this.#closed || this.#streams.size >= this.#maxStreams
  }

  /** True while the ticker is scheduled (some stream is open). */
  get ticking(): boolean {
    return this.#timer !== undefined || this.#building
  }

  /** The page (`GET /dashboard`): static HTML with its script and style inline, locked down by a CSP. */
  page(): ApiResponse {
    return { status: 200, headers: { ...DASHBOARD_PAGE_HEADERS }, body: DASHBOARD_HTML }
  }

  /**
   * One snapshot now. Its rates cover the time since the last tick (or since the node
   * started, when no stream has been open); it does not move the ticker's window.
   */
  async snapshot(): Promise<DashboardSnapshot> {
    return this.#build('peek')
  }

  /**
   * Opens a stream on `sink`: the `retry:` hint and a first snapshot at once, then one per
   * interval. Returns the function that closes it (call it when the client goes away; it
   * is idempotent), or `undefined` when `maxStreams` are open or the dashboard is closed.
   */
  subscribe(sink: EventSink): (() => void) | undefined {
    if (this.#closed || this.#streams.size >= this.#maxStreams) return undefined
    const stream: Stream = { sink, lastSent: this.#source.clock.now() }
    const idle = this.#streams.size === 0
    this.#streams.add(stream)
    safeWrite(sink, `retry: ${RECONNECT_MS}\n\n`)
    if (idle && !this.#building) {
      // The ticker was parked: its first frame starts a new window (a window from the last
      // tick would average over the idle time).
      void this.#tick('first')
    } else {
      // The next tick reaches it; send what is known now so the page fills at once.
      void this.#build('peek').then((s) => this.#send(stream, frame(s, this.#seq)), (err: unknown) => this.#source.onError(err))
    }
    return () => this.#drop(stream)
  }

  /** Ends every stream and stops the ticker; later subscriptions are refused. Idempotent. */
  close(): void {
    this.#closed = true
    this.#stop()
    for (const s of [...this.#streams]) {
      this.#streams.delete(s)
      safeEnd(s.sink)
    }
  }

  #drop(stream: Stream): void {
    if (!this.#streams.delete(stream)) return
    if (this.#streams.size === 0) this.#stop()
  }

  #stop(): void {
    if (this.#timer !== undefined) this.#source.clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }

  async #tick(mode: 'first' | 'tick'): Promise<void> {
    this.#timer = undefined
    if (this.#streams.size === 0 || this.#closed) return
    this.#building = true
    try {
      const snapshot = await this.#build(mode)
      const text = frame(snapshot, ++this.#seq)
      for (const s of [...this.#streams]) this.#send(s, text)
    } catch (err) {
      this.#source.onError(err)
    } finally {
      this.#building = false
    }
    if (this.#streams.size > 0 && !this.#closed && this.#timer === undefined) {
      this.#timer = this.#source.clock.setTimeout(() => void this.#tick('tick'), this.#intervalMs, { unref: true })
    }
  }

  #send(stream: Stream, text: string): void {
    if (!this.#streams.has(stream)) return
    // The owner drops a stream when its client leaves; this catches one it missed.
    if (stream.sink.destroyed === true) {
      this.#drop(stream)
      return
    }
    const now = this.#source.clock.now()
    if (stream.sink.writableLength > MAX_BUFFERED_BYTES) {
      if (now - stream.lastSent >= STALL_LIMIT_MS) {
        this.#drop(stream)
        safeEnd(stream.sink)
      }
      return
    }
    stream.lastSent = now
    if (!safeWrite(stream.sink, text)) this.#drop(stream)
  }

  /**
   * Builds a snapshot. `tick`: rates over the window since the last tick, and this sample
   * starts the next one; `first`: no rates yet, this sample starts the window; `peek`:
   * rates since the last tick, the window is left as is.
   */
  async #build(mode: 'first' | 'tick' | 'peek'): Promise<DashboardSnapshot> {
    const src = this.#source
    let cluster: ClusterView | undefined
    try {
      cluster = await src.cluster()
    } catch (err) {
      src.onError(err)
    }
    const stats = src.stats()
    const now = src.clock.now()
    const sample = sampleOf(stats, now)
    const rates = mode === 'first' ? null : ratesBetween(this.#prev, sample)
    if (mode !== 'peek') this.#prev = sample
    const reads = sample.hits + sample.misses
    return {
      v: 1,
      at: now,
      node: { id: src.id(), url: src.url(), region: src.region },
      cluster: cluster ?? loneClusterView(src.id(), src.region, src.url()),
      standalone: cluster === undefined || cluster.regions.every((g) => g.members.every((m) => m.self)),
      rates,
      hitRatioTotal: reads === 0 ? null : round(sample.hits / reads, 4),
      stats: stats !== null && typeof stats === 'object' ? (stats as Record<string, unknown>) : {},
    }
  }
}

/** One SSE event carrying `snapshot` (its JSON has no newline, so one `data:` line). */
function frame(snapshot: DashboardSnapshot, id: number): string {
  return `event: snapshot\nid: ${id}\ndata: ${JSON.stringify(snapshot)}\n\n`
}

/** Writes without throwing; false when the sink refused (destroyed). */
function safeWrite(sink: EventSink, text: string): boolean {
  try {
    sink.write(text)
    return true
  } catch {
    return false
  }
}

function safeEnd(sink: EventSink): void {
  try {
    sink.end()
  } catch {
    // already gone
  }
}
