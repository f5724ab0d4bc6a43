/**
 * The read ladder against real node processes on loopback: three lone nodes as `nodes`
 * (each is a one-node cluster whose /v1/cluster lists only itself, so `nodes` is the topology), kill -9 of one under read
 * load: no read fails, the node is quarantined, and from then on no request but the
 * background probes goes to it. A hung node (SIGSTOP) with the default `eject`: one read
 * pays the 0.5 s first try, the node is quarantined at once (decision 0314), and after
 * SIGCONT a probe brings it back.
 */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { createClient } from '../../src/client/index.js'
import { undiciTransport } from '../../src/client/undici-transport.js'
import type { HttpRequest, Transport } from '../../src/client/transport.js'
import { startChildNode, type ChildNode } from '../support/node-fixture.js'
import { stallMeter, type StallMeter } from '../support/stall-meter.js'

/** The built-in transport, recording the path of every request sent to `origin` into `paths`. */
function recordingTransport(origin: string, paths: string[]): Transport {
  const inner = undiciTransport({ connections: 4, maxResponseBytes: 1 << 20, keepAliveMs: 4000 })
  return {
    request(to: string, req: HttpRequest) {
      if (to === origin) paths.push(req.path)
      return inner.request(to, req)
    },
    close: () => inner.close(),
  }
}

/**
 * One read, timed: its milliseconds, and those of them this process was stalled (a loaded
 * 2-core machine starves it now and then; test/support/stall-meter.ts). A bound that says
 * "no read waited" allows the stall; a read that waits on a timeout still takes its full
 * time whatever stalled during it.
 */
async function timedRead(meter: StallMeter, read: () => Promise<unknown>): Promise<{ ms: number; stalled: number }> {
  const s0 = meter.stalledMs
  const t0 = performance.now()
  await read()
  return { ms: performance.now() - t0, stalled: meter.stalledMs - s0 }
}

const children: ChildNode[] = []
after(async () => {
  await Promise.all(children.map((c) => c.stop()))
})

test('kill -9 of a node under read load: zero failed reads, then no request waits on it', { timeout: 90_000 }, async () => {
  for (let i = 0; i < 3; i++) children.push(await startChildNode())
  const [a, b, c] = children as [ChildNode, ChildNode, ChildNode]
  const sent = new Map<string, number>()
  const inner = undiciTransport({ connections: 4, maxResponseBytes: 1 << 20, keepAliveMs: 4000 })
  const counting: Transport = {
    request(origin: string, req: HttpRequest) {
      if (req.path !== '/healthz') sent.set(origin, (sent.get(origin) ?? 0) + 1)
      return inner.request(origin, req)
    },
    close: () => inner.close(),
  }
  const client = createClient({ nodes: [a.url, b.url, c.url], region: 'here', transport: counting, eject: { after: 2, probeInterval: '1s' } })
  try {
    for (const n of children) {
      const one = createClient({ nodes: [n.url] })
      await one.set('k', n.url)
      await one.close()
    }
    assert.equal(client.topology().source, 'nodes')
    let failures = 0
    let reads = 0
    const slowAfterQuarantine: number[] = []
    let quarantinedAt: number | undefined
    let sentToDeadAtQuarantine = 0
    const meter = stallMeter()
    const started = performance.now()
    // 4 s of reads, and at least 400 (a starved machine reads fewer per second; at most 20 s).
    while ((performance.now() - started < 4000 || reads <= 400) && performance.now() - started < 20_000) {
      if (quarantinedAt === undefined && reads === 200) b.child.kill('SIGKILL')
      const s0 = meter.stalledMs
      const t0 = performance.now()
      try {
        const e = await client.get('k')
        assert.ok(e !== undefined)
      } catch {
        failures++
      }
      reads++
      const ms = performance.now() - t0
      if (quarantinedAt !== undefined && ms - (meter.stalledMs - s0) > 250) slowAfterQuarantine.push(ms)
      if (quarantinedAt === undefined && client.nodes().some((s) => s.node === b.url && !s.inRotation)) {
        quarantinedAt = performance.now()
        sentToDeadAtQuarantine = sent.get(b.url) ?? 0
      }
    }
    meter.stop()
    assert.ok(reads > 400, `reads ran (${reads})`)
    assert.equal(failures, 0, 'no read failed')
    assert.ok(quarantinedAt !== undefined, 'the dead node was quarantined')
    assert.equal(sent.get(b.url) ?? 0, sentToDeadAtQuarantine, 'no request went to the quarantined node (probes aside)')
    assert.deepEqual(slowAfterQuarantine, [], 'no read waited after quarantine')
    assert.ok((sent.get(a.url) ?? 0) > 100 && (sent.get(c.url) ?? 0) > 100, `reads went round-robin over the live nodes: ${JSON.stringify([...sent])} of ${reads}`)
  } finally {
    await client.close()
  }
})

test('a hung node (SIGSTOP) costs the first timeout until quarantined, then nothing', { timeout: 90_000 }, async () => {
  const nodes: ChildNode[] = []
  for (let i = 0; i < 2; i++) nodes.push(await startChildNode())
  children.push(...nodes)
  const [a, b] = nodes as [ChildNode, ChildNode]
  const toA: string[] = []
  const counting = recordingTransport(a.url, toA)
  const client = createClient({ nodes: [a.url, b.url], region: 'here', transport: counting, eject: { after: 2, probeInterval: '5s' } })
  const meter = stallMeter()
  try {
    await client.get('warm')
    a.child.kill('SIGSTOP')
    const sentBefore = toA.filter((p) => p.startsWith('/v1/keys/')).length
    const reads: Array<{ ms: number; stalled: number }> = []
    for (let i = 0; i < 40; i++) reads.push(await timedRead(meter, () => client.get('k')))
    const shown = reads.map((r) => (r.stalled > 0 ? `${r.ms.toFixed(0)}(stalled ${r.stalled.toFixed(0)})` : r.ms.toFixed(0))).join(',')
    const tries = toA.filter((p) => p.startsWith('/v1/keys/')).length - sentBefore
    assert.ok(tries >= 1 && tries <= 2, `one or two reads tried the hung node before quarantine (${tries}): ${shown}`)
    // A try on the hung node takes its 0.5 s timeout in full; a read slowed only by a stall of this process is not one.
    assert.ok(reads.some((r) => r.ms >= 450), `the hung node cost its 0.5 s timeout: ${shown}`)
    assert.ok(reads.filter((r) => r.ms - r.stalled >= 450).length <= 2, `at most twice before quarantine: ${shown}`)
    assert.ok(reads.slice(-30).every((r) => r.ms - r.stalled < 250), `no read waited after quarantine: ${shown}`)
  } finally {
    meter.stop()
    a.child.kill('SIGCONT')
    await client.close()
  }
})

test('default eject: a hung node (SIGSTOP) costs one 0.5 s try, once; after SIGCONT a probe brings it back', { timeout: 90_000 }, async () => {
  const nodes: ChildNode[] = []
  for (let i = 0; i < 2; i++) nodes.push(await startChildNode())
  children.push(...nodes)
  const [a, b] = nodes as [ChildNode, ChildNode]
  const toA: string[] = []
  const counting = recordingTransport(a.url, toA)
  const client = createClient({ nodes: [a.url, b.url], region: 'here', transport: counting })
  try {
    for (let i = 0; i < 4; i++) await client.get('warm')
    a.child.kill('SIGSTOP')
    const sentBefore = toA.filter((p) => p.startsWith('/v1/keys/')).length
    const meter = stallMeter()
    const reads: Array<{ ms: number; stalled: number }> = []
    for (let i = 0; i < 40; i++) reads.push(await timedRead(meter, () => client.get('k')))
    meter.stop()
    const shown = reads.map((r) => (r.stalled > 0 ? `${r.ms.toFixed(0)}(stalled ${r.stalled.toFixed(0)})` : r.ms.toFixed(0))).join(',')
    assert.equal(toA.filter((p) => p.startsWith('/v1/keys/')).length - sentBefore, 1, `one read tried the hung node: ${shown}`)
    // Its try takes the 0.5 s timeout in full; a read slowed only by a stall of this process is not one
    // (and the hung read itself may have stalled too: the count of tries above is the exact check).
    assert.ok(reads.some((r) => r.ms >= 450), `the hung node cost its 0.5 s timeout: ${shown}`)
    assert.ok(reads.filter((r) => r.ms - r.stalled >= 450).length <= 1, `the hung node cost its 0.5 s timeout once: ${shown}`)
    assert.equal(client.nodes().find((s) => s.node === a.url)?.ejections, 1)
    a.child.kill('SIGCONT')
    const t = performance.now()
    while (client.nodes().find((s) => s.node === a.url)?.inRotation !== true && performance.now() - t < 20_000) await new Promise((r) => setTimeout(r, 50))
    assert.equal(client.nodes().find((s) => s.node === a.url)?.inRotation, true, 'probed back in after SIGCONT')
    const sentAfter = toA.filter((p) => p.startsWith('/v1/keys/')).length
    for (let i = 0; i < 4; i++) await client.get('k')
    assert.ok(toA.filter((p) => p.startsWith('/v1/keys/')).length > sentAfter, 'reads reach it again')
  } finally {
    a.child.kill('SIGCONT')
    await client.close()
  }
})
