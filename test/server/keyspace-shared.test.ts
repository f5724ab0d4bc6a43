// Several keyspaces (nodes) on one shared store with conditional writes (decision 0263): each
// group commit is a compare-and-swap on the record's and tombstone's revisions, so no update
// is lost between nodes and If-Match is atomic across them; no node serves from its
// in-process tier (a write through A is read through B at once); the store's change stream
// publishes other nodes' writes, clears and tag invalidations on `watch` (a lost stream: a
// clear of '' at the loss and after the resync); tag versions are read with a tagged record. In-memory shared store, ManualClock.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ManualClock } from '../../src/core/manual-clock.js'
import { HybridLogicalClock } from '../../src/core/hlc.js'
import { PreconditionFailedError } from '../../src/core/errors.js'
import { Keyspace, type KeyspaceChange, type KeyspaceEntry, type KeyspaceRecord } from '../../src/server/keyspace.js'
import { sharedStore, type SharedStore } from '../support/shared-store.js'

const NOW = 1_800_000_000_000
const text = (e: KeyspaceRecord | undefined): string | undefined => (e === undefined || e.deleted === true ? undefined : Buffer.from(e.value).toString())

function open(store: SharedStore, clock: ManualClock, nodeId: string): Promise<Keyspace> {
  return Keyspace.open({ store, clock, hlc: new HybridLogicalClock(clock), nodeId })
}

/** A read-modify-write increment of `key` (as If-Match does it: the check and the write are atomic). */
function increment(ks: Keyspace, key: string): Promise<KeyspaceRecord | undefined> {
  return ks.update(key, (current, version): KeyspaceEntry => ({ key, value: Buffer.from(String(Number(text(current) ?? '0') + 1)), expiresAt: 0, tags: [], version }))
}

describe('Keyspace on a shared store (several nodes)', () => {
  test('concurrent increments through three nodes lose nothing (compare-and-swap, retried on conflict)', async () => {
    const clock = new ManualClock(NOW)
    const store = sharedStore({ autoDeliver: true })
    const nodes = await Promise.all(['a', 'b', 'c'].map((id) => open(store, clock, id)))
    const ops: Promise<unknown>[] = []
    for (let i = 0; i < 90; i++) ops.push(increment(nodes[i % 3]!, 'counter'))
    await Promise.all(ops)
    for (const ks of nodes) assert.equal(text(await ks.get('counter')), '90', 'every node reads every increment')
    assert.ok(store.conflicts > 0, 'the nodes did race (and retried)')
    await Promise.all(nodes.map((ks) => ks.close()))
  })

  test('If-Match is atomic across nodes: of two writes checking one version, exactly one applies', async () => {
    const clock = new ManualClock(NOW)
    const store = sharedStore({ autoDeliver: true })
    const [a, b] = await Promise.all([open(store, clock, 'a'), open(store, clock, 'b')])
    const first = (await increment(a, 'k'))!
    const ifMatch = (ks: Keyspace, value: string): Promise<unknown> =>
      ks.update('k', (current, version) => {
        if (current?.version.hlc !== first.version.hlc) throw new PreconditionFailedError('version moved')
        return { key: 'k', value: Buffer.from(value), expiresAt: 0, tags: [], version }
      })
    const outcomes = await Promise.allSettled([ifMatch(a, 'from-a'), ifMatch(b, 'from-b')])
    assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1, JSON.stringify(outcomes.map((o) => o.status)))
    const winner = outcomes[0]!.status === 'fulfilled' ? 'from-a' : 'from-b'
    assert.equal(text(await a.get('k')), winner)
    assert.equal(text(await b.get('k')), winner)
    await a.close()
    await b.close()
  })

  test("a write through A is read through B at once, even before B's change stream delivers it; versions grow across nodes", async () => {
    const clock = new ManualClock(NOW)
    const store = sharedStore()
    const [a, b] = await Promise.all([open(store, clock, 'a'), open(store, clock, 'b')])
    const v1 = (await a.update('k', (_c, version) => ({ key: 'k', value: Buffer.from('one'), expiresAt: 0, tags: [], version })))!
    assert.equal(text(await b.get('k')), 'one')
    assert.equal(b.getHeld('k'), undefined, 'no in-process tier on a shared store')
    const v2 = (await a.update('k', (_c, version) => ({ key: 'k', value: Buffer.from('two'), expiresAt: 0, tags: [], version })))!
    assert.equal(text(await b.get('k')), 'two', 'nothing delivered yet: B reads the store, not a stale copy')
    const v3 = (await b.update('k', (_c, version) => ({ key: 'k', value: Buffer.from('three'), expiresAt: 0, tags: [], version })))!
    assert.ok(v1.version.hlc < v2.version.hlc && v2.version.hlc < v3.version.hlc, 'B draws above what A wrote')
    await b.delete('k')
    assert.equal(await a.get('k'), undefined)
    await a.close()
    await b.close()
  })

  test("B's watch publishes A's writes (once), not its own echo; tags and clears apply at once; a lost stream tells the listeners twice", async () => {
    const clock = new ManualClock(NOW)
    const store = sharedStore()
    const [a, b] = await Promise.all([open(store, clock, 'a'), open(store, clock, 'b')])
    store.deliver()
    const seen: KeyspaceChange[] = []
    b.watch((c) => seen.push(c))
    await a.update('x', (_c, version) => ({ key: 'x', value: Buffer.from('1'), expiresAt: 0, tags: ['t:u'], version }))
    assert.deepEqual(seen, [], 'not before the stream delivers it')
    store.deliver()
    assert.deepEqual(seen, [{ kind: 'key', key: 'x' }])
    seen.length = 0
    await b.update('y', (_c, version) => ({ key: 'y', value: Buffer.from('2'), expiresAt: 0, tags: [], version }))
    store.deliver()
    assert.deepEqual(seen, [{ kind: 'key', key: 'y' }], "B's own write is published once (at commit), its echo is skipped")
    seen.length = 0
    assert.equal(text(await b.get('x')), '1')
    await a.invalidate(['t'], 'hard')
    assert.equal(await b.get('x'), undefined, "A's invalidation hides the tagged record on B at once (its tag versions are read with it)")
    store.deliver()
    assert.deepEqual(seen, [{ kind: 'tags', tags: ['t'] }])
    seen.length = 0
    await a.update('p/1', (_c, version) => ({ key: 'p/1', value: Buffer.from('3'), expiresAt: 0, tags: [], version }))
    store.deliver()
    seen.length = 0
    await a.clear('p/')
    store.deliver()
    assert.ok((seen as KeyspaceChange[]).some((c) => c.kind === 'clear' && c.prefix === 'p/'), JSON.stringify(seen))
    assert.equal(await b.get('p/1'), undefined)
    // A lost stream: B's listeners are told to drop everything, at the loss and once resynced;
    // reads still go to the store (tag versions included), so they are right meanwhile.
    await a.update('z', (_c, version) => ({ key: 'z', value: Buffer.from('4'), expiresAt: 0, tags: ['t2:v'], version }))
    seen.length = 0
    store.lose()
    assert.deepEqual(seen, [{ kind: 'clear', prefix: '' }])
    assert.equal(text(await b.get('z')), '4')
    await a.invalidate(['t2'], 'soft')
    assert.equal(await b.get('z'), undefined, 'an invalidation the stream never delivers is honoured (read with the record)')
    store.sync()
    for (let i = 0; i < 200 && seen.length < 2; i++) await new Promise((r) => setImmediate(r))
    assert.deepEqual(seen, [{ kind: 'clear', prefix: '' }, { kind: 'clear', prefix: '' }], 'told again once resynced')
    await a.close()
    await b.close()
  })

  test('a clear on A never removes a newer write B made meanwhile', async () => {
    const clock = new ManualClock(NOW)
    const store = sharedStore({ autoDeliver: true })
    const [a, b] = await Promise.all([open(store, clock, 'a'), open(store, clock, 'b')])
    for (let i = 0; i < 20; i++) await a.update(`c/${i}`, (_c, version) => ({ key: `c/${i}`, value: Buffer.from('old'), expiresAt: 0, tags: [], version }))
    clock.advance(5)
    const clearing = a.clear('c/')
    clock.advance(5)
    const writes = Array.from({ length: 20 }, (_, i) => b.update(`c/${i}`, (_c, version) => ({ key: `c/${i}`, value: Buffer.from('new'), expiresAt: 0, tags: [], version })))
    await Promise.all([clearing, ...writes])
    for (let i = 0; i < 20; i++) {
      const got = text(await b.get(`c/${i}`))
      assert.ok(got === undefined || got === 'new', `c/${i}: ${String(got)}`)
      assert.equal(text(await a.get(`c/${i}`)), got, 'both nodes agree')
    }
    await a.close()
    await b.close()
  })
})
