import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { autoCache, autoCached } from '../../src/client/auto-cache.js'
import { createClient, type Client } from '../../src/client/client.js'
import { isCacheError } from '../../src/core/errors.js'
import { startTestNode, type TestNode } from '../support/node-fixture.js'

let node: TestNode
let client: Client

before(async () => {
  node = await startTestNode()
  client = createClient({ nodes: [node.url] })
})
after(async () => {
  await client?.close()
  await node?.stop()
})

describe('autoCache against a real node', () => {
  test('a miss runs fn and stores; equal arguments hit; keys are stable and region-prefixed', async () => {
    let calls = 0
    async function delayedEcho(delay: number, message: string) {
      calls++
      return { message, delay, at: new Date(0), big: 2n ** 70n, tags: new Set(['x']) }
    }
    const echo = autoCache(delayedEcho, { client, region: 'london', expiry: 42_000 })
    const first = await echo(3, 'foo')
    const second = await echo(3, 'foo')
    assert.deepEqual(second, first)
    assert.equal(calls, 1)
    await echo(3, 'bar')
    assert.equal(calls, 2)
    assert.equal(echo.keyOf(3, 'foo'), 'london/delayedEcho(3,"foo")')
    const entry = await client.get(echo.keyOf(3, 'foo'))
    assert.ok(entry !== undefined)
    assert.ok(entry.ttlMs > 40_000 && entry.ttlMs <= 42_000, `ttl ${entry.ttlMs}`)
    assert.deepEqual(entry.tags, ['auto:london:delayedEcho'])
  })

  test('default expiry is 60 s', async () => {
    const f = autoCache(async function answer() { return 42 }, { client, region: 'r' })
    assert.equal(await f(), 42)
    const entry = await client.get(f.keyOf())
    assert.ok(entry !== undefined && entry.ttlMs > 58_000 && entry.ttlMs <= 60_000, `ttl ${entry?.ttlMs}`)
  })

  test('concurrent equal calls share one run; invalidate and clear drop entries', async () => {
    let calls = 0
    const slow = autoCache(async (n: number) => {
      calls++
      await new Promise((r) => setTimeout(r, 20))
      return n * 2
    }, { client, region: 'r', name: 'slow' })
    const results = await Promise.all([slow(1), slow(1), slow(1)])
    assert.deepEqual(results, [2, 2, 2])
    assert.equal(calls, 1)
    assert.equal(await slow.invalidate(1), true)
    await slow(1)
    assert.equal(calls, 2)
    await slow(2)
    await slow.clear()
    await slow(1)
    await slow(2)
    assert.equal(calls, 5)
  })

  test('sync functions work; errors from fn propagate and are not cached; undefined is not cached', async () => {
    let calls = 0
    const f = autoCache((x: string) => {
      calls++
      if (x === 'bad') throw new Error('boom')
      return x === 'none' ? undefined : x.toUpperCase()
    }, { client, region: 'r', name: 'f' })
    assert.equal(await f('a'), 'A')
    assert.equal(await f('a'), 'A')
    await assert.rejects(f('bad'), /boom/)
    await assert.rejects(f('bad'), /boom/)
    assert.equal(await f('none'), undefined)
    assert.equal(await f('none'), undefined)
    assert.equal(calls, 5)
  })

  test('a dead node never fails the call: fn runs and the failure goes to onError', async () => {
    const dead = createClient({ nodes: ['http://127.0.0.1:1'], retry: { retries: 0 }, timeout: 500 })
    const errors: unknown[] = []
    let calls = 0
    const f = autoCache(async () => ++calls, { client: dead, region: 'r', name: 'g', onError: (e) => errors.push(e) })
    assert.equal(await f(), 1)
    assert.equal(await f(), 2)
    assert.equal(errors.length, 2)
    assert.ok(isCacheError(errors[0], 'ERR_NODE_UNREACHABLE'))
    const throwing = autoCache(async () => 'still fine', { client: dead, region: 'r', name: 'h', onError: () => { throw new Error('listener bug') } })
    assert.equal(await throwing(), 'still fine', 'a throwing onError does not fail the call')
    await dead.close()
  })

  test('a corrupt entry is a miss and is overwritten', async () => {
    const errors: unknown[] = []
    const f = autoCache(async () => 'fresh', { client, region: 'r', name: 'corrupt', onError: (e) => errors.push(e) })
    await client.set(f.keyOf(), Buffer.from('not a codec frame'))
    assert.equal(await f(), 'fresh')
    assert.ok(isCacheError(errors[0], 'ERR_DECODE'))
    assert.equal(await f(), 'fresh')
    assert.equal(errors.length, 1)
  })

  test('a result the codec cannot encode is returned, not stored, and reported as ERR_INVALID_VALUE naming the key (was a raw TypeError)', async () => {
    const errors: unknown[] = []
    let calls = 0
    const f = autoCache(async () => ({ n: ++calls, tag: Symbol('s') }), { client, region: 'r', name: 'unencodable', onError: (e) => errors.push(e) })
    assert.equal((await f()).n, 1)
    assert.equal((await f()).n, 2, 'nothing was stored')
    assert.equal(await client.get(f.keyOf()), undefined)
    assert.equal(errors.length, 2)
    assert.ok(isCacheError(errors[0], 'ERR_INVALID_VALUE'), String(errors[0]))
    assert.ok((errors[0] as Error).message.includes('"r/unencodable()"'), (errors[0] as Error).message)
  })

  test('the decorator form on a class method', async () => {
    let calls = 0
    class Users {
      @autoCached({ client, region: 'eu', expiry: '30s' })
      async find(id: number) {
        calls++
        return { id }
      }
    }
    const users = new Users()
    assert.deepEqual(await users.find(7), { id: 7 })
    assert.deepEqual(await users.find(7), { id: 7 })
    assert.equal(calls, 1)
    const entry = await client.get('eu/Users.find(7)')
    assert.ok(entry !== undefined)
  })

  test('bad options and unkeyable arguments are typed errors', async () => {
    const fn = async (x: unknown) => x
    assert.throws(() => autoCache(fn, { client, region: '' }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    assert.throws(() => autoCache(fn, { client, region: 'a/b' }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    assert.throws(() => autoCache(fn, { client, region: 'r', expiry: 10 }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    assert.throws(() => autoCache(async () => 1, { client, region: 'r', name: '' }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    const f = autoCache(fn, { client, region: 'r' })
    await assert.rejects(f(() => 1), (e: unknown) => isCacheError(e, 'ERR_INVALID_KEY'))
  })
})
