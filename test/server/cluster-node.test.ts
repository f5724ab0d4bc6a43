// The cluster wired into in-process nodes on loopback: the solo node's one-member view and
// cluster state (PASSIVE refuses writes, persisted), option checks, joining through HTTP
// seeds, the cluster secret, restart with the same id and a higher incarnation, leave on
// close, and the Prometheus figures.
import assert from 'node:assert/strict'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import type { ClusterView, MemberView } from '../../src/cluster/index.js'
import { isCacheError } from '../../src/core/errors.js'
import type { ScanOptions, Store } from '../../src/store/types.js'
import { startNode, type NodeHandle, type NodeOptions } from '../../src/server/index.js'
import { CLUSTER_STATE_FILE, NODE_ID_FILE } from '../../src/server/cluster-service.js'
import { waitUntil } from '../support/server-process.js'
import { errorCode, nodeTestbed, send, silentLogger } from '../support/node-fixtures.js'

const bed = nodeTestbed()
after(() => bed.close())

const SECRET = 'a-cluster-secret-of-32-bytes-xyz'
/** Fast detection so the tests take seconds: phi crosses within ~0.4 s of silence. */
const FAST: NodeOptions = { heartbeatInterval: 100, acceptablePause: 200, minStdDeviation: 20, indirectTimeout: 150, suspicionTimeout: 300, discoveryInterval: 300, leaveTimeout: 300 }
const JSON_HEADERS = { 'content-type': 'application/json' }

async function view(node: NodeHandle): Promise<ClusterView> {
  const r = await send(node.url, 'GET', '/v1/cluster')
  assert.equal(r.status, 200, r.body.toString())
  return JSON.parse(r.body.toString()) as ClusterView
}

const members = (v: ClusterView): MemberView[] => v.regions.flatMap((r) => r.members)
const statusIn = (v: ClusterView, id: string): string | undefined => members(v).find((m) => m.id === id)?.status

async function allSee(nodes: NodeHandle[], ids: string[], status: string, timeoutMs = 8000): Promise<void> {
  await waitUntil(
    async () => {
      for (const n of nodes) {
        const v = await view(n)
        if (!ids.every((id) => statusIn(v, id) === status)) return false
      }
      return true
    },
    timeoutMs,
    () => `not every node sees ${ids.join(', ')} ${status}`,
    50,
  )
}

describe('the cluster in a node', () => {
  test('solo node: a one-member view; PASSIVE refuses writes with 503 ERR_CLUSTER_PASSIVE and serves reads; the state survives a restart', async () => {
    const dir = bed.dir()
    let node = await bed.start({ dataDir: dir.path, region: 'london' })
    const v = await view(node)
    assert.equal(v.self, node.id)
    assert.equal(v.region, 'london')
    assert.deepEqual(v.state, { state: 'ACTIVE', version: 0, origin: '' })
    assert.equal(members(v).length, 1)
    assert.equal(members(v)[0].self, true)
    assert.equal(members(v)[0].clusterAddress, undefined, 'a solo node has no cluster address')
    assert.equal(node.cluster.enabled, false)
    assert.equal((await send(node.url, 'PUT', '/v1/keys/a', 'one')).status, 200)

    const bad = await send(node.url, 'POST', '/v1/cluster/state', JSON.stringify({ state: 'sleepy' }), JSON_HEADERS)
    assert.equal(bad.status, 400)
    assert.equal((await send(node.url, 'POST', '/v1/cluster/state', JSON.stringify({ state: 'passive' }))).status, 415, 'JSON only (no cross-site form posts)')
    const set = await send(node.url, 'POST', '/v1/cluster/state', JSON.stringify({ state: 'passive' }), JSON_HEADERS)
    assert.equal(set.status, 200)
    assert.equal((JSON.parse(set.body.toString()) as { state: string }).state, 'PASSIVE')

    const writes: Array<[string, string, string?, Record<string, string>?]> = [
      ['PUT', '/v1/keys/b', 'two'],
      ['DELETE', '/v1/keys/a'],
      ['DELETE', '/v1/keys', undefined, { 'x-stratacache-confirm': 'clear' }],
      ['POST', '/v1/mset', JSON.stringify({ entries: [{ key: 'c', value: 'eA==' }] }), JSON_HEADERS],
      ['POST', '/v1/invalidate', JSON.stringify({ tags: ['t'] }), JSON_HEADERS],
      ['PUT', '/london/k', 'zero'],
      ['DELETE', '/london/k'],
    ]
    for (const [method, path, body, headers] of writes) {
      const r = await send(node.url, method, path, body, headers)
      assert.equal(r.status, 503, `${method} ${path}`)
      assert.equal(errorCode(r.body), 'ERR_CLUSTER_PASSIVE', `${method} ${path}`)
      assert.match(r.body.toString(), /PASSIVE/)
    }
    const read = await send(node.url, 'GET', '/v1/keys/a')
    assert.equal(read.status, 200)
    assert.equal(read.body.toString(), 'one')
    assert.equal((await send(node.url, 'POST', '/v1/mget', JSON.stringify({ keys: ['a'] }), JSON_HEADERS)).status, 200, 'mget is a read')

    await node.close()
    node = await bed.start({ dataDir: dir.path, region: 'london' })
    assert.equal((await view(node)).state.state, 'PASSIVE', 'the state was persisted with the data')
    assert.equal((await send(node.url, 'PUT', '/v1/keys/b', 'two')).status, 503)
    const back = await send(node.url, 'POST', '/v1/cluster/state', JSON.stringify({ state: 'active' }), JSON_HEADERS)
    assert.equal(back.status, 200)
    assert.equal((await send(node.url, 'PUT', '/v1/keys/b', 'two')).status, 200)
    assert.ok(existsSync(join(dir.path, CLUSTER_STATE_FILE)))
    assert.equal(existsSync(join(dir.path, NODE_ID_FILE)), false, 'a solo node keeps its host:port id')
  })

  test('the replication topology is built once per membership change, not per call (decision 0308)', async () => {
    const node = await bed.start({ dataDir: bed.dir().path, region: 'london' })
    const first = node.cluster.topology()
    assert.deepEqual(first, { clusterState: 'ACTIVE', members: [{ id: node.id, region: 'london', status: 'alive' }] })
    assert.equal(node.cluster.topology(), first, 'the same object while membership has not stepped')
    const set = await send(node.url, 'POST', '/v1/cluster/state', JSON.stringify({ state: 'no-migration' }), JSON_HEADERS)
    assert.equal(set.status, 200)
    const next = node.cluster.topology()
    assert.equal(next.clusterState, 'NO_MIGRATION', 'a state change is seen at once')
    assert.equal(node.cluster.topology(), next)
    await node.close()
  })

  test('the state route needs the token when the node has one (admin auth)', async () => {
    const node = await bed.start({ authToken: 'tok' })
    assert.equal((await send(node.url, 'POST', '/v1/cluster/state', JSON.stringify({ state: 'PASSIVE' }), JSON_HEADERS)).status, 401)
    assert.equal((await send(node.url, 'GET', '/v1/cluster')).status, 401)
    const ok = await send(node.url, 'POST', '/v1/cluster/state', JSON.stringify({ state: 'PASSIVE' }), { ...JSON_HEADERS, authorization: 'Bearer tok' })
    assert.equal(ok.status, 200)
  })

  test('POST /v1/cluster/state refuses a body field it does not take (400 naming it), as the JSON routes do: nothing is set', async () => {
    const node = await bed.start({})
    for (const body of [{ state: 'PASSIVE', force: true }, { state: 'PASSIVE', State: 'ACTIVE' }, { state: 'PASSIVE', version: 9 }]) {
      const r = await send(node.url, 'POST', '/v1/cluster/state', JSON.stringify(body), JSON_HEADERS)
      assert.equal(r.status, 400, JSON.stringify(body))
      assert.equal(errorCode(r.body), 'ERR_BAD_REQUEST')
      assert.match(r.body.toString(), /unknown field/)
      assert.equal(node.cluster.state, 'ACTIVE', 'nothing set')
    }
  })

  test('options: clustering needs the secret (>= 16 bytes); strategies need their parameters', async () => {
    const refused = async (options: NodeOptions, option: string): Promise<void> => {
      await assert.rejects(startNode({ port: 0, logger: silentLogger, dataDir: bed.dir().path, ...options }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === option)
    }
    await refused({ seeds: '127.0.0.1:7702' }, 'clusterSecret')
    await refused({ discovery: 'mdns' }, 'clusterSecret')
    await refused({ seeds: '127.0.0.1:7702', clusterSecret: 'short' }, 'clusterSecret')
    await refused({ discovery: 'static', clusterSecret: SECRET }, 'seeds')
    await refused({ discovery: 'file', clusterSecret: SECRET }, 'discoveryFile')
    await refused({ discovery: 'dns', clusterSecret: SECRET }, 'discoveryDns')
    await refused({ discovery: 'carrier-pigeon', clusterSecret: SECRET }, 'discovery')
    await refused({ clusterPort: 17000 }, 'clusterPort')
    await refused({ host: '0.0.0.0', clusterSecret: SECRET }, 'advertiseHost')
  })

  test('options: bad timings, service type and cluster host are ERR_INVALID_OPTIONS naming the setting the user wrote; nothing stays bound', async () => {
    const refused = async (options: NodeOptions, option: string): Promise<void> => {
      await assert.rejects(startNode({ port: 0, logger: silentLogger, dataDir: bed.dir().path, clusterSecret: SECRET, ...options }), (e: unknown) => isCacheError(e, 'ERR_INVALID_OPTIONS') && (e as { option?: string }).option === option, JSON.stringify(options))
    }
    // Were named after internal fields (phi.acceptableHeartbeatPauseMs, pruneAfterMs, heartbeatIntervalMs, serviceType).
    await refused({ acceptablePause: Infinity }, 'acceptablePause')
    await refused({ pruneAfter: Infinity }, 'pruneAfter')
    await refused({ pruneAfter: 'Infinity' }, 'pruneAfter')
    await refused({ heartbeatInterval: 0.5 }, 'heartbeatInterval')
    await refused({ indirectTimeout: 0.5 }, 'indirectTimeout')
    await refused({ suspicionTimeout: 0.5 }, 'suspicionTimeout')
    await refused({ discovery: 'mdns', mdnsServiceType: 'Not A Type' }, 'mdnsServiceType')
    await refused({ discovery: 'mdns', mdnsServiceType: 'much-too-long-a-service-type' }, 'mdnsServiceType')
    // Seeds given but naming nobody (',' or []): the node ran alone, or did not cluster at all without a secret, silently.
    await refused({ seeds: ',' }, 'seeds')
    await refused({ seeds: [] }, 'seeds')
    await refused({ seeds: ' , ' }, 'seeds')
    // A strategy's parameter without its strategy did nothing, silently (as seeds without static already is refused).
    await refused({ discoveryFile: '/tmp/peers.txt' }, 'discoveryFile')
    await refused({ seeds: '127.0.0.1:7702', discoveryDns: 'peers.example' }, 'discoveryDns')
    await refused({ discovery: 'mdns', discoveryDnsPort: 7700 }, 'discoveryDnsPort')
    await refused({ discoveryEnv: 'MY_PEERS' }, 'discoveryEnv')
    await refused({ discovery: 'file', discoveryFile: '/tmp/peers.txt', mdnsServiceType: 'cache' }, 'mdnsServiceType')
    await refused({ mdnsInterface: '127.0.0.1' }, 'mdnsInterface')
    // The host other nodes and clients are told must be a host they can dial (was advertised as is: 'a b:7701', '[http://x]:7701').
    for (const advertiseHost of ['a b', 'http://x', '[::1]', 'x/y', 'host:7701']) await refused({ advertiseHost }, 'advertiseHost')
    // A cluster host that does not resolve, as --host's (was a raw getaddrinfo ENOTFOUND); the HTTP port it had bound is free again.
    const dataDir = bed.dir().path
    const { freePort } = await import('../support/server-process.js')
    const port = await freePort()
    await refused({ port, dataDir, clusterHost: 'no-such-host.invalid' }, 'clusterHost')
    // A region the membership refuses was refused after the cluster port was bound, and left it listening.
    const clusterPort = await freePort()
    await refused({ port, dataDir, clusterPort, region: 'lon don' }, 'region')
    await refused({ port, dataDir, clusterPort, region: 'r'.repeat(65) }, 'region')
    const node = await startNode({ port, logger: silentLogger, dataDir, clusterSecret: SECRET, clusterPort, ...FAST })
    await node.close()
  })

  test('replication failing to start after the cluster service started closes the service: the cluster port is free again, the error is the store\'s', async () => {
    const { memoryStore } = await import('../../src/store/memory-store.js')
    const { freePort } = await import('../support/server-process.js')
    // A store whose scans fail from a given one on: the replica index's load (replication's
    // start, after the cluster service has bound its port) scans after the keyspace's own load.
    const failingFrom = (from: number): { store: Store; scans: () => number } => {
      const inner = memoryStore()
      let scans = 0
      const store = new Proxy(inner, {
        get(target, name) {
          if (name === 'scan') {
            return (options: ScanOptions) => (++scans > from ? Promise.reject(new Error("disk gone")) : target.scan!(options))
          }
          const v = Reflect.get(target, name) as unknown
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
        },
      })
      return { store, scans: () => scans }
    }
    // How many scans a node's start makes before replication's.
    const probe = failingFrom(Infinity)
    const solo = await startNode({ port: 0, logger: silentLogger, dataDir: bed.dir().path, store: probe.store })
    const before = probe.scans()
    await solo.close()
    assert.ok(before > 0)
    const dataDir = bed.dir().path
    const port = await freePort()
    const clusterPort = await freePort()
    await assert.rejects(
      startNode({ port, logger: silentLogger, dataDir, clusterSecret: SECRET, clusterPort, ...FAST, store: failingFrom(before).store }),
      (e: unknown) => isCacheError(e, 'ERR_STORE_UNAVAILABLE'),
    )
    // The cluster port was left bound (its transport open) and the next start failed on it.
    const node = await startNode({ port, logger: silentLogger, dataDir, clusterSecret: SECRET, clusterPort, ...FAST })
    await node.close()
  })

  test('a seed on a port that fetch() refuses (WHATWG "bad ports": 6000, 6665-6669, 10080…) is reached and joined', async () => {
    // fetch() fails such a port before dialling; the seed's id was asked with it, so a node
    // listening on 6000 could never be joined. The first of these ports free here is used.
    let a: NodeHandle | undefined
    for (const port of [6000, 6665, 6666, 6667, 6668, 6669, 10080, 6697, 4190, 5060, 5061]) {
      try {
        a = await bed.start({ ...FAST, port, clusterPort: 0, dataDir: bed.dir().path, clusterSecret: SECRET, nodeId: 'bad-port-a' })
        break
      } catch (err) {
        if (!/EADDRINUSE|ERR_ADDRESS_IN_USE|in use/i.test(String((err as Error).message ?? err))) throw err
      }
    }
    assert.ok(a !== undefined, 'no bad port free on this machine')
    const b = await bed.start({ ...FAST, dataDir: bed.dir().path, clusterSecret: SECRET, nodeId: 'bad-port-b', seeds: `127.0.0.1:${a.port}` })
    await allSee([a, b], ['bad-port-a', 'bad-port-b'], 'alive')
    await b.close()
    await a.close()
  })

  test('nodes join through HTTP seeds, with generated ids kept in the data dir; a restart keeps the id and bumps the incarnation; close announces the leave', async () => {
    const dirs = [bed.dir(), bed.dir(), bed.dir()]
    const a = await bed.start({ ...FAST, dataDir: dirs[0].path, clusterSecret: SECRET, region: 'london' })
    assert.equal(a.cluster.enabled, true)
    assert.match(a.id, /^n-[0-9a-f]{12}$/, 'generated')
    assert.equal(readFileSync(join(dirs[0].path, NODE_ID_FILE), 'utf8').trim(), a.id, 'kept in the data dir')
    const b = await bed.start({ ...FAST, dataDir: dirs[1].path, clusterSecret: SECRET, region: 'paris', nodeId: 'b1', seeds: `127.0.0.1:${a.port}` })
    let c = await bed.start({ ...FAST, dataDir: dirs[2].path, clusterSecret: SECRET, region: 'paris', nodeId: 'c1', seeds: [`127.0.0.1:${b.port}`, `127.0.0.1:${a.port}`] })
    await allSee([a, b, c], [a.id, 'b1', 'c1'], 'alive')
    const va = await view(a)
    assert.deepEqual(va.regions.map((r) => r.region), ['london', 'paris'], 'own region first')
    assert.equal(va.regions[1].rank, 1)
    const cInA = members(va).find((m) => m.id === 'c1') as MemberView
    assert.equal(cInA.address, `127.0.0.1:${c.port}`, 'the HTTP address, for clients')
    assert.equal(cInA.clusterAddress, c.cluster.clusterAddress, 'and the cluster address, for peers')
    assert.notEqual(cInA.clusterAddress, cInA.address)

    // State changes reach every member.
    await send(b.url, 'POST', '/v1/cluster/state', JSON.stringify({ state: 'NO_MIGRATION' }), JSON_HEADERS)
    await waitUntil(async () => (await Promise.all([a, b, c].map(view))).every((v) => v.state.state === 'NO_MIGRATION'), 5000, () => 'NO_MIGRATION everywhere')

    // Metrics. Membership alone may have found every member alive before a's first probe
    // round (joins and gossip), so wait for one ping and its ack to be counted.
    const scrape = async (): Promise<string> => (await send(a.url, 'GET', '/metrics')).body.toString()
    await waitUntil(async () => /stratacache_cluster_messages_received_total\{kind="ack"\} [1-9]/.test(await scrape()), 5000, () => 'a ping answered, in the metrics')
    const metrics = await scrape()
    assert.match(metrics, /stratacache_cluster_members\{status="alive"\} 3/)
    assert.match(metrics, /stratacache_cluster_member_phi\{peer="c1",region="paris"\} \d/)
    assert.match(metrics, /stratacache_cluster_messages_sent_total\{kind="ping"\} [1-9]/)
    assert.match(metrics, /stratacache_cluster_messages_received_total\{kind="ack"\} [1-9]/)
    assert.match(metrics, /stratacache_cluster_detection_events_total\{status="alive"\} [1-9]/)
    assert.match(metrics, /stratacache_cluster_state\{state="NO_MIGRATION"\} 1/)

    // Restart c: same id (given), higher incarnation in every view.
    const before = members(await view(a)).find((m) => m.id === 'c1')?.incarnation as number
    await c.close()
    await allSee([a, b], ['c1'], 'left', 2000)
    c = await bed.start({ ...FAST, dataDir: dirs[2].path, clusterSecret: SECRET, region: 'paris', nodeId: 'c1', seeds: [`127.0.0.1:${b.port}`] })
    await allSee([a, b, c], [a.id, 'b1', 'c1'], 'alive')
    const after = members(await view(a)).find((m) => m.id === 'c1')?.incarnation as number
    assert.ok(after > before, `incarnation ${after} > ${before}`)

    // Restart a (generated id): the id comes back from the data dir.
    const aId = a.id
    await a.close()
    const a2 = await bed.start({ ...FAST, dataDir: dirs[0].path, clusterSecret: SECRET, region: 'london', seeds: `127.0.0.1:${b.port}` })
    assert.equal(a2.id, aId)
    await allSee([a2, b, c], [aId, 'b1', 'c1'], 'alive')
  })

  test('file discovery re-reads its file: a node alone joins once the file names a peer; env discovery reads its variable', async () => {
    const a = await bed.start({ ...FAST, clusterSecret: SECRET, nodeId: 'file-a' })
    const file = join(bed.dir().path, 'peers.txt')
    writeFileSync(file, '# nobody yet\n')
    const b = await bed.start({ ...FAST, clusterSecret: SECRET, nodeId: 'file-b', discovery: 'file', discoveryFile: file })
    await new Promise((r) => setTimeout(r, 500))
    assert.equal(members(await view(b)).length, 1, 'alone while the file is empty')
    writeFileSync(file, `# the cluster\n127.0.0.1:${a.port}\n`)
    await allSee([a, b], ['file-a', 'file-b'], 'alive')
    process.env.STRATACACHE_TEST_PEERS = `127.0.0.1:${a.port}`
    try {
      const c = await bed.start({ ...FAST, clusterSecret: SECRET, nodeId: 'env-c', discovery: ['env'], discoveryEnv: 'STRATACACHE_TEST_PEERS' })
      await allSee([a, b, c], ['file-a', 'file-b', 'env-c'], 'alive')
    } finally {
      delete process.env.STRATACACHE_TEST_PEERS
    }
  })

  test('a discovery file that is missing or mistyped is logged (once per distinct problem), not silently ignored; the node keeps going', async () => {
    const warnings: string[] = []
    const logger = { info: () => undefined, warn: (obj: unknown, msg?: string) => void warnings.push(`${msg ?? ''} ${JSON.stringify(obj)}`), error: () => undefined }
    const file = join(bed.dir().path, 'peers.txt')
    const b = await bed.start({ ...FAST, clusterSecret: SECRET, nodeId: 'file-typo', discovery: 'file', discoveryFile: file, logger })
    await waitUntil(() => warnings.some((w) => w.includes('discovery') && w.includes('peers.txt')), 3000, () => `the missing file is logged: ${JSON.stringify(warnings)}`)
    writeFileSync(file, 'not a peer\n')
    await waitUntil(() => warnings.some((w) => w.includes('discovery') && /not a peer|no port/.test(w)), 3000, () => `the mistyped line is logged: ${JSON.stringify(warnings)}`)
    await new Promise((r) => setTimeout(r, 1000))
    assert.ok(warnings.filter((w) => /no port/.test(w)).length <= 1, `logged once, not every round: ${JSON.stringify(warnings)}`)
    assert.equal(members(await view(b)).length, 1)
  })

  test('a node without the cluster secret can neither join nor gossip', async () => {
    const a = await bed.start({ ...FAST, clusterSecret: SECRET, nodeId: 'good-a' })
    const b = await bed.start({ ...FAST, clusterSecret: SECRET, nodeId: 'good-b', seeds: `127.0.0.1:${a.port}` })
    await allSee([a, b], ['good-a', 'good-b'], 'alive')
    const stranger = await bed.start({ ...FAST, clusterSecret: 'not-the-cluster-secret-at-all!!', nodeId: 'stranger', seeds: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`] })
    // It resolves the seeds over HTTP (public), then every cluster connection is refused in the handshake.
    await waitUntil(() => (a.cluster.transport?.stats.authFailures ?? 0) > 0 && (b.cluster.transport?.stats.authFailures ?? 0) > 0, 5000, () => 'the stranger knocked')
    await new Promise((r) => setTimeout(r, 1000))
    for (const n of [a, b]) assert.equal(statusIn(await view(n), 'stranger'), undefined, `${n.id} never saw the stranger`)
    assert.deepEqual(members(await view(stranger)).map((m) => m.id), ['stranger'], 'the stranger learned nobody')
    const metrics = (await send(a.url, 'GET', '/metrics')).body.toString()
    assert.match(metrics, /stratacache_cluster_auth_failures_total [1-9]/)
    await stranger.close()
  })
})
