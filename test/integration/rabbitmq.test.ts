/**
 * Everything that needs RabbitMQ, in one file so that one node boots once (it is slow):
 * amqpTransport through the transport conformance suite (including kill and restart of
 * the broker) and its AMQP specifics, then amqpFeed: kazoo-style document-change notices
 * erase exactly the right entries, malformed ones are counted and ignored, a cut
 * connection flushes the feed's scope and listening resumes.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { busTransportConformance } from '../../src/bus/conformance.js'
import { amqpBus, amqpTransport } from '../../src/bus/amqp-transport.js'
import { isCacheError } from '../../src/core/errors.js'
import amqp from 'amqplib'
import { createCache } from '../../src/index.js'
import { amqpFeed } from '../../src/feeds/amqp-feed.js'
import { RabbitMqServer } from '../support/rabbitmq-server.js'
import { assertBusUnavailable, assertFeedUnavailable, assertRefusesOptions, checkDeleteAcrossBuses, checkResubscribe, checkTwoCachesCoherent, sleep, until } from '../support/transport-checks.js'

let server: RabbitMqServer

before(async () => {
  server = await RabbitMqServer.start()
})
after(async () => {
  await server?.stop()
})

busTransportConformance({
  name: 'amqp',
  open: async () => amqpTransport({ url: server.url, publishTimeout: '2s', connectTimeout: '2s' }),
  kill: () => server.kill(),
  restart: () => server.restart(),
  downWithinMs: 10_000,
  reconnectWithinMs: 20_000,
  failWithinMs: 5_000,
})

describe('amqpTransport: AMQP specifics', () => {
  test('options are validated with ERR_INVALID_OPTIONS naming the option', () => {
    const bad: Array<[unknown, RegExp]> = [
      [null, /bus/],
      [{ url: 'http://x' }, /bus\.url/],
      [{ url: 'not a url' }, /bus\.url/],
      [{ exchange: '' }, /bus\.exchange/],
      [{ exchange: 'a b' }, /bus\.exchange/],
      [{ durable: 'yes' }, /bus\.durable/],
      [{ publishTimeout: 0 }, /bus\.publishTimeout/],
      [{ connectTimeout: 'soon' }, /bus\.connectTimeout/],
      [{ heartbeat: '10ms' }, /bus\.heartbeat/],
      [{ reconnect: { initial: 0 } }, /bus\.reconnect\.initial/],
      [{ clock: 5 }, /bus\.clock/],
      [{ random: {} }, /bus\.random/],
    ]
    assertRefusesOptions(amqpTransport, bad)
  })

  test('a broker that is not there: publish and subscribe reject with ERR_BUS_UNAVAILABLE', async () => {
    await assertBusUnavailable(amqpTransport({ url: 'amqp://guest:guest@127.0.0.1:1', publishTimeout: '500ms' }))
  })

  test("resubscribe() drops the connection: 'down' then 'up' on a new queue, and delivery goes on", async () => {
    await checkResubscribe(amqpTransport({ url: server.url }), amqpTransport({ url: server.url }))
  })

  test('a subscriber’s queue is exclusive and auto-deleted: closing the transport removes it', async () => {
    // The broker is shared with the file's other tests, whose transports may hold queues of
    // their own: the check is on the queue this subscribe added (the names new since before it).
    const listQueues = async (): Promise<string[]> =>
      (await server.ctl('list_queues', 'name', 'exclusive', 'auto_delete', '--no-table-headers', '--quiet')).output
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line !== '')
    const nameOf = (row: string): string => row.split(/\s+/)[0] ?? ''
    const earlier = new Set((await listQueues()).map(nameOf))
    const b = amqpTransport({ url: server.url, exchange: 'stratacache.queues-test' })
    await b.subscribe(
      'q',
      () => {},
      () => {},
    )
    const added = (await listQueues()).filter((row) => !earlier.has(nameOf(row)))
    assert.equal(added.length, 1, `one queue added by the subscribe: ${JSON.stringify(added)}`)
    assert.match(added[0]!, /^amq\.gen-\S+\s+true\s+true$/, 'a server-named exclusive auto-delete queue')
    const own = nameOf(added[0]!)
    await b.close()
    let left = (await listQueues()).map(nameOf).includes(own)
    for (let i = 0; i < 20 && left; i++) {
      await sleep(200)
      left = (await listQueues()).map(nameOf).includes(own)
    }
    assert.equal(left, false, `its queue ${own} is not left behind`)
  })

  test('amqpBus: a delete published by one process reaches another; connections closed by the broker, the other flushes', async () => {
    assert.throws(
      () => amqpBus({ url: server.url, heartbeatInterval: '5s', deadAfter: '1s' }),
      (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && /bus\.deadAfter/.test((err as Error).message),
    )
    const bus = (): ReturnType<typeof amqpBus> => amqpBus({ url: server.url, heartbeatInterval: '200ms', deadAfter: '2s' })
    const closeAll = async (): Promise<void> => {
      const closed = await server.ctl('close_all_connections', 'stratacache test')
      assert.equal(closed.status, 0, closed.output)
    }
    await checkDeleteAcrossBuses(bus(), bus(), closeAll, 'a flush after the connections were closed')
  })

  test('two caches over amqpBus sharing an L2: a set in A drops the old value from B’s L1', async () => {
    await checkTwoCachesCoherent(() => amqpBus({ url: server.url, channel: 'coherence' }), 10_000)
  })
})

describe('amqpFeed (real RabbitMQ)', () => {
  /** Publishes as kazoo does: a topic exchange, the document in the routing key. */
  async function publisher(exchange = 'configuration'): Promise<{ send(key: string): Promise<void>; close(): Promise<void> }> {
    const conn = await amqp.connect(server.url)
    conn.on('error', () => {})
    const ch = await conn.createConfirmChannel()
    ch.on('error', () => {})
    await ch.assertExchange(exchange, 'topic', { durable: false })
    return {
      send: (key) =>
        new Promise<void>((resolve, reject) => {
          ch.publish(exchange, key, Buffer.from('{"pvt_type":"user"}'), {}, (err: unknown) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve()))
        }),
      close: () => conn.close().catch(() => {}),
    }
  }

  test('doc.accounts.user.42 erases exactly the entries whose origins match', async () => {
    const cache = createCache<string>()
    const feed = amqpFeed({ url: server.url })
    await cache.attachFeed(feed)
    const pub = await publisher()
    try {
      await cache.set('user:42', 'u', { origins: { db: 'accounts', type: 'user', id: '42' } })
      await cache.set('user:42:any-type', 'u', { origins: { db: 'accounts', id: '42' } })
      await cache.set('users', 'list', { origins: { db: 'accounts', type: 'user' } })
      await cache.set('accounts', 'db', { origins: { db: 'accounts' } })
      await cache.set('user:7', 'u7', { origins: { db: 'accounts', type: 'user', id: '7' } })
      await cache.set('device:42', 'd', { origins: { db: 'accounts', type: 'device', id: '42' } })
      await cache.set('other-db', 'o', { origins: { db: 'billing', type: 'user', id: '42' } })
      await cache.set('plain', 'p')
      await pub.send('doc.accounts.user.42')
      await until('the notice applied', 5_000, () => feed.stats().notices === 1)
      for (const gone of ['user:42', 'user:42:any-type', 'users', 'accounts']) assert.equal(await cache.peek(gone), undefined, `${gone} erased`)
      for (const kept of ['user:7', 'device:42', 'other-db', 'plain']) assert.notEqual(await cache.peek(kept), undefined, `${kept} kept`)
      assert.equal(feed.stats().erased, 4)
      // kazoo's own prefix form, and a percent-encoded account db.
      await cache.set('acct', 'a', { origins: { db: 'account/ab/cd', type: 'device', id: '9' } })
      await pub.send('doc_edited.account%2Fab%2Fcd.device.9')
      await until('the kazoo-form notice applied', 5_000, async () => (await cache.peek('acct')) === undefined)
    } finally {
      await pub.close()
      await cache.close()
    }
  })

  test('malformed notices are counted and ignored, never crash', async () => {
    const cache = createCache<string>()
    const feed = amqpFeed({ url: server.url, bindings: ['doc.#', 'junk.#'] })
    await cache.attachFeed(feed)
    const pub = await publisher()
    try {
      await cache.set('user:1', 'u', { origins: { db: 'accounts', type: 'user', id: '1' } })
      for (const key of ['doc', 'doc.accounts', 'doc.accounts.user', 'doc.a.b.c.d', 'doc.%ZZ.user.1', 'junk.accounts.user.1']) await pub.send(key)
      await pub.send('doc.accounts.user.1')
      await until('the good notice after the bad ones', 5_000, async () => (await cache.peek('user:1')) === undefined)
      assert.equal(feed.stats().malformed, 6)
      assert.equal(feed.stats().notices, 1)
      assert.equal(feed.stats().state, 'up')
    } finally {
      await pub.close()
      await cache.close()
    }
  })

  test('bindings limit what is heard and what a reconnect flushes; the connection cut and restored', async () => {
    const cache = createCache<string>()
    const feed = amqpFeed({ url: server.url, bindings: ['doc.accounts.#'] })
    assert.deepEqual(feed.scope, [{ db: 'accounts' }])
    await cache.attachFeed(feed)
    const pub = await publisher()
    try {
      await cache.set('a', '1', { origins: { db: 'accounts', type: 'user', id: '1' } })
      await cache.set('b', '2', { origins: { db: 'billing', type: 'user', id: '1' } })
      await pub.send('doc.billing.user.1')
      await pub.send('doc.accounts.user.99')
      await until('the accounts notice applied', 5_000, () => feed.stats().notices === 1)
      assert.equal(await cache.peek('b'), '2', 'billing is not bound: not heard')
      // The broker closes every connection: the feed's queue is gone, notices may be lost.
      await pub.close()
      const closed = await server.ctl('close_all_connections', 'stratacache test')
      assert.equal(closed.status, 0, closed.output)
      await until("'down' reported", 10_000, () => feed.stats().reconnects >= 1)
      await until('listening again', 15_000, () => feed.stats().state === 'up')
      assert.equal(await cache.peek('a'), undefined, 'the scope was flushed')
      assert.equal(await cache.peek('b'), '2', 'outside the scope: kept')
      const pub2 = await publisher()
      try {
        await cache.set('c', '3', { origins: { db: 'accounts', type: 'user', id: '3' } })
        await pub2.send('doc.accounts.user.3')
        await until('notices flow again', 5_000, async () => (await cache.peek('c')) === undefined)
      } finally {
        await pub2.close()
      }
    } finally {
      await cache.close()
    }
  })

  test('no broker there: attachFeed rejects with ERR_FEED_UNAVAILABLE and leaves nothing running', async () => {
    await assertFeedUnavailable(amqpFeed({ url: 'amqp://guest:guest@127.0.0.1:1', connectTimeout: '500ms' }))
  })

  test('options are validated, naming the option', () => {
    const bad: Array<[unknown, RegExp]> = [
      [null, /feed/],
      [{ url: 'http://x' }, /feed\.url/],
      [{ exchange: '' }, /feed\.exchange/],
      [{ durable: 1 }, /feed\.durable/],
      [{ bindings: [] }, /feed\.bindings/],
      [{ bindings: ['doc..x'] }, /feed\.bindings/],
      [{ bindings: ['doc.a*'] }, /feed\.bindings/],
      [{ connectTimeout: 0 }, /feed\.connectTimeout/],
      [{ heartbeat: 0 }, /feed\.heartbeat/],
      [{ clock: 5 }, /feed\.clock/],
      [{ random: {} }, /feed\.random/],
    ]
    assertRefusesOptions(amqpFeed, bad)
  })
})
