// SWIM membership with phi-accrual detection on SimNetwork: every scenario runs for many
// seeds (runSeeds prints a failing seed; pass it alone to replay the run exactly).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isCacheError } from '../../src/core/errors.js'
import { SeededRandom } from '../../src/core/random.js'
import { detectionBoundMs, Membership, type MembershipMessage, type MembershipOptions, type MemberStatus } from '../../src/cluster/index.js'
import { type LinkOptions, runSeeds, SimNetwork } from '../../src/testing/index.js'

type Net = SimNetwork<MembershipMessage>
type Extra = Partial<Omit<MembershipOptions, 'id' | 'random'>>

const SEEDS = Number(process.env.MEMBERSHIP_SEEDS ?? 8)
const JITTER: LinkOptions = { latency: { min: 1, max: 30 } }

function build(seed: number, n: number, options: { link?: LinkOptions; extra?: Extra; seeds?: string[]; region?: (id: string) => string } = {}): Net {
  const net: Net = new SimNetwork<MembershipMessage>({ seed, link: options.link ?? JITTER })
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`)
  const seeds = options.seeds ?? ['n1', 'n2']
  for (const id of ids) {
    net.addNode(id, (me) => new Membership({ id: me, region: options.region?.(me) ?? 'r1', address: `${me}.test:7700`, seeds, random: new SeededRandom(Math.floor(net.random.next() * 2 ** 32)), ...options.extra }))
  }
  return net
}

const m = (net: Net, id: string): Membership => net.machine(id) as Membership
const live = (net: Net): string[] => net.nodeIds.filter((id) => net.status(id) === 'up')
/** Every live node sees `id` with status `status` (undefined: not in the view). */
const allSee = (net: Net, id: string, status: MemberStatus | undefined, among = live(net)): boolean => among.filter((x) => x !== id).every((x) => m(net, x).status(id) === status)
const converged = (net: Net, among = live(net)): boolean => among.every((x) => among.every((y) => m(net, x).status(y) === 'alive'))
const anyDead = (net: Net, among = live(net)): string | undefined => {
  for (const x of among) for (const y of among) if (m(net, x).status(y) === 'dead' || m(net, x).status(y) === undefined) return `${x} sees ${y} ${m(net, x).status(y)}`
  return undefined
}

const suspicious = (net: Net): string | undefined => {
  for (const x of live(net)) for (const y of live(net)) if (m(net, x).status(y) !== 'alive') return `${x} sees ${y} ${m(net, x).status(y)}`
  return undefined
}

/** Runs `ms` in 100 ms slices, failing at the first slice where `bad()` says something. */
function runChecking(net: Net, ms: number, bad: () => string | undefined): void {
  for (let t = 0; t < ms; t += 100) {
    net.run(100)
    const problem = bad()
    assert.equal(problem, undefined, `at ${net.clock.now()} ms: ${problem}`)
  }
}

function joined(net: Net, maxMs = 5_000): void {
  assert.ok(net.runUntil(() => converged(net), maxMs, 50), 'every node joined every view')
}

describe('Membership on SimNetwork', () => {
  test('nodes join through seeds; the view has members by region with status, phi, incarnation, RTT and region ranks', () => {
    const region = (id: string): string => (['n1', 'n2'].includes(id) ? 'london' : ['n3', 'n4'].includes(id) ? 'paris' : 'tokyo')
    const net = build(1, 6, { region })
    for (const a of net.nodeIds) {
      for (const b of net.nodeIds) {
        if (region(a) === region(b)) continue
        const far = region(a) === 'tokyo' || region(b) === 'tokyo'
        net.setLink(a, b, { latency: far ? { min: 90, max: 110 } : { min: 8, max: 12 } })
      }
    }
    joined(net)
    net.run(5_000)
    const view = m(net, 'n1').view()
    assert.equal(view.self, 'n1')
    assert.equal(view.state.state, 'ACTIVE')
    assert.deepEqual(view.regions.map((r) => [r.region, r.rank]), [['london', 0], ['paris', 1], ['tokyo', 2]])
    const paris = view.regions[1]
    assert.ok(paris.rttMs !== null && paris.rttMs > 10 && paris.rttMs < 30, `paris RTT ${paris.rttMs}`)
    assert.ok((view.regions[2].rttMs ?? 0) > 150, `tokyo RTT ${view.regions[2].rttMs}`)
    const n3 = paris.members.find((x) => x.id === 'n3')
    assert.ok(n3 !== undefined)
    assert.equal(n3.status, 'alive')
    assert.equal(n3.address, 'n3.test:7700')
    assert.equal(n3.incarnation, 0)
    assert.ok(n3.phi !== null && n3.phi < 1, `phi ${n3.phi}`)
    const self = view.regions[0].members.find((x) => x.self)
    assert.deepEqual(self, { id: 'n1', region: 'london', address: 'n1.test:7700', status: 'alive', incarnation: 0, phi: null, rttMs: null, self: true })
    assert.doesNotThrow(() => JSON.stringify(view))
  })

  test(`a silently killed node is dead in every live view within the bound (${Math.round(detectionBoundMs())} ms with the defaults)`, async () => {
    const bound = detectionBoundMs()
    assert.ok(bound > 9_000 && bound < 11_000, `bound ${bound}`)
    const times: number[] = []
    await runSeeds(SEEDS, (seed) => {
      const net = build(seed, 5)
      joined(net)
      net.run(3_000 + Math.floor(net.random.next() * 1_000))
      const victim = `n${1 + Math.floor(net.random.next() * 5)}`
      net.crash(victim)
      const start = net.clock.now()
      const others = live(net)
      assert.ok(net.runUntil(() => allSee(net, victim, 'dead', others), bound + 5_000, 50), `${victim} dead everywhere`)
      const took = net.clock.now() - start
      times.push(took)
      assert.ok(took <= bound, `${victim} dead everywhere after ${took} ms > bound ${bound}`)
      assert.ok(converged(net, others), 'no survivor was caught up in it')
    })
    times.sort((a, b) => a - b)
    process.stdout.write(`# detection ms over ${times.length} seeds: min ${times[0]}, median ${times[times.length >> 1]}, max ${times[times.length - 1]}\n`)
  })

  test('no live node is declared dead under 20 % loss with jittered latency, duplication and reordering', async () => {
    await runSeeds(SEEDS, (seed) => {
      const net = build(seed, 5, { link: { latency: { min: 1, max: 60 }, loss: 0.2, duplicate: 0.05, reorder: 0.1 } })
      joined(net, 15_000)
      runChecking(net, 60_000, () => anyDead(net))
    })
  })

  test('one cut link gets neither end even suspected: indirect probes go around it (without them it would)', async () => {
    await runSeeds(SEEDS, (seed) => {
      const net = build(seed, 5)
      joined(net)
      net.partition(['n1'], ['n2'])
      runChecking(net, 40_000, () => suspicious(net))
    })
    // Without helpers the same link makes n1 suspect n2 (which then refutes, over and over).
    const net = build(1, 5, { extra: { indirectProbes: 0 } })
    joined(net)
    net.partition(['n1'], ['n2'])
    assert.ok(net.runUntil(() => m(net, 'n1').status('n2') === 'suspect', 20_000), 'with k = 0 the bad link gets n2 suspected in n1\'s view')
  })

  test('a partition splits the views and heals back to one (before and after the dead are pruned)', async () => {
    await runSeeds(SEEDS, (seed) => {
      const prune = seed % 2 === 0
      const net = build(seed, 6, { seeds: ['n1', 'n4'], extra: prune ? { pruneAfterMs: 3_000 } : {} })
      joined(net)
      const a = ['n1', 'n2', 'n3']
      const b = ['n4', 'n5', 'n6']
      net.partition(a, b)
      const expect = prune ? undefined : 'dead'
      assert.ok(
        net.runUntil(() => a.every((x) => allSee(net, x, expect, b)) && b.every((x) => allSee(net, x, expect, a)), 25_000, 50),
        'each side sees the other dead' + (prune ? ' and pruned' : ''),
      )
      assert.ok(converged(net, a) && converged(net, b), 'each side is whole')
      net.heal()
      assert.ok(net.runUntil(() => converged(net), 20_000, 50), 'one view again')
      const incarnations = net.nodeIds.map((id) => m(net, id).incarnation)
      assert.ok(incarnations.every((i) => i >= 1), `everyone refuted its verdict: ${incarnations.join(',')}`)
    })
  })

  test('a paused node (stall shorter than the acceptable pause) is never even suspected', async () => {
    await runSeeds(SEEDS, (seed) => {
      const net = build(seed, 5)
      joined(net)
      runChecking(net, 3_000, () => suspicious(net))
      for (let i = 0; i < 4; i++) {
        net.pause('n3')
        net.run(2_500 + Math.floor(net.random.next() * 400))
        net.resume('n3')
        runChecking(net, 4_000 + Math.floor(net.random.next() * 1_000), () => suspicious(net))
      }
    })
  })

  test('a suspected node refutes with a higher incarnation and is never declared dead', async () => {
    await runSeeds(SEEDS, (seed) => {
      const net = build(seed, 5, { extra: { suspicionTimeoutMs: 6_000 } })
      joined(net)
      const others = ['n1', 'n2', 'n3', 'n4']
      net.partition(['n5'], others)
      assert.ok(net.runUntil(() => others.some((x) => m(net, x).status('n5') === 'suspect'), 10_000, 50), 'n5 suspected')
      net.heal()
      runChecking(net, 8_000, () => anyDead(net))
      assert.ok(converged(net))
      assert.ok(m(net, 'n5').incarnation >= 1, 'n5 bumped its incarnation')
      assert.ok(others.every((x) => m(net, x).view().regions[0].members.find((y) => y.id === 'n5')?.incarnation === m(net, 'n5').incarnation))
    })
  })

  test('a cluster-state change reaches every member, is persisted, and survives a restart; concurrent changes agree', async () => {
    await runSeeds(SEEDS, (seed) => {
      const net = build(seed, 5, { link: { latency: { min: 1, max: 30 }, loss: 0.1 } })
      joined(net, 10_000)
      m(net, 'n3').setClusterState('PASSIVE')
      assert.ok(net.runUntil(() => live(net).every((x) => m(net, x).clusterState.state === 'PASSIVE'), 5_000, 50), 'PASSIVE everywhere')
      assert.ok(live(net).every((x) => new TextDecoder().decode(net.disk(x).get('membership')).includes('PASSIVE')), 'persisted everywhere')
      net.crash('n2')
      net.restart('n2')
      assert.equal(m(net, 'n2').clusterState.state, 'PASSIVE', 'restored from disk')
      m(net, 'n1').setClusterState('NO_MIGRATION')
      m(net, 'n4').setClusterState('ACTIVE')
      const agreed = (): boolean => {
        const [first, ...rest] = live(net).map((x) => JSON.stringify(m(net, x).clusterState))
        return rest.every((r) => r === first) && (!first.includes('"version":2,') || first.includes('"origin":"n4"'))
      }
      assert.ok(net.runUntil(() => agreed() && m(net, 'n1').clusterState.version >= 2, 5_000, 50), 'one state everywhere; at version 2 the tie went to n4 (> n1)')
    })
  })

  test('runtime join: nodes started without seeds join through ids learned later; peers() carries every cluster address', async () => {
    await runSeeds(SEEDS, (seed) => {
      const net: Net = new SimNetwork<MembershipMessage>({ seed, link: { latency: { min: 1, max: 30 }, loss: 0.1 } })
      const ids = ['n1', 'n2', 'n3', 'n4', 'n5']
      for (const id of ids) net.addNode(id, (me) => new Membership({ id: me, address: `${me}.test:7700`, clusterAddress: `${me}.test:17700`, random: new SeededRandom(Math.floor(net.random.next() * 2 ** 32)) }))
      net.run(3_000)
      assert.ok(ids.every((x) => m(net, x).memberIds().length === 1), 'nobody knows anybody without seeds')
      // As the node does once discovery resolved an address to an id: n2..n5 learn n1, n5 also n4 (twice: a duplicate is harmless).
      for (const x of ['n2', 'n3', 'n4', 'n5']) m(net, x).join(['n1', x])
      m(net, 'n5').join(['n4', 'n1'])
      joined(net, 10_000)
      for (const x of ids) {
        const peers = m(net, x).peers()
        assert.deepEqual(peers.map((p) => p.id).sort(), ids.filter((y) => y !== x))
        for (const p of peers) assert.equal(p.clusterAddress, `${p.id}.test:17700`, `${x} knows where to dial ${p.id}`)
        const view = m(net, x).view()
        assert.ok(view.regions.every((r) => r.members.every((mv) => mv.address === `${mv.id}.test:7700` && mv.clusterAddress === `${mv.id}.test:17700`)))
      }
      assert.throws(() => m(net, 'n1').join(['bad id']), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    })
  })

  test('runtime join: an id joined at runtime is forgotten once it is pruned (or never seen) for pruneAfterMs; configured seeds stay; a later join adds it again', async () => {
    // Soak finding: a node's seeds all come from discovery (join); every id ever resolved
    // stayed a seed for the life of the process and was pinged while not alive — every tick
    // while the node was alone, every syncEveryTicks otherwise — one more per node replaced
    // with a fresh id (a wiped data dir, a new pod). Discovery joins a live candidate again.
    await runSeeds(SEEDS, (seed) => {
      const net: Net = new SimNetwork<MembershipMessage>({ seed, link: { latency: { min: 1, max: 30 } } })
      const ids = ['n1', 'n2', 'n3']
      for (const id of ids) net.addNode(id, (me) => new Membership({ id: me, seeds: me === 'n1' ? ['n9'] : [], pruneAfterMs: 3_000, random: new SeededRandom(Math.floor(net.random.next() * 2 ** 32)) }))
      net.run(500)
      m(net, 'n1').join(['n2', 'n3', 'ghost'])
      assert.ok(m(net, 'n1').isSeed('n2') && m(net, 'n1').isSeed('ghost'), 'a queued join counts as a seed')
      joined(net, 10_000)
      net.crash('n3')
      assert.ok(net.runUntil(() => m(net, 'n1').status('n3') === undefined, 30_000, 50), 'n3 pruned from n1\'s view')
      net.run(4_000)
      const n1 = m(net, 'n1')
      assert.equal(n1.isSeed('n3'), false, 'the pruned n3 is no seed any more')
      assert.equal(n1.isSeed('ghost'), false, 'a joined id never seen is forgotten after pruneAfterMs')
      assert.equal(n1.isSeed('n2'), true, 'a live joined member stays')
      assert.equal(n1.isSeed('n9'), true, 'a configured seed stays')
      // Nothing more is sent to the forgotten ids (n9, a configured seed, is still pinged).
      const sent = new Map<string, number>()
      const t0 = net.clock.now()
      const step = n1.step.bind(n1)
      n1.step = (event, now) => {
        const actions = step(event, now)
        for (const a of actions) if (a.type === 'send') sent.set(a.to, (sent.get(a.to) ?? 0) + 1)
        return actions
      }
      net.run(20_000)
      assert.ok(net.clock.now() - t0 >= 20_000)
      assert.equal(sent.get('n3') ?? 0, 0, 'no ping to the pruned n3')
      assert.equal(sent.get('ghost') ?? 0, 0, 'no ping to the forgotten ghost')
      assert.ok((sent.get('n9') ?? 0) > 0, 'the configured seed is still pinged')
      // Discovery finds n3 again: a join makes it a seed again and it rejoins.
      net.restart('n3')
      n1.join(['n3'])
      assert.equal(n1.isSeed('n3'), true)
      assert.ok(net.runUntil(() => n1.status('n3') === 'alive', 10_000, 50), 'n3 rejoined through the new join')
    })
  })

  test('graceful leave is `left` in every view at once, stays so, and is pruned later', async () => {
    await runSeeds(SEEDS, (seed) => {
      const net = build(seed, 5, { extra: { pruneAfterMs: 5_000 } })
      joined(net)
      m(net, 'n4').leave()
      // Applied at n4's next tick (<= 1 s), delivered within one latency.
      assert.ok(net.runUntil(() => allSee(net, 'n4', 'left'), 1_100, 10), 'left everywhere within a tick')
      assert.equal(m(net, 'n4').view().status, 'left')
      runChecking(net, 4_000, () => (allSee(net, 'n4', 'left') ? undefined : 'n4 not left everywhere'))
      assert.ok(net.runUntil(() => allSee(net, 'n4', undefined), 3_000, 50), 'pruned from every view')
      net.run(10_000)
      assert.ok(allSee(net, 'n4', undefined, ['n1', 'n2', 'n3', 'n5']), 'no stale gossip resurrects it')
    })
  })

  test('under 20 % loss a leave still reaches everyone quickly (a late ping is answered with the leave), never as dead', async () => {
    await runSeeds(SEEDS, (seed) => {
      const net = build(seed, 5, { link: { latency: { min: 1, max: 30 }, loss: 0.2 } })
      joined(net, 15_000)
      m(net, 'n4').leave()
      const others = ['n1', 'n2', 'n3', 'n5']
      const t0 = net.clock.now()
      for (;;) {
        net.run(50)
        assert.ok(others.every((x) => m(net, x).status('n4') !== 'dead'), 'never dead')
        if (allSee(net, 'n4', 'left', others)) break
        assert.ok(net.clock.now() - t0 < 4_000, `left everywhere within 4 s: ${others.map((x) => m(net, x).status('n4')).join(',')}`)
      }
    })
  })

  test('clock skew between nodes changes nothing, and a node\'s clock jumping 20 s ahead costs probes, not suspicions', async () => {
    await runSeeds(SEEDS, (seed) => {
      const net: Net = new SimNetwork<MembershipMessage>({ seed, link: JITTER })
      const ids = ['n1', 'n2', 'n3', 'n4']
      for (const [i, id] of ids.entries()) {
        net.addNode(id, (me) => new Membership({ id: me, seeds: ['n1'], random: new SeededRandom(Math.floor(net.random.next() * 2 ** 32)) }), { skewMs: (i - 1) * 3_600_000 + i * 777 })
      }
      joined(net)
      runChecking(net, 10_000, () => suspicious(net))
      net.skew('n2', 3_600_000 + 20_000)
      runChecking(net, 10_000, () => suspicious(net))
      net.crash('n3')
      assert.ok(net.runUntil(() => allSee(net, 'n3', 'dead'), detectionBoundMs(), 50))
    })
  })

  test('a restarted node rejoins with the same id and a higher incarnation, with or without its disk', async () => {
    await runSeeds(SEEDS, (seed) => {
      const net = build(seed, 5)
      joined(net)
      const keepDisk = seed % 2 === 0
      net.crash('n5', { keepDisk })
      assert.ok(net.runUntil(() => allSee(net, 'n5', 'dead'), detectionBoundMs() + 1_000, 50))
      net.restart('n5')
      if (keepDisk) assert.equal(m(net, 'n5').incarnation, 1, 'persisted incarnation + 1')
      assert.ok(net.runUntil(() => converged(net), 5_000, 50), 'n5 alive everywhere again')
      const inc = m(net, 'n5').incarnation
      assert.ok(inc >= 1, `incarnation ${inc}`)
      assert.ok(['n1', 'n2', 'n3', 'n4'].every((x) => m(net, x).view().regions[0].members.find((y) => y.id === 'n5')?.incarnation === inc))
    })
  })

  test('chaos: partitions, loss, pauses, crashes and restarts with and without disk; after healing, one true view', async () => {
    await runSeeds(SEEDS * 2, (seed) => {
      const net = build(seed, 6, { link: { latency: { min: 1, max: 40 }, loss: 0.05, duplicate: 0.05, reorder: 0.1 }, seeds: ['n1', 'n2', 'n3'], extra: { pruneAfterMs: 8_000 } })
      const r = net.random
      const pick = (): string => net.nodeIds[Math.floor(r.next() * net.nodeIds.length)]
      joined(net, 10_000)
      for (let i = 0; i < 12; i++) {
        const dice = r.next()
        const id = pick()
        if (dice < 0.2) net.partition([id, pick()], [pick(), pick()].filter((x) => x !== id))
        else if (dice < 0.3) net.heal()
        else if (dice < 0.45 && net.status(id) === 'up') net.crash(id, { keepDisk: r.next() < 0.5 })
        else if (dice < 0.65 && net.status(id) === 'crashed') net.restart(id)
        else if (dice < 0.75 && net.status(id) === 'up') {
          net.pause(id)
          net.run(Math.floor(r.next() * 2_000))
          net.resume(id)
        } else if (dice < 0.85 && net.status(id) === 'up') m(net, id).setClusterState((['ACTIVE', 'NO_MIGRATION', 'PASSIVE'] as const)[Math.floor(r.next() * 3)])
        net.run(Math.floor(r.next() * 4_000))
      }
      net.heal()
      const up = live(net)
      const down = net.nodeIds.filter((id) => net.status(id) === 'crashed')
      const settled = (): boolean =>
        converged(net, up) &&
        up.every((x) => down.every((d) => { const st = m(net, x).status(d); return st === 'dead' || st === undefined })) &&
        up.every((x) => JSON.stringify(m(net, x).clusterState) === JSON.stringify(m(net, up[0]).clusterState))
      assert.ok(net.runUntil(settled, 40_000, 100), `settled: up ${up.join(',')} down ${down.join(',')}; ` + up.map((x) => `${x}: ${net.nodeIds.map((y) => `${y}=${m(net, x).status(y)}`).join(' ')} ${JSON.stringify(m(net, x).clusterState)}`).join(' | '))
    })
  })

  test('the same seed replays the same run', () => {
    const run = (seed: number): string => {
      const net = build(seed, 4, { link: { latency: { min: 1, max: 30 }, loss: 0.1 } })
      net.run(5_000)
      net.crash('n2')
      net.run(12_000)
      return net.traceHash()
    }
    assert.equal(run(3), run(3))
    assert.notEqual(run(3), run(4))
  })

  test('forged, malformed and pre-start messages are ignored; options are validated', () => {
    const machine = new Membership({ id: 'a', random: new SeededRandom(1) })
    const from = { id: 'b', region: 'r', address: '', incarnation: 0, status: 'alive' as const }
    const cs = { state: 'ACTIVE' as const, version: 0, origin: 'b' }
    assert.deepEqual(machine.step({ type: 'message', from: 'b', message: { kind: 'ping', seq: 1, from, cs, gossip: [] } }, 0), [], 'before start')
    machine.step({ type: 'start', persisted: new Map() }, 0)
    assert.deepEqual(machine.step({ type: 'message', from: 'c', message: { kind: 'ping', seq: 1, from, cs, gossip: [] } }, 1), [], 'from is not the sender')
    const junk = { kind: 'ping', from, cs, gossip: [{ id: 'x', status: 'zombie' }] } as unknown as MembershipMessage
    assert.deepEqual(machine.step({ type: 'message', from: 'b', message: junk }, 2), [])
    assert.deepEqual(machine.memberIds(), ['a'])
    const ok = machine.step({ type: 'message', from: 'b', message: { kind: 'ping', seq: 1, from, cs: { state: 'PASSIVE', version: 3, origin: 'b' }, gossip: [] } }, 3)
    assert.ok(ok.some((x) => x.type === 'send' && x.to === 'b' && x.message.kind === 'ack' && x.message.seq === 1))
    assert.ok(ok.some((x) => x.type === 'persist'), 'the newer cluster state is persisted')
    assert.equal(machine.clusterState.state, 'PASSIVE')
    const tie = (origin: string, state: 'ACTIVE' | 'NO_MIGRATION'): void => void machine.step({ type: 'message', from: 'b', message: { kind: 'leave', from, cs: { state, version: 3, origin }, gossip: [] } }, 4)
    tie('a', 'ACTIVE')
    assert.equal(machine.clusterState.state, 'PASSIVE', 'equal version, lower origin: ignored')
    tie('c', 'NO_MIGRATION')
    assert.deepEqual(machine.clusterState, { state: 'NO_MIGRATION', version: 3, origin: 'c' }, 'equal version, higher origin: adopted')
    const bad = (e: unknown): boolean => isCacheError(e, 'ERR_INVALID_OPTIONS')
    const random = new SeededRandom(1)
    assert.throws(() => new Membership({ id: 'bad id', random }), bad)
    assert.throws(() => new Membership({ id: 'a', region: 'no spaces', random }), bad)
    assert.throws(() => new Membership({ id: 'a', seeds: ['ok', ''], random }), bad)
    assert.throws(() => new Membership({ id: 'a', heartbeatIntervalMs: 0, random }), bad)
    assert.throws(() => new Membership({ id: 'a', phi: { threshold: -1 }, random }), bad)
    assert.throws(() => machine.setClusterState('SLEEPY' as 'ACTIVE'), bad)
    machine.leave()
    const bye = machine.step({ type: 'timer', name: 'command' }, 5)
    assert.ok(bye.some((x) => x.type === 'send' && x.to === 'b' && x.message.kind === 'leave' && x.message.from.status === 'left'), 'a `command` timer applies the leave at once')
    const late = machine.step({ type: 'message', from: 'b', message: { kind: 'ping', seq: 9, from, cs, gossip: [] } }, 6)
    assert.deepEqual(late.map((x) => (x.type === 'send' ? x.message.kind : x.type)), ['leave'], 'a left node answers a late ping with its leave, nothing else')
  })
})
