// Keyspace unit tests on a ManualClock: LWW by version, tombstones and their grace,
// prefix tombstones, scan, digest, tags, persistence (memory store and LMDB), store failures.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import type { Duration } from '../../src/core/duration.js'
import { ManualClock } from '../../src/core/manual-clock.js'
import { HybridLogicalClock, type Version, versionFromMs } from '../../src/core/hlc.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { lmdbStore } from '../../src/store/lmdb-store.js'
import type { Store } from '../../src/store/types.js'
import { DIGEST_BUCKETS, Keyspace, type KeyspaceEntry, keyHash, recordHash } from '../../src/server/keyspace.js'

const NOW = 1_800_000_000_000
const DAY = 24 * 3600_000
const v = (msAgo: number, nodeId = 'n1', logical = 0): Version => ({ hlc: versionFromMs(NOW - msAgo) + logical, nodeId })
const put = (key: string, value: string, version: Version, extra: Partial<KeyspaceEntry> = {}): KeyspaceEntry => ({ key, value: Buffer.from(value), expiresAt: 0, tags: [], version, ...extra })
const text = (e: KeyspaceEntry | undefined): string | undefined => (e === undefined ? undefined : Buffer.from(e.value).toString())
const code = (c: string) => (err: unknown) => (err as { code?: string }).code === c

async function open(store: Store, clock: ManualClock, extra: { tombstoneTtl?: Duration } = {}): Promise<Keyspace> {
  return Keyspace.open({ store, clock, hlc: new HybridLogicalClock(clock), nodeId: 'local', ...extra })
}

describe('Keyspace', () => {
  test('last writer wins by (hlc, nodeId): newer applies, older and equal do not, node id breaks hlc ties', async () => {
    const clock = new ManualClock(NOW)
    const ks = await open(memoryStore({ clock }), clock)
    assert.equal(await ks.applyIfNewer(put('k', 'one', v(10, 'n1'))), true)
    assert.equal(await ks.applyIfNewer(put('k', 'older', v(20, 'n9'))), false)
    assert.equal(await ks.applyIfNewer(put('k', 'same', v(10, 'n1'))), false, 'a duplicate changes nothing')
    assert.equal(await ks.applyIfNewer(put('k', 'tie', v(10, 'n2'))), true, 'same hlc, larger node id wins')
    assert.equal(await ks.applyIfNewer(put('k', 'tie-lower', v(10, 'n0'))), false)
    assert.equal(text(await ks.get('k')), 'tie')
    // Applied versions are observed: a local write afterwards is newer still.
    const local = await ks.delete('k')
    assert.ok(local.version.hlc > v(10).hlc)
    await ks.close()
  })

  test('a delete is a tombstone: an older write never resurrects the key within the grace; past it, the tombstone is forgotten', async () => {
    const clock = new ManualClock(NOW)
    const store = memoryStore({ clock })
    const ks = await open(store, clock, { tombstoneTtl: '1h' })
    assert.equal(await ks.applyIfNewer(put('k', 'v', v(30))), true)
    assert.equal(await ks.applyIfNewer({ key: 'k', version: v(20), deleted: true }), true)
    assert.equal(await ks.get('k'), undefined)
    assert.equal(await ks.applyIfNewer(put('k', 'late', v(25))), false, 'an older write arriving late is refused')
    assert.equal(await ks.applyIfNewer({ key: 'never', version: v(20), deleted: true }), true, 'a delete of an unknown key is kept too')
    assert.equal(await ks.applyIfNewer(put('never', 'late', v(25))), false)
    assert.equal(await ks.applyIfNewer(put('k', 'newer', v(10))), true)
    assert.equal(text(await ks.get('k')), 'newer')
    // The grace runs from the tombstone's own time (the same instant on every replica).
    clock.advance(3600_000)
    assert.equal(await ks.applyIfNewer(put('never', 'after grace', v(25))), true, 'past the grace an older write may apply')
    assert.equal(await ks.applyIfNewer({ key: 'gone', version: v(7200_000), deleted: true }), false, 'a tombstone already past its grace is not kept')
    await ks.close()
  })

  test('a record applied already expired is kept as a tombstone of its version', async () => {
    const clock = new ManualClock(NOW)
    const ks = await open(memoryStore({ clock }), clock)
    assert.equal(await ks.applyIfNewer(put('k', 'dead', v(10), { expiresAt: NOW - 1 })), true)
    assert.equal(await ks.get('k'), undefined)
    assert.deepEqual(await ks.getRecord('k'), { key: 'k', version: v(10), deleted: true })
    assert.equal(await ks.applyIfNewer(put('k', 'older', v(20))), false)
    await ks.close()
  })

  test('prefix clear: covers every key under the prefix with an older version, nothing else; persisted; expires after the grace', async () => {
    const clock = new ManualClock(NOW)
    const store = memoryStore({ clock })
    const ks = await open(store, clock, { tombstoneTtl: '1h' })
    for (const key of ['user:1', 'user:2', 'users', 'other']) await ks.applyIfNewer(put(key, key, v(50)))
    await ks.applyIfNewer(put('user:3', 'new', v(5)))
    assert.equal(await ks.clear('user:', v(10)), true)
    assert.equal(await ks.get('user:1'), undefined)
    assert.equal(await ks.get('user:2'), undefined)
    assert.equal(text(await ks.get('user:3')), 'new', 'a newer write under the prefix stays')
    assert.equal(text(await ks.get('users')), 'users')
    assert.equal(text(await ks.get('other')), 'other')
    assert.equal(await ks.applyIfNewer(put('user:9', 'late', v(20))), false, 'a late older write under the prefix is refused')
    assert.equal(await ks.applyIfNewer({ key: 'user:1', version: v(15), deleted: true }), false)
    assert.equal(await ks.applyIfNewer(put('user:9', 'new', v(9))), true)
    assert.equal(await ks.clear('user:', v(30)), false, 'an older clear of the same prefix changes nothing')
    assert.equal(await ks.clear('user:1', v(40)), false, 'a narrower older clear is covered')
    assert.deepEqual(ks.prefixTombstones(), [{ prefix: 'user:', version: v(10) }])
    await ks.close()
    const again = await open(store, clock, { tombstoneTtl: '1h' })
    assert.deepEqual(again.prefixTombstones(), [{ prefix: 'user:', version: v(10) }], 'prefix tombstones survive a restart')
    assert.equal(await again.applyIfNewer(put('user:8', 'late', v(20))), false)
    clock.advance(3600_000)
    assert.deepEqual(again.prefixTombstones(), [])
    assert.equal(await again.applyIfNewer(put('user:8', 'late', v(20))), true, 'past the grace the prefix tombstone is gone')
    await again.close()
    await store.close()
  })

  test('a wider newer clear folds the narrower prefix tombstones it covers', async () => {
    const clock = new ManualClock(NOW)
    const ks = await open(memoryStore({ clock }), clock)
    await ks.clear('a:b', v(30))
    await ks.clear('c', v(30))
    await ks.clear('a', v(20))
    assert.deepEqual(ks.prefixTombstones().map((p) => p.prefix).sort(), ['a', 'c'])
    await ks.close()
  })

  test('scan: bounded pages of records and tombstones, by prefix and hash range; a bad cursor is refused', async () => {
    const clock = new ManualClock(NOW)
    const ks = await open(memoryStore({ clock }), clock)
    for (let i = 0; i < 25; i++) await ks.applyIfNewer(put(`k${i}`, String(i), v(100)))
    for (let i = 0; i < 5; i++) await ks.applyIfNewer({ key: `k${i}`, version: v(50), deleted: true })
    await ks.applyIfNewer(put('other', 'x', v(100)))
    const walk = async (options: { prefix?: string; hashRange?: { start: number; end: number } }): Promise<string[]> => {
      const seen: string[] = []
      let cursor: string | undefined
      do {
        const page = await ks.scan({ ...options, cursor, limit: 4 })
        assert.ok(page.records.length <= 4)
        for (const r of page.records) seen.push(`${r.key}${r.deleted === true ? '(x)' : ''}`)
        cursor = page.cursor
      } while (cursor !== undefined)
      return seen.sort()
    }
    const all = await walk({ prefix: 'k' })
    assert.equal(all.length, 25)
    assert.equal(all.filter((k) => k.endsWith('(x)')).length, 5)
    const half = { start: 0, end: 2 ** 31 }
    const low = await walk({ prefix: 'k', hashRange: half })
    assert.deepEqual(low, all.filter((k) => keyHash(k.replace('(x)', '')) < 2 ** 31))
    await assert.rejects(ks.scan({ cursor: 'nonsense' }), code('ERR_INVALID_OPTIONS'))
    await assert.rejects(ks.scan({ limit: 0 }), code('ERR_INVALID_OPTIONS'))
    await assert.rejects(ks.scan({ hashRange: { start: 5, end: 1 } }), code('ERR_INVALID_OPTIONS'))
    await ks.close()
  })

  test('digest: XOR of recordHash(key, version) over a range; order-free, incremental, rebuilt at open', async () => {
    const clock = new ManualClock(NOW)
    const storeA = memoryStore({ clock })
    const a = await open(storeA, clock)
    const b = await open(memoryStore({ clock }), clock)
    const empty = a.digest()
    assert.equal(empty, '0000000000000000')
    await a.applyIfNewer(put('x', '1', v(30)))
    await a.applyIfNewer(put('y', '1', v(30)))
    await a.applyIfNewer(put('x', '2', v(20)))
    await a.applyIfNewer({ key: 'y', version: v(10), deleted: true })
    // b reaches the same state by another path.
    await b.applyIfNewer({ key: 'y', version: v(10), deleted: true })
    await b.applyIfNewer(put('x', '2', v(20)))
    await b.applyIfNewer(put('y', '1', v(30)))
    assert.equal(a.digest(), b.digest())
    const [x1, x2] = recordHash('x', v(20))
    const [y1, y2] = recordHash('y', v(10))
    const hex = (n: number): string => (n >>> 0).toString(16).padStart(8, '0')
    assert.equal(a.digest(), hex(x1 ^ y1) + hex(x2 ^ y2))
    // A bucket-aligned sub-range holds exactly its keys.
    const span = 2 ** 32 / DIGEST_BUCKETS
    const bucket = Math.floor(keyHash('x') / span)
    const [only1, only2] = Math.floor(keyHash('y') / span) === bucket ? [x1 ^ y1, x2 ^ y2] : [x1, x2]
    assert.equal(a.digest({ start: bucket * span, end: (bucket + 1) * span }), hex(only1) + hex(only2))
    assert.throws(() => a.digest({ start: 1, end: span }), code('ERR_INVALID_OPTIONS'))
    await a.clear('', v(5))
    assert.equal(a.digest(), empty, 'a clear removes what it covers from the digest')
    await a.applyIfNewer(put('z', '1', v(1)))
    const before = a.digest()
    await a.close()
    const reopened = await open(storeA, clock)
    assert.equal(reopened.digest(), before, 'rebuilt from the store at open')
    await reopened.close()
    await b.close()
  })

  test('tags: an invalidation hides older records (hard and soft), not newer ones; versions merge by max and survive a restart', async () => {
    const clock = new ManualClock(NOW)
    const store = memoryStore({ clock })
    const ks = await open(store, clock)
    await ks.applyIfNewer(put('u1', 'a', v(50), { tags: ['org:1:user:1'] }))
    await ks.applyIfNewer(put('u2', 'b', v(50), { tags: ['org:2'] }))
    await ks.applyIfNewer(put('u3', 'c', v(5), { tags: ['org:1'] }))
    await ks.invalidate(['org:1'], 'hard', v(20).hlc)
    assert.equal(await ks.get('u1'), undefined, 'below the invalidated tag, older')
    assert.equal(text(await ks.get('u3')), 'c', 'newer than the invalidation')
    assert.equal(text(await ks.get('u2')), 'b')
    await ks.invalidate(['org:2'], 'soft')
    assert.equal(await ks.get('u2'), undefined, 'the node serves no soft-invalidated entry')
    await ks.invalidate(['org:1'], 'hard', v(40).hlc)
    await ks.close()
    const again = await open(store, clock)
    assert.equal(await again.get('u1'), undefined)
    assert.equal(await again.get('u2'), undefined)
    assert.equal(text(await again.get('u3')), 'c', 'the older invalidation did not lower the persisted max')
    await again.applyIfNewer(put('u4', 'd', v(30), { tags: ['org:1:x'] }))
    assert.equal(await again.get('u4'), undefined, 'older than the max-merged v(20), newer than the later-arriving v(40): hidden')
    await assert.rejects(again.invalidate(['bad tag!'], 'hard'), code('ERR_INVALID_TAG'))
    await again.close()
  })

  test('LMDB: a restarted keyspace still refuses older writes to deleted keys and cleared prefixes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stratacache-keyspace-'))
    try {
      const clock = new ManualClock(NOW)
      const first = lmdbStore({ path: dir, clock })
      const ks = await open(first, clock)
      await ks.applyIfNewer(put('k', 'v', v(30)))
      await ks.applyIfNewer(put('p:1', 'v', v(30)))
      await ks.delete('k')
      await ks.clear('p:')
      assert.equal(first.count('node:'), 0, 'tombstones are not counted as entries')
      await ks.close()
      await first.close()
      const second = lmdbStore({ path: dir, clock })
      const again = await open(second, clock)
      assert.equal(await again.applyIfNewer(put('k', 'late', v(20))), false)
      assert.equal(await again.applyIfNewer(put('p:2', 'late', v(20))), false)
      assert.equal(await again.get('k'), undefined)
      await again.close()
      await second.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('a store write that fails changes nothing and throws a typed error; a remote version too far ahead is refused', async () => {
    const clock = new ManualClock(NOW)
    const inner = memoryStore({ clock })
    let broken = false
    const store: Store = { name: 'flaky', get: (k) => inner.get(k), getMany: (k) => inner.getMany(k), set: (k, val, t) => (broken ? Promise.reject(new Error('disk gone')) : inner.set(k, val, t)), setMany: (e) => inner.setMany(e), delete: (k) => inner.delete(k), deleteMany: (k) => inner.deleteMany(k), touch: (k, t) => inner.touch(k, t), clear: (p) => inner.clear(p), close: () => inner.close(), scan: (o) => inner.scan!(o) }
    const ks = await open(store, clock)
    await ks.applyIfNewer(put('k', 'old', v(30)))
    const before = ks.digest()
    broken = true
    await assert.rejects(ks.applyIfNewer(put('k', 'new', v(20))), code('ERR_STORE_UNAVAILABLE'))
    assert.equal(text(await ks.get('k')), 'old')
    assert.equal(ks.digest(), before)
    broken = false
    await assert.rejects(ks.applyIfNewer(put('k', 'future', { hlc: versionFromMs(NOW + 3600_000), nodeId: 'n1' })), code('ERR_CLOCK_DRIFT'))
    assert.equal(text(await ks.get('k')), 'old')
    await assert.rejects(ks.applyIfNewer(put('k', 'x', { hlc: -1, nodeId: 'n1' })), code('ERR_INVALID_OPTIONS'))
    await ks.close()
  })

  test('a store call that hangs past storeTimeoutMs rejects with ERR_STORE_TIMEOUT naming the operation; without the option nothing times out', async () => {
    const clock = new ManualClock(NOW)
    const inner = memoryStore({ clock })
    let hang = false
    const store: Store = { name: 'slow', get: (k) => (hang ? new Promise(() => {}) : inner.get(k)), getMany: (k) => inner.getMany(k), set: (k, val, t) => inner.set(k, val, t), setMany: (e) => inner.setMany(e), delete: (k) => inner.delete(k), deleteMany: (k) => inner.deleteMany(k), touch: (k, t) => inner.touch(k, t), clear: (p) => inner.clear(p), close: () => inner.close(), scan: (o) => inner.scan!(o) }
    const ks = await Keyspace.open({ store, clock, hlc: new HybridLogicalClock(clock), nodeId: 'local', storeTimeoutMs: 250 })
    hang = true
    const got: { outcome?: unknown } = {}
    const seen = (): unknown => got.outcome
    void ks.get('absent').then((value) => (got.outcome = { value }), (err: unknown) => (got.outcome = err))
    clock.advance(249)
    await new Promise((resolve) => setImmediate(resolve))
    assert.ok(got.outcome === undefined, 'not before the timeout')
    clock.advance(1)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal((seen() as { code?: string }).code, 'ERR_STORE_TIMEOUT')
    assert.equal((seen() as { operation?: string }).operation, 'get')
    assert.equal((seen() as { timeoutMs?: number }).timeoutMs, 250)
    hang = false
    assert.equal(await ks.get('absent'), undefined, 'a call that answers in time is served')
    await ks.close()
  })

  test('a store call past storeTimeoutMs fails with ERR_STORE_TIMEOUT at its own deadline; calls in time answer; an idle keyspace holds no timer', async () => {
    const clock = new ManualClock(NOW)
    const inner = memoryStore({ clock })
    // Reads hang until released (or forever): the keyspace's timeout decides.
    const held: Array<() => void> = []
    let hang = false
    const slow = <T>(p: () => Promise<T>): Promise<T> => (hang ? new Promise<T>((resolve) => held.push(() => void p().then(resolve))) : p())
    const store: Store = { name: 'slow', get: (k) => slow(() => inner.get(k)), getMany: (k) => slow(() => inner.getMany(k)), set: (k, val, t) => inner.set(k, val, t), setMany: (e) => inner.setMany(e), delete: (k) => inner.delete(k), deleteMany: (k) => inner.deleteMany(k), touch: (k, t) => inner.touch(k, t), clear: (p) => inner.clear(p), close: () => inner.close(), scan: (o) => inner.scan!(o) }
    const ks = await Keyspace.open({ store, clock, hlc: new HybridLogicalClock(clock), nodeId: 'local', storeTimeoutMs: 1000 })
    const idleTimers = clock.pendingTimers
    const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
    const outcome = (p: Promise<unknown>): { state: string; code?: string } => {
      const o: { state: string; code?: string } = { state: 'pending' }
      p.then(() => (o.state = 'resolved'), (err: unknown) => Object.assign(o, { state: 'rejected', code: (err as { code?: string }).code }))
      return o
    }
    hang = true
    const a = outcome(ks.get('a')) // t = 0: deadline 1000
    await flush()
    clock.advance(400)
    const b = outcome(ks.get('b')) // t = 400: deadline 1400
    await flush()
    clock.advance(100)
    const mark = held.length
    const c = outcome(ks.get('c')) // t = 500: answered at 600
    await flush()
    clock.advance(100)
    for (const release of held.splice(mark)) release()
    await flush()
    assert.equal(c.state, 'resolved', 'a call answered in time resolves')
    clock.advance(399) // t = 999
    await flush()
    assert.deepEqual([a.state, b.state], ['pending', 'pending'], 'nothing fails before its deadline')
    clock.advance(1) // t = 1000
    await flush()
    assert.deepEqual(a, { state: 'rejected', code: 'ERR_STORE_TIMEOUT' })
    assert.equal(b.state, 'pending', 'a later call keeps its own deadline')
    clock.advance(399) // t = 1399
    await flush()
    assert.equal(b.state, 'pending')
    clock.advance(1) // t = 1400
    await flush()
    assert.deepEqual(b, { state: 'rejected', code: 'ERR_STORE_TIMEOUT' })
    // A late answer changes nothing; with no call under way no timer is left.
    for (const release of held.splice(0)) release()
    await flush()
    assert.equal(clock.pendingTimers, idleTimers)
    hang = false
    assert.equal(await ks.get('d'), undefined)
    assert.equal(clock.pendingTimers, idleTimers)
    await ks.close()
  })

  test('records in another format (the facade-based engine before the keyspace) are dropped at open, not served or counted', async () => {
    const clock = new ManualClock(NOW)
    const store = memoryStore({ clock })
    await store.set('node:old', Uint8Array.of(0xc1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21), Infinity)
    await store.set('node#version', Buffer.from('12345'), Infinity)
    const ks = await open(store, clock)
    assert.equal(await store.get('node:old'), undefined)
    assert.notEqual(await store.get('node#version'), undefined, 'keys outside the keyspace are not touched')
    assert.equal(await ks.get('old'), undefined)
    await ks.close()
  })

  test('a clear that fails midway still hides what it covers, and the next open finishes it', async () => {
    const clock = new ManualClock(NOW)
    const inner = memoryStore({ clock })
    let broken = false
    const store: Store = { name: 'flaky', get: (k) => inner.get(k), getMany: (k) => inner.getMany(k), set: (k, val, t) => inner.set(k, val, t), setMany: (e) => inner.setMany(e), delete: (k) => inner.delete(k), deleteMany: (k) => (broken ? Promise.reject(new Error('disk gone')) : inner.deleteMany(k)), touch: (k, t) => inner.touch(k, t), clear: (p) => inner.clear(p), close: () => inner.close(), scan: (o) => inner.scan!(o) }
    const ks = await open(store, clock)
    await ks.applyIfNewer(put('p:1', 'old', v(30)))
    await ks.applyIfNewer(put('q', 'other', v(30)))
    broken = true
    await assert.rejects(ks.clear('p:', v(10)), code('ERR_STORE_UNAVAILABLE'))
    broken = false
    assert.notEqual(await inner.get('node:p:1'), undefined, 'the record is still in the store')
    assert.equal(await ks.get('p:1'), undefined, 'but the prefix tombstone hides it')
    assert.equal(text(await ks.get('q')), 'other')
    await ks.close()
    const again = await open(store, clock)
    assert.equal(await inner.get('node:p:1'), undefined, 'open removed the leftover')
    assert.equal(await again.get('p:1'), undefined)
    await again.close()
  })

  test('the default grace is 24 hours', async () => {
    const clock = new ManualClock(NOW)
    const ks = await open(memoryStore({ clock }), clock)
    await ks.applyIfNewer({ key: 'k', version: v(0), deleted: true })
    clock.advance(DAY - 1)
    assert.equal(await ks.applyIfNewer(put('k', 'late', v(1))), false)
    clock.advance(1)
    assert.equal(await ks.applyIfNewer(put('k', 'late', v(1))), true)
    await ks.close()
  })

  test('a write to a key the store never held does not read the store; keys stored before open, or written and evicted from L1, are read', async () => {
    const clock = new ManualClock(NOW)
    const inner = memoryStore({ clock })
    const reads: string[] = []
    const counting = new Proxy(inner, {
      get(target, prop) {
        if (prop === 'get') return (k: string) => (reads.push(k), target.get(k))
        const value = Reflect.get(target, prop) as unknown
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
      },
    }) as Store
    const first = await open(counting, clock)
    assert.equal(await first.applyIfNewer(put('a', 'stored', v(10))), true)
    assert.equal(await first.applyIfNewer({ key: 'b', version: v(10), deleted: true }), true)
    await first.close()
    // L1 holds nothing past 1 byte: every state comes from the store or the filter.
    const ks = await Keyspace.open({ store: counting, clock, hlc: new HybridLogicalClock(clock), nodeId: 'local', memoryBytes: 1 })
    reads.length = 0
    const seen = new Map<string, string | undefined>()
    const write = (key: string, value: string) =>
      ks.update(key, (current, version) => {
        seen.set(key, text(current))
        return { key, value: Buffer.from(value), expiresAt: 0, tags: [], version }
      })
    await write('fresh', 'one')
    assert.equal(reads.length, 0, `a key never stored is not read (read ${reads.join(', ')})`)
    assert.equal(seen.get('fresh'), undefined)
    await write('a', 'two')
    assert.equal(seen.get('a'), 'stored', 'a key stored before open is read')
    assert.equal(await ks.applyIfNewer(put('b', 'late', v(20))), false, 'a tombstone stored before open still refuses older writes')
    await write('fresh', 'three')
    assert.equal(seen.get('fresh'), 'one', 'a key written since open is read again')
    assert.ok(reads.includes('node:fresh') && reads.includes('node:a'))
    await ks.close()
  })
})
