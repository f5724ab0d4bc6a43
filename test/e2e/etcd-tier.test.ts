/**
 * The facade over a real 3-member etcd cluster, across processes: a lock holder paused
 * (SIGSTOP) past its lease cannot overwrite the next holder's value, because the fence is
 * an etcd revision and the store refuses a lower one in the write's own transaction.
 * Same protocol and scenario as the Redis paused-holder tests (redis-tier.test.ts).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { etcdStore } from '../../src/store/etcd-store.js'
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-server.js'
import { pausedHolder, type HolderRival } from '../support/fenced-child.js'

describe('facade over a real etcd cluster: a paused lock holder', () => {
  let cluster: EtcdCluster
  before(async () => {
    cluster = await startEtcdCluster()
  })
  after(async () => {
    await cluster?.stop()
  })

  /** The paused-holder scenario (test/support/fenced-child.ts) on this etcd cluster. */
  const holder = (leaseMs: number, waitMs: number, bDoes: HolderRival) => {
    const namespace = `fenced-${leaseMs}-${waitMs}-${bDoes}/`
    return pausedHolder({ args: ['etcd', cluster.endpoints.join(','), namespace, String(leaseMs), String(waitMs)], reader: etcdStore({ endpoints: cluster.endpoints, namespace }), leaseMs, bDoes, replyTimeoutMs: 20_000 })
  }

  test('paused past its lease: the waiter takes the lock when the lease ends, and the holder\'s late write is refused', async () => {
    const { a, b } = await holder(1_000, 3_000, 'compute')
    assert.equal(b.degraded, 0, 'B took the lock when the lease ran out rather than at its wait timeout')
    assert.equal(a.fencedRefused, 1, 'the stale holder\'s write was refused by etcd')
    assert.ok(a.errors.includes('ERR_LOCK_LOST'), `A is told (errors: ${a.errors.join(', ')})`)
  })

  test('an explicit set made while the holder is paused is not overwritten by its late write', async () => {
    const { a } = await holder(1_000, 3_000, 'set')
    assert.equal(a.fencedRefused, 1)
  })

  test('a delete made while the holder is paused is not undone by its late write', async () => {
    const { a } = await holder(1_000, 3_000, 'delete')
    assert.equal(a.fencedRefused, 1)
  })
})
