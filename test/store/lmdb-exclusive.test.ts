// lmdbStore({ exclusive }): one holder per directory, judged live by pid, start time, boot
// and pid namespace (a reused pid, a zombie, a dead process hold nothing); and count(prefix).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { open } from 'lmdb'
import { isCacheError } from '../../src/core/errors.js'
import { lmdbStore } from '../../src/store/lmdb-store.js'
import { isAlive, processIdentity, selfIdentity, type ProcessIdentity } from '../../src/store/process-identity.js'

const root = mkdtempSync(join(tmpdir(), 'stratacache-lmdb-excl-'))
after(() => rmSync(root, { recursive: true, force: true }))
let n = 0
const dir = (): string => join(root, `s${++n}`)
const locked = (err: unknown): boolean => isCacheError(err, 'ERR_DATA_DIR_LOCKED')
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

/** Writes a claim as a holder would have left it (the store's own layout: meta/owner, JSON). */
async function forgeClaim(path: string, owner: ProcessIdentity): Promise<void> {
  await lmdbStore({ path }).close() // creates the environment and its databases
  const env = open({ path, noSubdir: false, maxDbs: 4 })
  const meta = env.openDB<Buffer, Buffer>({ name: 'meta', encoding: 'binary', keyEncoding: 'binary' })
  await meta.put(Buffer.from('owner'), Buffer.from(JSON.stringify({ ...owner, since: 0, token: 'forged' })))
  await env.close()
}

function stateOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]
  } catch {
    return undefined
  }
}

describe('process identity', () => {
  test('this process is alive; the same pid with another start time, boot or pid namespace is not (pid reuse)', () => {
    const self = selfIdentity()
    assert.ok(self.start !== null, 'Linux: /proc gives the start time')
    assert.equal(isAlive(self), true)
    assert.equal(isAlive({ ...self, start: String(Number(self.start) + 1) }), false, 'a reused pid')
    assert.equal(isAlive({ ...self, boot: 'another-boot' }), false, 'recorded before a reboot')
    assert.equal(isAlive({ ...self, pidns: 'pid:[1]' }), false, 'another pid namespace cannot be checked; it must not lock out a restarted container')
    assert.equal(isAlive({ ...self, pid: 0 }), false)
  })

  test('an exited process and a zombie are dead', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' })
    const id = processIdentity(child.pid ?? 0)
    assert.equal(isAlive(id), true)
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
    assert.equal(isAlive(id), false, 'killed and reaped')
    // `sleep 0 &` then exec: the shell's child exits and nobody reaps it (sleep does not).
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] })
    try {
      const pid = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (c: Buffer) => resolve(c.toString()))))
      const deadline = Date.now() + 5000
      while (stateOf(pid) !== 'Z' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
      assert.equal(stateOf(pid), 'Z', 'a zombie to test with')
      assert.equal(isAlive(processIdentity(pid)), false, 'a zombie holds nothing')
    } finally {
      parent.kill('SIGKILL')
    }
  })
})

describe('lmdbStore exclusive', () => {
  test('a second open of a held directory (exclusive or shared) throws ERR_DATA_DIR_LOCKED; after close it opens', async () => {
    const path = dir()
    const first = lmdbStore({ path, exclusive: true })
    await first.set('k', bytes('v'), Infinity)
    assert.throws(() => lmdbStore({ path, exclusive: true }), (err: unknown) => locked(err) && /this process/.test((err as Error).message) && (err as { pid?: number }).pid === process.pid)
    assert.throws(() => lmdbStore({ path }), locked, 'a shared open is refused too')
    assert.ok((await first.get('k')) !== undefined, 'the holder is untouched')
    await first.close()
    const again = lmdbStore({ path, exclusive: true })
    await again.close()
    // Shared opens do not claim anything.
    const a = lmdbStore({ path })
    const b = lmdbStore({ path })
    await a.close()
    await b.close()
  })

  test('a claim left by a live process in another process refuses; once it dies the claim is stale', async () => {
    const path = dir()
    const holder = spawn('sleep', ['30'], { stdio: 'ignore' })
    const exited = new Promise((resolve) => holder.once('exit', resolve))
    try {
      await forgeClaim(path, processIdentity(holder.pid ?? 0))
      assert.throws(() => lmdbStore({ path, exclusive: true }), (err: unknown) => locked(err) && new RegExp(`pid ${holder.pid}\\b`).test((err as Error).message))
    } finally {
      holder.kill('SIGKILL')
      await exited
    }
    const store = lmdbStore({ path, exclusive: true })
    await store.close()
  })

  test('a claim whose pid now belongs to another process (reused pid) does not lock the directory', async () => {
    const path = dir()
    const self = selfIdentity()
    await forgeClaim(path, { ...self, start: String(Number(self.start) - 1) })
    const store = lmdbStore({ path, exclusive: true })
    await store.close()
  })

  test('exclusive must be a boolean', () => {
    assert.throws(() => lmdbStore({ path: dir(), exclusive: 'yes' as unknown as boolean }), (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS'))
  })
})

describe('lmdbStore count', () => {
  test('counts by prefix, including hashed long keys, and follows writes and deletes', async () => {
    const store = lmdbStore({ path: dir() })
    try {
      const long = 'L'.repeat(3000)
      await store.setMany([
        { key: 'a:1', value: bytes('x'), ttlMs: Infinity },
        { key: 'a:2', value: bytes('x'), ttlMs: Infinity },
        { key: 'b:1', value: bytes('x'), ttlMs: Infinity },
        { key: `${long}1`, value: bytes('x'), ttlMs: Infinity },
        { key: `${long}2`, value: bytes('x'), ttlMs: Infinity },
        { key: `${long.slice(0, 2000)}M`, value: bytes('x'), ttlMs: Infinity },
      ])
      assert.equal(store.count(), 6)
      assert.equal(store.count(''), 6)
      assert.equal(store.count('a:'), 2)
      assert.equal(store.count('a'), 2)
      assert.equal(store.count('c'), 0)
      assert.equal(store.count(long), 2, 'a prefix longer than the direct key part')
      // scan returns hashed long keys whole, for short and long prefixes.
      assert.deepEqual([...(await store.scan({ prefix: long })).keys].sort(), [`${long}1`, `${long}2`])
      assert.deepEqual([...(await store.scan({ prefix: 'L', limit: 2 })).keys].length, 2)
      const allL = [...(await store.scan({ prefix: 'L', limit: 10 })).keys].sort()
      assert.deepEqual(allL, [`${long}1`, `${long}2`, `${long.slice(0, 2000)}M`].sort())
      assert.equal(store.count('L'), 3)
      await store.delete('a:1')
      assert.equal(store.count('a:'), 1)
      // More keys outside a prefix than the count walks: it counts the prefix's range instead.
      await store.setMany(Array.from({ length: 5000 }, (_, i) => ({ key: `z:${i}`, value: bytes('x'), ttlMs: Infinity })))
      assert.equal(store.count('a:'), 1)
      assert.equal(store.count('b'), 1)
      assert.equal(store.count('z:'), 5000)
      assert.equal(store.count(), 5005)
      // A prefix holding most keys with thousands outside it (a node's records beside its
      // tombstones and tag invalidations): counted as the total minus those outside.
      await store.setMany(Array.from({ length: 6000 }, (_, i) => ({ key: `node:${i}`, value: bytes('x'), ttlMs: Infinity })))
      assert.equal(store.count('node:'), 6000)
      assert.equal(store.count('z:'), 5000)
      assert.equal(store.count('a:'), 1)
      await store.deleteMany(Array.from({ length: 1000 }, (_, i) => `z:${i}`))
      assert.equal(store.count('node:'), 6000)
      assert.equal(store.count('z:'), 4000)
      assert.equal(store.count(), 10005)
    } finally {
      await store.close()
    }
  })
})
