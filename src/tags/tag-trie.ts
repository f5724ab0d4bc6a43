/**
 * Dependency tags in a versioned prefix trie (Zoocache's design, with its gaps closed).
 *
 * Tags are `:`-separated paths. Invalidating T affects every entry depending on T or on a
 * tag below T: an entry tag E is affected iff T is E or an ancestor of E. So an entry only
 * has to look at the nodes on its own tags' paths:
 * - `invalidate(T)` stamps T's node with a fresh version: O(depth), not O(entries);
 * - an entry stores a snapshot `{ tags, version }` taken when written; it is invalid when a
 *   node on one of its paths carries a hard version newer than the snapshot, stale when
 *   only soft ones are newer;
 * - `check` is O(1) while no invalidation happened since the snapshot was last checked:
 *   the snapshot's `checkedAt` is moved forward after a successful walk (Zoocache's lazy
 *   self-healing), so a read pays the O(sum of depths) walk once per invalidation.
 *
 * Pruning must never make a stale entry look valid again. When a node is pruned, the
 * newest versions in its subtree are folded into its parent's `childFloor`; a path that
 * ends at a missing child is judged by that floor, and a child created again later
 * inherits it (it might be the pruned node reborn). The price is conservatism: after a
 * prune, old entries under that parent may be judged invalid (a forgotten entry, never a
 * stale one).
 */
import type { Clock } from '../core/clock.js'
import type { TimerHandle } from '../core/clock.js'
import { toMs } from '../core/duration.js'
import type { Duration } from '../core/duration.js'
import { InvalidOptionsError, InvalidTagError } from '../core/errors.js'
import { systemClock } from '../core/system-clock.js'
import { HybridClock } from './hybrid-clock.js'

export type TagMode = 'hard' | 'soft'
export type TagCheck = 'valid' | 'stale' | 'invalid'

/** Stored with an entry; plain data, safe to serialise. `checkedAt` is updated in place. */
export interface TagSnapshot {
  readonly tags: readonly string[]
  readonly version: number
  checkedAt: number
}

export interface TagTrieOptions {
  /** @default systemClock */
  clock?: Clock
  /** Nodes not touched for this long are pruned by the periodic prune. @default '1h' */
  pruneAge?: Duration
  /** How often the periodic prune runs (only while nodes exist). @default '10m' */
  pruneInterval?: Duration
}

export interface TagTrieStats {
  readonly nodes: number
  readonly invalidations: number
  readonly pruned: number
}

const MAX_TAG_LENGTH = 256
const MAX_DEPTH = 32
const SEGMENT = /^[A-Za-z0-9_\-.@/+=]+$/

class TagNode {
  children: Map<string, TagNode> | undefined
  hard = 0
  soft = 0
  /** Versions this node may have had before it was pruned and created again. */
  ownHard: number
  ownSoft: number
  /** Newest versions of pruned children's subtrees: applies to any missing child. */
  childHard: number
  childSoft: number
  touched: number

  constructor(inheritHard: number, inheritSoft: number, now: number) {
    this.ownHard = this.childHard = inheritHard
    this.ownSoft = this.childSoft = inheritSoft
    this.touched = now
  }
}

/** Throws `ERR_INVALID_TAG` unless `tag` is a well-formed tag. */
export function validateTag(tag: unknown): asserts tag is string {
  if (typeof tag !== 'string') throw new InvalidTagError(tag, `expected a string, got ${typeof tag}`)
  if (tag.length === 0) throw new InvalidTagError(tag, 'empty')
  if (tag.length > MAX_TAG_LENGTH) throw new InvalidTagError(tag, `longer than ${MAX_TAG_LENGTH} characters`)
  const segments = tag.split(':')
  if (segments.length > MAX_DEPTH) throw new InvalidTagError(tag, `deeper than ${MAX_DEPTH} segments`)
  for (const s of segments) {
    if (s.length === 0) throw new InvalidTagError(tag, 'empty segment')
    if (!SEGMENT.test(s)) throw new InvalidTagError(tag, `segment ${JSON.stringify(s)} has characters outside A-Z a-z 0-9 _ - . @ / + =`)
  }
}

/** Validates, dedupes and sorts tags (a stable snapshot shape). */
export function normalizeTags(tags: readonly unknown[]): string[] {
  if (!Array.isArray(tags)) throw new InvalidTagError(tags, 'expected an array of tags')
  for (const t of tags) validateTag(t)
  return [...new Set(tags as string[])].sort()
}

export class TagTrie {
  readonly #clock: Clock
  readonly #hlc: HybridClock
  readonly #root: TagNode
  readonly #pruneAge: number
  readonly #pruneInterval: number
  #timer: TimerHandle | undefined
  /** Version of the newest invalidation applied. */
  #lastInvalidation = 0
  #nodes = 0
  #invalidations = 0
  #pruned = 0
  #closed = false

  constructor(options: TagTrieOptions = {}) {
    this.#clock = options.clock ?? systemClock
    this.#hlc = new HybridClock(this.#clock)
    this.#root = new TagNode(0, 0, this.#clock.now())
    this.#pruneAge = toMs(options.pruneAge ?? '1h', 'pruneAge')
    this.#pruneInterval = toMs(options.pruneInterval ?? '10m', 'pruneInterval')
    if (this.#pruneInterval <= 0) throw new InvalidOptionsError('pruneInterval', 'expected a duration > 0')
  }

  validate(tag: unknown): void {
    validateTag(tag)
  }

  /** A snapshot for an entry written now with `tags`. */
  snapshot(tags: readonly string[]): TagSnapshot {
    const normalized = normalizeTags(tags)
    const version = this.#hlc.next()
    return { tags: normalized, version, checkedAt: version }
  }

  check(snapshot: unknown): TagCheck {
    const snap = snapshot as TagSnapshot
    if (snap.checkedAt >= this.#lastInvalidation) return 'valid'
    const now = this.#clock.now()
    let result: TagCheck = 'valid'
    for (const tag of snap.tags) {
      const r = this.#checkPath(tag, snap.version, now)
      if (r === 'invalid') return 'invalid'
      if (r === 'stale') result = 'stale'
    }
    // Nothing newer on any path: the next read is O(1) until the next invalidation.
    if (result === 'valid') snap.checkedAt = this.#lastInvalidation
    return result
  }

  invalidate(tag: string, mode: TagMode = 'hard'): number {
    validateTag(tag)
    const version = this.#hlc.next()
    this.#apply(tag, version, mode)
    return version
  }

  /**
   * Applies an invalidation made elsewhere with its version (idempotent; an older version
   * than the node already has changes nothing). Ratchets this process's clock past it.
   */
  observe(tag: string, version: number, mode: TagMode = 'hard'): void {
    validateTag(tag)
    if (!Number.isSafeInteger(version) || version <= 0) throw new InvalidOptionsError('version', `expected a positive safe integer, got ${String(version)}`)
    this.#hlc.observe(version)
    this.#apply(tag, version, mode)
  }

  /** Removes nodes not touched for `maxIdleMs` (0: every prunable node). Returns how many. */
  prune(maxIdleMs = 0): number {
    const cutoff = this.#clock.now() - maxIdleMs
    const before = this.#pruned
    this.#pruneChildren(this.#root, cutoff)
    return this.#pruned - before
  }

  stats(): TagTrieStats {
    return { nodes: this.#nodes, invalidations: this.#invalidations, pruned: this.#pruned }
  }

  close(): void {
    this.#closed = true
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #apply(tag: string, version: number, mode: TagMode): void {
    const now = this.#clock.now()
    let node = this.#root
    for (const segment of tag.split(':')) {
      node.touched = now
      let child = node.children?.get(segment)
      if (child === undefined) {
        child = new TagNode(node.childHard, node.childSoft, now)
        ;(node.children ??= new Map()).set(segment, child)
        this.#nodes++
      }
      node = child
    }
    node.touched = now
    if (mode === 'hard') node.hard = Math.max(node.hard, version)
    else node.soft = Math.max(node.soft, version)
    if (version > this.#lastInvalidation) this.#lastInvalidation = version
    this.#invalidations++
    if (this.#timer === undefined && !this.#closed) this.#schedulePrune()
  }

  #checkPath(tag: string, version: number, now: number): TagCheck {
    let node = this.#root
    let stale = false
    let start = 0
    for (;;) {
      const end = tag.indexOf(':', start)
      const segment = end === -1 ? tag.slice(start) : tag.slice(start, end)
      const child = node.children?.get(segment)
      if (child === undefined) {
        // Unknown below here: judged by what was pruned beneath `node`.
        if (node.childHard > version) return 'invalid'
        return stale || node.childSoft > version ? 'stale' : 'valid'
      }
      node = child
      node.touched = now
      if (node.hard > version || node.ownHard > version) return 'invalid'
      if (node.soft > version || node.ownSoft > version) stale = true
      if (end === -1) return stale ? 'stale' : 'valid'
      start = end + 1
    }
  }

  #pruneChildren(node: TagNode, cutoff: number): void {
    if (node.children === undefined) return
    for (const [segment, child] of node.children) {
      this.#pruneChildren(child, cutoff)
      if (child.children === undefined && child.touched <= cutoff) {
        node.childHard = Math.max(node.childHard, child.hard, child.ownHard, child.childHard)
        node.childSoft = Math.max(node.childSoft, child.soft, child.ownSoft, child.childSoft)
        node.children.delete(segment)
        this.#nodes--
        this.#pruned++
      }
    }
    if (node.children.size === 0) node.children = undefined
  }

  #schedulePrune(): void {
    this.#timer = this.#clock.setTimeout(
      () => {
        this.#timer = undefined
        this.prune(this.#pruneAge)
        if (this.#nodes > 0 && !this.#closed) this.#schedulePrune()
      },
      this.#pruneInterval,
      { unref: true },
    )
  }
}
