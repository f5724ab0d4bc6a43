// KeyspaceReplicaStore (decision 0215) against a real Keyspace, on the memory store and on
// LMDB: an applied change is in the keyspace after flush; the index's Merkle digests equal
// the keyspace's, bucket by bucket, and again after a restart; the runner sends nothing of a
// step before its keyspace writes are durable (and nothing at all when they fail);
// anti-entropy records get their values from the keyspace.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { ManualClock } from '../../src/core/manual-clock.js'
import { HybridLogicalClock, type Version, versionFromMs } from '../../src/core/hlc.js'
import { SeededRandom } from '../../src/core/random.js'
import type { PeerUnreachableError } from '../../src/core/errors.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { lmdbStore } from '../../src/store/lmdb-store.js'
import type { Store } from '../../src/store/types.js'
import { Keyspace } from '../../src/server/keyspace.js'
import { KeyspaceReplicaStore, LAZY_VALUE } from '../../src/server/keyspace-replica-store.js'
import { DIGEST_BUCKETS, Replication, toWire, type ReplicaRecord, type ReplicationMessage } from '../../src/cluster/replication/index.js'
import { KernelRunner } from '../../src/cluster/kernel-runner.js'
import { jsonCodec } from '../../src/cluster/kernel.js'
import type { MessageTransport } from '../../src/cluster/transport.js'
import { slowSets } from '../support/gated-store.js'

const NOW = 1_800_000_000_000
const BUCKET = 2 ** 32 / DIGEST_BUCKETS
const v = (msAgo: number, nodeId = 'n1', logical = 0): Version => ({ hlc: versionFromMs(NOW - msAgo) + logical, nodeId })
const b64 = (s: string): string => Buffer.from(s).toString('base64')
const put = (key: string, value: string, version: Version, extra: Partial<{ expiresAt: number; tags: string[] }> = {}): ReplicaRecord => ({ key, version, value: b64(value), expiresAt: extra.expiresAt ?? 0, tags: extra.tags ?? [] })
const text = (e: { value: Uint8Array } | undefined): string | undefined => (e === undefined ? undefined : Buffer.from(e.value).toString())

async function openBoth(store: Store, clock: ManualClock): Promise<{ ks: Keyspace; rs: KeyspaceReplicaStore }> {
  const ks = await Keyspace.open({ store, clock, hlc: new HybridLogicalClock(clock), nodeId: 'local' })
  const rs = await KeyspaceReplicaStore.open({ keyspace: ks, clock })
  return { ks, rs }
}

function assertSameDigests(rs: KeyspaceReplicaStore, ks: Keyspace): void {
  assert.equal(rs.summary({ depth: 0, index: 0 }, 0).digest, ks.digest())
  for (let b = 0; b < DIGEST_BUCKETS; b++) {
    assert.equal(rs.summary({ depth: 5, index: b }, 0).digest, ks.digest({ start: b * BUCKET, end: (b + 1) * BUCKET }), `bucket ${b}`)
  }
}

/** Random puts, deletes, already-expired puts and tagged puts on 300 keys. */
function randomOps(rs: KeyspaceReplicaStore, seed: number, n: number): number {
  const r = new SeededRandom(seed)
  let applied = 0
  for (let i = 0; i < n; i++) {
    const key = `k${Math.floor(r.next() * 300)}`
    const version = v(Math.floor(r.next() * 100_000), `n${Math.floor(r.next() * 3)}`)
    const roll = r.next()
    const record: ReplicaRecord =
      roll < 0.2 ? { key, version, deleted: true } : roll < 0.3 ? put(key, `exp${i}`, version, { expiresAt: NOW - 1 }) : roll < 0.4 ? put(key, `t${i}`, version, { tags: ['a:b'] }) : put(key, `v${i}`, version, { expiresAt: r.next() < 0.5 ? 0 : NOW + 3600_000 })
    if (rs.apply(record, NOW)) applied++
  }
  return applied
}

for (const kind of ['memory', 'lmdb'] as const) {
  describe(`KeyspaceReplicaStore over a ${kind} keyspace`, () => {
    let dir: string | undefined
    const makeStore = (clock: ManualClock): Store => (kind === 'memory' ? memoryStore({ clock }) : lmdbStore({ path: (dir ??= mkdtempSync(join(tmpdir(), 'ksrs-'))), clock }))
    const cleanup = (): void => {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
      dir = undefined
    }

    test('apply, clear and invalidate decide at once and are in the keyspace after flush; older changes are refused by both', async () => {
      const clock = new ManualClock(NOW)
      const store = makeStore(clock)
      try {
        const { ks, rs } = await openBoth(store, clock)
        assert.equal(rs.apply(put('a', 'one', v(100)), NOW), true)
        assert.equal(rs.apply(put('a', 'older', v(200)), NOW), false, 'LWW in the index')
        assert.equal(rs.apply(put('t', 'tagged', v(100), { tags: ['g'] }), NOW), true)
        assert.equal(rs.apply(put('p:1', 'under prefix', v(100)), NOW), true)
        assert.equal(rs.get('a')?.deleted === true ? undefined : (rs.get('a') as { value: string }).value, LAZY_VALUE, 'the index holds no value')
        await rs.flush()
        assert.equal(text(await ks.get('a')), 'one')
        assert.equal(text(await ks.get('t')), 'tagged')
        assert.equal(rs.apply({ key: 'a', version: v(50), deleted: true }, NOW), true)
        assert.equal(rs.clear('p:', v(50), NOW), true)
        assert.equal(rs.invalidate({ tag: 'g', mode: 'hard', hlc: v(50).hlc }), true)
        assert.equal(rs.invalidate({ tag: 'g', mode: 'hard', hlc: v(60).hlc }), false, 'max-merged')
        await rs.flush()
        assert.equal(await ks.get('a'), undefined)
        assert.deepEqual((await ks.getRecord('a'))?.version, v(50))
        assert.equal(await ks.get('p:1'), undefined)
        assert.equal(await ks.get('t'), undefined, 'hidden by the invalidation')
        assert.deepEqual(ks.prefixTombstones(), [{ prefix: 'p:', version: v(50) }])
        assert.equal(rs.apply(put('p:2', 'older than the clear', v(70)), NOW), false)
        assert.equal(rs.stats.writes, 6)
        assert.equal(rs.stats.writeFailures, 0)
        await ks.close()
      } finally {
        await store.close?.()
        cleanup()
      }
    })

    test('the index\'s Merkle digests equal the keyspace\'s in every bucket, and again after a restart rebuilds both', async () => {
      const clock = new ManualClock(NOW)
      let store = makeStore(clock)
      try {
        const { ks, rs } = await openBoth(store, clock)
        const applied = randomOps(rs, 7, 2_000)
        assert.ok(applied > 300, `applied ${applied}`)
        rs.clear('k1', v(40_000), NOW)
        rs.invalidate({ tag: 'a', mode: 'soft', hlc: v(10).hlc })
        await rs.flush()
        assertSameDigests(rs, ks)
        const counts = rs.counts(NOW)
        await ks.close()
        if (kind === 'memory') return
        await store.close?.()
        store = makeStore(clock)
        const again = await openBoth(store, clock)
        assertSameDigests(again.rs, again.ks)
        assert.equal(again.rs.summary({ depth: 0, index: 0 }, 0).digest, rs.summary({ depth: 0, index: 0 }, 0).digest, 'the rebuilt index equals the live one')
        assert.deepEqual(again.rs.counts(NOW), counts)
        assert.deepEqual(again.rs.tagInvalidations(), [{ tag: 'a', mode: 'soft', hlc: v(10).hlc }])
        assert.deepEqual(again.rs.prefixTombstones(NOW), [{ prefix: 'k1', version: v(40_000) }])
        await again.ks.close()
      } finally {
        await store.close?.()
        cleanup()
      }
    })
  })
}

/** A MessageTransport that records what is sent. */
function recorder(self: string): MessageTransport & { sent: Array<{ to: string; message: ReplicationMessage }> } {
  const codec = jsonCodec<ReplicationMessage>()
  const sent: Array<{ to: string; message: ReplicationMessage }> = []
  return {
    self,
    maxFrameBytes: 4 << 20,
    sent,
    send: (to, payload) => void sent.push({ to, message: codec.decode(payload) }),
    onReceive: () => () => undefined,
    onUnreachable: (_h: (e: PeerUnreachableError) => void) => () => undefined,
    close: () => Promise.resolve(),
  }
}

describe('the runner and a KeyspaceReplicaStore: persist before send', () => {
  async function setup(gate: { open: Promise<void>; fail: boolean }) {
    const clock = new ManualClock(NOW)
    const inner = memoryStore({ clock })
    // Store writes wait for the gate (and then fail when asked): the keyspace's disk is slow.
    const store = new Proxy(inner, {
      get(t, p) {
        const f: unknown = Reflect.get(t, p)
        if (p !== 'set' || typeof f !== 'function') return typeof f === 'function' ? (f as (...a: unknown[]) => unknown).bind(t) : f
        return async (...args: unknown[]) => {
          await gate.open
          if (gate.fail) throw new Error('disk full')
          return (f as (...a: unknown[]) => unknown).apply(t, args)
        }
      },
    }) as Store
    const { ks, rs } = await openBoth(store, clock)
    const machine = new Replication({
      id: 'a',
      store: rs,
      random: new SeededRandom(3),
      topology: () => ({ clusterState: 'ACTIVE', members: [{ id: 'a', region: 'r1', status: 'alive' }, { id: 'b', region: 'r1', status: 'alive' }] }),
    })
    const transport = recorder('a')
    const errors: unknown[] = []
    const runner = new KernelRunner<ReplicationMessage>({
      machine,
      transport,
      clock,
      codec: jsonCodec(),
      disk: { load: () => new Map(), write: () => undefined },
      onError: (e) => errors.push(e),
      beforeSend: async (messages) => {
        await rs.flush()
        return Promise.all(messages.map(async (m) => ({ to: m.to, message: await rs.prepare(m.message) })))
      },
    })
    runner.start()
    await runner.idle()
    transport.sent.length = 0
    return { ks, rs, runner, transport, errors }
  }

  test('an acked write and its fan-out go out only once the keyspace holds it', async () => {
    let open!: () => void
    const gate = { open: new Promise<void>((r) => (open = r)), fail: false }
    const { ks, rs, runner, transport, errors } = await setup(gate)
    runner.step({ type: 'message', from: 'client', message: { kind: 'req', rid: 1, op: 'put', key: 'k', value: b64('hello') } })
    await new Promise((r) => setImmediate(r))
    assert.equal(transport.sent.length, 0, 'nothing sent while the write is not durable')
    assert.equal(rs.stats.pending, 1)
    open()
    await runner.idle()
    assert.deepEqual(transport.sent.map((s) => [s.to, s.message.kind]).sort(), [['b', 'rep'], ['client', 'res']])
    const res = transport.sent.find((s) => s.message.kind === 'res')!.message as Extract<ReplicationMessage, { kind: 'res' }>
    assert.equal(res.ok, true)
    assert.equal(text(await ks.get('k')), 'hello')
    assert.deepEqual(errors, [])
    await ks.close()
  })

  test('a keyspace write that fails sends nothing of its step and is reported', async () => {
    const gate = { open: Promise.resolve(), fail: true }
    const { ks, rs, runner, transport, errors } = await setup(gate)
    runner.step({ type: 'message', from: 'client', message: { kind: 'req', rid: 1, op: 'put', key: 'k', value: b64('hello') } })
    await runner.idle()
    assert.equal(transport.sent.length, 0)
    assert.equal(errors.length, 1)
    assert.equal(rs.stats.writeFailures, 1)
    assert.equal(await ks.get('k'), undefined)
    await ks.close()
  })

  test('anti-entropy records get their values from the keyspace (a newer state there is shipped instead, a vanished one dropped)', async () => {
    const gate = { open: Promise.resolve(), fail: false }
    const { ks, rs } = await setup(gate)
    rs.apply(put('x', 'ex', v(10)), NOW)
    rs.apply(put('y', 'why', v(10), { tags: ['t'] }), NOW)
    rs.apply({ key: 'z', version: v(10), deleted: true }, NOW)
    rs.apply(put('w', 'gone', v(10)), NOW)
    await rs.flush()
    await ks.applyIfNewer({ key: 'y', version: v(5), value: Buffer.from('newer'), expiresAt: 0, tags: [] })
    await ks.clear('w', v(1))
    const records = rs.records({ depth: 0, index: 0 }).map((r) => toWire(r))
    assert.ok(records.some((w) => w[3] === LAZY_VALUE))
    const out = await rs.prepare({ kind: 'recs', records })
    assert.ok(out.kind === 'recs')
    const byKey = new Map(out.records.map((w) => [w[0], w]))
    assert.deepEqual(byKey.get('x'), ['x', v(10).hlc, 'n1', b64('ex'), 0])
    assert.deepEqual(byKey.get('y'), ['y', v(5).hlc, 'n1', b64('newer'), 0])
    assert.deepEqual(byKey.get('z'), ['z', v(10).hlc, 'n1'])
    assert.equal(byKey.has('w'), false)
    await ks.close()
  })
})

describe('KeyspaceReplicaStore.barrier', () => {
  test('waits for the writes queued before it only; rejects with a failure among them, which flush then does not report again', async () => {
    const clock = new ManualClock(NOW)
    let open!: () => void
    const gate = new Promise<void>((r) => (open = r))
    const inner = memoryStore({ clock })
    // Store writes of keys named "slow…" wait for the gate; of "bad…" fail.
    const store = slowSets(inner, gate)
    const { ks, rs } = await openBoth(store, clock)
    rs.apply(put('fast', 'f', v(10)), NOW)
    const first = rs.barrier()
    rs.apply(put('slow', 's', v(10)), NOW)
    const second = rs.barrier()
    let secondDone = false
    void second.then(() => (secondDone = true))
    await first
    assert.equal(text(await ks.get('fast')), 'f')
    assert.equal(secondDone, false, 'the second barrier waits for the slow write')
    open()
    await second
    assert.equal(text(await ks.get('slow')), 's')

    rs.apply(put('bad', 'b', v(10)), NOW)
    await assert.rejects(rs.barrier(), /Store operation set failed/)
    assert.equal(rs.stats.writeFailures, 1)
    await rs.flush() // reported once, by the barrier
    await rs.barrier() // nothing pending
    await ks.close()
  })

  test('writes settling out of order: a barrier waits for the oldest unsettled write; a failure is reported by every barrier that included it, not by later ones', async () => {
    const clock = new ManualClock(NOW)
    let open!: () => void
    const gate = new Promise<void>((r) => (open = r))
    const inner = memoryStore({ clock })
    // Store writes of keys named "slow…" wait for the gate; of "bad…" fail.
    const store = slowSets(inner, gate)
    const { ks, rs } = await openBoth(store, clock)
    rs.apply(put('slowbad', 'x', v(10)), NOW)
    const first = rs.barrier()
    first.catch(() => undefined)
    for (let i = 0; i < 50; i++) rs.apply(put(`fast${i}`, 'f', v(10)), NOW)
    const second = rs.barrier()
    second.catch(() => undefined)
    let settled = 0
    void first.then(() => settled++, () => settled++)
    void second.then(() => settled++, () => settled++)
    const third = rs.barrier()
    third.catch(() => undefined)
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r))
    assert.equal(text(await ks.get('fast49')), 'f', 'the later writes are durable')
    assert.equal(settled, 0, 'every barrier waits for the oldest write, still unsettled')
    open()
    await assert.rejects(third, /Store operation set failed/)
    assert.equal(settled, 2, 'the earlier barriers settled first')
    await assert.rejects(first, /Store operation set failed/)
    await assert.rejects(second, /Store operation set failed/)
    assert.equal(rs.stats.pending, 0)
    assert.equal(rs.stats.writes, 51)
    assert.equal(rs.stats.writeFailures, 1)
    await rs.barrier() // the failure settled before it: not its to report
    await rs.flush() // reported by the barriers that included it
    await ks.close()
  })
})
