// replicaDigest (what GET /v1/cluster/digest answers): two replicas that anti-entropy calls
// equal give equal digests — an expired record and the tombstone of its version hash the
// same, a dead record past its grace is purged first (as before a round), prefix tombstones
// and tag invalidations are in `meta`; ranges at a depth add up to the root; a bad depth is
// refused. Replicas repaired by anti-entropy (seeded, simulated time) end with equal digests.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isCacheError } from '../../src/core/errors.js'
import type { Version } from '../../src/core/hlc.js'
import { SeededRandom } from '../../src/core/random.js'
import { BUCKET_DEPTH, MemoryReplicaStore, Replication, replicaDigest, type ReplicaRecord, type ReplicationMessage } from '../../src/cluster/replication/index.js'

const T0 = 1_700_000_000_000
const v = (ms: number, nodeId = 'n1'): Version => ({ hlc: ms * 2048, nodeId })
const put = (key: string, version: Version, expiresAt = 0): ReplicaRecord => ({ key, version, value: 'eA==', expiresAt, tags: [] })
const tomb = (key: string, version: Version): ReplicaRecord => ({ key, version, deleted: true })
const TTL = 60_000

describe('replicaDigest', () => {
  test('an expired record equals the tombstone of its version; past the grace both are gone; meta holds prefix tombstones and tags', () => {
    const a = new MemoryReplicaStore({ tombstoneTtlMs: TTL })
    const b = new MemoryReplicaStore({ tombstoneTtlMs: TTL })
    const now = T0 + 10_000
    for (const s of [a, b]) s.apply(put('live', v(T0)), T0)
    // a holds the record that expired; b got it from anti-entropy as the tombstone of its version.
    a.apply(put('gone', v(T0 + 1), T0 + 5_000), T0)
    b.apply(tomb('gone', v(T0 + 1)), now)
    assert.deepEqual(replicaDigest(a, now), replicaDigest(b, now))
    assert.equal(replicaDigest(a, now).count, 2, 'records and tombstones')
    // A deleted key on a only, older than the grace: purged before the digest, as before a round.
    a.apply(tomb('old', v(T0 + 2)), now)
    assert.notDeepEqual(replicaDigest(a, now), replicaDigest(b, now))
    const later = T0 + 2 + TTL + 1
    assert.deepEqual(replicaDigest(a, later), replicaDigest(b, later))
    assert.equal(replicaDigest(a, later).count, 1, 'the expired record and both tombstones are past their grace')
    // Prefix tombstones and tag invalidations: in meta, not in the tree.
    const before = replicaDigest(a, later)
    a.clear('p:', v(later - 10), later)
    a.invalidate({ tag: 'red', mode: 'hard', hlc: v(later - 5).hlc })
    const after = replicaDigest(a, later)
    assert.equal(after.digest, before.digest)
    assert.notEqual(after.meta, before.meta)
    b.clear('p:', v(later - 10), later)
    b.invalidate({ tag: 'red', mode: 'hard', hlc: v(later - 5).hlc })
    assert.deepEqual(replicaDigest(b, later), after)
  })

  test('ranges at each depth add up to the root; empty ranges are left out; a bad depth is refused', () => {
    const s = new MemoryReplicaStore()
    const r = new SeededRandom(7)
    for (let i = 0; i < 500; i++) s.apply(put(`k${i}-${Math.floor(r.next() * 1e6)}`, v(T0 + i)), T0)
    const root = replicaDigest(s, T0)
    assert.deepEqual(root.ranges, [])
    assert.equal(root.depth, 0)
    for (let depth = 1; depth <= BUCKET_DEPTH; depth++) {
      const d = replicaDigest(s, T0, depth)
      assert.equal(d.digest, root.digest)
      assert.equal(d.ranges.reduce((n, x) => n + x.count, 0), 500)
      assert.ok(d.ranges.every((x) => x.count > 0))
      let a = 0n
      for (const x of d.ranges) a ^= BigInt(`0x${x.digest}`)
      assert.equal(a.toString(16).padStart(16, '0'), root.digest, `depth ${depth}: the XOR of the ranges is the root`)
    }
    for (const bad of [-1, 6, 1.5]) assert.throws(() => replicaDigest(s, T0, bad), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
  })

  test('seeded: replicas that diverged (expiries, deletes, missed writes) end with equal digests after anti-entropy', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const r = new SeededRandom(seed)
      const ids = ['a', 'b', 'c']
      const stores = new Map(ids.map((id) => [id, new MemoryReplicaStore({ tombstoneTtlMs: TTL })]))
      const topology = { clusterState: 'ACTIVE' as const, members: ids.map((id) => ({ id, region: 'r', status: 'alive' as const })) }
      const machines = new Map(ids.map((id) => [id, new Replication({ id, store: stores.get(id)!, topology: () => topology, random: new SeededRandom(seed * 10 + id.charCodeAt(0)), antiEntropyIntervalMs: 1000 })]))
      let now = T0
      // Divergent histories written straight into each store (what a cut leaves behind).
      for (let i = 0; i < 200; i++) {
        const id = ids[Math.floor(r.next() * 3)]!
        const key = `k${Math.floor(r.next() * 60)}`
        const version = v(T0 - 30_000 + i * 10, id)
        const roll = r.next()
        const record = roll < 0.2 ? tomb(key, version) : roll < 0.4 ? put(key, version, T0 - 20_000 + Math.floor(r.next() * 40_000)) : put(key, version)
        stores.get(id)!.apply(record, T0 - 30_000 + i * 10)
      }
      const queue: Array<{ from: string; to: string; message: ReplicationMessage }> = []
      const run = (id: string, actions: ReturnType<Replication['step']>): void => {
        for (const a of actions) if (a.type === 'send') queue.push({ from: id, to: a.to, message: a.message })
      }
      for (const id of ids) run(id, machines.get(id)!.step({ type: 'start', persisted: new Map() }, now))
      for (let t = 0; t < 120; t++) {
        now += 250
        for (const id of ids) {
          const m = machines.get(id)!
          run(id, m.step({ type: 'timer', name: 'tick' }, now))
          run(id, m.step({ type: 'timer', name: 'ae' }, now))
        }
        while (queue.length > 0) {
          const { from, to, message } = queue.shift()!
          run(to, machines.get(to)!.step({ type: 'message', from, message }, now))
        }
      }
      const digests = ids.map((id) => replicaDigest(stores.get(id)!, now, 2))
      assert.deepEqual(digests[1], digests[0], `seed ${seed}: b and a`)
      assert.deepEqual(digests[2], digests[0], `seed ${seed}: c and a`)
    }
  })
})
