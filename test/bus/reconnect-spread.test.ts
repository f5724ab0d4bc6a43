/**
 * A broker restart under 20 subscribers, each a transport with its own connections (as 20
 * processes would have): after the restart their reconnects must spread out, not arrive
 * in one burst. Real redis-server and nats-server, killed (SIGKILL) and restarted on the
 * same port.
 *
 * What the assertions measure. Each subscriber records when it reports 'up' again (its
 * subscription is receiving). Without jitter every subscriber runs the same schedule from
 * the same instant (the kill), so they all dial at the same moment after the restart and
 * come back together. Measured on the code before core/backoff.ts (load average 12 on 2
 * cores): busiest 50 ms window 19-20 of 20, middle 80 % within 3-32 ms (Redis and NATS).
 * With the shared ±25 % jitter each subscriber's dial times drift apart with every failed
 * attempt made while the broker is away: busiest window 4-7, middle 80 % over 340-460 ms.
 * - The busiest 50 ms window must hold at most half of the subscribers. Load on the test
 *   machine cannot fake a spread here: a stalled event loop delays every timer together
 *   (lockstep stays lockstep), and a few sockets served late leave the busiest window of
 *   a lockstep herd still nearly full.
 * - The middle 80 % of reconnect times (10th to 90th percentile) spans at least 150 ms,
 *   which one straggler cannot produce either.
 * - The other way round, a stall can fake lockstep: timers that came due during it fire
 *   together. A run that shows lockstep while this process stalled 100 ms or more between
 *   the restart and the last reconnect proves nothing; it is run again (at most 3 runs).
 *   Lockstep with no such stall fails at once.
 * The jitter is drawn from a SeededRandom per subscriber, so the spread does not depend
 * on luck: the draws are the same on every run; only which attempt meets the returning
 * broker depends on the machine, and any attempt number gives a spread well past the
 * bounds (the 4th attempt after a 1 s outage lands over [1125, 1875] ms).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { natsTransport } from '../../src/bus/nats-transport.js'
import { redisTransport } from '../../src/bus/redis-transport.js'
import type { BusTransport } from '../../src/bus/types.js'
import { SeededRandom } from '../../src/core/random.js'
import { NatsServer } from '../support/nats-server.js'
import { RedisServer, startRedisServer } from '../support/redis-server.js'
import { until } from '../support/until.js'
import { stallMeter } from '../support/stall-meter.js'

const SUBSCRIBERS = 20
/** How long the broker stays down: long enough for a few failed attempts each. */
const DOWN_MS = 1_000
const WINDOW_MS = 50
const MIN_MIDDLE_SPREAD_MS = 150

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))


interface Broker {
  kill(): Promise<void>
  restart(): Promise<void>
}

interface Spread {
  /** Reconnect times (ms after the restart completed), sorted. */
  readonly times: number[]
  readonly busiestWindow: number
  readonly middleSpread: number
  /** Milliseconds this process was stalled between the restart and the last reconnect. */
  readonly stalledMs: number
}

/** Subscribes 20 transports, kills the broker, restarts it after DOWN_MS, and measures when each is back. */
async function restartUnder(broker: Broker, open: (i: number) => BusTransport): Promise<Spread> {
  const transports = Array.from({ length: SUBSCRIBERS }, (_, i) => open(i))
  const state: Array<'up' | 'down'> = transports.map(() => 'up')
  const upAt: number[] = transports.map(() => NaN)
  try {
    await Promise.all(
      transports.map((t, i) =>
        t.subscribe(
          'spread',
          () => {},
          (s) => {
            state[i] = s
            if (s === 'up') upAt[i] = performance.now()
          },
        ),
      ),
    )
    const killedAt = performance.now()
    await broker.kill()
    await until("every subscriber 'down'", 10_000, () => state.every((s) => s === 'down'))
    await sleep(Math.max(0, killedAt + DOWN_MS - performance.now()))
    const meter = stallMeter()
    await broker.restart()
    const restartedAt = performance.now()
    await until("every subscriber 'up' again", 20_000, () => state.every((s) => s === 'up'))
    meter.stop()
    const times = upAt.map((t) => t - restartedAt).sort((a, b) => a - b)
    let busiestWindow = 0
    for (let i = 0; i < times.length; i++) {
      let j = i
      while (j < times.length && times[j] - times[i] <= WINDOW_MS) j++
      busiestWindow = Math.max(busiestWindow, j - i)
    }
    const middleSpread = times[Math.floor(0.9 * (times.length - 1))] - times[Math.ceil(0.1 * (times.length - 1))]
    return { times, busiestWindow, middleSpread, stalledMs: meter.stalledMs }
  } finally {
    await Promise.all(transports.map((t) => t.close().catch(() => {})))
  }
}

/** A stall of this process at least this long during a run can fake lockstep (see the file comment). */
const STALL_VOIDS_RUN_MS = 100
const RUNS = 3

/**
 * Runs `restartUnder` until a run spreads (at most RUNS); asserts the spread of the last run.
 * Returns the measurements as text (a test diagnostic).
 */
async function assertSpreads(name: string, run: (attempt: number) => Promise<Spread>): Promise<string> {
  const shown: string[] = []
  for (let attempt = 0; ; attempt++) {
    const spread = await run(attempt)
    const text = `${name}: reconnects at ${JSON.stringify(spread.times.map(Math.round))} ms after the restart; busiest ${WINDOW_MS} ms window ${spread.busiestWindow}, middle 80 % over ${Math.round(spread.middleSpread)} ms; stalled ${Math.round(spread.stalledMs)} ms`
    shown.push(text)
    const spreads = spread.busiestWindow <= SUBSCRIBERS / 2 && spread.middleSpread >= MIN_MIDDLE_SPREAD_MS
    if (spreads || spread.stalledMs < STALL_VOIDS_RUN_MS || attempt === RUNS - 1) {
      assert.ok(spread.busiestWindow <= SUBSCRIBERS / 2, `lockstep: ${shown.join(' | ')}`)
      assert.ok(spread.middleSpread >= MIN_MIDDLE_SPREAD_MS, `lockstep: ${shown.join(' | ')}`)
      return shown.join(' | ')
    }
  }
}

describe('a broker restart under 20 subscribers: reconnects spread out (jittered backoff)', () => {
  let redis: RedisServer | undefined
  let nats: NatsServer | undefined
  before(async () => {
    redis = await startRedisServer()
    nats = await NatsServer.start()
  })
  after(async () => {
    await redis?.stop()
    await nats?.stop()
  })

  test('redis', async (t) => {
    const server = redis as RedisServer
    t.diagnostic(await assertSpreads('redis', () => restartUnder(server, (i) => redisTransport({ url: server.url, random: new SeededRandom(1_000 + i) }))))
  })

  test('nats', async (t) => {
    const server = nats as NatsServer
    t.diagnostic(await assertSpreads('nats', () => restartUnder(server, (i) => natsTransport({ servers: server.url, random: new SeededRandom(2_000 + i) }))))
  })
})
