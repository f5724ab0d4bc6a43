/**
 * What kept prefix clears cost later writes: µs per write on the node's keyspace (memory
 * store) and per apply on the replica store, with 0, 1,000 and 20,000 prefix tombstones
 * kept (clears of distinct `user:<id>:` prefixes, within the grace), and per `hidden` check
 * of a tagged record with 0 and 1,000 tag invalidations held, and per anti-entropy meta
 * digest (`metaDigest`, every round) with 0, 10,000 and 100,000 tag invalidations and
 * 20,000 prefix tombstones held. Rounds alternate the sizes in one process; the figure is
 * the median of 5 rounds. Run: `node dist/bench/prefix-clears.js`.
 * Recorded in docs/decisions/0407-prefix-tombstones-looked-up-by-length.md.
 */
import { Buffer } from 'node:buffer'
import { HybridLogicalClock } from '../src/core/hlc.js'
import { systemClock } from '../src/core/system-clock.js'
import { MemoryReplicaStore } from '../src/cluster/replication/replica-store.js'
import { metaDigest } from '../src/cluster/replication/replication.js'
import { Keyspace } from '../src/server/keyspace.js'
import { memoryStore } from '../src/store/memory-store.js'
import { median } from './harness.js'

const SIZES = [0, 1_000, 20_000]
const ROUNDS = 5
const WRITES = 5_000
const SPAN = 2048 // 2^LOGICAL_BITS

async function keyspaceWith(clears: number): Promise<Keyspace> {
  const ks = await Keyspace.open({ store: memoryStore(), clock: systemClock, hlc: new HybridLogicalClock(systemClock), nodeId: 'n1' })
  for (let i = 0; i < clears; i++) await ks.clear(`user:${i}:`)
  return ks
}

function replicaWith(clears: number, invalidations: number): { store: MemoryReplicaStore; next: () => number } {
  const now = Date.now()
  let hlc = now * SPAN
  const store = new MemoryReplicaStore()
  for (let i = 0; i < clears; i++) store.clear(`user:${i}:`, { hlc: ++hlc, nodeId: 'n1' }, now)
  for (let i = 0; i < invalidations; i++) store.invalidate({ mode: 'hard', tag: `team:${i}`, hlc: ++hlc })
  return { store, next: () => ++hlc }
}

async function main(): Promise<void> {
  const keyspaces = new Map<number, Keyspace>()
  for (const n of SIZES) keyspaces.set(n, await keyspaceWith(n))
  const replicas = new Map(SIZES.map((n) => [n, replicaWith(n, 0)] as const))
  const tagged = new Map([0, 1_000].map((n) => [n, replicaWith(0, n)] as const))
  const ks = new Map<number, number[]>(SIZES.map((n) => [n, []]))
  const rs = new Map<number, number[]>(SIZES.map((n) => [n, []]))
  const hs = new Map<number, number[]>([0, 1_000].map((n) => [n, []]))
  const metas = new Map([0, 10_000, 100_000].map((n) => [n, replicaWith(20_000, n)] as const))
  const ms = new Map<number, number[]>([...metas.keys()].map((n) => [n, []]))
  let round = 0
  for (let r = 0; r < ROUNDS; r++) {
    for (const n of SIZES) {
      const keyspace = keyspaces.get(n)!
      const value = Buffer.from('v')
      let t = performance.now()
      for (let i = 0; i < WRITES; i++) {
        // Keys under the cleared prefixes, with versions newer than their clears: each write applies.
        await keyspace.applyIfNewer({ key: `user:${i}:r${round}`, value, expiresAt: Infinity, tags: [], version: { hlc: (Date.now() + 30_000) * SPAN + i, nodeId: 'n2' } })
      }
      ks.get(n)!.push(((performance.now() - t) * 1000) / WRITES)
      const { store, next } = replicas.get(n)!
      const now = Date.now()
      t = performance.now()
      for (let i = 0; i < WRITES; i++) store.apply({ key: `user:${i}:r${round}`, value: 'v', expiresAt: Infinity, tags: [], version: { hlc: next(), nodeId: 'n2' } }, now)
      rs.get(n)!.push(((performance.now() - t) * 1000) / WRITES)
    }
    for (const [n, { store, next }] of tagged) {
      const record = { key: 'k', value: 'v', expiresAt: Infinity, tags: ['team:7:eng', 'user:1'], version: { hlc: next(), nodeId: 'n2' } }
      const now = Date.now()
      let hidden = 0
      const t = performance.now()
      for (let i = 0; i < WRITES; i++) if (store.hidden(record, now)) hidden++
      if (hidden !== 0) throw new Error('a record newer than every invalidation was hidden')
      hs.get(n)!.push(((performance.now() - t) * 1000) / WRITES)
    }
    for (const [n, { store }] of metas) {
      const now = Date.now()
      const t = performance.now()
      for (let i = 0; i < 20; i++) metaDigest(store, now)
      ms.get(n)!.push(((performance.now() - t) * 1000) / 20)
    }
    round++
  }
  console.log(`Measured ${new Date().toISOString()}, node ${process.version}; median of ${ROUNDS} rounds of ${WRITES}`)
  console.log('| kept prefix tombstones | keyspace applyIfNewer (memory store) | replica store apply |')
  console.log('|---:|---:|---:|')
  for (const n of SIZES) console.log(`| ${n} | ${median(ks.get(n)!).toFixed(1)} µs | ${median(rs.get(n)!).toFixed(2)} µs |`)
  console.log('| tag invalidations held | replica store hidden (2 tags) |')
  console.log('|---:|---:|')
  for (const [n, xs] of hs) console.log(`| ${n} | ${median(xs).toFixed(2)} µs |`)
  console.log('| tag invalidations held (and 20,000 prefix tombstones) | metaDigest |')
  console.log('|---:|---:|')
  for (const [n, xs] of ms) console.log(`| ${n} | ${median(xs).toFixed(2)} µs |`)
  for (const k of keyspaces.values()) await k.close()
}

await main()
