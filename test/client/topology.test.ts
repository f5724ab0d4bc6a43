/** The client's reading of a ClusterView: a lone node's view is not a cluster topology. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isLoneView, parseClusterView } from '../../src/client/topology.js'

const member = (id: string, region: string, status = 'alive'): object => ({ id, region, address: `127.0.0.1:${id}`, status, incarnation: 1, phi: 0, rttMs: 1, self: false })
const view = (regions: Record<string, object[]>): object => ({ self: 'a', region: 'eu', regions: Object.entries(regions).map(([region, members], rank) => ({ region, rank, rttMs: null, members })) })

test('a view listing one member is a lone node; two or more, or none parsed, are not', () => {
  assert.equal(isLoneView(view({ default: [member('7701', 'default')] })), true)
  assert.equal(isLoneView(view({ eu: [member('7701', 'eu')], us: [member('7702', 'us')] })), false)
  assert.equal(isLoneView({ nothing: true }), false)
  assert.equal(isLoneView(null), false)
})

test('a cluster view: own region local, others by rank, dead and left members left out', () => {
  const t = parseClusterView(view({ eu: [member('7701', 'eu'), member('7702', 'eu', 'dead')], us: [member('7703', 'us'), member('7704', 'us', 'left')] }), 'eu', (a) => `http://${a}`)
  assert.deepEqual(t, { local: ['http://127.0.0.1:7701'], remote: [['http://127.0.0.1:7703']], source: 'cluster' })
})
