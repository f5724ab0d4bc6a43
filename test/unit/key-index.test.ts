/**
 * KeyIndex, the engine's key -> slot table, against a Map: random inserts, removals (whose
 * backward shift must keep every other key findable), lookups of held and absent keys,
 * growth and clears, over keys of every kind with Map's SameValueZero semantics.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { hashKey } from '../../src/memory/hash-key.js'
import { KeyIndex } from '../../src/memory/key-index.js'

const OBJECTS = [{}, {}, [], () => 0]
const SYMBOL = Symbol('s')
/** Keys of every kind, including the ones SameValueZero treats specially. */
const keyArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: 0, max: 40 }).map((i) => `k${i}`),
  fc.integer({ min: -5, max: 40 }),
  fc.constantFrom(NaN, 0, -0, 1.5, 2 ** 40, Infinity, '', 'NaN', '0', null, undefined, true, SYMBOL, 10n),
  fc.constantFrom(...OBJECTS),
)

type Op = { t: 'insert' | 'remove' | 'find'; k: unknown } | { t: 'clear' }

describe('KeyIndex', () => {
  // Without clears, the index fills up with most of the ~100 keys and grows its table from
  // 16 cells to 256 (each growth re-packs every cell's slot and tag for the new mask).
  for (const clears of [1, 0]) {
    test(`agrees with a Map under random inserts, removals, lookups and growth${clears > 0 ? ', and clears' : ', no clears'}`, () => {
      const opArb: fc.Arbitrary<Op> = fc.oneof(
        { weight: 6, arbitrary: fc.record({ t: fc.constant('insert' as const), k: keyArb }) },
        { weight: 3, arbitrary: fc.record({ t: fc.constant('remove' as const), k: keyArb }) },
        { weight: 4, arbitrary: fc.record({ t: fc.constant('find' as const), k: keyArb }) },
        { weight: clears, arbitrary: fc.constant({ t: 'clear' as const }) },
      )
      fc.assert(
        fc.property(fc.integer(), fc.array(opArb, clears > 0 ? { maxLength: 300 } : { minLength: 200, maxLength: 600, size: 'max' }), (seed, ops) => {
          // Starts at 4 slots (16 cells) and grows, so rehashing is exercised.
          let capacity = 4
          const index = new KeyIndex<unknown>(capacity, seed)
          const model = new Map<unknown, number>()
          const free: number[] = []
          let next = 0
          for (const op of ops) {
            if (op.t === 'clear') {
              index.clear()
              model.clear()
              free.length = 0
              next = 0
            } else if (op.t === 'insert') {
              if (model.has(op.k)) continue
              let slot = free.pop()
              if (slot === undefined) {
                slot = next++
                if (slot >= capacity) index.grow((capacity *= 2))
              }
              index.insert(op.k, slot, index.hash(op.k))
              model.set(op.k, slot)
            } else if (op.t === 'remove') {
              const slot = model.get(op.k)
              if (slot === undefined) continue
              index.remove(slot)
              model.delete(op.k)
              free.push(slot)
              assert.equal(index.keyOf(slot), undefined)
            } else {
              assert.equal(index.find(op.k), model.get(op.k) ?? -1, `find ${String(op.k)}`)
            }
            // Every held key stays findable (a wrong backward shift would lose one).
            assert.equal(index.size, model.size)
            for (const [k, slot] of model) {
              assert.equal(index.find(k), slot, `held key ${String(k)}`)
              assert.ok(Object.is(index.keyOf(slot), k) || (k === 0 && index.keyOf(slot) === 0))
            }
            assert.deepEqual(index.slots().sort((a, b) => a - b), [...model.values()].sort((a, b) => a - b))
          }
        }),
        { numRuns: clears > 0 ? 300 : 100, seed: 0x1de7 },
      )
    })
  }

  test('replace(slot, key, hash) is remove(slot) then insert(key, slot, hash), for keys of every kind', () => {
    // The engine gives an evicted entry's slot to the new key in one call (decision 0396).
    // Two indexes under the same operations, one replacing, one removing and inserting, must
    // agree on every lookup, on size and on the cells in use.
    const opArb = fc.record({ k: keyArb, replace: fc.boolean() })
    fc.assert(
      fc.property(fc.integer(), fc.array(opArb, { minLength: 20, maxLength: 400 }), (seed, ops) => {
        const capacity = 48
        const replacing = new KeyIndex<unknown>(capacity, seed)
        const plain = new KeyIndex<unknown>(capacity, seed)
        const model = new Map<unknown, number>()
        const held: unknown[] = []
        let next = 0
        for (const op of ops) {
          if (model.has(op.k)) continue
          const hash = replacing.hash(op.k)
          if (op.replace && held.length > 0) {
            const old = held.shift()
            const slot = model.get(old) as number
            replacing.replace(slot, op.k, hash)
            plain.remove(slot)
            plain.insert(op.k, slot, hash)
            model.delete(old)
            model.set(op.k, slot)
            assert.equal(replacing.find(old), -1)
          } else if (next < capacity) {
            const slot = next++
            replacing.insert(op.k, slot, hash)
            plain.insert(op.k, slot, hash)
            model.set(op.k, slot)
          } else continue
          held.push(op.k)
          assert.equal(replacing.size, model.size)
          for (const [k, slot] of model) {
            assert.equal(replacing.find(k), slot, `held key ${String(k)}`)
            assert.equal(replacing.hashOf(slot), plain.hashOf(slot))
          }
          assert.deepEqual(replacing.slots().sort((a, b) => a - b), plain.slots().sort((a, b) => a - b))
        }
      }),
      { numRuns: 200, seed: 0x396 },
    )
  })

  test('lookup(key) is findHashed(key, hash(key)) and leaves that hash in lastHash, for keys of every kind', () => {
    fc.assert(
      fc.property(fc.integer(), fc.array(keyArb, { maxLength: 60 }), fc.array(keyArb, { maxLength: 30 }), (seed, held, probes) => {
        const index = new KeyIndex<unknown>(64, seed)
        let slot = 0
        for (const k of held) if (index.find(k) === -1) index.insert(k, slot++, index.hash(k))
        for (const k of [...probes, ...held]) {
          const hash = index.hash(k)
          assert.equal(index.lookup(k), index.findHashed(k, hash), String(k))
          assert.equal(index.lastHash, hash, String(k))
        }
      }),
      { numRuns: 200, seed: 0x3960 },
    )
  })

  test('replace in a long run of colliding hashes keeps every other key findable', () => {
    const index = new KeyIndex<string>(16, 0)
    const keys = Array.from({ length: 12 }, (_, i) => `c${i}`)
    keys.forEach((k, slot) => index.insert(k, slot, 7))
    for (const [slot, key, hash] of [[5, 'n1', 7], [0, 'n2', 8], [11, 'n3', 7], [6, 'n4', 6]] as const) {
      index.replace(slot, key, hash)
      keys[slot] = key
      for (let s = 0; s < keys.length; s++) assert.equal(index.findHashed(keys[s], index.hashOf(s)), s, `${keys[s]} after replacing slot ${slot}`)
    }
    assert.equal(index.size, 12)
    assert.equal(index.findHashed('c5', 7), -1)
  })

  test('SameValueZero: NaN finds NaN, -0 finds 0, "1" is not 1, objects by identity', () => {
    const index = new KeyIndex<unknown>(8, 12345)
    for (const [slot, key] of [NaN, 0, '1', OBJECTS[0]].entries()) index.insert(key, slot, index.hash(key))
    assert.equal(index.find(NaN), 0)
    assert.equal(index.find(-0), 1)
    assert.equal(index.find('1'), 2)
    assert.equal(index.find(1), -1)
    assert.equal(index.find(OBJECTS[0]), 3)
    assert.equal(index.find({}), -1)
  })

  test('colliding hashes: every key of a long probe run stays findable through removals', () => {
    // Keys forced to one hash: a single run of cells; removing from its middle shifts the rest back.
    const index = new KeyIndex<string>(16, 0)
    const keys = Array.from({ length: 12 }, (_, i) => `c${i}`)
    keys.forEach((k, slot) => index.insert(k, slot, 7))
    for (const drop of [5, 0, 11, 6]) {
      index.remove(drop)
      for (let slot = 0; slot < keys.length; slot++) {
        const held = index.keyOf(slot) !== undefined
        assert.equal(index.findHashed(keys[slot], 7), held ? slot : -1, `${keys[slot]} after removing slot ${drop}`)
      }
    }
    assert.equal(index.size, 8)
  })

  test('the seed changes every hash, so colliding keys cannot be computed without it', () => {
    const keys = ['a', 'user:1', 'user:2', 'x'.repeat(100), 7, -3, 2.5, NaN, OBJECTS[1]]
    for (const key of keys) {
      const hashes = new Set([1, 2, 3, 4].map((seed) => hashKey(key, seed)))
      assert.equal(hashes.size, 4, `${String(key)}: one hash per seed`)
    }
    // Two keys equal under one seed are not under another (a sample of 2,000 keys).
    const bucketsOf = (seed: number): Map<number, string[]> => {
      const m = new Map<number, string[]>()
      for (let i = 0; i < 2000; i++) {
        const b = hashKey(`k${i}`, seed) & 255
        m.set(b, [...(m.get(b) ?? []), `k${i}`])
      }
      return m
    }
    const sameBucket = bucketsOf(1).get(0) ?? []
    assert.ok(sameBucket.length >= 2)
    const spread = new Set(sameBucket.map((k) => hashKey(k, 2) & 255))
    assert.ok(spread.size > sameBucket.length / 2, `keys sharing a bucket under seed 1 spread under seed 2: ${spread.size} of ${sameBucket.length}`)
  })

  test('string hashes spread like a random function, in the low bits (cells) and the high bits (tags)', () => {
    // 50k keys into 2^16 buckets: a random function fills 2^16 * (1 - e^(-50k / 2^16)) of them.
    const n = 50_000
    const buckets = 1 << 16
    const expected = buckets * (1 - Math.exp(-n / buckets))
    for (const shape of [(i: number) => `key:${i}`, (i: number) => `user:${i}:profile`, (i: number) => String(i), (i: number) => `é${i}`.repeat(3)]) {
      const low = new Set<number>()
      const high = new Set<number>()
      for (let i = 0; i < n; i++) {
        const h = hashKey(shape(i), 0x5eed)
        low.add(h & (buckets - 1))
        high.add(h >>> 16)
      }
      for (const [bits, set] of [['low', low], ['high', high]] as const) {
        assert.ok(Math.abs(set.size - expected) < expected * 0.01, `${shape(7)}: ${bits} 16 bits fill ${set.size} buckets, a random function ${Math.round(expected)}`)
      }
    }
  })
})
