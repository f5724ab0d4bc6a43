/**
 * Property test: random interleavings of writes (snapshots of 0..4 tags from a small tree
 * so tags collide and nest), local and remote invalidations (hard / soft), prunes (explicit
 * and periodic), clock advances and snapshot round trips through JSON, run against two
 * tries — one that prunes, one that never does — and a plain reference model.
 *
 * The model keeps, for every entry, the worst invalidation that reached it: invalidating
 * T reaches an entry iff T is one of its tags or an ancestor of one (segment-wise), and the
 * invalidation is newer than the entry — a local one issued after the write, a remote one
 * whose version exceeds the entry's snapshot version. It never looks at the trie's nodes.
 *
 * Asserted after every step, for every entry:
 * - the never-pruned trie agrees with the model exactly (no stale read, no entry lost);
 * - the pruning trie is never more optimistic than the model (never 'valid' when the model
 *   says stale or invalid, never 'stale' when it says invalid);
 * - it is more pessimistic only for an entry that some prune could have cost: nodes were
 *   removed after an invalidation newer than the entry had been applied. Pruning that only
 *   forgets invalidations older than an entry never costs it anything (its floors stay
 *   below the entry's version).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { ManualClock } from '../../src/index.js'
import { parseTagSnapshot, type TagCheck, type TagMode, type TagSnapshot, TagTrie, versionFromMs } from '../../src/tags/index.js'
import { floorBucket, MAX_FLOOR_BUCKETS, MIN_FLOOR_BUCKETS } from '../../src/tags/tag-trie.js'

type Op =
  | { t: 'write'; tags: string[] }
  | { t: 'race'; tags: string[]; tag: string; mode: TagMode }
  | { t: 'inv'; tag: string; mode: TagMode }
  | { t: 'remote'; tag: string; mode: TagMode; lagMs: number; logical: number }
  | { t: 'prune'; age: number }
  | { t: 'tick'; ms: number }
  | { t: 'ship'; index: number; parse: boolean }

interface Entry {
  readonly tags: readonly string[]
  readonly version: number
  pruning: TagSnapshot
  plain: TagSnapshot
  /** Model state: 0 valid, 1 stale, 2 invalid. */
  expected: number
  /** An invalidation newer than this entry has been applied (to any tag). */
  newerSeen: boolean
  /** Nodes were pruned after such an invalidation: the pruning trie may be pessimistic. */
  forgettable: boolean
}

const RANK: Readonly<Record<TagCheck, number>> = { valid: 0, stale: 1, invalid: 2 }
const NAME = ['valid', 'stale', 'invalid'] as const

/** Runs and seed can be raised locally: STRATACACHE_PROPERTY_RUNS=20000 STRATACACHE_PROPERTY_SEED=7. */
const RUNS = Number(process.env.STRATACACHE_PROPERTY_RUNS ?? 1000)
const SEED = process.env.STRATACACHE_PROPERTY_SEED === undefined ? undefined : Number(process.env.STRATACACHE_PROPERTY_SEED)

const modeArb = fc.constantFrom<TagMode>('hard', 'soft')
function opsArb(segments: readonly string[]): fc.Arbitrary<Op[]> {
  const tagArb = fc.array(fc.constantFrom(...segments), { minLength: 1, maxLength: 3 }).map((s) => s.join(':'))
  const tagsArb = fc.array(tagArb, { maxLength: 4 })
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { weight: 5, arbitrary: fc.record({ t: fc.constant('write' as const), tags: tagsArb }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('race' as const), tags: tagsArb, tag: tagArb, mode: modeArb }) },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('inv' as const), tag: tagArb, mode: modeArb }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('remote' as const), tag: tagArb, mode: modeArb, lagMs: fc.oneof(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 7, max: 40 })), logical: fc.integer({ min: 0, max: 4 }) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('prune' as const), age: fc.integer({ min: 0, max: 40 }) }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('tick' as const), ms: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 4, max: 60 })) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('ship' as const), index: fc.nat(), parse: fc.boolean() }) },
  )
  return fc.array(opArb, { minLength: 10, maxLength: 150, size: 'max' })
}

/** Invalidating `tag` reaches an entry tag iff `tag` is it or a path prefix of it. */
const reaches = (tag: string, entryTag: string): boolean => entryTag === tag || entryTag.startsWith(`${tag}:`)

const counters = { steps: 0, checks: 0, pessimistic: 0, harmlessPrunes: 0, fast: 0, slow: 0, grown: 0 }

function run(ops: Op[]): void {
  const clock = new ManualClock(1_000)
  // Aggressive pruning so the periodic prune fires inside `tick`s too.
  const pruning = new TagTrie({ clock, pruneAge: 15, pruneInterval: 10 })
  const plain = new TagTrie({ clock, pruneInterval: Infinity })
  const entries: Entry[] = []

  const invalidateModel = (tag: string, mode: TagMode, isNewer: (e: Entry) => boolean): void => {
    for (const e of entries) {
      if (!isNewer(e)) continue
      e.newerSeen = true
      if (e.tags.some((t) => reaches(tag, t))) e.expected = Math.max(e.expected, mode === 'hard' ? 2 : 1)
    }
  }
  const invalidateLocal = (tag: string, mode: TagMode): void => {
    const v = pruning.invalidate(tag, mode)
    assert.equal(plain.invalidate(tag, mode), v, 'both tries issue the same versions')
    // HLC order: a local invalidation is newer than every entry written before it.
    for (const e of entries) assert.ok(v > e.version, 'invalidation version exceeds earlier snapshots')
    invalidateModel(tag, mode, () => true)
  }
  const addEntry = (tags: readonly string[], p: TagSnapshot, q: TagSnapshot): Entry => {
    assert.equal(p.version, q.version)
    const e: Entry = { tags, version: p.version, pruning: p, plain: q, expected: 0, newerSeen: false, forgettable: false }
    entries.push(e)
    return e
  }

  for (const op of ops) {
    counters.steps++
    const prunedBefore = pruning.stats().prunedNodes
    switch (op.t) {
      case 'write':
        addEntry(op.tags, pruning.snapshot(op.tags), plain.snapshot(op.tags))
        break
      case 'race': {
        // The value is computed from data read at `at`; an invalidation lands meanwhile.
        const at = pruning.currentVersion()
        assert.equal(plain.currentVersion(), at)
        const e = addEntry(op.tags, { tags: [], version: at, checkedAt: 0, checkedBy: 0 }, { tags: [], version: at, checkedAt: 0, checkedBy: 0 })
        invalidateLocal(op.tag, op.mode)
        e.pruning = pruning.snapshot(op.tags, at)
        e.plain = plain.snapshot(op.tags, at)
        assert.equal(e.pruning.version, at)
        break
      }
      case 'inv':
        invalidateLocal(op.tag, op.mode)
        break
      case 'remote': {
        // A peer's invalidation, possibly issued before some of our writes and delivered late.
        const version = versionFromMs(Math.max(0, clock.now() - op.lagMs)) + op.logical
        // (Whether it changes a node may differ: the pruning trie may hold a higher floor.)
        pruning.observe(op.tag, version, op.mode)
        plain.observe(op.tag, version, op.mode)
        invalidateModel(op.tag, op.mode, (e) => version > e.version)
        break
      }
      case 'prune':
        pruning.prune(op.age)
        break
      case 'tick':
        clock.advance(op.ms)
        break
      case 'ship': {
        if (entries.length === 0) break
        const e = entries[op.index % entries.length]
        const copy = (s: TagSnapshot): TagSnapshot => (op.parse ? parseTagSnapshot(JSON.parse(JSON.stringify(s))) : (JSON.parse(JSON.stringify(s)) as TagSnapshot))
        e.pruning = copy(e.pruning)
        e.plain = copy(e.plain)
        break
      }
    }
    if (pruning.stats().prunedNodes > prunedBefore) {
      let harmless = true
      for (const e of entries) {
        if (e.newerSeen) {
          e.forgettable = true
          harmless = false
        }
      }
      if (harmless && entries.length > 0) counters.harmlessPrunes++
    }
    // Floor buckets stay bounded: at most MAX_FLOOR_BUCKETS per node held (and the root).
    const held = pruning.stats()
    assert.ok(held.floorBuckets <= MAX_FLOOR_BUCKETS * (held.nodes + 1), `floor buckets ${held.floorBuckets} for ${held.nodes} nodes`)
    if (held.floorBuckets > MIN_FLOOR_BUCKETS * (held.nodes + 1)) counters.grown++
    for (const e of entries) {
      counters.checks++
      const exact = plain.check(e.plain)
      assert.equal(exact, NAME[e.expected], `never-pruned trie vs model for [${e.tags.join(', ')}]`)
      const got = RANK[pruning.check(e.pruning)]
      assert.ok(got >= e.expected, `stale read: trie said ${NAME[got]}, model ${NAME[e.expected]} for [${e.tags.join(', ')}]`)
      if (got > e.expected) {
        assert.ok(e.forgettable, `entry [${e.tags.join(', ')}] lost (${NAME[got]} instead of ${NAME[e.expected]}) though no prune could have cost it`)
        counters.pessimistic++
      }
    }
  }
  const st = pruning.stats()
  counters.fast += st.fastChecks
  counters.slow += st.slowChecks
  pruning.close()
  plain.close()
}

describe('TagTrie agrees with a reference model', () => {
  test('no stale read ever; no valid entry lost unless a prune after a newer invalidation could cost it', (t) => {
    fc.assert(fc.property(opsArb(['a', 'b', 'c']), (ops) => run(ops)), { numRuns: RUNS, seed: SEED, includeErrorInReport: true })
    t.diagnostic(
      `steps ${counters.steps}, checks ${counters.checks} (fast ${counters.fast}, slow ${counters.slow}), ` +
        `pessimistic answers after prunes ${counters.pessimistic}, prunes that could cost no entry ${counters.harmlessPrunes}`,
    )
    assert.ok(counters.fast > 0, 'the fast path was exercised')
    assert.ok(counters.harmlessPrunes > 0, 'prunes that forget only older invalidations were exercised')
  })

  test('the same with segments that share floor buckets (at every bucket count, or only before a split)', (t) => {
    // a and cv collide in all sizes up to 64 buckets; q collides with a only while a node
    // has 16 buckets, so bucket splits with versions already folded in are exercised too.
    assert.equal(floorBucket('cv', MAX_FLOOR_BUCKETS), floorBucket('a', MAX_FLOOR_BUCKETS))
    assert.equal(floorBucket('q', MIN_FLOOR_BUCKETS), floorBucket('a', MIN_FLOOR_BUCKETS))
    assert.notEqual(floorBucket('q', MAX_FLOOR_BUCKETS), floorBucket('a', MAX_FLOOR_BUCKETS))
    const before = { ...counters }
    fc.assert(fc.property(opsArb(['a', 'cv', 'q', 'b']), (ops) => run(ops)), { numRuns: RUNS, seed: SEED, includeErrorInReport: true })
    t.diagnostic(`steps ${counters.steps - before.steps}, pessimistic ${counters.pessimistic - before.pessimistic}, steps with grown buckets ${counters.grown - before.grown}`)
    assert.ok(counters.pessimistic > before.pessimistic, 'conservative answers through shared buckets were exercised')
    assert.ok(counters.grown > before.grown, 'bucket growth was exercised')
  })
})
