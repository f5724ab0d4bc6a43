// The cluster kernel on SimNetwork: a tiny gossip counter (a G-counter) as the example state
// machine, faults of every kind, seeded replay, and the runner's ordering and shielding.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isCacheError } from '../../src/core/errors.js'
import type { KernelAction, KernelEvent, StateMachine } from '../../src/cluster/index.js'
import { runSeeds, SeedFailure, SimNetwork } from '../../src/testing/index.js'

type Gossip = { readonly counts: Record<string, number> }

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * Each node bumps its own count every 100 ms until it reaches `target`, persists it, and
 * every tick sends its whole map to the next peer (round robin). Receivers merge by max.
 */
class GossipCounter implements StateMachine<Gossip> {
  readonly id: string
  readonly peers: string[]
  readonly target: number
  counts: Record<string, number> = {}
  ticks = 0
  unreachable: string[] = []
  #next = 0

  constructor(id: string, all: readonly string[], target = 5) {
    this.id = id
    this.peers = all.filter((p) => p !== id)
    this.target = target
  }

  get total(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0)
  }

  step(event: KernelEvent<Gossip>): KernelAction<Gossip>[] {
    switch (event.type) {
      case 'start': {
        const saved = event.persisted.get('count')
        this.counts[this.id] = saved === undefined ? 0 : Number(decoder.decode(saved))
        return [{ type: 'timer', name: 'tick', afterMs: 100 }]
      }
      case 'timer': {
        this.ticks++
        const actions: KernelAction<Gossip>[] = []
        if ((this.counts[this.id] ?? 0) < this.target) {
          this.counts[this.id] = (this.counts[this.id] ?? 0) + 1
          actions.push({ type: 'persist', key: 'count', value: encoder.encode(String(this.counts[this.id])) })
        }
        const to = this.peers[this.#next++ % this.peers.length]
        actions.push({ type: 'send', to, message: { counts: { ...this.counts } } }, { type: 'timer', name: 'tick', afterMs: 100 })
        return actions
      }
      case 'message': {
        for (const [k, v] of Object.entries(event.message.counts)) if (v > (this.counts[k] ?? 0)) this.counts[k] = v
        return []
      }
      case 'unreachable':
        this.unreachable.push(event.peer)
        return []
    }
  }
}

const IDS = ['n1', 'n2', 'n3', 'n4', 'n5']

function cluster(seed: number, ids = IDS): SimNetwork<Gossip> {
  const net = new SimNetwork<Gossip>({ seed, link: { latency: { min: 1, max: 30 }, loss: 0.2, duplicate: 0.1, reorder: 0.2 } })
  for (const id of ids) net.addNode(id, (me) => new GossipCounter(me, ids))
  return net
}

const counter = (net: SimNetwork<Gossip>, id: string): GossipCounter => net.machine(id) as GossipCounter
const converged = (net: SimNetwork<Gossip>, total: number): boolean => net.nodeIds.every((id) => net.status(id) !== 'up' || counter(net, id).total === total)

/** A chaotic run: partitions, pauses, crashes with and without disk; returns the trace hash. */
function chaos(seed: number): string {
  const net = cluster(seed)
  net.run(150)
  net.partition(['n1', 'n2'], ['n3', 'n4', 'n5'])
  net.pause('n4')
  net.run(300)
  net.crash('n5', { keepDisk: seed % 2 === 0 })
  net.resume('n4')
  net.partition(['n3'], ['n1'], { oneWay: true })
  net.run(300)
  net.restart('n5')
  net.heal()
  const ok = net.runUntil(() => converged(net, IDS.length * 5), 20_000)
  assert.ok(ok, `seed ${seed}: converged to ${IDS.length * 5}; totals ${IDS.map((id) => counter(net, id).total).join(',')}`)
  return net.traceHash()
}

describe('SimNetwork and the cluster kernel', () => {
  test('a gossip counter converges through loss, duplication, reordering, partitions, a pause and a crash', () => {
    const net = cluster(42)
    net.run(1_000)
    const stats = net.stats
    assert.ok(stats.lost > 0 && stats.duplicated > 0, `faults happened: ${JSON.stringify(stats)}`)
    assert.ok(converged(net, 25))
    chaos(42)
  })

  test('the same seed replays the same run exactly; another seed does not', () => {
    const a = chaos(7)
    const b = chaos(7)
    const c = chaos(8)
    assert.equal(a, b)
    assert.notEqual(a, c)
  })

  test('symmetric and one-way partitions', () => {
    const ids = ['a', 'b', 'c']
    const net = new SimNetwork<Gossip>({ seed: 3, link: { latency: 5 } })
    for (const id of ids) net.addNode(id, (me) => new GossipCounter(me, ids))
    net.partition(['a'], ['b', 'c'])
    net.run(1_000)
    assert.equal(counter(net, 'a').total, 5, 'a hears nobody')
    assert.equal(counter(net, 'b').total, 10, 'b and c hear each other only')
    assert.ok(net.stats.cut > 0)
    net.heal()
    net.partition(['c'], ['b'], { oneWay: true })
    net.run(1_000)
    assert.equal(counter(net, 'b').total, 15, 'b still learns c through a')
    assert.equal(counter(net, 'c').total, 15)
    net.partition(['a', 'c'], ['b'], { oneWay: true })
    const before = net.stats.delivered
    net.run(500)
    assert.ok(net.stats.delivered > before, 'b -> a and b -> c still deliver')
  })

  test('pause holds a node\'s timers and inbound messages until resume', () => {
    const net = cluster(5, ['a', 'b'])
    net.run(150)
    net.pause('b')
    const ticks = counter(net, 'b').ticks
    net.run(1_000)
    assert.equal(counter(net, 'b').ticks, ticks, 'no timer ran while paused')
    assert.equal(net.status('b'), 'paused')
    net.resume('b')
    assert.equal(counter(net, 'b').ticks, ticks + 1, 'the held timer ran once on resume (it re-arms itself)')
    assert.ok(counter(net, 'b').counts.a !== undefined && counter(net, 'b').counts.a > 1, 'held messages were delivered')
  })

  test('crash and restart with or without the disk; senders hear the peer is unreachable', () => {
    const ids = ['a', 'b']
    const net = new SimNetwork<Gossip>({ seed: 9, link: { latency: 2 } })
    for (const id of ids) net.addNode(id, (me) => new GossipCounter(me, ids, 100))
    net.run(350)
    assert.equal(Number(decoder.decode(net.disk('b').get('count'))), 3)
    net.crash('b')
    assert.equal(net.status('b'), 'crashed')
    assert.throws(() => net.machine('b'), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    net.run(300)
    assert.ok(counter(net, 'a').unreachable.includes('b'), 'a send to a crashed node is reported unreachable')
    net.restart('b')
    assert.equal(counter(net, 'b').counts.b, 3, 'restarted from its disk')
    net.crash('b', { keepDisk: false })
    assert.equal(net.disk('b').size, 0)
    net.restart('b')
    assert.equal(counter(net, 'b').counts.b, 0, 'a wiped disk starts from nothing')
    assert.throws(() => net.restart('b'), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
  })

  test('the runner persists before it sends, and survives a throwing machine, bad frames and refused sends', () => {
    const order: string[] = []
    const log: string[] = []
    class Probe implements StateMachine<unknown> {
      step(event: KernelEvent<unknown>): KernelAction<unknown>[] {
        if (event.type === 'start') return [{ type: 'timer', name: 't', afterMs: 10 }]
        if (event.type === 'timer') {
          return [
            { type: 'send', to: 'q', message: 'hello' },
            { type: 'send', to: 'bad id!', message: 'x' },
            { type: 'send', to: 'q', message: 'x'.repeat(2_000) },
            { type: 'persist', key: 'k', value: new Uint8Array([1]) },
          ]
        }
        if (event.type === 'message') {
          log.push(String(event.message))
          throw new Error('machine bug')
        }
        return []
      }
    }
    const net = new SimNetwork<unknown>({ seed: 1, link: { latency: 1 }, maxFrameBytes: 1_000, recordTrace: true })
    net.addNode('p', () => new Probe())
    net.addNode('q', () => new Probe())
    net.run(20)
    for (const line of net.trace) if (/ (persist|send) p/.test(line)) order.push(line.split(' ')[1])
    assert.deepEqual(order.slice(0, 2), ['persist', 'send'], 'the persist of a step lands before its sends')
    assert.ok(net.errors('p').some((e) => isCacheError(e, 'ERR_INVALID_OPTIONS')), 'malformed node id refused')
    assert.ok(net.errors('p').some((e) => isCacheError(e, 'ERR_VALUE_TOO_LARGE')), 'oversized frame refused')
    assert.deepEqual(log, ['hello', 'hello'], 'both nodes got p\'s and q\'s hello')
    assert.ok(net.errors('q').some((e) => e instanceof Error && e.message === 'machine bug'), 'a throwing machine is reported, not fatal')
    net.run(20)
    assert.equal(net.status('q'), 'up')
  })

  test('link options are validated', () => {
    const bad = (e: unknown): boolean => isCacheError(e, 'ERR_INVALID_OPTIONS')
    assert.throws(() => new SimNetwork({ link: { loss: 2 } }), bad)
    assert.throws(() => new SimNetwork({ link: { latency: { min: 5, max: 1 } } }), bad)
    const net = new SimNetwork({})
    assert.throws(() => net.setLink('a', 'b', { duplicate: -1 }), bad)
    assert.throws(() => net.addNode('', () => ({ step: () => [] })), bad)
  })

  test('runSeeds runs seeded scenarios and names the seed that fails, which replays it', async () => {
    assert.equal(await runSeeds(20, (seed) => void chaos(seed)), 20)
    const printed: string[] = []
    const flaky = (seed: number): void => {
      const net = cluster(seed)
      net.run(300)
      // A deliberately wrong invariant that holds only for some runs.
      assert.ok(net.stats.lost < 3, `lost ${net.stats.lost}`)
    }
    const failure = await runSeeds(50, flaky, { log: (line) => printed.push(line) }).then(
      () => undefined,
      (err: unknown) => err,
    )
    assert.ok(failure instanceof SeedFailure, 'some seed fails')
    assert.match(printed[0], new RegExp(`seed ${failure.seed}`))
    await assert.rejects(runSeeds([failure.seed], flaky, { log: () => undefined }), (e: unknown) => e instanceof SeedFailure && e.message === failure.message)
  })
})
