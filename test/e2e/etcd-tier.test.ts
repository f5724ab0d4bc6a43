/**
 * The facade over a real 3-member etcd cluster, across processes: a lock holder paused
 * (SIGSTOP) past its lease cannot overwrite the next holder's value, because the fence is
 * an etcd revision and the store refuses a lower one in the write's own transaction.
 * Same protocol and scenario as the Redis paused-holder tests (redis-tier.test.ts).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { createCache } from '../../src/index.js'
import { etcdStore } from '../../src/store/etcd-store.js'
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-server.js'
import type { FencedReply } from './fixtures/fenced-worker.js'
import { spawnFencedWorker, type FencedChild, type FencedStats } from '../support/fenced-child.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))


/** `p`, rejecting if it takes longer than `limitMs` (a hang). */
async function bounded<T>(p: Promise<T>, limitMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${limitMs} ms`)), limitMs)
  })
  try {
    return await Promise.race([p, limit])
  } finally {
    clearTimeout(timer)
  }
}

describe('facade over a real etcd cluster: a paused lock holder', () => {
  let cluster: EtcdCluster
  before(async () => {
    cluster = await startEtcdCluster()
  })
  after(async () => {
    await cluster?.stop()
  })

  /**
   * A computes 'older' under the lock and is frozen (SIGSTOP) inside its factory; B then
   * computes 'newer' (or sets it, or deletes the key) while A is frozen; A resumes and its
   * late fenced write must be refused: L2, A and B all end with what B did.
   */
  async function pausedHolder(leaseMs: number, waitMs: number, bDoes: 'compute' | 'set' | 'delete'): Promise<{ a: FencedStats; b: FencedStats }> {
    const namespace = `fenced-${leaseMs}-${waitMs}-${bDoes}/`
    const expected = bDoes === 'delete' ? undefined : 'newer'
    const spawn = (): FencedChild => spawnFencedWorker(['etcd', cluster.endpoints.join(','), namespace, String(leaseMs), String(waitMs)], 20_000)
    const a = spawn()
    const b = spawn()
    const reader = etcdStore({ endpoints: cluster.endpoints, namespace })
    const l2 = createCache<string>({ store: reader })
    try {
      await a.next('ready')
      await b.next('ready')
      a.ask({ op: 'compute', key: 'k', value: 'older', factoryMs: 300 })
      await a.next('in-factory')
      a.child.kill('SIGSTOP') // A holds the lock, frozen inside its factory
      if (bDoes === 'compute') {
        b.ask({ op: 'compute', key: 'k', value: 'newer', factoryMs: 50 })
        await b.next('in-factory')
        assert.deepEqual(await b.next('computed'), { op: 'computed', value: 'newer' })
      } else {
        b.ask(bDoes === 'set' ? { op: 'set', key: 'k', value: 'newer' } : { op: 'delete', key: 'k' })
        await b.next('done')
      }
      // A stays frozen well past its lease.
      await sleep(leaseMs * 1.5)
      a.child.kill('SIGCONT')
      assert.deepEqual(await a.next('computed'), { op: 'computed', value: 'older' }, 'A\'s own callers get what its factory returned')
      assert.equal(await l2.get('k'), expected, `L2 keeps what B did (${bDoes})`)
      for (const [name, p] of [['A', a], ['B', b]] as const) {
        p.ask({ op: 'get', key: 'k' })
        const got = (await p.next('got')) as Extract<FencedReply, { op: 'got' }>
        assert.equal(got.value, expected, `${name} serves what B did (${bDoes})`)
      }
      const stats = async (p: FencedChild): Promise<FencedStats> => {
        p.ask({ op: 'stats' })
        return (await p.next('stats')) as FencedStats
      }
      return { a: await stats(a), b: await stats(b) }
    } finally {
      for (const p of [a, b]) {
        p.child.kill('SIGCONT')
        if (p.child.connected) p.ask({ op: 'close' })
      }
      await Promise.all([a, b].map((p) => (p.child.exitCode === null ? bounded(new Promise((resolve) => p.child.once('exit', resolve)), 5_000).catch(() => p.child.kill('SIGKILL')) : undefined)))
      await l2.close()
      await reader.close()
    }
  }

  test('paused past its lease: the waiter takes the lock when the lease ends, and the holder\'s late write is refused', async () => {
    const { a, b } = await pausedHolder(1_000, 3_000, 'compute')
    assert.equal(b.degraded, 0, 'B took the lock when the lease ran out rather than at its wait timeout')
    assert.equal(a.fencedRefused, 1, 'the stale holder\'s write was refused by etcd')
    assert.ok(a.errors.includes('ERR_LOCK_LOST'), `A is told (errors: ${a.errors.join(', ')})`)
  })

  test('an explicit set made while the holder is paused is not overwritten by its late write', async () => {
    const { a } = await pausedHolder(1_000, 3_000, 'set')
    assert.equal(a.fencedRefused, 1)
  })

  test('a delete made while the holder is paused is not undone by its late write', async () => {
    const { a } = await pausedHolder(1_000, 3_000, 'delete')
    assert.equal(a.fencedRefused, 1)
  })
})
