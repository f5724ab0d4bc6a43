// `stratacache/testing`: helpers for users' own tests. Nothing in src/ imports this folder.
export { ManualClock } from '../core/manual-clock.js'
export { SeededRandom } from '../core/random.js'
