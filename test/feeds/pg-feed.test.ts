/**
 * pgFeed against a real PostgreSQL started for this file: a trigger emitting NOTIFY on
 * UPDATE flushes exactly the right entries; malformed payloads are counted and ignored;
 * the listening connection killed (pg_terminate_backend) and the server restarted are
 * noticed, the feed's scope flushed, and listening resumes.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import pg from 'pg'
import { createCache } from '../../src/index.js'
import { pgFeed } from '../../src/feeds/pg-feed.js'
import { PostgresServer } from '../support/postgres-server.js'
import { assertFeedUnavailable, assertRefusesOptions, until } from '../support/transport-checks.js'

let server: PostgresServer
let sql: pg.Client

async function connectSql(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: server.url })
  client.on('error', () => {})
  await client.connect()
  return client
}

before(async () => {
  server = await PostgresServer.start()
  sql = await connectSql()
  await sql.query(`
    CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
    INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 100) g;
    CREATE FUNCTION notify_user_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('stratacache_changes', json_build_object('db', 'accounts', 'type', 'user', 'id', NEW.id, 'op', TG_OP)::text);
      RETURN NEW;
    END $$;
    CREATE TRIGGER users_changed AFTER UPDATE ON users FOR EACH ROW EXECUTE FUNCTION notify_user_change();
  `)
})

after(async () => {
  await sql?.end().catch(() => {})
  await server?.stop()
})

describe('pgFeed (real PostgreSQL)', () => {
  test('an UPDATE fires the trigger, and exactly the right entries are erased', async () => {
    const cache = createCache<string>()
    const feed = pgFeed({ url: server.url })
    await cache.attachFeed(feed)
    const loadUser = async (id: number): Promise<string> =>
      cache.getOrSet(`user:${id}`, async () => (await sql.query<{ name: string }>('SELECT name FROM users WHERE id = $1', [id])).rows[0]?.name ?? '', { origins: { db: 'accounts', type: 'user', id: String(id) } })
    assert.equal(await loadUser(42), 'user 42')
    assert.equal(await loadUser(7), 'user 7')
    await cache.set('accounts:users', 'list', { origins: { db: 'accounts', type: 'user' } })
    await cache.set('billing', 'b', { origins: { db: 'billing' } })
    await cache.set('device:42', 'd', { origins: { db: 'accounts', type: 'device', id: '42' } })
    await sql.query(`UPDATE users SET name = 'renamed' WHERE id = 42`)
    await until('user:42 erased', 5_000, async () => (await cache.peek('user:42')) === undefined)
    assert.equal(await cache.peek('accounts:users'), undefined, 'the type-wide entry is erased too')
    assert.equal(await cache.peek('user:7'), 'user 7', 'another user is kept')
    assert.equal(await cache.peek('billing'), 'b', 'another db is kept')
    assert.equal(await cache.peek('device:42'), 'd', 'another type with the same id is kept')
    assert.equal(await loadUser(42), 'renamed', 'the next read sees the new row')
    assert.equal(feed.stats().notices, 1)
    assert.equal(feed.stats().erased, 2)
    await cache.close()
    assert.equal(feed.stats().state, 'closed')
  })

  test('malformed payloads are counted and ignored; the feed keeps working', async () => {
    const cache = createCache<string>()
    const feed = pgFeed({ url: server.url })
    await cache.attachFeed(feed)
    await cache.set('user:5', 'x', { origins: { db: 'accounts', type: 'user', id: '5' } })
    for (const payload of ['garbage', '{}', '[1,2]', '{"id": {"nested": true}}', '{"db": ""}', '']) await sql.query(`SELECT pg_notify('stratacache_changes', $1)`, [payload])
    await sql.query(`NOTIFY stratacache_changes`)
    await sql.query(`UPDATE users SET name = 'five' WHERE id = 5`)
    await until('user:5 erased after the malformed ones', 5_000, async () => (await cache.peek('user:5')) === undefined)
    assert.equal(feed.stats().malformed, 7)
    assert.equal(feed.stats().notices, 1)
    await cache.close()
  })

  test('the listening connection killed: flushed on loss, listening again, flushed on return, notices work after', async () => {
    const cache = createCache<string>()
    const feed = pgFeed({ url: server.url, scope: [{ db: 'accounts' }] })
    await cache.attachFeed(feed)
    await cache.set('user:1', 'one', { origins: { db: 'accounts', type: 'user', id: '1' } })
    await cache.set('billing', 'b', { origins: { db: 'billing' } })
    const pid = feed.backendPid
    assert.ok(typeof pid === 'number')
    await sql.query('SELECT pg_terminate_backend($1)', [pid])
    await until("'down' reported", 5_000, () => feed.stats().state === 'down' || feed.stats().reconnects > 0)
    assert.equal(await cache.peek('user:1'), undefined, 'the scope is flushed when the connection is lost')
    assert.equal(await cache.peek('billing'), 'b', 'outside the scope: kept')
    await until('listening again', 10_000, () => feed.stats().state === 'up')
    assert.notEqual(feed.backendPid, pid, 'a new connection')
    assert.equal(feed.stats().reconnects, 1)
    assert.ok(feed.stats().flushed >= 1)
    await cache.set('user:2', 'two', { origins: { db: 'accounts', type: 'user', id: '2' } })
    await sql.query(`UPDATE users SET name = 'deux' WHERE id = 2`)
    await until('user:2 erased after the reconnect', 5_000, async () => (await cache.peek('user:2')) === undefined)
    await cache.close()
  })

  test('the server restarted: the feed notices, reconnects with backoff and listens again', async () => {
    const cache = createCache<string>()
    const feed = pgFeed({ url: server.url, pingInterval: '500ms' })
    await cache.attachFeed(feed)
    await cache.set('user:3', 'three', { origins: { db: 'accounts', type: 'user', id: '3' } })
    await sql.end().catch(() => {})
    await server.restart()
    sql = await connectSql()
    await until('listening again after the restart', 15_000, () => feed.stats().state === 'up' && feed.stats().reconnects >= 1)
    assert.equal(await cache.peek('user:3'), undefined, 'flushed: notices may have been missed while the server was away')
    await cache.set('user:4', 'four', { origins: { db: 'accounts', type: 'user', id: '4' } })
    await sql.query(`UPDATE users SET name = 'quatre' WHERE id = 4`)
    await until('user:4 erased after the restart', 5_000, async () => (await cache.peek('user:4')) === undefined)
    await cache.close()
  })

  test('a frozen listening backend (SIGSTOP) is found by the ping: flushed, and a new connection listens', async () => {
    const cache = createCache<string>()
    const feed = pgFeed({ url: server.url, pingInterval: '300ms' })
    await cache.attachFeed(feed)
    const pid = feed.backendPid
    assert.ok(typeof pid === 'number')
    await cache.set('user:6', 'six', { origins: { db: 'accounts', type: 'user', id: '6' } })
    process.kill(pid, 'SIGSTOP')
    try {
      await until('the ping timed out and the feed reconnected', 10_000, () => feed.stats().reconnects >= 1 && feed.stats().state === 'up')
      assert.equal(await cache.peek('user:6'), undefined, 'flushed: the frozen connection may have missed notices')
      assert.notEqual(feed.backendPid, pid)
      await cache.set('user:8', 'eight', { origins: { db: 'accounts', type: 'user', id: '8' } })
      await sql.query(`UPDATE users SET name = 'huit' WHERE id = 8`)
      await until('notices on the new connection', 5_000, async () => (await cache.peek('user:8')) === undefined)
    } finally {
      process.kill(pid, 'SIGCONT')
      await sql.query('SELECT pg_terminate_backend($1)', [pid]).catch(() => {})
      await cache.close()
    }
  })

  test('no server there: attachFeed rejects with ERR_FEED_UNAVAILABLE and leaves nothing running', async () => {
    await assertFeedUnavailable(pgFeed({ url: 'postgres://postgres@127.0.0.1:1/postgres', connectTimeout: '1s' }))
  })

  test('options are validated, naming the option', () => {
    const bad: Array<[unknown, RegExp]> = [
      [null, /feed/],
      [{ url: 'mysql://x' }, /feed\.url/],
      // Accepted, then every connect failed with ERR_FEED_UNAVAILABLE 'Invalid URL'.
      [{ url: 'postgres://127.0.0.1:99999/x' }, /feed\.url/],
      [{ url: 'postgres://[::1' }, /feed\.url/],
      [{ channel: 'has space' }, /feed\.channel/],
      [{ channel: '1abc' }, /feed\.channel/],
      [{ scope: [] }, /feed\.scope/],
      [{ scope: [{ table: 'x' }] }, /feed\.scope/],
      [{ connectTimeout: 0 }, /feed\.connectTimeout/],
      [{ pingInterval: 'never' }, /feed\.pingInterval/],
      [{ reconnect: { max: 0 } }, /feed\.reconnect/],
      [{ connection: 'x' }, /feed\.connection/],
      [{ clock: 5 }, /feed\.clock/],
      [{ random: {} }, /feed\.random/],
      [{ clock: { now: () => 0 } }, /feed\.clock/],
    ]
    assertRefusesOptions(pgFeed, bad)
  })
})
