// Option names a factory does not know are refused, naming them, with the name they likely
// meant (core/known-options.ts); they were silently ignored. Every check runs before any
// connection is made, so no server is needed here.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { rejectUnknown } from '../../src/core/known-options.js'
import { createBus, isCacheError, memoryBus, memoryStore, memoryTransport } from '../../src/index.js'
import { amqpBus, amqpFeed, amqpTransport } from '../../src/amqp.js'
import { etcdStore } from '../../src/etcd.js'
import { lmdbStore } from '../../src/lmdb.js'
import { natsBus, natsTransport } from '../../src/nats.js'
import { pgFeed } from '../../src/postgres.js'
import { redisBus, redisStore, redisTransport } from '../../src/redis.js'

function refused(build: () => unknown, option: string, meant?: string): void {
  assert.throws(
    build,
    (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === option && (meant === undefined || e.message.includes(`did you mean ${meant}?`)),
    option,
  )
}

describe('unknown option names', () => {
  test('rejectUnknown names the first unknown one and suggests a known name within two edits (case and adjacent swaps included)', () => {
    refused(() => rejectUnknown({ ttl: 1, tll: 1 }, ['ttl', 'tti'], 'defaults'), 'defaults.tll', 'ttl')
    refused(() => rejectUnknown({ maxentries: 1 }, ['maxEntries'], ''), 'maxentries', 'maxEntries')
    refused(() => rejectUnknown({ tiemout: 1 }, ['timeout'], 'x'), 'x.tiemout', 'timeout')
    assert.throws(() => rejectUnknown({ banana: 1 }, ['ttl'], ''), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && !e.message.includes('did you mean') && e.message.includes('expected one of ttl'))
    rejectUnknown({ ttl: 1 }, ['ttl'], '')
  })

  test('stores refuse them: memoryStore, lmdbStore, redisStore, etcdStore', () => {
    refused(() => memoryStore({ maxEntires: 5 } as never), 'memory.maxEntires', 'maxEntries')
    refused(() => lmdbStore({ path: '/tmp/never-opened', mapsize: '1gb' } as never), 'lmdb.mapsize', 'mapSize')
    refused(() => redisStore({ url: 'redis://127.0.0.1:1', prefx: 'a:' } as never), 'redis.prefx', 'prefix')
    refused(() => etcdStore({ endpoints: ['http://127.0.0.1:1'], namespce: 'x/' } as never), 'etcd.namespce', 'namespace')
  })

  test('buses and their transports refuse them (a transport takes its bus settings too)', () => {
    refused(() => createBus({ transport: memoryTransport(), chanel: 'c' } as never), 'bus.chanel', 'channel')
    refused(() => memoryBus({ hb: 1 } as never), 'bus.hb')
    refused(() => memoryTransport({ hubb: 1 } as never), 'bus.hubb', 'hub')
    refused(() => redisBus({ url: 'redis://127.0.0.1:1', chanel: 'c' } as never), 'bus.chanel', 'channel')
    refused(() => redisTransport({ url: 'redis://127.0.0.1:1', publishTimout: 5 } as never), 'bus.publishTimout', 'publishTimeout')
    refused(() => natsBus({ server: 'nats://127.0.0.1:1' } as never), 'bus.server', 'servers')
    refused(() => natsTransport({ servers: 'nats://127.0.0.1:1', conection: {} } as never), 'bus.conection', 'connection')
    refused(() => amqpBus({ url: 'amqp://127.0.0.1:1', exchang: 'x' } as never), 'bus.exchang', 'exchange')
    refused(() => amqpTransport({ url: 'amqp://127.0.0.1:1', durabel: true } as never), 'bus.durabel', 'durable')
    // A bus factory's own settings and its transport's stay accepted together.
    void memoryBus({ channel: 'c', heartbeatInterval: 1000, hub: undefined }).close()
  })

  test('feeds refuse them: pgFeed, amqpFeed', () => {
    refused(() => pgFeed({ url: 'postgres://127.0.0.1:1/x', chanel: 'c' } as never), 'feed.chanel', 'channel')
    refused(() => amqpFeed({ url: 'amqp://127.0.0.1:1', binding: ['#'] } as never), 'feed.binding', 'bindings')
  })
})
