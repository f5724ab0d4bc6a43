/**
 * Property test: random sequences of store operations — set, setMany, get, getMany, delete,
 * deleteMany, touch, clear(prefix), sweep, clock advances and close-and-reopen — run against
 * lmdbStore and a plain Map model of the Store contract. After every step the answers agree,
 * and the store's shared usage counter equals the entries it holds (expired ones count until
 * swept, as documented). Keys come from a small alphabet with shared prefixes and a few
 * long keys (hashed past 1900 bytes), so overwrites, prefix clears and hashed-key clears
 * collide often.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import fc from 'fast-check'
import { ManualClock } from '../../src/core/manual-clock.js'
import { lmdbStore, type LmdbStore } from '../../src/store/lmdb-store.js'

const root = mkdtempSync(join(tmpdir(), 'stratacache-lmdb-prop-'))
after(() => rmSync(root, { recursive: true, force: true }))
let dirs = 0

const LONG = 'L'.repeat(1950)
const keyArb = fc.oneof(
  fc.constantFrom('a', 'ab', 'abc', 'b', 'b:1', 'b:2', 'ü', 'ü:x'),
  fc.constantFrom(`${LONG}1`, `${LONG}2`, `${LONG}22`),
)
const prefixArb = fc.constantFrom('', 'a', 'ab', 'b:', 'ü', 'zzz', LONG, `${LONG}2`)
const ttlArb = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 50 }) }, { weight: 1, arbitrary: fc.constant(Infinity) })
const valueArb = fc.uint8Array({ minLength: 0, maxLength: 64 })

type Op =
  | { t: 'set'; key: string; value: Uint8Array; ttl: number }
  | { t: 'setMany'; entries: { key: string; value: Uint8Array; ttl: number }[] }
  | { t: 'get'; key: string }
  | { t: 'getMany'; keys: string[] }
  | { t: 'delete'; key: string }
  | { t: 'deleteMany'; keys: string[] }
  | { t: 'touch'; key: string; ttl: number }
  | { t: 'clear'; prefix: string }
  | { t: 'advance'; ms: number }
  | { t: 'sweep' }
  | { t: 'reopen' }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('set' as const), key: keyArb, value: valueArb, ttl: ttlArb }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('setMany' as const), entries: fc.array(fc.record({ key: keyArb, value: valueArb, ttl: ttlArb }), { maxLength: 4 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('get' as const), key: keyArb }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('getMany' as const), keys: fc.array(keyArb, { maxLength: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('delete' as const), key: keyArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('deleteMany' as const), keys: fc.array(keyArb, { maxLength: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('touch' as const), key: keyArb, ttl: ttlArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('clear' as const), prefix: prefixArb }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 30 }) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'sweep' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
)

/** The contract, plainly: entries with an absolute expiry; expired ones are invisible but still stored until swept. */
class Model {
  readonly entries = new Map<string, { value: Uint8Array; expiresAt: number }>()
  constructor(readonly clock: ManualClock) {}
  #live(key: string): Uint8Array | undefined {
    const e = this.entries.get(key)
    return e !== undefined && this.clock.now() < e.expiresAt ? e.value : undefined
  }
  set(key: string, value: Uint8Array, ttl: number): void {
    this.entries.set(key, { value, expiresAt: this.clock.now() + ttl })
  }
  get(key: string): Uint8Array | undefined {
    return this.#live(key)
  }
  delete(key: string): boolean {
    const live = this.#live(key) !== undefined
    this.entries.delete(key)
    return live
  }
  touch(key: string, ttl: number): boolean {
    const e = this.entries.get(key)
    if (e === undefined || this.#live(key) === undefined) return false
    e.expiresAt = this.clock.now() + ttl
    return true
  }
  clear(prefix: string): void {
    for (const key of [...this.entries.keys()]) if (key.startsWith(prefix)) this.entries.delete(key)
  }
  sweep(): void {
    for (const [key, e] of [...this.entries]) if (this.clock.now() >= e.expiresAt) this.entries.delete(key)
  }
}

const hex = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : Buffer.from(b).toString('hex'))

describe('lmdbStore against a model of the Store contract', () => {
  test('random operation sequences (with restarts and sweeps) agree with the model, and the usage counter stays exact', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 10, maxLength: 40, size: 'max' }), async (ops) => {
        const clock = new ManualClock()
        const path = join(root, `p${++dirs}`)
        let store: LmdbStore = lmdbStore({ path, clock, sweepInterval: '1h' })
        const model = new Model(clock)
        try {
          for (const op of ops) {
            switch (op.t) {
              case 'set':
                await store.set(op.key, op.value, op.ttl)
                model.set(op.key, op.value, op.ttl)
                break
              case 'setMany':
                await store.setMany(op.entries.map((e) => ({ key: e.key, value: e.value, ttlMs: e.ttl })))
                for (const e of op.entries) model.set(e.key, e.value, e.ttl)
                break
              case 'get':
                assert.equal(hex(await store.get(op.key)), hex(model.get(op.key)), `get ${op.key.slice(0, 8)}`)
                break
              case 'getMany':
                assert.deepEqual((await store.getMany(op.keys)).map(hex), op.keys.map((k) => hex(model.get(k))))
                break
              case 'delete':
                assert.equal(await store.delete(op.key), model.delete(op.key))
                break
              case 'deleteMany': {
                const want = [...new Set(op.keys)].filter((k) => model.delete(k)).length
                assert.equal(await store.deleteMany(op.keys), want)
                break
              }
              case 'touch':
                assert.equal(await store.touch(op.key, op.ttl), model.touch(op.key, op.ttl))
                break
              case 'clear':
                await store.clear(op.prefix)
                model.clear(op.prefix)
                break
              case 'advance':
                clock.advance(op.ms)
                break
              case 'sweep':
                await store.sweep()
                model.sweep()
                break
              case 'reopen':
                await store.close()
                store = lmdbStore({ path, clock, sweepInterval: '1h' })
                break
            }
            assert.equal(store.stats().entries, model.entries.size, `entry counter after ${op.t}`)
          }
        } finally {
          await store.close()
          rmSync(path, { recursive: true, force: true })
        }
      }),
      { numRuns: 80, seed: 20261201 },
    )
  })
})
