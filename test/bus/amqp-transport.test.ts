/**
 * amqpTransport against a real RabbitMQ node started once for this file: the transport
 * conformance suite (including kill and restart of the broker), then AMQP specifics.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { busTransportConformance } from '../../src/bus/conformance.js'
import { amqpTransport } from '../../src/bus/amqp-transport.js'
import { isCacheError } from '../../src/core/errors.js'
import { RabbitMqServer } from '../support/rabbitmq-server.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

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

async function until(what: string, ms: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms`)
    await sleep(5)
  }
}

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
    ]
    for (const [options, name] of bad) {
      assert.throws(
        () => amqpTransport(options as Parameters<typeof amqpTransport>[0]),
        (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && name.test((err as Error).message),
        `refused: ${JSON.stringify(options)}`,
      )
    }
  })

  test('a broker that is not there: publish and subscribe reject with ERR_BROKER_UNAVAILABLE', async () => {
    const t = amqpTransport({ url: 'amqp://guest:guest@127.0.0.1:1', publishTimeout: '500ms' })
    try {
      await assert.rejects(t.publish('x', new Uint8Array([1])), (err: unknown) => isCacheError(err, 'ERR_BROKER_UNAVAILABLE'))
      await assert.rejects(
        t.subscribe(
          'x',
          () => {},
          () => {},
        ),
        (err: unknown) => isCacheError(err, 'ERR_BROKER_UNAVAILABLE'),
      )
    } finally {
      await t.close()
    }
  })

  test("resubscribe() drops the connection: 'down' then 'up' on a new queue, and delivery goes on", async () => {
    const a = amqpTransport({ url: server.url })
    const b = amqpTransport({ url: server.url })
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

  test('a subscriber’s queue is exclusive and auto-deleted: closing the transport removes it', async () => {
    const b = amqpTransport({ url: server.url, exchange: 'stratacache.queues-test' })
    await b.subscribe(
      'q',
      () => {},
      () => {},
    )
    const listQueues = async (): Promise<string> => (await server.ctl('list_queues', 'name', 'exclusive', 'auto_delete', '--no-table-headers', '--quiet')).output
    const before = await listQueues()
    assert.match(before, /amq\.gen-\S+\s+true\s+true/, 'a server-named exclusive auto-delete queue exists')
    await b.close()
    let after = await listQueues()
    for (let i = 0; i < 20 && /amq\.gen-/.test(after); i++) {
      await sleep(200)
      after = await listQueues()
    }
    assert.doesNotMatch(after, /amq\.gen-/, 'no queue left behind')
  })
})
