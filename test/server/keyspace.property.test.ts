// The keyspace's convergence property (issue 15): random applyIfNewer / delete / clear
// operations, delivered to three keyspaces in different orders, with duplicates and
// concurrent batches, leave all three in the same state — the state a pure LWW model
// predicts — and a deleted key never comes back (checked after every batch).
// Replays: fast-check's seed is fixed; the delivery orders come from SeededRandom seeds
// that fast-check generates, so a failure prints everything needed to rerun it.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { ManualClock } from '../../src/core/manual-clock.js'
import { SeededRandom } from '../../src/core/random.js'
import { compareVersions, HybridLogicalClock, type Version, versionFromMs } from '../../src/core/hlc.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { Keyspace, type KeyspaceRecord } from '../../src/server/keyspace.js'

const NOW = 1_800_000_000_000
const KEYS = ['a', 'a1', 'a2', 'ab', 'b', 'b1']
const PREFIXES = ['', 'a', 'a1', 'b']

type Op = { kind: 'put'; key: string; value: number; version: Version } | { kind: 'del'; key: string; version: Version } | { kind: 'clear'; prefix: string; version: Version }

const versionArb = fc.record({
  // Few distinct times and nodes: equal hlc across nodes (the node-id tiebreak) happens often.
  hlc: fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 3 })).map(([ms, c]) => versionFromMs(NOW - 1000 + ms) + c),
  nodeId: fc.constantFrom('n1', 'n2', 'n3'),
})
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('put' as const), key: fc.constantFrom(...KEYS), value: fc.integer({ min: 0, max: 999 }), version: versionArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('del' as const), key: fc.constantFrom(...KEYS), version: versionArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const), prefix: fc.constantFrom(...PREFIXES), version: versionArb }) },
)
// Versions are unique per operation (a version names one write, as the HLC guarantees).
const opsArb = fc.uniqueArray(opArb, { minLength: 1, maxLength: 30, selector: (op) => `${op.version.hlc}/${op.version.nodeId}` })

function covers(op: Op, key: string): boolean {
  return op.kind === 'clear' ? key.startsWith(op.prefix) : op.key === key
}

/** The model: per key, the newest operation touching it decides. */
function model(ops: readonly Op[], key: string): { value: number; version: Version } | undefined {
  let winner: Op | undefined
  for (const op of ops) if (covers(op, key) && (winner === undefined || compareVersions(op.version, winner.version) > 0)) winner = op
  return winner?.kind === 'put' ? { value: winner.value, version: winner.version } : undefined
}

function shuffled<T>(items: readonly T[], random: SeededRandom): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random.next() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

async function deliver(ks: Keyspace, op: Op): Promise<void> {
  if (op.kind === 'clear') await ks.clear(op.prefix, op.version)
  else {
    const record: KeyspaceRecord = op.kind === 'put' ? { key: op.key, value: Uint8Array.of(op.value & 0xff, op.value >> 8), expiresAt: 0, tags: [], version: op.version } : { key: op.key, version: op.version, deleted: true }
    await ks.applyIfNewer(record)
  }
}

async function visible(ks: Keyspace): Promise<string> {
  const out: string[] = []
  for (const key of KEYS) {
    const e = await ks.get(key)
    out.push(e === undefined ? `${key}:-` : `${key}:${e.value[0]! | (e.value[1]! << 8)}@${e.version.hlc}/${e.version.nodeId}`)
  }
  return out.join(' ')
}

test('three keyspaces fed the same operations in different orders, with duplicates, converge to the LWW model; no deleted key comes back', async () => {
  await fc.assert(
    fc.asyncProperty(opsArb, fc.array(fc.integer({ min: 1, max: 2 ** 31 - 1 }), { minLength: 3, maxLength: 3 }), async (ops, seeds) => {
      const finals: string[] = []
      const digests: string[] = []
      for (const seed of seeds) {
        const random = new SeededRandom(seed)
        const clock = new ManualClock(NOW)
        const store = memoryStore({ clock })
        const ks = await Keyspace.open({ store, clock, hlc: new HybridLogicalClock(clock), nodeId: 'local' })
        // Every operation once, some twice or three times, in a seeded order.
        const extra = ops.filter(() => random.next() < 0.4)
        const delivery = shuffled([...ops, ...extra, ...extra.filter(() => random.next() < 0.3)], random)
        const applied: Op[] = []
        // Concurrent batches of 1..4: interleavings inside the keyspace, not only orders.
        for (let i = 0; i < delivery.length; ) {
          const batch = delivery.slice(i, i + 1 + Math.floor(random.next() * 4))
          i += batch.length
          await Promise.all(batch.map((op) => deliver(ks, op)))
          applied.push(...batch)
          // No resurrection: nothing visible is older than a delete or clear already applied.
          for (const key of KEYS) {
            const e = await ks.get(key)
            if (e === undefined) continue
            for (const op of applied) {
              if (op.kind !== 'put' && covers(op, key)) assert.ok(compareVersions(e.version, op.version) > 0, `${key}@${e.version.hlc}/${e.version.nodeId} visible after ${op.kind} at ${op.version.hlc}/${op.version.nodeId} (seed ${seed})`)
            }
          }
        }
        const state = await visible(ks)
        const expected = KEYS.map((key) => {
          const m = model(ops, key)
          return m === undefined ? `${key}:-` : `${key}:${m.value}@${m.version.hlc}/${m.version.nodeId}`
        }).join(' ')
        assert.equal(state, expected, `seed ${seed}`)
        finals.push(state)
        digests.push(ks.digest())
        // The same state after a restart on the same store (tombstones included).
        await ks.close()
        const again = await Keyspace.open({ store, clock, hlc: new HybridLogicalClock(clock), nodeId: 'local' })
        assert.equal(await visible(again), state, `restart, seed ${seed}`)
        assert.equal(again.digest(), ks.digest(), `digest rebuilt at open, seed ${seed}`)
        for (const op of ops) await deliver(again, op)
        assert.equal(await visible(again), state, `redelivery after restart changes nothing, seed ${seed}`)
        await again.close()
        await store.close()
      }
      assert.equal(finals[1], finals[0])
      assert.equal(finals[2], finals[0])
      assert.equal(digests[1], digests[0], 'digests agree')
      assert.equal(digests[2], digests[0], 'digests agree')
    }),
    { numRuns: 150, seed: 20261206, includeErrorInReport: true },
  )
})
