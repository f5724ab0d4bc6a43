/**
 * NearCache and InvalidationSequenceTracker (src/cache/near-cache.ts,
 * invalidation-tracker.ts) as pure state machines on a ManualClock: gaps, sources, late
 * messages, reservations racing invalidations, bypass.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ManualClock } from '../../src/core/manual-clock.js'
import { MAX_TAG_LOG, NearCache } from '../../src/cache/near-cache.js'
import { InvalidationSequenceTracker } from '../../src/cache/invalidation-tracker.js'

const P = 4
const partitionOf = (key: string): number => key.charCodeAt(0) % P
const zeros = (): number[] => new Array<number>(P + 1).fill(0)

function near(trackSequences = true): { c: NearCache<string>; clock: ManualClock } {
  const clock = new ManualClock()
  return { c: new NearCache<string>({ maxEntries: 100, ttlMs: 60_000, partitions: P, partitionOf, clock, trackSequences }), clock }
}

function fill(c: NearCache<string>, key: string, value: string): void {
  const r = c.reserve(key)
  assert.ok(r !== undefined)
  assert.equal(c.publish(r, value), true)
}

test('tracker: in order applies, repeats and late ones are discarded, a jump is a gap', () => {
  const t = new InvalidationSequenceTracker(P)
  assert.deepEqual(t.hello('s1', [0, 5, 0, 0, 0]), { flush: true, partitions: [] })
  assert.equal(t.message('s1', 1, 6), 'apply')
  assert.equal(t.message('s1', 1, 6), 'discard')
  assert.equal(t.message('s1', 1, 4), 'discard')
  assert.equal(t.message('s1', 1, 9), 'gap')
  assert.equal(t.message('other', 1, 10), 'discard')
  assert.deepEqual(t.meta('s1', [0, 9, 2, 0, 0]), { flush: false, partitions: [2] })
  assert.deepEqual(t.meta('s1', [0, 9, 2, 0, 1]), { flush: true, partitions: [] })
  assert.deepEqual(t.hello('s1', [1, 9, 2, 0, 1]), { flush: false, partitions: [0] })
  assert.deepEqual(t.hello('s2', [0, 0, 0, 0, 0]), { flush: true, partitions: [] })
})

test('bypass until hello; a hit after fill; a key message drops only its key', () => {
  const { c } = near()
  assert.equal(c.reserve('a'), undefined)
  assert.equal(c.get('a'), undefined)
  assert.equal(c.stats().bypassed, 1)
  c.up('s1', zeros())
  fill(c, 'a', 'A')
  fill(c, 'e', 'E') // same partition as 'a' (97 % 4 === 101 % 4)
  assert.equal(c.get('a'), 'A')
  c.key('s1', partitionOf('a'), 1, 'a')
  assert.equal(c.get('a'), undefined)
  assert.equal(c.get('e'), 'E')
  assert.deepEqual([c.stats().hits, c.stats().invalidations, c.stats().gaps], [2, 1, 0])
})

test('a gap drops the whole partition and nothing else; a late message after it is discarded', () => {
  const { c } = near()
  c.up('s1', zeros())
  fill(c, 'a', 'A')
  fill(c, 'e', 'E')
  fill(c, 'b', 'B')
  c.key('s1', partitionOf('a'), 3, 'i') // 1 and 2 were lost
  assert.equal(c.get('a'), undefined)
  assert.equal(c.get('e'), undefined)
  assert.equal(c.get('b'), 'B')
  fill(c, 'a', 'A2')
  c.key('s1', partitionOf('a'), 2, 'a') // late: its partition was dropped when the gap was found
  assert.equal(c.get('a'), 'A2')
  assert.equal(c.stats().discarded, 1)
  assert.equal(c.stats().gaps, 1)
})

test('meta reveals a lost message on a quiet stream; a lost global message flushes', () => {
  const { c } = near()
  c.up('s1', zeros())
  fill(c, 'a', 'A')
  fill(c, 'b', 'B')
  const seqs = zeros()
  seqs[partitionOf('b')] = 1
  c.meta('s1', seqs)
  assert.equal(c.get('b'), undefined)
  assert.equal(c.get('a'), 'A')
  seqs[P] = 1
  c.meta('s1', seqs)
  assert.equal(c.get('a'), undefined)
  assert.equal(c.stats().flushes, 1)
})

test('a new source flushes; a reconnect to the same source repairs only moved partitions', () => {
  const { c, clock } = near()
  c.up('s1', zeros())
  fill(c, 'a', 'A')
  fill(c, 'b', 'B')
  c.down()
  assert.equal(c.get('a'), undefined, 'bypass while the stream is lost')
  clock.advance(250)
  const seqs = zeros()
  seqs[partitionOf('a')] = 2
  c.up('s1', seqs)
  assert.equal(c.get('a'), undefined)
  assert.equal(c.get('b'), 'B')
  assert.equal(c.stats().bypassMs, 250)
  c.up('s2', zeros())
  assert.equal(c.get('b'), undefined)
  fill(c, 'b', 'B2')
  assert.equal(c.get('b'), 'B2', 'stale marks of the old source do not hide the new one')
})

test('a read racing an invalidation is not cached (key message, gap, clear, loss)', () => {
  const { c } = near()
  c.up('s1', zeros())
  let r = c.reserve('a')!
  c.key('s1', partitionOf('a'), 1, 'a')
  assert.equal(c.publish(r, 'old'), false)
  r = c.reserve('a')!
  c.key('s1', partitionOf('a'), 3, 'i') // gap in a's partition
  assert.equal(c.publish(r, 'old'), false)
  r = c.reserve('a')!
  c.all('s1', 1, 'tags', undefined, ['x'])
  assert.equal(c.publish(r, 'old', ['x']), false) // the fetched entry carries the invalidated tag
  r = c.reserve('a')!
  c.down()
  c.up('s1', c.stats() && [0, 0, 0, 0, 1].map((v, i) => (i === partitionOf('a') ? 3 : v)))
  assert.equal(c.publish(r, 'old'), false)
  assert.equal(c.get('a'), undefined)
  assert.equal(c.stats().refusedPublishes, 4)
  r = c.reserve('a')!
  c.key('s1', partitionOf('b'), 1, 'b') // another key's message leaves the claim alone
  assert.equal(c.publish(r, 'new'), true)
  assert.equal(c.get('a'), 'new')
})

test('clear by prefix and tag invalidation drop what they cover', () => {
  const { c } = near()
  c.up('s1', zeros())
  fill(c, 'user:1', 'u1')
  fill(c, 'post:1', 'p1')
  c.all('s1', 1, 'clear', 'user:', undefined)
  assert.equal(c.get('user:1'), undefined)
  assert.equal(c.get('post:1'), 'p1')
  const r1 = c.reserve('x')!
  c.publish(r1, 'X', ['org:1:user:42'])
  const r2 = c.reserve('y')!
  c.publish(r2, 'Y', ['org:10'])
  c.all('s1', 2, 'tags', undefined, ['org:1'])
  assert.equal(c.get('x'), undefined)
  assert.equal(c.get('y'), 'Y')
})

test('a tag invalidation cancels only the claims whose fetched entry carries a tag it covers', () => {
  const { c } = near()
  c.up('s1', zeros())
  const ra = c.reserve('a')!
  const rb = c.reserve('b')!
  const rc = c.reserve('c')!
  const rd = c.reserve('d')!
  c.all('s1', 1, 'tags', undefined, ['org:1'])
  const re = c.reserve('e')! // claimed after the invalidation: not concerned
  assert.equal(c.publish(ra, 'A', ['org:1']), false)
  assert.equal(c.publish(rb, 'B', ['org:1:user:2']), false, 'a tag below the invalidated one')
  assert.equal(c.publish(rc, 'C', ['org:10']), true, 'org:10 is not under org:1')
  assert.equal(c.publish(rd, 'D'), true, 'no tags')
  assert.equal(c.publish(re, 'E', ['org:1']), true)
  assert.deepEqual(['a', 'b', 'c', 'd', 'e'].map((k) => c.get(k)), [undefined, undefined, 'C', 'D', 'E'])
  assert.equal(c.stats().refusedPublishes, 2)
  // A tag message without a list (an older node) cancels every claim.
  const rf = c.reserve('f')!
  c.all('s1', 2, 'tags', undefined, undefined)
  assert.equal(c.publish(rf, 'F'), false)
})

test('a clear cancels only the claims under its prefix; every claim when it has none', () => {
  const { c } = near()
  c.up('s1', zeros())
  const ru = c.reserve('user:1')!
  const rp = c.reserve('post:1')!
  c.all('s1', 1, 'clear', 'user:', undefined)
  assert.equal(c.publish(ru, 'U'), false)
  assert.equal(c.publish(rp, 'P'), true)
  const rq = c.reserve('post:2')!
  c.all('s1', 2, 'clear', '', undefined)
  assert.equal(c.publish(rq, 'Q'), false)
  assert.equal(c.get('post:1'), undefined)
})

test('the tag log is bounded: a claim outliving too many tag invalidations is cancelled; released claims free it', () => {
  const { c } = near()
  c.up('s1', zeros())
  // Claims that come and go: the log never holds more than the invalidations they overlap.
  let q = 0
  for (let i = 0; i < 2 * MAX_TAG_LOG; i++) {
    const r = c.reserve(`k${i}`)!
    c.all('s1', ++q, 'tags', undefined, [`other:${i}`])
    assert.equal(c.publish(r, 'V', ['mine']), true)
  }
  const old = c.reserve('z')!
  for (let i = 0; i <= MAX_TAG_LOG; i++) c.all('s1', ++q, 'tags', undefined, [`other:${i}`])
  assert.equal(c.publish(old, 'Z', ['mine']), false, 'past the bound the near cache cannot tell: refused')
  // The client's own invalidate: drops the entries it covers and the claims it might affect.
  c.publish(c.reserve('t1')!, 'T1', ['org:1'])
  c.publish(c.reserve('t2')!, 'T2', ['org:2'])
  const rt = c.reserve('t3')!
  c.forgetTags(['org:1'])
  assert.equal(c.publish(rt, 'T3', ['org:1:x']), false)
  assert.deepEqual([c.get('t1'), c.get('t2')], [undefined, 'T2'])
})

test('without sequence tracking a lost message goes unnoticed (what tracking buys)', () => {
  const { c } = near(false)
  c.up('s1', zeros())
  fill(c, 'a', 'A')
  c.key('s1', partitionOf('a'), 3, 'e')
  const seqs = zeros()
  seqs[partitionOf('a')] = 5
  c.meta('s1', seqs)
  assert.equal(c.get('a'), 'A')
})
