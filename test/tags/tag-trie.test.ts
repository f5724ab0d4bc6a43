import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { isCacheError, ManualClock } from '../../src/index.js'
import { HybridClock, normalizeTags, type TagSnapshot, TagTrie, validateTag } from '../../src/tags/index.js'

describe('tag syntax', () => {
  test('valid tags pass; malformed ones raise ERR_INVALID_TAG', () => {
    for (const ok of ['org', 'org:1', 'org:1:user:42', 'a-b.c@d/e+f=g_h', 'x:'.repeat(31) + 'x']) validateTag(ok)
    for (const bad of ['', ':', 'org:', ':org', 'org::1', 'has space', 'star*', 'x'.repeat(257), 'x:'.repeat(32) + 'x', 42, null, undefined]) {
      assert.throws(() => validateTag(bad), (e: unknown) => isCacheError(e, 'ERR_INVALID_TAG'), String(bad))
    }
    assert.deepEqual(normalizeTags(['b', 'a', 'b']), ['a', 'b'])
  })
})

describe('HybridClock', () => {
  test('strictly increasing when the clock stalls or steps back; observe ratchets', () => {
    const clock = new ManualClock(1000)
    const hlc = new HybridClock(clock)
    const a = hlc.next()
    const b = hlc.next()
    assert.ok(b > a)
    hlc.observe(b + 1_000_000)
    assert.ok(hlc.next() > b + 1_000_000)
    clock.advance(10_000)
    const c = hlc.next()
    assert.ok(c > b + 1_000_000)
    assert.ok(Number.isSafeInteger(new HybridClock(new ManualClock(Date.UTC(2100, 0, 1))).next()))
  })
})

describe('TagTrie', () => {
  test('hierarchy: an ancestor invalidates descendants, not the other way round', () => {
    const trie = new TagTrie({ clock: new ManualClock(0) })
    const user = trie.snapshot(['org:1:user:42'])
    const org = trie.snapshot(['org:1'])
    const other = trie.snapshot(['org:2:user:42'])
    trie.invalidate('org:1:user:42')
    assert.equal(trie.check(user), 'invalid')
    assert.equal(trie.check(org), 'valid', 'a descendant does not invalidate its parent tag')
    const user2 = trie.snapshot(['org:1:user:42'])
    trie.invalidate('org:1')
    assert.equal(trie.check(org), 'invalid')
    assert.equal(trie.check(user2), 'invalid')
    assert.equal(trie.check(other), 'valid')
    trie.invalidate('org')
    assert.equal(trie.check(other), 'invalid')
  })

  test('entries written after an invalidation are valid', () => {
    const trie = new TagTrie({ clock: new ManualClock(0) })
    trie.invalidate('a:b')
    const s = trie.snapshot(['a:b'])
    assert.equal(trie.check(s), 'valid')
  })

  test('soft marks stale; hard after soft is invalid; soft after hard stays invalid', () => {
    const trie = new TagTrie({ clock: new ManualClock(0) })
    const s = trie.snapshot(['t'])
    trie.invalidate('t', 'soft')
    assert.equal(trie.check(s), 'stale')
    trie.invalidate('t', 'hard')
    assert.equal(trie.check(s), 'invalid')
    const s2 = trie.snapshot(['t'])
    trie.invalidate('t', 'soft')
    assert.equal(trie.check(s2), 'stale')
  })

  test('the fast path: a checked snapshot is not walked again until the next invalidation', () => {
    const trie = new TagTrie({ clock: new ManualClock(0) })
    const s = trie.snapshot(['a:b'])
    trie.invalidate('x')
    assert.ok(s.checkedAt < s.version + 10)
    assert.equal(trie.check(s), 'valid')
    const checked = s.checkedAt
    assert.ok(checked >= s.version)
    assert.equal(trie.check(s), 'valid')
    assert.equal(s.checkedAt, checked)
  })

  test('a pruned node never makes a stale entry valid again, even when recreated', () => {
    const clock = new ManualClock(0)
    const trie = new TagTrie({ clock })
    const old = trie.snapshot(['a:b:c'])
    const sibling = trie.snapshot(['a:z'])
    trie.invalidate('a:b')
    clock.advance(1000)
    assert.ok(trie.prune(500) > 0)
    assert.equal(trie.stats().nodes, 0)
    assert.equal(trie.check(old), 'invalid')
    trie.invalidate('a:b:other') // recreates a and a:b
    assert.equal(trie.check(old), 'invalid')
    assert.equal(trie.check({ tags: ['a:b'], version: old.version, checkedAt: 0 } as TagSnapshot), 'invalid')
    // Conservative: an old entry under the same pruned parent may be forgotten, never kept stale.
    assert.notEqual(trie.check(sibling), 'stale')
    const fresh = trie.snapshot(['a:b:c'])
    assert.equal(trie.check(fresh), 'valid')
  })

  test('pruning only takes idle nodes; the periodic prune runs on the clock and stops on close', () => {
    const clock = new ManualClock(0)
    const trie = new TagTrie({ clock, pruneAge: '1m', pruneInterval: '10s' })
    trie.invalidate('idle:x')
    clock.advance(30_000)
    trie.invalidate('busy:y')
    clock.advance(40_000)
    assert.equal(trie.stats().nodes, 2, 'busy:y and its parent are younger than a minute')
    clock.advance(60_000)
    assert.equal(trie.stats().nodes, 0)
    trie.invalidate('z')
    trie.close()
    assert.equal(clock.pendingTimers, 0)
  })

  test('remote invalidations apply with their version, idempotently, and ratchet the clock', () => {
    const trie = new TagTrie({ clock: new ManualClock(0) })
    const s = trie.snapshot(['t'])
    const remote = s.version + 5_000_000
    trie.observe('t', remote)
    trie.observe('t', remote)
    trie.observe('t', remote - 1, 'soft') // older than what the node has: no effect beyond it
    assert.equal(trie.check(s), 'invalid')
    assert.ok(trie.snapshot(['t']).version > remote)
    assert.throws(() => trie.observe('t', -1), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
  })

  test('snapshots survive a JSON round trip', () => {
    const trie = new TagTrie({ clock: new ManualClock(0) })
    const s = trie.snapshot(['a:1', 'b'])
    const copy = JSON.parse(JSON.stringify(s)) as TagSnapshot
    trie.invalidate('b')
    assert.equal(trie.check(copy), 'invalid')
  })
})

describe('TagTrie agrees with a reference model', () => {
  type Op = { t: 'write'; tags: string[] } | { t: 'inv'; tag: string; mode: 'hard' | 'soft' } | { t: 'prune'; age: number } | { t: 'tick'; ms: number }
  const tagArb = fc.array(fc.constantFrom('a', 'b', 'c'), { minLength: 1, maxLength: 3 }).map((s) => s.join(':'))
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ t: fc.constant('write' as const), tags: fc.array(tagArb, { maxLength: 4 }) }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('inv' as const), tag: tagArb, mode: fc.constantFrom('hard' as const, 'soft' as const) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('prune' as const), age: fc.integer({ min: 0, max: 50 }) }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 30 }) }) },
  )

  // After a prune, an entry whose path was forgotten is judged by the pruned versions:
  // conservatively stale or invalid (a fallback or a miss), never fresh when it should not be.
  test('no stale read ever; no valid entry lost unless a prune forgot its path', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 10, maxLength: 120, size: 'max' }), (ops) => {
        const clock = new ManualClock(0)
        const trie = new TagTrie({ clock, pruneInterval: '1h' })
        const entries: Array<{ snap: TagSnapshot; tags: string[]; at: number }> = []
        const history: Array<{ tag: string; mode: 'hard' | 'soft'; at: number }> = []
        let step = 0
        let lastPrune = -1
        for (const op of ops) {
          step++
          if (op.t === 'write') entries.push({ snap: trie.snapshot(op.tags), tags: op.tags, at: step })
          else if (op.t === 'inv') {
            trie.invalidate(op.tag, op.mode)
            history.push({ tag: op.tag, mode: op.mode, at: step })
          } else if (op.t === 'prune') {
            if (trie.prune(op.age) > 0) lastPrune = step
          } else clock.advance(op.ms)
          for (const e of entries) {
            // T affects E iff T is E or an ancestor of E.
            const hits = history.filter((h) => h.at > e.at && e.tags.some((t) => t === h.tag || t.startsWith(`${h.tag}:`)))
            const expected = hits.some((h) => h.mode === 'hard') ? 'invalid' : hits.length > 0 ? 'stale' : 'valid'
            const got = trie.check(e.snap)
            if (expected === 'invalid') assert.equal(got, 'invalid')
            else if (expected === 'stale') assert.notEqual(got, 'valid', 'never valid when stale')
            else if (lastPrune === -1 || e.at > lastPrune) assert.equal(got, 'valid', 'a valid entry is not lost')
          }
        }
        trie.close()
      }),
      { numRuns: 200, seed: 7 },
    )
  })
})
