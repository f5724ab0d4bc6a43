/**
 * natsTransport against a real nats-server started on a free loopback port: the transport
 * conformance suite (including kill and restart of the server), then NATS specifics:
 * options, publish batching, resubscribe().
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { busTransportConformance } from '../../src/bus/conformance.js'
import { natsBus, natsTransport } from '../../src/bus/nats-transport.js'
import type { BusListener, FlushReason } from '../../src/bus/bus.js'
import { isCacheError } from '../../src/core/errors.js'
import { createCache } from '../../src/cache/cache.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { NatsServer } from '../support/nats-server.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

let server: NatsServer

before(async () => {
  server = await NatsServer.start()
})
after(async () => {
  await server?.stop()
})

busTransportConformance({
  name: 'nats',
  open: async () => natsTransport({ servers: server.url, publishTimeout: '1s', connectTimeout: '1s' }),
  kill: () => server.kill(),
  restart: () => server.restart(),
  downWithinMs: 5_000,
  reconnectWithinMs: 15_000,
  failWithinMs: 3_000,
})

async function until(what: string, ms: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms`)
    await sleep(5)
  }
}

describe('natsTransport: NATS specifics', () => {
  test('options are validated with ERR_INVALID_OPTIONS naming the option', () => {
    const bad: Array<[unknown, RegExp]> = [
      [null, /bus/],
      [{ servers: [] }, /bus\.servers/],
      [{ servers: '' }, /bus\.servers/],
      [{ publishTimeout: 0 }, /bus\.publishTimeout/],
      [{ connectTimeout: 'soon' }, /bus\.connectTimeout/],
      [{ reconnect: { initial: 0 } }, /bus\.reconnect\.initial/],
      [{ reconnect: { initial: '1s', max: '10ms' } }, /bus\.reconnect\.max/],
      [{ connection: 5 }, /bus\.connection/],
    ]
    for (const [options, name] of bad) {
      assert.throws(
        () => natsTransport(options as Parameters<typeof natsTransport>[0]),
        (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && name.test((err as Error).message),
        `refused: ${JSON.stringify(options)}`,
      )
    }
  })

  test('a server that is not there: publish and subscribe reject with ERR_BUS_UNAVAILABLE within the connect timeout', async () => {
    const t = natsTransport({ servers: 'nats://127.0.0.1:1', connectTimeout: '500ms' })
    try {
      const started = Date.now()
      await assert.rejects(t.publish('x', new Uint8Array([1])), (err: unknown) => isCacheError(err, 'ERR_BUS_UNAVAILABLE'))
      await assert.rejects(
        t.subscribe(
          'x',
          () => {},
          () => {},
        ),
        (err: unknown) => isCacheError(err, 'ERR_BUS_UNAVAILABLE'),
      )
      assert.ok(Date.now() - started < 3_000)
    } finally {
      await t.close()
    }
  })

  test("resubscribe() drops the connection: 'down' then 'up', and delivery goes on", async () => {
    const a = natsTransport({ servers: server.url })
    const b = natsTransport({ servers: server.url })
    try {
      const states: string[] = []
      const got: string[] = []
      await b.subscribe(
        'resub',
        (m) => got.push(Buffer.from(m).toString()),
        (s) => states.push(s),
      )
      b.resubscribe()
      await until("'down' then 'up'", 10_000, () => states.join(',') === 'down,up')
      await a.publish('resub', Buffer.from('after'))
      await until('delivery after resubscribe', 5_000, () => got.includes('after'))
    } finally {
      await a.close()
      await b.close()
    }
  })

  test('a burst of publishes in one tick costs one confirmation round trip, and all resolve', async () => {
    const a = natsTransport({ servers: server.url })
    const b = natsTransport({ servers: server.url })
    try {
      const got: number[] = []
      await b.subscribe(
        'burst',
        (m) => got.push(m.length),
        () => {},
      )
      await Promise.all(Array.from({ length: 1000 }, (_, i) => a.publish('burst', new Uint8Array(i % 50))))
      await until('1000 messages', 5_000, () => got.length === 1000)
    } finally {
      await a.close()
      await b.close()
    }
  })

  test('natsBus: a delete published by one process reaches another; the broker restarted, the other flushes', async () => {
    assert.throws(
      () => natsBus({ servers: server.url, heartbeatInterval: '5s', deadAfter: '1s' }),
      (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && /bus\.deadAfter/.test((err as Error).message),
    )
    const a = natsBus({ servers: server.url, heartbeatInterval: '200ms', deadAfter: '1s' })
    const b = natsBus({ servers: server.url, heartbeatInterval: '200ms', deadAfter: '1s' })
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
      await server.restart()
      await until('a flush after the broker restart', 15_000, () => flushes.length > before)
      await until('delivery again', 15_000, () => {
        void a.publish({ kind: 'delete', namespace: 'ns', keys: ['user:2'] }).catch(() => {})
        return deleted.includes('user:2')
      })
    } finally {
      await a.close()
      await b.close()
    }
  })

  test("a frozen server (SIGSTOP) is noticed by the pings: 'down'; thawed: 'up' and delivery again", async () => {
    const a = natsTransport({ servers: server.url, connection: { pingInterval: 300, maxPingOut: 2 } })
    const b = natsTransport({ servers: server.url, connection: { pingInterval: 300, maxPingOut: 2 } })
    const states: string[] = []
    const got: string[] = []
    try {
      await b.subscribe(
        'frozen',
        (m) => got.push(Buffer.from(m).toString()),
        (s) => states.push(s),
      )
      server.freeze()
      try {
        await until("'down' while the server is frozen", 10_000, () => states.includes('down'))
      } finally {
        server.thaw()
      }
      await until("'up' after the thaw", 15_000, () => states.at(-1) === 'up')
      await until('delivery after the thaw', 10_000, () => {
        void a.publish('frozen', Buffer.from('back')).catch(() => {})
        return got.includes('back')
      })
    } finally {
      server.thaw()
      await a.close()
      await b.close()
    }
  })

  test('two caches over natsBus sharing an L2: a set in A drops the old value from B’s L1', async () => {
    const store = memoryStore()
    const a = createCache<string>({ store, bus: natsBus({ servers: server.url, channel: 'coherence' }) })
    const b = createCache<string>({ store, bus: natsBus({ servers: server.url, channel: 'coherence' }) })
    try {
      await until('both buses healthy', 5_000, () => a.stats().bus?.healthy === true && b.stats().bus?.healthy === true)
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
  })
})
