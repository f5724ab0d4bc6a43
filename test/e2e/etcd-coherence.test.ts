/**
 * L1 coherence across real processes through etcd's watch stream (etcdBus on an etcdStore),
 * on a real 3-member cluster: each process has its own L1, L2 is etcd, and no process
 * publishes anything — the watch of the store's keys is the bus.
 *
 * - Three processes take turns writing a key while the others watch it; halfway through, the
 *   parent forces a compaction of etcd's history (etcd's `compact`, physical). Every reader
 *   serves the new value within the bound and never the old one after; the compaction costs
 *   no loss (a watch that keeps up is never cancelled by it).
 * - A process cut off from etcd (its connections dropped, new ones held) while the key
 *   changes and the history is compacted: it bypasses its L1 at once (never serves the old
 *   value it holds), and once back it flushes and serves the new value.
 */
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { after, before, describe, test } from 'node:test'
import { etcdStore } from '../../src/store/etcd-store.js'
import { ask, CoherenceWorkers, percentile, writeRounds, type CoherenceStats as Stats } from '../support/coherence.js'
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-server.js'
import { TcpProxy } from '../support/tcp-proxy.js'

/** Loose on purpose: the machine is shared; the measured figures are printed. */
const BOUND_MS = 2_000
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

let cluster: EtcdCluster
const workers = new CoherenceWorkers()
const proxies: TcpProxy[] = []

function spawnWorker(endpoints: readonly string[], namespace: string): Promise<ChildProcess> {
  return workers.spawn({ kind: 'etcd', endpoints, namespace }, 20_000)
}

/** Compacts etcd's whole history up to the current revision (physical: done when it returns). */
async function compactNow(): Promise<number> {
  const store = etcdStore({ endpoints: cluster.endpoints })
  try {
    const client = await store.etcdClient()
    const revision = (await client.kv.range({ key: Buffer.from('x') })).header.revision
    await client.kv.compact({ revision, physical: true })
    return Number(revision)
  } finally {
    await store.close()
  }
}

before(async () => {
  cluster = await startEtcdCluster()
})
after(async () => {
  await workers.close()
  for (const p of proxies) await p.close()
  await cluster?.stop()
})

describe('etcdBus: L1 coherence across processes through the watch stream', () => {
  test('3 processes, 30 writes, history compacted halfway: every other process serves the new value within the bound, never the old one after', async () => {
    const namespace = `coh-${process.pid}/`
    const three = [await spawnWorker(cluster.endpoints, namespace), await spawnWorker(cluster.endpoints, namespace), await spawnWorker(cluster.endpoints, namespace)]
    let compactedAt = 0
    const delays = await writeRounds(three, 30, async (round) => {
      if (round === 15) compactedAt = await compactNow()
    })
    console.log(`# etcd watch propagation (3 processes, 3 members, loopback, loaded machine): p50 ${percentile(delays, 50).toFixed(2)} ms, p99 ${percentile(delays, 99).toFixed(2)} ms, max ${(delays.at(-1) as number).toFixed(2)} ms over ${delays.length} reads; compacted at revision ${compactedAt}`)
    assert.ok(compactedAt > 0)
    assert.ok((delays.at(-1) as number) <= BOUND_MS, `max delay ${delays.at(-1)} ms within ${BOUND_MS} ms`)
    const stats = await Promise.all(three.map((w) => ask<Stats>(w, { op: 'stats' })))
    for (const s of stats) {
      assert.ok(s.healthy && s.bus.received >= 20, `every worker heard the writes through the watch (${s.bus.received})`)
      assert.equal(s.bus.gaps, 0, 'the compaction cancelled no watch: nothing was lost')
    }
  })

  test('a tag invalidated in one process hides the tagged entry another process holds in L1 (the tag version comes through the watch)', async () => {
    const namespace = `tags-${process.pid}/`
    const [a, b] = [await spawnWorker(cluster.endpoints, namespace), await spawnWorker(cluster.endpoints, namespace)]
    await ask(a, { op: 'set', key: 'tagged', value: 'v', tags: ['team:1'] })
    await ask(a, { op: 'set', key: 'other', value: 'w', tags: ['team:2'] })
    assert.notEqual((await ask<{ at: number }>(b, { op: 'watch', key: 'tagged', value: 'v', timeoutMs: 5_000 })).at, -1)
    assert.notEqual((await ask<{ at: number }>(b, { op: 'watch', key: 'other', value: 'w', timeoutMs: 5_000 })).at, -1)
    const before = await ask<Stats>(b, { op: 'stats' })
    await ask(a, { op: 'invalidate', tags: ['team:1'] })
    const deadline = Date.now() + BOUND_MS
    let got: { value?: string | null } = { value: 'v' }
    while (got.value === 'v' && Date.now() < deadline) got = await ask<{ value?: string | null }>(b, { op: 'get', key: 'tagged' })
    assert.equal(got.value, null, 'the invalidated entry is gone in the other process')
    assert.equal((await ask<{ value: string }>(b, { op: 'get', key: 'other' })).value, 'w', 'an entry of another tag stays')
    const stats = await ask<Stats>(b, { op: 'stats' })
    assert.ok((stats.bus.tagsObserved ?? 0) > (before.bus.tagsObserved ?? 0), 'it came as a tag version, not a flush')
    assert.equal(stats.bus.l1Flushes, before.bus.l1Flushes, 'no flush')
  })

  test('a process cut off from etcd while the key changes and history is compacted bypasses its L1 (never the old value), then flushes and serves the new one', async () => {
    const namespace = `cut-${process.pid}/`
    const writer = await spawnWorker(cluster.endpoints, namespace)
    const own = await Promise.all(cluster.members.map((m) => TcpProxy.start(m.clientPort)))
    proxies.push(...own)
    const cut = await spawnWorker(own.map((p) => `http://127.0.0.1:${p.port}`), namespace)
    await ask(writer, { op: 'set', key: 'k', value: 'old' })
    assert.notEqual((await ask<{ at: number }>(cut, { op: 'watch', key: 'k', value: 'old', timeoutMs: 5_000 })).at, -1)
    assert.equal((await ask<{ value: string }>(cut, { op: 'get', key: 'k' })).value, 'old', 'held in its L1')

    // Cut: every connection of that process dropped, new ones held.
    for (const p of own) p.pause()
    for (const p of own) p.dropConnections()
    const deadline = Date.now() + 10_000
    while ((await ask<Stats>(cut, { op: 'stats' })).healthy) {
      assert.ok(Date.now() < deadline, 'the lost watch is noticed')
      await sleep(20)
    }
    await ask(writer, { op: 'set', key: 'k', value: 'new' })
    const compactedAt = await compactNow()
    const during = await ask<{ value?: string | null; error?: string }>(cut, { op: 'get', key: 'k' })
    assert.notEqual(during.value, 'old', `cut off, it does not serve its L1 (got ${JSON.stringify(during)})`)

    for (const p of own) p.resume()
    const seen = await ask<{ at: number; stale: number }>(cut, { op: 'watch', key: 'k', value: 'new', timeoutMs: 15_000 })
    assert.notEqual(seen.at, -1, 'back, it serves the new value')
    // While the watch is away the process bypasses its L1 and reads etcd, so it can serve
    // the new value a moment before the fresh watch is in place: wait for that (bounded).
    const backBy = Date.now() + 10_000
    let stats = await ask<Stats>(cut, { op: 'stats' })
    while (!stats.healthy && Date.now() < backBy) {
      await sleep(20)
      stats = await ask<Stats>(cut, { op: 'stats' })
    }
    assert.ok(stats.healthy, 'the watch is back')
    assert.ok(stats.bus.gaps >= 1 && stats.bus.l1Flushes >= 1, `the loss was counted and L1 flushed (${JSON.stringify(stats.bus)})`)
    assert.equal((await ask<{ value: string }>(cut, { op: 'get', key: 'k' })).value, 'new')
    // And the watch works again: a later change reaches it.
    await ask(writer, { op: 'set', key: 'k', value: 'after' })
    assert.notEqual((await ask<{ at: number }>(cut, { op: 'watch', key: 'k', value: 'after', timeoutMs: 5_000 })).at, -1)
    console.log(`# cut-off process: compacted at revision ${compactedAt} while away; answer while cut: ${JSON.stringify(during)}`)
  })
})
