/**
 * Replication on SimNetwork: a cluster of `Replication` machines over `MemoryReplicaStore`s
 * (the store is the node's "disk": kept or wiped on a crash), session clients that are
 * kernel machines too (so their requests and answers cross the same faulty links), a
 * topology oracle standing in for membership (a peer is alive to a viewer when it is up
 * and the viewer's link to it is not cut), and the checker of the guarantees
 * (docs/guide/replication.md) every scenario ends with.
 */
import assert from 'node:assert/strict'
import { compareVersions, msOfVersion, type Version } from '../../src/core/hlc.js'
import { SeededRandom } from '../../src/core/random.js'
import type { KernelAction, KernelEvent, StateMachine } from '../../src/cluster/index.js'
import {
  type AckLevel,
  type ClientOp,
  type ClientResponse,
  isDead,
  MemoryReplicaStore,
  type ReplicaRecord,
  type ReplicaTopology,
  Replication,
  type ReplicationMessage,
  type ReplicationOptions,
} from '../../src/cluster/replication/index.js'
import { type LinkOptions, SimNetwork } from '../../src/testing/index.js'

export type Msg = ReplicationMessage
const vkey = (v: Version): string => `${v.hlc}/${v.nodeId}`

/** What the whole run learned about each version the first time any store applied it (for the expiry check). */
export interface VersionFacts {
  readonly deleted: boolean
  readonly value?: string
  readonly expiresAt?: number
  readonly tags?: string
}

/** A MemoryReplicaStore that records every version it applies and checks that a version's fields never change in transit. */
export class CheckedStore extends MemoryReplicaStore {
  /** Every version this store (this disk) ever applied, per key. */
  readonly history = new Map<string, Version[]>()
  readonly #facts: Map<string, VersionFacts>
  readonly #problems: string[]

  constructor(facts: Map<string, VersionFacts>, problems: string[], tombstoneTtlMs?: number) {
    super({ tombstoneTtlMs })
    this.#facts = facts
    this.#problems = problems
  }

  override apply(record: ReplicaRecord, now: number): boolean {
    const changed = super.apply(record, now)
    if (!changed) return false
    const list = this.history.get(record.key) ?? []
    list.push(record.version)
    this.history.set(record.key, list)
    const id = `${record.key}@${vkey(record.version)}`
    const known = this.#facts.get(id)
    const mine: VersionFacts = record.deleted === true ? { deleted: true } : { deleted: false, value: record.value, expiresAt: record.expiresAt, tags: record.tags.join(',') }
    if (known === undefined) this.#facts.set(id, mine)
    else if (!known.deleted) {
      if (mine.deleted) {
        // Only an expired record may travel as a tombstone of its version: expired by the
        // sender's clock, which may run up to 2 x 5 s ahead of this one.
        if (!(known.expiresAt! !== 0 && known.expiresAt! <= now + 10_000 + 1)) this.#problems.push(`${id} arrived as a tombstone before its expiry ${known.expiresAt} (now ${now})`)
      } else if (mine.value !== known.value || mine.expiresAt !== known.expiresAt || mine.tags !== known.tags) {
        this.#problems.push(`${id} changed in transit: ${JSON.stringify(known)} -> ${JSON.stringify(mine)}`)
      }
    }
    return true
  }
}

export interface OpRecord {
  readonly rid: number
  readonly node: string
  readonly op: ClientOp
  readonly ack: AckLevel
  readonly token: number
  readonly atLeast: number
  readonly invokedAt: number
  res?: ClientResponse
}

export interface ClientOptions {
  readonly nodes: readonly string[]
  readonly random: SeededRandom
  readonly ops: number
  readonly intervalMs: number
  /** Next operation (the client fills in session fields). */
  readonly next: (random: SeededRandom, i: number) => { op: ClientOp; ack: AckLevel }
  /** Which node to use for op i. @default a random one (the session switches nodes) */
  readonly pick?: (random: SeededRandom, i: number) => string
  readonly deadlineMs?: number
}

/** A session client as a kernel machine: one request every `intervalMs`, session token and per-key versions kept, session order checked on every answer. */
export class SessionClient implements StateMachine<Msg> {
  readonly history: OpRecord[] = []
  readonly problems: string[] = []
  token = 0
  readonly seen = new Map<string, number>()
  readonly #o: ClientOptions
  #i = 0

  constructor(options: ClientOptions) {
    this.#o = options
  }

  get done(): boolean {
    return this.#i >= this.#o.ops
  }

  step(event: KernelEvent<Msg>, now: number): KernelAction<Msg>[] {
    if (event.type === 'start') return [{ type: 'timer', name: 'op', afterMs: 1 + Math.floor(this.#o.random.next() * this.#o.intervalMs) }]
    if (event.type === 'timer' && event.name === 'op') {
      if (this.done) return []
      const i = this.#i++
      const { op, ack } = this.#o.next(this.#o.random, i)
      const node = this.#o.pick?.(this.#o.random, i) ?? this.#o.nodes[Math.floor(this.#o.random.next() * this.#o.nodes.length)]!
      const key = 'key' in op ? op.key : undefined
      const atLeast = op.op === 'get' && key !== undefined ? this.seen.get(key) ?? 0 : 0
      const full = op.op === 'get' && atLeast > 0 ? { ...op, atLeast } : op
      this.history.push({ rid: i, node, op: full, ack, token: this.token, atLeast, invokedAt: now })
      return [
        { type: 'send', to: node, message: { kind: 'req', rid: i, token: this.token, ack, deadlineMs: this.#o.deadlineMs ?? 1_000, ...full } as Msg },
        { type: 'timer', name: 'op', afterMs: this.#o.intervalMs },
      ]
    }
    if (event.type === 'message' && event.message.kind === 'res') {
      const res = event.message
      const rec = this.history[res.rid]
      if (rec === undefined || rec.res !== undefined || rec.node !== event.from) return []
      rec.res = res
      if (res.token > this.token) this.token = res.token
      const key = 'key' in rec.op ? rec.op.key : undefined
      if (res.version !== undefined && key !== undefined) {
        if (rec.op.op === 'get' && res.ok && res.version.hlc < rec.atLeast) this.problems.push(`rid ${rec.rid}: read ${key} at ${res.version.hlc} < session ${rec.atLeast}`)
        if (rec.op.op !== 'get' && res.version.hlc <= rec.token) this.problems.push(`rid ${rec.rid}: write ${key} versioned ${res.version.hlc} <= its token ${rec.token}`)
        if (res.version.hlc > (this.seen.get(key) ?? 0)) this.seen.set(key, res.version.hlc)
      }
      if (rec.op.op === 'get' && res.ok && res.version === undefined && rec.atLeast > 0) this.problems.push(`rid ${rec.rid}: read ${key} found nothing though the session saw ${rec.atLeast}`)
    }
    return []
  }
}

export interface ClusterOptions {
  readonly seed: number
  readonly nodes: number
  readonly regions: number
  readonly link?: LinkOptions
  readonly skewMs?: number
  readonly machine?: Partial<Omit<ReplicationOptions, 'id' | 'store' | 'topology' | 'random'>>
  readonly tombstoneTtlMs?: number
}

/** A simulated replicated cluster plus its oracle topology and checker. */
export class SimCluster {
  readonly net: SimNetwork<Msg>
  readonly ids: string[]
  readonly region = new Map<string, string>()
  readonly stores = new Map<string, CheckedStore>()
  readonly facts = new Map<string, VersionFacts>()
  readonly problems: string[] = []
  readonly clients: SessionClient[] = []
  readonly #cuts = new Set<string>()
  /** Nodes added so far (a node that is not there yet is dead to the others). */
  readonly #added = new Set<string>()
  readonly #o: ClusterOptions
  clusterState: ReplicaTopology['clusterState'] = 'ACTIVE'
  /** Versions every ack:'all' success promised (checked at the end). */

  constructor(o: ClusterOptions) {
    this.#o = o
    this.net = new SimNetwork<Msg>({ seed: o.seed, link: o.link ?? { latency: { min: 1, max: 15 } } })
    const r = this.net.random
    this.ids = Array.from({ length: o.nodes }, (_, i) => `n${i + 1}`)
    this.ids.forEach((id, i) => this.region.set(id, `r${(i % o.regions) + 1}`))
    for (const id of this.ids) {
      this.stores.set(id, new CheckedStore(this.facts, this.problems, o.tombstoneTtlMs))
      const skew = o.skewMs === undefined ? 0 : Math.round((r.next() * 2 - 1) * o.skewMs)
      this.#added.add(id)
      this.net.addNode(id, (me) => this.#machine(me), { skewMs: skew })
    }
  }

  #machine(id: string): Replication {
    return new Replication({
      id,
      store: this.stores.get(id)!,
      topology: () => this.topology(id),
      random: new SeededRandom(Math.floor(this.net.random.next() * 2 ** 32)),
      tickMs: 50,
      antiEntropyIntervalMs: 500,
      antiEntropyFollowUpMs: 50,
      ...this.#o.machine,
    })
  }

  /** The oracle: `viewer` sees a peer alive when it is up and the link viewer -> peer is not cut. */
  topology(viewer: string): ReplicaTopology {
    return {
      clusterState: this.clusterState,
      members: this.ids.map((id) => ({ id, region: this.region.get(id)!, status: id === viewer || (this.#added.has(id) && this.net.status(id) !== 'crashed' && !this.#cuts.has(`${viewer}>${id}`)) ? 'alive' : 'dead' })),
    }
  }

  addClient(id: string, options: Omit<ClientOptions, 'nodes' | 'random'> & { nodes?: readonly string[] }): SessionClient {
    const client = new SessionClient({ nodes: this.ids, random: new SeededRandom(Math.floor(this.net.random.next() * 2 ** 32)), ...options })
    this.clients.push(client)
    this.net.addNode(id, () => client)
    return client
  }

  machine(id: string): Replication {
    return this.net.machine(id) as Replication
  }

  partition(a: string[], b: string[], oneWay = false): void {
    this.net.partition(a, b, { oneWay })
    for (const x of a) for (const y of b) {
      this.#cuts.add(`${x}>${y}`)
      if (!oneWay) this.#cuts.add(`${y}>${x}`)
    }
  }

  heal(): void {
    this.net.heal()
    this.#cuts.clear()
  }

  /** Disks wiped so far. */
  wipes = 0

  crash(id: string, keepDisk: boolean): void {
    if (!keepDisk && this.net.status(id) !== 'crashed') this.wipes++
    this.net.crash(id, { keepDisk })
    if (!keepDisk) this.stores.set(id, new CheckedStore(this.facts, this.problems, this.#o.tombstoneTtlMs))
  }

  get up(): string[] {
    return this.ids.filter((id) => this.net.status(id) !== 'crashed')
  }

  /** Every replica's state, keyed, as comparable strings (at `at`, dead records by version only). */
  snapshot(id: string, at: number): Map<string, string> {
    const out = new Map<string, string>()
    for (const r of this.stores.get(id)!.all()) {
      const dead = isDead(r, at)
      out.set(r.key, dead ? `${vkey(r.version)} dead` : `${vkey(r.version)} ${r.deleted === true ? '' : `${r.value} ${r.expiresAt} ${r.tags.join(',')}`}`)
    }
    const s = this.stores.get(id)!
    out.set('\u0000meta', JSON.stringify([s.prefixTombstones(at).map((p) => [p.prefix, vkey(p.version)]).sort(), s.tagInvalidations().map((t) => `${t.mode}:${t.tag}=${t.hlc}`).sort()]))
    return out
  }

  /** The first difference between live replicas, or undefined when they hold the same state. */
  divergence(): string | undefined {
    const up = this.up
    const at = this.net.clock.now() + 60_000
    const base = this.snapshot(up[0]!, at)
    for (const id of up.slice(1)) {
      const other = this.snapshot(id, at)
      for (const [k, v] of base) if (other.get(k) !== v) return `${up[0]} ${k}=${v} but ${id} ${k}=${other.get(k)}`
      for (const [k, v] of other) if (!base.has(k)) return `${id} has ${k}=${v}, ${up[0]} has nothing`
    }
    return undefined
  }

  /**
   * The guarantees, once replicas have converged: per key, the surviving state is the
   * highest version any surviving disk ever applied (none lost, none resurrected), unless a
   * prefix tombstone at least as new covers it; every ack:'all' success survives the same
   * way; no version's value, tags or expiry changed in transit; every session kept order.
   */
  checkGuarantees(): void {
    assert.deepEqual(this.problems, [], 'versions kept their fields across replication and repair')
    for (const c of this.clients) assert.deepEqual(c.problems, [], 'session order')
    const id = this.up[0]!
    const store = this.stores.get(id)!
    const now = this.net.clock.now()
    const ptombs = store.prefixTombstones(now)
    const covered = (key: string, v: Version): boolean => ptombs.some((p) => key.startsWith(p.prefix) && compareVersions(p.version, v) >= 0)
    const highest = new Map<string, Version>()
    for (const s of this.up.map((x) => this.stores.get(x)!)) {
      for (const [key, versions] of s.history) for (const v of versions) if (!highest.has(key) || compareVersions(v, highest.get(key)!) > 0) highest.set(key, v)
    }
    for (const [key, v] of highest) {
      const r = store.get(key)
      if (r !== undefined && compareVersions(r.version, v) >= 0) continue
      if (covered(key, v)) continue
      assert.fail(`${key}: the highest version applied on a surviving disk is ${vkey(v)}, the converged state ${r === undefined ? 'has nothing' : vkey(r.version)}`)
    }
    // Expiry travels: every put's answer says the absolute expiry written (0 for none, the
    // request's own `expiresAt`, or the node's time + `ttlMs`); every replica holding that
    // version alive holds exactly that expiry.
    for (const c of this.clients) {
      for (const h of c.history) {
        if (h.op.op !== 'put' || h.res?.version === undefined) continue
        const want = h.res.expiresAt
        assert.ok(want !== undefined, `put ${h.op.key} answered with its expiry`)
        if (h.op.expiresAt !== undefined) assert.equal(want, h.op.expiresAt)
        else if (h.op.ttlMs !== undefined) assert.ok(want > msOfVersion(h.res.version.hlc) + h.op.ttlMs - 10_001 && want <= msOfVersion(h.res.version.hlc) + h.op.ttlMs + 1, `put ${h.op.key} ttl ${h.op.ttlMs}: expiry ${want} vs version time ${msOfVersion(h.res.version.hlc)}`)
        else assert.equal(want, 0, `put ${h.op.key} without expiry`)
        for (const x of this.up) {
          const r = this.stores.get(x)!.get(h.op.key)
          if (r !== undefined && r.deleted !== true && compareVersions(r.version, h.res.version) === 0) assert.equal(r.expiresAt, want, `${x} holds ${h.op.key}@${vkey(r.version)} with the expiry written`)
        }
      }
    }
    for (const c of this.clients) {
      for (const h of c.history) {
        // ack:'all' counts the nodes live at the write: the promise is about those (a write
        // all of whose holders lost their disks is gone, legitimately).
        if (h.ack !== 'all' || h.op.op === 'get' || h.res?.ok !== true || h.res.version === undefined || !('key' in h.op) || h.res.required! <= this.wipes) continue
        const r = store.get(h.op.key)
        assert.ok((r !== undefined && compareVersions(r.version, h.res.version) >= 0) || covered(h.op.key, h.res.version), `ack:'all' write of ${h.op.key} at ${vkey(h.res.version)} lost: now ${r === undefined ? 'nothing' : vkey(r.version)}`)
      }
    }
  }

  /** Runs until replicas agree (checked every 100 ms); fails with the first difference after `maxMs`. */
  converge(maxMs = 30_000): number {
    const t0 = this.net.clock.now()
    const ok = this.net.runUntil(() => this.divergence() === undefined, maxMs, 100)
    assert.ok(ok, `converged within ${maxMs} ms: ${this.divergence()}`)
    return this.net.clock.now() - t0
  }
}

/** A random client operation over a small keyspace (prefixes a:, b:), `ack` level drawn too. */
export function randomOp(random: SeededRandom, keys = 8, levels: readonly AckLevel[] = ['one', 'one', 'region', 'all']): { op: ClientOp; ack: AckLevel } {
  const key = `${random.next() < 0.5 ? 'a' : 'b'}:${Math.floor(random.next() * keys)}`
  const ack = levels[Math.floor(random.next() * levels.length)]!
  const d = random.next()
  if (d < 0.45) {
    const ttl = random.next()
    const tags = random.next() < 0.2 ? ['org:1'] : []
    return { op: { op: 'put', key, value: `v${Math.floor(random.next() * 1e6)}`, ...(ttl < 0.25 ? { ttlMs: 100 + Math.floor(random.next() * 2_000) } : ttl < 0.4 ? { ttlMs: 60_000 } : {}), ...(tags.length > 0 ? { tags } : {}) }, ack }
  }
  if (d < 0.6) return { op: { op: 'del', key }, ack }
  if (d < 0.93) return { op: { op: 'get', key }, ack }
  if (d < 0.97) return { op: { op: 'clear', prefix: random.next() < 0.5 ? 'a:' : 'b:1' }, ack }
  return { op: { op: 'inv', tags: ['org:1'], mode: 'hard' }, ack }
}
