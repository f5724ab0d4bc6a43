// ReplicationService: the replication machine over two real keyspaces (memory stores),
// linked by an in-memory transport, on a ManualClock. A write answered at ack=all is in
// both keyspaces; deletes, clears and invalidations replicate; a level that cannot be met
// answers ERR_ACK_TIMEOUT with applied/required once its deadline passes, the write staying
// committed locally; a session token orders the next write after it.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ManualClock } from '../../src/core/manual-clock.js'
import { HybridLogicalClock } from '../../src/core/hlc.js'
import { isCacheError, type PeerUnreachableError } from '../../src/core/errors.js'
import { SeededRandom } from '../../src/core/random.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { Keyspace } from '../../src/server/keyspace.js'
import { MAX_BATCH_CHANGES, ReplicationService } from '../../src/server/replication-service.js'
import type { MessageTransport, NodeId } from '../../src/cluster/transport.js'
import { jsonCodec } from '../../src/cluster/kernel.js'
import type { ClientOp, ReplicationMessage } from '../../src/cluster/replication/messages.js'
import { slowSets } from '../support/gated-store.js'
import { Registry } from 'prom-client'
import { MemoryReplicaStore } from '../../src/cluster/replication/replica-store.js'

const NOW = 1_800_000_000_000
const b64 = (s: string): string => Buffer.from(s).toString('base64')
const text = (e: { value: Uint8Array } | undefined): string | undefined => (e === undefined ? undefined : Buffer.from(e.value).toString())
const turn = (): Promise<void> => new Promise((r) => setImmediate(r))
async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await turn()
}

/** In-memory links between nodes; `cut` holds node ids whose frames are dropped (both ways); `frames` logs every frame sent. */
function network(ids: NodeId[]): { transports: Map<NodeId, MessageTransport>; cut: Set<NodeId>; frames: Array<{ from: NodeId; to: NodeId; message: ReplicationMessage }> } {
  const cut = new Set<NodeId>()
  const frames: Array<{ from: NodeId; to: NodeId; message: ReplicationMessage }> = []
  const codec = jsonCodec<ReplicationMessage>()
  const handlers = new Map<NodeId, (from: NodeId, p: Uint8Array) => void>()
  const transports = new Map<NodeId, MessageTransport>()
  for (const self of ids) {
    transports.set(self, {
      self,
      maxFrameBytes: 4 << 20,
      send: (to, payload) => {
        frames.push({ from: self, to, message: codec.decode(payload) })
        if (cut.has(to) || cut.has(self)) return
        const copy = Uint8Array.from(payload)
        setImmediate(() => handlers.get(to)?.(self, copy))
      },
      onReceive: (h) => {
        handlers.set(self, h)
        return () => handlers.delete(self)
      },
      onUnreachable: (_h: (e: PeerUnreachableError) => void) => () => undefined,
      close: () => Promise.resolve(),
    })
  }
  return { transports, cut, frames }
}

async function cluster(ids: NodeId[], regionOf: (id: NodeId) => string = () => 'r1') {
  const clock = new ManualClock(NOW)
  const net = network(ids)
  const members = ids.map((id) => ({ id, region: regionOf(id), status: 'alive' as const }))
  const nodes = new Map<NodeId, { ks: Keyspace; svc: ReplicationService }>()
  for (const [i, id] of ids.entries()) {
    const ks = await Keyspace.open({ store: memoryStore({ clock }), clock, hlc: new HybridLogicalClock(clock), nodeId: id })
    const svc = await ReplicationService.start({ id, keyspace: ks, clock, transport: net.transports.get(id)!, topology: () => ({ clusterState: 'ACTIVE', members }), random: new SeededRandom(i + 1) })
    nodes.set(id, { ks, svc })
  }
  const close = async (): Promise<void> => {
    for (const n of nodes.values()) {
      await n.svc.close()
      await n.ks.close()
    }
  }
  return { clock, net, nodes, close }
}

describe('ReplicationService', () => {
  test("a metrics scrape reads the machine's figures once (they walk the store's records), and the next scrape reads them afresh", async () => {
    const c = await cluster(['a', 'b'])
    const counts = MemoryReplicaStore.prototype.counts
    let calls = 0
    MemoryReplicaStore.prototype.counts = function (this: MemoryReplicaStore, now: number) {
      calls++
      return counts.call(this, now)
    }
    try {
      const a = c.nodes.get('a')!
      const registry = new Registry()
      a.svc.registerMetrics(registry)
      const writes = async (): Promise<number> => Number(/^stratacache_replication_writes_total (\d+)$/m.exec(await registry.metrics())?.[1])
      assert.equal(await writes(), 0)
      assert.equal(calls, 1, 'one reading for the whole scrape')
      await a.svc.request({ op: 'put', key: 'k', value: b64('v') }, { ack: 'all' })
      assert.equal(await writes(), 1, 'the next scrape sees the write')
      assert.equal(calls, 2)
    } finally {
      MemoryReplicaStore.prototype.counts = counts
      await c.close()
    }
  })

  test('a put at ack=all answers with every replica and is in every keyspace; delete, clear and invalidate replicate', async () => {
    const c = await cluster(['a', 'b', 'c'])
    const a = c.nodes.get('a')!
    const res = await a.svc.request({ op: 'put', key: 'k', value: b64('v1'), tags: ['t'] }, { ack: 'all' })
    assert.equal(res.applied, 3)
    assert.equal(res.required, 3)
    for (const n of c.nodes.values()) assert.equal(text(await n.ks.get('k')), 'v1')
    const one = await a.svc.request({ op: 'put', key: 'p:1', value: b64('x') })
    assert.equal(one.applied, 1, 'ack=one answers after the local commit')
    await settle()
    for (const n of c.nodes.values()) assert.equal(text(await n.ks.get('p:1')), 'x')
    await c.nodes.get('b')!.svc.request({ op: 'clear', prefix: 'p:' }, { ack: 'all' })
    await c.nodes.get('c')!.svc.request({ op: 'inv', tags: ['t'] }, { ack: 'all' })
    for (const n of c.nodes.values()) {
      assert.equal(await n.ks.get('p:1'), undefined)
      assert.equal(await n.ks.get('k'), undefined, 'hidden by the replicated invalidation')
    }
    await a.svc.request({ op: 'put', key: 'd', value: b64('y') }, { ack: 'all' })
    await c.nodes.get('b')!.svc.request({ op: 'del', key: 'd' }, { ack: 'all' })
    for (const n of c.nodes.values()) assert.equal((await n.ks.getRecord('d'))?.deleted, true)
    await c.close()
  })

  test('ack=all with a replica cut off answers ERR_ACK_TIMEOUT (1 of 2) at the deadline; the write stays committed and reaches the replica after the heal', async () => {
    const c = await cluster(['a', 'b'])
    const a = c.nodes.get('a')!
    const b = c.nodes.get('b')!
    c.net.cut.add('b')
    const pending = a.svc.request({ op: 'put', key: 'k', value: b64('v') }, { ack: 'all', deadlineMs: 500 })
    let settled = false
    void pending.then(() => (settled = true), () => (settled = true))
    await settle()
    assert.equal(settled, false, 'waits for the ack until the deadline')
    for (let t = 0; t < 6; t++) {
      c.clock.advance(100)
      await settle()
    }
    await assert.rejects(pending, (e: unknown) => isCacheError(e, 'ERR_ACK_TIMEOUT') && (e as unknown as { applied: number }).applied === 1 && (e as unknown as { required: number }).required === 2)
    assert.equal(text(await a.ks.get('k')), 'v')
    assert.equal(await b.ks.get('k'), undefined)
    c.net.cut.delete('b')
    // The cut was silent (no unreachable report, b stayed "alive"): the fan-out and its retries
    // were lost, so the next anti-entropy round (every 10 s ± 10 %) repairs b.
    for (let t = 0; t < 80 && (await b.ks.get('k')) === undefined; t++) {
      c.clock.advance(200)
      await settle()
    }
    assert.equal(text(await b.ks.get('k')), 'v')
    assert.ok(a.svc.stats.antiEntropy.recordsShipped >= 1 || b.svc.stats.antiEntropy.recordsShipped >= 1)
    await c.close()
  })

  test('a session token orders the next write after it, on another node', async () => {
    const c = await cluster(['a', 'b'])
    const a = c.nodes.get('a')!
    const b = c.nodes.get('b')!
    c.net.cut.add('b')
    const first = await a.svc.request({ op: 'put', key: 'k', value: b64('first') })
    // b has not heard of it; the client carries a's token and writes on b.
    const second = await b.svc.request({ op: 'put', key: 'k', value: b64('second') }, { token: first.token })
    assert.ok(second.version!.hlc > first.version!.hlc, 'versioned after everything the session saw')
    c.net.cut.delete('b')
    await a.svc.request({ op: 'put', key: 'other', value: b64('z') }, { ack: 'all' })
    for (let t = 0; t < 30 && text(await a.ks.get('k')) !== 'second'; t++) {
      c.clock.advance(200)
      await settle()
    }
    assert.equal(text(await a.ks.get('k')), 'second')
    await c.close()
  })

  test('a session token past the drift limit is refused as ERR_BAD_REQUEST (the node answers 400 naming the header), not ERR_INTERNAL; nothing is written', async () => {
    const c = await cluster(['a'])
    const a = c.nodes.get('a')!
    const ahead = (NOW + 3_600_000) * 2048
    const ops: ClientOp[] = [{ op: 'put', key: 'k', value: b64('v') }, { op: 'del', key: 'k' }]
    for (const op of ops) {
      await assert.rejects(a.svc.request(op, { token: ahead }), (e: unknown) => isCacheError(e, 'ERR_BAD_REQUEST') && /x-stratacache-token/.test((e as Error).message) && /drift/.test((e as Error).message), op.op)
    }
    assert.equal(await a.ks.get('k'), undefined)
    await c.close()
  })

  test('fan-out batching: ack-less changes to one peer in one turn leave as one frame, in order; a frame asking for an ack is not merged and leaves after them', async () => {
    // a and b in r1, c and d in r2: a's fan-out goes to b (plain) and to one of c, d (relay).
    const c = await cluster(['a', 'b', 'c', 'd'], (id) => (id === 'a' || id === 'b' ? 'r1' : 'r2'))
    const a = c.nodes.get('a')!
    const writes = await Promise.all([1, 2, 3, 4, 5].map((i) => a.svc.request({ op: 'put', key: `k${i}`, value: b64(`v${i}`) })))
    assert.ok(writes.every((w) => w.applied === 1))
    const all = await a.svc.request({ op: 'put', key: 'last', value: b64('z') }, { ack: 'all' })
    assert.equal(all.applied, 4)
    await settle()
    const toB = c.net.frames.filter((f) => f.from === 'a' && f.to === 'b' && f.message.kind === 'rep')
    const keysOf = (m: ReplicationMessage): string[] => (m.kind === 'rep' ? m.changes.map((x) => (x.t === 'r' ? x.r[0] : '')) : [])
    assert.deepEqual(toB.map((f) => keysOf(f.message)), [['k1', 'k2', 'k3', 'k4', 'k5'], ['last']], 'the five ack=one writes in one frame, in write order; the ack=all one after, alone')
    assert.equal(toB[1]!.message.kind === 'rep' && toB[1]!.message.ack !== undefined, true)
    const relayed = c.net.frames.filter((f) => f.from === 'a' && (f.to === 'c' || f.to === 'd') && f.message.kind === 'rep' && f.message.relay === true)
    // The relay node is drawn per write (c or d): each gets its share in write order, all six in all.
    const order = ['k1', 'k2', 'k3', 'k4', 'k5', 'last']
    for (const peer of ['c', 'd']) {
      const got = relayed.filter((f) => f.to === peer).flatMap((f) => keysOf(f.message))
      assert.deepEqual(got, order.filter((k) => got.includes(k)), `the relays to ${peer} keep their flag and the write order`)
    }
    assert.deepEqual(relayed.flatMap((f) => keysOf(f.message)).sort(), [...order].sort())
    assert.ok(relayed.length <= 4, `batched relays too (${relayed.length} frames)`)
    assert.ok(a.svc.batching.frames >= 2 && a.svc.batching.changes >= 10)
    // Every replica holds every write.
    for (const n of c.nodes.values()) for (let i = 1; i <= 5; i++) assert.equal(text(await n.ks.get(`k${i}`)), `v${i}`)
    await c.close()
  })

  test('fan-out batching: a full batch (MAX_BATCH_CHANGES) leaves at once; the rest at the end of the turn', async () => {
    const c = await cluster(['a', 'b'])
    const a = c.nodes.get('a')!
    const n = MAX_BATCH_CHANGES + 3
    await Promise.all(Array.from({ length: n }, (_, i) => a.svc.request({ op: 'put', key: `k${i}`, value: b64('v') })))
    await settle()
    const sizes = c.net.frames.filter((f) => f.from === 'a' && f.message.kind === 'rep').map((f) => (f.message.kind === 'rep' ? f.message.changes.length : 0))
    assert.equal(sizes.reduce((x, y) => x + y, 0), n)
    assert.ok(sizes.every((x) => x <= MAX_BATCH_CHANGES))
    assert.ok(sizes.includes(MAX_BATCH_CHANGES), `one frame is full (${sizes.join(', ')})`)
    assert.equal(text(await c.nodes.get('b')!.ks.get(`k${n - 1}`)), 'v')
    await c.close()
  })

  test("a write's answer waits for its own keyspace write and earlier ones, not for a slower write of a later step", async () => {
    const clock = new ManualClock(NOW)
    let open!: () => void
    const gate = new Promise<void>((r) => (open = r))
    const inner = memoryStore({ clock })
    // Store writes of keys named "slow…" wait for the gate: a later write stuck on the disk.
    const store = slowSets(inner, gate)
    const ks = await Keyspace.open({ store, clock, hlc: new HybridLogicalClock(clock), nodeId: 'a' })
    const net = network(['a'])
    const svc = await ReplicationService.start({ id: 'a', keyspace: ks, clock, transport: net.transports.get('a')!, topology: () => ({ clusterState: 'ACTIVE', members: [{ id: 'a', region: 'r1', status: 'alive' }] }), random: new SeededRandom(1) })
    let fastDone = false
    let slowDone = false
    const fast = svc.request({ op: 'put', key: 'fast', value: b64('f') }).then((r) => ((fastDone = true), r))
    const slow = svc.request({ op: 'put', key: 'slow', value: b64('s') }).then((r) => ((slowDone = true), r))
    await settle()
    assert.equal(fastDone, true, 'the first write is answered while the second is still on its way to disk')
    assert.equal(slowDone, false, 'the second is not answered before its write is durable')
    open()
    assert.equal((await slow).ok, true)
    assert.equal((await fast).ok, true)
    assert.equal(text(await ks.get('slow')), 's')
    await svc.close()
    await ks.close()
  })
})
