/**
 * The `etcd` suite: what the strongly consistent tier costs. On a 3-member etcd cluster this
 * suite starts on loopback (test/support/etcd-server.ts, data in a temp dir) and a
 * redis-server (no persistence):
 *
 * - reads, linearizable (etcd's default: the member confirms with a quorum it is current)
 *   and serializable (the member's own state), and writes (one Raft round), each at 1 and
 *   64 concurrent callers;
 * - three subjects: raw `etcd3` calls (`kv.range` / `kv.put`: the physical floor of this
 *   tier), `etcdStore` (expiry header, lease buckets, typed errors, the send-once policy),
 *   and `redisStore` beside them (Redis has one consistency; its reads are in both rows).
 *
 * Each cell runs for a fixed time on 1,000 keys of 100-byte values (uniform random keys), the
 * three subjects interleaved in short slices (median of the slices), and reports operations
 * per second; at 1 caller the mean latency is 1 / rate. In-process (quick: shorter cells).
 */
import { performance } from 'node:perf_hooks'
import type { Etcd3 } from 'etcd3'
import { etcdStore } from '../src/store/etcd-store.js'
import { redisStore } from '../src/store/redis-store.js'
import { startEtcdCluster } from '../test/support/etcd-server.js'
import { startRedisServer } from '../test/support/redis-server.js'
import { fmtOps, median, type Table } from './harness.js'

const KEYS = 1_000
const VALUE = new Uint8Array(100).fill(42)
const CONCURRENCY = [1, 64] as const
type Op = 'read (linearizable)' | 'read (serializable)' | 'write'
const OPS: readonly Op[] = ['read (linearizable)', 'read (serializable)', 'write']
type SubjectName = 'raw etcd3' | 'etcdStore' | 'redisStore'
const SUBJECTS: readonly SubjectName[] = ['raw etcd3', 'etcdStore', 'redisStore']

/** Runs `op` from `callers` concurrent loops for `ms`; operations per second. */
async function rate(op: (i: number) => Promise<unknown>, callers: number, ms: number): Promise<number> {
  let done = 0
  let seed = 12345
  const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % KEYS
  const start = performance.now()
  const end = start + ms
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        await op(next())
        done++
      }
    }),
  )
  return done / ((performance.now() - start) / 1000)
}

export async function etcdSuite(c: { quick: boolean }): Promise<{ params: Readonly<Record<string, unknown>>; results: Readonly<Record<string, unknown>>; tables: Table[] }> {
  const cellMs = c.quick ? 400 : 2_500
  const cluster = await startEtcdCluster()
  const redis = await startRedisServer()
  const store = etcdStore({ endpoints: cluster.endpoints, namespace: 'bench/' })
  const rstore = redisStore({ url: redis.url })
  try {
    const raw: Etcd3 = await store.etcdClient()
    const rawKey = (i: number): Buffer => Buffer.from(`raw/${i}`)
    const key = (i: number): string => `k${i}`
    // Fill every subject's keys (not timed).
    for (let i = 0; i < KEYS; i += 50) {
      const batch = Array.from({ length: Math.min(50, KEYS - i) }, (_, j) => i + j)
      await Promise.all(batch.map((n) => raw.kv.put({ key: rawKey(n), value: Buffer.from(VALUE) })))
      await store.setMany(batch.map((n) => ({ key: key(n), value: VALUE, ttlMs: 3_600_000 })))
      await rstore.setMany(batch.map((n) => ({ key: key(n), value: VALUE, ttlMs: 3_600_000 })))
    }
    const calls: Record<SubjectName, Record<Op, (i: number) => Promise<unknown>>> = {
      'raw etcd3': {
        'read (linearizable)': (i) => raw.kv.range({ key: rawKey(i) }),
        'read (serializable)': (i) => raw.kv.range({ key: rawKey(i), serializable: true }),
        write: (i) => raw.kv.put({ key: rawKey(i), value: Buffer.from(VALUE) }),
      },
      etcdStore: {
        'read (linearizable)': (i) => store.get(key(i)),
        'read (serializable)': (i) => store.get(key(i), { consistency: 'serializable' }),
        write: (i) => store.set(key(i), VALUE, 3_600_000),
      },
      redisStore: {
        'read (linearizable)': (i) => rstore.get(key(i)),
        'read (serializable)': (i) => rstore.get(key(i)),
        write: (i) => rstore.set(key(i), VALUE, 3_600_000),
      },
    }
    // Subjects interleaved in short slices (round robin, median of the slices): this shared
    // machine's speed drifts within seconds, and one long cell per subject would carry it.
    const results: Record<string, number> = {}
    const slices = c.quick ? 2 : 5
    for (const op of OPS) {
      for (const callers of CONCURRENCY) {
        const seen = new Map<SubjectName, number[]>()
        for (const subject of SUBJECTS) await rate(calls[subject][op], callers, 150) // warm-up
        for (let r = 0; r < slices; r++) {
          for (const subject of SUBJECTS) seen.set(subject, [...(seen.get(subject) ?? []), await rate(calls[subject][op], callers, cellMs / slices)])
        }
        for (const subject of SUBJECTS) results[`${subject}|${op}|${callers}`] = median(seen.get(subject) as number[])
      }
    }
    const get = (s: SubjectName, op: Op, n: number): number => results[`${s}|${op}|${n}`] as number
    const ms = (opsPerSec: number): string => `${(1000 / opsPerSec).toFixed(2)} ms`
    const tables: Table[] = [
      {
        title: 'etcd tier: operations per second on a 3-member etcd cluster (loopback), 100-byte values, 1,000 keys',
        columns: ['operation', 'callers', 'raw etcd3', 'etcdStore', 'etcdStore / raw', 'redisStore', 'latency at 1 caller (raw / store / redis)'],
        align: 'lrrrrrl',
        rows: OPS.flatMap((op) =>
          CONCURRENCY.map((n) => [
            op,
            String(n),
            fmtOps(get('raw etcd3', op, n)),
            fmtOps(get('etcdStore', op, n)),
            `${((get('etcdStore', op, n) / get('raw etcd3', op, n)) * 100).toFixed(0)} %`,
            fmtOps(get('redisStore', op, n)),
            n === 1 ? `${ms(get('raw etcd3', op, 1))} / ${ms(get('etcdStore', op, 1))} / ${ms(get('redisStore', op, 1))}` : '',
          ]),
        ),
        notes: [
          `Each cell: ${cellMs} ms per subject in ${slices} slices interleaved with the other subjects (median of the slices), after a short warm-up; uniform random keys; one process (the etcd members and redis-server are separate processes on the same machine).`,
          'Linearizable reads cost a quorum round (ReadIndex) on top of the member read; serializable reads answer from the member the client talks to and may lag. Writes are one Raft round (fsync on every member).',
          'redisStore has one consistency (a single server); its read figure is repeated in both read rows for comparison.',
        ],
      },
    ]
    return { params: { cellMs, keys: KEYS, valueBytes: VALUE.byteLength, members: 3 }, results, tables }
  } finally {
    await store.close()
    await rstore.close()
    await redis.stop()
    await cluster.stop()
  }
}
