// Real node processes (`npm start`'s entry) replicating on loopback: 6 nodes in 3 regions,
// every cluster connection through a fault-injecting proxy (test/support/cluster-link-proxy.ts;
// each node advertises its proxy with --advertise-cluster-port). Clients write with ack
// levels one/region/all to several nodes and keep a history of what was acknowledged
// (unique keys, some deleted again, some expiring after 1 s, and hot keys every client writes).
// 1. kill -9 one node under write load, restart it (same data dir): every node's
//    GET /v1/cluster/digest is equal within the stated bound, and the history holds on every
//    node (each acknowledged write there at its version or newer; deleted keys stay deleted).
// 2. one region cut off from the other two (all cluster traffic of the links between them,
//    both directions): both sides keep serving reads and writes to their own clients; after
//    healing, digests are equal within the stated bound, and for every key the latest
//    acknowledged version (or a newer one) wins on every node.
// The measured convergence times and the load average are printed as diagnostics.
import assert from 'node:assert/strict'
import { cpus, loadavg } from 'node:os'
import { after, describe, test } from 'node:test'
import { detectionBoundMs } from '../../src/cluster/index.js'
import { ClusterProcess } from '../support/cluster-process.js'
import { LinkProxy, LinkRules } from '../support/cluster-link-proxy.js'
import { send, tempDir } from '../support/node-fixtures.js'
import { freePort, waitUntil } from '../support/server-process.js'

const SECRET = 'e2e-cluster-secret-0123456789abcdef'
/** FAST_CLUSTER_FLAGS' membership timings, as options (for the detection bound). */
const DETECT_MS = Math.ceil(detectionBoundMs({
  heartbeatIntervalMs: 250,
  phi: { acceptableHeartbeatPauseMs: 500, minStdDeviationMs: 250, firstHeartbeatEstimateMs: 250 },
  indirectTimeoutMs: 250,
  suspicionTimeoutMs: 750,
}, 500))
/** The transport's reconnect backoff ceiling with its +25 % jitter: a peer that was unreachable may wait this long before it dials again. */
const RECONNECT_MS = 10_000 * 1.25
/** One anti-entropy period with its jitter (the node's default, 10 s ± 10 %): the round that finds what a lost message missed. */
const ROUND_MS = 10_000 * 1.1
/** Repair ships at most 1,000 records per round; the next round follows 200 ms later. */
const repairMs = (records: number): number => Math.ceil(records / 1000) * 200
/**
 * Convergence bound once the faults end: the chain redial (backoff ceiling) + detection of the
 * rejoin + one anti-entropy period + the throttled repair of everything written. The machine's
 * load stretches every timer hop; over twice the cores (decision 0205) half the bound more is allowed.
 */
const convergeBound = (records: number): number => RECONNECT_MS + DETECT_MS + ROUND_MS + repairMs(records)
const OVERLOADED = (): boolean => loadavg()[0] > 2 * cpus().length
const allowance = (bound: number): number => (OVERLOADED() ? Math.ceil(bound / 2) : 0) + 200

const dirs: Array<{ remove: () => void }> = []
const all: ClusterProcess[] = []
const proxies: LinkProxy[] = []
after(async () => {
  await Promise.all(all.map((n) => n.kill()))
  await Promise.all(proxies.map((p) => p.close()))
  for (const d of dirs) d.remove()
})

const etag = (h: string | string[] | undefined): number => Number(String(h).replace(/"/g, ''))

type Ack = 'one' | 'region' | 'all'
interface Acked {
  readonly key: string
  readonly version: number
  readonly ack: Ack
  /** The node that acknowledged it. */
  readonly node: string
  /** Deleted afterwards (acknowledged), never written again: must read 404 everywhere. */
  deleted?: boolean
}

/** Acknowledged writes, and what did not get an acknowledgement. */
class History {
  readonly acked: Acked[] = []
  readonly hot = new Map<string, number>()
  timeouts = 0
  failed = 0
  deletes = 0
  /** Acknowledged writes with a 1 s TTL (expired by the time digests are compared). */
  expiring = 0

  /** The highest acknowledged version of each key written by several clients. */
  maxHot(key: string, version: number): void {
    this.hot.set(key, Math.max(this.hot.get(key) ?? 0, version))
  }
}

interface Writer {
  readonly stop: () => Promise<void>
}

/**
 * A client: writes round-robin to `targets()` (its nodes, HTTP), ack level rotating
 * one/region/all; unique keys, some deleted again (never rewritten), and hot keys every client
 * overwrites. Only 200 answers enter the history; 504 (ack timeout) and errors are counted.
 */
function writer(name: string, targets: () => ClusterProcess[], history: History, hotKeys: readonly string[]): Writer {
  let stopped = false
  const own: Acked[] = []
  /** The session token: the highest node clock this client has seen (so its delete is versioned after its put, whichever node takes it). */
  let token = 0
  const call = async (target: ClusterProcess, method: string, path: string, body?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined> } | undefined> => {
    try {
      const r = await send(target.url, method, path, body, token > 0 ? { 'x-stratacache-token': String(token) } : {}, 4000)
      token = Math.max(token, Number(r.headers['x-stratacache-token'] ?? 0))
      return r
    } catch {
      return undefined // a killed node's connections die with it: not acknowledged
    }
  }
  const run = (async (): Promise<void> => {
    for (let i = 0; !stopped; i++) {
      const list = targets()
      const target = list[i % list.length]!
      const ack: Ack = (['one', 'region', 'all'] as const)[i % 3]!
      if (i % 9 === 4 && own.length > 4) {
        const victim = own.shift()!
        const r = await call(target, 'DELETE', `/v1/keys/${victim.key}?ack=${ack}`)
        if (r?.status === 200) {
          victim.deleted = true
          history.deletes++
          continue
        }
        // Maybe committed, not acknowledged: the key's fate is open, so it leaves the history.
        history.acked.splice(history.acked.indexOf(victim), 1)
        if (r?.status === 504) history.timeouts++
        else history.failed++
        continue
      }
      if (i % 11 === 7) {
        // Expires in a second: by the digest check it is the tombstone of its version everywhere (not in the history).
        const r = await call(target, 'PUT', `/v1/keys/${name}-e${i}?ack=${ack}&ttl=1`, 'short')
        if (r?.status === 200) history.expiring++
        continue
      }
      const hot = i % 4 === 0
      const key = hot ? hotKeys[(i / 4) % hotKeys.length]! : `${name}-${i}`
      const r = await call(target, 'PUT', `/v1/keys/${key}?ack=${ack}`, `${name}:${i}`)
      if (r?.status === 200) {
        const a: Acked = { key, version: etag(r.headers.etag), ack, node: target.id }
        history.acked.push(a)
        if (hot) history.maxHot(key, a.version)
        else own.push(a)
      } else if (r?.status === 504) history.timeouts++
      else history.failed++
    }
  })()
  return {
    stop: async () => {
      stopped = true
      await run
    },
  }
}

interface Digest {
  readonly self: string
  readonly digest: string
  readonly count: number
  readonly meta: string
}

async function digestOf(node: ClusterProcess): Promise<Digest | undefined> {
  try {
    const r = await send(node.url, 'GET', '/v1/cluster/digest', undefined, {}, 3000)
    return r.status === 200 ? (JSON.parse(r.body.toString()) as Digest) : undefined
  } catch {
    return undefined
  }
}

/** Waits until every node answers the same digest, count and meta; returns how long that took. */
async function converge(nodes: ClusterProcess[], bound: number, what: string): Promise<number> {
  const t0 = Date.now()
  let last: Array<Digest | undefined> = []
  await waitUntil(
    async () => {
      last = await Promise.all(nodes.map((n) => digestOf(n)))
      const first = last[0]
      return first !== undefined && last.every((d) => d !== undefined && d.digest === first.digest && d.count === first.count && d.meta === first.meta)
    },
    bound + allowance(bound) + 5_000,
    () => `${what}: digests not equal: ${last.map((d) => (d === undefined ? '?' : `${d.self} ${d.digest}/${d.count}`)).join(', ')}`,
    100,
  )
  return Date.now() - t0
}

/** Checks the history on every node; returns the violations (empty: nothing lost, nothing resurrected, the latest version wins). */
async function violations(nodes: ClusterProcess[], history: History): Promise<string[]> {
  const out: string[] = []
  const hotSeen = new Map<string, Set<number>>()
  for (const n of nodes) {
    for (let i = 0; i < history.acked.length; i += 48) {
      const batch = history.acked.slice(i, i + 48)
      const replies = await Promise.all(batch.map((a) => send(n.url, 'GET', `/v1/keys/${a.key}`, undefined, { 'x-stratacache-min-version': String(a.version) }, 5000)))
      replies.forEach((r, j) => {
        const a = batch[j]!
        const at = `${n.id}:${a.key}@${a.version}(${a.ack})`
        if (a.deleted === true) {
          if (r.status !== 404) out.push(`${at} deleted, answered ${r.status}${r.status === 200 ? ' (resurrected)' : ''}`)
          return
        }
        if (r.status !== 200) {
          out.push(`${at} answered ${r.status}`)
          return
        }
        const have = etag(r.headers.etag)
        if (have < a.version) out.push(`${at} holds ${have}`)
        const hot = history.hot.get(a.key)
        if (hot !== undefined) {
          if (have < hot) out.push(`${at}: the latest acknowledged version ${hot} lost, holds ${have}`)
          let seen = hotSeen.get(a.key)
          if (seen === undefined) hotSeen.set(a.key, (seen = new Set()))
          seen.add(have)
        }
      })
    }
  }
  for (const [key, versions] of hotSeen) if (versions.size > 1) out.push(`${key}: nodes disagree on its version (${[...versions].join(', ')})`)
  return out
}

describe('replication under faults with real processes on loopback', () => {
  test('6 nodes in 3 regions: kill -9 under load and restart converges; a region cut off keeps serving and converges after healing; no acknowledged write lost', async (t) => {
    const layout: Array<[string, string]> = [['a1', 'london'], ['a2', 'london'], ['b1', 'paris'], ['b2', 'paris'], ['c1', 'tokyo'], ['c2', 'tokyo']]
    const rules = new LinkRules()
    const httpPorts = await Promise.all(layout.map(() => freePort()))
    const clusterPorts = await Promise.all(layout.map(() => freePort()))
    for (const [i, [id]] of layout.entries()) proxies.push(await LinkProxy.start(rules, id, clusterPorts[i]!))
    // Seeds: one node per region (HTTP, never cut), so either side finds the other again after a cut.
    const seeds = [0, 2, 4].map((i) => `127.0.0.1:${httpPorts[i]}`).join(',')
    const nodes = layout.map(([id, region], i) => {
      const d = tempDir(`stratacache-cut-${id}-`)
      dirs.push(d)
      const n = new ClusterProcess(id, region, httpPorts[i]!, d.path, seeds, SECRET, { clusterPort: clusterPorts[i]!, advertiseClusterPort: proxies[i]!.port })
      all.push(n)
      return n
    })
    const started = Date.now()
    await Promise.all(nodes.map((n) => n.start()))
    await waitUntil(async () => (await Promise.all(nodes.map((n) => n.aliveCount()))).every((c) => c === 6), 20_000, () => 'all 6 joined', 100)
    const view = JSON.parse((await send(nodes[0]!.url, 'GET', '/v1/cluster')).body.toString()) as { regions: Array<{ members: Array<{ id: string; clusterAddress: string }> }> }
    const advertised = view.regions.flatMap((r) => r.members).find((m) => m.id === 'c1')?.clusterAddress
    assert.equal(advertised, `127.0.0.1:${proxies[4]!.port}`, 'peers dial c1 through its proxy (--advertise-cluster-port)')
    t.diagnostic(`6 nodes up and joined in ${Date.now() - started} ms; detection bound ${DETECT_MS} ms; load average ${loadavg()[0].toFixed(1)} on ${cpus().length} cores`)

    const hotKeys = ['hot0', 'hot1', 'hot2', 'hot3']

    // ---- 1. kill -9 under write load, restart --------------------------------------------------
    const h1 = new History()
    const victim = nodes[3]! // b2
    let victimDown = false
    const writers1 = nodes.map((_, w) => writer(`k${w}`, () => {
      const list = victimDown ? nodes.filter((n) => n !== victim) : nodes
      return [...list.slice(w % list.length), ...list.slice(0, w % list.length)]
    }, h1, hotKeys))
    await new Promise((r) => setTimeout(r, 1500))
    await victim.kill('SIGKILL')
    victimDown = true
    await new Promise((r) => setTimeout(r, 2500))
    await victim.start()
    victimDown = false
    await new Promise((r) => setTimeout(r, 1000))
    await Promise.all(writers1.map((w) => w.stop()))
    assert.ok(h1.acked.length > 50, `acknowledged ${h1.acked.length} writes (${h1.timeouts} ack timeouts, ${h1.failed} failed)`)
    const bound1 = convergeBound(h1.acked.length)
    const took1 = await converge(nodes, bound1, 'after the restart')
    t.diagnostic(`kill -9 and restart: ${h1.acked.length} writes acknowledged (${h1.deletes} deletes, ${h1.expiring} expiring; ${h1.timeouts} ack timeouts, ${h1.failed} failed), digests equal ${took1} ms after the load stopped (bound ${bound1} ms + allowance ${allowance(bound1)} ms), load average ${loadavg()[0].toFixed(1)}`)
    assert.ok(took1 <= bound1 + allowance(bound1), `converged after ${took1} ms; the bound is ${bound1} ms`)
    const lost1 = await violations(nodes, h1)
    assert.deepEqual(lost1.slice(0, 10), [], `${lost1.length} violations of the history after the restart`)
    // The checker is not vacuous: a write no node holds, a newer version than any node holds, and a live key called deleted are all caught on every node.
    const live = h1.acked.find((a) => a.deleted !== true && !a.key.startsWith('hot'))!
    const fake = new History()
    fake.acked.push({ key: 'never-written', version: 1, ack: 'one', node: 'a1' }, { ...live, version: live.version + 1 }, { ...live, deleted: true })
    assert.equal((await violations(nodes, fake)).length, 18, 'three made-up violations, on each of the 6 nodes')

    // ---- 2. tokyo cut off from london and paris ------------------------------------------------
    const h2 = new History()
    const tokyo = new Set(['c1', 'c2'])
    const across = (from: string, to: string): boolean => tokyo.has(from) !== tokyo.has(to)
    const sideA = nodes.slice(0, 4)
    const sideB = nodes.slice(4)
    const writers2 = nodes.map((_, w) => {
      const side = w < 4 ? sideA : sideB
      return writer(`r${w}`, () => [...side.slice(w % side.length), ...side.slice(0, w % side.length)], h2, hotKeys)
    })
    await new Promise((r) => setTimeout(r, 1000))
    const cutAt = Date.now()
    rules.cut(across)
    const ackedAtCut = h2.acked.length
    // Each side finds the other dead (failure detection), then ack=all is met by its own side.
    /** Whether every node sees every member of the other side dead (or pruned). */
    const split = async (): Promise<boolean> => {
      for (const n of nodes) {
        const v = JSON.parse((await send(n.url, 'GET', '/v1/cluster', undefined, {}, 2000)).body.toString()) as { regions: Array<{ members: Array<{ id: string; status: string }> }> }
        if (v.regions.flatMap((r) => r.members).some((m) => across(n.id, m.id) && m.status !== 'dead')) return false
      }
      return true
    }
    await waitUntil(split, DETECT_MS + allowance(DETECT_MS) + 5_000, () => 'the sides do not see each other dead', 100)
    const splitMs = Date.now() - cutAt
    await new Promise((r) => setTimeout(r, 1000))
    const duringCut = h2.acked.length - ackedAtCut
    // Both sides serve reads of what their clients wrote during the cut (asked of the node that acknowledged it)…
    const late = h2.acked.slice(ackedAtCut).filter((a) => !a.key.startsWith('hot') && a.deleted !== true)
    const reads = [...late.filter((a) => tokyo.has(a.node)).slice(-10), ...late.filter((a) => !tokyo.has(a.node)).slice(-10)]
    for (const a of reads) {
      const r = await send(nodes.find((n) => n.id === a.node)!.url, 'GET', `/v1/keys/${a.key}`)
      assert.equal(r.status, 200, `${a.node} serves ${a.key} during the cut`)
    }
    // …and the cut is real: each side sees the other dead, and a write on one side does not reach the other.
    assert.ok(await split(), 'still split')
    assert.equal((await send(nodes[0]!.url, 'PUT', '/v1/keys/cut-probe?ack=all', 'x')).headers['x-stratacache-replicas'], '4')
    await new Promise((r) => setTimeout(r, 500))
    assert.equal((await send(nodes[4]!.url, 'GET', '/v1/keys/cut-probe')).status, 404, 'tokyo does not get london\'s write during the cut')
    const ackedAllDuringCut = h2.acked.slice(ackedAtCut).filter((a) => a.ack === 'all').length
    await Promise.all(writers2.map((w) => w.stop()))
    const cutMs = Date.now() - cutAt
    assert.ok(duringCut > 20, `${duringCut} writes acknowledged during the cut`)
    assert.ok(ackedAllDuringCut > 0, 'ack=all writes succeed on each side once the other is seen dead')
    const sideAcked = (names: (w: number) => boolean): number => h2.acked.slice(ackedAtCut).filter((a) => /^r\d-/.test(a.key) && names(Number(a.key[1]))).length
    assert.ok(sideAcked((w) => w < 4) > 0 && sideAcked((w) => w >= 4) > 0, 'both sides acknowledged writes during the cut')
    const cutStats = proxies.map((p) => p.stats.cut).reduce((x, y) => x + y, 0)
    assert.ok(cutStats > 0, 'the proxies cut connections')
    rules.heal()
    const healedAt = Date.now()
    let rejoinMs = -1
    const rejoined = waitUntil(async () => (await Promise.all(nodes.map((n) => n.aliveCount()))).every((c) => c === 6), 60_000, () => 'not all alive again', 100).then(() => (rejoinMs = Date.now() - healedAt))
    const bound2 = convergeBound(h2.acked.length)
    const took2 = await converge(nodes, bound2, 'after healing')
    await rejoined
    t.diagnostic(`region cut ${cutMs} ms (sides saw each other dead after ${splitMs} ms; all alive again ${rejoinMs} ms after healing): ${h2.acked.length} writes acknowledged (${duringCut} during the cut, ${ackedAllDuringCut} of them ack=all; ${h2.deletes} deletes, ${h2.expiring} expiring; ${h2.timeouts} ack timeouts, ${h2.failed} failed; ${cutStats} connections cut), digests equal ${took2} ms after healing (bound ${bound2} ms + allowance ${allowance(bound2)} ms), load average ${loadavg()[0].toFixed(1)}`)
    assert.ok(took2 <= bound2 + allowance(bound2), `converged after ${took2} ms; the bound is ${bound2} ms`)
    const lost2 = await violations(nodes, h2)
    assert.deepEqual(lost2.slice(0, 10), [], `${lost2.length} violations of the history after healing`)
    // The earlier history still holds too (nothing of phase 1 undone by the cut).
    const lost1b = await violations(nodes, h1)
    assert.deepEqual(lost1b.slice(0, 10), [], `${lost1b.length} violations of the first history after healing`)
    t.diagnostic(`whole test ${Date.now() - started} ms`)
  })
})
