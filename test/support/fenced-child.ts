/**
 * The parent's side of the paused-holder tests: forks test/e2e/fixtures/fenced-worker.js
 * (a cache with `lock: 'distributed'` on Redis or etcd) and talks to it over IPC.
 */
import assert from 'node:assert/strict'
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
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
