// PrefixTombstones (cluster/replication/prefix-tombstones.ts) answers as the scan over every
// kept tombstone that it replaced, on seeded random sequences of sets, deletes, grace drops
// and lookups; the replica store's tag check, now a lookup per tag ancestor, answers as
// the scan over every invalidation held; and its meta digest, kept as its meta changes,
// equals the one hashed from every prefix tombstone and invalidation held.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { compareVersions, msOfVersion, type Version } from '../../src/core/hlc.js'
import { SeededRandom } from '../../src/core/random.js'
import { PrefixTombstones } from '../../src/cluster/replication/prefix-tombstones.js'
import { MemoryReplicaStore, metaDigest, tagCovers } from '../../src/cluster/replication/index.js'

const SPAN = 2048 // 2^LOGICAL_BITS: a version's hlc is ms * SPAN + logical
const NOW = 1_800_000_000_000

/** The replaced code: a Map scanned whole. */
class Model {
  readonly map = new Map<string, Version>()
  covers(key: string, version: Version, keptAfterMs: number): boolean {
    for (const [p, pv] of this.map) if (key.startsWith(p) && compareVersions(pv, version) >= 0 && msOfVersion(pv.hlc) > keptAfterMs) return true
    return false
  }
  under(prefix: string): string[] {
    return [...this.map.keys()].filter((p) => p !== prefix && p.startsWith(prefix))
  }
  dropUntil(cutoffMs: number): void {
    for (const [p, v] of this.map) if (msOfVersion(v.hlc) <= cutoffMs) this.map.delete(p)
  }
}

/** Strings of 0..4 characters over a small alphabet, so that prefixes of each other are common. */
function word(r: SeededRandom, max = 4): string {
  const n = Math.floor(r.next() * (max + 1))
  let s = ''
  for (let i = 0; i < n; i++) s += 'ab:'[Math.floor(r.next() * 3)]
  return s
}

function version(r: SeededRandom): Version {
  return { hlc: (NOW + Math.floor(r.next() * 100)) * SPAN + Math.floor(r.next() * 3), nodeId: r.next() < 0.5 ? 'n1' : 'n2' }
}

describe('PrefixTombstones', () => {
  test('answers as a scan of every tombstone, over random sequences (seeded; a failing seed replays)', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const r = new SeededRandom(seed)
      const pt = new PrefixTombstones()
      const model = new Model()
      for (let step = 0; step < 400; step++) {
        const at = `seed ${seed}, step ${step}`
        const op = r.next()
        if (op < 0.35) {
          const p = word(r)
          const v = version(r)
          pt.set(p, v)
          model.map.set(p, v)
        } else if (op < 0.5) {
          const p = word(r)
          assert.equal(pt.delete(p), model.map.delete(p), at)
        } else if (op < 0.53) {
          const cutoff = NOW + Math.floor(r.next() * 60) - 5
          pt.dropUntil(cutoff)
          model.dropUntil(cutoff)
        } else if (op < 0.85) {
          const key = word(r, 6)
          const v = version(r)
          const keptAfter = r.next() < 0.3 ? -Infinity : NOW + Math.floor(r.next() * 100) - 10
          assert.equal(pt.covers(key, v, keptAfter), model.covers(key, v, keptAfter), `${at}: covers(${JSON.stringify(key)})`)
        } else {
          const p = word(r, 3)
          assert.deepEqual(
            pt.under(p).map(([q]) => q).sort(),
            model.under(p).sort(),
            `${at}: under(${JSON.stringify(p)})`,
          )
        }
        assert.equal(pt.size, model.map.size, at)
        assert.deepEqual([...pt], [...model.map], `${at}: same entries in the same order`)
      }
    }
  })

  test("the '' prefix covers every key, the key itself is its own prefix, longer prefixes cover nothing shorter", () => {
    const pt = new PrefixTombstones()
    const v = { hlc: NOW * SPAN, nodeId: 'n1' }
    const older = { hlc: NOW * SPAN - 1, nodeId: 'n1' }
    pt.set('user:1:', v)
    assert.equal(pt.covers('user:1:x', older, -Infinity), true)
    assert.equal(pt.covers('user:1:', older, -Infinity), true, 'the key equal to the prefix')
    assert.equal(pt.covers('user:1', older, -Infinity), false, 'shorter than the prefix')
    assert.equal(pt.covers('user:2:x', older, -Infinity), false)
    assert.equal(pt.covers('user:1:x', { hlc: NOW * SPAN + 1, nodeId: 'n1' }, -Infinity), false, 'a newer write')
    assert.equal(pt.covers('user:1:x', older, NOW), false, 'past its grace: covers nothing')
    assert.equal(pt.covers('user:1:x', older, NOW - 1), true)
    pt.set('', v)
    assert.equal(pt.covers('anything', older, -Infinity), true)
    assert.equal(pt.covers('', older, -Infinity), true)
    assert.equal(pt.delete(''), true)
    assert.equal(pt.delete(''), false)
    assert.equal(pt.covers('anything', older, -Infinity), false)
    pt.dropUntil(NOW)
    assert.equal(pt.size, 0)
    assert.equal(pt.covers('user:1:x', older, -Infinity), false)
  })
})

describe('MemoryReplicaStore.hidden with many tag invalidations', () => {
  test('hides a record exactly when a newer invalidation names one of its tags or an ancestor (seeded)', () => {
    const segment = (r: SeededRandom): string => ['a', 'b', '', 'ab'][Math.floor(r.next() * 4)]!
    const tag = (r: SeededRandom): string => Array.from({ length: 1 + Math.floor(r.next() * 3) }, () => segment(r)).join(':')
    for (let seed = 1; seed <= 20; seed++) {
      const r = new SeededRandom(seed)
      const store = new MemoryReplicaStore()
      const invalidations: Array<{ mode: 'hard' | 'soft'; tag: string; hlc: number }> = []
      for (let i = 0; i < 30; i++) {
        const inv = { mode: r.next() < 0.5 ? ('hard' as const) : ('soft' as const), tag: tag(r), hlc: (NOW + Math.floor(r.next() * 50)) * SPAN }
        store.invalidate(inv)
        invalidations.push(inv)
      }
      // What the store keeps per (mode, tag): the newest.
      const newest = new Map<string, number>()
      for (const inv of invalidations) newest.set(`${inv.mode}:${inv.tag}`, Math.max(newest.get(`${inv.mode}:${inv.tag}`) ?? -1, inv.hlc))
      for (let i = 0; i < 200; i++) {
        const tags = Array.from({ length: Math.floor(r.next() * 3) }, () => tag(r))
        const record = { key: `k${i}`, value: 'v', expiresAt: Infinity, tags, version: { hlc: (NOW + Math.floor(r.next() * 50)) * SPAN + 1, nodeId: 'n1' } }
        const expected = [...newest].some(([id, hlc]) => hlc > record.version.hlc && tags.some((t) => tagCovers(id.slice(id.indexOf(':') + 1), t)))
        assert.equal(store.hidden(record, NOW), expected, `seed ${seed}, record ${i}: tags ${JSON.stringify(tags)}`)
      }
    }
  })
})

describe('MemoryReplicaStore.metaDigest', () => {
  test('kept as clears, invalidations and grace drops happen, it equals the digest hashed from the lists (seeded)', () => {
    const TTL = 1_000
    for (let seed = 1; seed <= 30; seed++) {
      const r = new SeededRandom(seed)
      const store = new MemoryReplicaStore({ tombstoneTtlMs: TTL })
      // The same store seen without its own metaDigest: the free function hashes the lists.
      const lists = { prefixTombstones: (now: number) => store.prefixTombstones(now), tagInvalidations: () => store.tagInvalidations() }
      let now = NOW
      for (let step = 0; step < 300; step++) {
        const at = `seed ${seed}, step ${step}`
        const op = r.next()
        if (op < 0.45) {
          const ms = now - Math.floor(r.next() * 1_200)
          store.clear(word(r), { hlc: ms * SPAN + Math.floor(r.next() * 3), nodeId: r.next() < 0.5 ? 'n1' : 'n2' }, now)
        } else if (op < 0.8) {
          store.invalidate({ mode: r.next() < 0.5 ? 'hard' : 'soft', tag: word(r) || 'a', hlc: (now - Math.floor(r.next() * 1_200)) * SPAN })
        } else if (op < 0.9) {
          now += Math.floor(r.next() * 300)
        } else store.purge(now)
        const expected = metaDigest(lists, now)
        assert.equal(store.metaDigest(now), expected, at)
        assert.equal(metaDigest(store, now), expected, `${at}: the free function uses the store's`)
      }
    }
  })
})
