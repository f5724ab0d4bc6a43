// Real node processes (`npm start`'s entry) replicating on loopback: 4 nodes in 2 regions.
// A write on one node is readable on every node within READ_BOUND_MS; ack=all answers with
// all 4 replicas; kill -9 one node under write load, restart it: hints and anti-entropy make
// it converge, and no acknowledged write is lost (history check: for every acked write, every
// node holds that version of its key or a newer one — a GET naming it with
// x-stratacache-min-version does not answer 409).
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { send, tempDir } from '../support/node-fixtures.js'
import { freePort, waitUntil } from '../support/server-process.js'
import { ClusterProcess } from '../support/cluster-process.js'

const SECRET = 'e2e-cluster-secret-0123456789abcdef'
/** A write at ack=one is readable on every node within this (fan-out on loopback, 4 processes on a loaded 2-core machine). */
const READ_BOUND_MS = 2000
/** The restarted node converges within this: detection, rejoin, then anti-entropy rounds 200 ms apart (1,000 records each). */
const CONVERGE_BOUND_MS = 30_000

const dirs: Array<{ remove: () => void }> = []
const all: ClusterProcess[] = []
after(async () => {
  await Promise.all(all.map((n) => n.kill()))
  for (const d of dirs) d.remove()
})


const etag = (h: string | string[] | undefined): number => Number(String(h).replace(/"/g, ''))

describe('replication with real processes on loopback', () => {
  test('4 nodes in 2 regions: reads everywhere within the bound, ack=all, kill -9 under load and restart converges with no acked write lost', async () => {
    const layout: Array<[string, string]> = [['a1', 'london'], ['a2', 'london'], ['b1', 'paris'], ['b2', 'paris']]
    const ports = await Promise.all(layout.map(() => freePort()))
    const seeds = `127.0.0.1:${ports[0]},127.0.0.1:${ports[2]}`
    const nodes = layout.map(([id, region], i) => {
      const d = tempDir(`stratacache-rep-${id}-`)
      dirs.push(d)
      const n = new ClusterProcess(id, region, ports[i]!, d.path, seeds, SECRET)
    all.push(n)
    return n
    })
    await Promise.all(nodes.map((n) => n.start()))
    await waitUntil(async () => (await Promise.all(nodes.map((n) => n.aliveCount()))).every((c) => c === 4), 20_000, () => 'all 4 joined', 100)

    // Readable everywhere within the bound.
    const t0 = Date.now()
    assert.equal((await send(nodes[0]!.url, 'PUT', '/v1/keys/first', 'hello')).status, 200)
    await waitUntil(async () => (await Promise.all(nodes.map((n) => send(n.url, 'GET', '/v1/keys/first')))).every((r) => r.status === 200 && r.body.toString() === 'hello'), READ_BOUND_MS, () => `not readable everywhere within ${READ_BOUND_MS} ms`, 10)
    const spread = Date.now() - t0
    const full = await send(nodes[2]!.url, 'PUT', '/v1/keys/everywhere?ack=all', 'x')
    assert.equal(full.status, 200, full.body.toString())
    assert.equal(full.headers['x-stratacache-replicas'], '4')

    // Write load: 4 writers, unique keys and a few hot keys overwritten; the history keeps every acked version.
    const acked: Array<{ key: string; version: number }> = []
    let failed = 0
    let stop = false
    const victim = nodes[3]!
    let victimDown = false
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const targets = victimDown ? nodes.slice(0, 3) : nodes
        const target = targets[(w + i) % targets.length]!
        const key = i % 5 === 0 ? `hot${i % 3}` : `w${w}-${i}`
        try {
          const r = await send(target.url, 'PUT', `/v1/keys/${key}`, `v${w}-${i}`, {}, 3000)
          if (r.status === 200) acked.push({ key, version: etag(r.headers.etag) })
          else failed++
        } catch {
          failed++ // the victim's connections die with it: not acked, not in the history
        }
      }
    }
    const writers = [0, 1, 2, 3].map((w) => writer(w))
    await new Promise((r) => setTimeout(r, 1500))
    await victim.kill('SIGKILL')
    victimDown = true
    await new Promise((r) => setTimeout(r, 2500))
    await victim.start()
    victimDown = false
    await new Promise((r) => setTimeout(r, 1000))
    stop = true
    await Promise.all(writers)
    assert.ok(acked.length > 200, `acked ${acked.length} writes (${failed} failed)`)

    // History check: every node holds every acked version or a newer one, within the bound.
    const restartAt = Date.now()
    let missing: string[] = []
    await waitUntil(
      async () => {
        missing = []
        for (const n of nodes) {
          for (let i = 0; i < acked.length; i += 32) {
            const batch = acked.slice(i, i + 32)
            const replies = await Promise.all(batch.map((a) => send(n.url, 'GET', `/v1/keys/${a.key}`, undefined, { 'x-stratacache-min-version': String(a.version) }, 5000)))
            replies.forEach((r, j) => {
              if (r.status !== 200) missing.push(`${n.id}:${batch[j]!.key}@${batch[j]!.version} -> ${r.status}`)
            })
          }
          if (missing.length > 0) return false
        }
        return true
      },
      CONVERGE_BOUND_MS,
      () => `not converged within ${CONVERGE_BOUND_MS} ms: ${missing.length} missing, e.g. ${missing.slice(0, 5).join(', ')}`,
      500,
    )
    const converged = Date.now() - restartAt
    const metrics = (await send(victim.url, 'GET', '/metrics')).body.toString()
    const repaired = Number(/^stratacache_replication_records_repaired_total (\d+)/m.exec(metrics)?.[1] ?? 0)
    console.log(`# spread ${spread} ms; ${acked.length} acked writes (${failed} failed); converged ${converged} ms after the load; victim repaired ${repaired} records`)
  })
})
