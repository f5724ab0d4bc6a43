// Overload: more concurrent clients than the concurrency bound, over real sockets, with a
// slow store so requests stay in flight. Expected: some 503 ERR_BUSY at once (never
// queued), every request answered within the stated bound, memory bounded, the node
// correct afterwards.
import assert from 'node:assert/strict'
import { Agent, request } from 'node:http'
import { after, describe, test } from 'node:test'
import { memoryStore } from '../../src/store/memory-store.js'
import { startNode, type NodeHandle, type NodeOptions } from '../../src/server/index.js'
import { errorCode, slowStore } from '../support/node-fixtures.js'

const CLIENTS = 64
const BOUND = 8
const STORE_DELAY_MS = 20
const RUN_MS = 2500
const KEYS = 20
/** The stated bound: no request waits longer (a 503 is immediate; admitted work is a few store calls). */
const MAX_LATENCY_MS = 5000

const silent: NonNullable<NodeOptions['logger']> = { info: () => undefined, warn: () => undefined, error: () => undefined }
let node: NodeHandle | undefined
const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS })
after(async () => {
  agent.destroy()
  await node?.close()
})

function call(n: NodeHandle, method: string, path: string, body?: Buffer): Promise<{ status: number; body: Buffer; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: n.host, port: n.port, method, path, agent }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), retryAfter: res.headers['retry-after'] as string | undefined }))
    })
    req.setTimeout(MAX_LATENCY_MS * 2, () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end(body)
  })
}

describe('node under overload', () => {
  test(`${CLIENTS} clients against a bound of ${BOUND}: fast 503s, bounded latency and memory`, async (t) => {
    node = await startNode({ port: 0, store: slowStore(memoryStore({ maxEntries: 10_000 }), STORE_DELAY_MS), maxInFlight: BOUND, logger: silent, memory: '16mb' })
    const n = node
    const value = Buffer.alloc(100, 7)
    for (let i = 0; i < KEYS; i++) assert.equal((await call(n, 'PUT', `/v1/keys/k${i}`, value)).status, 200)
    globalThis.gc?.()
    const heapBefore = process.memoryUsage().heapUsed
    const counts = new Map<number, number>()
    let maxLatency = 0
    let maxBusyLatency = 0
    const deadline = Date.now() + RUN_MS
    const client = async (c: number): Promise<void> => {
      for (let i = 0; Date.now() < deadline; i++) {
        const write = (i + c) % 4 === 0
        const t0 = performance.now()
        const r = write ? await call(n, 'PUT', `/v1/keys/k${(i * 7 + c) % KEYS}`, value) : await call(n, 'GET', `/v1/keys/k${(i * 13 + c) % KEYS}`)
        const ms = performance.now() - t0
        maxLatency = Math.max(maxLatency, ms)
        counts.set(r.status, (counts.get(r.status) ?? 0) + 1)
        if (r.status === 503) {
          maxBusyLatency = Math.max(maxBusyLatency, ms)
          assert.equal(errorCode(r.body), 'ERR_BUSY')
          assert.equal(r.retryAfter, '1')
        } else {
          assert.equal(r.status, 200, r.body.toString())
        }
      }
    }
    await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)))
    globalThis.gc?.()
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore
    t.diagnostic(`statuses ${JSON.stringify(Object.fromEntries(counts))}; max latency ${maxLatency.toFixed(0)} ms (503s: ${maxBusyLatency.toFixed(0)} ms); heap growth ${(heapGrowth / 1e6).toFixed(1)} MB`)
    assert.ok((counts.get(503) ?? 0) > 0, 'some requests were turned away')
    assert.ok((counts.get(200) ?? 0) > 0, 'some requests were served')
    assert.ok(maxLatency < MAX_LATENCY_MS, `every request answered within ${MAX_LATENCY_MS} ms (max ${maxLatency.toFixed(0)} ms)`)
    assert.ok(heapGrowth < 64e6, `heap stays bounded (grew ${(heapGrowth / 1e6).toFixed(1)} MB)`)
    const stats = n.stats()
    assert.equal(stats.node.inFlight, 0, 'nothing left in flight')
    assert.equal(stats.requests.busy, counts.get(503) ?? 0)
    // Correct afterwards.
    assert.equal((await call(n, 'PUT', '/v1/keys/after', Buffer.from('ok'))).status, 200)
    assert.equal((await call(n, 'GET', '/v1/keys/after')).body.toString(), 'ok')
  })
})
