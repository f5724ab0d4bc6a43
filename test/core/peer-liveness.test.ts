// The pure liveness module: seq gaps, duplicates, late and restarted peers, silence.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { PeerLiveness } from '../../src/core/peer-liveness.js'

describe('PeerLiveness', () => {
  test('in order, gaps, duplicates and late messages of one epoch', () => {
    const l = new PeerLiveness(4_000)
    assert.equal(l.onMessage('a', 10, 1, 0), 'joined')
    assert.equal(l.onMessage('a', 10, 2, 0), 'alive')
    assert.equal(l.onMessage('a', 10, 2, 0), 'duplicate')
    assert.equal(l.onMessage('a', 10, 5, 0), 'gap', '3 and 4 missing')
    assert.equal(l.onMessage('a', 10, 4, 0), 'late', 'reordered: its gap was already reported')
    assert.equal(l.onMessage('a', 10, 4, 0), 'duplicate', 'the late one is now known to have arrived')
    assert.equal(l.onMessage('a', 10, 1, 0), 'duplicate')
    assert.equal(l.onMessage('a', 10, 6, 0), 'alive')
    assert.equal(l.onMessage('a', 10, 200, 0), 'gap')
    assert.equal(l.onMessage('a', 10, 100, 0), 'late', 'beyond the 32-seq window: late, never a duplicate')
  })

  test('heartbeats announce the last seq: a lost last message is a gap', () => {
    const l = new PeerLiveness(4_000)
    assert.equal(l.onMessage('a', 1, 0, 0, 'heartbeat'), 'joined')
    assert.equal(l.onMessage('a', 1, 1, 0), 'alive')
    assert.equal(l.onMessage('a', 1, 1, 0, 'heartbeat'), 'alive')
    assert.equal(l.onMessage('a', 1, 2, 0, 'heartbeat'), 'gap', 'seq 2 never arrived')
    // Arriving after all, it is discarded (its gap was reported); the announced seq counts as seen.
    assert.equal(l.onMessage('a', 1, 2, 0), 'duplicate')
    assert.equal(l.onMessage('a', 1, 3, 0), 'alive')
  })

  test('epochs: an older one is late; a newer one is a restart, with or without missed messages', () => {
    const l = new PeerLiveness(4_000)
    l.onMessage('a', 5, 3, 0)
    assert.equal(l.onMessage('a', 4, 9, 0), 'late')
    assert.equal(l.onMessage('a', 6, 1, 0), 'restarted')
    assert.equal(l.onMessage('a', 7, 0, 0, 'heartbeat'), 'restarted')
    assert.equal(l.onMessage('a', 8, 2, 0), 'restarted-gap', 'seq 1 of the new life was missed')
    assert.equal(l.onMessage('a', 9, 3, 0, 'heartbeat'), 'restarted-gap')
    assert.equal(l.onMessage('a', 9, 4, 0), 'alive')
  })

  test('onTick reports and forgets peers silent for longer than silentAfter; forget and reset', () => {
    const l = new PeerLiveness(4_000)
    l.onMessage('a', 1, 1, 0)
    l.onMessage('b', 1, 1, 0)
    assert.deepEqual(l.onTick(4_000), [], 'exactly silentAfter is not yet silent')
    l.onMessage('b', 1, 0, 3_000, 'heartbeat')
    assert.deepEqual(l.onTick(4_001), ['a'])
    assert.equal(l.has('a'), false)
    assert.equal(l.onMessage('a', 1, 2, 4_001), 'joined', 'a forgotten peer starts afresh')
    l.forget('a')
    assert.equal(l.has('a'), false)
    assert.equal(l.size, 1)
    l.reset()
    assert.equal(l.size, 0)
    assert.throws(() => new PeerLiveness(0), RangeError)
  })
})
