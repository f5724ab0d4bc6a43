// TcpTransport over real loopback sockets: exchange between 2 and 3 nodes, mutual
// authentication (strangers, wrong secrets, replayed handshakes, injected frames), limits
// (frame size, handshake deadline, queue bound), loss and return of a peer, garbage at the
// port, TLS, and a peer in a child process.
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { rmSync } from 'node:fs'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { pack, unpack } from 'msgpackr'
import { TcpTransport, type TcpTransportOptions } from '../../src/cluster/index.js'
import { type CacheError, isCacheError, type PeerUnreachableError } from '../../src/core/errors.js'
import { SeededRandom } from '../../src/core/random.js'
import { makeClusterPki, readClusterPki } from '../support/cluster-pki.js'
import { until as untilWithin } from '../support/until.js'

const SECRET = 'test-cluster-secret-0123456789ab'
const HOST = '127.0.0.1'
const enc = new TextEncoder()
const dec = new TextDecoder()

const open: TcpTransport[] = []
after(async () => {
  await Promise.all(open.map((t) => t.close()))
})

interface Node {
  readonly t: TcpTransport
  readonly got: Array<{ from: string; text: string }>
  readonly unreachable: PeerUnreachableError[]
  readonly errors: CacheError[]
}

async function node(id: string, options: Partial<TcpTransportOptions> = {}): Promise<Node> {
  const errors: CacheError[] = []
  const t = await TcpTransport.listen({ nodeId: id, listen: { host: HOST, port: 0 }, secret: SECRET, reconnect: { base: 20, max: 200 }, onError: (e) => errors.push(e), ...options })
  open.push(t)
  const got: Node['got'] = []
  const unreachable: PeerUnreachableError[] = []
  t.onReceive((from, payload) => got.push({ from, text: dec.decode(payload) }))
  t.onUnreachable((e) => unreachable.push(e))
  return { t, got, unreachable, errors }
}

function link(...nodes: Node[]): void {
  for (const a of nodes) for (const b of nodes) if (a !== b) a.t.setPeer(b.t.self, b.t.advertised)
}

const until = (check: () => boolean, what: string, ms = 10_000): Promise<void> => untilWithin(what, ms, check)

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

// ---- a hand-rolled client speaking the wire protocol (docs/decisions/0142) -------------

const LABEL = 'stratacache-cluster/1'
const [HELLO, AUTH, ACCEPT, REFUSE, DATA] = [1, 2, 3, 4, 5]

function proof(secret: string, role: string, nonceS: Uint8Array, nonceC: Uint8Array, clientId: string, serverId: string): Buffer {
  return createHmac('sha256', secret).update(`${LABEL} ${role}\0`).update(nonceS).update(nonceC).update(`${clientId}\0${serverId}`).digest()
}

function frame(type: number, body: Uint8Array): Buffer {
  const f = Buffer.alloc(5 + body.byteLength)
  f.writeUInt32BE(1 + body.byteLength, 0)
  f[4] = type
  f.set(body, 5)
  return f
}

/** A raw socket to `port` collecting the frames it receives, and whether it was closed. */
class RawPeer {
  readonly socket: Socket
  readonly frames: Buffer[] = []
  closed = false
  #buf = Buffer.alloc(0)
  constructor(port: number) {
    this.socket = connect({ host: HOST, port })
    this.socket.on('error', () => undefined)
    this.socket.on('close', () => (this.closed = true))
    this.socket.on('data', (c: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, c])
      while (this.#buf.byteLength >= 4 && this.#buf.byteLength >= 4 + this.#buf.readUInt32BE(0)) {
        const n = this.#buf.readUInt32BE(0)
        this.frames.push(this.#buf.subarray(4, 4 + n))
        this.#buf = this.#buf.subarray(4 + n)
      }
    })
  }
  async nonceS(): Promise<Uint8Array> {
    await until(() => this.frames.length > 0, 'HELLO')
    assert.equal(this.frames[0][0], HELLO)
    const [version, nonce] = unpack(this.frames[0].subarray(1)) as [number, Uint8Array]
    assert.equal(version, 1)
    return nonce
  }
  auth(clientId: string, serverId: string, nonceS: Uint8Array, secret = SECRET, nonceC = Buffer.alloc(32, 7)): Buffer {
    const f = frame(AUTH, pack([1, clientId, serverId, nonceC, proof(secret, 'client', nonceS, nonceC, clientId, serverId)]))
    this.socket.write(f)
    return f
  }
  /** A DATA frame with the per-frame MAC of sequence `seq` (plain mode). */
  data(key: Buffer | undefined, seq: bigint, payload: Uint8Array): void {
    const f = Buffer.alloc(5 + payload.byteLength + 16)
    f.writeUInt32BE(1 + payload.byteLength + 16, 0)
    f[4] = DATA
    f.set(payload, 5)
    if (key !== undefined) {
      const s = Buffer.alloc(8)
      s.writeBigUInt64BE(seq)
      createHmac('sha256', key).update(s).update(payload).digest().subarray(0, 16).copy(f, 5 + payload.byteLength)
    }
    this.socket.write(f)
  }
}

// ---- tests -------------------------------------------------------------------------------

describe('TcpTransport: exchange', () => {
  test('two nodes exchange messages both ways; `from` is the authenticated peer id', async () => {
    const a = await node('a')
    const b = await node('b')
    link(a, b)
    for (let i = 0; i < 50; i++) a.t.send('b', enc.encode(`a${i}`))
    for (let i = 0; i < 50; i++) b.t.send('a', enc.encode(`b${i}`))
    await until(() => a.got.length === 50 && b.got.length === 50, 'both directions')
    // One connection per direction keeps order.
    assert.deepEqual(b.got.map((m) => m.text), Array.from({ length: 50 }, (_, i) => `a${i}`))
    assert.deepEqual(a.got.map((m) => m.text), Array.from({ length: 50 }, (_, i) => `b${i}`))
    assert.ok(b.got.every((m) => m.from === 'a') && a.got.every((m) => m.from === 'b'))
    assert.equal(a.t.stats.sent, 50)
    assert.equal(b.t.stats.received, 50)
    assert.equal(a.t.stats.outbound, 1)
    assert.equal(a.t.stats.inbound, 1)
    assert.deepEqual([a.unreachable, b.unreachable, a.errors, b.errors], [[], [], [], []])
  })

  test('three nodes, every pair both ways, payloads of 0 B to 1 MiB arrive intact', async () => {
    const ns = [await node('n1'), await node('n2'), await node('n3')]
    link(...ns)
    const big = Buffer.alloc(1024 * 1024, 0x5a)
    for (const x of ns) for (const y of ns) if (x !== y) {
      x.t.send(y.t.self, enc.encode(`${x.t.self}->${y.t.self}`))
      x.t.send(y.t.self, new Uint8Array(0))
      x.t.send(y.t.self, big)
    }
    await until(() => ns.every((n) => n.got.length === 6), 'all 18 messages')
    for (const y of ns) {
      const texts = y.got.filter((m) => m.text.includes('->')).map((m) => m.text).sort()
      assert.deepEqual(texts, ns.filter((x) => x !== y).map((x) => `${x.t.self}->${y.t.self}`).sort())
      assert.equal(y.got.filter((m) => m.text === '').length, 2)
      assert.equal(y.got.filter((m) => m.text.length === big.byteLength && m.text === big.toString()).length, 2)
    }
  })

  test('send to self is delivered locally; an unknown peer is reported unreachable, not thrown', async () => {
    const a = await node('solo')
    a.t.send('solo', enc.encode('me'))
    a.t.send('nobody', enc.encode('x'))
    await until(() => a.got.length === 1 && a.unreachable.length === 1, 'self delivery and the report')
    assert.deepEqual(a.got[0], { from: 'solo', text: 'me' })
    assert.ok(isCacheError(a.unreachable[0], 'ERR_PEER_UNREACHABLE'))
    assert.equal(a.unreachable[0].peer, 'nobody')
    assert.equal(a.t.stats.dropped, 1)
  })

  test("the caller's mistakes throw typed errors: bad options, a bad node id, an oversized payload, send after close", async () => {
    await assert.rejects(TcpTransport.listen({ nodeId: 'x', listen: { host: HOST, port: 0 }, secret: 'short' }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    await assert.rejects(TcpTransport.listen({ nodeId: 'bad id', listen: { host: HOST, port: 0 }, secret: SECRET }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    await assert.rejects(TcpTransport.listen({ nodeId: 'x', listen: { host: HOST, port: 70000 }, secret: SECRET }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    const a = await node('limits', { maxFrameBytes: 1000 })
    assert.throws(() => a.t.send('bad id', new Uint8Array(1)), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS'))
    assert.throws(() => a.t.send('p', new Uint8Array(1001)), (e: unknown) => isCacheError(e, 'ERR_VALUE_TOO_LARGE'))
    await a.t.close()
    await a.t.close() // idempotent
    assert.throws(() => a.t.send('p', new Uint8Array(1)), (e: unknown) => isCacheError(e, 'ERR_CLOSED'))
  })
})

describe('TcpTransport: authentication', () => {
  test('a stranger without the secret cannot deliver a frame: DATA before AUTH is refused and counted', async () => {
    const b = await node('guarded')
    const raw = new RawPeer(b.t.advertised.port)
    await raw.nonceS()
    raw.data(undefined, 0n, enc.encode('injected'))
    await until(() => raw.closed, 'the connection to be closed')
    assert.equal(b.got.length, 0)
    assert.equal(b.t.stats.authFailures, 1)
    assert.ok(isCacheError(b.errors[0], 'ERR_PEER_AUTH'))
    assert.match(b.errors[0].message, /before authentication/)
  })

  test('a node with a wrong secret is refused on both sides: the server counts it, the sender hears why', async () => {
    const b = await node('b2')
    const intruder = await node('intruder', { secret: 'another-secret-entirely-0000' })
    intruder.t.setPeer('b2', b.t.advertised)
    intruder.t.send('b2', enc.encode('let me in'))
    await until(() => intruder.unreachable.length === 1 && b.t.stats.authFailures === 1, 'the refusal on both sides')
    assert.equal(b.got.length, 0)
    assert.match(b.errors[0].message, /wrong cluster secret/)
    assert.ok(isCacheError(intruder.unreachable[0].cause, 'ERR_PEER_AUTH'), 'the unreachable report carries the auth refusal')
    assert.equal(intruder.t.stats.authFailures, 1)
    assert.equal(intruder.t.stats.dropped, 1)
  })

  test('a server that does not hold the secret cannot pass as a peer: the dialler refuses it', async () => {
    // An impostor listening where the peer should be: it answers HELLO, then accepts blindly.
    const impostor: Server = createServer((s) => {
      s.on('error', () => undefined)
      s.write(frame(HELLO, pack([1, Buffer.alloc(32, 1)])))
      s.once('data', () => s.write(frame(ACCEPT, pack([Buffer.alloc(32, 2)]))))
    })
    await new Promise<void>((r) => impostor.listen(0, HOST, () => r()))
    try {
      const a = await node('dialler')
      a.t.setPeer('victim', { host: HOST, port: (impostor.address() as { port: number }).port })
      a.t.send('victim', enc.encode('secret stuff'))
      await until(() => a.unreachable.length === 1, 'the refusal')
      assert.ok(isCacheError(a.unreachable[0].cause, 'ERR_PEER_AUTH'))
      assert.equal(a.t.stats.authFailures, 1)
      assert.equal(a.t.stats.sent, 0, 'nothing was written to the impostor')
    } finally {
      impostor.close()
    }
  })

  test('a recorded AUTH replayed on a new connection is refused (fresh server nonce); AUTH for another node id is refused', async () => {
    const b = await node('b3')
    const first = new RawPeer(b.t.advertised.port)
    const recorded = first.auth('honest', 'b3', await first.nonceS())
    await until(() => first.frames.length === 2, 'ACCEPT')
    assert.equal(first.frames[1][0], ACCEPT)
    const replay = new RawPeer(b.t.advertised.port)
    await replay.nonceS()
    replay.socket.write(recorded)
    await until(() => replay.closed, 'the replay to be refused')
    assert.equal(replay.frames.at(-1)?.[0], REFUSE)
    const redirected = new RawPeer(b.t.advertised.port)
    redirected.auth('honest', 'someone-else', await redirected.nonceS())
    await until(() => redirected.closed, 'the redirected AUTH to be refused')
    assert.equal(b.t.stats.authFailures, 2)
    first.socket.destroy()
  })

  test('after authentication, a frame with a wrong MAC (injected on the path) is refused; the right MAC is accepted', async () => {
    const b = await node('b4')
    const raw = new RawPeer(b.t.advertised.port)
    const nonceS = await raw.nonceS()
    const nonceC = Buffer.alloc(32, 9)
    raw.auth('honest', 'b4', nonceS, SECRET, nonceC)
    await until(() => raw.frames.length === 2, 'ACCEPT')
    const key = proof(SECRET, 'data', nonceS, nonceC, 'honest', 'b4')
    raw.data(key, 0n, enc.encode('good 0'))
    raw.data(key, 1n, enc.encode('good 1'))
    await until(() => b.got.length === 2, 'the two good frames')
    raw.data(key, 1n, enc.encode('replayed sequence'))
    await until(() => raw.closed, 'the connection to be closed')
    assert.deepEqual(b.got, [{ from: 'honest', text: 'good 0' }, { from: 'honest', text: 'good 1' }])
    assert.match(b.errors.at(-1)?.message ?? '', /failed its MAC/)
  })
})

describe('TcpTransport: limits', () => {
  test('oversized frames are refused before they are buffered: pre-auth above 1 KiB, post-auth above maxFrameBytes', async () => {
    const b = await node('b5', { maxFrameBytes: 4096 })
    const pre = new RawPeer(b.t.advertised.port)
    await pre.nonceS()
    const header = Buffer.alloc(4)
    header.writeUInt32BE(1024 * 1024)
    pre.socket.write(header)
    await until(() => pre.closed, 'the pre-auth connection to be closed')
    const post = new RawPeer(b.t.advertised.port)
    post.auth('honest', 'b5', await post.nonceS())
    await until(() => post.frames.length === 2, 'ACCEPT')
    header.writeUInt32BE(1 + 4096 + 16 + 1)
    post.socket.write(header)
    await until(() => post.closed, 'the post-auth connection to be closed')
    assert.equal(b.t.stats.oversizedFrames, 2)
    assert.ok(b.errors.some((e) => isCacheError(e, 'ERR_VALUE_TOO_LARGE')))
    assert.equal(b.got.length, 0)
  })

  test('a silent connection is cut at the handshake deadline, on either side', async () => {
    const b = await node('b6', { handshakeTimeout: 300 })
    const silent = new RawPeer(b.t.advertised.port)
    const t0 = Date.now()
    await until(() => silent.closed, 'the silent connection to be cut', 5_000)
    const took = Date.now() - t0
    assert.ok(took >= 250 && took < 3_000, `cut after ${took} ms`)
    assert.equal(b.t.stats.handshakeTimeouts, 1)
    assert.ok(isCacheError(b.errors[0], 'ERR_PEER_AUTH'))
    // A server that accepts and never speaks: the dialler gives up at its deadline too.
    const mute: Server = createServer((s) => s.on('error', () => undefined))
    await new Promise<void>((r) => mute.listen(0, HOST, () => r()))
    try {
      const a = await node('a6', { handshakeTimeout: 300 })
      a.t.setPeer('mute', { host: HOST, port: (mute.address() as { port: number }).port })
      a.t.send('mute', enc.encode('hello?'))
      await until(() => a.unreachable.length === 1, 'the deadline report', 5_000)
      assert.match(a.unreachable[0].message, /handshake/)
      assert.equal(a.t.stats.handshakeTimeouts, 1)
    } finally {
      mute.close()
    }
  })

  test('more than maxPendingHandshakes unauthenticated connections are closed on arrival', async () => {
    const b = await node('b7', { maxPendingHandshakes: 3, handshakeTimeout: 10_000 })
    const raws = Array.from({ length: 5 }, () => new RawPeer(b.t.advertised.port))
    await until(() => raws.filter((r) => r.closed).length === 2, 'two connections refused')
    assert.equal(b.t.stats.authFailures, 2)
    for (const r of raws) r.socket.destroy()
  })

  test('the send queue to a peer that cannot take messages is bounded: overflow is dropped and reported once', async () => {
    // A peer that never finishes the handshake: everything sent to it waits in the queue.
    const mute: Server = createServer((s) => s.on('error', () => undefined))
    await new Promise<void>((r) => mute.listen(0, HOST, () => r()))
    try {
      const a = await node('a8', { maxQueuedFrames: 10, handshakeTimeout: 10_000 })
      a.t.setPeer('mute', { host: HOST, port: (mute.address() as { port: number }).port })
      for (let i = 0; i < 1000; i++) a.t.send('mute', enc.encode(`m${i}`))
      await until(() => a.unreachable.length === 1, 'the overflow report')
      await sleep(50)
      assert.equal(a.unreachable.length, 1, 'reported once per episode, not per message')
      assert.match(a.unreachable[0].message, /queue .* is full/)
      assert.equal(a.t.stats.dropped, 990)
    } finally {
      mute.close()
    }
  })
})

describe('TcpTransport: faults', () => {
  test('a peer killed mid-stream is reported unreachable; messages flow again after it returns on the same address', async () => {
    const a = await node('a9')
    let b = await node('b9')
    link(a, b)
    const port = b.t.advertised.port
    let i = 0
    const pump = setInterval(() => {
      try {
        a.t.send('b9', enc.encode(`m${i++}`))
      } catch {
        // closed at the end of the test
      }
    }, 5)
    try {
      await until(() => b.got.length >= 10, 'the stream to flow')
      await b.t.close()
      await until(() => a.unreachable.length >= 1, 'the loss to be reported')
      assert.equal(a.unreachable[0].peer, 'b9')
      const before = a.unreachable.length
      await sleep(100)
      b = await node('b9', { listen: { host: HOST, port } })
      await until(() => b.got.length >= 10, 'the stream to flow to the restarted peer')
      assert.ok(b.got.every((m) => m.from === 'a9'))
      assert.ok(a.unreachable.length >= before)
    } finally {
      clearInterval(pump)
    }
  })

  test('garbage at the port (seeded random bytes, many connections) crashes nothing and delivers nothing', async () => {
    const b = await node('b10')
    const a = await node('a10')
    link(a, b)
    const random = new SeededRandom(42)
    const peers: RawPeer[] = []
    for (let c = 0; c < 40; c++) {
      const raw = new RawPeer(b.t.advertised.port)
      peers.push(raw)
      const n = 1 + Math.floor(random.next() * 3000)
      const bytes = Buffer.alloc(n)
      for (let k = 0; k < n; k++) bytes[k] = Math.floor(random.next() * 256)
      // Some start like a frame of a valid type, to get past the first checks.
      if (c % 3 === 0) bytes.writeUInt32BE(Math.min(n - 4, 900), 0)
      if (c % 3 === 0 && n > 4) bytes[4] = [AUTH, DATA, HELLO][c % 9 === 0 ? 0 : c % 2]
      raw.socket.write(bytes)
    }
    await until(() => peers.every((p) => p.closed), 'every garbage connection to be closed', 15_000)
    assert.equal(b.got.length, 0)
    assert.ok(b.t.stats.authFailures > 0)
    a.t.send('b10', enc.encode('still here'))
    await until(() => b.got.length === 1, 'a legitimate message after the garbage')
    assert.deepEqual(b.got[0], { from: 'a10', text: 'still here' })
  })
})

describe('TcpTransport: TLS', () => {
  const pki = makeClusterPki(['t1', 't2', 'mallory'])
  const otherPki = makeClusterPki(['t2'], 'other-ca')
  after(() => {
    rmSync(pki, { recursive: true, force: true })
    rmSync(otherPki, { recursive: true, force: true })
  })

  test('nodes with certificates from the cluster CA exchange over TLS 1.3, without frame MACs', async () => {
    const a = await node('t1', { tls: readClusterPki(pki, 't1') })
    const b = await node('t2', { tls: readClusterPki(pki, 't2') })
    link(a, b)
    a.t.send('t2', enc.encode('over tls'))
    b.t.send('t1', enc.encode('and back'))
    await until(() => a.got.length === 1 && b.got.length === 1, 'both messages')
    assert.deepEqual(b.got[0], { from: 't1', text: 'over tls' })
    assert.deepEqual(a.got[0], { from: 't2', text: 'and back' })
  })

  test('a certificate from another CA, a certificate naming another node, and a plain-TCP dialler are all refused', async () => {
    const b = await node('t2', { tls: readClusterPki(pki, 't2') })
    const foreign = await node('t1', { tls: { ...readClusterPki(otherPki, 't2'), ca: readClusterPki(pki, 't2').ca } })
    foreign.t.setPeer('t2', b.t.advertised)
    foreign.t.send('t2', enc.encode('x'))
    await until(() => foreign.unreachable.length >= 1, 'the foreign certificate to be refused')
    // mallory holds the secret and a cluster certificate, but claims to be t1.
    const mallory = await node('t1', { tls: readClusterPki(pki, 'mallory') })
    mallory.t.setPeer('t2', b.t.advertised)
    mallory.t.send('t2', enc.encode('y'))
    await until(() => mallory.unreachable.length >= 1, 'the misnamed certificate to be refused')
    assert.ok(isCacheError(mallory.unreachable[0].cause, 'ERR_PEER_AUTH'))
    const plain = await node('t3')
    plain.t.setPeer('t2', b.t.advertised)
    plain.t.send('t2', enc.encode('z'))
    await until(() => plain.unreachable.length >= 1, 'the plain dialler to fail')
    assert.equal(b.got.length, 0)
    assert.ok(b.t.stats.authFailures >= 2, `auth failures ${b.t.stats.authFailures}`)
  })
})

describe('TcpTransport: across processes', () => {
  test('a peer in a child process exchanges messages with this one', async () => {
    const parent = await node('parent')
    const script = fileURLToPath(new URL('../support/transport-peer.js', import.meta.url))
    const child = fork(script, ['child', SECRET, 'parent', String(parent.t.advertised.port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    try {
      const port = await new Promise<number>((resolve, reject) => {
        child.once('message', (m) => resolve((m as { port: number }).port))
        child.once('exit', (code) => reject(new Error(`the peer process exited with ${code}`)))
      })
      parent.t.setPeer('child', { host: HOST, port })
      for (let i = 0; i < 100; i++) parent.t.send('child', enc.encode(`p${i}`))
      await until(() => parent.got.length === 100, 'the echoes', 20_000)
      assert.deepEqual(parent.got.map((m) => m.text), Array.from({ length: 100 }, (_, i) => `echo:p${i}`))
      assert.ok(parent.got.every((m) => m.from === 'child'))
      // Killed without warning: the parent hears of it on its next sends.
      child.kill('SIGKILL')
      await new Promise((r) => (child.exitCode === null && child.signalCode === null ? child.once('exit', r) : r(undefined)))
      parent.t.send('child', enc.encode('anyone?'))
      await until(() => parent.unreachable.some((e) => e.peer === 'child'), 'the dead child to be reported')
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
  })
})
