/**
 * Instructions per `getOrSet` hit, for iterating on the facade's hit path on a machine whose
 * speed drifts (the paired `facade` suite confirms a gain; this says where it comes from).
 *
 *   valgrind --tool=callgrind --separate-threads=yes --dump-before=uv_getrusage \
 *     --callgrind-out-file=/tmp/cg.%p node --single-threaded --perf-basic-prof \
 *     dist/bench/facade-instructions.js ttl 6
 *   writes one profile per pass of 200,000 hits (3 warm-up passes, then 6): a pass's main
 *   thread total over 200,000 is the cost of one hit; --perf-basic-prof names the JIT code.
 *
 * Same keys and stream as bench/facade.ts (100k `key:<i>`, Zipf(0.99), 200k requests, seed
 * 42), sequential callers, the call compiled into the loop as there. The cache's hash seed
 * comes from a SeededRandom, so probe lengths (and counts) repeat from run to run.
 * Subjects: `ttl` (getOrSet(k, () => load(k), { ttl: '1h' })), `plain` (no options, TTL in
 * the defaults), `lru-cache` (fetch), `engine` (MemoryCache#get alone, TTL 1 h), `hash`
 * (hashString alone), `set` (set(k, 1, { ttl: '1h' }) awaited, distinct keys in turn past a 10,000-entry
 * bound: every set evicts), `lru-set` (lru-cache's set, synchronous, same stream and bound), and
 * `engine-set` / `engine-set-lru` (MemoryCache#set(k, 1) alone, default TTL 1 h, same stream and bound,
 * tinylfu / lru: the set-evict suite's engine sets).
 */
import { LRUCache } from 'lru-cache'
import { createCache } from '../src/cache/cache.js'
import { SeededRandom } from '../src/core/random.js'
import { MemoryCache } from '../src/memory/memory-cache.js'
import { hashString } from '../src/memory/hash-key.js'
import { zipfStream } from './traces.js'

const KEYS = 100_000
const LENGTH = 200_000
const subject = process.argv[2] ?? 'ttl'
const passes = Number(process.argv[3] ?? '0')
/** The set subjects' bound, as in bench/facade.ts. */
const SET_BOUND = 10_000

const load = async (k: string): Promise<number> => Number(k.slice(4))
const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (...args: string[]) => (...args: unknown[]) => Promise<number>

function setup(): { c: unknown; call: string; sync: boolean } {
  switch (subject) {
    case 'ttl':
      return { c: createCache<number>({ memory: { maxEntries: KEYS }, random: new SeededRandom(1) }), call: "await c.getOrSet(k, () => load(k), { ttl: '1h' })", sync: false }
    case 'plain':
      return { c: createCache<number>({ memory: { maxEntries: KEYS }, defaults: { ttl: '1h' }, random: new SeededRandom(1) }), call: 'await c.getOrSet(k, () => load(k))', sync: false }
    case 'lru-cache':
      return { c: new LRUCache<string, number>({ max: KEYS, ttl: 3_600_000, fetchMethod: load }), call: 'await c.fetch(k)', sync: false }
    case 'engine': {
      const c = new MemoryCache<string, number>({ maxEntries: KEYS, ttl: 3_600_000, random: new SeededRandom(1) })
      for (let i = 0; i < KEYS; i++) c.set(`key:${i}`, i)
      return { c, call: '(c.get(k) ?? 0)', sync: true }
    }
    case 'hash':
      return { c: undefined, call: '(hashString(k, 12345) & 1) + 1', sync: true }
    case 'set':
      return { c: createCache<number>({ memory: { maxEntries: SET_BOUND }, random: new SeededRandom(1) }), call: "(await c.set(k, 1, { ttl: '1h' }), 1)", sync: false }
    case 'lru-set':
      return { c: new LRUCache<string, number>({ max: SET_BOUND }), call: '(c.set(k, 1, { ttl: 3_600_000 }), 1)', sync: true }
    case 'engine-set':
      return { c: new MemoryCache<string, number>({ maxEntries: SET_BOUND, ttl: 3_600_000, random: new SeededRandom(1) }), call: '(c.set(k, 1), 1)', sync: true }
    case 'engine-set-lru':
      return { c: new MemoryCache<string, number>({ maxEntries: SET_BOUND, policy: 'lru', ttl: 3_600_000, random: new SeededRandom(1) }), call: '(c.set(k, 1), 1)', sync: true }
    default:
      throw new Error(`unknown subject ${subject}`)
  }
}

async function main(): Promise<void> {
  const names = Array.from({ length: KEYS }, (_, i) => `key:${i}`)
  // The set subjects write distinct keys in turn (every set past the bound evicts), as bench/facade.ts's set rows do.
  const setting = subject === 'set' || subject === 'lru-set' || subject.startsWith('engine-set')
  const stream = setting ? Array.from({ length: LENGTH }, (_, i) => names[i % KEYS] as string) : Array.from(zipfStream(KEYS, 0.99, LENGTH, 42), (i) => names[i] as string)
  const { c, call, sync } = setup()
  const body = `let sink = 0; for (let i = 0; i < stream.length; i++) { const k = stream[i]; sink += ${call} } return sink`
  const run = sync ? new Function('c', 'stream', 'load', 'hashString', body) : new AsyncFunction('c', 'stream', 'load', 'hashString', body)
  if (!sync) await new AsyncFunction('c', 'stream', 'load', `for (const k of stream) ${call}; return 1`)(c, names, load)
  // Warm-up: optimized code, then the measured passes. Each pass begins with a call of
  // process.cpuUsage() (uv_getrusage): `valgrind --tool=callgrind --dump-before=uv_getrusage`
  // then writes one profile per pass.
  let sink = 0
  for (let i = 0; i < 3 + passes; i++) {
    process.cpuUsage()
    sink += await run(c, stream, load, hashString)
  }
  process.cpuUsage()
  if (passes > 0 && !(sink > 0)) throw new Error('no values returned')
  console.log(`${subject}: ${passes} passes of ${LENGTH} hits`)
}

await main()
