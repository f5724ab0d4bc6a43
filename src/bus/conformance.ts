/**
 * The conformance suite every `BusTransport` runs (memory, Redis, NATS, AMQP, yours): one
 * set of `node:test` blocks that pins the transport invariants of `types.ts`.
 *
 * Transports talk to real brokers, so this suite runs on real time (through `clock`,
 * `systemClock` by default) and every wait has a deadline: a transport that hangs fails a
 * test with a message naming what it waited for; it never stalls the run. Two transports
 * opened by `target.open()` stand for two processes.
 *
 * Broker faults: `target.kill()` stops the broker as a crash would and `target.restart()`
 * brings it back on the same address. The suite checks that every subscription reports
 * 'down' within `downWithinMs`, that `publish` and `subscribe` reject (never hang) while the
 * broker is away, and that subscriptions report 'up' within `reconnectWithinMs` of the
 * restart and then receive again. Fault tests run last, and always restart the broker.
 *
 * This module imports `node:test`: import it from tests only, never from the library.
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import type { Clock } from '../core/clock.js'
import { isCacheError } from '../core/errors.js'
import { systemClock } from '../core/system-clock.js'
import { pollUntil, stalledNote } from '../core/poll-until.js'
import type { BusTransport } from './types.js'

export interface BusTransportTarget {
  /** Shown as the suite's describe() title. */
  name: string
  /** A new transport, as another process would have (its own connections). Never throws for a dead broker. */
  open(): Promise<BusTransport>
  /** Kills the broker (as a crash would). */
  kill(): Promise<void>
  /** Starts the broker again on the same address. */
  restart(): Promise<void>
  /** How long a subscription may take to report 'down' after `kill()`. @default 10_000 */
  downWithinMs?: number
  /** How long a subscription may take to report 'up' after `restart()` resolved. @default 15_000 */
  reconnectWithinMs?: number
  /** How long `publish` / `subscribe` may take to reject while the broker is down. @default 10_000 */
  failWithinMs?: number
  /** How long a message may take to arrive on a healthy broker. @default 5_000 */
  deliverWithinMs?: number
  /** Real time source for the waits. @default systemClock */
  clock?: Clock
}

interface Received {
  readonly messages: Uint8Array[]
  readonly states: Array<'up' | 'down'>
}

const utf8 = new TextEncoder()
const text = new TextDecoder()
const bytes = (s: string): Uint8Array => utf8.encode(s)

/** A deterministic non-trivial pattern, so a shifted or truncated copy is detected. */
function pattern(size: number, seed = 7): Uint8Array {
  const out = new Uint8Array(size)
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed + (i >>> 8)) & 0xff
  return out
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

let channels = 0

export function busTransportConformance(target: BusTransportTarget): void {
  const clock = target.clock ?? systemClock
  const downWithin = target.downWithinMs ?? 10_000
  const reconnectWithin = target.reconnectWithinMs ?? 15_000
  const failWithin = target.failWithinMs ?? 10_000
  const deliverWithin = target.deliverWithinMs ?? 5_000
  const open = new Set<BusTransport>()
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => clock.setTimeout(resolve, ms))
  /** A channel no other test (or earlier run) uses. */
  const channel = (): string => `conf.${process.pid}.${++channels}.${Math.floor(clock.now())}`

  async function transport(): Promise<BusTransport> {
    const t = await target.open()
    open.add(t)
    return t
  }

  async function subscribe(t: BusTransport, ch: string): Promise<Received & { unsubscribe: () => Promise<void> }> {
    const r: Received = { messages: [], states: [] }
    const unsubscribe = await t.subscribe(
      ch,
      (m) => r.messages.push(m),
      (s) => r.states.push(s),
    )
    return { ...r, unsubscribe }
  }

  /** A publisher `a`, and another transport subscribed to two fresh channels (`r1` on `ch1`, `r2` on `ch2`). */
  async function twoChannels(): Promise<{ a: BusTransport; ch1: string; ch2: string; r1: Received & { unsubscribe: () => Promise<void> }; r2: Received }> {
    const a = await transport()
    const b = await transport()
    const ch1 = channel()
    const ch2 = channel()
    const r1 = await subscribe(b, ch1)
    const r2 = await subscribe(b, ch2)
    return { a, ch1, ch2, r1, r2 }
  }

  /** Waits until `check` holds; fails naming `what` (and `seen()`, what did happen) after `ms`. */
  async function waitFor(what: string, ms: number, check: () => boolean, seen?: () => string): Promise<void> {
    const r = await pollUntil(clock, ms, check)
    if (!r.held) assert.fail(`${target.name}: ${what} did not happen within ${ms} ms${stalledNote(r)}${seen === undefined ? '' : `; seen: ${seen()}`}`)
  }

  /** Resolves with how `p` settled, failing if it stays pending longer than `ms`. */
  async function settlesWithin<T>(what: string, ms: number, p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
    let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined
    p.then(
      (value) => (outcome = { ok: true, value }),
      (error: unknown) => (outcome = { ok: false, error }),
    )
    const r = await pollUntil(clock, ms, () => outcome !== undefined)
    if (outcome === undefined) assert.fail(`${target.name}: ${what} still pending after ${ms} ms${stalledNote(r)} (it must settle, never hang)`)
    return outcome
  }

  describe(`bus transport conformance: ${target.name}`, () => {
    after(async () => {
      await Promise.all([...open].map((t) => t.close().catch(() => {})))
    })

    test('name is a non-empty string', async () => {
      const t = await transport()
      assert.equal(typeof t.name, 'string')
      assert.ok(t.name.length > 0)
    })

    test('every subscriber, the publisher included, receives each payload byte for byte', async () => {
      const a = await transport()
      const b = await transport()
      const ch = channel()
      const ra = await subscribe(a, ch)
      const rb = await subscribe(b, ch)
      const payloads = [new Uint8Array([0]), pattern(256), Uint8Array.from({ length: 256 }, (_, i) => i), pattern(64 * 1024, 3), bytes('héllo ✓')]
      for (const p of payloads) await a.publish(ch, p)
      await waitFor(
        'delivery of 5 payloads to both subscribers',
        deliverWithin,
        () => ra.messages.length >= payloads.length && rb.messages.length >= payloads.length,
        () => `publisher's own subscription ${ra.messages.length} payloads, states [${ra.states.join()}]; other ${rb.messages.length}, states [${rb.states.join()}]`,
      )
      for (const r of [ra, rb]) {
        assert.equal(r.messages.length, payloads.length, 'each payload exactly once')
        payloads.forEach((p, i) => assert.ok(sameBytes(r.messages[i] as Uint8Array, p), `payload ${i} arrives intact (${p.length} bytes)`))
        for (const m of r.messages) assert.ok(m instanceof Uint8Array)
      }
    })

    test('receivers get their own copies; the publisher may reuse its buffer once publish resolved', async () => {
      const a = await transport()
      const b = await transport()
      const ch = channel()
      const ra = await subscribe(a, ch)
      const rb = await subscribe(b, ch)
      const buf = bytes('first')
      await a.publish(ch, buf)
      buf.set(bytes('XXXXX'))
      await waitFor('delivery to both', deliverWithin, () => ra.messages.length >= 1 && rb.messages.length >= 1)
      assert.equal(text.decode(rb.messages[0]), 'first', 'reusing the buffer after publish resolved changes nothing delivered')
      ;(ra.messages[0] as Uint8Array).fill(0)
      assert.equal(text.decode(rb.messages[0]), 'first', 'one receiver mutating its payload does not touch another’s')
    })

    test('per-publisher order holds for 300 payloads published without waiting', async () => {
      const a = await transport()
      const b = await transport()
      const ch = channel()
      const rb = await subscribe(b, ch)
      const n = 300
      await Promise.all(Array.from({ length: n }, (_, i) => a.publish(ch, bytes(String(i)))))
      await waitFor(`delivery of ${n} payloads`, deliverWithin, () => rb.messages.length >= n)
      assert.deepEqual(
        rb.messages.map((m) => text.decode(m)),
        Array.from({ length: n }, (_, i) => String(i)),
      )
    })

    test('interleaved publishers: each one’s payloads arrive in its own order', async () => {
      const a = await transport()
      const b = await transport()
      const c = await transport()
      const ch = channel()
      const rc = await subscribe(c, ch)
      const n = 100
      await Promise.all([...Array.from({ length: n }, (_, i) => a.publish(ch, bytes(`a${i}`))), ...Array.from({ length: n }, (_, i) => b.publish(ch, bytes(`b${i}`)))])
      await waitFor(`delivery of ${2 * n} payloads`, deliverWithin, () => rc.messages.length >= 2 * n)
      const got = rc.messages.map((m) => text.decode(m))
      assert.deepEqual(
        got.filter((s) => s.startsWith('a')),
        Array.from({ length: n }, (_, i) => `a${i}`),
      )
      assert.deepEqual(
        got.filter((s) => s.startsWith('b')),
        Array.from({ length: n }, (_, i) => `b${i}`),
      )
    })

    test('a payload published right after subscribe resolved is received (no subscribe race)', async () => {
      for (let i = 0; i < 5; i++) {
        const a = await transport()
        const b = await transport()
        const ch = channel()
        const rb = await subscribe(b, ch)
        await a.publish(ch, bytes('now'))
        await waitFor('delivery right after subscribe', deliverWithin, () => rb.messages.length === 1)
        await a.close()
        await b.close()
      }
    })

    test('channels are isolated', async () => {
      const { a, ch1, ch2, r1, r2 } = await twoChannels()
      await a.publish(ch1, bytes('one'))
      await a.publish(ch2, bytes('two'))
      await waitFor('delivery on both channels', deliverWithin, () => r1.messages.length >= 1 && r2.messages.length >= 1)
      await sleep(50)
      assert.deepEqual(
        r1.messages.map((m) => text.decode(m)),
        ['one'],
      )
      assert.deepEqual(
        r2.messages.map((m) => text.decode(m)),
        ['two'],
      )
    })

    test('unsubscribe stops delivery and leaves other channels alone; calling it twice is harmless', async () => {
      const { a, ch1, ch2, r1, r2 } = await twoChannels()
      await r1.unsubscribe()
      await r1.unsubscribe()
      await a.publish(ch1, bytes('gone'))
      await a.publish(ch2, bytes('kept'))
      await waitFor('delivery on the channel still subscribed', deliverWithin, () => r2.messages.length >= 1)
      await sleep(50)
      assert.equal(r1.messages.length, 0, 'nothing after unsubscribe')
      assert.equal(text.decode(r2.messages[0]), 'kept')
    })

    test('close is idempotent; publish and subscribe after close reject; its subscriptions stop', async () => {
      const a = await transport()
      const b = await transport()
      const ch = channel()
      const rb = await subscribe(b, ch)
      await b.close()
      await b.close()
      await a.publish(ch, bytes('after close'))
      await sleep(100)
      assert.equal(rb.messages.length, 0, 'a closed transport delivers nothing')
      const p = await settlesWithin('publish after close', failWithin, b.publish(ch, bytes('x')))
      assert.equal(p.ok, false, 'publish after close rejects')
      const s = await settlesWithin(
        'subscribe after close',
        failWithin,
        b.subscribe(
          ch,
          () => {},
          () => {},
        ),
      )
      assert.equal(s.ok, false, 'subscribe after close rejects')
      if (!s.ok) assert.ok(s.error instanceof Error)
    })

    test('a subscriber whose onMessage throws harms nobody: the others and later payloads still arrive', async () => {
      // NATS: the throw closed the client's reader and every later publish timed out, for ever;
      // the in-process transport threw it from a microtask (an uncaught exception).
      const a = await transport()
      const b = await transport()
      const ch = channel()
      let thrown = 0
      await b.subscribe(
        ch,
        () => {
          thrown++
          throw new Error('a buggy subscriber')
        },
        () => {},
      )
      const rb = await subscribe(b, ch)
      await a.publish(ch, bytes('one'))
      await waitFor('delivery beside a throwing subscriber', deliverWithin, () => rb.messages.length === 1 && thrown === 1)
      const p = await settlesWithin('publish after a subscriber threw', failWithin, a.publish(ch, bytes('two')))
      assert.equal(p.ok, true, `publish after a subscriber threw: ${p.ok ? '' : String(p.error)}`)
      const q = await settlesWithin('publish by the transport whose subscriber threw', failWithin, b.publish(ch, bytes('three')))
      assert.equal(q.ok, true, `publish by the transport whose subscriber threw: ${q.ok ? '' : String(q.error)}`)
      await waitFor('later payloads', deliverWithin, () => rb.messages.length === 3)
      assert.deepEqual(
        rb.messages.map((m) => text.decode(m)),
        ['one', 'two', 'three'],
      )
    })

    test('bad input: a channel that is not a non-empty string, a payload that is not bytes, callbacks that are not functions are ERR_INVALID_OPTIONS; the transport still works', async () => {
      const a = await transport()
      const ch = channel()
      const invalid = (what: string, r: { ok: true } | { ok: false; error: unknown }): void => {
        assert.ok(!r.ok && isCacheError(r.error, 'ERR_INVALID_OPTIONS'), `${target.name}: ${what}: ${r.ok ? 'accepted' : String(r.error)}`)
      }
      const noop = (): void => {}
      for (const bad of ['', 5, null, undefined]) {
        const c = bad as unknown as string
        invalid(`subscribe(${String(bad)})`, await settlesWithin('subscribe to a bad channel', failWithin, a.subscribe(c, noop, noop)))
        invalid(`publish(${String(bad)})`, await settlesWithin('publish to a bad channel', failWithin, a.publish(c, bytes('x'))))
      }
      for (const bad of ['text', null, undefined, 5, [1, 2]]) {
        invalid(`publish(ch, ${String(bad)})`, await settlesWithin('publish of a bad payload', failWithin, a.publish(ch, bad as unknown as Uint8Array)))
      }
      for (const bad of [5, null, undefined]) {
        const f = bad as unknown as () => void
        invalid('subscribe(ch, <not a function>, onState)', await settlesWithin('subscribe with a bad onMessage', failWithin, a.subscribe(ch, f, noop)))
        invalid('subscribe(ch, onMessage, <not a function>)', await settlesWithin('subscribe with a bad onState', failWithin, a.subscribe(ch, noop, f)))
      }
      const r = await subscribe(a, ch)
      await a.publish(ch, bytes('still fine'))
      await waitFor('delivery after bad input', deliverWithin, () => r.messages.length === 1)
    })

    test("resubscribe(), where offered: 'down', then 'up' once receiving again, then delivery", async (t) => {
      const a = await transport()
      if (a.resubscribe === undefined) {
        t.skip(`${target.name} offers no resubscribe()`)
        return
      }
      const b = await transport()
      const ch = channel()
      const ra = await subscribe(a, ch)
      a.resubscribe()
      await waitFor("'down' then 'up' after resubscribe()", reconnectWithin, () => ra.states.join(',') === 'down,up')
      await b.publish(ch, bytes('after resubscribe'))
      await waitFor('delivery after resubscribe()', deliverWithin, () => ra.messages.length === 1)
      assert.equal(text.decode(ra.messages[0]), 'after resubscribe')
    })

    describe('broker faults (run last; the broker is always restarted)', () => {
      test("broker killed: 'down', publish rejects without hanging; restarted: 'up' and delivery resumes", async () => {
        const a = await transport()
        const b = await transport()
        const ch = channel()
        const ra = await subscribe(a, ch)
        const rb = await subscribe(b, ch)
        await a.publish(ch, bytes('before'))
        await waitFor('delivery before the fault', deliverWithin, () => rb.messages.length === 1 && ra.messages.length === 1)
        await target.kill()
        try {
          await waitFor("'down' on both subscriptions after the broker died", downWithin, () => ra.states.includes('down') && rb.states.includes('down'))
          const p = await settlesWithin('publish while the broker is down', failWithin, a.publish(ch, bytes('lost')))
          assert.equal(p.ok, false, 'publish rejects while the broker is down')
          if (!p.ok) assert.ok(isCacheError(p.error, 'ERR_BUS_UNAVAILABLE') || isCacheError(p.error, 'ERR_CLOSED') || p.error instanceof Error)
        } finally {
          await target.restart()
        }
        await waitFor("'up' on both subscriptions after the restart", reconnectWithin, () => ra.states.at(-1) === 'up' && rb.states.at(-1) === 'up')
        assert.equal(ra.states[ra.states.indexOf('down') + 1], 'up', "'up' follows 'down'")
        // Publishing may need the publisher's own reconnect: retry until accepted.
        const deadline = clock.now() + reconnectWithin
        for (;;) {
          try {
            await a.publish(ch, bytes('after'))
            break
          } catch (err) {
            if (clock.now() > deadline) throw err
            await sleep(100)
          }
        }
        await waitFor('delivery after the restart', deliverWithin, () => rb.messages.some((m) => text.decode(m) === 'after'))
        // Each subscriber's delivery is independent: the publisher's own copy may come later.
        await waitFor('the publisher hears itself again too', deliverWithin, () => ra.messages.some((m) => text.decode(m) === 'after'))
        assert.ok(!rb.messages.some((m) => text.decode(m) === 'lost'), 'a rejected publish was not delivered')
      })

      test('subscribe while the broker is down rejects within the bound (the Bus retries it)', async () => {
        await target.kill()
        try {
          const t = await transport()
          const r = await settlesWithin(
            'subscribe while the broker is down',
            failWithin,
            t.subscribe(
              channel(),
              () => {},
              () => {},
            ),
          )
          assert.equal(r.ok, false, 'subscribe rejects while the broker is down')
          const p = await settlesWithin('publish on a never-connected transport', failWithin, t.publish(channel(), bytes('x')))
          assert.equal(p.ok, false)
        } finally {
          await target.restart()
        }
        // A transport opened after the restart works.
        const deadline = clock.now() + reconnectWithin
        const a = await transport()
        const ch = channel()
        let r: Awaited<ReturnType<typeof subscribe>> | undefined
        while (r === undefined) {
          try {
            r = await subscribe(a, ch)
          } catch (err) {
            if (clock.now() > deadline) throw err
            await sleep(100)
          }
        }
        const got = r
        const b = await transport()
        for (;;) {
          try {
            await b.publish(ch, bytes('back'))
            break
          } catch (err) {
            if (clock.now() > deadline) throw err
            await sleep(100)
          }
        }
        await waitFor('delivery after the restart', deliverWithin, () => got.messages.length >= 1)
      })
    })
  })
}
