/**
 * The parent's side of the paused-holder tests: forks test/e2e/fixtures/fenced-worker.js
 * (a cache with `lock: 'distributed'` on Redis or etcd) and talks to it over IPC.
 */
import assert from 'node:assert/strict'
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createCache } from '../../src/cache/cache.js'
import type { Store } from '../../src/store/types.js'
import type { FencedReply, FencedRequest } from '../e2e/fixtures/fenced-worker.js'

export type FencedStats = Extract<FencedReply, { op: 'stats' }>

export interface FencedChild {
  readonly child: ChildProcess
  /** The next reply, which must be `op`; rejects after `replyTimeoutMs` (a hang). */
  next(op: FencedReply['op']): Promise<FencedReply>
  ask(m: FencedRequest): void
}

const WORKER = fileURLToPath(new URL('../e2e/fixtures/fenced-worker.js', import.meta.url))

/** argv as fenced-worker.ts documents it: `redis <url> <prefix> <leaseMs> <waitMs>` or `etcd <endpoints> <namespace> …`. */
export function spawnFencedWorker(args: readonly string[], replyTimeoutMs: number): FencedChild {
  const child = fork(WORKER, [...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const replies: FencedReply[] = []
  const waiting: ((r: FencedReply) => void)[] = []
  child.on('message', (m: FencedReply) => {
    const w = waiting.shift()
    if (w === undefined) replies.push(m)
    else w(m)
  })
  const next = async (op: FencedReply['op']): Promise<FencedReply> => {
    let got = replies.shift()
    if (got === undefined) {
      let timer: NodeJS.Timeout | undefined
      try {
        got = await Promise.race([
          new Promise<FencedReply>((resolve) => waiting.push(resolve)),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no reply from ${child.pid} within ${replyTimeoutMs} ms (expected ${op})`)), replyTimeoutMs)
          }),
        ])
      } finally {
        clearTimeout(timer)
      }
    }
    assert.equal(got.op, op, `expected ${op} from ${child.pid}, got ${JSON.stringify(got)}`)
    return got
  }
  return { child, next, ask: (m) => child.send(m) }
}

export type HolderRival = 'compute' | 'set' | 'delete'

export interface PausedHolderOptions {
  /** The worker's argv (see spawnFencedWorker) for a store under `prefix`. */
  readonly args: readonly string[]
  /** A store on the same backend and prefix, to read what L2 ended with (closed here). */
  readonly reader: Store
  readonly leaseMs: number
  readonly bDoes: HolderRival
  readonly replyTimeoutMs: number
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The audit's paused-holder scenario, on any store that locks: process A takes the lock and
 * is SIGSTOPped inside its factory; B computes `newer` (or sets it, or deletes the key);
 * after a set or delete A stays frozen past its lease; A is resumed and its late fenced
 * write must be refused: L2, A and B all end with what B did. Returns both processes'
 * lock counters and how long B took.
 */
export async function pausedHolder(o: PausedHolderOptions): Promise<{ a: FencedStats; b: FencedStats; bMs: number }> {
  const expected = o.bDoes === 'delete' ? undefined : 'newer'
  const a = spawnFencedWorker(o.args, o.replyTimeoutMs)
  const b = spawnFencedWorker(o.args, o.replyTimeoutMs)
  const l2 = createCache<string>({ store: o.reader })
  // The reader's first store call may load the client (etcd3 pulls in grpc-js) and connect:
  // done now, so the final read is not the one paying it within the facade's L2 timeout.
  await o.reader.get('warm-up')
  try {
    await a.next('ready')
    await b.next('ready')
    a.ask({ op: 'compute', key: 'k', value: 'older', factoryMs: 300 })
    await a.next('in-factory')
    a.child.kill('SIGSTOP') // A holds the lock, frozen inside its factory
    const start = performance.now()
    if (o.bDoes === 'compute') {
      b.ask({ op: 'compute', key: 'k', value: 'newer', factoryMs: 50 })
      await b.next('in-factory')
      assert.deepEqual(await b.next('computed'), { op: 'computed', value: 'newer' })
    } else {
      b.ask(o.bDoes === 'set' ? { op: 'set', key: 'k', value: 'newer' } : { op: 'delete', key: 'k' })
      await b.next('done')
      // A stays frozen past its lease, as in the audit.
      await sleep(o.leaseMs * 1.5)
    }
    const bMs = performance.now() - start
    a.child.kill('SIGCONT')
    assert.deepEqual(await a.next('computed'), { op: 'computed', value: 'older' }, 'A\'s own callers get what its factory returned')
    assert.equal(await l2.get('k'), expected, `L2 keeps what B did (${o.bDoes})`)
    for (const [name, p] of [['A', a], ['B', b]] as const) {
      p.ask({ op: 'get', key: 'k' })
      // (IPC drops an undefined field: compare the value, not the message.)
      const got = (await p.next('got')) as Extract<FencedReply, { op: 'got' }>
      assert.equal(got.value, expected, `${name} serves what B did (${o.bDoes})`)
    }
    const stats = async (p: FencedChild): Promise<FencedStats> => {
      p.ask({ op: 'stats' })
      return (await p.next('stats')) as FencedStats
    }
    return { a: await stats(a), b: await stats(b), bMs }
  } finally {
    for (const p of [a, b]) {
      p.child.kill('SIGCONT')
      if (p.child.connected) p.ask({ op: 'close' })
    }
    await Promise.all([a, b].map((p) => (p.child.exitCode === null ? exitWithin(p.child, 5_000) : undefined)))
    await l2.close()
    await o.reader.close()
  }
}

/** Waits for the child's exit; SIGKILLs it after `ms`. */
async function exitWithin(child: ChildProcess, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
    timer = setTimeout(() => {
      child.kill('SIGKILL')
      resolve()
    }, ms)
  })
  clearTimeout(timer)
}
