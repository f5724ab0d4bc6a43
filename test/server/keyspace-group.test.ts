// Group commit of the keyspace (decision 0241): writes to one key that queue behind a commit
// share the next one. Every acknowledged write is durable — it, or a newer version of its
// key, is in the store when its promise resolves — and last-writer-wins by version is
// unchanged. Memory store through a call-counting proxy, and LMDB reopened.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { ManualClock } from '../../src/core/manual-clock.js'
import { compareVersions, HybridLogicalClock, type Version, versionFromMs } from '../../src/core/hlc.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { lmdbStore } from '../../src/store/lmdb-store.js'
import type { Store } from '../../src/store/types.js'
import { Keyspace, type KeyspaceEntry, type KeyspaceRecord } from '../../src/server/keyspace.js'
import { gated } from '../support/gated-store.js'

const NOW = 1_800_000_000_000
const v = (msAgo: number, nodeId = 'n1'): Version => ({ hlc: versionFromMs(NOW - msAgo), nodeId })
const text = (e: KeyspaceRecord | undefined): string | undefined => (e === undefined || e.deleted === true ? undefined : Buffer.from(e.value).toString())
const entry = (key: string, value: string, version: Version): KeyspaceEntry => ({ key, value: Buffer.from(value), expiresAt: 0, tags: [], version })

function open(store: Store, clock: ManualClock): Promise<Keyspace> {
  return Keyspace.open({ store, clock, hlc: new HybridLogicalClock(clock), nodeId: 'local' })
}

/** `n` local writes to `key`, all started before any settles; their results in call order. */
function burst(ks: Keyspace, key: string, n: number): Promise<KeyspaceRecord[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => ks.update(key, (_current, version) => entry(key, `w${i}`, version)) as Promise<KeyspaceRecord>))
}

describe('Keyspace group commit', () => {
  test('concurrent writes to one key: all acknowledged, versions increase in call order, the highest is served and stored, in far fewer store writes', async () => {
    const clock = new ManualClock(NOW)
    const calls: string[] = []
    const inner = memoryStore({ clock })
    const ks = await open(gated(inner, () => false, calls), clock)
    calls.length = 0
    const written = await burst(ks, 'hot', 50)
    assert.equal(written.length, 50)
    for (let i = 1; i < written.length; i++) assert.ok(compareVersions(written[i - 1]!.version, written[i]!.version) < 0, `version ${i} above version ${i - 1}`)
    const last = written[written.length - 1]!
    assert.equal(text(await ks.get('hot')), 'w49')
    const sets = calls.filter((c) => c === 'set').length
    assert.ok(sets >= 1 && sets <= 3, `50 queued writes of one key took ${sets} store writes; group commit makes it a few`)
    await ks.close()
    // What the store holds is the highest version: a reopened keyspace serves it.
    const again = await open(inner, clock)
    const stored = await again.getRecord('hot')
    assert.deepEqual(stored?.version, last.version)
    assert.equal(text(stored), 'w49')
    await again.close()
  })

  test('replicated writes in one group: LWW by version whatever the arrival order; older ones are refused', async () => {
    const clock = new ManualClock(NOW)
    const ks = await open(memoryStore({ clock }), clock)
    await ks.applyIfNewer(entry('k', 'base', v(100)))
    const order = [v(50), v(80), v(10, 'n1'), v(10, 'n0'), v(200), v(30)]
    const applied = await Promise.all(order.map((ver, i) => ks.applyIfNewer(entry('k', `r${i}`, ver))))
    assert.deepEqual(applied, [true, false, true, false, false, false])
    assert.equal(text(await ks.get('k')), 'r2')
    // A delete and a rewrite in one group: the newest state wins, the tombstone is not left newer.
    const [del, put] = await Promise.all([ks.applyIfNewer({ key: 'k', version: v(5), deleted: true }), ks.applyIfNewer(entry('k', 'after', v(4)))])
    assert.deepEqual([del, put], [true, true])
    assert.equal(text(await ks.get('k')), 'after')
    await ks.close()
  })

  test('a write whose check throws fails alone; the others of its group are applied', async () => {
    const clock = new ManualClock(NOW)
    const ks = await open(memoryStore({ clock }), clock)
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) =>
        ks.update('k', (_current, version) => {
          if (i === 2) throw new Error('precondition')
          return entry('k', `w${i}`, version)
        }),
      ),
    )
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'])
    assert.equal(text(await ks.get('k')), 'w4')
    // `current` seen by a write is the one before it in its group.
    const seen: (string | undefined)[] = []
    await Promise.all(
      ['a', 'b', 'c'].map((value) =>
        ks.update('k', (current, version) => {
          seen.push(text(current))
          return entry('k', value, version)
        }),
      ),
    )
    assert.deepEqual(seen, ['w4', 'a', 'b'])
    await ks.close()
  })

  test('a store write that fails fails every write of its group and changes nothing', async () => {
    const clock = new ManualClock(NOW)
    let down = false
    const ks = await open(gated(memoryStore({ clock }), () => down, []), clock)
    await ks.applyIfNewer(entry('k', 'kept', v(100)))
    down = true
    const results = await Promise.allSettled(Array.from({ length: 4 }, (_, i) => ks.applyIfNewer(entry('k', `x${i}`, v(50 - i)))))
    down = false
    assert.ok(results.every((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'ERR_STORE_UNAVAILABLE'), JSON.stringify(results.map((r) => r.status)))
    assert.equal(text(await ks.get('k')), 'kept')
    await ks.close()
  })

  test('LMDB: 200 concurrent writes to one key and 200 to distinct keys, all acknowledged, all there after a reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stratacache-group-'))
    try {
      const clock = new ManualClock(NOW)
      const store = lmdbStore({ path: dir, clock })
      const ks = await open(store, clock)
      const [hot, distinct] = await Promise.all([burst(ks, 'hot', 200), Promise.all(Array.from({ length: 200 }, (_, i) => ks.update(`d${i}`, (_c, version) => entry(`d${i}`, `v${i}`, version))))])
      const highest = hot.reduce((a, b) => (compareVersions(a.version, b.version) >= 0 ? a : b))
      await ks.close()
      await store.close()
      const reopened = lmdbStore({ path: dir, clock })
      const again = await open(reopened, clock)
      assert.deepEqual((await again.getRecord('hot'))?.version, highest.version)
      for (let i = 0; i < 200; i++) assert.deepEqual((await again.getRecord(`d${i}`))?.version, distinct[i]!.version)
      await again.close()
      await reopened.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
