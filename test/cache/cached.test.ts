import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type CachedMethod, cached, createCache, defaultCache, isCacheError, ManualClock, stableKey } from '../../src/index.js'

describe('stableKey', () => {
  test('equal values give equal keys; types and order are told apart', () => {
    assert.equal(stableKey([{ b: 1, a: [1, 'x'] }]), stableKey([{ a: [1, 'x'], b: 1 }]))
    assert.notEqual(stableKey([1]), stableKey(['1']))
    assert.notEqual(stableKey([1, 2]), stableKey([2, 1]))
    assert.notEqual(stableKey([undefined]), stableKey([null]))
    assert.notEqual(stableKey([0]), stableKey([-0]))
    assert.equal(stableKey([new Map([['b', 1], ['a', 2]])]), stableKey([new Map([['a', 2], ['b', 1]])]))
    assert.equal(stableKey([new Set([2, 1])]), stableKey([new Set([1, 2])]))
    assert.equal(stableKey([new Date(0)]), 'Date(1970-01-01T00:00:00.000Z)')
    assert.equal(stableKey([10n]), '10n')
    assert.notEqual(stableKey([new Uint8Array([1, 2])]), stableKey([new Uint8Array([2, 1])]))
    class Money {
      constructor(readonly cents: number) {}
      toJSON(): number {
        return this.cents
      }
    }
    assert.equal(stableKey([new Money(5)]), stableKey([new Money(5)]))
    assert.notEqual(stableKey([new Money(5)]), stableKey([new Money(6)]))
  })

  test('long keys become a digest; unkeyable arguments get ERR_INVALID_KEY naming them', () => {
    const long = stableKey(['x'.repeat(1000)])
    assert.ok(long.startsWith('#') && long.length < 60)
    assert.notEqual(long, stableKey(['x'.repeat(1001)]))
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    class Opaque {}
    for (const [bad, where] of [[() => 1, 'argument 0'], [Symbol('s'), 'argument 0'], [cyclic, 'cyclic'], [new Opaque(), 'Opaque'], [new Date(NaN), 'invalid Date']] as const) {
      assert.throws(() => stableKey([bad]), (e: unknown) => isCacheError(e, 'ERR_INVALID_KEY') && e.message.includes(where))
    }
    assert.throws(() => stableKey([1, { deep: [() => 2] }]), (e: unknown) => isCacheError(e, 'ERR_INVALID_KEY') && e.message.includes('argument 1.deep[0]'))
  })
})

describe('@cached', () => {
  test('caches per class, method and arguments; invalidate drops one call', async () => {
    const cache = createCache({ clock: new ManualClock(0) })
    let calls = 0
    class Users {
      @cached({ cache, ttl: '1m' })
      async find(id: string, opts?: { full: boolean }): Promise<string> {
        calls++
        return `${id}:${opts?.full === true ? 'full' : 'short'}:${calls}`
      }
    }
    const users = new Users()
    assert.equal(await users.find('1'), '1:short:1')
    assert.equal(await users.find('1'), '1:short:1')
    assert.equal(await users.find('1', { full: true }), '1:full:2')
    assert.equal(await new Users().find('1'), '1:short:1', 'instances share entries for equal arguments')
    assert.equal(await cache.get('Users.find("1")'), '1:short:1')
    const find = users.find as unknown as CachedMethod<[string, { full: boolean }?], string>
    assert.equal(await find.invalidate('1'), true)
    assert.equal(await users.find('1'), '1:short:3')
  })

  test('bad options are refused by cached() itself (ERR_INVALID_OPTIONS naming them): tags as a string were spread into one tag per character, cache {} failed every call with a raw TypeError', () => {
    for (const [options, option] of [
      [{ tags: 'org' }, 'tags'],
      [{ tags: [''] }, 'tags'],
      [{ tags: ['org::1'] }, 'tags'],
      [{ tags: [1] }, 'tags'],
      [{ cache: {} }, 'cache'],
      [{ cache: 5 }, 'cache'],
      [{ ttl: NaN }, 'ttl'],
      [{ strategy: 'bogus' }, 'strategy'],
      [{ timeout: 5 }, 'timeout'],
      // Unknown names were ignored: a misspelt ttl cached for the default 5 minutes.
      [{ tll: '1m' }, 'tll'],
      [{ signal: AbortSignal.timeout(5) }, 'signal'],
      [{ timeout: { hrad: 5 } }, 'timeout.hrad'],
    ] as const) {
      assert.throws(
        () => cached(options as never),
        (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === option,
        JSON.stringify(options),
      )
    }
    // Good ones still decorate.
    cached({ cache: createCache({ clock: new ManualClock(0) }), tags: ['org:1'], ttl: '1m', grace: '1h' })
  })

  test('invalidate with arguments that cannot be keyed rejects (ERR_INVALID_KEY) instead of throwing synchronously, as the method itself does', async () => {
    const cache = createCache({ clock: new ManualClock(0) })
    class Users {
      @cached({ cache })
      async find(id: unknown): Promise<string> {
        return String(id)
      }
    }
    const find = Users.prototype.find as unknown as CachedMethod<[unknown], string>
    let promise: Promise<boolean> | undefined
    assert.doesNotThrow(() => {
      promise = find.invalidate(() => 1)
    })
    await assert.rejects(promise!, (e: unknown) => isCacheError(e, 'ERR_INVALID_KEY'))
    await assert.rejects(new Users().find(() => 1), (e: unknown) => isCacheError(e, 'ERR_INVALID_KEY'))
  })

  test('works without arguments and with a custom key', async () => {
    const cache = createCache({ clock: new ManualClock(0) })
    let calls = 0
    class Config {
      @cached({ cache })
      async load(): Promise<number> {
        return ++calls
      }
      @cached({ cache, key: (n: number) => `square:${n}` })
      async square(n: number): Promise<number> {
        return n * n
      }
    }
    const c = new Config()
    assert.equal(await c.load(), 1)
    assert.equal(await c.load(), 1)
    assert.equal(await c.square(4), 16)
    assert.equal(await cache.get('square:4'), 16)
  })

  test('arguments that cannot be keyed are refused, not collided', async () => {
    const cache = createCache({ clock: new ManualClock(0) })
    class Svc {
      @cached({ cache })
      async run(fn: () => void): Promise<number> {
        fn()
        return 1
      }
    }
    await assert.rejects(new Svc().run(() => {}), (e: unknown) => isCacheError(e, 'ERR_INVALID_KEY'))
  })

  test('with no options it uses the process-wide default cache', async () => {
    let calls = 0
    class Plain {
      @cached()
      async value(): Promise<number> {
        return ++calls
      }
    }
    const p = new Plain()
    assert.equal(await p.value(), 1)
    assert.equal(await p.value(), 1)
  })
  test('once the default cache is closed, defaultCache() gives a new one: @cached methods keep working after a teardown closed it', async () => {
    let calls = 0
    class Counter {
      @cached()
      async next(): Promise<number> {
        return ++calls
      }
    }
    const c = new Counter()
    const first = defaultCache()
    assert.equal(defaultCache(), first)
    assert.equal(first.closed, false)
    await c.next()
    await first.close()
    assert.equal(first.closed, true)
    const second = defaultCache()
    assert.notEqual(second, first)
    assert.equal(second.closed, false)
    // The closed cache forgot everything; the new one computes again, then caches.
    assert.equal(await c.next(), calls)
    assert.equal(await c.next(), calls)
    await second.close()
  })
})
