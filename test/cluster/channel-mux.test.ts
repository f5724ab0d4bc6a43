// ChannelMux: membership and replication over one transport. Routing by tag, unreachable
// reports to every channel, and the priority rule: bulk (replication) frames enter the
// transport only below its high-water mark, so a control (membership) frame never waits
// behind more than that, however much repair traffic is queued — on a scripted transport
// (exact bounds, ManualClock) and on real loopback TcpTransports under a 24 MiB burst.
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { ChannelMux } from '../../src/cluster/channel-mux.js'
import { TcpTransport } from '../../src/cluster/tcp-transport.js'
import type { MessageTransport, NodeId } from '../../src/cluster/transport.js'
import { isCacheError, PeerUnreachableError } from '../../src/core/errors.js'
import { ManualClock } from '../../src/core/manual-clock.js'
import { systemClock } from '../../src/core/system-clock.js'
import { until } from '../support/transport-checks.js'

/** A transport whose per-peer queue drains only when the test says so. */
class StuckTransport implements MessageTransport {
  readonly maxFrameBytes = 1 << 20
  readonly queue: Array<{ to: NodeId; frame: Uint8Array }> = []
  receive: ((from: NodeId, payload: Uint8Array) => void) | undefined
  unreachable: ((e: PeerUnreachableError) => void) | undefined
  constructor(readonly self: NodeId) {}
  send(to: NodeId, payload: Uint8Array): void {
    this.queue.push({ to, frame: Uint8Array.from(payload) })
  }
  queuedBytes(peer: NodeId): number {
    return this.queue.filter((q) => q.to === peer).reduce((n, q) => n + q.frame.byteLength, 0)
  }
  drain(): Array<{ to: NodeId; frame: Uint8Array }> {
    return this.queue.splice(0)
  }
  onReceive(h: (from: NodeId, payload: Uint8Array) => void): () => void {
    this.receive = h
    return () => undefined
  }
  onUnreachable(h: (e: PeerUnreachableError) => void): () => void {
    this.unreachable = h
    return () => undefined
  }
  close(): Promise<void> {
    return Promise.resolve()
  }
}

const KiB = 1024

describe('ChannelMux on a scripted transport', () => {
  test('frames carry their tag; each channel receives only its own; unreachable reaches every channel; unknown tags are counted', () => {
    const t = new StuckTransport('a')
    const mux = new ChannelMux({ transport: t, clock: new ManualClock(0) })
    const m = mux.channel(0)
    const r = mux.channel(1, { kind: 'bulk' })
    assert.equal(mux.channel(0), m, 'one channel per tag')
    assert.equal(m.maxFrameBytes, t.maxFrameBytes - 1)
    const got: string[] = []
    const down: string[] = []
    m.onReceive((from, p) => got.push(`m:${from}:${Buffer.from(p).toString()}`))
    r.onReceive((from, p) => got.push(`r:${from}:${Buffer.from(p).toString()}`))
    m.onUnreachable((e) => down.push(`m:${e.peer}`))
    r.onUnreachable((e) => down.push(`r:${e.peer}`))
    m.send('b', Buffer.from('ping'))
    r.send('b', Buffer.from('rep'))
    assert.deepEqual(t.queue.map((q) => [q.frame[0], Buffer.from(q.frame.subarray(1)).toString()]), [[0, 'ping'], [1, 'rep']])
    for (const q of t.drain()) t.receive!('b', q.frame)
    t.receive!('b', Uint8Array.of(7, 1, 2))
    t.receive!('b', new Uint8Array(0))
    assert.deepEqual(got, ['m:b:ping', 'r:b:rep'])
    assert.equal(mux.stats.unrouted, 2)
    t.unreachable!(new PeerUnreachableError('b', 'gone'))
    assert.deepEqual(down, ['m:b', 'r:b'])
    assert.throws(() => m.send('b', new Uint8Array(t.maxFrameBytes)), (e: unknown) => isCacheError(e, 'ERR_VALUE_TOO_LARGE'))
    assert.throws(() => mux.channel(256), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    assert.throws(() => new ChannelMux({ transport: t, clock: new ManualClock(0), pumpMs: 0 }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
  })

  test('a control frame waits behind at most the high-water mark of bulk bytes, however much bulk is queued; the rest is pumped as the transport drains', () => {
    const t = new StuckTransport('a')
    const clock = new ManualClock(0)
    const mux = new ChannelMux({ transport: t, clock, bulkHighWaterBytes: 64 * KiB, pumpMs: 5 })
    const m = mux.channel(0)
    const r = mux.channel(1, { kind: 'bulk' })
    for (let i = 0; i < 1000; i++) r.send('b', new Uint8Array(10 * KiB)) // ~10 MiB of repair traffic
    m.send('b', Buffer.from('heartbeat'))
    const before = t.queue.findIndex((q) => q.frame[0] === 0)
    const bulkAhead = t.queue.slice(0, before).reduce((n, q) => n + q.frame.byteLength, 0)
    assert.ok(bulkAhead < 64 * KiB + 10 * KiB + 1, `bulk bytes ahead of the heartbeat: ${bulkAhead}`)
    assert.ok(mux.stats.bulkQueuedBytes > 9 * 1024 * KiB, 'the rest waits in the mux')
    // Nothing moves while the transport is stuck; each drain lets one high-water's worth through.
    clock.advance(50)
    assert.equal(t.queuedBytes('b'), bulkAhead + 10)
    let delivered = 0
    for (let round = 0; round < 400 && (mux.stats.bulkQueuedFrames > 0 || t.queue.length > 0); round++) {
      delivered += t.drain().filter((q) => q.frame[0] === 1).length
      clock.advance(5)
    }
    assert.equal(delivered, 1000, 'every bulk frame is delivered, none dropped')
    assert.equal(mux.stats.bulkDropped, 0)
  })

  test('a long bulk queue drains in order with exact counts while more frames join it (head index, compacted as it drains)', () => {
    const t = new StuckTransport('a')
    const clock = new ManualClock(0)
    const mux = new ChannelMux({ transport: t, clock, bulkHighWaterBytes: 4 * KiB, pumpMs: 5 })
    const r = mux.channel(1, { kind: 'bulk' })
    const frame = (i: number): Uint8Array => {
      const b = Buffer.alloc(100)
      b.writeUInt32BE(i, 0)
      return b
    }
    let sent = 0
    const received: number[] = []
    for (; sent < 3000; sent++) r.send('b', frame(sent))
    for (let round = 0; round < 2000 && received.length < 6000; round++) {
      for (const q of t.drain()) received.push(Buffer.from(q.frame.subarray(1)).readUInt32BE(0))
      // More join while the queue is being drained (past the compaction point too).
      if (round % 3 === 0 && sent < 6000) for (let j = 0; j < 50; j++) r.send('b', frame(sent++))
      const waiting = sent - received.length - t.queue.length
      assert.equal(mux.stats.bulkQueuedFrames, waiting, `round ${round}: frames counted`)
      assert.equal(mux.stats.bulkQueuedBytes, waiting * 101, `round ${round}: bytes counted`)
      assert.equal(mux.bulkQueuedBytes('b'), waiting * 101)
      clock.advance(5)
    }
    assert.equal(sent, 6000)
    assert.deepEqual(received, Array.from({ length: 6000 }, (_, i) => i), 'every frame once, in order')
    assert.equal(mux.stats.bulkQueuedFrames, 0)
    assert.equal(mux.stats.bulkDropped, 0)
  })

  test('a full bulk queue drops new frames, counted, and reports the peer unreachable to the bulk channel once', async () => {
    const t = new StuckTransport('a')
    const mux = new ChannelMux({ transport: t, clock: new ManualClock(0), bulkHighWaterBytes: 1 * KiB, maxBulkQueuedBytes: 8 * KiB })
    const m = mux.channel(0)
    const r = mux.channel(1, { kind: 'bulk' })
    const down: string[] = []
    m.onUnreachable((e) => down.push(`m:${e.peer}`))
    r.onUnreachable((e) => down.push(`r:${e.peer}`))
    for (let i = 0; i < 20; i++) r.send('b', new Uint8Array(KiB))
    await new Promise((resolve) => queueMicrotask(() => resolve(undefined)))
    assert.ok(mux.stats.bulkDropped >= 10, `dropped ${mux.stats.bulkDropped}`)
    assert.deepEqual(down, ['r:b'])
    m.send('b', Buffer.from('still goes'))
    assert.equal(t.queue.at(-1)!.frame[0], 0)
  })
})

describe('ChannelMux inbound limits per peer', () => {
  const frame = (tag: number, bytes: number): Uint8Array => {
    const f = new Uint8Array(bytes + 1)
    f[0] = tag
    return f
  }

  /** A mux that takes 100 control frames a second per peer, and the frames each peer got through. */
  const controlLimited = (): { t: StuckTransport; clock: ManualClock; mux: ChannelMux; got: Map<string, number> } => {
    const t = new StuckTransport('a')
    const clock = new ManualClock(0)
    const mux = new ChannelMux({ transport: t, clock, inboundControlFramesPerSec: 100 })
    const got = new Map<string, number>()
    mux.channel(0).onReceive((from) => got.set(from, (got.get(from) ?? 0) + 1))
    return { t, clock, mux, got }
  }

  test('a peer flooding control frames past its rate is cut to the rate, counted; another peer and a later second are unaffected', () => {
    const { t, clock, mux, got } = controlLimited()
    for (let i = 0; i < 1000; i++) t.receive!('flooder', frame(0, 40))
    for (let i = 0; i < 10; i++) t.receive!('calm', frame(0, 40))
    assert.equal(got.get('flooder'), 100, 'one second of burst, then nothing')
    assert.equal(got.get('calm'), 10, "the flood does not spend another peer's budget")
    assert.deepEqual(mux.stats.inboundDropped, { control: 900, bulk: 0 })
    clock.advance(500)
    for (let i = 0; i < 1000; i++) t.receive!('flooder', frame(0, 40))
    assert.equal(got.get('flooder'), 150, 'refilled at the rate: 50 frames in 500 ms')
    mux.close()
  })

  test('bulk frames are limited by bytes per peer; a frame bigger than a second of budget passes only on a full bucket', () => {
    const t = new StuckTransport('a')
    const clock = new ManualClock(0)
    const mux = new ChannelMux({ transport: t, clock, inboundBulkBytesPerSec: 10 * KiB })
    let bytes = 0
    let frames = 0
    mux.channel(1, { kind: 'bulk' }).onReceive((_from, p) => {
      bytes += p.byteLength
      frames++
    })
    for (let i = 0; i < 20; i++) t.receive!('b', frame(1, KiB - 1))
    assert.equal(frames, 10, '10 KiB of 1 KiB frames in the first second')
    assert.equal(mux.stats.inboundDropped.bulk, 10)
    clock.advance(1000)
    t.receive!('b', frame(1, 50 * KiB))
    assert.equal(frames, 11, 'an oversized frame passes on a full bucket')
    t.receive!('b', frame(1, 100))
    assert.equal(frames, 11, 'and empties it')
    assert.ok(bytes > 50 * KiB)
    mux.close()
  })

  test('a peer\'s buckets are forgotten once full again (a second idle): peers gone for good leave nothing behind, and limits are unchanged', () => {
    // Soak finding: the buckets of every peer that ever sent a frame were kept until close,
    // one more pair per cluster node replaced. A bucket idle for a second is full, the state
    // a new one starts in, so forgetting it changes no answer.
    const { t, clock, mux, got } = controlLimited()
    for (let p = 0; p < 200; p++) t.receive!(`gone-${p}`, frame(0, 40))
    assert.equal(mux.inboundPeers, 200)
    clock.advance(1_000)
    for (let i = 0; i < 1000; i++) t.receive!('flooder', frame(0, 40))
    assert.equal(mux.inboundPeers, 1, 'only the peer heard within the last second is held')
    assert.equal(got.get('flooder'), 100, 'the new peer starts with a full bucket, as before')
    clock.advance(999)
    for (let i = 0; i < 1000; i++) t.receive!('flooder', frame(0, 40))
    assert.equal(got.get('flooder'), 199, 'a bucket not yet full is kept: 99 frames refilled in 999 ms')
    mux.close()
  })

  test('options are validated', () => {
    const t = new StuckTransport('a')
    assert.throws(() => new ChannelMux({ transport: t, clock: new ManualClock(0), inboundControlFramesPerSec: 0 }), (e: unknown) => isCacheError(e) && e.code === 'ERR_INVALID_OPTIONS')
    assert.throws(() => new ChannelMux({ transport: t, clock: new ManualClock(0), inboundBulkBytesPerSec: 1.5 }), (e: unknown) => isCacheError(e) && e.code === 'ERR_INVALID_OPTIONS')
  })
})

describe('ChannelMux over real loopback TcpTransports', () => {
  const open: TcpTransport[] = []
  after(async () => {
    await Promise.all(open.map((t) => t.close()))
  })

  test('under a 24 MiB replication burst a membership frame sent after it arrives before most of it; all bulk frames arrive in order', async () => {
    const SECRET = 'test-cluster-secret-0123456789ab'
    const a = await TcpTransport.listen({ nodeId: 'a', listen: { host: '127.0.0.1', port: 0 }, secret: SECRET })
    const b = await TcpTransport.listen({ nodeId: 'b', listen: { host: '127.0.0.1', port: 0 }, secret: SECRET })
    open.push(a, b)
    a.setPeer('b', b.advertised)
    b.setPeer('a', a.advertised)
    const ma = new ChannelMux({ transport: a, clock: systemClock })
    const mb = new ChannelMux({ transport: b, clock: systemClock })
    const order: string[] = []
    let bulkSeen = 0
    let inOrder = true
    mb.channel(0).onReceive(() => order.push(`control after ${bulkSeen} bulk`))
    mb.channel(1, { kind: 'bulk' }).onReceive((_from, p) => {
      if (Buffer.from(p).readUInt32BE(0) !== bulkSeen) inOrder = false
      bulkSeen++
    })
    // Warm the connection up first.
    ma.channel(0).send('b', Buffer.from('hello'))
    await until('connected', 5000, () => order.length === 1)
    const bulk = ma.channel(1, { kind: 'bulk' })
    const N = 384
    for (let i = 0; i < N; i++) {
      const frame = Buffer.alloc(64 * KiB)
      frame.writeUInt32BE(i, 0)
      bulk.send('b', frame)
    }
    ma.channel(0).send('b', Buffer.from('heartbeat'))
    await until('all bulk frames', 30_000, () => bulkSeen === N)
    assert.equal(inOrder, true)
    assert.equal(order.length, 2)
    const ahead = Number(/after (\d+)/.exec(order[1]!)![1])
    assert.ok(ahead < N / 4, `the heartbeat arrived after ${ahead} of ${N} bulk frames`)
    ma.close()
    mb.close()
  })
})
