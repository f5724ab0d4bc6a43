/**
 * NearCache and InvalidationSequenceTracker (src/cache/near-cache.ts,
 * invalidation-tracker.ts) as pure state machines on a ManualClock: gaps, sources, late
 * messages, reservations racing invalidations, bypass.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ManualClock } from '../../src/core/manual-clock.js'
import { NearCache } from '../../src/cache/near-cache.js'
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
  assert.equal(c.publish(r, 'old'), false)
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
