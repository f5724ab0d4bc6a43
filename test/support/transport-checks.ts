/**
 * The checks that the real-broker bus transport tests (NATS, RabbitMQ) and the feed tests
 * (PostgreSQL, RabbitMQ) run alike, each written once: bounded polling, option validation,
 * an unreachable broker, resubscribe(), a delete across two buses surviving a broken
 * connection, and L1 coherence of two caches over one bus. The test files keep their own
 * test titles and broker-specific timeouts; only the bodies live here.
 */
import assert from 'node:assert/strict'
import type { Bus, BusListener, FlushReason } from '../../src/bus/bus.js'
import type { BusTransport } from '../../src/bus/types.js'
import { createCache } from '../../src/cache/cache.js'
import { isCacheError } from '../../src/core/errors.js'
import type { ChangeFeed } from '../../src/feeds/types.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { until } from './until.js'

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export { until }

/** Each of `bad` is refused by `factory` with ERR_INVALID_OPTIONS whose message matches its pattern (the option's name). */
export function assertRefusesOptions(factory: (options: never) => unknown, bad: ReadonlyArray<readonly [unknown, RegExp]>): void {
  for (const [options, name] of bad) {
    assert.throws(
      () => factory(options as never),
      (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && name.test((err as Error).message),
      `refused: ${JSON.stringify(options)}`,
    )
  }
}

/** A transport whose broker is not there: publish and subscribe reject with ERR_BUS_UNAVAILABLE. */
export async function assertBusUnavailable(t: BusTransport): Promise<void> {
  try {
    await assert.rejects(t.publish('x', new Uint8Array([1])), (err: unknown) => isCacheError(err, 'ERR_BUS_UNAVAILABLE'))
    await assert.rejects(
      t.subscribe(
        'x',
        () => {},
        () => {},
      ),
      (err: unknown) => isCacheError(err, 'ERR_BUS_UNAVAILABLE'),
    )
  } finally {
    await t.close()
  }
}

/** `b.resubscribe()` drops its connection: 'down' then 'up', and what `a` publishes reaches `b` again. */
export async function checkResubscribe(a: BusTransport, b: BusTransport): Promise<void> {
  try {
    const states: string[] = []
    const got: string[] = []
    await b.subscribe(
      'resub',
      (m) => got.push(Buffer.from(m).toString()),
      (s) => states.push(s),
    )
    b.resubscribe?.()
    await until("'down' then 'up'", 10_000, () => states.join(',') === 'down,up')
    await a.publish('resub', Buffer.from('after'))
    await until('delivery after resubscribe', 5_000, () => got.includes('after'))
  } finally {
    await a.close()
    await b.close()
  }
}

/**
 * A delete published on bus `a` reaches bus `b`; `breakConnections` (the broker restarted, or
 * its connections closed) makes `b` flush, and deletes flow again afterwards.
 */
export async function checkDeleteAcrossBuses(a: Bus, b: Bus, breakConnections: () => Promise<void>, flushAfter: string): Promise<void> {
  try {
    const deleted: string[] = []
    const flushes: FlushReason[] = []
    const listener: BusListener = {
      delete: (keys) => deleted.push(...keys),
      tags: () => {},
      clear: () => {},
      flush: (reason) => flushes.push(reason),
      health: () => {},
    }
    b.attach('ns', listener)
    await Promise.all([a.start(), b.start()])
    await a.publish({ kind: 'delete', namespace: 'ns', keys: ['user:1'] })
    await until('the delete arrives', 5_000, () => deleted.includes('user:1'))
    const before = flushes.length
    await breakConnections()
    await until(flushAfter, 15_000, () => flushes.length > before)
    await until('delivery again', 15_000, () => {
      void a.publish({ kind: 'delete', namespace: 'ns', keys: ['user:2'] }).catch(() => {})
      return deleted.includes('user:2')
    })
  } finally {
    await a.close()
    await b.close()
  }
}

/** Two caches sharing an L2, each on its own bus from `bus()`: a set in A drops the old value from B's L1. */
export async function checkTwoCachesCoherent(bus: () => Bus, healthyWithinMs: number): Promise<void> {
  const store = memoryStore()
  const a = createCache<string>({ store, bus: bus() })
  const b = createCache<string>({ store, bus: bus() })
  try {
    await until('both buses healthy', healthyWithinMs, () => a.stats().bus?.healthy === true && b.stats().bus?.healthy === true)
    await a.set('k', 'v1')
    await until('the first set’s message arrived in B', 5_000, () => b.stats().bus?.keysDropped === 1)
    assert.equal(await b.get('k'), 'v1')
    assert.equal(await b.peek('k'), 'v1', 'held in B’s L1')
    await a.set('k', 'v2')
    await until('B’s L1 drops v1', 5_000, () => b.stats().bus?.keysDropped === 2)
    assert.equal(await b.peek('k'), undefined, 'dropped from B’s L1')
    assert.equal(await b.get('k'), 'v2')
  } finally {
    await a.close()
    await b.close()
  }
}

/** A feed whose server is not there: attachFeed rejects with ERR_FEED_UNAVAILABLE and the feed is left closed. */
export async function assertFeedUnavailable(feed: ChangeFeed): Promise<void> {
  const cache = createCache<string>()
  await assert.rejects(cache.attachFeed(feed), (err: unknown) => isCacheError(err, 'ERR_FEED_UNAVAILABLE'))
  assert.equal(feed.stats().state, 'closed')
  await cache.close()
}
