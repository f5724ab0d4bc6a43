/**
 * The read ladder on a scripted transport and a ManualClock: the topology from
 * /v1/cluster (dead members skipped, regions by rank), per-try timeouts along the ladder
 * (the abandoned try aborted through its signal, which the hanging transport needs to settle), busy answers that do not use a rung, the 404 fallback.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ManualClock } from '../../src/core/manual-clock.js'
import { SeededRandom } from '../../src/core/random.js'
import { createClient } from '../../src/client/index.js'
import { parseClusterView } from '../../src/client/topology.js'
import { normalizeNode } from '../../src/client/client.js'
import { drive, tick } from '../support/drive.js'
import { NetworkFailure, respond, ScriptedTransport, wireError, type RecordedRequest } from '../support/scripted-transport.js'

const member = (region: string, port: number, status = 'alive'): Record<string, unknown> => ({ id: `n${port}`, region, address: `127.0.0.1:${port}`, status, phi: 0, rttMs: 1 })
const VIEW = {
  self: 'n1',
  region: 'london',
  regions: [
    { region: 'london', rank: 0, members: [member('london', 1), member('london', 2), member('london', 3, 'dead')] },
    { region: 'paris', rank: 1, members: [member('paris', 11)] },
    { region: 'tokyo', rank: 2, members: [member('tokyo', 21)] },
  ],
}
const url = (port: number): string => `http://127.0.0.1:${port}`

test('parseClusterView: own region, others by rank, dead members left out', () => {
  const t = parseClusterView(VIEW, 'london', (a) => normalizeNode(a))!
  assert.deepEqual(t.local, [url(1), url(2)])
  assert.deepEqual(t.remote, [[url(11)], [url(21)]])
  assert.equal(parseClusterView({ regions: 'x' }, 'london', (a) => a), undefined)
})

async function ladderClient(handler: (origin: string, req: RecordedRequest) => ReturnType<ScriptedTransport['handler']>) {
  const clock = new ManualClock()
  const transport = new ScriptedTransport(clock, (origin, req) => (req.path === '/v1/cluster' ? respond(200, VIEW) : handler(origin, req)))
  const client = createClient({ nodes: [url(1)], region: 'london', clock, transport })
  await tick()
  await tick()
  assert.equal(client.topology().source, 'cluster')
  return { clock, transport, client }
}

test('the ladder: local, next local, rank-1, rank-2, each with its timeout', async () => {
  const { clock, transport, client } = await ladderClient((origin) => (origin === url(21) ? respond(200, 'v', { etag: '"7"', 'x-ttl': '60' }) : 'hang'))
  const r = await drive(clock, client.get('k'), { step: 10 })
  assert.equal(r.ok, true, String(r.error))
  const tries = transport.requests.filter((q) => q.path === '/v1/keys/k')
  assert.deepEqual(tries.map((q) => q.origin), [url(1), url(2), url(11), url(21)])
  const t0 = tries[0]!.at
  assert.deepEqual(tries.map((q) => q.at - t0), [0, 500, 1000, 1750])
  await client.close()
})

test('a busy answer waits and repeats the rung without using it', async () => {
  let busy = 2
  const { clock, transport, client } = await ladderClient((origin) => {
    if (origin === url(1) && busy-- > 0) return wireError(503, 'ERR_BUSY', { 'retry-after': '0' })
    return respond(200, 'v', { etag: '"7"', 'x-ttl': '60' })
  })
  const r = await drive(clock, client.get('k'), { step: 5 })
  assert.equal(r.ok, true, String(r.error))
  const tries = transport.requests.filter((q) => q.path === '/v1/keys/k')
  assert.deepEqual(tries.map((q) => q.origin), [url(1), url(1), url(1)])
  await client.close()
})

test('a node without a cluster (404) makes `nodes` the topology', async () => {
  const clock = new ManualClock()
  const transport = new ScriptedTransport(clock, (_o, req) => (req.path === '/v1/cluster' ? wireError(404, 'ERR_NOT_FOUND') : respond(200, 'v', { etag: '"1"', 'x-ttl': '60' })))
  const client = createClient({ nodes: [url(1), url(2)], ladder: {}, clock, transport })
  await tick()
  assert.equal(client.topology().source, 'nodes')
  assert.deepEqual(client.topology().local, [url(1), url(2)])
  await drive(clock, client.get('a'))
  await drive(clock, client.get('b'))
  assert.deepEqual(transport.requests.filter((q) => q.path.startsWith('/v1/keys/')).map((q) => q.origin), [url(1), url(2)])
  await client.close()
})

// ── a try abandoned by its timeout (issue P10: a hung node costs its first timeout once) ──

const ok = (): ReturnType<typeof respond> => respond(200, 'v', { etag: '"7"', 'x-ttl': '60' })
const keyTries = (transport: ScriptedTransport) => transport.requests.filter((q) => q.path.startsWith('/v1/keys/'))
const stateOf = (client: ReturnType<typeof createClient>, node: string) => client.nodes().find((s) => s.node === node)!

test('a hung local node costs one first-try timeout, then nothing; the probe brings it back', async () => {
  let hung = true
  const { clock, transport, client } = await ladderClient((origin) => (origin === url(1) && hung ? 'hang' : ok()))
  const latencies: number[] = []
  for (let i = 0; i < 8; i++) {
    const t0 = clock.now()
    const r = await drive(clock, client.get('k'), { step: 10 })
    assert.equal(r.ok, true, String(r.error))
    latencies.push(r.at - t0)
  }
  assert.deepEqual(latencies.map((ms) => (ms >= 500 ? 'slow' : 'fast')), ['slow', 'fast', 'fast', 'fast', 'fast', 'fast', 'fast', 'fast'], `latencies ${latencies.join(',')}`)
  assert.equal(keyTries(transport).filter((q) => q.origin === url(1)).length, 1, 'one try went to the hung node')
  const s = stateOf(client, url(1))
  assert.equal(s.inRotation, false)
  assert.equal(s.ejections, 1)
  // It answers again: the probe (eject.probeInterval 1 s, jittered ±25 %) puts it back, and reads reach it.
  hung = false
  for (let i = 0; i < 130 && !stateOf(client, url(1)).inRotation; i++) {
    clock.advance(10)
    await tick()
  }
  assert.equal(stateOf(client, url(1)).inRotation, true, 'probed back in')
  const before = keyTries(transport).filter((q) => q.origin === url(1)).length
  for (let i = 0; i < 4; i++) assert.equal((await drive(clock, client.get('k'))).ok, true)
  assert.equal(keyTries(transport).filter((q) => q.origin === url(1)).length, before + 2, 'round-robin over both local nodes again')
  await client.close()
})

test('a pause shorter than the try timeout (a 300 ms GC) charges nothing: the node stays in rotation', async () => {
  const { clock, transport, client } = await ladderClient((origin) => (origin === url(1) ? new Promise((resolve) => clock.setTimeout(() => resolve(ok()), 300)) : ok()))
  for (let i = 0; i < 6; i++) assert.equal((await drive(clock, client.get('k'), { step: 10 })).ok, true)
  const s = stateOf(client, url(1))
  assert.equal(s.inRotation, true)
  assert.equal(s.consecutiveFailures, 0)
  assert.equal(s.ejections, 0)
  assert.equal(keyTries(transport).filter((q) => q.origin === url(1)).length, 3, 'every other read still starts at it')
  await client.close()
})

test('a try cut short by the ladder deadline is one failure, not a quarantine', async () => {
  const clock = new ManualClock()
  const transport = new ScriptedTransport(clock, (origin, req) => (req.path === '/v1/cluster' ? respond(200, VIEW) : 'hang'))
  const client = createClient({ nodes: [url(1)], region: 'london', ladder: { timeouts: [500, 500], deadline: 700 }, clock, transport })
  await tick()
  await tick()
  const r = await drive(clock, client.get('k'), { step: 10 })
  assert.equal(r.ok, false)
  const [first, second] = keyTries(transport)
  assert.equal(stateOf(client, first!.origin).inRotation, false, 'the full 500 ms try quarantined its node')
  const cut = stateOf(client, second!.origin)
  assert.equal(cut.inRotation, true, 'the 200 ms try left by the deadline did not')
  assert.equal(cut.consecutiveFailures, 1)
  await client.close()
})

test('eject.onTimeout false: a timed-out try is one of eject.after failures (3 timeouts before the quarantine)', async () => {
  const clock = new ManualClock()
  const transport = new ScriptedTransport(clock, (origin, req) => (req.path === '/v1/cluster' ? respond(200, VIEW) : origin === url(1) ? 'hang' : ok()))
  const client = createClient({ nodes: [url(1)], region: 'london', eject: { onTimeout: false }, clock, transport })
  await tick()
  await tick()
  let slow = 0
  for (let i = 0; i < 10; i++) {
    const t0 = clock.now()
    const r = await drive(clock, client.get('k'), { step: 10 })
    assert.equal(r.ok, true, String(r.error))
    if (r.at - t0 >= 500) slow++
  }
  assert.equal(slow, 3)
  assert.equal(stateOf(client, url(1)).inRotation, false)
  assert.throws(() => createClient({ nodes: [url(1)], eject: { onTimeout: 'yes' as unknown as boolean } }), /eject\.onTimeout/)
  await client.close()
})

test('a node that answers its probe but keeps timing out is held out longer each time (no flapping every probe interval)', async () => {
  const clock = new ManualClock()
  // /healthz answers at once; every key read hangs (a node whose event loop serves only cheap routes, or a pause that keeps recurring).
  const transport = new ScriptedTransport(clock, (origin, req) => (req.path === '/v1/cluster' ? respond(200, VIEW) : origin === url(1) && req.path !== '/healthz' ? 'hang' : respond(200, 'v', { etag: '"7"', 'x-ttl': '60' })))
  const client = createClient({ nodes: [url(1)], region: 'london', clock, transport, random: new SeededRandom(7) })
  await tick()
  await tick()
  const end = clock.now() + 20_000
  let slow = 0
  while (clock.now() < end) {
    const t0 = clock.now()
    const r = await drive(clock, client.get('k'), { step: 10 })
    assert.equal(r.ok, true, String(r.error))
    if (r.at - t0 >= 500) slow++
    clock.advance(50)
    await tick()
    await tick()
  }
  // Probe delays 1, 2, 4, 8 s (±25 %) while it keeps failing soon after each return: 5 slow reads in 20 s, not one per second.
  assert.ok(slow >= 4 && slow <= 6, `slow reads in 20 s: ${slow}`)
  assert.equal(stateOf(client, url(1)).ejections, slow)
  await client.close()
})

test('nodes served over https: the topology keeps the scheme of the node that answered (the view lists host:port only; were dialled as http://)', async () => {
  const clock = new ManualClock()
  const https = (port: number): string => `https://127.0.0.1:${port}`
  const transport = new ScriptedTransport(clock, (origin, req) => (req.path === '/v1/cluster' ? respond(200, VIEW) : origin.startsWith('https://') ? respond(200, 'v', { etag: '"7"', 'x-ttl': '60' }) : 'hang'))
  const client = createClient({ nodes: [https(1)], region: 'london', clock, transport })
  await tick()
  await tick()
  assert.equal(client.topology().source, 'cluster')
  assert.deepEqual(client.topology().local, [https(1), https(2)])
  assert.deepEqual(client.topology().remote, [[https(11)], [https(21)]])
  const r = await drive(clock, client.get('k'), { step: 10 })
  assert.equal(r.ok, true, String(r.error))
  assert.ok(transport.requests.every((q) => q.origin.startsWith('https://')), 'nothing dialled over plain http')
  await client.close()
})

test("a client of another region than the node it knows ranks the regions from its own region's view, at once", async () => {
  // Its nodes name a london node; the client is in paris. London's view ranks paris, then tokyo; paris's own view ranks tokyo, then london.
  const PARIS_VIEW = {
    self: 'n11',
    region: 'paris',
    regions: [
      { region: 'paris', rank: 0, members: [member('paris', 11)] },
      { region: 'tokyo', rank: 1, members: [member('tokyo', 21)] },
      { region: 'london', rank: 2, members: [member('london', 1), member('london', 2)] },
    ],
  }
  const clock = new ManualClock()
  const transport = new ScriptedTransport(clock, (origin, req) => (req.path === '/v1/cluster' ? respond(200, origin === url(11) ? PARIS_VIEW : VIEW) : 'hang'))
  const client = createClient({ nodes: [url(1)], region: 'paris', clock, transport })
  for (let i = 0; i < 6; i++) await tick()
  // Before: london's ranking (london nearest) until the next topologyRefresh, 5 s later.
  assert.deepEqual(client.topology(), { local: [url(11)], remote: [[url(21)], [url(1), url(2)]], source: 'cluster' })
  await client.close()
})

test('a per-call timeout is the timeout of each ladder try (it was ignored), and a bad one is ERR_INVALID_OPTIONS', async () => {
  const { clock, transport, client } = await ladderClient((origin) => (origin === url(2) ? ok() : 'hang'))
  const r = await drive(clock, client.get('k', { timeout: '100ms' }), { step: 5 })
  assert.equal(r.ok, true, String(r.error))
  const tries = keyTries(transport)
  assert.deepEqual(tries.map((q) => [q.origin, q.at - tries[0]!.at]), [[url(1), 0], [url(2), 100]])
  // A try shorter than its rung is not the hung-node signal: a failure, not a quarantine.
  assert.equal(stateOf(client, url(1)).inRotation, true)
  await assert.rejects(client.get('k', { timeout: 'soon' as never }), (e: unknown) => (e as { code?: string; option?: string }).code === 'ERR_INVALID_OPTIONS' && (e as { option?: string }).option === 'timeout')
  await assert.rejects(client.keys({ timeout: 0 }), (e: unknown) => (e as { code?: string; option?: string }).code === 'ERR_INVALID_OPTIONS' && (e as { option?: string }).option === 'timeout')
  await client.close()
})

test('a member gone from the topology (pruned: killed for good, or replaced under a new address) leaves the rotation: it is no longer probed', async () => {
  // Soak finding: every node a topology ever listed kept its rotation slot for the life of the
  // client; one that died ejected was probed (GET /healthz, every probe interval up to 30 s)
  // forever, a timer and a connection attempt each, one more per cluster node replaced.
  const clock = new ManualClock()
  let view: Record<string, unknown> = { self: 'n1', region: 'london', regions: [{ region: 'london', rank: 0, members: [member('london', 1), member('london', 2)] }] }
  const transport = new ScriptedTransport(clock, (origin, req) => {
    if (req.path === '/v1/cluster') return respond(200, view)
    if (origin === url(2)) return new NetworkFailure('ECONNREFUSED')
    return respond(200, 'v', { etag: '"7"', 'x-ttl': '60' })
  })
  const client = createClient({ nodes: [url(1)], region: 'london', clock, transport, eject: { after: 1 } })
  await tick()
  await tick()
  assert.deepEqual(client.topology().local, [url(1), url(2)])
  for (let i = 0; i < 4; i++) assert.equal((await drive(clock, client.get(`k${i}`), { step: 10 })).ok, true)
  assert.equal(client.nodes().find((n) => n.node === url(2))?.inRotation, false, 'n2 ejected')
  // n2 is pruned from the cluster; a replacement n4 joins.
  view = { self: 'n1', region: 'london', regions: [{ region: 'london', rank: 0, members: [member('london', 1), member('london', 4)] }] }
  await drive(clock, new Promise((resolve) => setTimeout(resolve, 0)).then(async () => {
    for (let t = 0; t < 6_000; t += 100) {
      clock.advance(100)
      await tick()
    }
  }), { step: 10 })
  assert.deepEqual(client.topology().local, [url(1), url(4)])
  assert.deepEqual(client.nodes().map((n) => n.node).sort(), [url(1), url(4)], 'the rotation holds the configured node and the current members')
  const before = transport.to(url(2)).length
  for (let t = 0; t < 300_000; t += 1_000) {
    clock.advance(1_000)
    await tick()
  }
  assert.equal(transport.to(url(2)).length - before, 0, 'no probe of the pruned n2 in 5 minutes')
  // The configured node stays whatever the topology says.
  view = { self: 'n4', region: 'london', regions: [{ region: 'london', rank: 0, members: [member('london', 4)] }] }
  for (let t = 0; t < 6_000; t += 100) {
    clock.advance(100)
    await tick()
  }
  assert.ok(client.nodes().some((n) => n.node === url(1)), 'a configured node is never dropped')
  await client.close()
})
