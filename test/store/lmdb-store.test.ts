import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import type { Clock } from '../../src/core/clock.js'
import type { ByteSize, Duration } from '../../src/core/duration.js'
import type { Random } from '../../src/core/random.js'
import { InvalidOptionsError, isCacheError, StoreFullError } from '../../src/core/errors.js'
import { ManualClock } from '../../src/core/manual-clock.js'
// Through the public testing entry point (stratacache/testing), as a user's adapter would.
import { storeConformance } from '../../src/testing/index.js'
import { lmdbStore, type LmdbStoreOptions } from '../../src/store/lmdb-store.js'
import type { StoreEntry } from '../../src/store/types.js'
import { until as untilWithin } from '../support/until.js'

const root = mkdtempSync(join(tmpdir(), 'stratacache-lmdb-'))
after(() => rmSync(root, { recursive: true, force: true }))
let n = 0
const dir = (): string => join(root, `s${++n}`)

const clock = new ManualClock()
storeConformance({
  name: 'lmdb',
  open: async () => lmdbStore({ path: dir(), clock }),
  advance: async (ms) => clock.advance(ms),
  minTtlMs: 1,
})

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b))
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
/** Waits (real time, bounded) for work LMDB commits on its write thread. */
const until = (cond: () => boolean, what: string, limitMs = 5_000): Promise<void> => untilWithin(what, limitMs, cond, 2)
const code = (c: string) => (err: unknown): boolean => isCacheError(err, c as Parameters<typeof isCacheError>[1])

describe('lmdbStore specifics', () => {
  test('options are validated once, naming the option', () => {
    const bad: [LmdbStoreOptions, string][] = [
      [{ path: '' }, 'lmdb.path'],
      [{ path: dir(), mapSize: 0 }, 'lmdb.mapSize'],
      [{ path: dir(), mapSize: '12 parsecs' as ByteSize }, 'lmdb.mapSize'],
      [{ path: dir(), sweepInterval: 0 }, 'lmdb.sweepInterval'],
      [{ path: dir(), sweepInterval: Infinity }, 'lmdb.sweepInterval'],
      [{ path: dir(), sweepBatch: 0 }, 'lmdb.sweepBatch'],
      [{ path: dir(), sweepBatch: 1.5 }, 'lmdb.sweepBatch'],
      [{ path: dir(), lockPollInterval: -1 }, 'lmdb.lockPollInterval'],
      [{ path: dir(), fenceRetention: 'soon' as Duration }, 'lmdb.fenceRetention'],
      [{ path: dir(), maxReaders: 0 }, 'lmdb.maxReaders'],
      [{ path: dir(), clock: {} as Clock }, 'lmdb.clock'],
      // Was named 'lmdb.lockPoll.random', an option that does not exist.
      [{ path: dir(), random: {} as Random }, 'lmdb.random'],
    ]
    for (const [options, option] of bad) {
      assert.throws(
        () => lmdbStore(options),
        (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && err instanceof InvalidOptionsError && err.option === option,
        option,
      )
    }
    assert.throws(() => lmdbStore(undefined as unknown as LmdbStoreOptions), code('ERR_INVALID_OPTIONS'))
  })

  test('a path LMDB cannot open is ERR_STORE_UNAVAILABLE, not a crash', () => {
    const file = join(root, `plain-file-${++n}`)
    writeFileSync(file, 'not a directory')
    assert.throws(() => lmdbStore({ path: join(file, 'below') }), code('ERR_STORE_UNAVAILABLE'))
  })

  test('a path under a parent that cannot hold it (a dangling symlink, /proc) fails at once, not in an endless mkdir loop', () => {
    // node's mkdirSync(path, { recursive: true }), which lmdb-js calls, spins forever at full
    // CPU there (the child's mkdir says ENOENT, the parent's EEXIST), and a spinning process
    // ignores SIGTERM: the open runs in a child, killed outright if it has not answered.
    const dangling = join(root, `dangling-${++n}`)
    symlinkSync(join(root, 'nowhere'), dangling)
    const paths = [join(dangling, 'data'), join(dangling, 'a', 'b')]
    if (process.platform === 'linux') paths.push('/proc/stratacache-test-no-such-dir')
    const lmdbModule = new URL('../../src/store/lmdb-store.js', import.meta.url).href
    for (const path of paths) {
      const script = `import(${JSON.stringify(lmdbModule)}).then(({ lmdbStore }) => { try { lmdbStore({ path: ${JSON.stringify(path)} }); console.log('opened') } catch (err) { console.log(err.code) } })`
      const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' })
      assert.equal(res.signal, null, `opening ${path} did not end within 20 s (killed)`)
      assert.equal(res.stdout.trim(), 'ERR_STORE_UNAVAILABLE', `${path}: ${res.stdout}${res.stderr}`)
    }
  })

  test('bad keys, TTLs, values and fences get typed errors and write nothing', async () => {
    const store = lmdbStore({ path: dir(), clock: new ManualClock() })
    try {
      for (const key of ['', '\uD800', 'a\uDC00b', 42 as unknown as string]) {
        await assert.rejects(store.set(key, bytes('v'), 1000), code('ERR_INVALID_KEY'), JSON.stringify(key))
        await assert.rejects(store.get(key), code('ERR_INVALID_KEY'))
      }
      await assert.rejects(store.clear('\uD83D'), code('ERR_INVALID_KEY'), 'a prefix that splits a surrogate pair')
      for (const ttl of [0, -5, Number.NaN, '10' as unknown as number]) {
        await assert.rejects(store.set('k', bytes('v'), ttl), code('ERR_INVALID_OPTIONS'))
        await assert.rejects(store.touch('k', ttl), code('ERR_INVALID_OPTIONS'))
      }
      await assert.rejects(store.set('k', 'text' as unknown as Uint8Array, 1000), code('ERR_INVALID_OPTIONS'))
      await assert.rejects(
        store.setMany([
          { key: 'ok', value: bytes('v'), ttlMs: 10 },
          { key: 'bad', value: bytes('v'), ttlMs: 0 },
        ]),
        code('ERR_INVALID_OPTIONS'),
      )
      assert.equal(await store.get('ok'), undefined, 'a bad batch writes nothing')
      await assert.rejects(store.setMany([{ key: 'ok', value: bytes('v'), ttlMs: 10 }, null as unknown as StoreEntry]), code('ERR_INVALID_OPTIONS'))
      await assert.rejects(store.setMany('nope' as unknown as StoreEntry[]), code('ERR_INVALID_OPTIONS'))
      await assert.rejects(store.getMany('nope' as unknown as string[]), code('ERR_INVALID_OPTIONS'))
      await assert.rejects(store.deleteMany(undefined as unknown as string[]), code('ERR_INVALID_OPTIONS'))
      assert.equal(await store.get('ok'), undefined)
      await assert.rejects(store.locks.acquire('L', 't', 0), code('ERR_INVALID_OPTIONS'))
      await assert.rejects(store.locks.acquire('L', '', 1000), code('ERR_INVALID_OPTIONS'))
      for (const fence of [Number.NaN, Infinity]) await assert.rejects(store.locks.setFenced('K', bytes('v'), 1000, fence), code('ERR_INVALID_OPTIONS'))
      await assert.rejects(store.locks.waitForRelease('L', -1), code('ERR_INVALID_OPTIONS'))
      assert.equal(await store.get('K'), undefined)
      assert.equal(store.stats().entries, 0)
    } finally {
      await store.close()
    }
  })

  test('keys longer than LMDB allows are stored exactly (hashed), stay distinct, and clear matches them by their whole key', async () => {
    const store = lmdbStore({ path: dir(), clock: new ManualClock() })
    try {
      const base = 'x'.repeat(1899)
      const keys = [base, `${base}y`, `${base}y${'z'.repeat(3000)}`, `${base}y${'z'.repeat(3000)}!`, `${base}ü${'é'.repeat(2000)}`]
      for (const [i, key] of keys.entries()) await store.set(key, bytes(`v${i}`), 60_000)
      assert.deepEqual((await store.getMany(keys)).map(text), ['v0', 'v1', 'v2', 'v3', 'v4'])
      // A prefix longer than the stored direct part: only keys that really start with it go.
      await store.clear(`${base}y${'z'.repeat(3000)}!`)
      assert.deepEqual((await store.getMany(keys)).map(text), ['v0', 'v1', 'v2', undefined, 'v4'])
      await store.clear(`${base}y`)
      assert.deepEqual((await store.getMany(keys)).map(text), ['v0', undefined, undefined, undefined, 'v4'])
      assert.equal(await store.delete(keys[4] as string), true)
      assert.equal(store.stats().entries, 1)
    } finally {
      await store.close()
    }
  })

  test('survives a restart: data and fences are there, expired data is not', async () => {
    const c = new ManualClock()
    const path = dir()
    const first = lmdbStore({ path, clock: c })
    await first.set('short', bytes('s'), 1_000)
    await first.set('long', bytes('l'), 3_600_000)
    await first.set('forever', bytes('f'), Infinity)
    const grant = await first.locks.acquire('K', 'a', 60_000)
    assert.ok(grant !== undefined)
    assert.equal(await first.locks.setFenced('K', bytes('by a'), 3_600_000, grant.fence), true)
    const before = first.stats()
    await first.close()
    await assert.rejects(first.get('long'), code('ERR_CLOSED'))

    c.advance(5_000)
    const second = lmdbStore({ path, clock: c, sweepInterval: '1m' })
    try {
      assert.equal(await second.get('short'), undefined, 'expired while closed: not served')
      assert.deepEqual((await second.getMany(['long', 'forever', 'K'])).map(text), ['l', 'f', 'by a'])
      assert.deepEqual([second.stats().entries, second.stats().bytes], [before.entries, before.bytes], 'usage counters persisted')
      // The lease survived too (a restart does not free another process's lock) ...
      assert.equal(await second.locks.acquire('K', 'b', 60_000), undefined)
      c.advance(60_000) // ... until it runs out; the sweep also ran at 1m and reclaims 'short'
      await until(() => second.stats().swept === 1, 'the timed sweep')
      const next = await second.locks.acquire('K', 'b', 60_000)
      assert.ok(next !== undefined && next.fence > grant.fence, 'fences keep growing across restarts')
      assert.equal(await second.locks.setFenced('K', bytes('stale'), 1000, grant.fence - 1), false, 'the fence mark persisted')
      assert.equal(second.stats().entries, before.entries - 1, 'the sweep removed the expired entry')
      assert.equal(second.stats().swept, 1)
    } finally {
      await second.close()
    }
  })

  test('a full store gives ERR_STORE_FULL, loses nothing written before, changes no counter, and takes writes again after deletes', async () => {
    const store = lmdbStore({ path: dir(), clock: new ManualClock(), mapSize: '64kb' })
    try {
      const value = new Uint8Array(1000).fill(7)
      const written: string[] = []
      let full: unknown
      for (let i = 0; i < 200; i++) {
        try {
          await store.set(`k${i}`, value, 3_600_000)
          written.push(`k${i}`)
        } catch (err) {
          full = err
          break
        }
      }
      assert.ok(isCacheError(full, 'ERR_STORE_FULL'), `expected ERR_STORE_FULL, got ${String(full)}`)
      assert.ok(full instanceof StoreFullError)
      assert.ok(written.length > 30 && written.length < 70, `${written.length} entries of 1000 bytes in 64 KB`)
      const usage = store.stats()
      assert.equal(usage.entries, written.length)
      assert.ok(usage.bytes <= usage.capacity)
      assert.equal(usage.fullRefusals, 1)

      // Refused, whole: a batch, an overwrite that grows, a fenced write (its mark too).
      await assert.rejects(store.setMany([{ key: 'small', value: bytes('s'), ttlMs: 1000 }, { key: 'big', value: new Uint8Array(8000), ttlMs: 1000 }]), code('ERR_STORE_FULL'))
      assert.equal(await store.get('small'), undefined, 'the batch wrote nothing')
      await assert.rejects(store.set('k0', new Uint8Array(30_000), 1000), code('ERR_STORE_FULL'))
      const grant = await store.locks.acquire('F', 'tok', 60_000)
      assert.ok(grant !== undefined)
      await assert.rejects(store.locks.setFenced('F', new Uint8Array(30_000), 1000, grant.fence + 100), code('ERR_STORE_FULL'))
      assert.equal(await store.locks.setFenced('F', bytes('small fits'), 1000, grant.fence), true, 'the refused write did not raise the fence mark')
      await store.delete('F')
      assert.deepEqual([store.stats().entries, store.stats().bytes], [usage.entries, usage.bytes], 'refusals changed no counter')

      // Nothing lost.
      const all = await store.getMany(written)
      for (const [i, got] of all.entries()) assert.ok(got !== undefined && got.length === 1000 && got.every((b) => b === 7), `${written[i]} intact`)

      // Deletes make room; the store is usable again.
      assert.equal(await store.deleteMany(written.slice(0, 10)), 10)
      await store.set('after', new Uint8Array(5000).fill(9), 3_600_000)
      assert.equal((await store.get('after'))?.length, 5000)
      assert.equal(store.stats().entries, written.length - 10 + 1)
    } finally {
      await store.close()
    }
  })

  test('expired entries hold room until swept; a refused write starts a sweep that gives it back', async () => {
    const c = new ManualClock()
    const store = lmdbStore({ path: dir(), clock: c, mapSize: '32kb', sweepInterval: '1h', sweepBatch: 3 })
    try {
      const value = new Uint8Array(1000)
      let i = 0
      for (;;) {
        try {
          await store.set(`old${i++}`, value, 1000)
        } catch (err) {
          assert.ok(isCacheError(err, 'ERR_STORE_FULL'))
          break
        }
      }
      const entries = store.stats().entries
      // That refusal started a sweep (nothing expired yet); ours queues behind its data batch.
      assert.equal(await store.sweep(), 0)
      c.advance(2_000) // every entry has expired; the timed sweep is an hour away
      assert.equal(await store.get('old0'), undefined, 'expired: never served')
      await assert.rejects(store.set('new', value, 60_000), code('ERR_STORE_FULL'), 'expired entries still hold their room')
      // The refusal started a sweep lap (batches of 3, one transaction each).
      await until(() => store.stats().swept === entries, 'the sweep started by the refusal')
      assert.equal(store.stats().entries, 0)
      assert.equal(store.stats().bytes, 0)
      assert.equal(store.stats().fullRefusals, 2)
      await store.set('new', value, 60_000)
      assert.equal((await store.get('new'))?.length, 1000)
    } finally {
      await store.close()
    }
  })

  test('idle lock records are swept after fenceRetention (fences still grow); held ones are kept', async () => {
    const c = new ManualClock()
    const store = lmdbStore({ path: dir(), clock: c, sweepInterval: '1h', fenceRetention: '2h' })
    try {
      const a = await store.locks.acquire('idle', 'a', 1000)
      assert.ok(a !== undefined)
      assert.equal(await store.locks.setFenced('idle', bytes('v'), Infinity, a.fence + 50), true)
      assert.ok((await store.locks.acquire('held', 'h', Infinity)) !== undefined)
      c.advance(3_600_000 + 1) // the timed sweep at 1h: too young to go
      await flush()
      assert.equal(await store.sweep(), 0, 'nothing idle for 2h yet')
      c.advance(3_600_000 * 2)
      assert.equal(await store.sweep(), 1, 'the idle record (not the held one) goes')
      assert.equal(await store.locks.setFenced('idle', bytes('old fence'), Infinity, a.fence), true, 'the mark was dropped with the record')
      assert.equal(await store.locks.acquire('held', 'x', 1000), undefined, 'a held lock is never swept')
      const b = await store.locks.acquire('idle', 'b', 1000)
      assert.ok(b !== undefined && b.fence > a.fence, 'the store-wide counter still grows')
    } finally {
      await store.close()
    }
  })

  test('a read sees a commit another store (process) made before it started, even within one event-loop turn', async () => {
    const c = new ManualClock()
    const path = dir()
    const one = lmdbStore({ path, clock: c })
    const two = lmdbStore({ path, clock: c })
    try {
      let stale = 0
      for (let i = 1; i <= 100; i++) {
        await two.get('k') // two's reads are warm: lmdb-js would reuse this snapshot
        await one.set('k', new Uint8Array([i]), 60_000)
        if ((await two.get('k'))?.[0] !== i) stale++
        if ((await two.getMany(['k']))[0]?.[0] !== i) stale++
      }
      assert.equal(stale, 0, 'no read returned the state from before a finished write')
    } finally {
      await one.close()
      await two.close()
    }
  })

  test('two stores on one directory share data and locks; a release by one wakes the other\'s waiter within lockPollInterval', async () => {
    const c = new ManualClock()
    const path = dir()
    const one = lmdbStore({ path, clock: c, lockPollInterval: '20ms' })
    const two = lmdbStore({ path, clock: c, lockPollInterval: '20ms' })
    try {
      await one.set('shared', bytes('from one'), 60_000)
      assert.equal(text(await two.get('shared')), 'from one')
      const grant = await one.locks.acquire('L', 'one', 600_000)
      assert.ok(grant !== undefined)
      assert.equal(await two.locks.acquire('L', 'two', 600_000), undefined, 'the lease is shared')
      let woke = false
      const waiting = two.locks.waitForRelease('L', 600_000).then(() => (woke = true))
      c.advance(200) // the poller has backed off to its 20 ms cap
      await flush()
      assert.equal(woke, false)
      assert.equal(await one.locks.release('L', 'one'), true)
      // No notification crosses stores: the waiter's next poll, at most 20 ms later, sees it.
      for (let t = 0; t < 20 && !woke; t++) {
        c.advance(1)
        await flush()
        await flush()
      }
      await waiting
      assert.equal(woke, true)
      const g2 = await two.locks.acquire('L', 'two', 600_000)
      assert.ok(g2 !== undefined && g2.fence > grant.fence)
      assert.equal(await one.locks.setFenced('L', bytes('stale'), 1000, grant.fence), true, 'equal to the mark (none written yet) is accepted')
      assert.equal(await two.locks.setFenced('L', bytes('newer'), 1000, g2.fence), true)
      assert.equal(await one.locks.setFenced('L', bytes('stale again'), 1000, grant.fence), false)
      assert.equal(text(await one.get('L')), 'newer')
      assert.equal(one.stats().entries, two.stats().entries)
    } finally {
      await one.close()
      await two.close()
    }
  })

  test('close lets waiters go, leaves no timer, and later calls throw ERR_CLOSED', async () => {
    const c = new ManualClock()
    const store = lmdbStore({ path: dir(), clock: c })
    assert.ok((await store.locks.acquire('L', 'a', 60_000)) !== undefined)
    let woke = false
    const waiting = store.locks.waitForRelease('L', 60_000).then(() => (woke = true))
    await flush()
    assert.equal(woke, false)
    await store.close()
    await waiting
    assert.equal(woke, true)
    assert.equal(c.pendingTimers, 0, 'sweep and poll timers cleared')
    await assert.rejects(store.set('k', bytes('v'), 10), code('ERR_CLOSED'))
    await assert.rejects(store.locks.acquire('L', 'b', 10), code('ERR_CLOSED'))
    await assert.rejects(store.locks.waitForRelease('L', 10), code('ERR_CLOSED'))
    assert.throws(() => store.stats(), code('ERR_CLOSED'))
  })

  test('many waiters on one key share one poller; every one resolves on release', async () => {
    const c = new ManualClock()
    const store = lmdbStore({ path: dir(), clock: c })
    try {
      assert.ok((await store.locks.acquire('L', 'a', 60_000)) !== undefined)
      let woke = 0
      const waits = Array.from({ length: 50 }, () => store.locks.waitForRelease('L', 60_000).then(() => woke++))
      await flush()
      assert.equal(c.pendingTimers, 2, 'one poll timer for 50 waiters (plus the sweep timer)')
      assert.equal(await store.locks.release('L', 'a'), true)
      await Promise.all(waits)
      assert.equal(woke, 50)
      assert.equal(c.pendingTimers, 1, 'only the sweep timer is left')
    } finally {
      await store.close()
    }
  })
})

describe('lmdbStore concurrent sets (one child transaction per batch, decision 0243)', () => {
  test('sets issued together each settle on their own: one over the capacity fails alone, the others are stored', async () => {
    const store = lmdbStore({ path: dir(), clock: new ManualClock(), mapSize: '64kb' })
    try {
      const small = Array.from({ length: 20 }, (_, i) => store.set(`s${i}`, bytes(`v${i}`), 60_000))
      const big = store.set('big', new Uint8Array(200_000), 60_000)
      const more = Array.from({ length: 20 }, (_, i) => store.set(`t${i}`, bytes(`w${i}`), 60_000))
      await assert.rejects(big, code('ERR_STORE_FULL'))
      await Promise.all([...small, ...more])
      assert.equal(await store.get('big'), undefined)
      const got = await store.getMany([...Array.from({ length: 20 }, (_, i) => `s${i}`), ...Array.from({ length: 20 }, (_, i) => `t${i}`)])
      assert.deepEqual(got.map(text), [...Array.from({ length: 20 }, (_, i) => `v${i}`), ...Array.from({ length: 20 }, (_, i) => `w${i}`)])
      const stats = store.stats()
      assert.equal(stats.entries, 40)
      assert.equal(stats.fullRefusals, 1)
    } finally {
      await store.close()
    }
  })

  test('issue order holds across sets and other mutations of one key issued together', async () => {
    const store = lmdbStore({ path: dir(), clock: new ManualClock() })
    try {
      const ops = [store.set('k', bytes('a'), 60_000), store.delete('k'), store.set('k', bytes('b'), 60_000), store.set('j', bytes('1'), 60_000), store.touch('j', 120_000), store.set('j', bytes('2'), 60_000)]
      await Promise.all(ops)
      assert.equal(text(await store.get('k')), 'b', 'the set after the delete wins')
      assert.equal(text(await store.get('j')), '2')
      assert.equal(store.stats().entries, 2)
      // Again while a batch is being committed: sets queued behind it keep their order too.
      const first = store.set('k', bytes('c'), 60_000)
      await flush()
      const rest = [store.set('k', bytes('d'), 60_000), store.delete('k'), store.set('k', bytes('e'), 60_000)]
      await Promise.all([first, ...rest])
      assert.equal(text(await store.get('k')), 'e')
    } finally {
      await store.close()
    }
  })
})
