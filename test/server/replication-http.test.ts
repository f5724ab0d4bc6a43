/** The node's least-version check for session reads (replication-http.ts). */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isCacheError } from '../../src/core/errors.js'
import { checkMinVersion } from '../../src/server/replication-http.js'
import type { KeyspaceRecord } from '../../src/server/keyspace.js'

const keyspaceHolding = (record: KeyspaceRecord | undefined) => ({ getRecord: () => Promise.resolve(record) })
const live = (hlc: number): KeyspaceRecord => ({ key: 'k', value: new Uint8Array(1), expiresAt: 0, tags: [], version: { hlc, nodeId: 'n' } }) as unknown as KeyspaceRecord
const tomb = (hlc: number): KeyspaceRecord => ({ key: 'k', deleted: true, version: { hlc, nodeId: 'n' } }) as unknown as KeyspaceRecord
const need = (v: number) => ({ 'x-stratacache-min-version': String(v) })

test('no least version: nothing to check', async () => {
  assert.equal(await checkMinVersion({}, 'k', undefined, keyspaceHolding(undefined)), false)
})

test('an entry at least that new passes; an older one, or nothing, is ERR_STALE_READ with have and need', async () => {
  assert.equal(await checkMinVersion(need(5), 'k', 7, keyspaceHolding(undefined)), false)
  await assert.rejects(checkMinVersion(need(5), 'k', 3, keyspaceHolding(undefined)), (e: unknown) => isCacheError(e) && e.code === 'ERR_STALE_READ')
  await assert.rejects(checkMinVersion(need(5), 'k', undefined, keyspaceHolding(undefined)), (e: unknown) => isCacheError(e) && e.code === 'ERR_STALE_READ')
})

test('the entry read missed but a live record at least that new landed since: read again (true), not 404', async () => {
  assert.equal(await checkMinVersion(need(5), 'k', undefined, keyspaceHolding(live(6))), true)
})

test('a tombstone at least that new answers the read (404): no second read', async () => {
  assert.equal(await checkMinVersion(need(5), 'k', undefined, keyspaceHolding(tomb(5))), false)
})

test('the least version may be sent as the ETag the node answered ("<version>", as docs/PROTOCOL.md says) or bare; anything else is ERR_BAD_REQUEST', async () => {
  const header = (v: string) => ({ 'x-stratacache-min-version': v })
  assert.equal(await checkMinVersion(header('"5"'), 'k', 7, keyspaceHolding(undefined)), false)
  assert.equal(await checkMinVersion(header('W/"5"'), 'k', 7, keyspaceHolding(undefined)), false)
  await assert.rejects(checkMinVersion(header('"9"'), 'k', 7, keyspaceHolding(undefined)), (e: unknown) => isCacheError(e, 'ERR_STALE_READ'))
  for (const bad of ['"5', '5"', '""', '"a"', 'abc', '"-1"', '"99999999999999999"', '"5", "6"', '*']) {
    await assert.rejects(checkMinVersion(header(bad), 'k', 7, keyspaceHolding(undefined)), (e: unknown) => isCacheError(e, 'ERR_BAD_REQUEST'), bad)
  }
})
