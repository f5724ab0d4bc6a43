// Replication driven by the real Membership machine (SWIM + phi-accrual) instead of the
// test oracle: one composite kernel machine per node routes messages and timers to both,
// and replication reads `topologyFromView(membership.view())` — what the node will do once
// wired. The views lag (a crash is seen ~10 s later): writes sent meanwhile are lost or
// reported unreachable, and hints plus rejoin anti-entropy must still bring everything back.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { compareVersions } from '../../src/core/hlc.js'
import { SeededRandom } from '../../src/core/random.js'
import { type KernelAction, type KernelEvent, Membership, type MembershipMessage, type StateMachine } from '../../src/cluster/index.js'
import { MemoryReplicaStore, Replication, type ReplicationMessage, topologyFromView } from '../../src/cluster/replication/index.js'
import { runSeeds, SimNetwork } from '../../src/testing/index.js'
import { randomOp, SessionClient } from '../support/replication-sim.js'

type NodeMsg = { readonly m: MembershipMessage } | { readonly r: ReplicationMessage }

function wrap<M>(actions: readonly KernelAction<M>[], tag: 'm' | 'r'): KernelAction<NodeMsg>[] {
  return actions.map((a) => {
    if (a.type === 'send') return { type: 'send', to: a.to, message: (tag === 'm' ? { m: a.message } : { r: a.message }) as NodeMsg }
    if (a.type === 'timer' || a.type === 'cancel') return { ...a, name: `${tag}:${a.name}` }
    return a
  })
}

/** A node: membership and replication side by side on one kernel runner. */
class ClusterNode implements StateMachine<NodeMsg> {
  readonly membership: Membership
  readonly replication: Replication
  constructor(membership: Membership, make: (m: Membership) => Replication) {
    this.membership = membership
    this.replication = make(membership)
  }
  step(event: KernelEvent<NodeMsg>, now: number): KernelAction<NodeMsg>[] {
    switch (event.type) {
      case 'start':
      case 'unreachable':
        return [...wrap(this.membership.step(event, now), 'm'), ...wrap(this.replication.step(event, now), 'r')]
      case 'timer': {
        const [tag, name] = [event.name.slice(0, 1), event.name.slice(2)]
        return tag === 'm' ? wrap(this.membership.step({ type: 'timer', name }, now), 'm') : wrap(this.replication.step({ type: 'timer', name }, now), 'r')
      }
      case 'message':
        return 'm' in event.message ? wrap(this.membership.step({ type: 'message', from: event.from, message: event.message.m }, now), 'm') : wrap(this.replication.step({ type: 'message', from: event.from, message: event.message.r }, now), 'r')
    }
  }
}

/** The session client, speaking through the composite wire. */
class WrappedClient implements StateMachine<NodeMsg> {
  constructor(readonly client: SessionClient) {}
  step(event: KernelEvent<NodeMsg>, now: number): KernelAction<NodeMsg>[] {
    const sends = (actions: KernelAction<ReplicationMessage>[]): KernelAction<NodeMsg>[] => actions.map((a) => (a.type === 'send' ? { type: 'send', to: a.to, message: { r: a.message } } : a))
    if (event.type === 'message') return 'r' in event.message ? sends(this.client.step({ type: 'message', from: event.from, message: event.message.r }, now)) : []
    return sends(this.client.step(event as KernelEvent<ReplicationMessage>, now))
  }
}

describe('Replication with real Membership', () => {
  test('a node crashes under write load and comes back (with and without its disk): views lag, hints and rejoin anti-entropy converge everything', async () => {
    await runSeeds(Number(process.env.REPLICATION_MEMBERSHIP_SEEDS ?? 6), (seed) => {
      const net = new SimNetwork<NodeMsg>({ seed, link: { latency: { min: 1, max: 20 }, loss: 0.05 } })
      const ids = ['n1', 'n2', 'n3', 'n4']
      const stores = new Map(ids.map((id) => [id, new MemoryReplicaStore()]))
      const region = (id: string): string => (id === 'n1' || id === 'n2' ? 'eu' : 'us')
      for (const id of ids) {
        net.addNode(id, (me) => {
          const membership = new Membership({ id: me, region: region(me), seeds: ['n1', 'n3'], random: new SeededRandom(Math.floor(net.random.next() * 2 ** 32)) })
          return new ClusterNode(membership, (m) => new Replication({ id: me, store: stores.get(me)!, topology: () => topologyFromView(m.view()), random: new SeededRandom(Math.floor(net.random.next() * 2 ** 32)), antiEntropyIntervalMs: 2_000 }))
        })
      }
      const node = (id: string): ClusterNode => net.machine(id) as ClusterNode
      assert.ok(net.runUntil(() => ids.every((a) => ids.every((b) => node(a).membership.status(b) === 'alive')), 10_000, 50), 'joined')
      const client = new SessionClient({ nodes: ['n1', 'n2', 'n3'], random: new SeededRandom(seed), ops: 200, intervalMs: 100, next: (r) => randomOp(r, 12, ['one']) })
      net.addNode('c1', () => new WrappedClient(client))
      net.run(3_000)
      const keepDisk = seed % 2 === 0
      net.crash('n4', { keepDisk })
      if (!keepDisk) stores.set('n4', new MemoryReplicaStore())
      assert.ok(net.runUntil(() => ['n1', 'n2', 'n3'].every((x) => node(x).membership.status('n4') === 'dead'), 15_000, 50), 'n4 dead in every view')
      net.run(2_000)
      net.restart('n4')
      net.runUntil(() => client.done, 30_000, 100)
      const same = (): boolean => {
        const dump = (id: string): string => JSON.stringify(stores.get(id)!.all().map((r) => [r.key, r.version.hlc, r.version.nodeId]).sort())
        return ids.every((id) => dump(id) === dump('n1'))
      }
      assert.ok(net.runUntil(same, 20_000, 100), 'replicas converged')
      assert.deepEqual(client.problems, [], 'session order')
      assert.ok(client.history.filter((h) => h.res?.ok === true).length > 150, 'the workload ran')
      // No acknowledged write is lost: each survives, or a newer version or clear replaced it.
      const s1 = stores.get('n1')!
      for (const h of client.history) {
        if (h.res?.ok !== true || h.res.version === undefined || !('key' in h.op) || h.op.op === 'get') continue
        const key = h.op.key
        const w = h.res.version
        const r = s1.get(key)
        const newer = r !== undefined && compareVersions(r.version, w) >= 0
        assert.ok(newer || s1.prefixTombstones(net.clock.now()).some((p) => key.startsWith(p.prefix) && compareVersions(p.version, w) >= 0), `acknowledged write of ${key} lost`)
      }
      const hints = ['n1', 'n2', 'n3'].reduce((n, id) => n + node(id).replication.stats.hints.queued, 0)
      assert.ok(hints > 0, 'writes during the outage were hinted for n4')
    })
  })

  test('a member killed for good: once membership prunes it, the hints held for it (and its owed round) are dropped, not kept forever', async () => {
    // Soak finding: hints were dropped only for members that left; a member killed -9 and
    // never restarted is pruned from the view (dead + pruneAfterMs) instead, and every write
    // made in between stayed queued for it (up to maxHints changes, values included) for the
    // rest of the process — one more such queue per member lost. If it ever comes back, the
    // rejoin owes it a full anti-entropy round anyway (#rejoined).
    await runSeeds(Number(process.env.REPLICATION_MEMBERSHIP_SEEDS ?? 2), (seed) => {
      const net = new SimNetwork<NodeMsg>({ seed, link: { latency: { min: 1, max: 5 } } })
      const ids = ['n1', 'n2', 'n3']
      const stores = new Map(ids.map((id) => [id, new MemoryReplicaStore()]))
      for (const id of ids) {
        net.addNode(id, (me) => {
          const membership = new Membership({ id: me, region: 'eu', seeds: ['n1'], pruneAfterMs: 20_000, random: new SeededRandom(Math.floor(net.random.next() * 2 ** 32)) })
          return new ClusterNode(membership, (m) => new Replication({ id: me, store: stores.get(me)!, topology: () => topologyFromView(m.view()), random: new SeededRandom(Math.floor(net.random.next() * 2 ** 32)) }))
        })
      }
      const node = (id: string): ClusterNode => net.machine(id) as ClusterNode
      assert.ok(net.runUntil(() => ids.every((a) => ids.every((b) => node(a).membership.status(b) === 'alive')), 10_000, 50), 'joined')
      const client = new SessionClient({ nodes: ['n1', 'n2'], random: new SeededRandom(seed), ops: 400, intervalMs: 50, next: (r) => randomOp(r, 12, ['one']) })
      net.addNode('c1', () => new WrappedClient(client))
      // A few writes through n3 too, done before its crash: the others observe their lag.
      const viaN3 = new SessionClient({ nodes: ['n3'], random: new SeededRandom(seed + 1), ops: 10, intervalMs: 50, next: (r) => randomOp(r, 12, ['one']) })
      net.addNode('c2', () => new WrappedClient(viaN3))
      net.run(1_000)
      net.crash('n3', { keepDisk: false })
      assert.ok(net.runUntil(() => ['n1', 'n2'].every((x) => node(x).membership.status('n3') === 'dead'), 15_000, 50), 'n3 dead in every view')
      net.run(2_000)
      const held = ['n1', 'n2'].reduce((n, id) => n + (node(id).replication.stats.hints.perPeer.n3 ?? 0), 0)
      assert.ok(held > 0, 'writes while n3 was dead were hinted for it')
      assert.ok(['n1', 'n2'].some((id) => node(id).replication.stats.lag.n3 !== undefined), "n3's writes before its crash were observed (a lag histogram for it)")
      assert.ok(net.runUntil(() => ['n1', 'n2'].every((x) => node(x).membership.status('n3') === undefined), 40_000, 50), 'n3 pruned from every view')
      net.run(1_000)
      for (const id of ['n1', 'n2']) {
        assert.equal(node(id).replication.stats.hints.perPeer.n3, undefined, `${id} still holds hints for the pruned n3`)
        assert.equal(node(id).replication.stats.hints.depth, 0, `${id}: hint depth`)
        assert.equal(node(id).replication.stats.lag.n3, undefined, `${id} still keeps a lag histogram (a /metrics series) for the pruned n3`)
      }
    })
  })

  test('a region cut off (connections refused) and healed: replication resumes as soon as membership sees the other side alive again, not downMs later', async () => {
    // The TCP transport reports a cut peer unreachable on every attempt (membership pings one
    // dead member each tick), so replication's down marks stay fresh through the cut. Found by
    // test/e2e/cluster-region-cut.test.ts: after healing, membership rejoined in ~0.6 s while
    // the replicas converged only ~5 s (downMs) later.
    const DOWN_MS = 8_000
    await runSeeds(Number(process.env.REPLICATION_MEMBERSHIP_SEEDS ?? 6), (seed) => {
      const net = new SimNetwork<NodeMsg>({ seed, link: { latency: { min: 1, max: 20 } } })
      const ids = ['n1', 'n2', 'n3', 'n4']
      const stores = new Map(ids.map((id) => [id, new MemoryReplicaStore()]))
      const region = (id: string): string => (id === 'n1' || id === 'n2' ? 'eu' : 'us')
      for (const id of ids) {
        net.addNode(id, (me) => {
          const membership = new Membership({ id: me, region: region(me), seeds: ['n1', 'n3'], random: new SeededRandom(Math.floor(net.random.next() * 2 ** 32)) })
          return new ClusterNode(membership, (m) => new Replication({ id: me, store: stores.get(me)!, topology: () => topologyFromView(m.view()), random: new SeededRandom(Math.floor(net.random.next() * 2 ** 32)), downMs: DOWN_MS }))
        })
      }
      const node = (id: string): ClusterNode => net.machine(id) as ClusterNode
      const allAlive = (): boolean => ids.every((a) => ids.every((b) => node(a).membership.status(b) === 'alive'))
      assert.ok(net.runUntil(allAlive, 10_000, 50), 'joined')
      const client = new SessionClient({ nodes: ['n1', 'n2', 'n3', 'n4'], random: new SeededRandom(seed), ops: 300, intervalMs: 50, next: (r) => randomOp(r, 12, ['one']) })
      net.addNode('c1', () => new WrappedClient(client))
      net.run(2_000)
      net.partition(['n1', 'n2', 'c1'], ['n3', 'n4'], { refuse: true })
      assert.ok(net.runUntil(() => node('n1').membership.status('n3') === 'dead' && node('n3').membership.status('n1') === 'dead', 30_000, 50), 'each side sees the other dead')
      net.run(5_000)
      net.heal()
      const healed = net.clock.now()
      assert.ok(net.runUntil(allAlive, 15_000, 50), 'alive again after healing')
      const rejoined = net.clock.now() - healed
      const dump = (id: string): string => JSON.stringify(stores.get(id)!.all().map((r) => [r.key, r.version.hlc, r.version.nodeId]).sort())
      const same = (): boolean => ids.every((id) => dump(id) === dump('n1'))
      assert.ok(net.runUntil(same, 30_000, 50), 'replicas converged')
      const converged = net.clock.now() - healed
      assert.ok(converged < rejoined + DOWN_MS / 2, `seed ${seed}: converged ${converged} ms after healing, membership rejoined after ${rejoined} ms (down marks held ${DOWN_MS} ms)`)
    })
  })
})
