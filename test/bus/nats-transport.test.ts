/**
 * natsTransport against a real nats-server started on a free loopback port: the transport
 * conformance suite (including kill and restart of the server), then NATS specifics:
 * options, publish batching, resubscribe().
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { busTransportConformance } from '../../src/bus/conformance.js'
import { natsBus, natsTransport } from '../../src/bus/nats-transport.js'
import { isCacheError } from '../../src/core/errors.js'
import { NatsServer } from '../support/nats-server.js'
import { assertBusUnavailable, assertRefusesOptions, checkDeleteAcrossBuses, checkResubscribe, checkTwoCachesCoherent, until } from '../support/transport-checks.js'

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

describe('natsTransport: NATS specifics', () => {
  test('options are validated with ERR_INVALID_OPTIONS naming the option', () => {
    const bad: Array<[unknown, RegExp]> = [
      [null, /bus/],
      [{ servers: [] }, /bus\.servers/],
      [{ servers: '' }, /bus\.servers/],
      [{ servers: 5 }, /bus\.servers/],
      [{ servers: { url: 'nats://127.0.0.1:4222' } }, /bus\.servers/],
      // Were accepted, then every connect failed (ERR_BUS_UNAVAILABLE 'Invalid URL', retried for ever).
      [{ servers: 'nats://127.0.0.1:99999' }, /bus\.servers/],
      [{ servers: ['nats://127.0.0.1:4222', 'nats://:x'] }, /bus\.servers/],
      [{ servers: 'http://127.0.0.1:4222' }, /bus\.servers/],
      [{ publishTimeout: 0 }, /bus\.publishTimeout/],
      [{ connectTimeout: 'soon' }, /bus\.connectTimeout/],
      [{ reconnect: { initial: 0 } }, /bus\.reconnect\.initial/],
      [{ reconnect: { initial: '1s', max: '10ms' } }, /bus\.reconnect\.max/],
      [{ connection: 5 }, /bus\.connection/],
      [{ clock: 5 }, /bus\.clock/],
      [{ random: {} }, /bus\.random/],
    ]
    assertRefusesOptions(natsTransport, bad)
  })

  test('a channel that is not a literal NATS subject is ERR_INVALID_OPTIONS (natsBus: bus.channel, at construction)', async () => {
    // NATS refused these with its raw NatsError BAD_SUBJECT, or (wildcards) subscribed to other channels too.
    const t = natsTransport({ servers: server.url })
    try {
      for (const channel of ['a.>', 'a.*', 'a b', 'a..b', '.a']) {
        await assert.rejects(
          t.subscribe(
            channel,
            () => {},
            () => {},
          ),
          (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && (err as { option?: string }).option === 'channel',
          channel,
        )
        await assert.rejects(t.publish(channel, new Uint8Array(1)), (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS'), channel)
      }
    } finally {
      await t.close()
    }
    // The Bus allows these characters; NATS does not: every subscribe would have failed, retried for ever.
    for (const channel of ['a..b', '.a', 'a.']) {
      assert.throws(
        () => natsBus({ servers: server.url, channel }),
        (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && (err as { option?: string }).option === 'bus.channel',
        channel,
      )
    }
  })

  test('a server that is not there: publish and subscribe reject with ERR_BUS_UNAVAILABLE within the connect timeout', async () => {
    const started = Date.now()
    await assertBusUnavailable(natsTransport({ servers: 'nats://127.0.0.1:1', connectTimeout: '500ms' }))
    assert.ok(Date.now() - started < 3_000)
  })

  test("resubscribe() drops the connection: 'down' then 'up', and delivery goes on", async () => {
    await checkResubscribe(natsTransport({ servers: server.url }), natsTransport({ servers: server.url }))
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
    const bus = (): ReturnType<typeof natsBus> => natsBus({ servers: server.url, heartbeatInterval: '200ms', deadAfter: '1s' })
    await checkDeleteAcrossBuses(bus(), bus(), () => server.restart(), 'a flush after the broker restart')
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
    await checkTwoCachesCoherent(() => natsBus({ servers: server.url, channel: 'coherence' }), 5_000)
  })
})
