// Type tests: compiled by tsc with the rest of the tests (a type error fails the build, so
// `npm test` and `npm run lint` fail); the runtime assertions check the values agree.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createCache, ManualClock } from '../../src/index.js'

/** Compiles only when A and B are the same type. */
type Equal<A, B> = (<G>() => G extends A ? 1 : 2) extends <G>() => G extends B ? 1 : 2 ? true : false
function expectType<T extends true>(_proof: T): void {}

test('getOrSet infers the value type from the factory, per call', async () => {
  const cache = createCache({ clock: new ManualClock() })
  const n: number = await cache.getOrSet('a', async () => 42)
  const s = await cache.getOrSet('b', () => 'text')
  const user = await cache.getOrSet('c', async (ctx) => ({ id: ctx.key, admin: false }), { tags: (u) => [`user:${u.id}`] })
  expectType<Equal<typeof s, string>>(true)
  expectType<Equal<typeof user, { id: string; admin: boolean }>>(true)
  assert.equal(n + 1, 43)
  assert.equal(s.toUpperCase(), 'TEXT')
  assert.equal(user.id, 'c')
  await cache.close()
})

test('a typed cache still checks the factory against its value type', async () => {
  const cache = createCache<number>({ clock: new ManualClock() })
  const n = await cache.getOrSet('a', () => 1)
  const stale = await cache.getOrSet('c', (ctx) => (ctx.stale ?? 0) + 1)
  expectType<Equal<typeof stale, number>>(true)
  assert.equal(stale, 1)
  expectType<Equal<typeof n, number>>(true)
  // @ts-expect-error a string factory on a Cache<number>
  await cache.getOrSet('b', () => 'nope').catch(() => undefined)
  assert.equal(n, 1)
  await cache.close()
})
