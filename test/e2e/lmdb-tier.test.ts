/**
 * lmdbStore shared by several real Node processes on one host (child_process.fork), and
 * under the facade. Real time here (real processes); every wait is bounded.
 */
import assert from 'node:assert/strict'
import { fork, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { createCache } from '../../src/index.js'
import { lmdbStore } from '../../src/store/lmdb-store.js'

const worker = fileURLToPath(new URL('./fixtures/lmdb-worker.js', import.meta.url))
const root = mkdtempSync(join(tmpdir(), 'stratacache-lmdb-e2e-'))
after(() => rmSync(root, { recursive: true, force: true }))
let n = 0
const dir = (): string => join(root, `d${++n}`)

/** Rejects if `p` takes longer than `limitMs` (a hang). */
async function within<T>(p: Promise<T>, limitMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${limitMs} ms`)), limitMs)
  })
  try {
    return await Promise.race([p, limit])
  } finally {
    clearTimeout(timer)
  }
}

/** Starts the workers, waits until each is ready, says go, and collects one report from each. */
async function run<R>(args: string[][]): Promise<R[]> {
  const children: ChildProcess[] = args.map((a) => fork(worker, a, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  try {
    await within(Promise.all(children.map((c) => new Promise<void>((resolve, reject) => {
      c.once('message', () => resolve())
      c.once('exit', (code) => reject(new Error(`worker exited with ${String(code)} before it was ready`)))
    }))), 20_000, 'workers ready')
    const reports = children.map((c) => new Promise<R>((resolve, reject) => {
      c.once('message', (m) => resolve(m as R))
      c.once('exit', (code) => reject(new Error(`worker exited with ${String(code)} before reporting`)))
    }))
    for (const c of children) c.send('go')
    return await within(Promise.all(reports), 60_000, 'worker reports')
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill()
  }
}

function checkSelfChecking(bytes: Uint8Array, what: string): { writer: number; round: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  assert.ok(bytes.length >= 16, `${what}: ${bytes.length} bytes`)
  const size = view.getUint32(8)
  assert.equal(bytes.length, size, `${what}: length field`)
  let sum = 0
  for (let i = 16; i < size; i++) sum = (sum + (bytes[i] as number)) >>> 0
  assert.equal(view.getUint32(12), sum, `${what}: checksum`)
  return { writer: view.getUint32(0), round: view.getUint32(4) }
}

describe('lmdbStore across real processes', () => {
  test('4 processes x 250 callers with lock: distributed on one directory: exactly one factory call in total', async () => {
    const path = dir()
    const reports = await run<{ calls: number; values: string[]; degraded: number }>(Array.from({ length: 4 }, () => ['stampede', path, 'hot', '250', '300']))
    const calls = reports.reduce((s, r) => s + r.calls, 0)
    assert.equal(calls, 1, `factory calls across 4 processes: ${reports.map((r) => r.calls).join(', ')}`)
    assert.equal(new Set(reports.flatMap((r) => r.values)).size, 1, 'every caller in every process got the same value')
    assert.equal(reports.reduce((s, r) => s + r.degraded, 0), 0, 'nobody fell back to computing without the lock')
  })

  test('4 concurrent writer processes: no torn or lost value, exact usage counters, every fence distinct and growing', async () => {
    const path = dir()
    const rounds = 40
    const reports = await run<{ fences: number[]; own: [string, { round: number; size: number }][] }>(Array.from({ length: 4 }, (_, id) => ['writers', path, String(id), String(rounds)]))
    const store = lmdbStore({ path })
    try {
      // Own keys: exactly what each process last wrote, and nothing it deleted.
      let expected = 0
      for (const [id, report] of reports.entries()) {
        const own = new Map(report.own)
        expected += own.size
        for (let k = 0; k < 40; k++) {
          const key = `p${id}:k${k}`
          const got = await store.get(key)
          const want = own.get(key)
          if (want === undefined) {
            assert.equal(got, undefined, `${key} was deleted last`)
            continue
          }
          assert.ok(got !== undefined, `${key} is there`)
          assert.deepEqual(checkSelfChecking(got, key), { writer: id, round: want.round })
          assert.equal(got.length, want.size)
        }
      }
      // Shared keys: whole values from one writer's last round or another's, never a mix.
      for (let j = 0; j < 5; j++) {
        const got = await store.get(`shared:${j}`)
        assert.ok(got !== undefined)
        const { writer } = checkSelfChecking(got, `shared:${j}`)
        assert.ok(writer < 4)
      }
      const fenced = await store.get('fenced')
      assert.ok(fenced !== undefined)
      checkSelfChecking(fenced, 'fenced')
      expected += 5 + 1
      assert.equal(store.stats().entries, expected, 'the shared entry counter matches what is stored')

      // Fences: distinct across every process, increasing within each.
      const all = reports.flatMap((r) => r.fences)
      assert.ok(all.length >= rounds, `${all.length} grants`)
      assert.equal(new Set(all).size, all.length, 'no fence was granted twice')
      for (const r of reports) for (let i = 1; i < r.fences.length; i++) assert.ok((r.fences[i] as number) > (r.fences[i - 1] as number))
    } finally {
      await store.close()
    }
  })
})

describe('lmdbStore when a process dies', () => {
  test('SIGKILL mid-write while holding a lock: every committed batch intact, counters exact, the lock free after its lease', async () => {
    const path = dir()
    const child = fork(worker, ['crash', path, '5000'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    let fence: number | undefined
    try {
      await within(
        new Promise<void>((resolve, reject) => {
          child.on('message', (m) => {
            if (typeof m === 'object' && m !== null && 'fence' in m) fence = (m as { fence: number }).fence
            if (m === 'writing') resolve()
          })
          child.once('exit', (code) => reject(new Error(`crash worker exited early with ${String(code)}`)))
        }),
        20_000,
        'crash worker writing',
      )
      await new Promise((resolve) => setTimeout(resolve, 100))
      child.kill('SIGKILL')
      await within(new Promise((resolve) => child.once('exit', resolve)), 10_000, 'crash worker exit')
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
    assert.ok(fence !== undefined)
    const killedAt = performance.now()

    const store = lmdbStore({ path })
    try {
      // Batches commit whole: the keys present are a whole number of batches, all intact.
      let present = 0
      for (let from = 0; ; from += 1000) {
        const got = await store.getMany(Array.from({ length: 1000 }, (_, i) => `c:${from + i}`))
        let here = 0
        for (const [i, bytes] of got.entries()) {
          if (bytes === undefined) continue
          here++
          checkSelfChecking(bytes, `c:${from + i}`)
        }
        present += here
        if (here < 1000) break
      }
      assert.ok(present >= 150, `${present} entries survived (at least the 3 batches reported)`)
      assert.equal(present % 50, 0, 'no batch was half-written')
      assert.equal(store.stats().entries, present, 'the entry counter matches what is stored')

      // The dead holder never released; its lease runs out and the lock is taken with a larger fence.
      assert.equal(await store.locks.acquire('crash-lock', 'survivor', 60_000), undefined, 'still leased right after the kill')
      const waited = within(store.locks.waitForRelease('crash-lock', 10_000), 15_000, 'lease expiry')
      await waited
      const grant = await store.locks.acquire('crash-lock', 'survivor', 60_000)
      assert.ok(grant !== undefined, 'free once the lease ran out')
      assert.ok(grant.fence > fence)
      assert.ok(performance.now() - killedAt < 10_000)
    } finally {
      await store.close()
    }
  })
})

describe('the facade over lmdbStore', () => {
  test('a full store: writes are refused and reported, nothing queued, the breaker stays closed, earlier values still read', async () => {
    const store = lmdbStore({ path: dir(), mapSize: '64kb' })
    const cache = createCache<string>({ store })
    const errors: string[] = []
    cache.on('error', (e) => errors.push(e.error.code))
    try {
      // Incompressible, so the codec's deflate cannot shrink it below the map.
      const big = randomBytes(3000).toString('base64')
      for (let i = 0; i < 40; i++) await cache.set(`k${i}`, `${i}:${big}`)
      assert.ok(errors.includes('ERR_STORE_FULL'), `errors: ${[...new Set(errors)].join(', ')}`)
      const l2 = cache.stats().l2
      assert.ok(l2 !== undefined)
      assert.equal(l2.breaker.state, 'closed')
      assert.equal(l2.queued, 0)
      assert.ok(l2.refused > 0)
      assert.equal(store.stats().fullRefusals, l2.refused)
      // Another process (a fresh cache) still reads what fitted, from L2.
      const reader = createCache<string>({ store })
      assert.equal(await reader.get('k0'), `0:${big}`)
      await reader.close()
      assert.equal(await cache.get('k39'), `39:${big}`, 'the refused value is still served from L1 in its own process')
    } finally {
      await cache.close()
      await store.close()
    }
  })

  test('a cache value survives a restart of the store; an expired one does not', async () => {
    const path = dir()
    const store = lmdbStore({ path })
    const cache = createCache<{ at: Date; n: bigint; tags: Set<string> }>({ store })
    const value = { at: new Date(1_700_000_000_000), n: 2n ** 70n, tags: new Set(['a', 'b']) }
    await cache.set('kept', value, { ttl: '1h' })
    await cache.set('brief', value, { ttl: '50ms' })
    await cache.close()
    await store.close()
    await new Promise((resolve) => setTimeout(resolve, 120))

    const reopened = lmdbStore({ path })
    const fresh = createCache<{ at: Date; n: bigint; tags: Set<string> }>({ store: reopened })
    try {
      assert.deepEqual(await fresh.get('kept'), value, 'read back from disk, types intact')
      assert.equal(await fresh.get('brief'), undefined)
      assert.equal(fresh.stats().l2?.hits, 1)
    } finally {
      await fresh.close()
      await reopened.close()
    }
  })
})
