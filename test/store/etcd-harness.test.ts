/**
 * The etcd test harness itself (test/support/etcd-server.ts): a 3-member cluster comes up
 * healthy on loopback, a killed member restarts on its data and rejoins, a paused member
 * stops answering and answers again after resume, and stop() leaves no process behind.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { after, before, test } from 'node:test'
import { etcdHealthy, startEtcdCluster, waitForLeader, type EtcdCluster } from '../support/etcd-server.js'

let cluster: EtcdCluster

before(async () => {
  cluster = await startEtcdCluster()
})
after(async () => {
  await cluster?.stop()
})

test('three healthy members, one leader, distinct loopback ports', async () => {
  assert.equal(cluster.members.length, 3)
  assert.equal(new Set(cluster.members.flatMap((m) => [m.clientPort, m.peerPort])).size, 6)
  for (const m of cluster.members) assert.equal(await etcdHealthy(m.clientPort), true, `${m.name} healthy`)
  assert.ok((await waitForLeader(cluster)) !== undefined)
})

test('a killed member restarts on its data and rejoins; a paused one is silent until resumed', async () => {
  const [m0, m1] = cluster.members
  assert.ok(m0 !== undefined && m1 !== undefined)
  await m0.kill()
  assert.equal(m0.running, false)
  assert.equal(await etcdHealthy(m0.clientPort, 300), false)
  await m0.restart()
  assert.equal(await etcdHealthy(m0.clientPort), true, 'rejoined')
  m1.pause()
  assert.equal(await etcdHealthy(m1.clientPort, 300), false, 'a paused member answers nothing')
  m1.resume()
  await m1.ready()
  await waitForLeader(cluster)
})

test('stop kills every member and removes the data', async () => {
  const single = await startEtcdCluster({ members: 1 })
  const [only] = single.members
  assert.ok(only !== undefined && only.running)
  await single.stop()
  assert.equal(only.running, false)
  assert.equal(existsSync(single.dir), false)
  await single.stop()
})
