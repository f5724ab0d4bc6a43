import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ReconnectBackoff } from '../../src/bus/reconnect-backoff.js'
import { isCacheError } from '../../src/core/errors.js'

test('reconnect backoff: 100 ms doubling to 5 s, reset by success; current() does not count', () => {
  const b = new ReconnectBackoff(undefined, 'bus.reconnect')
  assert.equal(b.current(), 100)
  assert.equal(b.current(), 100)
  assert.deepEqual(
    Array.from({ length: 9 }, () => b.next()),
    [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000],
  )
  assert.equal(b.current(), 5000)
  for (let i = 0; i < 100; i++) b.next()
  assert.equal(b.next(), 5000, 'no overflow after many attempts')
  b.reset()
  assert.equal(b.next(), 100)
  const custom = new ReconnectBackoff({ initial: '1s', max: '3s' }, 'feed.reconnect')
  assert.deepEqual([custom.next(), custom.next(), custom.next()], [1000, 2000, 3000])
})

test('reconnect backoff options are validated, naming the option', () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ initial: 0 }, /x\.reconnect\.initial/],
    [{ initial: 'Infinity' }, /x\.reconnect\.initial/],
    [{ initial: '1s', max: '500ms' }, /x\.reconnect\.max/],
    [{ max: 'soon' }, /x\.reconnect\.max/],
    [5, /x\.reconnect/],
  ]
  for (const [options, name] of bad) {
    assert.throws(
      () => new ReconnectBackoff(options as never, 'x.reconnect'),
      (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && name.test((err as Error).message),
      JSON.stringify(options),
    )
  }
})
