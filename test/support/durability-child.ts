// A child for test/store/lmdb-durability.test.ts: opens an lmdbStore in the given directory,
// runs each write once on an idle store, one after another, and prints how long each took
// to resolve (ms) as one JSON object on stdout. The parent runs it under strace, which
// delays the return of every fsync-family call: a write that resolves sooner resolved
// before its commit reached the disk.
import { lmdbStore } from '../../src/store/lmdb-store.js'

const path = process.argv[2]
if (path === undefined) throw new Error('usage: durability-child <dir>')
const store = lmdbStore({ path })
const value = new Uint8Array(100)
const timed = async (run: () => Promise<unknown>): Promise<number> => {
  const t = performance.now()
  await run()
  return Math.round(performance.now() - t)
}
const took: Record<string, number> = {}
took.set = await timed(() => store.set('a', value, 60_000))
took.setMany = await timed(() => store.setMany([{ key: 'b', value, ttlMs: 60_000 }, { key: 'c', value, ttlMs: 60_000 }]))
took.delete = await timed(() => store.delete('a'))
took.clear = await timed(() => store.clear('b'))
await store.close()
process.stdout.write(JSON.stringify(took) + '\n')
