// Units of replication: the hashes (bit-for-bit the keyspace's), the Merkle tree (incremental
// equals rebuilt, order-free, ranges and packing), the hint queue (bounded, ordered,
// overflow marks), the in-memory replica store (LWW, tombstones, prefix clears, tags,
// purge), the wire checks, and the machine's option and message validation.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isCacheError } from '../../src/core/errors.js'
import type { Version } from '../../src/core/hlc.js'
import { SeededRandom } from '../../src/core/random.js'
import {
  BUCKET_DEPTH,
  bucketOf,
  childrenOf,
  deepDigest,
  DIGEST_BUCKETS,
  HintQueue,
  keyHash,
  MAX_DEPTH,
  MemoryReplicaStore,
  MerkleTree,
  packRange,
  parseRecord,
  rangeBounds,
  rangeOf,
  recordHash,
  Replication,
  type ReplicaRecord,
  type Change,
  topologyFromView,
  tagCovers,
  toWire,
  unpackRange,
  validChange,
} from '../../src/cluster/replication/index.js'
import * as keyspace from '../../src/server/keyspace.js'

const T0 = 1_700_000_000_000
const v = (ms: number, nodeId = 'n1', logical = 0): Version => ({ hlc: ms * 2048 + logical, nodeId })
const put = (key: string, version: Version, extra: Partial<{ value: string; expiresAt: number; tags: string[] }> = {}): ReplicaRecord => ({ key, version, value: extra.value ?? 'x', expiresAt: extra.expiresAt ?? 0, tags: extra.tags ?? [] })
const tomb = (key: string, version: Version): ReplicaRecord => ({ key, version, deleted: true })

describe('digest', () => {
  test('keyHash, recordHash and the bucket count are bit-for-bit the keyspace\'s (its bucket digests feed the same tree)', () => {
    const r = new SeededRandom(1)
    assert.equal(DIGEST_BUCKETS, keyspace.DIGEST_BUCKETS)
    for (let i = 0; i < 2_000; i++) {
      const key = Array.from({ length: 1 + Math.floor(r.next() * 30) }, () => String.fromCharCode(32 + Math.floor(r.next() * 0x2000))).join('')
      const version = { hlc: Math.floor(r.next() * 2 ** 53), nodeId: `n${Math.floor(r.next() * 100)}` }
      assert.equal(keyHash(key), keyspace.keyHash(key))
      assert.deepEqual(recordHash(key, version), keyspace.recordHash(key, version))
    }
  })

  test('ranges: bounds, children, packing, the bucket of a position', () => {
    assert.deepEqual(rangeBounds({ depth: 0, index: 0 }), { start: 0, end: 2 ** 32 })
    assert.deepEqual(rangeBounds({ depth: BUCKET_DEPTH, index: 3 }), { start: 3 * 2 ** 22, end: 4 * 2 ** 22 })
    assert.deepEqual(rangeBounds({ depth: MAX_DEPTH, index: 7 }), { start: 7, end: 8 })
    assert.deepEqual(childrenOf({ depth: 2, index: 5 }).map((c) => [c.depth, c.index]), [[3, 20], [3, 21], [3, 22], [3, 23]])
    assert.deepEqual(childrenOf({ depth: MAX_DEPTH, index: 0 }), [])
    for (const range of [{ depth: 0, index: 0 }, { depth: 16, index: 2 ** 32 - 1 }, { depth: 7, index: 12_345 }]) assert.deepEqual(unpackRange(packRange(range)), range)
    for (const bad of [-1, 1.5, 17 * 2 ** 32, 1 * 2 ** 32 + 4, 'x', null]) assert.equal(unpackRange(bad), undefined, String(bad))
    assert.equal(bucketOf(2 ** 32 - 1), DIGEST_BUCKETS - 1)
    assert.equal(rangeOf(2 ** 31, 1), 2)
  })

  test('MerkleTree: incremental updates equal a rebuild, in any order; a parent is the XOR and the sum of its children', () => {
    const r = new SeededRandom(2)
    const records = Array.from({ length: 500 }, (_, i) => ({ key: `k${i}`, version: v(T0 + i) }))
    const a = new MerkleTree()
    const b = new MerkleTree()
    for (const x of records) a.toggle(x.key, x.version, 1)
    // b: the same set reached through churn in another order.
    const shuffled = [...records].sort(() => r.next() - 0.5)
    for (const x of shuffled) {
      b.toggle(x.key, v(1), 1)
      b.toggle(x.key, v(1), -1)
      b.toggle(x.key, x.version, 1)
    }
    for (let d = 0; d <= BUCKET_DEPTH; d++) for (let i = 0; i < 4 ** d; i++) assert.deepEqual(a.summary({ depth: d, index: i }), b.summary({ depth: d, index: i }))
    assert.equal(a.summary({ depth: 0, index: 0 }).count, 500)
    const parent = a.summary({ depth: 3, index: 9 })
    const kids = childrenOf({ depth: 3, index: 9 }).map((c) => a.summary(c))
    assert.equal(kids.reduce((n, k) => n + k.count, 0), parent.count)
    const xor = kids.reduce((acc, k) => acc.map((x, j) => x ^ Number.parseInt(k.digest.slice(j * 8, j * 8 + 8), 16)), [0, 0])
    assert.equal(xor.map((x) => (x >>> 0).toString(16).padStart(8, '0')).join(''), parent.digest)
    a.toggle('k0', records[0]!.version, -1)
    assert.notDeepEqual(a.summary({ depth: 0, index: 0 }), b.summary({ depth: 0, index: 0 }))
    a.reset()
    assert.deepEqual(a.summary({ depth: 0, index: 0 }), { digest: '0'.repeat(16), count: 0 })
    assert.throws(() => a.summary({ depth: BUCKET_DEPTH + 1, index: 0 }), RangeError)
  })

  test('deep digests: salted, order-free, differ on any change; a different salt gives a different digest', () => {
    const recs = [{ key: 'a', version: v(T0) }, { key: 'b', version: v(T0 + 1) }]
    assert.deepEqual(deepDigest(recs, 7), deepDigest([...recs].reverse(), 7))
    assert.notEqual(deepDigest(recs, 7).digest, deepDigest([recs[0]!, { key: 'b', version: v(T0 + 2) }], 7).digest)
    assert.notEqual(deepDigest(recs, 7).digest, deepDigest(recs, 8).digest)
    assert.deepEqual(deepDigest([], 7), { digest: '00000000', count: 0 })
  })
})

describe('HintQueue', () => {
  test('keeps each peer\'s hints in order, replays them in batches, and counts', () => {
    const q = new HintQueue<number>(100)
    for (let i = 0; i < 10; i++) q.push('a', i)
    q.push('b', 99)
    assert.deepEqual(q.peers(), ['a', 'b'])
    assert.deepEqual(q.take('a', 4), [0, 1, 2, 3])
    assert.deepEqual(q.take('a', 100), [4, 5, 6, 7, 8, 9])
    assert.deepEqual(q.take('a', 1), [])
    assert.equal(q.size('b'), 1)
    assert.deepEqual(q.stats, { depth: 1, perPeer: { b: 1 }, queued: 11, replayed: 10, overflows: 0 })
  })

  test('overflow drops the peer\'s queue, refuses more until taken, marks the peer for anti-entropy once', () => {
    const q = new HintQueue<number>(3)
    assert.ok([1, 2, 3].every((i) => q.push('a', i)))
    assert.equal(q.push('a', 4), false)
    assert.equal(q.size('a'), 0)
    assert.equal(q.push('a', 5), false, 'still marked: a replay would have a gap')
    assert.equal(q.overflowed('a'), true)
    assert.equal(q.takeOverflow('a'), true)
    assert.equal(q.takeOverflow('a'), false)
    assert.equal(q.push('a', 6), true)
    assert.equal(q.stats.overflows, 1)
    q.drop('a')
    assert.equal(q.stats.depth, 0)
    assert.throws(() => new HintQueue(-1), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    const none = new HintQueue<number>(0)
    assert.equal(none.push('x', 1), false, 'a bound of 0 sends every absent peer to anti-entropy')
  })
})

describe('MemoryReplicaStore', () => {
  test('LWW by version: only a newer version changes a key, in any order and with duplicates', () => {
    const r = new SeededRandom(3)
    const ops = Array.from({ length: 60 }, (_, i) => (i % 7 === 3 ? tomb(`k${i % 5}`, v(T0 + i, `n${i % 3}`)) : put(`k${i % 5}`, v(T0 + (i % 11), `n${i % 3}`), { value: `v${i}` })))
    const a = new MemoryReplicaStore()
    const b = new MemoryReplicaStore()
    for (const op of ops) a.apply(op, T0)
    for (const op of [...ops, ...ops].sort(() => r.next() - 0.5)) b.apply(op, T0)
    assert.deepEqual(a.all().sort((x, y) => (x.key < y.key ? -1 : 1)), b.all().sort((x, y) => (x.key < y.key ? -1 : 1)))
    assert.deepEqual(a.summary({ depth: 0, index: 0 }, 0), b.summary({ depth: 0, index: 0 }, 0))
    assert.equal(a.apply(put('k0', v(T0 - 1)), T0), false)
    assert.ok(a.maxHlc() >= v(T0 + 59).hlc)
  })

  test('tombstones refuse older writes during their grace; past it they (and expired records) are purged, and an old tombstone is not applied', () => {
    const s = new MemoryReplicaStore({ tombstoneTtlMs: 1_000 })
    assert.ok(s.apply(tomb('k', v(T0)), T0))
    assert.equal(s.apply(put('k', v(T0 - 5)), T0 + 10), false)
    assert.ok(s.apply(put('e', v(T0), { expiresAt: T0 + 100 }), T0))
    assert.deepEqual(s.counts(T0 + 200), { records: 0, tombstones: 2, prefixTombstones: 0, tags: 0 })
    assert.equal(s.purge(T0 + 999), 0)
    assert.equal(s.purge(T0 + 1_000), 2)
    assert.equal(s.size, 0)
    assert.equal(s.apply(tomb('z', v(T0)), T0 + 5_000), false, 'a tombstone past its grace is never applied')
    assert.deepEqual(s.summary({ depth: 0, index: 0 }, 0).count, 0)
  })

  test('prefix clears remove older records under the prefix, refuse older writes, keep newer ones; a wider newer clear absorbs narrower ones', () => {
    const s = new MemoryReplicaStore()
    s.apply(put('p:1', v(T0)), T0)
    s.apply(put('p:2', v(T0 + 10)), T0)
    s.apply(put('q:1', v(T0)), T0)
    assert.ok(s.clear('p:', v(T0 + 5), T0))
    assert.deepEqual(s.all().map((r) => r.key).sort(), ['p:2', 'q:1'])
    assert.equal(s.apply(put('p:3', v(T0 + 1)), T0), false)
    assert.equal(s.hidden(put('p:9', v(T0 + 2)) as never, T0), true)
    assert.equal(s.clear('p:', v(T0 + 4), T0), false, 'an older clear of the same prefix changes nothing')
    assert.ok(s.clear('', v(T0 + 20), T0))
    assert.deepEqual(s.prefixTombstones(T0).map((p) => p.prefix), [''])
    assert.equal(s.size, 0)
  })

  test('tag invalidations merge by max and hide older records tagged at or below them', () => {
    const s = new MemoryReplicaStore()
    const rec = put('k', v(T0), { tags: ['org:1:user:2'] }) as Extract<ReplicaRecord, { deleted?: false }>
    assert.ok(s.invalidate({ tag: 'org:1', mode: 'hard', hlc: v(T0 + 1).hlc }))
    assert.equal(s.invalidate({ tag: 'org:1', mode: 'hard', hlc: v(T0).hlc }), false)
    assert.equal(s.hidden(rec, T0), true)
    assert.equal(s.hidden({ ...rec, version: v(T0 + 2) }, T0), false)
    assert.equal(s.hidden({ ...rec, tags: ['org:10'] }, T0), false)
    assert.ok(tagCovers('org', 'org:1') && !tagCovers('org:1', 'org:10') && tagCovers('a', 'a'))
    assert.deepEqual(s.tagInvalidations(), [{ tag: 'org:1', mode: 'hard', hlc: v(T0 + 1).hlc }])
  })

  test('records(range) and summary(range) agree with the tree at every depth', () => {
    const s = new MemoryReplicaStore()
    for (let i = 0; i < 3_000; i++) s.apply(put(`key-${i}`, v(T0 + i)), T0)
    const check = (depth: number, index: number): void => {
      const recs = s.records({ depth, index })
      const { start, end } = rangeBounds({ depth, index })
      assert.ok(recs.every((r) => keyHash(r.key) >= start && keyHash(r.key) < end))
      assert.equal(s.summary({ depth, index }, 1).count, recs.length)
      if (depth > BUCKET_DEPTH) assert.deepEqual(s.summary({ depth, index }, 1), deepDigest(recs, 1))
    }
    check(0, 0)
    for (let d = 1; d <= 9; d++) {
      const pos = keyHash('key-17')
      check(d, rangeOf(pos, d))
      check(d, rangeOf(pos, d) ^ 1)
    }
    assert.equal(s.records({ depth: 0, index: 0 }).length, 3_000)
  })
})

describe('wire and options', () => {
  test('records round-trip through the wire tuple; malformed tuples and changes are refused', () => {
    const live = put('k', v(T0), { value: 'abc', expiresAt: T0 + 5, tags: ['t'] })
    assert.deepEqual(parseRecord(toWire(live)), live)
    assert.deepEqual(parseRecord(toWire(put('k', v(T0)))), put('k', v(T0)))
    assert.deepEqual(parseRecord(toWire(live, true)), tomb('k', v(T0)), 'shipped expired: a tombstone, no value')
    for (const bad of [null, [], ['k', -1, 'n'], ['k', 1.5, 'n'], ['k', 1, 'n', 2, 0], ['k', 1, 'n', 'v', -1], ['k', 1, 'n', 'v', 0, [1]], [1, 1, 'n']]) assert.equal(parseRecord(bad), undefined, JSON.stringify(bad))
    assert.ok(validChange({ t: 'c', p: 'a', h: 1, n: 'n1' }) && validChange({ t: 'i', g: 'x', m: 'soft', h: 3 }))
    for (const bad of [{ t: 'c', p: 1, h: 1, n: 'x' }, { t: 'i', g: 'x', m: 'medium', h: 1 }, { t: 'r', r: [] }, { t: 'z' }, 'x']) assert.equal(validChange(bad), false)
  })

  test('options are validated; malformed messages and messages before start change nothing', () => {
    const store = new MemoryReplicaStore()
    const base = { id: 'n1', store, topology: () => ({ clusterState: 'ACTIVE' as const, members: [{ id: 'n1', region: 'r', status: 'alive' as const }] }), random: new SeededRandom(1) }
    const bad = (e: unknown): boolean => isCacheError(e, 'ERR_INVALID_OPTIONS')
    assert.throws(() => new Replication({ ...base, id: 'bad id' }), bad)
    assert.throws(() => new Replication({ ...base, store: {} as never }), bad)
    assert.throws(() => new Replication({ ...base, topology: 1 as never }), bad)
    assert.throws(() => new Replication({ ...base, tickMs: 0 }), bad)
    assert.throws(() => new Replication({ ...base, leafRecords: 1.5 }), bad)
    const m = new Replication(base)
    assert.deepEqual(m.step({ type: 'message', from: 'n2', message: { kind: 'rep', changes: [{ t: 'r', r: ['k', 1, 'n2'] }] } }, T0), [], 'before start')
    const started = m.step({ type: 'start', persisted: new Map() }, T0)
    assert.deepEqual(started.map((a) => a.type === 'timer' && a.name).sort(), ['ae', 'tick'])
    for (const junk of [{ kind: 'rep', changes: 'x' }, { kind: 'rep', changes: [{ t: 'r', r: ['k', -3, 'n2'] }] }, { kind: 'tree', salt: 1, nodes: [[-1, 'x', 0]] }, { kind: 'sum', salt: 1, ranges: [[0, 'abc']], back: true }, { kind: 'recs', records: [[1]] }, { kind: 'meta', p: 'x', g: [] }, { kind: 'nope' }]) {
      m.step({ type: 'message', from: 'n2', message: junk as never }, T0 + 1)
    }
    assert.equal(store.size, 0)
    // A change too far ahead of local time (drift) is refused, counted, and not acked.
    const ahead = m.step({ type: 'message', from: 'n2', message: { kind: 'rep', changes: [{ t: 'r', r: ['k', v(T0 + 3_600_000).hlc, 'n2'] }], ack: { to: 'n2', v: 1 } } }, T0 + 2)
    assert.deepEqual(ahead, [])
    assert.equal(m.stats.driftRefusals, 1)
    assert.equal(store.size, 0)
    const req = m.step({ type: 'message', from: 'c', message: { kind: 'req', rid: 1, op: 'put', key: 'k', value: 'v', ack: 'sometimes' as never } }, T0 + 3)
    assert.equal(req.length, 1)
    assert.ok(req[0]!.type === 'send' && req[0]!.message.kind === 'res' && req[0]!.message.error?.code === 'ERR_BAD_REQUEST')
  })

  test('onApply sees every change this node applies, in order with a sequence, and a throwing listener changes nothing', () => {
    const store = new MemoryReplicaStore()
    const seen: Array<[Change['t'], number]> = []
    const topology = () => ({ clusterState: 'ACTIVE' as const, members: [{ id: 'n1', region: 'r', status: 'alive' as const }] })
    const m = new Replication({ id: 'n1', store, topology, random: new SeededRandom(1), onApply: (c, seq) => { seen.push([c.t, seq]); throw new Error('listener bug') } })
    m.step({ type: 'start', persisted: new Map() }, T0)
    m.step({ type: 'message', from: 'c', message: { kind: 'req', rid: 1, op: 'put', key: 'k', value: 'v' } }, T0 + 1)
    m.step({ type: 'message', from: 'n2', message: { kind: 'rep', changes: [{ t: 'r', r: ['j', v(T0).hlc, 'n2'] }, { t: 'c', p: 'x', h: v(T0).hlc, n: 'n2' }, { t: 'i', g: 'org', m: 'hard', h: v(T0).hlc }] } }, T0 + 2)
    m.step({ type: 'message', from: 'n2', message: { kind: 'rep', changes: [{ t: 'r', r: ['j', v(T0).hlc, 'n2'] }] } }, T0 + 3)
    assert.deepEqual(seen, [['r', 1], ['r', 2], ['c', 3], ['i', 4]], 'a duplicate changes nothing and is not published')
    assert.equal(store.size, 2)
  })

  test('topologyFromView flattens a Membership view', () => {
    const view = { state: { state: 'NO_MIGRATION' as const }, regions: [{ members: [{ id: 'a', region: 'r1', status: 'alive' as const }] }, { members: [{ id: 'b', region: 'r2', status: 'dead' as const }] }] }
    assert.deepEqual(topologyFromView(view), { clusterState: 'NO_MIGRATION', members: [{ id: 'a', region: 'r1', status: 'alive' }, { id: 'b', region: 'r2', status: 'dead' }] })
  })
})
