import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type Clock, type Duration, isCacheError, ManualClock, type TagIndex, type TimerHandle, type TimerOptions } from '../../src/index.js'
import { HybridLogicalClock, msOfVersion, parseTagSnapshot, type TagSnapshot, TagTrie, versionFromMs } from '../../src/tags/index.js'
import { floorBucket, MAX_FLOOR_BUCKETS, MIN_FLOOR_BUCKETS } from '../../src/tags/tag-trie.js'

const isTagError = (e: unknown): boolean => isCacheError(e, 'ERR_INVALID_TAG')
const isOptionsError = (e: unknown): boolean => isCacheError(e, 'ERR_INVALID_OPTIONS')

function make(start = 1_000_000, options: { pruneAge?: Duration; pruneInterval?: Duration } = {}): { trie: TagTrie; clock: ManualClock } {
  const clock = new ManualClock(start)
  return { trie: new TagTrie({ clock, ...options }), clock }
}

/** A ManualClock that records the options timers were scheduled with. */
class RecordingClock implements Clock {
  readonly inner = new ManualClock(0)
  readonly scheduled: Array<{ ms: number; options: TimerOptions | undefined }> = []
  now(): number {
    return this.inner.now()
  }
  setTimeout(fn: () => void, ms: number, options?: TimerOptions): TimerHandle {
    this.scheduled.push({ ms, options })
    return this.inner.setTimeout(fn, ms)
  }
  clearTimeout(handle: TimerHandle): void {
    this.inner.clearTimeout(handle)
  }
}

describe('TagTrie: hierarchy', () => {
  test('an ancestor reaches its descendants; a descendant does not reach its parent', () => {
    const { trie } = make()
    const user = trie.snapshot(['org:1:user:42'])
    const org = trie.snapshot(['org:1'])
    const other = trie.snapshot(['org:2:user:42'])
    trie.invalidate('org:1:user:42')
    assert.equal(trie.check(user), 'invalid')
    assert.equal(trie.check(org), 'valid', 'a finer tag does not invalidate the coarser one')
    const user2 = trie.snapshot(['org:1:user:42'])
    trie.invalidate('org:1')
    assert.equal(trie.check(org), 'invalid')
    assert.equal(trie.check(user2), 'invalid')
    assert.equal(trie.check(other), 'valid')
    trie.invalidate('org')
    assert.equal(trie.check(other), 'invalid')
  })

  test('prefixes are matched by segment, not by characters', () => {
    const { trie } = make()
    const ten = trie.snapshot(['org:10'])
    const oneX = trie.snapshot(['org:1x:user'])
    trie.invalidate('org:1')
    assert.equal(trie.check(ten), 'valid')
    assert.equal(trie.check(oneX), 'valid')
  })

  test('an entry with several tags is invalid when any of them is; no tags: always valid', () => {
    const { trie } = make()
    const s = trie.snapshot(['a:1', 'b:2', 'c'])
    const none = trie.snapshot([])
    trie.invalidate('b')
    assert.equal(trie.check(s), 'invalid')
    assert.equal(trie.check(none), 'valid')
    assert.deepEqual(s.tags, ['a:1', 'b:2', 'c'])
  })

  test('entries written after an invalidation are valid, even within the same millisecond', () => {
    const { trie } = make()
    trie.invalidate('a:b')
    const s = trie.snapshot(['a:b'])
    assert.equal(trie.check(s), 'valid')
    trie.invalidate('a:b')
    assert.equal(trie.check(s), 'invalid')
  })

  test('invalidate returns increasing versions; snapshot versions sit between them', () => {
    const { trie } = make()
    const v1 = trie.invalidate('t')
    const s = trie.snapshot(['t'])
    const v2 = trie.invalidate('t')
    assert.ok(v1 <= s.version && s.version < v2)
  })
})

describe('TagTrie: soft and hard', () => {
  test('soft marks stale; hard after soft is invalid; soft after hard stays invalid for older entries', () => {
    const { trie } = make()
    const s = trie.snapshot(['t'])
    trie.invalidate('t', 'soft')
    assert.equal(trie.check(s), 'stale')
    trie.invalidate('t', 'hard')
    assert.equal(trie.check(s), 'invalid')
    const between = trie.snapshot(['t'])
    trie.invalidate('t', 'soft')
    assert.equal(trie.check(s), 'invalid', 'soft after hard: still invalid')
    assert.equal(trie.check(between), 'stale')
  })

  test('a soft ancestor and a hard descendant: the worst wins', () => {
    const { trie } = make()
    const s = trie.snapshot(['a:b:c', 'x:y'])
    trie.invalidate('a', 'soft')
    assert.equal(trie.check(s), 'stale')
    trie.invalidate('x:y', 'hard')
    assert.equal(trie.check(s), 'invalid')
  })

  test('bad modes and tags are refused', () => {
    const { trie } = make()
    assert.throws(() => trie.invalidate('a', 'medium' as 'hard'), isOptionsError)
    assert.throws(() => trie.invalidate('a::b'), isTagError)
    assert.throws(() => trie.invalidate(7 as unknown as string), isTagError)
    assert.throws(() => trie.snapshot(['ok', 'bad tag']), isTagError)
    assert.throws(() => trie.snapshot('a' as unknown as string[]), isTagError)
    assert.throws(() => trie.validate('a b'), isTagError)
    assert.equal(trie.stats().nodes, 0, 'nothing was created by refused calls')
  })
})

describe('TagTrie: the O(1) fast path', () => {
  test('no invalidation since the snapshot: check walks nothing', () => {
    const { trie } = make()
    trie.invalidate('a:b:c') // the trie is not empty
    const s = trie.snapshot(['a:b:c', 'a:b:d', 'e'])
    const before = trie.stats()
    for (let i = 0; i < 1_000; i++) assert.equal(trie.check(s), 'valid')
    const after = trie.stats()
    assert.equal(after.nodeVisits, before.nodeVisits)
    assert.equal(after.slowChecks, before.slowChecks)
    assert.equal(after.fastChecks, before.fastChecks + 1_000)
  })

  test('after an invalidation: one walk of O(sum of depths), then O(1) again (self-healing)', () => {
    const { trie } = make()
    trie.invalidate('a:b:c')
    const s = trie.snapshot(['a:b:c'])
    trie.invalidate('x') // unrelated
    const v0 = trie.stats().nodeVisits
    assert.equal(trie.check(s), 'valid')
    assert.equal(trie.stats().nodeVisits - v0, 3, 'the path a, a:b, a:b:c')
    const stamp = s.checkedAt
    for (let i = 0; i < 100; i++) assert.equal(trie.check(s), 'valid')
    assert.equal(trie.stats().nodeVisits - v0, 3)
    assert.equal(s.checkedAt, stamp)
    assert.deepEqual(Object.keys(s), ['tags', 'version', 'checkedAt', 'checkedBy'], 'updated in place, same shape')
  })

  test('a stale entry is walked on every check (it is not stamped)', () => {
    const { trie } = make()
    const s = trie.snapshot(['t'])
    trie.invalidate('t', 'soft')
    const v0 = trie.stats().slowChecks
    assert.equal(trie.check(s), 'stale')
    assert.equal(trie.check(s), 'stale')
    assert.equal(trie.stats().slowChecks - v0, 2)
  })

  test('a late remote invalidation older than the last local one still reaches stamped entries', () => {
    const { trie, clock } = make()
    const s = trie.snapshot(['t'])
    clock.advance(10)
    trie.invalidate('unrelated')
    assert.equal(trie.check(s), 'valid') // walked and stamped
    // A message from a peer, issued 5 ms before the local invalidation, arrives only now.
    trie.observe('t', s.version + versionFromMs(5))
    assert.equal(trie.check(s), 'invalid')
  })

  test('a stamp from another trie never passes the fast path', () => {
    const clock = new ManualClock(1_000)
    const a = new TagTrie({ clock })
    const b = new TagTrie({ clock })
    const s = a.snapshot(['t']) // stamped by a, at change count 0
    clock.advance(1)
    b.invalidate('t') // b's first change; its counter is 1
    const copy = JSON.parse(JSON.stringify(s)) as TagSnapshot
    assert.equal(b.check(copy), 'invalid')
    assert.equal(b.check({ ...s, checkedAt: 1 }), 'invalid', 'a foreign stamp equal to our counter is ignored')
    const fresh = a.snapshot(['u'])
    const before = b.stats().slowChecks
    assert.equal(b.check({ ...fresh, checkedAt: 1 }), 'valid', 'same counter value, other id')
    assert.equal(b.stats().slowChecks, before + 1)
  })

  test('snapshot(tags, at) closes the read/invalidate race', () => {
    const { trie } = make()
    const at = trie.currentVersion() // before reading the data
    trie.invalidate('t') // the data changes while the value is being computed
    const s = trie.snapshot(['t'], at)
    assert.equal(trie.check(s), 'invalid')
    const at2 = trie.currentVersion()
    const s2 = trie.snapshot(['t'], at2)
    assert.equal(s2.version, at2)
    const visits = trie.stats().nodeVisits
    assert.equal(trie.check(s2), 'valid')
    assert.equal(trie.stats().nodeVisits, visits, 'nothing newer than at: stamped at once')
    assert.throws(() => trie.snapshot(['t'], -1), isOptionsError)
  })
})

describe('TagTrie: remote invalidations', () => {
  test('an invalidation in the same millisecond as another trie\'s write is above it (decision 0399)', () => {
    // Two processes (two tries, two hybrid clocks) in one millisecond: the write's counter
    // says nothing about real time, so the invalidation must not tie below it.
    const clock = new ManualClock(1_000_000)
    const writer = new TagTrie({ clock })
    const other = new TagTrie({ clock })
    for (let i = 0; i < 5; i++) writer.snapshot(['x']) // the writer's counter moves on
    writer.hybridClock.next()
    writer.hybridClock.next()
    const entry = writer.snapshot(['org:1:user:1'])
    const version = other.invalidate('org:1')
    assert.ok(version > entry.version, `${version} > ${entry.version}`)
    assert.equal(msOfVersion(version), 1_000_000, 'within its own millisecond')
    writer.observe('org:1', version)
    assert.equal(writer.check(entry), 'invalid')
    // A write after the invalidation was seen (same millisecond) is valid.
    assert.equal(writer.check(writer.snapshot(['org:1:user:1'])), 'valid')
    // So is one of the invalidating process itself, made after it.
    assert.equal(other.check(other.snapshot(['org:1:user:2'])), 'valid')
  })

  test('invalidations with nothing between them share one version: a notice\'s tags do not run the clock into the next millisecond', () => {
    const clock = new ManualClock(1_000_000)
    const hearer = new TagTrie({ clock })
    const writer = new TagTrie({ clock })
    const versions = ['o:1', 'o:2', 'o:3', 'o:4', 'o:5', 'o:6', 'o:7'].map((t) => hearer.invalidate(t))
    assert.deepEqual(new Set(versions).size, 1)
    assert.equal(versions[0], versionFromMs(1_000_001) - 1, 'the last counter value of its millisecond')
    clock.advance(1)
    // Another process writes in the next millisecond: after every invalidation, so valid.
    const entry = writer.snapshot(['o:7'])
    for (let i = 0; i < 7; i++) writer.observe(`o:${i + 1}`, versions[i] as number)
    assert.equal(writer.check(entry), 'valid')
  })

  test('invalidations in one millisecond stay above every snapshot before them, and run at most a millisecond\'s counters ahead', () => {
    const { trie, clock } = make()
    let last = 0
    for (let i = 0; i < 5_000; i++) {
      const entry = trie.snapshot(['t:1'])
      const v = trie.invalidate('t')
      assert.ok(v > last && v > entry.version, `${i}: ${v}`)
      assert.equal(trie.check(entry), 'invalid')
      last = v
    }
    // 5,000 draws at 2,048 per millisecond carry at most 3 milliseconds past the frozen clock.
    assert.ok(msOfVersion(last) <= clock.now() + 3, `${msOfVersion(last)} vs ${clock.now()}`)
    clock.advance(10)
    const later = trie.invalidate('t')
    assert.equal(msOfVersion(later), clock.now())
  })

  test('observe applies with its version, idempotently; older versions are no-ops', () => {
    const { trie } = make()
    const s = trie.snapshot(['t:1'])
    const remote = s.version + 5_000
    assert.equal(trie.observe('t', remote), true)
    assert.equal(trie.observe('t', remote), false, 'idempotent')
    assert.equal(trie.observe('t', remote - 1), false, 'older than the node: no-op')
    assert.equal(trie.observe('t', 0), false)
    assert.equal(trie.check(s), 'invalid')
    assert.equal(trie.stats().remoteInvalidations, 1)
    assert.equal(trie.stats().invalidations, 0)
  })

  test('observe ratchets the clock: later local versions and snapshots are newer', () => {
    const { trie } = make()
    const remote = trie.currentVersion() + versionFromMs(20_000) // a peer 20 s ahead
    trie.observe('t', remote, 'soft')
    const s = trie.snapshot(['t'])
    assert.ok(s.version >= remote)
    assert.equal(trie.check(s), 'valid', 'written after the invalidation was seen')
    assert.ok(trie.invalidate('t') > remote)
    assert.equal(trie.check(s), 'invalid')
  })

  test('a remote soft after a local hard leaves older entries invalid', () => {
    const { trie } = make()
    const s = trie.snapshot(['t'])
    const v = trie.invalidate('t')
    trie.observe('t', v + 1, 'soft')
    assert.equal(trie.check(s), 'invalid')
  })

  test('far-future versions are clamped to maxDrift; a far-future snapshot is not trusted', () => {
    const { trie, clock } = make(1_000_000)
    const old = trie.snapshot(['t'])
    trie.observe('t', Number.MAX_SAFE_INTEGER)
    const limit = versionFromMs(clock.now() + 60_000)
    assert.equal(trie.stats().version, limit)
    assert.equal(trie.check(old), 'invalid', 'the invalidation still applies, at the clamp')
    const future = parseTagSnapshot({ tags: ['u'], version: limit + versionFromMs(3_600_000) })
    assert.equal(trie.check(future), 'invalid')
    assert.throws(() => trie.observe('t', -5), isOptionsError)
    assert.throws(() => trie.observe('t', 1.5), isOptionsError)
    assert.throws(() => trie.observe('t t', 5), isTagError)
  })

  test('export / import carries invalidations to another process', () => {
    const clockA = new ManualClock(1_000_000)
    const clockB = new ManualClock(1_000_000)
    const a = new TagTrie({ clock: clockA })
    const b = new TagTrie({ clock: clockB })
    const onB = { user: b.snapshot(['org:1:user:7']), other: b.snapshot(['org:2']), soft: b.snapshot(['s:1']) }
    clockA.advance(5)
    clockB.advance(5)
    a.invalidate('org:1')
    a.invalidate('s', 'soft')
    a.invalidate('org:1:user:9', 'soft')
    const dump = a.exportInvalidations()
    assert.deepEqual(
      dump.map((r) => `${r.tag}/${r.mode}`).sort(),
      ['org:1/hard', 'org:1:user:9/soft', 's/soft'],
    )
    const wire = JSON.parse(JSON.stringify(dump)) as typeof dump
    assert.equal(b.importInvalidations(wire), 3)
    assert.equal(b.importInvalidations(wire), 0, 'idempotent')
    assert.equal(b.check(onB.user), 'invalid')
    assert.equal(b.check(onB.other), 'valid')
    assert.equal(b.check(onB.soft), 'stale')
  })

  test('import validates every record before applying any', () => {
    const { trie } = make()
    const s = trie.snapshot(['a'])
    const v = trie.currentVersion() + 10
    assert.throws(() => trie.importInvalidations([{ tag: 'a', version: v, mode: 'hard' }, { tag: 'b b', version: v, mode: 'hard' }]), isTagError)
    assert.throws(() => trie.importInvalidations([{ tag: 'a', version: v, mode: 'hard' }, { tag: 'b', version: -1, mode: 'hard' }]), isOptionsError)
    assert.throws(() => trie.importInvalidations([{ tag: 'a', version: v, mode: 'x' as 'hard' }]), isOptionsError)
    assert.throws(() => trie.importInvalidations(5 as unknown as []), isOptionsError)
    assert.equal(trie.check(s), 'valid')
    assert.equal(trie.stats().nodes, 0)
  })
})

describe('TagTrie: snapshots as plain data', () => {
  test('JSON round trip: the copy is judged like the original', () => {
    const { trie } = make()
    const s = trie.snapshot(['b', 'a:1', 'a:1'])
    const text = JSON.stringify(s)
    const raw = JSON.parse(text) as TagSnapshot
    const parsed = parseTagSnapshot(JSON.parse(text))
    assert.deepEqual(parsed.tags, ['a:1', 'b'])
    assert.equal(parsed.version, s.version)
    assert.equal(trie.check(raw), 'valid')
    assert.equal(trie.check(parsed), 'valid')
    trie.invalidate('b')
    assert.equal(trie.check(raw), 'invalid')
    assert.equal(trie.check(parsed), 'invalid')
    assert.equal(trie.check(s), 'invalid')
  })

  test('parseTagSnapshot refuses malformed data with typed errors', () => {
    assert.throws(() => parseTagSnapshot(null), isOptionsError)
    assert.throws(() => parseTagSnapshot({ tags: 'a', version: 1 }), isOptionsError)
    assert.throws(() => parseTagSnapshot({ tags: ['a'], version: -1 }), isOptionsError)
    assert.throws(() => parseTagSnapshot({ tags: ['a'] }), isOptionsError)
    assert.throws(() => parseTagSnapshot({ tags: ['a b'], version: 1 }), isTagError)
    const p = parseTagSnapshot({ tags: ['a'], version: 1, checkedAt: 99, checkedBy: 99 })
    assert.equal(p.checkedAt, 0, 'the fast-path stamp is not trusted from outside')
  })

  test('a snapshot from a peer ahead of us ratchets our clock (passive resync)', () => {
    const { trie } = make()
    const peerVersion = trie.currentVersion() + versionFromMs(2_000)
    const s = parseTagSnapshot({ tags: ['t'], version: peerVersion })
    assert.equal(trie.check(s), 'valid')
    assert.ok(trie.invalidate('t') > peerVersion, 'a later local invalidation reaches the peer entry')
    assert.equal(trie.check(s), 'invalid')
  })
})

describe('TagTrie: pruning', () => {
  test('pruneUnderPressure on an empty trie does nothing, counts no prune and leaves the throttle', () => {
    const { trie, clock } = make(1_000_000, { pruneAge: '1m', pruneInterval: '1h' })
    for (let i = 0; i < 3; i++) assert.equal(trie.pruneUnderPressure(), 0)
    assert.equal(trie.stats().prunes, 0)
    trie.invalidate('a:b')
    clock.advance(120_000)
    // Not throttled by the empty calls above: idle nodes go at once.
    assert.equal(trie.pruneUnderPressure(), 2)
    assert.equal(trie.stats().prunes, 1)
    trie.invalidate('c')
    clock.advance(120_000)
    assert.equal(trie.pruneUnderPressure(), 0, 'throttled: the last prune was 2 min ago (pruneInterval / 10 = 6 min)')
    trie.close()
  })

  test('prune(age) takes only idle nodes; checks keep nodes alive', () => {
    const { trie, clock } = make(0)
    trie.invalidate('idle:x')
    trie.invalidate('read:y')
    const s = trie.snapshot(['read:y'])
    clock.advance(30_000)
    trie.invalidate('busy:z')
    trie.invalidate('other') // forces the next check of s to walk and touch read, read:y
    assert.equal(trie.check(s), 'valid')
    clock.advance(40_000)
    assert.equal(trie.prune('1m'), 2, 'idle and idle:x')
    assert.equal(trie.stats().nodes, 5)
    assert.equal(trie.prune(Infinity), 0)
    assert.equal(trie.prune(0), 5)
    assert.equal(trie.stats().nodes, 0)
    const st = trie.stats()
    assert.equal(st.prunes, 3)
    assert.equal(st.prunedNodes, 7)
    assert.throws(() => trie.prune(-1), isOptionsError)
  })

  test('the periodic prune runs on the injected clock, unref\'d, only while nodes exist, until close', () => {
    const clock = new RecordingClock()
    const trie = new TagTrie({ clock, pruneAge: '1m', pruneInterval: '10s' })
    assert.equal(clock.inner.pendingTimers, 0, 'an empty trie has no timer')
    trie.invalidate('idle:x')
    assert.equal(clock.inner.pendingTimers, 1)
    assert.deepEqual(clock.scheduled[0], { ms: 10_000, options: { unref: true } })
    clock.inner.advance(30_000)
    trie.invalidate('busy:y')
    clock.inner.advance(40_000)
    assert.equal(trie.stats().nodes, 2, 'idle:x went at 70 s; busy:y is younger than a minute')
    clock.inner.advance(60_000)
    assert.equal(trie.stats().nodes, 0)
    assert.equal(clock.inner.pendingTimers, 0, 'not re-armed once empty')
    trie.invalidate('z')
    assert.equal(clock.inner.pendingTimers, 1, 're-armed by the next invalidation')
    trie.close()
    trie.close()
    assert.equal(clock.inner.pendingTimers, 0)
    trie.invalidate('w')
    assert.equal(clock.inner.pendingTimers, 0, 'closed: no timer again')
    assert.ok(clock.scheduled.every((t) => t.options?.unref === true))
  })

  test('pruneInterval Infinity turns the periodic prune off; bad options are refused', () => {
    const clock = new ManualClock(0)
    const trie = new TagTrie({ clock, pruneInterval: Infinity })
    trie.invalidate('a')
    assert.equal(clock.pendingTimers, 0)
    assert.throws(() => new TagTrie({ clock, pruneInterval: 0 }), isOptionsError)
    assert.throws(() => new TagTrie({ clock, pruneAge: 'soon' as '1s' }), isOptionsError)
    assert.throws(() => new TagTrie({ clock: {} as Clock }), isOptionsError)
    assert.throws(() => new TagTrie({ clock, hybridClock: {} as HybridLogicalClock }), isOptionsError)
  })

  test('a pruned invalidation never makes an older entry valid again, nor stale when it was invalid', () => {
    const { trie } = make()
    const hard = trie.snapshot(['a:b:c'])
    trie.invalidate('a:b')
    assert.equal(trie.prune(0), 2)
    assert.equal(trie.check(hard), 'invalid')
    const { trie: t2 } = make()
    const soft = t2.snapshot(['s:t'])
    t2.invalidate('s', 'soft')
    t2.prune(0)
    assert.equal(t2.check(soft), 'stale', 'a pruned soft invalidation still marks stale')
    t2.invalidate('s', 'hard')
    assert.equal(t2.check(soft), 'invalid')
    t2.prune(0)
    t2.invalidate('s', 'soft') // recreated from the floor, which holds the hard version
    assert.equal(t2.check(soft), 'invalid', 'never back from invalid to stale')
  })

  test('a pruned node created again starts from its parent\'s floor', () => {
    const { trie } = make()
    const deep = trie.snapshot(['a:b:c'])
    const exact = trie.snapshot(['a:b'])
    trie.invalidate('a:b')
    trie.prune(0)
    trie.invalidate('a:b:other') // recreates a and a:b, without a:b's own version
    assert.equal(trie.check(deep), 'invalid')
    assert.equal(trie.check(exact), 'invalid')
    assert.equal(trie.check(parseTagSnapshot({ tags: ['a:b'], version: exact.version })), 'invalid')
    const fresh = trie.snapshot(['a:b:c'])
    assert.equal(trie.check(fresh), 'valid', 'entries newer than the floor are not affected')
  })

  test('a late remote invalidation absorbed by a floor still reaches entries stamped before the prune', () => {
    const { trie, clock } = make()
    const s = trie.snapshot(['b:c'])
    clock.advance(4)
    const v = trie.invalidate('b:d') // does not reach b:c
    assert.equal(trie.check(s), 'valid') // walked and stamped
    trie.prune(0) // the root's floor bucket of segment b is now v
    // A peer invalidated b:c before our invalidation of a; the message arrives only now.
    // Its path is recreated from the floor (already >= its version), so no version moves.
    assert.equal(trie.observe('b:c', v - 1), false)
    assert.equal(trie.check(s), 'invalid')
  })

  test('entries written after a pruned invalidation stay valid (the floor is not above them)', () => {
    const { trie } = make()
    trie.invalidate('a:b')
    trie.invalidate('z', 'soft')
    const after = trie.snapshot(['a:b', 'a:c', 'z:1'])
    trie.prune(0)
    assert.equal(trie.check(after), 'valid')
  })

  test('floors are per parent: a prune under one subtree does not touch another', () => {
    const { trie, clock } = make(0)
    // org:18 shares org:1's floor bucket (FNV-1a, 16 buckets), org:3 does not.
    assert.equal(floorBucket('18', MIN_FLOOR_BUCKETS), floorBucket('1', MIN_FLOOR_BUCKETS))
    assert.notEqual(floorBucket('3', MIN_FLOOR_BUCKETS), floorBucket('1', MIN_FLOOR_BUCKETS))
    const old = { org3: trie.snapshot(['org:3']), org18: trie.snapshot(['org:18']), team: trie.snapshot(['team:5']), org2: trie.snapshot(['org:2:x']) }
    trie.invalidate('org:1:user:1') // will go idle and be pruned
    clock.advance(120_000)
    trie.invalidate('org:2:y') // keeps org and org:2 alive
    assert.equal(trie.prune('1m'), 3, 'org:1, org:1:user, org:1:user:1')
    assert.notEqual(trie.check(old.org18), 'valid', 'conservative in org:1\'s bucket: a miss, never a lie')
    assert.equal(trie.check(old.org3), 'valid', 'a sibling in another bucket is not affected')
    assert.equal(trie.check(old.team), 'valid', 'nothing was pruned at the root')
    assert.equal(trie.check(old.org2), 'valid', 'org:2 still exists and knows its own versions')
  })

  test('a floor holds only what was pruned beneath it: parents with nothing pruned keep floor 0', () => {
    const { trie, clock } = make(0)
    const ancient = { px: trie.snapshot(['p:x']), r: trie.snapshot(['r']), pqz: trie.snapshot(['p:q:zz']) }
    trie.invalidate('p:q:r:s') // old, goes idle
    const entry = trie.snapshot(['p:q', 'p:x', 'r', 'p:q:r:s:t'])
    clock.advance(120_000)
    trie.invalidate('p:q:other') // keeps p and p:q alive
    assert.equal(trie.prune('1m'), 2, 'p:q:r and p:q:r:s')
    assert.equal(trie.check(entry), 'valid', 'the floor on p:q is older than the entry')
    assert.equal(trie.check(ancient.px), 'valid', 'nothing was pruned beneath p itself: floor 0')
    assert.equal(trie.check(ancient.r), 'valid', 'nor beneath the root')
    assert.equal(floorBucket('zz', MIN_FLOOR_BUCKETS), floorBucket('r', MIN_FLOOR_BUCKETS))
    assert.equal(trie.check(ancient.pqz), 'invalid', 'conservative: in p:q:r\'s bucket an older entry is a miss')
  })
})

const TWO_HOURS = 2 * 60 * 60_000

/** Segments `<prefix><i>`, i = 0, 1, …: the first `n` whose bucket (of `size`) satisfies `keep`. */
function segments(prefix: string, n: number, size: number, keep: (bucket: number) => boolean): string[] {
  const out: string[] = []
  for (let i = 0; out.length < n; i++) if (keep(floorBucket(`${prefix}${i}`, size))) out.push(`${prefix}${i}`)
  return out
}

describe('TagTrie: floor buckets', () => {
  test('a pruned change-feed notice no longer invalidates unrelated origin tags under @origin', () => {
    const { trie, clock } = make(0, { pruneInterval: Infinity })
    const notice = 'N0.1.x'
    const b = floorBucket(notice, MIN_FLOOR_BUCKETS)
    const [apart] = segments('O0.1.', 1, MIN_FLOOR_BUCKETS, (x) => x !== b)
    const [together] = segments('O0.1.', 1, MIN_FLOOR_BUCKETS, (x) => x === b)
    const old = { apart: trie.snapshot([`@origin:${apart}`], undefined, true), together: trie.snapshot([`@origin:${together}`], undefined, true) }
    trie.invalidate(`@origin:${notice}`) // an unrelated notice of the steady feed
    clock.advance(TWO_HOURS)
    trie.invalidate('@origin:N0.1.later') // the feed goes on: @origin stays alive
    assert.equal(trie.prune('1h'), 1, 'the old notice is pruned into @origin\'s floor')
    assert.equal(trie.check(old.apart), 'valid', 'another bucket: untouched (one floor per parent made this a miss)')
    assert.equal(trie.check(old.together), 'invalid', 'same bucket: conservative, a miss never a lie')
    assert.equal(trie.stats().floorBuckets, MIN_FLOOR_BUCKETS, 'only @origin holds buckets')
  })

  test('one pruned sibling costs ~1/buckets of the others (user:<id> under user)', () => {
    const { trie, clock } = make(0, { pruneInterval: Infinity })
    const ids = segments('u', 2048, 1, () => true)
    const old = ids.map((id) => trie.snapshot([`user:${id}`]))
    trie.invalidate('user:gone')
    clock.advance(TWO_HOURS)
    trie.invalidate('user:active')
    assert.equal(trie.prune('1h'), 1)
    const missed = old.filter((s) => trie.check(s) !== 'valid').length
    const colliding = ids.filter((id) => floorBucket(id, MIN_FLOOR_BUCKETS) === floorBucket('gone', MIN_FLOOR_BUCKETS)).length
    assert.equal(missed, colliding, 'exactly the siblings sharing the pruned one\'s bucket miss')
    assert.ok(missed > ids.length / (2 * MIN_FLOOR_BUCKETS) && missed < (2 * ids.length) / MIN_FLOOR_BUCKETS, `miss rate ${missed / ids.length} ~ 1/${MIN_FLOOR_BUCKETS}`)
  })

  test('after growing to 64 buckets, a newly pruned sibling costs ~1/64 of the older entries', () => {
    const { trie, clock } = make(0, { pruneInterval: Infinity })
    for (let i = 0; i < 12; i++) trie.invalidate(`user:early${i}`)
    clock.advance(TWO_HOURS)
    trie.invalidate('user:active')
    assert.equal(trie.prune('1h'), 12)
    assert.equal(trie.stats().floorBuckets, MAX_FLOOR_BUCKETS, 'user grew its buckets as children were folded')
    clock.advance(1)
    const ids = segments('u', 4096, 1, () => true)
    const old = ids.map((id) => trie.snapshot([`user:${id}`]))
    assert.ok(old.every((s) => trie.check(s) === 'valid'), 'floors of earlier prunes are older than these entries')
    trie.invalidate('user:gone')
    clock.advance(TWO_HOURS)
    trie.invalidate('user:active')
    assert.equal(trie.prune('1h'), 1)
    const missed = old.filter((s) => trie.check(s) !== 'valid').length
    const colliding = ids.filter((id) => floorBucket(id, MAX_FLOOR_BUCKETS) === floorBucket('gone', MAX_FLOOR_BUCKETS)).length
    assert.equal(missed, colliding)
    assert.ok(missed > ids.length / (2 * MAX_FLOOR_BUCKETS) && missed < (2 * ids.length) / MAX_FLOOR_BUCKETS, `miss rate ${missed / ids.length} ~ 1/${MAX_FLOOR_BUCKETS}`)
  })

  test('a pruned soft invalidation marks only its bucket stale; hard wins over soft in a bucket', () => {
    const { trie, clock } = make(0, { pruneInterval: Infinity })
    const b = floorBucket('s', MIN_FLOOR_BUCKETS)
    const [apart] = segments('k', 1, MIN_FLOOR_BUCKETS, (x) => x !== b)
    const [together] = segments('k', 1, MIN_FLOOR_BUCKETS, (x) => x === b)
    const old = { apart: trie.snapshot([`p:${apart}`]), together: trie.snapshot([`p:${together}:deep`]) }
    trie.invalidate('p:s', 'soft')
    clock.advance(TWO_HOURS)
    trie.invalidate('p:alive')
    trie.prune('1h')
    assert.equal(trie.check(old.apart), 'valid')
    assert.equal(trie.check(old.together), 'stale', 'soft stays soft through a bucket, for descendants too')
    const [also] = segments('h', 1, MIN_FLOOR_BUCKETS, (x) => x === b)
    trie.invalidate(`p:${also}`, 'hard')
    clock.advance(TWO_HOURS)
    trie.invalidate('p:alive')
    trie.prune('1h')
    assert.equal(trie.check(old.together), 'invalid', 'the bucket now holds a hard version')
    assert.equal(trie.check(old.apart), 'valid')
  })

  test('a re-created child inherits its own bucket\'s floor, not its siblings\'', () => {
    const { trie, clock } = make(0, { pruneInterval: Infinity })
    const b = floorBucket('gone', MIN_FLOOR_BUCKETS)
    const [apart] = segments('c', 1, MIN_FLOOR_BUCKETS, (x) => x !== b)
    const [together] = segments('c', 1, MIN_FLOOR_BUCKETS, (x) => x === b)
    const old = { apart: trie.snapshot([`p:${apart}`]), together: trie.snapshot([`p:${together}`]), gone: trie.snapshot(['p:gone']) }
    const v = trie.invalidate('p:gone')
    clock.advance(TWO_HOURS)
    trie.invalidate('p:alive')
    trie.prune('1h')
    // Recreate all three below their old paths: each starts from its own bucket.
    trie.invalidate(`p:${apart}:child`)
    trie.invalidate(`p:${together}:child`)
    trie.invalidate('p:gone:child')
    assert.equal(trie.check(old.apart), 'valid', 'recreated from an empty bucket')
    assert.equal(trie.check(old.together), 'invalid', 'recreated from the pruned sibling\'s bucket')
    assert.equal(trie.check(old.gone), 'invalid', 'the pruned node reborn never forgets its invalidation')
    assert.equal(trie.exportInvalidations().find((r) => r.tag === 'p:gone')?.version, v, 'reborn with the floor as its version')
  })

  test('a late remote invalidation into another bucket is applied; into the pruned one it is absorbed but still counted', () => {
    const { trie, clock } = make(0, { pruneInterval: Infinity })
    const b = floorBucket('gone', MIN_FLOOR_BUCKETS)
    const [apart] = segments('r', 1, MIN_FLOOR_BUCKETS, (x) => x !== b)
    const [together] = segments('r', 1, MIN_FLOOR_BUCKETS, (x) => x === b)
    const s = { apart: trie.snapshot([`p:${apart}`]), together: trie.snapshot([`p:${together}`]) }
    clock.advance(5)
    const v = trie.invalidate('p:gone')
    assert.equal(trie.check(s.apart), 'valid') // stamped on the fast path from now on
    assert.equal(trie.check(s.together), 'valid')
    clock.advance(TWO_HOURS)
    trie.invalidate('p:alive')
    trie.prune('1h')
    // A peer invalidated both before our p:gone; the messages arrive only now.
    assert.equal(trie.observe(`p:${apart}`, v - 1), true, 'an empty bucket absorbs nothing: the version is applied')
    assert.equal(trie.check(s.apart), 'invalid')
    assert.equal(trie.observe(`p:${together}`, v - 1), false, 'absorbed by the bucket it inherits')
    assert.equal(trie.check(s.together), 'invalid', 'the fast-path stamp was invalidated all the same')
  })

  test('a pruned node\'s own buckets fold into its parent\'s bucket: nothing is forgotten', () => {
    const { trie, clock } = make(0, { pruneInterval: Infinity })
    const old = trie.snapshot(['a:b:c:d'])
    trie.invalidate('a:b:c')
    clock.advance(TWO_HOURS)
    trie.invalidate('a:b:alive')
    trie.prune('1h') // a:b now holds buckets
    assert.equal(trie.stats().floorBuckets, MIN_FLOOR_BUCKETS)
    assert.equal(trie.check(old), 'invalid')
    clock.advance(TWO_HOURS)
    trie.invalidate('a:other')
    assert.equal(trie.prune('1h'), 2, 'a:b:alive, then a:b itself with its buckets')
    assert.equal(trie.stats().floorBuckets, MIN_FLOOR_BUCKETS, "a:b's buckets were freed, a allocated its own")
    assert.equal(trie.check(old), 'invalid', 'what a:b\'s buckets held lives on in a\'s bucket for b')
    assert.equal(trie.check(trie.snapshot(['a:b:c:d'])), 'valid')
  })

  test('memory stays bounded: buckets only where children were pruned, at most 64 per node', () => {
    const { trie, clock } = make(0, { pruneInterval: Infinity })
    const parents = 200
    const children = 50
    for (let p = 0; p < parents; p++) for (let c = 0; c < children; c++) trie.invalidate(`t${p}:c${c}`)
    assert.equal(trie.stats().floorBuckets, 0, 'a trie that never pruned holds no buckets')
    clock.advance(TWO_HOURS)
    for (let p = 0; p < parents; p++) trie.invalidate(`t${p}:c0`) // keeps every parent alive
    assert.equal(trie.prune('1h'), parents * (children - 1))
    assert.equal(trie.stats().nodes, parents * 2)
    assert.equal(trie.stats().floorBuckets, parents * MAX_FLOOR_BUCKETS, '49 folds each: grown to, and capped at, 64')
    clock.advance(TWO_HOURS)
    for (let i = 0; i < 100_000; i++) trie.invalidate(`t0:x${i}`) // many more children of one parent
    clock.advance(TWO_HOURS)
    trie.invalidate('t0:c0')
    assert.equal(trie.prune('1h'), 100_000 + (parents - 1) * 2, 't0\'s new children, and the other parents (idle now) with theirs')
    assert.equal(trie.stats().nodes, 2, 't0 and t0:c0')
    assert.equal(trie.stats().floorBuckets, 2 * MAX_FLOOR_BUCKETS, '64 for t0 after 100 049 folds, 64 for the root; the pruned parents\' freed')
    assert.equal(trie.prune(0), 2)
    const st = trie.stats()
    assert.equal(st.nodes, 0)
    assert.equal(st.floorBuckets, MAX_FLOOR_BUCKETS, 'everything folded into the root: 64 buckets in all')
  })
})

describe('TagTrie: facade contract', () => {
  test('TagTrie is a TagIndex; stats and close', () => {
    const index: TagIndex = new TagTrie({ clock: new ManualClock(0), hybridClock: new HybridLogicalClock(new ManualClock(0)) })
    const s = index.snapshot(['a'])
    index.invalidate('a', 'soft')
    assert.equal(index.check(s), 'stale')
    assert.throws(() => index.validate(''), isTagError)
    index.close()
  })
})
