/**
 * The node's invalidation stream hub (src/server/watch-hub.ts) without sockets: sequences
 * per partition and global, meta on the ManualClock, slow subscribers cut; and the keyspace
 * feeding it every applied change, replicated ones included.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ManualClock } from '../../src/core/manual-clock.js'
import { HybridLogicalClock, versionFromMs } from '../../src/core/hlc.js'
import { memoryStore } from '../../src/store/memory-store.js'
import { Keyspace, type KeyspaceChange } from '../../src/server/keyspace.js'
import { WatchHub } from '../../src/server/watch-hub.js'
import { parseWatchMessage, WATCH_GLOBAL, WATCH_PARTITIONS, watchPartition, type WatchMessage } from '../../src/protocol/watch.js'

function sink(): { messages: WatchMessage[]; buffered: number; closed: boolean; write(c: string): void; buffered_(): number } {
  const s = {
    messages: [] as WatchMessage[],
    buffered: 0,
    closed: false,
    write(c: string) {
      assert.ok(c.startsWith('data: ') && c.endsWith('\n\n'), 'one SSE event per write')
      const m = parseWatchMessage(c.slice(6, -2))
      assert.ok(m !== undefined, `valid message: ${c}`)
      s.messages.push(m)
    },
    buffered_() {
      return s.buffered
    },
  }
  return s
}

test('hello, key sequences per partition, global sequence for clear and tags', () => {
  const clock = new ManualClock()
  const hub = new WatchHub({ clock, sourceId: 'src-1' })
  const s = sink()
  hub.subscribe({ write: (c) => s.write(c), buffered: () => s.buffered_(), close: () => (s.closed = true) })
  const changes: KeyspaceChange[] = [{ kind: 'key', key: 'a' }, { kind: 'key', key: 'a' }, { kind: 'key', key: 'b' }, { kind: 'clear', prefix: 'x' }, { kind: 'tags', tags: ['org:1'] }]
  for (const c of changes) hub.onChange(c)
  const [hello, a1, a2, b1, clear, tags] = s.messages
  assert.equal(hello?.t, 'hello')
  assert.equal(hello.s, 'src-1')
  assert.equal(hello.t === 'hello' && hello.seqs.length, WATCH_PARTITIONS + 1)
  assert.deepEqual(a1, { t: 'key', s: 'src-1', p: watchPartition('a'), q: 1, k: 'a' })
  assert.deepEqual(a2, { t: 'key', s: 'src-1', p: watchPartition('a'), q: 2, k: 'a' })
  assert.equal(b1?.t === 'key' && b1.q, watchPartition('b') === watchPartition('a') ? 3 : 1)
  assert.deepEqual(clear, { t: 'all', s: 'src-1', q: 1, why: 'clear', prefix: 'x' })
  assert.deepEqual(tags, { t: 'all', s: 'src-1', q: 2, why: 'tags', tags: ['org:1'] })
  const h2 = hub.hello()
  assert.equal(h2.seqs[watchPartition('a')], 2)
  assert.equal(h2.seqs[WATCH_GLOBAL], 2)
  hub.close()
  assert.equal(s.closed, true)
})

test('meta every interval while someone listens; the timer parks when no one does', () => {
  const clock = new ManualClock()
  const hub = new WatchHub({ clock, metaIntervalMs: 100 })
  assert.equal(clock.pendingTimers, 0)
  const s = sink()
  const off = hub.subscribe({ write: (c) => s.write(c), buffered: () => 0, close: () => undefined })
  hub.onChange({ kind: 'key', key: 'k' })
  clock.advance(100)
  clock.advance(100)
  const metas = s.messages.filter((m) => m.t === 'meta')
  assert.equal(metas.length, 2)
  assert.equal(metas[0]?.t === 'meta' && metas[0].seqs[watchPartition('k')], 1)
  off()
  clock.advance(100)
  assert.equal(clock.pendingTimers, 0)
  hub.close()
})

test('a subscriber over its buffer bound is cut, the others keep getting every message', () => {
  const clock = new ManualClock()
  const hub = new WatchHub({ clock, maxBufferBytes: 1000 })
  const slow = sink()
  const fast = sink()
  hub.subscribe({ write: (c) => { slow.write(c); slow.buffered += c.length }, buffered: () => slow.buffered, close: () => (slow.closed = true) })
  hub.subscribe({ write: (c) => fast.write(c), buffered: () => 0, close: () => (fast.closed = true) })
  for (let i = 0; i < 50; i++) hub.onChange({ kind: 'key', key: `key-${i}` })
  assert.equal(slow.closed, true)
  assert.equal(fast.closed, false)
  assert.equal(fast.messages.length, 51)
  assert.equal(hub.stats().slowDisconnects, 1)
  assert.equal(hub.stats().subscribers, 1)
  hub.close()
})

test('the keyspace reports every applied change, local and replicated, after it is visible', async () => {
  const clock = new ManualClock()
  const store = memoryStore({ clock })
  const ks = await Keyspace.open({ store, clock, hlc: new HybridLogicalClock(clock), nodeId: 'n1' })
  const seen: Array<KeyspaceChange & { visible?: boolean }> = []
  ks.watch((c) => {
    seen.push(c)
  })
  await ks.update('a', (_c, version) => ({ key: 'a', value: new Uint8Array([1]), expiresAt: 0, tags: ['t:1'], version }))
  assert.equal(await ks.applyIfNewer({ key: 'b', value: new Uint8Array([2]), expiresAt: 0, tags: [], version: { hlc: versionFromMs(clock.now()) + 5, nodeId: 'n2' } }), true)
  // An older replicated write changes nothing and says nothing.
  assert.equal(await ks.applyIfNewer({ key: 'b', value: new Uint8Array([3]), expiresAt: 0, tags: [], version: { hlc: 1, nodeId: 'n2' } }), false)
  await ks.delete('a')
  await ks.invalidate(['t'], 'hard')
  await ks.clear('')
  assert.deepEqual(seen, [{ kind: 'key', key: 'a' }, { kind: 'key', key: 'b' }, { kind: 'key', key: 'a' }, { kind: 'tags', tags: ['t'] }, { kind: 'clear', prefix: '' }])
  await ks.close()
})
