// Dependency tags: a versioned prefix trie with hybrid-logical-clock versions (imports only src/core).
export { HybridClock } from './hybrid-clock.js'
export { normalizeTags, TagTrie, validateTag } from './tag-trie.js'
export type { TagCheck, TagMode, TagSnapshot, TagTrieOptions, TagTrieStats } from './tag-trie.js'
