// The cluster part of the CLI in process: serve's cluster settings (flags, --id, env, config
// file, precedence, lists), the guide's settings table pinned to them, and `cluster status` /
// `cluster state` against in-process nodes.
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { runCli } from '../../src/cli/main.js'
import { EXIT, type CliIo } from '../../src/cli/cli-io.js'
import { envOf, flagOf, parseServeArgs, SERVE_HELP } from '../../src/cli/serve.js'
import { CLUSTER_SETTINGS } from '../../src/cli/serve-cluster.js'
import { systemClock } from '../../src/core/system-clock.js'
import { nodeTestbed, send } from '../support/node-fixtures.js'
import { waitUntil } from '../support/server-process.js'

const bed = nodeTestbed()
after(() => bed.close())
const SECRET = 'a-cluster-secret-of-32-bytes-xyz'

function io(env: NodeJS.ProcessEnv = {}): CliIo & { out_: string; err_: string } {
  const o = {
    out_: '',
    err_: '',
    out: { write: (c: string | Uint8Array) => (o.out_ += c.toString()) },
    err: { write: (c: string) => (o.err_ += c) },
    env,
    clock: systemClock,
    now: () => performance.now(),
    readStdin: async () => undefined,
  }
  return o
}

describe('cluster CLI', () => {
  test('serve: cluster settings from flags (--id too), env and config file; flags > env > file', () => {
    const dir = bed.dir()
    const file = join(dir.path, 'c.json')
    writeFileSync(file, JSON.stringify({ seeds: ['10.0.0.1:7701', '10.0.0.2:7701'], clusterSecret: 'from-the-file-0123456789', clusterPort: 17001, heartbeatInterval: '500ms', region: 'paris' }))
    const { options, sources } = parseServeArgs(
      ['--id', 'a1', '--config', file, '--cluster-port', '17002', '--discovery', 'static,mdns', '--region', 'london'],
      { STRATACACHE_CLUSTER_PORT: '17003', STRATACACHE_CLUSTER_SECRET: 'from-the-env-0123456789', STRATACACHE_PHI_THRESHOLD: '10' },
    )
    assert.equal(options.nodeId, 'a1')
    assert.equal(sources.get('nodeId'), 'flag')
    assert.equal(options.clusterPort, 17002)
    assert.equal(sources.get('clusterPort'), 'flag')
    assert.equal(options.clusterSecret, 'from-the-env-0123456789')
    assert.equal(sources.get('clusterSecret'), 'env')
    assert.deepEqual(options.seeds, ['10.0.0.1:7701', '10.0.0.2:7701'])
    assert.equal(sources.get('seeds'), 'config')
    assert.equal(options.discovery, 'static,mdns')
    assert.equal(options.phiThreshold, 10)
    assert.equal(options.heartbeatInterval, '500ms')
    assert.equal(options.region, 'london')
    assert.equal(parseServeArgs(['--seeds', '127.0.0.1:7702,127.0.0.1:7703'], {}).options.seeds, '127.0.0.1:7702,127.0.0.1:7703')
    assert.throws(() => parseServeArgs(['--seeds', ''], {}), /comma-separated/)
    for (const s of CLUSTER_SETTINGS) assert.ok(SERVE_HELP.includes(flagOf(s.name)), `--help lists ${flagOf(s.name)}`)
    assert.match(SERVE_HELP, /--id /)
  })

  test('docs/guide/cluster.md lists every cluster setting with its flag, variable, key and default', () => {
    const guide = readFileSync(new URL('../../../docs/guide/cluster.md', import.meta.url), 'utf8')
    for (const s of CLUSTER_SETTINGS) {
      const row = guide.split('\n').find((l) => l.startsWith(`| \`${flagOf(s.name)}\` |`))
      assert.ok(row !== undefined, `the guide has a row for ${flagOf(s.name)}`)
      assert.ok(row.includes(`\`${envOf(s.name)}\``), `${s.name}: env variable`)
      assert.ok(row.includes(`\`${s.name}\``), `${s.name}: config key`)
      assert.ok(row.includes(s.def), `${s.name}: default ${s.def}`)
    }
  })

  test('cluster status (table and --json) and cluster state against real nodes', async () => {
    const fast = { heartbeatInterval: 100, acceptablePause: 200, minStdDeviation: 20, discoveryInterval: 300, clusterSecret: SECRET }
    const a = await bed.start({ ...fast, nodeId: 'a1', region: 'london', authToken: 'tok' })
    const b = await bed.start({ ...fast, nodeId: 'b1', region: 'paris', authToken: 'tok', seeds: `127.0.0.1:${a.port}` })
    await waitUntil(() => a.cluster.view().regions.length === 2 && b.cluster.view().regions.length === 2, 5000, () => 'joined')
    await waitUntil(() => a.cluster.view().regions[1].rttMs !== null, 5000, () => 'rtt measured')

    let x = io()
    assert.equal(await runCli(['cluster', 'status', '--node', `127.0.0.1:${a.port}`], x), EXIT.REFUSED, 'the token is needed')
    assert.match(x.err_, /ERR_UNAUTHORIZED/)
    x = io({ STRATACACHE_AUTH_TOKEN: 'tok' })
    assert.equal(await runCli(['cluster', 'status', '--node', a.url], x), EXIT.OK, x.err_)
    assert.match(x.out_, /^node a1 \(region london, incarnation 0\)/)
    assert.match(x.out_, /cluster state ACTIVE \(version 0\)/)
    assert.match(x.out_, /members 2: 2 alive, 0 suspect, 0 dead, 0 left/)
    assert.match(x.out_, /london {2}rank 0 \(own region\)/)
    assert.match(x.out_, /paris {2}rank 1 {2}avg RTT [\d.]+ ms/)
    assert.match(x.out_, /ID +STATUS +PHI +INCARNATION +RTT MS +ADDRESS +CLUSTER ADDRESS/)
    assert.match(x.out_, /a1 \* +alive +- +0 +- +127\.0\.0\.1:\d+ +127\.0\.0\.1:\d+/)
    assert.match(x.out_, /b1 +alive +[\d.]+ +0 +[\d.]+ +127\.0\.0\.1:\d+/)

    x = io({ STRATACACHE_AUTH_TOKEN: 'tok', STRATACACHE_NODES: a.url })
    assert.equal(await runCli(['cluster', 'status', '--json'], x), EXIT.OK, x.err_)
    assert.equal((JSON.parse(x.out_) as { self: string }).self, 'a1')

    x = io({ STRATACACHE_AUTH_TOKEN: 'tok' })
    assert.equal(await runCli(['cluster', 'state', 'passive', '--node', b.url], x), EXIT.OK, x.err_)
    assert.match(x.out_, /cluster state PASSIVE \(version 1\)/)
    await waitUntil(() => a.cluster.state === 'PASSIVE', 5000, () => 'PASSIVE reached a1')
    const put = await send(a.url, 'PUT', '/v1/keys/k', 'v', { authorization: 'Bearer tok' })
    assert.equal(put.status, 503)
    x = io({ STRATACACHE_AUTH_TOKEN: 'tok' })
    assert.equal(await runCli(['set', 'k', 'v', '--node', a.url], x), EXIT.REFUSED, 'the client gets ERR_CLUSTER_PASSIVE at once, no retries')
    assert.match(x.err_, /ERR_CLUSTER_PASSIVE/)
    x = io({ STRATACACHE_AUTH_TOKEN: 'tok' })
    assert.equal(await runCli(['cluster', 'state', 'no-migration', '--node', a.url, '--json'], x), EXIT.OK, x.err_)
    assert.deepEqual(JSON.parse(x.out_), { state: 'NO_MIGRATION', version: 2, origin: 'a1' })

    // cluster digest: this replica's Merkle root, count and meta digest (GET /v1/cluster/digest).
    x = io({ STRATACACHE_AUTH_TOKEN: 'tok' })
    assert.equal(await runCli(['cluster', 'digest', '--node', a.url], x), EXIT.OK, x.err_)
    assert.match(x.out_, /^node a1 digest [0-9a-f]{16} count \d+ meta [0-9a-f]{16}\n$/)
    x = io({ STRATACACHE_AUTH_TOKEN: 'tok' })
    assert.equal(await runCli(['cluster', 'digest', '--node', a.url, '--json'], x), EXIT.OK, x.err_)
    assert.equal((JSON.parse(x.out_) as { self: string; depth: number }).self, 'a1')
    x = io()
    assert.equal(await runCli(['cluster', 'digest', '--node', a.url], x), EXIT.REFUSED, 'the token is needed')
    assert.equal(await runCli(['cluster', 'digest', 'extra', '--node', a.url], x), EXIT.USAGE)

    x = io()
    assert.equal(await runCli(['cluster', 'state', 'sideways'], x), EXIT.USAGE)
    assert.equal(await runCli(['cluster', 'frobnicate'], x), EXIT.USAGE)
    assert.equal(await runCli(['cluster'], x), EXIT.USAGE)
    x = io()
    assert.equal(await runCli(['cluster', 'status', '--node', '127.0.0.1:1'], x), EXIT.UNAVAILABLE)
    assert.match(x.err_, /unreachable/)
    x = io()
    assert.equal(await runCli(['cluster', '--help'], x), EXIT.OK)
    assert.match(x.out_, /no-migration/)
  })

  test('--node is a node address as for every command (a bare host is port 7700; no other scheme); --timeout is a bare decimal number', async () => {
    let x = io()
    // Nothing listens on 127.0.0.2:7700 here: the error names the address asked (was port 80).
    assert.equal(await runCli(['cluster', 'status', '--node', '127.0.0.2', '--timeout', '2000'], x), EXIT.UNAVAILABLE, x.err_)
    assert.match(x.err_, /127\.0\.0\.2:7700/)
    for (const bad of ['ftp://127.0.0.1:7700', 'http://127.0.0.1:7700/v1', 'http://u@127.0.0.1:7700', ' ']) {
      x = io()
      assert.equal(await runCli(['cluster', 'status', '--node', bad], x), EXIT.USAGE, `--node ${bad}`)
      assert.match(x.err_, /--node/)
    }
    for (const bad of ['0x10', '5s', '', 'Infinity', '0', ' 5']) {
      x = io()
      assert.equal(await runCli(['cluster', 'status', '--node', '127.0.0.1:1', '--timeout', bad], x), EXIT.USAGE, `--timeout ${bad}`)
      assert.match(x.err_, /--timeout/)
    }
  })

  test('a node on a port fetch() calls unsafe (6000, 6665, 10080, …) is reached as by every other command', async (t) => {
    // The cluster commands used fetch(), which refuses WHATWG "bad ports" before dialling:
    // a node serving on 6000 answered get/set but `cluster status` said "unreachable: bad port".
    const server: Server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(req.method === 'POST' && req.url === '/v1/cluster/state' ? '{"state":"ACTIVE","version":1}' : '{}')
    })
    let port: number | undefined
    for (const candidate of [6000, 6665, 6666, 6667, 6668, 6669, 10080, 5060, 5061, 6697, 4045]) {
      const bound = await new Promise<boolean>((resolve) => {
        server.once('error', () => resolve(false))
        server.listen(candidate, '127.0.0.1', () => resolve(true))
      })
      if (bound) {
        port = candidate
        break
      }
    }
    if (port === undefined) {
      t.skip('none of the unsafe ports is free here')
      return
    }
    try {
      const x = io()
      assert.equal(await runCli(['cluster', 'state', 'active', '--node', `127.0.0.1:${port}`], x), EXIT.OK, x.err_)
      assert.match(x.out_, /cluster state ACTIVE \(version 1\)/)
    } finally {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })

  test('an answer that is not the protocol (a 200 from something else) is ERR_BAD_RESPONSE, exit 3: never a TypeError nor "undefined" printed with exit 0', async () => {
    let body = ''
    const server: Server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(body)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const node = `127.0.0.1:${(server.address() as AddressInfo).port}`
      for (const answer of ['{}', 'null', '"x"', 'not json', '[]', '{"regions":[{"members":[{}]}]}', '{"self":"a","digest":5}', '{"state":"ACTIVE"}']) {
        body = answer
        for (const sub of [['status'], ['digest'], ['state', 'active']]) {
          const x = io()
          const code = await runCli(['cluster', ...sub, '--node', node], x)
          assert.equal(code, EXIT.UNAVAILABLE, `${sub.join(' ')} on ${answer}: ${x.out_}${x.err_}`)
          assert.match(x.err_, /ERR_BAD_RESPONSE/, `${sub.join(' ')} on ${answer}`)
          assert.doesNotMatch(x.err_ + x.out_, /undefined|Cannot read/, `${sub.join(' ')} on ${answer}`)
        }
      }
    } finally {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })
})
