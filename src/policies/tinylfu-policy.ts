/**
 * Window-TinyLFU eviction, as in Caffeine.
 *
 * Design (Einziger, Friedman & Manes, "TinyLFU: A Highly Efficient Cache Admission Policy",
 * ACM ToS 2017; Caffeine's BoundedLocalCache):
 * - A "window" (1% of capacity at first; see below) takes every new entry, so a burst of
 *   new keys gets a chance to prove itself.
 * - The rest is a segmented main space: "probation" (20% of it) and "protected" (80%). A hit in
 *   probation promotes the entry to protected; protected overflow demotes its least
 *   recently used entry back to probation.
 * - When the cache is over its bound and the window is over its share, the window's least
 *   recently used entry (the candidate) competes with probation's (the victim): the one the
 *   frequency sketch says is used less often is evicted. One-off keys (scans) thus pass
 *   through the window without flushing the frequently used entries in main.
 * - Hash-flooding defence (Caffeine): a candidate with a moderately high frequency that
 *   does not beat the victim is still admitted with probability 1/128, so an attacker
 *   cannot pin a victim by colliding with it in the sketch.
 * - The window/main split adapts (docs/decisions/0150-adaptive-window.md): it starts at 1%
 *   and follows ARC's learning rule (Megiddo & Modha, FAST '03) on two "ghost" records of
 *   recently evicted keys. A miss on a key lately evicted from the window (a candidate that
 *   lost admission) says a larger window would have hit: the window grows; a miss on a key
 *   lately evicted from the main space says the opposite: it shrinks. Each step is 1 unit,
 *   or the ratio of the two ghost populations when the other side's is the larger (as ARC's
 *   p), times two. As in ARC, a key counts as seen twice (a main ghost) only when it was
 *   promoted to protected or the sketch estimates it at 2 or more; a key admitted to probation
 *   and evicted without a second use is a window ghost, as ARC's B1 (decision 0330). The
 *   ghosts are one direct-mapped table of hash tags, overwritten as evictions come
 *   (half a 4-byte cell per entry: about 2 bytes per entry). All of it runs on the eviction and
 *   insert paths; a hit does no extra work. Caffeine's hill climber on the sampled hit rate
 *   was measured first and lost up to 6 points at mid sizes on the ARC traces (the hit rate
 *   of those traces moves with phases far more than with the window; see the record).
 * - Ghost admission (ARC's B1 rule, decision 0380): a key that returns while a window ghost
 *   (seen once, evicted without reuse) is marked seen twice (PROMOTED) in the window, so when
 *   evicted later it is a main ghost; and when it reaches the window's cold end it is admitted
 *   even if the victim's estimate is not below its own, while the window ghosts are at least
 *   as many as the main ones (what is being lost is mostly keys seen once: recency is
 *   paying). Frequency alone refused such keys on P3 at 262,144 entries: cold victims still
 *   counted at 15 from earlier phases vetoed keys reused 200k-600k requests apart.
 *
 * How it stays cheaper per hit than an exact LRU (the hot path of a read-mostly cache):
 * - Recency inside the window and protected segments is kept as CLOCK (second chance)
 *   over each segment's list: a hit only sets the entry's "referenced" bit; when an entry
 *   reaches the cold end of its segment (as candidate, or by protected overflow) with the
 *   bit set, the bit is cleared and the entry goes back to the warm end instead. This is
 *   the classic approximation of LRU (what operating systems use for page caches); a
 *   probation hit still promotes at once, as in Caffeine.
 * - Each slot's flag byte keeps its key's sketch estimate as of the key's last count (its
 *   insert or a hit), and the slots' copies are halved whenever the sketch halves. Admission
 *   takes the candidate's estimate from there: the candidate was counted moments ago (the
 *   window holds the newest 1%), so its copy is what the sketch would say, without hashing
 *   its key or reading the sketch. The victim's estimate is looked up live: it was counted
 *   long ago, and colliding keys have raised the sketch since; comparing a fresh estimate
 *   with an old copy favours newcomers (on the loop-heavy trace in bench/ it cost up to 11
 *   points of hit ratio).
 * - A key whose estimate is at the cap (15) skips the sketch on its hits exactly (an
 *   increment would change nothing) until the next halving.
 * - The policy keeps no hashes: `hashOf(slot)` reads the one the engine's key index stores
 *   per slot (key-index.ts). Per slot the policy keeps 9 bytes (links and the flag byte)
 *   and about 2 bytes of sketch.
 */
import type { Random } from '../core/random.js'
import { growFloat64, nextPowerOfTwo } from '../core/grow-array.js'
import type { EvictionPolicy } from './eviction-policy.js'
import { FrequencySketch, HALVED, MAX_FREQUENCY } from './frequency-sketch.js'

// Segment numbers (the low two bits of a slot's flag byte).
const WINDOW = 0
const PROBATION = 1
const PROTECTED = 2
const NONE = 3
const SEG = 3
/** Read since the entry last reached the warm end of its segment (CLOCK's reference bit). */
const REF = 4
/**
 * Promoted to protected since its insert (ARC's T2: seen twice while cached), or, in the
 * window, inserted on its return as a window ghost (ARC's B1 hit). Kept across moves.
 */
const PROMOTED = 8
/** The bits a move rewrites: the segment and the reference bit. */
const PLACE = SEG | REF
/** The high nibble: the key's sketch estimate as of its last count (0..15). */
const FREQ_SHIFT = 4
const LOW = 15
/** A flag byte at or above this has its estimate at the cap: hits skip the sketch. */
const CAPPED = MAX_FREQUENCY << FREQ_SHIFT
/** The sketch's HALVED, as a private const: V8 folds it, where an imported binding is a checked cell read per use. */
const SKETCH_HALVED = HALVED
// Links: two int32 per slot.
const NEXT = 0
const PREV = 1
const HASHDOS_THRESHOLD = 6

export class TinyLfuPolicy implements EvictionPolicy {
  readonly name = 'tinylfu'
  /** Per slot: next, prev. */
  #links: Int32Array
  /** Per slot: segment | REF | estimate << FREQ_SHIFT. */
  #flags: Uint8Array
  /** Per-slot weight, only when the policy counts bytes; every entry weighs 1 otherwise. */
  #weight: Float64Array | undefined
  #capacity: number
  // head (warm end) and tail (cold end) of the three segments
  #heads = new Int32Array([-1, -1, -1])
  #tails = new Int32Array([-1, -1, -1])
  #weights = new Float64Array(3)
  #windowMax: number
  #protectedMax: number
  #mainMax: number
  #sketch: FrequencySketch
  #random: Random
  #hashOf: (slot: number) => number
  /** The victim's estimate as the last #admit looked it up. */
  #victimFrequency = 0
  /** The bound in weight units. */
  readonly #maximum: number
  /** The window's share as the ghost rule sets it (fractional; #windowMax is it rounded). */
  #windowTarget: number
  /**
   * Ghosts: per cell, the hash of a recently evicted key with its low two bits replaced by
   * where it was evicted from (GHOST_WINDOW or GHOST_MAIN); 0 is an empty cell.
   */
  #ghosts: Int32Array
  /** Occupied ghost cells evicted from the window, and from the main space. */
  #windowGhosts = 0
  #mainGhosts = 0

  /**
   * @param capacity  slots to allocate now
   * @param maximum   the bound in weight units (entries, or bytes when only maxBytes is set)
   * @param hashOf    the 32-bit hash of the key in a slot (the engine owns the keys)
   */
  constructor(capacity: number, maximum: number, random: Random, sketchCapacity: number, weighted: boolean, hashOf: (slot: number) => number) {
    this.#links = emptyLinks(capacity)
    this.#flags = new Uint8Array(capacity).fill(NONE)
    this.#capacity = capacity
    this.#weight = weighted ? new Float64Array(capacity) : undefined
    this.#maximum = maximum
    this.#windowMax = 0
    this.#mainMax = 0
    this.#protectedMax = 0
    this.#windowTarget = Math.max(1, Math.floor(maximum * 0.01))
    this.#setWindow(this.#windowTarget)
    this.#ghosts = new Int32Array(nextPowerOfTwo(Math.max(16, Math.round(sketchCapacity * GHOSTS_PER_ENTRY))))
    this.#sketch = new FrequencySketch(sketchCapacity)
    this.#random = random
    this.#hashOf = hashOf
  }

  grow(capacity: number): void {
    if (capacity <= this.#capacity) return
    const links = emptyLinks(capacity)
    links.set(this.#links)
    this.#links = links
    const flags = new Uint8Array(capacity).fill(NONE)
    flags.set(this.#flags)
    this.#flags = flags
    this.#capacity = capacity
    if (this.#weight !== undefined) this.#weight = growFloat64(this.#weight, capacity)
    // A resized sketch starts empty: so do the copies of its estimates.
    if (this.#sketch.ensureCapacity(capacity)) for (let i = 0; i < flags.length; i++) flags[i] &= LOW
  }

  onInsert(slot: number, hash: number, weight: number): void {
    if (this.#weight !== undefined) this.#weight[slot] = weight
    this.#flags[slot] = NONE | (this.#count(hash) << FREQ_SHIFT)
    this.#linkHead(WINDOW, slot)
    // A window ghost's return is the key's second use: seen twice, as ARC's B1 hit (#admit).
    if (this.#learn(hash, weight)) this.#flags[slot] |= PROMOTED
    // A window the ghost rule shrank gives one more entry to probation per insert, so it
    // drains at the pace of the misses (victim() alone would hold it at its size).
    if (this.#weights[WINDOW] > this.#windowMax + weight) {
      const cand = this.#coldest(WINDOW)
      if (cand !== slot) this.#move(cand, PROBATION)
    }
    // While the main space has room, window overflow moves there without any eviction.
    while (this.#weights[WINDOW] > this.#windowMax) {
      // Counting entries, a full main space takes none: no need to look at the candidate
      // (victim() will, and #coldest gives the same answer twice).
      if (this.#weight === undefined && this.#weights[PROBATION] + this.#weights[PROTECTED] + 1 > this.#mainMax) break
      const cand = this.#coldest(WINDOW)
      if (cand === slot || this.#weights[PROBATION] + this.#weights[PROTECTED] + this.#weightOf(cand) > this.#mainMax) break
      this.#move(cand, PROBATION)
    }
  }

  onAccess(slot: number): void {
    // Most hits of a read-mostly cache: a key at the cap, outside probation. Kept small so
    // that V8 inlines it into the engine's get; everything else is #countHit.
    const f = this.#flags[slot]
    if (f >= CAPPED && (f & SEG) !== PROBATION) {
      if ((f & REF) === 0) this.#flags[slot] = f | REF
      return
    }
    this.#countHit(slot, f)
  }

  /** A hit that counts in the sketch (key below the cap) or promotes (probation). */
  #countHit(slot: number, before: number): void {
    const flags = this.#flags
    let f = before
    if (f < CAPPED) f = (f & LOW) | (this.#count(this.#hashOf(slot)) << FREQ_SHIFT)
    if ((f & SEG) === PROBATION) {
      flags[slot] = f
      this.#promote(slot)
    } else if ((f & REF) === 0 || f !== flags[slot]) {
      flags[slot] = f | REF
    }
  }

  onUpdate(slot: number, weight: number): void {
    if (this.#weight !== undefined) {
      this.#weights[this.#flags[slot] & SEG] += weight - this.#weight[slot]
      this.#weight[slot] = weight
    }
    this.onAccess(slot)
  }

  onRemove(slot: number): void {
    this.#unlink(slot)
    this.#flags[slot] = NONE
  }

  victim(): number {
    if (this.#weights[WINDOW] > this.#windowMax) {
      const cand = this.#coldest(WINDOW)
      const mainVictim = this.#tails[PROBATION] !== -1 ? this.#tails[PROBATION] : this.#coldest(PROTECTED)
      if (cand === -1) return mainVictim
      if (mainVictim === -1) return cand
      if (this.#admit(cand, mainVictim)) {
        this.#move(cand, PROBATION)
        return this.#bury(mainVictim, this.#ghostKind(mainVictim, this.#victimFrequency))
      }
      return this.#bury(cand, GHOST_WINDOW)
    }
    const probationVictim = this.#tails[PROBATION]
    if (probationVictim !== -1) {
      const f = (this.#flags[probationVictim] & PROMOTED) !== 0 ? SEEN_TWICE : this.#sketch.frequency(this.#hashOf(probationVictim))
      return this.#bury(probationVictim, this.#ghostKind(probationVictim, f))
    }
    const protectedVictim = this.#coldest(PROTECTED)
    return protectedVictim !== -1 ? this.#bury(protectedVictim, GHOST_MAIN) : this.#coldest(WINDOW)
  }

  victimBeforeInsert(hash: number): number {
    // The one case told cheaply, and the common one of a cache at its bound: a full window
    // (so the insert makes it overflow, and a full main space takes nothing) whose coldest
    // entry is unreferenced (so CLOCK moves nothing) and a non-empty probation. victim()
    // would then pit that entry against probation's coldest, after onInsert's count.
    if (this.#weight !== undefined || this.#weights[WINDOW] !== this.#windowMax) return -1
    // A ghost's return moves the split first (in onInsert), which may change what victim() does.
    if (this.#ghostCell(hash) !== -1) return -1
    const cand = this.#tails[WINDOW]
    const mainVictim = this.#tails[PROBATION]
    if (cand === -1 || mainVictim === -1 || (this.#flags[cand] & REF) !== 0) return -1
    const frequency = this.#count(hash)
    // The evicted entry's slot then holds the new key, placed as onInsert would place it: at
    // the window's warm end with the estimate just counted, nothing else (no REF, no PROMOTED).
    // Each segment gives one entry and takes one, so no weight changes (entries weigh 1 here).
    const flags = this.#flags
    if (this.#admit(cand, mainVictim)) {
      // The candidate goes to probation's warm end, probation's coldest to the window's.
      this.#bury(mainVictim, this.#ghostKind(mainVictim, this.#victimFrequency))
      this.#popTail(WINDOW, cand)
      this.#popTail(PROBATION, mainVictim)
      this.#pushHead(PROBATION, cand)
      flags[cand] = (flags[cand] & ~PLACE) | PROBATION
      this.#pushHead(WINDOW, mainVictim)
      flags[mainVictim] = WINDOW | (frequency << FREQ_SHIFT)
      return mainVictim
    }
    this.#bury(cand, GHOST_WINDOW)
    if (this.#heads[WINDOW] !== cand) {
      this.#popTail(WINDOW, cand)
      this.#pushHead(WINDOW, cand)
    }
    flags[cand] = WINDOW | (frequency << FREQ_SHIFT)
    return cand
  }

  /** Unlinks `slot`, the cold end of `seg`, leaving weights and flags as they are. */
  #popTail(seg: number, slot: number): void {
    const links = this.#links
    const p = links[slot * 2 + PREV]
    this.#tails[seg] = p
    if (p === -1) this.#heads[seg] = -1
    else links[p * 2 + NEXT] = -1
    links[slot * 2 + PREV] = -1
  }

  /** Links unlinked `slot` at the warm end of `seg`, leaving weights and flags as they are. */
  #pushHead(seg: number, slot: number): void {
    const links = this.#links
    const head = this.#heads[seg]
    links[slot * 2 + NEXT] = head
    if (head === -1) this.#tails[seg] = slot
    else links[head * 2 + PREV] = slot
    this.#heads[seg] = slot
  }

  forEach(fn: (slot: number) => void): void {
    // Most valuable first: protected, then window, then probation.
    for (const seg of [PROTECTED, WINDOW, PROBATION]) {
      for (let s = this.#heads[seg]; s !== -1; s = this.#links[s * 2 + NEXT]) fn(s)
    }
  }

  reset(): void {
    this.#links = emptyLinks(this.#capacity)
    this.#flags.fill(NONE)
    this.#heads.fill(-1)
    this.#tails.fill(-1)
    this.#weights.fill(0)
    // The sketch is kept: it records the workload, not the contents, and the engine's
    // clear() with listeners (which removes entries one by one) keeps it too.
  }

  /** The window's share of the bound now (weight units), as the ghost rule has set it. */
  get windowMaximum(): number {
    return this.#windowMax
  }

  /**
   * Which ghost a main-space victim becomes, as ARC tells its two lists apart: a key used
   * twice while cached (promoted to protected since its insert, or estimated at 2 or more by
   * the sketch: `frequency`) is a main ghost; a key admitted to probation and never used
   * again there is a window ghost, since only a longer stay in the window (recency) would
   * have kept it. Counting those as main ghosts (as before) shrank the window on P3 at
   * 262,144 entries until it lost to LRU (see docs/decisions/0330-ghost-attribution.md).
   */
  #ghostKind(slot: number, frequency: number): number {
    return (this.#flags[slot] & PROMOTED) !== 0 || frequency >= SEEN_TWICE ? GHOST_MAIN : GHOST_WINDOW
  }

  /** Records the key in `slot`, about to be evicted from the window or the main space, as a ghost. */
  #bury(slot: number, where: number): number {
    const hash = this.#hashOf(slot)
    const ghosts = this.#ghosts
    const i = ghostCell(hash, ghosts.length - 1)
    const old = ghosts[i] & GHOST_WHERE
    if (old === GHOST_WINDOW) this.#windowGhosts--
    else if (old === GHOST_MAIN) this.#mainGhosts--
    ghosts[i] = (hash & ~GHOST_WHERE) | where
    if (where === GHOST_WINDOW) this.#windowGhosts++
    else this.#mainGhosts++
    return slot
  }

  /**
   * A miss on `hash` (about to be inserted, of `weight`): if the key is a ghost, ARC's rule
   * moves the split towards the side that evicted it, by `weight` times the larger of 1 and
   * the other side's ghosts over this side's. Returns true when the key was a window ghost.
   */
  #learn(hash: number, weight: number): boolean {
    const i = this.#ghostCell(hash)
    if (i === -1) return false
    const ghosts = this.#ghosts
    const cell = ghosts[i]
    ghosts[i] = 0
    const w = this.#windowGhosts
    const m = this.#mainGhosts
    if ((cell & GHOST_WHERE) === GHOST_WINDOW) {
      this.#windowGhosts--
      this.#windowTarget += GAIN * weight * (w >= m ? 1 : m / w)
    } else {
      this.#mainGhosts--
      this.#windowTarget -= GAIN * weight * (m >= w ? 1 : w / m)
    }
    const hi = Math.max(1, this.#maximum * MAX_WINDOW)
    this.#windowTarget = Math.min(hi, Math.max(1, this.#windowTarget))
    this.#setWindow(this.#windowTarget)
    return (cell & GHOST_WHERE) === GHOST_WINDOW
  }

  /** The index of the ghost cell holding `hash`, or -1 when the key is not a ghost. */
  #ghostCell(hash: number): number {
    const ghosts = this.#ghosts
    const i = ghostCell(hash, ghosts.length - 1)
    const cell = ghosts[i]
    return cell !== 0 && (cell & ~GHOST_WHERE) === (hash & ~GHOST_WHERE) ? i : -1
  }

  /** Sets the window's share to `target` (rounded) and the main space's to the rest, 80% of it protected. */
  #setWindow(target: number): void {
    this.#windowMax = Math.round(target)
    this.#mainMax = Math.max(0, this.#maximum - this.#windowMax)
    this.#protectedMax = Math.floor(this.#mainMax * 0.8)
  }

  /** The estimate kept for the key in `slot` (0..15): its sketch estimate as of its last count, halved with the sketch. */
  frequencyOf(slot: number): number {
    return this.#flags[slot] >>> FREQ_SHIFT
  }

  /** A probation hit: to the warm end of protected; protected overflow goes back to probation. */
  #promote(slot: number): void {
    this.#move(slot, PROTECTED)
    this.#flags[slot] |= PROMOTED
    while (this.#weights[PROTECTED] > this.#protectedMax) {
      const demoted = this.#coldest(PROTECTED)
      if (demoted === slot) break
      this.#move(demoted, PROBATION)
    }
  }

  /**
   * The cold end of `seg` after CLOCK's second chance: referenced entries found there are
   * moved to the warm end with their bit cleared. Ends: every bit it meets is cleared.
   */
  #coldest(seg: number): number {
    const flags = this.#flags
    let s = this.#tails[seg]
    while (s !== -1 && (flags[s] & REF) !== 0 && this.#heads[seg] !== s) {
      this.#move(s, seg)
      s = this.#tails[seg]
    }
    if (s !== -1) flags[s] &= ~REF
    return s
  }

  #weightOf(slot: number): number {
    return this.#weight === undefined ? 1 : this.#weight[slot]
  }

  /**
   * Whether the window's `candidate` takes the place of probation's `victim`: it is estimated
   * more frequent, or it came back as a window ghost (PROMOTED in the window) while window
   * ghosts are at least as many as main ones (ghost admission, decision 0380), or it wins the
   * hash-flooding defence's draw.
   */
  #admit(candidate: number, victim: number): boolean {
    const f = this.#flags[candidate]
    const c = f >>> FREQ_SHIFT
    const v = this.#sketch.frequency(this.#hashOf(victim))
    this.#victimFrequency = v
    if (c > v) return true
    if ((f & PROMOTED) !== 0 && this.#windowGhosts >= this.#mainGhosts) return true
    return c >= HASHDOS_THRESHOLD && this.#random.next() < 1 / 128
  }

  /** Moves `slot` to the warm end of `seg` (its own segment or another), clearing REF. */
  #move(slot: number, seg: number): void {
    this.#unlink(slot)
    this.#linkHead(seg, slot)
  }

  #linkHead(seg: number, slot: number): void {
    const links = this.#links
    const r = slot * 2
    const head = this.#heads[seg]
    this.#flags[slot] = (this.#flags[slot] & ~PLACE) | seg
    links[r + PREV] = -1
    links[r + NEXT] = head
    if (head === -1) this.#tails[seg] = slot
    else links[head * 2 + PREV] = slot
    this.#heads[seg] = slot
    this.#weights[seg] += this.#weightOf(slot)
  }

  #unlink(slot: number): void {
    const seg = this.#flags[slot] & SEG
    if (seg === NONE) return
    const links = this.#links
    const r = slot * 2
    const p = links[r + PREV]
    const n = links[r + NEXT]
    if (p === -1) this.#heads[seg] = n
    else links[p * 2 + NEXT] = n
    if (n === -1) this.#tails[seg] = p
    else links[n * 2 + PREV] = p
    links[r + NEXT] = links[r + PREV] = -1
    this.#flags[slot] = (this.#flags[slot] & ~PLACE) | NONE
    this.#weights[seg] -= this.#weightOf(slot)
  }

  /**
   * Counts one use of the key with `hash` in the sketch; returns its new estimate (0..15).
   * When the count halved the sketch's counters, the slots' copies of estimates are halved too.
   */
  #count(hash: number): number {
    const r = this.#sketch.increment(hash)
    if (r >= SKETCH_HALVED) halveNibbles(this.#flags)
    return r & LOW
  }
}


/**
 * Halves the estimate nibble of every flag byte, keeping the low bits. A function of its own
 * with nothing after the loop (see `halve` in frequency-sketch.ts: it runs rarely, so V8
 * compiles it on-stack mid-loop, and code after the loop would deoptimize it every time).
 */
function halveNibbles(flags: Uint8Array): void {
  for (let i = 0; i < flags.length; i++) flags[i] = ((flags[i] >>> 1) & 0x70) | (flags[i] & LOW)
}

/** Ghost cells per entry the sketch is sized for (measured: 0.25-1 all close; see the record). */
const GHOSTS_PER_ENTRY = 0.5
/**
 * Each ghost's return moves the window by this many times ARC's step (measured 1, 1.5, 2, 3,
 * 4, 8 on the ARC traces: 2 is the largest that keeps every smaller size; see 0330).
 */
const GAIN = 2
/** A sketch estimate at which a main-space victim counts as seen twice (a main ghost). */
const SEEN_TWICE = 2
/** The window never takes more than this share of the bound. */
const MAX_WINDOW = 0.99
/** The low two bits of a ghost cell: where its key was evicted from. */
const GHOST_WHERE = 3
const GHOST_WINDOW = 1
const GHOST_MAIN = 2

/**
 * The ghost cell of `hash` (remixed: the engine's key index uses the hash's low bits too). A
 * constant, not a function declaration, which V8 re-checks at every inlined call (0385, 0396).
 */
const ghostCell = (hash: number, mask: number): number => {
  const h = Math.imul(hash ^ 0x5bd1e995, 0x9e3779b1)
  return (h ^ (h >>> 16)) & mask
}

function emptyLinks(capacity: number): Int32Array {
  return new Int32Array(capacity * 2).fill(-1)
}
