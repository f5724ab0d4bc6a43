/**
 * What the cross-process coherence tests share (test/e2e/bus-coherence.test.ts on Redis,
 * test/e2e/etcd-coherence.test.ts on etcd's watch stream), the bus a parameter: spawning
 * worker processes (test/e2e/fixtures/coherence-worker.ts), asking them over IPC, the rounds
 * in which one process writes while the others watch, and closing them all.
 */
import assert from 'node:assert/strict'
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const WORKER = fileURLToPath(new URL('../e2e/fixtures/coherence-worker.js', import.meta.url))

/** Which bus the workers run: Redis pub/sub (`url`, `channel`) or etcd's watch (`endpoints`, `namespace`). */
export type CoherenceBus = { readonly kind: 'redis'; readonly url: string; readonly channel: string } | { readonly kind: 'etcd'; readonly endpoints: readonly string[]; readonly namespace: string }

export type CoherenceStats = { bus: { gaps: number; received: number; published: number; flushes: number; l1Flushes: number; tagsObserved?: number }; healthy: boolean }

/** Sends `message` and waits for the worker's next reply. */
export function ask<T>(child: ChildProcess, message: unknown, timeoutMs = 15_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker ${child.pid} did not answer ${JSON.stringify(message)} within ${timeoutMs} ms`)), timeoutMs)
    child.once('message', (reply) => {
      clearTimeout(timer)
      resolve(reply as T)
    })
    child.send(message as object)
  })
}

export const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number

/** The workers of one test file: `spawn` starts one on a bus, `close` ends them all (in `after`). */
export class CoherenceWorkers {
  readonly #children: ChildProcess[] = []

  /** Forks a worker on `bus` and waits for its 'ready' (`startMs` at most). */
  async spawn(bus: CoherenceBus, startMs = 15_000): Promise<ChildProcess> {
    const args = bus.kind === 'redis' ? ['redis', bus.url, bus.channel] : ['etcd', bus.endpoints.join(','), bus.namespace]
    const child = fork(WORKER, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.#children.push(child)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker did not start within ${startMs / 1000} s`)), startMs)
      child.once('message', () => {
        clearTimeout(timer)
        resolve()
      })
      child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)))
    })
    return child
  }

  /** Asks each to close, gives them 300 ms, then kills what is left. */
  async close(): Promise<void> {
    for (const c of this.#children) if (c.connected) c.send('close')
    await new Promise((resolve) => setTimeout(resolve, 300))
    for (const c of this.#children) c.kill('SIGKILL')
  }
}

/**
 * `rounds` rounds over `workers` (after they all read an initial value): in each, one writes
 * (in turn) while the others watch the key; every reader must serve the new value (within
 * its 10 s watch) and, read again, still serve it. `beforeRound` runs first in each round.
 * Returns the propagation delays (ms from the write's resolution to each reader's first
 * serve of it), sorted.
 */
export async function writeRounds(workers: readonly ChildProcess[], rounds: number, beforeRound?: (round: number) => Promise<void>): Promise<number[]> {
  // Everyone holds the key in L1.
  await ask(workers[0] as ChildProcess, { op: 'set', key: 'k', value: 'v-init' })
  for (const w of workers) assert.notEqual((await ask<{ at: number }>(w, { op: 'watch', key: 'k', value: 'v-init', timeoutMs: 5_000 })).at, -1, 'every worker reads the initial value')
  const delays: number[] = []
  for (let round = 0; round < rounds; round++) {
    await beforeRound?.(round)
    const writer = workers[round % workers.length] as ChildProcess
    const readers = workers.filter((w) => w !== writer)
    const value = `v${round}`
    // Readers start watching before the write lands: they see the old value until the message.
    const watching = readers.map((r) => ask<{ at: number; stale: number }>(r, { op: 'watch', key: 'k', value, timeoutMs: 10_000 }))
    const { at } = await ask<{ at: number }>(writer, { op: 'set', key: 'k', value })
    const seen = await Promise.all(watching)
    for (const s of seen) {
      assert.notEqual(s.at, -1, `round ${round}: a reader never saw ${value}`)
      delays.push(Math.max(0, s.at - at))
    }
    for (const r of readers) assert.equal((await ask<{ value: string }>(r, { op: 'get', key: 'k' })).value, value, `round ${round}: once switched, never back`)
  }
  return delays.sort((a, b) => a - b)
}
