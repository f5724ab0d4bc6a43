import { InvalidOptionsError } from '../core/errors.js'
import { isVersion } from '../core/hlc.js'
import { normalizeTags } from './validate-tag.js'

/**
 * What an entry stores about its dependencies. Plain data: `JSON.stringify` gives a
 * complete copy, and `parseTagSnapshot` turns such data back into a snapshot.
 *
 * `checkedAt` / `checkedBy` are the fast-path stamp: the trie that last found the entry
 * valid writes its change counter and its id here, in place (no allocation), so the next
 * check is O(1) until that trie applies another invalidation. They mean nothing to another
 * process or another trie instance, which simply ignores them (a foreign stamp can never
 * match: ids are random 48-bit numbers, never 0). Snapshots must therefore not be frozen.
 */
export interface TagSnapshot {
  /** The entry's tags: validated, deduplicated, sorted. */
  readonly tags: readonly string[]
  /**
   * Hybrid-clock version the entry's data is as fresh as: an invalidation with a greater
   * version, of one of `tags` or of an ancestor, makes the entry stale or invalid.
   */
  readonly version: number
  /** Change counter of the trie that last found this snapshot valid (0: never). */
  checkedAt: number
  /** Id of that trie (0: none). */
  checkedBy: number
}

/**
 * Rebuilds a snapshot from plain data (read from Redis, disk or a peer). Tags are
 * re-validated (`ERR_INVALID_TAG`); a missing or malformed `version` raises
 * `ERR_INVALID_OPTIONS` naming `snapshot.version`. The fast-path stamp is reset, so the
 * first check walks the trie (and ratchets the local clock past `version`).
 */
export function parseTagSnapshot(data: unknown): TagSnapshot {
  if (data === null || typeof data !== 'object') throw new InvalidOptionsError('snapshot', 'expected an object { tags, version }')
  const { tags, version } = data as { tags?: unknown; version?: unknown }
  if (!Array.isArray(tags)) throw new InvalidOptionsError('snapshot.tags', 'expected an array of tags')
  if (!isVersion(version)) throw new InvalidOptionsError('snapshot.version', `expected a safe integer >= 0, got ${typeof version === 'number' ? String(version) : typeof version}`)
  return { tags: normalizeTags(tags as readonly string[], true), version, checkedAt: 0, checkedBy: 0 }
}
