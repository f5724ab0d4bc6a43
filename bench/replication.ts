/**
 * Anti-entropy cost (P9): node B missed `missed` of `keys` records (it was down with hints
 * overflowing); A and B then run Merkle anti-entropy on SimNetwork (1-10 ms links) until
 * their trees agree. Reported: bytes of every anti-entropy message (tree, sum, recs, meta;
 * as JSON frames) against the bytes of the changed records themselves (their wire tuples,
 * what shipping exactly them would cost: the floor), rounds, simulated time to converge,
 * and wall time. Not part of `npm run bench` (bench/run.ts); run it alone:
 *
 *     npx tsc -p tsconfig.json && node dist/bench/replication.js [keys] [missed] [valueBytes]
 *
 * Defaults: 1,000,000 keys, 10,000 missed, 100-byte values; the two stores are filled
 * directly (not through writes), so only the repair is simulated.
 */
import { jsonCodec, type MessageCodec } from '../src/cluster/kernel.js'
import { MemoryReplicaStore, Replication, type ReplicationMessage, toWire, type ReplicaRecord } from '../src/cluster/replication/index.js'
import { SeededRandom } from '../src/core/random.js'
import { SimNetwork } from '../src/testing/index.js'

const keys = Number(process.argv[2] ?? 1_000_000)
const missed = Number(process.argv[3] ?? 10_000)
const valueBytes = Number(process.argv[4] ?? 100)
const budget = Number(process.env.REPAIR_RECORDS_PER_ROUND ?? 10_000)

const T0 = 1_700_000_000_000
const json = jsonCodec<ReplicationMessage>()
const bytesByKind = new Map<string, number>()
const countByKind = new Map<string, number>()
const counting: MessageCodec<ReplicationMessage> = {
  encode: (m) => {
    const b = json.encode(m)
    bytesByKind.set(m.kind, (bytesByKind.get(m.kind) ?? 0) + b.byteLength)
    countByKind.set(m.kind, (countByKind.get(m.kind) ?? 0) + 1)
    return b
  },
  decode: (b) => json.decode(b),
}

const wallStart = performance.now()
const a = new MemoryReplicaStore()
const b = new MemoryReplicaStore()
const random = new SeededRandom(42)
const value = 'x'.repeat(Math.ceil((valueBytes * 4) / 3)).slice(0, Math.ceil((valueBytes * 4) / 3)) // base64 of valueBytes
const skip = new Set<number>()
while (skip.size < missed) skip.add(Math.floor(random.next() * keys))
let changedBytes = 0
for (let i = 0; i < keys; i++) {
  const r: ReplicaRecord = { key: `user:${i}`, version: { hlc: (T0 - 60_000 + (i % 50_000)) * 2048, nodeId: 'n1' }, value, expiresAt: 0, tags: [] }
  a.apply(r, T0)
  if (skip.has(i)) changedBytes += JSON.stringify(toWire(r)).length + 1
  else b.apply(r, T0)
}
const fillMs = performance.now() - wallStart

const net = new SimNetwork<ReplicationMessage>({ seed: 1, codec: counting, link: { latency: { min: 1, max: 10 } } })
const topology = (): { clusterState: 'ACTIVE'; members: Array<{ id: string; region: string; status: 'alive' }> } => ({ clusterState: 'ACTIVE', members: [{ id: 'n1', region: 'r', status: 'alive' }, { id: 'n2', region: 'r', status: 'alive' }] })
const machines = new Map<string, Replication>()
for (const [id, store] of [['n1', a], ['n2', b]] as const) {
  net.addNode(id, (me) => {
    const m = new Replication({ id: me, store, topology, random: new SeededRandom(me === 'n1' ? 1 : 2), antiEntropyIntervalMs: 1_000, antiEntropyFollowUpMs: 20, maxRepairRecordsPerRound: budget, maxRepairBytesPerRound: 64 * 1024 * 1024 })
    machines.set(me, m)
    return m
  })
}
const root = { depth: 0, index: 0 }
const t0 = net.clock.now()
const wall0 = performance.now()
const ok = net.runUntil(() => a.summary(root, 0).digest === b.summary(root, 0).digest, 600_000, 10)
const simMs = net.clock.now() - t0
const wallMs = performance.now() - wall0
const aeBytes = [...bytesByKind].reduce((n, [, v]) => n + v, 0)
const s1 = machines.get('n1')!.stats.antiEntropy
const s2 = machines.get('n2')!.stats.antiEntropy
const line = (label: string, v: string): void => void process.stdout.write(`${label.padEnd(34)} ${v}\n`)
line('keys / missed / value bytes', `${keys} / ${missed} / ${valueBytes}`)
line('converged', `${ok}`)
line('stores filled in', `${Math.round(fillMs)} ms`)
line('changed records (wire bytes)', `${changedBytes}`)
line('anti-entropy bytes', `${aeBytes}  (${[...bytesByKind].map(([k, v]) => `${k} ${v} in ${countByKind.get(k)}`).join(', ')})`)
line('ratio bytes / changed', `${(aeBytes / changedBytes).toFixed(2)}x`)
line('records shipped / repaired', `${s1.recordsShipped + s2.recordsShipped} / ${s1.recordsRepaired + s2.recordsRepaired}`)
line('rounds started (n1 + n2)', `${s1.rounds + s2.rounds}`)
line('ranges compared', `${s1.rangesCompared + s2.rangesCompared}`)
line('simulated time to converge', `${simMs} ms (first round after up to 1.1 s)`)
line('wall time of the repair', `${Math.round(wallMs)} ms`)
