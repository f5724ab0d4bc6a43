/**
 * `stratacache serve --store etcd://…` as real processes in front of a real 3-member etcd
 * cluster: the node keeps nothing of its own (a node killed and a new one started elsewhere
 * serve the same data, versions keep growing), its data is etcd's (read back with the
 * store directly), and a bad store URL is a usage error (exit 2).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { after, before, describe, test } from 'node:test'
import { etcdStore } from '../../src/store/etcd-store.js'
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-server.js'
import { CLI, startChildNode } from '../support/node-fixture.js'

let cluster: EtcdCluster
before(async () => {
  cluster = await startEtcdCluster()
})
after(async () => {
  await cluster?.stop()
})

const storeUrl = (namespace: string): string => `etcd://${cluster.members.map((m) => `127.0.0.1:${m.clientPort}`).join(',')}/${namespace}`

describe('serve --store etcd://: stateless nodes in front of etcd', () => {
  test('a node writes into etcd; killed, a new node (fresh data dir) serves the same data with later versions', async () => {
    const url = storeUrl('serve-a')
    const first = await startChildNode(['--store', url, '--log-level', 'silent'])
    let firstVersion: number
    try {
      const put = await fetch(`${first.url}/v1/keys/greeting`, { method: 'PUT', body: 'hello' })
      assert.equal(put.status, 200)
      firstVersion = ((await put.json()) as { version: number }).version
      assert.equal(await (await fetch(`${first.url}/v1/keys/greeting`)).text(), 'hello')
      const stats = (await (await fetch(`${first.url}/v1/stats`)).json()) as { store: string }
      assert.equal(stats.store, 'etcd')
    } finally {
      first.child.kill('SIGKILL')
      await first.stop()
    }
    // The data is in etcd, under the namespace.
    const direct = etcdStore({ endpoints: cluster.endpoints, namespace: 'serve-a/' })
    try {
      assert.ok((await direct.scan({ prefix: 'node:' })).keys.includes('node:greeting'), 'the record is an etcd key')
    } finally {
      await direct.close()
    }
    // Through the environment variable this time.
    const second = await startChildNode(['--log-level', 'silent'], { STRATACACHE_STORE: url })
    try {
      const got = await fetch(`${second.url}/v1/keys/greeting`)
      assert.equal(got.status, 200)
      assert.equal(await got.text(), 'hello', 'a new node serves what the old one wrote')
      const put = await fetch(`${second.url}/v1/keys/greeting`, { method: 'PUT', body: 'again' })
      const v2 = ((await put.json()) as { version: number }).version
      assert.ok(v2 > firstVersion, `versions keep growing across nodes (${firstVersion} -> ${v2}): the clock's high-water mark is in etcd`)
    } finally {
      assert.equal(await second.stop(), 0, 'clean shutdown')
    }
  })

  test('a bad store URL is a usage error (exit 2) naming the expected form', () => {
    const res = spawnSync(process.execPath, [CLI, 'serve', '--port', '0', '--store', 'etcd:/nope'], { encoding: 'utf8', timeout: 30_000 })
    assert.equal(res.status, 2)
    assert.match(res.stderr, /etcd:\/\/host:port/)
    // A malformed percent-escape in the namespace is a malformed URL too (it was a URIError: exit 1).
    const escape = spawnSync(process.execPath, [CLI, 'serve', '--port', '0', '--store', 'etcd://127.0.0.1:2379/my%zzapp'], { encoding: 'utf8', timeout: 30_000 })
    assert.equal(escape.status, 2, escape.stderr)
    assert.match(escape.stderr, /ERR_INVALID_OPTIONS|Invalid option "store"/)
    // A parameter given twice is refused: the last one silently won, so a URL built by
    // appending to a template could read serializable while it said linearizable first.
    const twice = spawnSync(process.execPath, [CLI, 'serve', '--port', '0', '--store', 'etcd://127.0.0.1:2379/app?consistency=linearizable&consistency=serializable'], { encoding: 'utf8', timeout: 30_000 })
    assert.equal(twice.status, 2, twice.stderr)
    assert.match(twice.stderr, /consistency.*more than once/)
  })
})
