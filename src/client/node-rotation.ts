/**
 * Which node gets the next request: round-robin over the nodes in rotation, with
 * ejection of nodes that keep failing (the gap Zerocache admits: its clients keep calling
 * dead nodes forever).
 *
 * - A node is ejected after `ejectAfter` consecutive failures (network errors, timeouts,
 *   5xx other than 503). A busy answer is not a failure: the node is alive.
 * - An ejected node gets no traffic. A probe (`GET /healthz`) runs after `probeInterval`;
 *   success puts the node back in rotation, failure doubles the interval up to
 *   `maxProbeInterval`, jittered by the shared backoff policy (core/backoff.ts) so that
 *   a fleet of clients that ejected a node together does not probe it in lockstep.
 *   A node ejected again less than `maxProbeInterval` after it came back goes on from
 *   its last probe delay instead of starting over: a node that answers its probe but keeps
 *   failing reads (a recurring pause) is held out 1, 2, 4... s, not let back every second.
 *   Probes run on the injected Clock (unref'd timers), so tests drive them with a
 *   ManualClock.
 * - `quarantine(node)` ejects at once, whatever the count: the read ladder calls it for a try
 *   abandoned by its own timeout (a node that accepts connections and never answers), so a
 *   hung node costs one timeout, not `ejectAfter` of them (decision 0314).
 * - If every node is ejected, requests still go round-robin over all of them: trying a
 *   node that might be back beats failing without trying. A success from any request
 *   reinstates the node at once.
 */
import type { Backoff, BackoffPolicy } from '../core/backoff.js'
import type { Clock, TimerHandle } from '../core/clock.js'

export interface NodeRotationConfig {
  readonly ejectAfter: number
  /** Probe delays: `initial` is probeInterval, `max` is maxProbeInterval. */
  readonly probes: BackoffPolicy
}

/** What the client knows about one node (`client.nodes()`). */
export interface NodeState {
  readonly node: string
  readonly inRotation: boolean
  readonly consecutiveFailures: number
  /** Times this node was ejected since the client started. */
  readonly ejections: number
  /** When the next probe runs (clock ms), if ejected. */
  readonly nextProbeAt: number | undefined
}

interface Slot {
  readonly node: string
  failures: number
  ejected: boolean
  ejections: number
  readonly probeDelays: Backoff
  nextProbeAt: number | undefined
  timer: TimerHandle | undefined
  probing: boolean
  /** When it last came back into rotation (clock ms). */
  reinstatedAt: number | undefined
  /** Counts ejections: a probe answers only for the ejection it was started in. */
  epoch: number
}

export class NodeRotation {
  readonly #slots: Slot[]
  readonly #byNode = new Map<string, Slot>()
  readonly #c: NodeRotationConfig
  readonly #clock: Clock
  readonly #probe: (node: string) => Promise<boolean>
  #next = 0
  #closed = false

  constructor(nodes: readonly string[], config: NodeRotationConfig, clock: Clock, probe: (node: string) => Promise<boolean>) {
    this.#c = config
    this.#clock = clock
    this.#probe = probe
    this.#slots = nodes.map((node) => ({ node, failures: 0, ejected: false, ejections: 0, probeDelays: config.probes.attempts(), nextProbeAt: undefined, timer: undefined, probing: false, reinstatedAt: undefined, epoch: 0 }))
    for (const s of this.#slots) this.#byNode.set(s.node, s)
  }

  /** The node for the next attempt. */
  pick(): string {
    const slots = this.#slots
    const n = slots.length
    for (let i = 0; i < n; i++) {
      const s = slots[(this.#next + i) % n]
      if (!s.ejected) {
        this.#next = (this.#next + i + 1) % n
        return s.node
      }
    }
    // All ejected: plain round-robin over all of them.
    const s = slots[this.#next % n]
    this.#next = (this.#next + 1) % n
    return s.node
  }

  /** Adds a node (discovered from the topology); known ones are left as they are. */
  add(node: string): void {
    if (this.#byNode.has(node)) return
    const s: Slot = { node, failures: 0, ejected: false, ejections: 0, probeDelays: this.#c.probes.attempts(), nextProbeAt: undefined, timer: undefined, probing: false, reinstatedAt: undefined, epoch: 0 }
    this.#slots.push(s)
    this.#byNode.set(node, s)
  }

  /** Whether `node` is in this rotation (configured, or added from a topology and not removed since). */
  has(node: string): boolean {
    return this.#byNode.has(node)
  }

  /** Forgets a node (it left the topology): its probe stops. Unknown nodes are ignored. */
  remove(node: string): void {
    const s = this.#byNode.get(node)
    if (s === undefined) return
    if (s.timer !== undefined) this.#clock.clearTimeout(s.timer)
    s.timer = undefined
    // A probe in flight finds its slot no longer ejected and stops there (#probed).
    s.ejected = false
    this.#byNode.delete(node)
    const i = this.#slots.indexOf(s)
    this.#slots.splice(i, 1)
    if (this.#next > i) this.#next--
    if (this.#slots.length > 0) this.#next %= this.#slots.length
  }

  /** False while `node` is ejected (quarantined until a probe brings it back). Unknown nodes are in rotation. */
  inRotation(node: string): boolean {
    return this.#byNode.get(node)?.ejected !== true
  }

  success(node: string): void {
    const s = this.#byNode.get(node)
    if (s === undefined) return
    s.failures = 0
    if (s.ejected) this.#reinstate(s)
  }

  failure(node: string): void {
    const s = this.#byNode.get(node)
    if (s === undefined || this.#closed) return
    s.failures++
    if (!s.ejected && s.failures >= this.#c.ejectAfter) this.#eject(s)
  }

  /** A failure that ejects at once (counted as one failure); a node already ejected is left as it is. */
  quarantine(node: string): void {
    const s = this.#byNode.get(node)
    if (s === undefined || this.#closed) return
    s.failures++
    if (!s.ejected) this.#eject(s)
  }

  states(): NodeState[] {
    return this.#slots.map((s) => ({ node: s.node, inRotation: !s.ejected, consecutiveFailures: s.failures, ejections: s.ejections, nextProbeAt: s.ejected ? s.nextProbeAt : undefined }))
  }

  close(): void {
    this.#closed = true
    for (const s of this.#slots) {
      if (s.timer !== undefined) this.#clock.clearTimeout(s.timer)
      s.timer = undefined
    }
  }

  #eject(s: Slot): void {
    s.ejected = true
    s.ejections++
    s.epoch++
    if (s.reinstatedAt === undefined || this.#clock.now() - s.reinstatedAt >= this.#c.probes.max) s.probeDelays.reset()
    this.#schedule(s)
  }

  #reinstate(s: Slot): void {
    s.ejected = false
    s.reinstatedAt = this.#clock.now()
    s.failures = 0
    s.nextProbeAt = undefined
    if (s.timer !== undefined) this.#clock.clearTimeout(s.timer)
    s.timer = undefined
  }

  #schedule(s: Slot): void {
    if (this.#closed) return
    if (s.timer !== undefined) this.#clock.clearTimeout(s.timer)
    const delay = s.probeDelays.next()
    s.nextProbeAt = this.#clock.now() + delay
    s.timer = this.#clock.setTimeout(() => this.#runProbe(s), delay, { unref: true })
  }

  #runProbe(s: Slot): void {
    s.timer = undefined
    if (this.#closed || !s.ejected) return
    // A probe of an earlier ejection still in flight: its answer will be ignored, so wait on.
    if (s.probing) return this.#schedule(s)
    s.probing = true
    const epoch = s.epoch
    // The probe callback never rejects by contract; a rejection counts as a failed probe.
    this.#probe(s.node).then(
      (ok) => this.#probed(s, ok, epoch),
      () => this.#probed(s, false, epoch),
    )
  }

  /** A probe's answer; one started before the node's latest ejection says nothing about it now. */
  #probed(s: Slot, ok: boolean, epoch: number): void {
    s.probing = false
    if (this.#closed || !s.ejected || epoch !== s.epoch) return
    if (ok) {
      this.#reinstate(s)
      return
    }
    this.#schedule(s)
  }
}
