// Dependency tags: a versioned prefix trie with hybrid-logical-clock versions (imports only src/core).
export { HybridLogicalClock, isVersion, LOGICAL_BITS, MAX_VERSION_MS, msOfVersion, versionFromMs } from '../core/hlc.js'
export type { HybridLogicalClockOptions } from '../core/hlc.js'
export { parseTagSnapshot } from './tag-snapshot.js'
export type { TagSnapshot } from './tag-snapshot.js'
export { TagTrie } from './tag-trie.js'
export type { TagCheck, TagInvalidation, TagMode, TagTrieOptions, TagTrieStats } from './tag-trie.js'
export { MAX_TAG_DEPTH, MAX_TAG_LENGTH, normalizeTags, TAG_SEPARATOR, validateTag } from './validate-tag.js'
