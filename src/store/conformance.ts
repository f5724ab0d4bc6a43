/**
 * The conformance suite every `Store` adapter runs (memory, LMDB, Redis, ...): one set of
 * `node:test` blocks that pins the contract of `types.ts` with real assertions.
 *
 * How time works here: the suite never reads a clock. It moves the store's notion of time
 * with `target.advance(ms)` (a ManualClock for in-process stores, a real sleep for servers)
 * and expresses every TTL and lease as a multiple of `unit = minTtlMs`, so the same test
 * costs nothing on a ManualClock and a few hundred ms against Redis. No test depends on the
 * exact expiry instant (backends differ on `<` vs `<=`): each one reads well before or well
 * after it.
 *
 * Lock waits: `waitForRelease` is checked to settle within `WAKE_BUDGET_MS` of target time
 * after the event, in `WAKE_STEP_MS` steps, which fits both pub/sub wake-ups and polling
 * every 10-25 ms. The events are a release, a fenced write (or `setAbove`), and the lease
 * running out with neither (a paused or dead holder). An aborted signal makes it reject with `AbortedError` (`ERR_ABORTED`):
 * the suite pins that choice for every adapter.
 *
 * This module imports `node:test`: import it from tests only, never from the library.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isCacheError } from '../core/errors.js'
import type { Store, StoreLocks } from './types.js'

export interface ConformanceTarget {
  /** Shown as the suite's describe() title. */
  name: string
  /**
   * A new store over an empty namespace (a fresh directory, key prefix or database); the
   * suite closes every store it opens. Tests may open several stores one after another.
   */
  open(): Promise<Store>
  /** moves the store's notion of time forward: ManualClock.advance for memory/lmdb, a real sleep for servers */
  advance(ms: number): Promise<void>
  /** shortest TTL the backend honours precisely, e.g. 1 for memory; for a real-time server, long enough that 2 units outlast the scheduling stalls of a loaded machine (150 for redis in the tests) */
  minTtlMs?: number
  /** `false` for an adapter that cannot scan: the scan block is then skipped, not failed. @default true (a store without `scan` fails it) */
  scan?: boolean
}

/** How long (target time) a woken `waitForRelease` may take to settle. */
const WAKE_BUDGET_MS = 200
const WAKE_STEP_MS = 5
/** A TTL no test outlives: one hour. */
const LONG_TTL = 3_600_000

/** Lets queued promise callbacks and I/O callbacks run, without moving any clock. */
function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

export interface Tracked<T> {
  state: 'pending' | 'fulfilled' | 'rejected'
  value: T | undefined
  error: unknown
}

/** Records how a promise settles, so a test can look without awaiting (and without an unhandled rejection). */
export function track<T>(promise: Promise<T>): Tracked<T> {
  const t: Tracked<T> = { state: 'pending', value: undefined, error: undefined }
  promise.then(
    (value) => {
      t.state = 'fulfilled'
      t.value = value
    },
    (error: unknown) => {
      t.state = 'rejected'
      t.error = error
    },
  )
  return t
}

/** Same bytes, whatever the Uint8Array subclass (Buffer or plain) and offset. */
function assertBytes(actual: Uint8Array | undefined, expected: Uint8Array, message?: string): void {
  assert.ok(actual instanceof Uint8Array, message ?? `expected bytes, got ${String(actual)}`)
  const a = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength)
  const e = Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength)
  assert.ok(a.equals(e), message ?? `bytes differ: got ${a.length} bytes [${a.subarray(0, 16).toString('hex')}...], want ${e.length} bytes [${e.subarray(0, 16).toString('hex')}...]`)
}

const utf8 = new TextEncoder()
const bytes = (text: string): Uint8Array => utf8.encode(text)

/** A deterministic non-trivial pattern, so a shifted or truncated copy is detected. */
function pattern(size: number, seed = 7): Uint8Array {
  const out = new Uint8Array(size)
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed + (i >>> 8)) & 0xff
  return out
}

export function storeConformance(target: ConformanceTarget): void {
  const unit = Math.max(1, target.minTtlMs ?? 1)
  const advance = async (ms: number): Promise<void> => {
    await target.advance(ms)
    await flush()
  }

  /** Opens a store, runs `fn`, and always closes the store. */
  async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
    const store = await target.open()
    try {
      await fn(store)
    } finally {
      await store.close()
    }
  }

  /** Advances time in small steps until `t` settles or the wake budget is spent; returns the time spent. */
  async function advanceUntilSettled(t: Tracked<unknown>): Promise<number> {
    await flush()
    let spent = 0
    while (t.state === 'pending' && spent < WAKE_BUDGET_MS) {
      await advance(WAKE_STEP_MS)
      spent += WAKE_STEP_MS
    }
    return spent
  }

  describe(`store conformance: ${target.name}`, () => {
    describe('basic operations', () => {
      test('name is a non-empty string', async () => {
        await withStore(async (store) => {
          assert.equal(typeof store.name, 'string')
          assert.ok(store.name.length > 0)
        })
      })

      test('get of a missing key is undefined; set then get returns the bytes', async () => {
        await withStore(async (store) => {
          assert.equal(await store.get('missing'), undefined)
          assert.equal(await store.set('k', bytes('hello'), LONG_TTL), undefined)
          assertBytes(await store.get('k'), bytes('hello'))
        })
      })

      test('set overwrites the value and its TTL', async () => {
        await withStore(async (store) => {
          await store.set('k', bytes('first'), 4 * unit)
          await store.set('k', bytes('second, longer'), LONG_TTL)
          assertBytes(await store.get('k'), bytes('second, longer'))
          await advance(6 * unit)
          assertBytes(await store.get('k'), bytes('second, longer'), 'the overwrite replaced the short TTL')
        })
      })

      test('delete returns whether the key existed, and removes it', async () => {
        await withStore(async (store) => {
          await store.set('k', bytes('v'), LONG_TTL)
          assert.equal(await store.delete('k'), true)
          assert.equal(await store.get('k'), undefined)
          assert.equal(await store.delete('k'), false)
          assert.equal(await store.delete('never-set'), false)
        })
      })

      test('deleteMany counts the keys that existed (duplicates once, empty list 0)', async () => {
        await withStore(async (store) => {
          await store.set('a', bytes('1'), LONG_TTL)
          await store.set('b', bytes('2'), LONG_TTL)
          await store.set('c', bytes('3'), LONG_TTL)
          assert.equal(await store.deleteMany(['a', 'b', 'missing']), 2)
          assert.equal(await store.get('a'), undefined)
          assert.equal(await store.get('b'), undefined)
          assertBytes(await store.get('c'), bytes('3'), 'a key not listed is kept')
          assert.equal(await store.deleteMany([]), 0)
          assert.equal(await store.deleteMany(['c', 'c']), 1)
          assert.equal(await store.get('c'), undefined)
        })
      })

      test('getMany answers in order, undefined for misses, repeats duplicates, [] for []', async () => {
        await withStore(async (store) => {
          await store.set('a', bytes('A'), LONG_TTL)
          await store.set('b', bytes('B'), LONG_TTL)
          assert.deepEqual(await store.getMany([]), [])
          const got = await store.getMany(['b', 'missing', 'a', 'b', 'also-missing'])
          assert.equal(got.length, 5)
          assertBytes(got[0], bytes('B'))
          assert.equal(got[1], undefined)
          assertBytes(got[2], bytes('A'))
          assertBytes(got[3], bytes('B'))
          assert.equal(got[4], undefined)
        })
      })

      test('setMany writes every entry with its own TTL (mixed finite and Infinity)', async () => {
        await withStore(async (store) => {
          await store.setMany([])
          await store.setMany([
            { key: 'short', value: bytes('s'), ttlMs: 4 * unit },
            { key: 'forever', value: bytes('f'), ttlMs: Infinity },
            { key: 'long', value: bytes('l'), ttlMs: LONG_TTL },
          ])
          const before = await store.getMany(['short', 'forever', 'long'])
          assertBytes(before[0], bytes('s'))
          assertBytes(before[1], bytes('f'))
          assertBytes(before[2], bytes('l'))
          await advance(6 * unit)
          assert.equal(await store.get('short'), undefined)
          assertBytes(await store.get('forever'), bytes('f'))
          assertBytes(await store.get('long'), bytes('l'))
        })
      })

      test('setMany applies entries in order: the last entry for a key wins', async () => {
        await withStore(async (store) => {
          await store.setMany([
            { key: 'k', value: bytes('old'), ttlMs: LONG_TTL },
            { key: 'k', value: bytes('new'), ttlMs: LONG_TTL },
          ])
          assertBytes(await store.get('k'), bytes('new'))
        })
      })

      test('close is idempotent', async () => {
        const store = await target.open()
        await store.set('k', bytes('v'), LONG_TTL)
        await store.close()
        await store.close()
      })
    })

    describe('bytes', () => {
      test('the stored bytes are a copy: mutating the caller buffer after set changes nothing', async () => {
        await withStore(async (store) => {
          const buf = bytes('original')
          await store.set('k', buf, LONG_TTL)
          buf.fill(0x21)
          assertBytes(await store.get('k'), bytes('original'))

          const many = bytes('many')
          await store.setMany([{ key: 'm', value: many, ttlMs: LONG_TTL }])
          many.fill(0x21)
          assertBytes(await store.get('m'), bytes('many'))
        })
      })

      test('a returned buffer is the caller\'s: mutating it does not change the store', async () => {
        await withStore(async (store) => {
          await store.set('k', bytes('stable'), LONG_TTL)
          const first = await store.get('k')
          assert.ok(first !== undefined)
          first.fill(0x21)
          assertBytes(await store.get('k'), bytes('stable'))
          const [viaMany] = await store.getMany(['k'])
          assert.ok(viaMany !== undefined)
          viaMany.fill(0x21)
          assertBytes(await store.get('k'), bytes('stable'))
        })
      })

      test('only the view is stored: a subarray with an offset, and a Buffer', async () => {
        await withStore(async (store) => {
          const backing = pattern(64)
          const view = backing.subarray(10, 20)
          await store.set('view', view, LONG_TTL)
          assertBytes(await store.get('view'), pattern(64).subarray(10, 20))
          await store.set('buffer', Buffer.from('from a Buffer'), LONG_TTL)
          assertBytes(await store.get('buffer'), bytes('from a Buffer'))
        })
      })

      test('every byte value round-trips (0x00-0xff, not text)', async () => {
        await withStore(async (store) => {
          const all = new Uint8Array(256)
          for (let i = 0; i < 256; i++) all[i] = i
          await store.set('all', all, LONG_TTL)
          assertBytes(await store.get('all'), all)
        })
      })

      test('an empty value (0 bytes) is stored and read back as empty, not as a miss', async () => {
        await withStore(async (store) => {
          await store.set('empty', new Uint8Array(0), LONG_TTL)
          const got = await store.get('empty')
          assert.ok(got instanceof Uint8Array, 'an empty value is a hit')
          assert.equal(got.byteLength, 0)
          const [many] = await store.getMany(['empty'])
          assert.ok(many instanceof Uint8Array)
          assert.equal(many.byteLength, 0)
          assert.equal(await store.delete('empty'), true)
        })
      })

      test('a large value (1 MiB) round-trips exactly', async () => {
        await withStore(async (store) => {
          const big = pattern(1024 * 1024, 3)
          await store.set('big', big, LONG_TTL)
          assertBytes(await store.get('big'), big)
        })
      })
    })

    describe('keys', () => {
      const odd = [
        'unicode: ünïcödé ✓ 日本語 🚀',
        '{hash}tag',
        'a{b}c:{}',
        'ns:with:colons',
        'with spaces  and\ttab',
        'glob*chars?[x]',
        'nul\u0000inside',
        '\\back\\slash\\',
      ]

      test('keys with unicode, braces, colons, spaces and glob characters are distinct, exact keys', async () => {
        await withStore(async (store) => {
          for (const [i, key] of odd.entries()) await store.set(key, bytes(`v${i}`), LONG_TTL)
          for (const [i, key] of odd.entries()) assertBytes(await store.get(key), bytes(`v${i}`), `key ${JSON.stringify(key)}`)
          const many = await store.getMany(odd)
          for (const [i, got] of many.entries()) assertBytes(got, bytes(`v${i}`))
          // Near misses are other keys.
          assert.equal(await store.get('{hash}Tag'), undefined)
          assert.equal(await store.get('ns:with:colons '), undefined)
          assert.equal(await store.get('glob*'), undefined)
          assert.equal(await store.get('nul'), undefined)
          assert.equal(await store.deleteMany(odd), odd.length)
        })
      })

      test('keys differing only in case or trailing space do not collide', async () => {
        await withStore(async (store) => {
          await store.set('key', bytes('lower'), LONG_TTL)
          await store.set('KEY', bytes('upper'), LONG_TTL)
          await store.set('key ', bytes('space'), LONG_TTL)
          assertBytes(await store.get('key'), bytes('lower'))
          assertBytes(await store.get('KEY'), bytes('upper'))
          assertBytes(await store.get('key '), bytes('space'))
        })
      })
    })

    describe('bad input', () => {
      /** Rejects with a CacheError of `code`: a caller's mistake, never ERR_STORE_UNAVAILABLE (which counts against the server). */
      const refused = (code: 'ERR_INVALID_KEY' | 'ERR_INVALID_OPTIONS') => (err: unknown) => isCacheError(err, code)

      test('a key that is not a string, a value that is not bytes, a key list that is not an array: typed refusals, nothing written or deleted', async () => {
        await withStore(async (store) => {
          const locks = store.locks
          await store.set('a', bytes('kept a'), LONG_TTL)
          await store.set('b', bytes('kept b'), LONG_TTL)
          for (const key of [5, undefined, null, {}]) {
            const k = key as unknown as string
            await assert.rejects(store.get(k), refused('ERR_INVALID_KEY'))
            await assert.rejects(store.set(k, bytes('v'), LONG_TTL), refused('ERR_INVALID_KEY'))
            await assert.rejects(store.setMany([{ key: k, value: bytes('v'), ttlMs: LONG_TTL }]), refused('ERR_INVALID_KEY'))
            await assert.rejects(store.getMany([k]), refused('ERR_INVALID_KEY'))
            await assert.rejects(store.delete(k), refused('ERR_INVALID_KEY'))
            await assert.rejects(store.deleteMany([k]), refused('ERR_INVALID_KEY'))
            await assert.rejects(store.touch(k, LONG_TTL), refused('ERR_INVALID_KEY'))
            await assert.rejects(store.clear(k), refused('ERR_INVALID_KEY'))
            if (locks !== undefined) {
              await assert.rejects(locks.acquire(k, 't', LONG_TTL), refused('ERR_INVALID_KEY'))
              await assert.rejects(locks.setAbove(k, bytes('v'), LONG_TTL), refused('ERR_INVALID_KEY'))
            }
          }
          // A string was once stored as zero bytes: silently, a different value.
          for (const value of ['str', undefined, null, 5, [1, 2]]) {
            const v = value as unknown as Uint8Array
            await assert.rejects(store.set('v', v, LONG_TTL), refused('ERR_INVALID_OPTIONS'))
            await assert.rejects(store.setMany([{ key: 'ok', value: bytes('v'), ttlMs: LONG_TTL }, { key: 'v', value: v, ttlMs: LONG_TTL }]), refused('ERR_INVALID_OPTIONS'))
            if (locks !== undefined) {
              await assert.rejects(locks.setFenced('v', v, LONG_TTL, 1), refused('ERR_INVALID_OPTIONS'))
              await assert.rejects(locks.setAbove('v', v, LONG_TTL), refused('ERR_INVALID_OPTIONS'))
            }
          }
          // 'ab' as a key list once deleted the keys 'a' and 'b' (a string iterates its characters).
          for (const list of ['ab', undefined, 5]) {
            await assert.rejects(store.getMany(list as unknown as string[]), refused('ERR_INVALID_OPTIONS'))
            await assert.rejects(store.deleteMany(list as unknown as string[]), refused('ERR_INVALID_OPTIONS'))
            await assert.rejects(store.setMany(list as unknown as []), refused('ERR_INVALID_OPTIONS'))
          }
          // A token that is not a non-empty string: memory and etcd granted a lock to 5 or '',
          // Redis sent 5 as '5' (so release('5') freed it), LMDB checked acquire only.
          if (locks !== undefined) {
            for (const token of ['', 5, null, undefined, {}]) {
              const t = token as unknown as string
              const named = (err: unknown): boolean => refused('ERR_INVALID_OPTIONS')(err) && (err as { option?: string }).option === 'token'
              await assert.rejects(locks.acquire('tok', t, LONG_TTL), named)
              await assert.rejects(locks.extend('tok', t, LONG_TTL), named)
              await assert.rejects(locks.release('tok', t), named)
            }
            const grant = await locks.acquire('tok', 'ok', LONG_TTL)
            assert.ok(grant !== undefined, 'a refused acquire took no lock')
            assert.equal(await locks.release('tok', 'ok'), true)
          }
          // NaN once set no timer: a wait on a held lock never ended.
          if (locks !== undefined) for (const timeoutMs of [Number.NaN, -1]) await assert.rejects(locks.waitForRelease('w', timeoutMs), refused('ERR_INVALID_OPTIONS'))
          assertBytes(await store.get('a'), bytes('kept a'))
          assertBytes(await store.get('b'), bytes('kept b'))
          assert.equal(await store.get('v'), undefined)
          assert.equal(await store.get('ok'), undefined, 'a batch with a bad entry writes nothing')
        })
      })
    })

    describe('expiry', () => {
      test('an entry is there before its TTL and gone after, for every read path', async () => {
        await withStore(async (store) => {
          await store.set('k', bytes('v'), 4 * unit)
          await advance(unit)
          assertBytes(await store.get('k'), bytes('v'), 'still fresh before its TTL')
          await advance(5 * unit)
          assert.equal(await store.get('k'), undefined, 'get after expiry')
          assert.deepEqual(await store.getMany(['k', 'k']), [undefined, undefined], 'getMany after expiry')
          assert.equal(await store.touch('k', LONG_TTL), false, 'touch does not revive an expired entry')
          assert.equal(await store.get('k'), undefined, 'still gone after touch')
          assert.equal(await store.delete('k'), false, 'an expired entry did not exist for delete')
        })
      })

      test('deleteMany does not count expired entries', async () => {
        await withStore(async (store) => {
          await store.set('short', bytes('s'), 4 * unit)
          await store.set('long', bytes('l'), LONG_TTL)
          await advance(6 * unit)
          assert.equal(await store.deleteMany(['short', 'long']), 1)
        })
      })

      test('an expired key can be set again and is fresh', async () => {
        await withStore(async (store) => {
          await store.set('k', bytes('old'), 4 * unit)
          await advance(6 * unit)
          await store.set('k', bytes('new'), LONG_TTL)
          assertBytes(await store.get('k'), bytes('new'))
        })
      })

      test('Infinity TTL never expires, while a finite TTL set alongside does', async () => {
        await withStore(async (store) => {
          await store.set('forever', bytes('f'), Infinity)
          await store.set('finite', bytes('x'), 4 * unit)
          await advance(20 * unit)
          assert.equal(await store.get('finite'), undefined)
          assertBytes(await store.get('forever'), bytes('f'))
        })
      })

      test('touch extends: the entry survives past its original expiry, then expires at the new one', async () => {
        await withStore(async (store) => {
          await store.set('k', bytes('v'), 4 * unit)
          await advance(2 * unit)
          assert.equal(await store.touch('k', 8 * unit), true)
          await advance(4 * unit) // 6 units in: past the original 4, before the new 2 + 8
          assertBytes(await store.get('k'), bytes('v'), 'touch kept the bytes and moved the expiry')
          await advance(6 * unit) // 12 units in: past the new expiry
          assert.equal(await store.get('k'), undefined)
        })
      })

      test('touch with Infinity makes an entry permanent; touch on a missing key is false', async () => {
        await withStore(async (store) => {
          await store.set('k', bytes('v'), 4 * unit)
          assert.equal(await store.touch('k', Infinity), true)
          await advance(20 * unit)
          assertBytes(await store.get('k'), bytes('v'))
          assert.equal(await store.touch('missing', LONG_TTL), false)
          assert.equal(await store.get('missing'), undefined, 'touch does not create an entry')
        })
      })
    })

    describe('clear', () => {
      test('clear(prefix) removes exactly the keys starting with prefix', async () => {
        await withStore(async (store) => {
          const removed = ['user:', 'user:1', 'user:2:profile', 'user:ü']
          const kept = ['users', 'use', 'User:1', 'other', 'x user:1', 'usr:1']
          for (const key of [...removed, ...kept]) await store.set(key, bytes(key), LONG_TTL)
          assert.equal(await store.clear('user:'), undefined)
          for (const key of removed) assert.equal(await store.get(key), undefined, `${JSON.stringify(key)} removed`)
          for (const key of kept) assertBytes(await store.get(key), bytes(key), `${JSON.stringify(key)} kept`)
        })
      })

      test('clear(prefix) takes the prefix literally (glob and brace characters are not patterns)', async () => {
        await withStore(async (store) => {
          const keys = ['a*', 'a*b', 'ab', 'a?', 'ax', 'a[b]', 'ab]', '{t}1', '{t}2', 't1']
          for (const key of keys) await store.set(key, bytes(key), LONG_TTL)
          await store.clear('a*')
          await store.clear('a?')
          await store.clear('a[')
          await store.clear('{t}')
          for (const key of ['a*', 'a*b', 'a?', 'a[b]', '{t}1', '{t}2']) assert.equal(await store.get(key), undefined, `${key} removed`)
          for (const key of ['ab', 'ax', 'ab]', 't1']) assertBytes(await store.get(key), bytes(key), `${key} kept`)
        })
      })

      test("clear('') removes everything, and the store stays usable", async () => {
        await withStore(async (store) => {
          for (const key of ['a', 'b:c', '{x}', 'ü']) await store.set(key, bytes(key), LONG_TTL)
          await store.set('forever', bytes('f'), Infinity)
          await store.clear('')
          assert.deepEqual(await store.getMany(['a', 'b:c', '{x}', 'ü', 'forever']), [undefined, undefined, undefined, undefined, undefined])
          await store.set('again', bytes('yes'), LONG_TTL)
          assertBytes(await store.get('again'), bytes('yes'))
        })
      })

      test('clear of a prefix nothing starts with is a no-op', async () => {
        await withStore(async (store) => {
          await store.set('k', bytes('v'), LONG_TTL)
          await store.clear('zzz')
          assertBytes(await store.get('k'), bytes('v'))
        })
      })
    })

    // ---- scan (Store.scan: ScanPage's guarantees) ----------------------------------------
    describe('scan', () => {
      type Scan = NonNullable<Store['scan']>
      /** Runs `fn` with the store's scan, or records a skip when the target says it cannot scan. */
      async function withScan(t: { skip(message?: string): void }, fn: (scan: Scan, store: Store) => Promise<void>): Promise<void> {
        if (target.scan === false) {
          t.skip(`${target.name} cannot scan (scan: false)`)
          return
        }
        await withStore(async (store) => {
          assert.equal(typeof store.scan, 'function', `${store.name} has no scan (pass scan: false to the conformance target if the adapter cannot scan)`)
          await fn((options) => (store.scan as Scan).call(store, options), store)
        })
      }
      /** Every page of a scan, each checked against `limit`; bounded so a cursor that never ends fails. */
      async function scanAll(scan: Scan, prefix: string | undefined, limit: number | undefined, between?: (page: number) => Promise<void>): Promise<string[]> {
        const keys: string[] = []
        let cursor: string | undefined
        let pages = 0
        do {
          const page = await scan({ prefix, cursor, limit })
          assert.ok(Array.isArray(page.keys), 'keys is an array')
          assert.ok(page.keys.length <= (limit ?? 100), `a page holds at most limit keys (${page.keys.length} > ${limit ?? 100})`)
          assert.ok(page.cursor === undefined || (typeof page.cursor === 'string' && page.cursor !== ''), 'cursor is a non-empty string or undefined')
          keys.push(...page.keys)
          cursor = page.cursor
          assert.ok(++pages < 5_000, 'the scan ends')
          if (cursor !== undefined) await between?.(pages)
        } while (cursor !== undefined)
        return keys
      }
      const sorted = (keys: Iterable<string>): string[] => [...new Set(keys)].sort()

      test('an empty store: one page, no keys, no cursor left', async (t) => {
        await withScan(t, async (scan) => {
          assert.deepEqual(await scanAll(scan, undefined, undefined), [])
          assert.deepEqual(await scanAll(scan, 'p:', 5), [])
        })
      })

      test('returns every key of the prefix (and only those) in pages of at most limit keys', async (t) => {
        await withScan(t, async (scan, store) => {
          const a = Array.from({ length: 230 }, (_, i) => `a:${i}`)
          const odd = ['a:{hash}', 'a:%25', 'a:ünï ✓ 🚀', 'a:glob*?[x]', 'a:', 'ab', 'x*1', 'xy1', 'x?', '{a:}', 'b:1', 'b:2']
          await store.setMany([...a, ...odd].map((key) => ({ key, value: bytes(key), ttlMs: LONG_TTL })))
          const inA = [...a, ...odd.filter((k) => k.startsWith('a:'))]
          for (const limit of [1, 7, 100]) {
            const got = await scanAll(scan, 'a:', limit)
            assert.deepEqual(sorted(got), sorted(inA), `prefix a: with limit ${limit}`)
          }
          assert.deepEqual(sorted(await scanAll(scan, '', 50)), sorted([...a, ...odd]), 'prefix "" is every key')
          assert.deepEqual(sorted(await scanAll(scan, undefined, undefined)), sorted([...a, ...odd]), 'no options: every key, default pages')
          assert.deepEqual(sorted(await scanAll(scan, 'x*', 10)), ['x*1'], 'glob characters in a prefix are literal')
          assert.deepEqual(sorted(await scanAll(scan, 'b:', 10)), ['b:1', 'b:2'])
          assert.deepEqual(await scanAll(scan, 'none:', 10), [])
          const first = await scan({ limit: 10_000 })
          assert.ok(first.keys.length <= 10_000)
          const page = await scan()
          assert.ok(page.keys.length <= 100, 'the default page is bounded (100)')
        })
      })

      test('keys present for the whole scan are all returned while other keys are written and deleted', async (t) => {
        await withScan(t, async (scan, store) => {
          const stable = Array.from({ length: 120 }, (_, i) => `s:${String(i).padStart(3, '0')}`)
          const doomed = Array.from({ length: 60 }, (_, i) => `s:d${i}`)
          await store.setMany([...stable, ...doomed].map((key) => ({ key, value: bytes('v'), ttlMs: LONG_TTL })))
          let born = 0
          const got = await scanAll(scan, 's:', 9, async (page) => {
            // Churn between pages: new keys around the stable ones, deletions, overwrites.
            await store.setMany(Array.from({ length: 15 }, (_, i) => ({ key: `s:${String(page * 7 + i).padStart(3, '0')}x${born++}`, value: bytes('n'), ttlMs: LONG_TTL })))
            await store.deleteMany(doomed.splice(0, 5))
            await store.set(stable[(page * 13) % stable.length] as string, bytes('overwritten'), LONG_TTL)
          })
          const seen = new Set(got)
          for (const key of stable) assert.ok(seen.has(key), `stable key ${key} was returned`)
          for (const key of got) assert.ok(key.startsWith('s:'), `${key} is under the prefix`)
        })
      })

      test('expired entries are not returned', async (t) => {
        await withScan(t, async (scan, store) => {
          await store.set('e:short', bytes('v'), 2 * unit)
          await store.set('e:long', bytes('v'), LONG_TTL)
          await advance(4 * unit)
          assert.deepEqual(await scanAll(scan, 'e:', 10), ['e:long'])
        })
      })

      test('bad options are refused with ERR_INVALID_OPTIONS', async (t) => {
        await withScan(t, async (scan) => {
          const invalid = (err: unknown): boolean => isCacheError(err, 'ERR_INVALID_OPTIONS')
          for (const limit of [0, -1, 1.5, 10_001, Number.NaN]) await assert.rejects(scan({ limit }), invalid, `limit ${limit}`)
          await assert.rejects(scan({ cursor: '' }), invalid, 'empty cursor')
          await assert.rejects(scan({ cursor: 'not a cursor of ours' }), invalid, 'foreign cursor')
          await assert.rejects(scan({ prefix: 7 as unknown as string }), invalid, 'prefix type')
        })
      })
    })

    describe('locks (when store.locks exists)', () => {
      /** Runs `fn` with the store's locks, or records a skip for stores without them. */
      async function withLocks(t: { skip(message?: string): void }, fn: (locks: StoreLocks, store: Store) => Promise<void>): Promise<void> {
        await withStore(async (store) => {
          if (store.locks === undefined) {
            t.skip(`${store.name} has no locks`)
            return
          }
          await fn(store.locks, store)
        })
      }
      const lease = 4 * unit

      test('acquire grants with the caller token; a second acquire fails while held', async (t) => {
        await withLocks(t, async (locks) => {
          const grant = await locks.acquire('L', 'tok-a', lease * 100)
          assert.ok(grant !== undefined)
          assert.equal(grant.token, 'tok-a')
          assert.equal(typeof grant.fence, 'number')
          assert.ok(Number.isFinite(grant.fence))
          assert.equal(await locks.acquire('L', 'tok-b', lease * 100), undefined)
          // Another key is another lock.
          assert.ok((await locks.acquire('L2', 'tok-b', lease * 100)) !== undefined)
        })
      })

      test('release and extend act only for the holding token', async (t) => {
        await withLocks(t, async (locks) => {
          assert.equal(await locks.release('L', 'tok-a'), false, 'nothing to release')
          assert.equal(await locks.extend('L', 'tok-a', lease), false, 'nothing to extend')
          const a = await locks.acquire('L', 'tok-a', lease * 100)
          assert.ok(a !== undefined)
          assert.equal(await locks.release('L', 'tok-b'), false, 'wrong token cannot release')
          assert.equal(await locks.extend('L', 'tok-b', lease), false, 'wrong token cannot extend')
          assert.equal(await locks.acquire('L', 'tok-b', lease), undefined, 'still held by a')
          assert.equal(await locks.extend('L', 'tok-a', lease * 100), true)
          assert.equal(await locks.release('L', 'tok-a'), true)
          assert.equal(await locks.release('L', 'tok-a'), false, 'released once')
          const b = await locks.acquire('L', 'tok-b', lease)
          assert.ok(b !== undefined, 'free after release')
          assert.ok(b.fence > a.fence)
        })
      })

      test('extend keeps the lease past its original expiry', async (t) => {
        await withLocks(t, async (locks) => {
          assert.ok((await locks.acquire('L', 'tok-a', lease)) !== undefined)
          await advance(2 * unit)
          assert.equal(await locks.extend('L', 'tok-a', 8 * unit), true)
          await advance(4 * unit) // past the original lease, inside the extended one
          assert.equal(await locks.acquire('L', 'tok-b', lease), undefined, 'extended lease still held')
          await advance(8 * unit)
          assert.ok((await locks.acquire('L', 'tok-b', lease)) !== undefined, 'extended lease ran out')
        })
      })

      test('an expired lease lets another acquire; the old holder can then neither extend nor release', async (t) => {
        await withLocks(t, async (locks) => {
          const a = await locks.acquire('L', 'tok-a', lease)
          assert.ok(a !== undefined)
          await advance(6 * unit)
          const b = await locks.acquire('L', 'tok-b', lease * 100)
          assert.ok(b !== undefined, 'acquired after expiry')
          assert.ok(b.fence > a.fence, 'the re-grant has a larger fence')
          assert.equal(await locks.extend('L', 'tok-a', lease), false)
          assert.equal(await locks.release('L', 'tok-a'), false)
          assert.equal(await locks.acquire('L', 'tok-c', lease), undefined, 'b still holds it')
        })
      })

      test('fences strictly increase across grants on a key (release, expiry, re-grant)', async (t) => {
        await withLocks(t, async (locks) => {
          const fences: number[] = []
          for (let round = 0; round < 6; round++) {
            const grant = await locks.acquire('F', `tok-${round}`, lease)
            assert.ok(grant !== undefined, `round ${round} acquires`)
            fences.push(grant.fence)
            // Alternate how the lease ends: released, or left to expire.
            if (round % 2 === 0) assert.equal(await locks.release('F', grant.token), true)
            else await advance(6 * unit)
          }
          for (let i = 1; i < fences.length; i++) assert.ok(fences[i] > fences[i - 1], `fences ${fences.join(', ')} strictly increase`)
        })
      })

      test('setFenced refuses a fence below the highest written and accepts equal or higher', async (t) => {
        await withLocks(t, async (locks, store) => {
          const a = await locks.acquire('K', 'tok-a', lease)
          assert.ok(a !== undefined)
          await advance(6 * unit) // a pauses past its lease
          const b = await locks.acquire('K', 'tok-b', lease * 100)
          assert.ok(b !== undefined)
          assert.equal(await locks.setFenced('K', bytes('from b'), LONG_TTL, b.fence), true)
          assertBytes(await store.get('K'), bytes('from b'))
          assert.equal(await locks.setFenced('K', bytes('stale a'), LONG_TTL, a.fence), false, 'lower fence refused')
          assertBytes(await store.get('K'), bytes('from b'), 'the refused write changed nothing')
          assert.equal(await locks.setFenced('K', bytes('b again'), LONG_TTL, b.fence), true, 'equal fence accepted')
          assertBytes(await store.get('K'), bytes('b again'))
          assert.equal(await locks.setFenced('K', bytes('higher'), LONG_TTL, b.fence + 10), true, 'higher fence accepted')
          assertBytes(await store.get('K'), bytes('higher'))
          assert.equal(await locks.setFenced('K', bytes('b late'), LONG_TTL, b.fence), false, 'the high-water mark moved up')
          // Fences are per key: another key has its own mark.
          assert.equal(await locks.setFenced('other', bytes('o'), LONG_TTL, a.fence), true)
        })
      })

      test('setFenced stores a copy and honours its TTL', async (t) => {
        await withLocks(t, async (locks, store) => {
          const grant = await locks.acquire('K', 'tok', lease)
          assert.ok(grant !== undefined)
          const buf = bytes('fenced')
          assert.equal(await locks.setFenced('K', buf, 4 * unit, grant.fence), true)
          buf.fill(0x21)
          assertBytes(await store.get('K'), bytes('fenced'))
          await advance(6 * unit)
          assert.equal(await store.get('K'), undefined)
        })
      })

      test('waitForRelease resolves promptly after release', async (t) => {
        await withLocks(t, async (locks) => {
          assert.ok((await locks.acquire('W', 'tok-a', LONG_TTL)) !== undefined)
          const waiting = track(locks.waitForRelease('W', LONG_TTL))
          await flush()
          assert.equal(waiting.state, 'pending', 'waits while the lock is held')
          assert.equal(await locks.release('W', 'tok-a'), true)
          const spent = await advanceUntilSettled(waiting)
          assert.equal(waiting.state, 'fulfilled', `resolved within ${WAKE_BUDGET_MS} ms of release`)
          assert.ok(spent <= WAKE_BUDGET_MS)
        })
      })

      test('waitForRelease resolves promptly when the value is written under the lock', async (t) => {
        await withLocks(t, async (locks) => {
          const grant = await locks.acquire('W', 'tok-a', LONG_TTL)
          assert.ok(grant !== undefined)
          const waiting = track(locks.waitForRelease('W', LONG_TTL))
          await flush()
          assert.equal(waiting.state, 'pending')
          assert.equal(await locks.setFenced('W', bytes('v'), LONG_TTL, grant.fence), true)
          await advanceUntilSettled(waiting)
          assert.equal(waiting.state, 'fulfilled', 'a fenced write wakes the waiters')
        })
      })

      test('waitForRelease on a key that is not locked resolves promptly (the release raced ahead)', async (t) => {
        await withLocks(t, async (locks) => {
          const waiting = track(locks.waitForRelease('free', LONG_TTL))
          await advanceUntilSettled(waiting)
          assert.equal(waiting.state, 'fulfilled')
        })
      })

      test('waitForRelease resolves (never rejects) after its timeout when never released', async (t) => {
        await withLocks(t, async (locks) => {
          const timeout = Math.max(20 * unit, 4 * WAKE_BUDGET_MS)
          assert.ok((await locks.acquire('W', 'tok-a', LONG_TTL)) !== undefined)
          const waiting = track(locks.waitForRelease('W', timeout))
          await advance(timeout / 2)
          assert.equal(waiting.state, 'pending', 'still waiting halfway to the timeout')
          await advance(timeout / 2 + 2 * unit)
          await advanceUntilSettled(waiting)
          assert.equal(waiting.state, 'fulfilled', 'resolved at the timeout, not rejected')
          assert.equal(await locks.acquire('W', 'tok-b', lease), undefined, 'the lock itself is still held')
        })
      })

      test('waitForRelease wakes when the lease runs out with no release (a paused holder); the waiter takes the lock and the old holder\'s late write is refused', async (t) => {
        await withLocks(t, async (locks, store) => {
          const a = await locks.acquire('W', 'tok-a', lease)
          assert.ok(a !== undefined)
          const waiting = track(locks.waitForRelease('W', LONG_TTL))
          await advance(2 * unit)
          assert.equal(waiting.state, 'pending', 'waits while the lease runs')
          await advance(3 * unit) // past the lease: nobody released, nothing was written
          await advanceUntilSettled(waiting)
          assert.equal(waiting.state, 'fulfilled', `the lease ending woke the waiter within ${WAKE_BUDGET_MS} ms, not its timeout`)
          const b = await locks.acquire('W', 'tok-b', LONG_TTL)
          assert.ok(b !== undefined, 'the lock is free for the woken waiter')
          assert.equal(await locks.setFenced('W', bytes('newer'), LONG_TTL, b.fence), true)
          assert.equal(await locks.setFenced('W', bytes('stale'), LONG_TTL, a.fence), false, 'the paused holder resumes: its write is refused')
          assertBytes(await store.get('W'), bytes('newer'))
        })
      })

      test('waitForRelease keeps waiting past the original lease end when the holder extended it', async (t) => {
        await withLocks(t, async (locks) => {
          assert.ok((await locks.acquire('W', 'tok-a', lease)) !== undefined)
          const waiting = track(locks.waitForRelease('W', LONG_TTL))
          await advance(2 * unit)
          assert.equal(await locks.extend('W', 'tok-a', 8 * unit), true) // now ends 10 units in
          await advance(4 * unit)
          assert.equal(waiting.state, 'pending', 'the extended lease still runs')
          await advance(6 * unit)
          await advanceUntilSettled(waiting)
          assert.equal(waiting.state, 'fulfilled', 'woken when the extended lease ran out')
        })
      })

      test('drawFence: a waiter that gave up writes with a drawn fence, and the holder\'s later write is refused', async (t) => {
        await withLocks(t, async (locks, store) => {
          const a = await locks.acquire('D', 'tok-a', LONG_TTL)
          assert.ok(a !== undefined)
          const waiting = track(locks.waitForRelease('D', 2 * unit))
          await advance(3 * unit)
          await advanceUntilSettled(waiting)
          assert.equal(waiting.state, 'fulfilled', 'the wait timed out: the holder still holds the lease')
          const drawn = await locks.drawFence('D')
          assert.equal(typeof drawn, 'number')
          assert.ok(Number.isFinite(drawn) && drawn > a.fence, `drawn fence ${drawn} is above the holder's ${a.fence}`)
          assert.equal(await locks.setFenced('D', bytes('newer'), LONG_TTL, drawn), true)
          assert.equal(await locks.setFenced('D', bytes('stale'), LONG_TTL, a.fence), false, 'the holder\'s write after it is refused')
          assertBytes(await store.get('D'), bytes('newer'))
          assert.equal(await locks.acquire('D', 'tok-b', lease), undefined, 'drawing a fence takes no lease')
          assert.equal(await locks.release('D', 'tok-a'), true)
          // A later grant is above the drawn fence: its write wins over a late one made with it.
          const c = await locks.acquire('D', 'tok-c', lease)
          assert.ok(c !== undefined && c.fence > drawn, 'a later grant is above the drawn fence')
          assert.equal(await locks.setFenced('D', bytes('from c'), LONG_TTL, c.fence), true)
          assert.equal(await locks.setFenced('D', bytes('late draw'), LONG_TTL, drawn), false)
          assertBytes(await store.get('D'), bytes('from c'))
          const again = await locks.drawFence('D')
          assert.ok(again > c.fence, 'every draw is above every earlier grant and draw')
        })
      })

      test('setAbove: an explicit write refuses the later writes of every earlier holder and drawn fence; later grants are above it', async (t) => {
        await withLocks(t, async (locks, store) => {
          const a = await locks.acquire('S', 'tok-a', LONG_TTL)
          assert.ok(a !== undefined)
          const drawn = await locks.drawFence('S')
          const buf = bytes('explicit')
          await locks.setAbove('S', buf, LONG_TTL)
          buf.fill(0x21)
          assertBytes(await store.get('S'), bytes('explicit'), 'written, as a copy')
          assert.equal(await locks.setFenced('S', bytes('stale a'), LONG_TTL, a.fence), false, 'the holder granted before it is refused')
          assert.equal(await locks.setFenced('S', bytes('stale draw'), LONG_TTL, drawn), false, 'a fence drawn before it is refused')
          assertBytes(await store.get('S'), bytes('explicit'))
          assert.equal(await locks.acquire('S', 'tok-b', lease), undefined, 'setAbove takes no lease and frees none')
          assert.equal(await locks.release('S', 'tok-a'), true)
          const c = await locks.acquire('S', 'tok-c', lease)
          assert.ok(c !== undefined)
          assert.equal(await locks.setFenced('S', bytes('from c'), LONG_TTL, c.fence), true, 'a grant after it writes')
          assertBytes(await store.get('S'), bytes('from c'))
          assert.ok((await locks.drawFence('S')) > c.fence)
          // A key that was never locked: written, and a later holder still writes.
          await locks.setAbove('fresh', bytes('f'), LONG_TTL)
          assertBytes(await store.get('fresh'), bytes('f'))
          const d = await locks.acquire('fresh', 'tok-d', lease)
          assert.ok(d !== undefined)
          assert.equal(await locks.setFenced('fresh', bytes('from d'), LONG_TTL, d.fence), true)
        })
      })

      test('setAbove honours its TTL and wakes the key\'s waiters', async (t) => {
        await withLocks(t, async (locks, store) => {
          assert.ok((await locks.acquire('T', 'tok-a', LONG_TTL)) !== undefined)
          const waiting = track(locks.waitForRelease('T', LONG_TTL))
          await flush()
          assert.equal(waiting.state, 'pending')
          await locks.setAbove('T', bytes('v'), 4 * unit)
          await advanceUntilSettled(waiting)
          assert.equal(waiting.state, 'fulfilled', 'the value is there: waiters go and read it')
          assertBytes(await store.get('T'), bytes('v'))
          await advance(6 * unit)
          assert.equal(await store.get('T'), undefined)
        })
      })

      test('deleteAbove: a holder granted before a delete cannot write the key back; a later grant can', async (t) => {
        await withLocks(t, async (locks, store) => {
          const a = await locks.acquire('X', 'tok-a', LONG_TTL)
          assert.ok(a !== undefined)
          await store.set('X', bytes('v0'), LONG_TTL)
          const drawn = await locks.drawFence('X')
          assert.equal(await locks.deleteAbove('X'), true, 'it existed')
          assert.equal(await store.get('X'), undefined)
          assert.equal(await locks.setFenced('X', bytes('resurrected'), LONG_TTL, a.fence), false, 'the earlier holder is refused')
          assert.equal(await locks.setFenced('X', bytes('resurrected'), LONG_TTL, drawn), false, 'an earlier drawn fence is refused')
          assert.equal(await store.get('X'), undefined, 'still deleted')
          assert.equal(await locks.deleteAbove('X'), false, 'already gone')
          assert.equal(await locks.release('X', 'tok-a'), true)
          const c = await locks.acquire('X', 'tok-c', lease)
          assert.ok(c !== undefined)
          assert.equal(await locks.setFenced('X', bytes('from c'), LONG_TTL, c.fence), true)
          assertBytes(await store.get('X'), bytes('from c'))
          // A written fenced value is deleted too, and its own writer cannot put it back.
          assert.equal(await locks.deleteAbove('X'), true)
          assert.equal(await locks.setFenced('X', bytes('c again'), LONG_TTL, c.fence), false)
          assert.equal(await locks.deleteAbove('never'), false, 'a key that never existed')
        })
      })

      test('waitForRelease rejects with AbortedError for an aborted signal (already aborted, or aborted while waiting)', async (t) => {
        await withLocks(t, async (locks) => {
          assert.ok((await locks.acquire('W', 'tok-a', LONG_TTL)) !== undefined)
          const pre = new AbortController()
          pre.abort()
          const early = track(locks.waitForRelease('W', LONG_TTL, pre.signal))
          await advanceUntilSettled(early)
          assert.equal(early.state, 'rejected')
          assert.ok(isCacheError(early.error, 'ERR_ABORTED'), `expected ERR_ABORTED, got ${String(early.error)}`)

          const ctl = new AbortController()
          const late = track(locks.waitForRelease('W', LONG_TTL, ctl.signal))
          await flush()
          assert.equal(late.state, 'pending')
          ctl.abort()
          await advanceUntilSettled(late)
          assert.equal(late.state, 'rejected')
          assert.ok(isCacheError(late.error, 'ERR_ABORTED'), `expected ERR_ABORTED, got ${String(late.error)}`)
        })
      })
    })
  })
}
