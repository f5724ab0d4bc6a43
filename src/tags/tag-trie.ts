/**
 * Dependency tags in a versioned prefix trie — Zoocache's design (its `PrefixTrie`, see
 * seeds/000 "Memory Management" and "Passive Resync"), with its pruning gap closed.
 *
 * Semantics. Tags are `:`-separated paths, coarse to fine. Invalidating tag T affects an
 * entry iff one of the entry's tags E is T or lies below T (T is a path prefix of E,
 * segment-wise: `org:1` is a prefix of `org:1:user:42`, not of `org:10`). So invalidating
 * `org:1` reaches entries tagged `org:1`, `org:1:user:42`, …; invalidating `org` reaches
 * them too; invalidating `org:1:user:42` does NOT reach an entry tagged only `org:1` — a
 * parent tag is a coarser dependency ("something in org 1"), and it is the writer's job to
 * tag an entry with the finest tags it depends on. (An entry tagged both `org:1` and
 * `org:1:user:42` is, in effect, tagged only with the latter.)
 *
 * Why a trie. The tags an entry depends on are a path each; an invalidation must reach
 * every entry below a tag without touching them. Stamping the tag's trie node with a
 * version costs O(depth) whatever the number of entries, and an entry only needs to look
 * at the nodes on its own paths.
 *
 * Versions. Every invalidation gets a version from a hybrid logical clock
 * (hybrid-clock.ts): strictly increasing in this process, ratcheted past every version
 * seen from elsewhere, close to wall-clock time so versions from different processes
 * compare sensibly. A node keeps the newest hard and the newest soft version stamped on
 * it. Unlike Zoocache, which stores the versions of every node on every path with the
 * entry, a snapshot holds a single `version` — the clock reading when the entry was
 * written (or when its data was read, see `snapshot(tags, at)`). The entry is invalid iff
 * a node on one of its paths has a hard version > `version`, stale iff only soft ones
 * are. One number per entry, comparable across processes, and nothing to allocate per tag.
 *
 * The fast path. Most reads happen when nothing was invalidated since the entry was last
 * checked. The trie counts the invalidations it applies that can change an answer
 * (`#changes`: a node's version moved, or a pruned path was recreated from its floor, see
 * `#apply`); a snapshot found valid is stamped in place with that count and the trie's
 * random id (`checkedAt`, `checkedBy`). `check` then answers 'valid' after two number
 * comparisons, allocation-free, until the next such invalidation; after one, it walks the
 * entry's paths once — O(sum of tag depths) — and re-stamps (Zoocache's lazy self-healing,
 * its ADR 0006). A change counter is used rather than "the newest invalidation version"
 * because remote invalidations arrive late and may carry versions older than a stamp:
 * comparing versions would let such an invalidation slip past the fast path. The id makes
 * stamps from another process or trie instance (snapshots shipped through Redis, LMDB or
 * a peer) never match, so those are walked once. Prunes do not count as changes: a stamp
 * vouches that the entry was valid, and forgetting old invalidations cannot make a valid
 * entry invalid, so the periodic prune costs the fast path nothing.
 *
 * Pruning. Nodes idle (neither checked through nor invalidated) for `pruneAge` are removed
 * by a periodic, unref'd timer; `prune(0)` removes every node (the facade calls it when
 * storage evicts). Zoocache simply drops pruned nodes, and a missing node reads as "never
 * invalidated" — so a pruned invalidation makes old entries valid again. Here a parent
 * keeps a floor: the newest hard and soft versions anywhere in the subtrees pruned beneath
 * it. A path that reaches a missing child is judged by the parent's floor, and a child
 * created again later starts from that floor (it may be the pruned node reborn). The floor
 * is an upper bound of what was forgotten, so a pruned node can never make a stale entry
 * look valid; the price is conservatism: an entry older than the floor whose path was
 * pruned there may be judged invalid (a miss, never a lie). A floor holds only versions
 * pruned beneath its node: a parent with nothing pruned beneath keeps floor 0, and
 * forgetting invalidations older than an entry never costs that entry.
 *
 * Floor buckets. One floor per parent would let ONE pruned child judge EVERY missing
 * sibling: under a steady change feed all origin tags share the parent `@origin`, and once
 * an unrelated notice's node was pruned there, every entry older than it became a miss
 * (likewise `user:<id>` under `user`). So a parent's floor is split into buckets by a hash
 * of the child segment (FNV-1a, `floorBucket`): a pruned child folds its versions (its own,
 * and every floor beneath it) into its segment's bucket only, and a missing child — or one
 * created again — is judged by, and inherits, its own segment's bucket. Siblings in other
 * buckets are not affected; one that collides is judged conservatively, as before. The
 * invariant is unchanged: every forgotten version beneath a parent lives on in the bucket
 * of the segment it was reached through, which is exactly where a later walk or rebirth of
 * that segment looks. Hard and soft versions are kept per bucket, so a pruned soft
 * invalidation still only marks stale; a child re-created from a non-empty bucket counts as
 * a change (see `#apply`) exactly as it did from the single floor, and a remote version for
 * a segment whose bucket is empty is applied, not absorbed. The hash is fixed, not keyed:
 * segments chosen to collide can only cost misses. Memory: a node allocates buckets only
 * when a child is first pruned beneath it (idle tries and never-pruned nodes hold one
 * scalar floor, the one they inherited); it starts with `MIN_FLOOR_BUCKETS` and doubles,
 * copying each bucket into the two it splits into (a bucket only ever over-approximates its
 * segments), while it has folded more than a quarter as many children as it has buckets,
 * up to `MAX_FLOOR_BUCKETS` (versions folded before a split stay in both halves: growth
 * sharpens only later folds).
 * So a node holds at most 2 × 64 versions (1 KiB) of floor, and a pruned node's buckets go
 * with it, folded (their maximum) into its own bucket in its parent. `prune(0)` empties the
 * trie into the root's buckets: every top-level segment then keeps its own floor, but with
 * many pruned top-level tags most buckets are recent and old entries miss; the facade
 * should run it rarely (it is also O(nodes)). Buckets bound the damage of one pruned
 * sibling to ~1/buckets of the others; a feed that prunes dozens of notices per `pruneAge`
 * under one parent still dirties most of its 64 buckets (a further refinement: let the
 * facade report the oldest live entry's version, below which pruned versions need not be
 * kept in floors at all).
 *
 * Bounds. Within a process: exact (no entry is served after an invalidation that affects
 * it, none is dropped except through a floor). Across processes, an invalidation is
 * ordered after a write iff its version is greater: true whenever the invalidating
 * process has seen the writer's version, or their clocks differ by less than the time
 * between the two — the stale bound is the clock skew between processes. A local
 * invalidation covers the rest of its millisecond (`#invalidationVersion`), so two processes
 * writing and invalidating in the same millisecond do not tie below the write.
 *
 * Reads racing invalidations: take `v = trie.currentVersion()` before computing a value
 * and store `trie.snapshot(tags, v)`; an invalidation that lands while the value is being
 * computed then makes the new entry invalid at once instead of being missed.
 */
import { randomInt } from 'node:crypto'
import type { Clock, TimerHandle } from '../core/clock.js'
import { type Duration, toMs } from '../core/duration.js'
import { InvalidOptionsError } from '../core/errors.js'
import { HybridLogicalClock, isVersion, versionFromMs } from '../core/hlc.js'
import { systemClock } from '../core/system-clock.js'
import type { TagSnapshot } from './tag-snapshot.js'
import { normalizeTags, TAG_SEPARATOR, validateTag } from './validate-tag.js'

/** `hard`: dependent entries are invalid. `soft`: they are stale, usable as a grace fallback. */
export type TagMode = 'hard' | 'soft'
/** What `check` says about an entry. Same values as the facade's `TagState`. */
export type TagCheck = 'valid' | 'stale' | 'invalid'

/** One invalidation as shipped between processes (bus message, resync dump). */
export interface TagInvalidation {
  readonly tag: string
  readonly version: number
  readonly mode: TagMode
}

export interface TagTrieOptions {
  /** Source of time, for versions and for idle tracking. @default systemClock */
  clock?: Clock
  /**
   * The hybrid clock versions come from. Pass one to share it with other parts of the
   * process (the bus stamps messages with it). @default new HybridLogicalClock(clock, { maxDrift })
   */
  hybridClock?: HybridLogicalClock
  /**
   * How far ahead of local time a remote version may be (see `HybridLogicalClockOptions`).
   * A remote invalidation further ahead is still applied, at the drift limit (dropping it
   * would serve stale data); the clock itself never adopts the far version. @default '1m'
   */
  maxDrift?: Duration
  /** The periodic prune removes nodes idle for this long. @default '1h' */
  pruneAge?: Duration
  /**
   * How often the periodic prune runs. It is armed only while the trie holds nodes and
   * never keeps the process alive. `Infinity` turns it off. @default '10m'
   */
  pruneInterval?: Duration
}

export interface TagTrieStats {
  /** Nodes held (the root not counted). */
  readonly nodes: number
  /** Local `invalidate` calls. */
  readonly invalidations: number
  /** Remote invalidations (`observe`, `importInvalidations`) that changed a node. */
  readonly remoteInvalidations: number
  /** Prune runs, periodic and explicit. */
  readonly prunes: number
  /** Nodes removed by prunes. */
  readonly prunedNodes: number
  /** Checks answered by the O(1) fast path. */
  readonly fastChecks: number
  /** Checks that walked the trie. */
  readonly slowChecks: number
  /** Trie nodes visited by slow checks (a debug counter: the fast path visits none). */
  readonly nodeVisits: number
  /**
   * Floor buckets held (each a hard and a soft version), only by nodes a child was pruned
   * beneath: at most `MAX_FLOOR_BUCKETS` per such node, 0 for a trie that never pruned.
   */
  readonly floorBuckets: number
  /** The hybrid clock's latest version. */
  readonly version: number
}

const VALID = 0
const STALE = 1
const INVALID = 2

/** Buckets a node's floor starts with when its first child is pruned (a power of two). */
export const MIN_FLOOR_BUCKETS = 16
/** Buckets a node's floor grows to at most (a power of two). */
export const MAX_FLOOR_BUCKETS = 64

/**
 * The floor bucket of child `segment` in a node with `size` buckets (a power of two):
 * FNV-1a over the segment's UTF-16 code units, low bits. Deterministic, so a bucket split
 * keeps every segment in one of the two halves of its old bucket. Exported for tests.
 */
export function floorBucket(segment: string, size: number): number {
  let h = 0x811c9dc5
  for (let i = 0; i < segment.length; i++) {
    h ^= segment.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0) & (size - 1)
}

/** Where `segment`'s hard floor sits in a node's `buckets` (soft at +1); -1 without buckets. */
function bucketSlot(buckets: Float64Array | undefined, segment: string): number {
  return buckets === undefined ? -1 : floorBucket(segment, buckets.length >> 1) << 1
}

class TagNode {
  children: Map<string, TagNode> | undefined = undefined
  /** Newest hard / soft invalidation of this tag (or what it inherited when recreated). */
  hard: number
  soft: number
  /**
   * The floor this node inherited when created: what was pruned beneath it before (its
   * former self's subtree, as folded into its parent's bucket). Judges every missing child
   * while `buckets` is undefined; `buckets` start from it.
   */
  floorHard: number
  floorSoft: number
  /**
   * Per-segment floors once a child was pruned beneath this node: `[hard0, soft0, hard1,
   * soft1, …]`, a power-of-two number of buckets, each >= the inherited floor.
   */
  buckets: Float64Array | undefined = undefined
  /** Children folded into `buckets` (drives their growth). */
  folds = 0
  /** Clock time this node was last invalidated or checked through. */
  touched: number

  constructor(hard: number, soft: number, touched: number) {
    this.hard = this.floorHard = hard
    this.soft = this.floorSoft = soft
    this.touched = touched
  }
}

export class TagTrie {
  /** Random, never 0: tells this trie's fast-path stamps from any other's. */
  readonly id: number
  readonly #clock: Clock
  readonly #hlc: HybridLogicalClock
  readonly #root: TagNode
  readonly #pruneAge: number
  readonly #pruneInterval: number
  #nextPressurePrune = -Infinity
  #timer: TimerHandle | undefined = undefined
  #closed = false
  /** Bumped by every applied change that can turn a valid entry stale or invalid. */
  #changes = 0
  /** Newest version stamped on any node. */
  #newest = 0
  #nodes = 0
  #invalidations = 0
  #remoteInvalidations = 0
  #prunes = 0
  #prunedNodes = 0
  #fastChecks = 0
  #slowChecks = 0
  #nodeVisits = 0
  #floorBuckets = 0
  /** The largest version handed to a snapshot (or by currentVersion), and the last local invalidation's (#invalidationVersion). */
  #handed = 0
  #lastInvalidation = -1

  constructor(options: TagTrieOptions = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object')
    const clock = options.clock ?? systemClock
    if (clock === null || typeof clock !== 'object' || typeof clock.now !== 'function' || typeof clock.setTimeout !== 'function') {
      throw new InvalidOptionsError('clock', 'expected a Clock with now(), setTimeout() and clearTimeout()')
    }
    this.#clock = clock
    if (options.hybridClock !== undefined) {
      if (!(options.hybridClock instanceof HybridLogicalClock)) throw new InvalidOptionsError('hybridClock', 'expected a HybridLogicalClock')
      if (options.maxDrift !== undefined) throw new InvalidOptionsError('maxDrift', 'set maxDrift on the HybridLogicalClock passed as hybridClock')
      this.#hlc = options.hybridClock
    } else {
      this.#hlc = new HybridLogicalClock(clock, { maxDrift: options.maxDrift })
    }
    this.#pruneAge = toMs(options.pruneAge ?? '1h', 'pruneAge')
    this.#pruneInterval = toMs(options.pruneInterval ?? '10m', 'pruneInterval')
    if (this.#pruneInterval <= 0) throw new InvalidOptionsError('pruneInterval', 'expected a duration > 0 (Infinity turns the periodic prune off)')
    this.id = randomInt(1, 2 ** 48)
    this.#root = new TagNode(0, 0, clock.now())
  }

  /**
   * Throws `InvalidTagError` (ERR_INVALID_TAG) unless `tag` is a well-formed user tag (not
   * under the reserved `@origin` root; the trie's other methods accept those).
   */
  validate(tag: unknown): void {
    validateTag(tag)
  }

  /** The hybrid clock this trie stamps versions with (share it with the bus). */
  get hybridClock(): HybridLogicalClock {
    return this.#hlc
  }

  /**
   * The current version (not unique, consumes nothing). Taken before computing a value
   * and passed to `snapshot(tags, at)`, it closes the read/invalidate race.
   */
  currentVersion(): number {
    const v = this.#hlc.now()
    if (v > this.#handed) this.#handed = v
    return v
  }

  /**
   * A snapshot for an entry depending on `tags` (validated, deduplicated, sorted), as
   * fresh as version `at` (default: now). Throws ERR_INVALID_TAG for a bad tag. Costs
   * O(total tag length) for validation and creates no trie node. `internal`: accept tags
   * under the reserved `@origin` root (the caller has validated the user's own tags).
   */
  snapshot(tags: readonly string[], at?: number, internal = false): TagSnapshot {
    const normalized = normalizeTags(tags, internal)
    if (at === undefined) {
      // Every version applied so far is <= now(): the entry is valid as of this change count.
      const now = this.#hlc.now()
      if (now > this.#handed) this.#handed = now
      return { tags: normalized, version: now, checkedAt: this.#changes, checkedBy: this.id }
    }
    if (!isVersion(at)) throw new InvalidOptionsError('at', `expected a version (safe integer >= 0), got ${typeof at === 'number' ? String(at) : typeof at}`)
    const version = this.#observeClamped(at)
    if (version > this.#handed) this.#handed = version
    // Something newer than `at` may already affect it: let the first check walk.
    const fresh = version >= this.#newest
    return { tags: normalized, version, checkedAt: fresh ? this.#changes : 0, checkedBy: fresh ? this.id : 0 }
  }

  /**
   * Whether an entry written with `snapshot` is valid, stale (soft-invalidated) or invalid.
   * O(1) and allocation-free when this trie found it valid and applied no change since;
   * otherwise O(sum of tag depths), after which a valid snapshot is re-stamped in place.
   * A snapshot from elsewhere ratchets the hybrid clock past its version; one further
   * ahead than `maxDrift` is judged invalid. Pass only snapshots made by `snapshot` or
   * `parseTagSnapshot`.
   */
  check(snapshot: TagSnapshot): TagCheck {
    if (snapshot.checkedAt === this.#changes && snapshot.checkedBy === this.id) {
      this.#fastChecks++
      return 'valid'
    }
    return this.#slowCheck(snapshot)
  }

  /**
   * Invalidates `tag` and every tag below it, now. Returns the invalidation's version
   * (publish `{ tag, version, mode }` so other processes can `observe` it).
   * O(depth of tag). Throws ERR_INVALID_TAG / ERR_INVALID_OPTIONS for a bad tag or mode.
   */
  invalidate(tag: string, mode: TagMode = 'hard'): number {
    validateTag(tag, true)
    checkMode(mode)
    const version = this.#invalidationVersion()
    this.#apply(tag, version, mode)
    this.#invalidations++
    return version
  }

  /**
   * A local invalidation's version (decision 0399). Another process's clock gives a write in
   * the same millisecond a counter that says nothing about real-time order, so a version
   * drawn plainly could tie below such a write made before it, and L2 would go on serving
   * the entry. So the version is at least the last counter value of the current physical
   * millisecond: above every write of that millisecond anywhere (a write made just after it
   * in real time, by a process that has not seen it yet, misses once: never a stale hit).
   * It is also above every version this trie handed to a snapshot (local order stays
   * exact), and the clock observes it, so later snapshots here are at least it (a snapshot
   * equal to an invalidation is valid: written after it). Invalidations with nothing handed
   * out or seen in between share one version (a notice's several tags, a loop of
   * `invalidateTags`): the clock runs ahead of physical time only by as many counters as
   * snapshots taken between invalidations within one millisecond.
   */
  #invalidationVersion(): number {
    const last = this.#hlc.current()
    const v = last === this.#lastInvalidation && this.#handed < last ? last : this.#hlc.next()
    const end = versionFromMs(Math.floor(this.#clock.now()) + 1) - 1
    const version = v < end && this.#hlc.tryObserve(end) ? end : v
    this.#lastInvalidation = version
    return version
  }

  /**
   * Applies an invalidation made elsewhere, with its version: idempotent, and a no-op
   * when the node already has that version or a newer one. Ratchets the hybrid clock past
   * `version` (clamped to `maxDrift` ahead). Returns whether anything changed.
   */
  observe(tag: string, version: number, mode: TagMode = 'hard'): boolean {
    validateTag(tag, true)
    checkMode(mode)
    const accepted = this.#observeClamped(version)
    if (accepted === 0) return false
    const changed = this.#apply(tag, accepted, mode)
    if (changed) this.#remoteInvalidations++
    return changed
  }

  /**
   * Applies a batch of remote invalidations (a resync dump, a replayed log). Every record
   * is validated before any is applied. Returns how many changed something.
   */
  importInvalidations(records: Iterable<TagInvalidation>): number {
    if (records === null || typeof records !== 'object' || typeof (records as Iterable<unknown>)[Symbol.iterator] !== 'function') {
      throw new InvalidOptionsError('records', 'expected an iterable of { tag, version, mode }')
    }
    const list: TagInvalidation[] = []
    for (const r of records) {
      if (r === null || typeof r !== 'object') throw new InvalidOptionsError('records', 'expected objects { tag, version, mode }')
      validateTag(r.tag, true)
      checkMode(r.mode)
      if (!isVersion(r.version)) throw new InvalidOptionsError('version', `expected a safe integer >= 0, got ${typeof r.version === 'number' ? String(r.version) : typeof r.version}`)
      list.push(r)
    }
    let changed = 0
    for (const r of list) if (this.observe(r.tag, r.version, r.mode)) changed++
    return changed
  }

  /**
   * The invalidations this trie remembers, one record per node and mode that carries a
   * version (a soft one only when newer than the node's hard one). What was pruned is not
   * listed: a receiver learns no more than this trie still knows.
   */
  exportInvalidations(): TagInvalidation[] {
    const out: TagInvalidation[] = []
    const visit = (node: TagNode, path: string): void => {
      if (node.children === undefined) return
      for (const [segment, child] of node.children) {
        const tag = path === '' ? segment : `${path}${TAG_SEPARATOR}${segment}`
        if (child.hard > 0) out.push({ tag, version: child.hard, mode: 'hard' })
        if (child.soft > child.hard) out.push({ tag, version: child.soft, mode: 'soft' })
        visit(child, tag)
      }
    }
    visit(this.#root, '')
    return out
  }

  /**
   * Removes nodes neither invalidated nor checked through for `maxIdle` (a Duration:
   * ms or `'10m'`); `0` removes every node. What a removed subtree knew is folded into
   * its parent's floor, so no entry is ever judged fresher for it. Returns how many
   * nodes were removed. O(nodes).
   */
  prune(maxIdle: Duration): number {
    const ms = toMs(maxIdle, 'maxIdle')
    this.#prunes++
    if (ms === Infinity) return 0
    const removed = this.#pruneBelow(this.#root, this.#clock.now() - ms)
    this.#nodes -= removed
    this.#prunedNodes += removed
    return removed
  }

  stats(): TagTrieStats {
    return {
      nodes: this.#nodes,
      invalidations: this.#invalidations,
      remoteInvalidations: this.#remoteInvalidations,
      prunes: this.#prunes,
      prunedNodes: this.#prunedNodes,
      fastChecks: this.#fastChecks,
      slowChecks: this.#slowChecks,
      nodeVisits: this.#nodeVisits,
      floorBuckets: this.#floorBuckets,
      version: this.#hlc.current(),
    }
  }

  /**
   * Prunes nodes idle for `pruneAge` because memory is short (the owner's cache evicted), at
   * most every `pruneInterval / 10`. Age-based on purpose: a full prune would turn every
   * entry older than the newest invalidation into a miss. Returns how many nodes went. An
   * empty trie does nothing, counts no prune and leaves the throttle as it is.
   */
  pruneUnderPressure(): number {
    // Nothing to shed (the common case of a cache without tags, which calls this on every
    // evicting set): no clock read, and the throttle is left for when there is.
    if (this.#nodes === 0) return 0
    const now = this.#clock.now()
    if (now < this.#nextPressurePrune) return 0
    this.#nextPressurePrune = now + this.#pruneInterval / 10
    return this.prune(this.#pruneAge)
  }

  /** Stops the periodic prune. Idempotent. The trie still answers afterwards. */
  close(): void {
    this.#closed = true
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }

  // ---- internals ---------------------------------------------------------------------

  /**
   * Merges `version` into the clock; one the clock refuses as beyond `maxDrift` (counted
   * there, never adopted) is replaced by the drift limit, which it accepts: an invalidation
   * still takes effect on everything older, and the clock moves at most `maxDrift` ahead.
   */
  #observeClamped(version: number): number {
    if (this.#hlc.tryObserve(version)) return version
    const limit = Math.max(this.#hlc.driftLimit(), this.#hlc.current())
    this.#hlc.observe(limit)
    return limit
  }

  #slowCheck(snapshot: TagSnapshot): TagCheck {
    this.#slowChecks++
    const version = snapshot.version
    if (version > this.#hlc.current()) {
      // Passive resync: the writer had seen this version; our later ones must exceed it.
      // A version beyond maxDrift cannot be trusted to order anything: treat as invalid.
      if (!this.#hlc.tryObserve(version)) return 'invalid'
    }
    const now = this.#clock.now()
    const tags = snapshot.tags
    let result = VALID
    for (let i = 0; i < tags.length; i++) {
      const r = this.#walk(tags[i], version, now)
      if (r === INVALID) return 'invalid'
      if (r === STALE) result = STALE
    }
    if (result === STALE) return 'stale'
    snapshot.checkedAt = this.#changes
    snapshot.checkedBy = this.id
    return 'valid'
  }

  /** The state of one entry tag written at `version`: the worst mark on its path. */
  #walk(tag: string, version: number, now: number): number {
    let node = this.#root
    let result = VALID
    let start = 0
    for (;;) {
      const end = tag.indexOf(TAG_SEPARATOR, start)
      const segment = end === -1 ? tag.slice(start) : tag.slice(start, end)
      const child = node.children?.get(segment)
      if (child === undefined) {
        // Nothing is known below here but what was pruned beneath `node` through this
        // segment's bucket (or, with no buckets, the floor `node` inherited).
        const slot = bucketSlot(node.buckets, segment)
        const floorHard = slot < 0 ? node.floorHard : node.buckets![slot]
        const floorSoft = slot < 0 ? node.floorSoft : node.buckets![slot + 1]
        if (floorHard > version) return INVALID
        return floorSoft > version ? STALE : result
      }
      this.#nodeVisits++
      child.touched = now
      if (child.hard > version) return INVALID
      if (child.soft > version) result = STALE
      if (end === -1) return result
      node = child
      start = end + 1
    }
  }

  /** Stamps `version` on `tag`'s node, creating the path. Returns whether it changed. */
  #apply(tag: string, version: number, mode: TagMode): boolean {
    const now = this.#clock.now()
    let node = this.#root
    let start = 0
    let reborn = false
    for (;;) {
      const end = tag.indexOf(TAG_SEPARATOR, start)
      const segment = end === -1 ? tag.slice(start) : tag.slice(start, end)
      let child = node.children?.get(segment)
      if (child === undefined) {
        // It may be a pruned node reborn: start from what was forgotten beneath the parent
        // through this segment's bucket.
        const slot = bucketSlot(node.buckets, segment)
        const floorHard = slot < 0 ? node.floorHard : node.buckets![slot]
        const floorSoft = slot < 0 ? node.floorSoft : node.buckets![slot + 1]
        if (floorHard !== 0 || floorSoft !== 0) reborn = true
        child = new TagNode(floorHard, floorSoft, now)
        ;(node.children ??= new Map()).set(segment, child)
        this.#nodes++
      } else {
        child.touched = now
      }
      node = child
      if (end === -1) break
      start = end + 1
    }
    let changed = false
    if (mode === 'hard') {
      if (version > node.hard) {
        node.hard = version
        changed = true
      }
    } else if (version > node.soft) {
      node.soft = version
      changed = true
    }
    if (changed && version > this.#newest) this.#newest = version
    // A reborn path may absorb this invalidation into the floor it inherited (a late remote
    // version at or below it): no version moves, yet entries stamped before the prune that
    // raised the floor never saw it. Count it as a change so they are walked again.
    if (changed || reborn) this.#changes++
    if (this.#timer === undefined) this.#armPrune()
    return changed
  }

  /** Removes idle leaves bottom-up beneath `node`, folding them into its floor buckets. */
  #pruneBelow(node: TagNode, cutoff: number): number {
    const children = node.children
    if (children === undefined) return 0
    let removed = 0
    for (const [segment, child] of children) {
      if (child.children !== undefined) removed += this.#pruneBelow(child, cutoff)
      if (child.children === undefined && child.touched <= cutoff) {
        this.#fold(node, segment, child)
        children.delete(segment)
        removed++
      }
    }
    if (children.size === 0) node.children = undefined
    return removed
  }

  /** Folds the pruned leaf `child` (all it knew, floors included) into `node`'s bucket for `segment`. */
  #fold(node: TagNode, segment: string, child: TagNode): void {
    let hard = Math.max(child.hard, child.floorHard)
    let soft = Math.max(child.soft, child.floorSoft)
    const own = child.buckets
    if (own !== undefined) {
      for (let i = 0; i < own.length; i += 2) {
        if (own[i] > hard) hard = own[i]
        if (own[i + 1] > soft) soft = own[i + 1]
      }
      this.#floorBuckets -= own.length >> 1
    }
    let buckets = node.buckets
    node.folds++
    if (buckets === undefined) {
      buckets = new Float64Array(MIN_FLOOR_BUCKETS * 2)
      for (let i = 0; i < buckets.length; i += 2) {
        buckets[i] = node.floorHard
        buckets[i + 1] = node.floorSoft
      }
      this.#floorBuckets += MIN_FLOOR_BUCKETS
    } else if (node.folds * 4 > buckets.length >> 1 && buckets.length >> 1 < MAX_FLOOR_BUCKETS) {
      // Split every bucket in two: bucket j of the new size holds the segments that were in
      // bucket j mod oldSize, so copying that bucket keeps every floor an upper bound.
      const oldSize = buckets.length >> 1
      const grown = new Float64Array(buckets.length * 2)
      for (let j = 0; j < oldSize * 2; j++) {
        const from = (j & (oldSize - 1)) << 1
        grown[j << 1] = buckets[from]
        grown[(j << 1) + 1] = buckets[from + 1]
      }
      this.#floorBuckets += oldSize
      buckets = grown
    }
    node.buckets = buckets
    const i = bucketSlot(buckets, segment)
    if (hard > buckets[i]) buckets[i] = hard
    if (soft > buckets[i + 1]) buckets[i + 1] = soft
  }

  #armPrune(): void {
    if (this.#closed || this.#pruneInterval === Infinity) return
    this.#timer = this.#clock.setTimeout(this.#onPruneTimer, this.#pruneInterval, { unref: true })
  }

  readonly #onPruneTimer = (): void => {
    this.#timer = undefined
    this.prune(this.#pruneAge)
    // Re-armed only while there is something to prune; the next invalidation re-arms it.
    if (this.#nodes > 0) this.#armPrune()
  }
}

function checkMode(mode: unknown): asserts mode is TagMode {
  if (mode !== 'hard' && mode !== 'soft') throw new InvalidOptionsError('mode', `expected 'hard' or 'soft', got ${typeof mode === 'string' ? JSON.stringify(mode) : typeof mode}`)
}
