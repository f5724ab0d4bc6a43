// The node's data directory: one node at a time (a second one refuses to start, a holder
// killed with SIGKILL does not block the next start), and what /v1/stats reports after a
// restart (what is on disk, not what happens to be in memory).
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { isCacheError } from '../../src/core/errors.js'
import { startNode, type NodeOptions } from '../../src/server/index.js'
import { send, tempDir } from '../support/node-fixtures.js'

const ENTRY = fileURLToPath(new URL('../../src/cli/serve-main.js', import.meta.url))
const silent: NonNullable<NodeOptions['logger']> = { info: () => undefined, warn: () => undefined, error: () => undefined }
const dirs: Array<{ remove: () => void }> = []
const children: ChildProcess[] = []
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  for (const d of dirs) d.remove()
})

interface Outcome {
  child: ChildProcess
  /** The URL once it listens; undefined when it exited first. */
  url: string | undefined
  code: number | null | undefined
  stdout: () => string
  stderr: () => string
  exit: Promise<number | null>
}

/** Spawns `stratacache serve` and resolves once it listens or exits, whichever comes first (bounded). */
function serve(args: string[]): Promise<Outcome> {
  const child = spawn(process.execPath, [ENTRY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let out = ''
  let err = ''
  child.stdout.on('data', (c: Buffer) => (out += c.toString()))
  child.stderr.on('data', (c: Buffer) => (err += c.toString()))
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve neither listened nor exited in 15 s; stdout: ${out}; stderr: ${err}`)), 15_000)
    const base = { child, stdout: () => out, stderr: () => err, exit }
    const check = (): void => {
      const m = /listening on (http:\/\/\S+)/.exec(out)
      if (m === null) return
      clearTimeout(timer)
      resolve({ ...base, url: m[1], code: undefined })
    }
    child.stdout.on('data', check)
    void exit.then((code) => {
      clearTimeout(timer)
      resolve({ ...base, url: undefined, code })
    })
  })
}

describe('one node per data directory', () => {
  test('a second `serve` on a held directory exits 1 with ERR_DATA_DIR_LOCKED; after kill -9 of the holder the next start succeeds', async () => {
    const d = tempDir()
    dirs.push(d)
    const a = await serve(['--port', '0', '--data-dir', d.path])
    assert.ok(a.url !== undefined, `the first node starts: ${a.stderr()}`)
    assert.equal((await send(a.url, 'PUT', '/v1/keys/k', 'v1')).status, 200)

    const b = await serve(['--port', '0', '--data-dir', d.path])
    if (b.url !== undefined) b.child.kill('SIGKILL')
    assert.equal(b.url, undefined, 'the second node must not start on a held data directory')
    assert.equal(b.code, 1, `exit code; stderr: ${b.stderr()}`)
    assert.match(b.stderr(), /ERR_DATA_DIR_LOCKED/)
    assert.match(b.stderr(), new RegExp(`pid ${a.child.pid}\\b`), 'the message names the holder')
    assert.ok(b.stderr().includes(d.path), 'the message names the directory')
    assert.doesNotMatch(b.stderr(), /\n\s+at /, 'a message, not a stack trace')

    // The holder is untouched by the refused start.
    assert.equal((await send(a.url, 'PUT', '/v1/keys/k', 'v2')).status, 200)
    assert.equal((await send(a.url, 'GET', '/v1/keys/k')).body.toString(), 'v2')

    // SIGKILL: the claim stays on disk, but its holder is dead, so it must not block.
    a.child.kill('SIGKILL')
    await a.exit
    const c = await serve(['--port', '0', '--data-dir', d.path])
    assert.ok(c.url !== undefined, `a start after kill -9 of the holder succeeds; stderr: ${c.stderr()}`)
    assert.equal((await send(c.url, 'GET', '/v1/keys/k')).body.toString(), 'v2')
    c.child.kill('SIGTERM')
    assert.equal(await c.exit, 0)
    // A clean stop released the claim: the next node (in this process) starts too.
    const again = await startNode({ port: 0, dataDir: d.path, logger: silent })
    await again.close()
  })

  test('in one process: a second startNode on a held directory rejects with ERR_DATA_DIR_LOCKED and the first keeps serving', async () => {
    const d = tempDir()
    dirs.push(d)
    const first = await startNode({ port: 0, dataDir: d.path, logger: silent })
    try {
      await first.inject({ method: 'PUT', url: '/v1/keys/a', body: 'one' })
      await assert.rejects(
        startNode({ port: 0, dataDir: d.path, logger: silent }),
        (err: unknown) => isCacheError(err, 'ERR_DATA_DIR_LOCKED') && /this process/.test(err.message),
      )
      const r = await first.inject({ method: 'GET', url: '/v1/keys/a' })
      assert.equal(Buffer.from(r.body).toString(), 'one')
    } finally {
      await first.close()
    }
    const second = await startNode({ port: 0, dataDir: d.path, logger: silent })
    await second.close()
  })
})

describe('/v1/stats after a restart', () => {
  test('cache.size reports the entries the node holds on disk (1,500 keys), and follows deletes and clears', async () => {
    const d = tempDir()
    dirs.push(d)
    const n = 1500
    const first = await startNode({ port: 0, dataDir: d.path, logger: silent })
    try {
      for (let start = 0; start < n; start += 500) {
        const entries = Array.from({ length: 500 }, (_, i) => ({ key: `${start + i < 100 ? 'p:' : 'k:'}${start + i}`, value: Buffer.from(`v${start + i}`).toString('base64'), ttl: 3600 }))
        const r = await first.inject({ method: 'POST', url: '/v1/mset', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ entries }) })
        assert.equal(r.status, 200, Buffer.from(r.body).toString())
      }
    } finally {
      await first.close()
    }
    const second = await startNode({ port: 0, dataDir: d.path, logger: silent })
    try {
      const size = async (): Promise<number> => (JSON.parse(Buffer.from((await second.inject({ method: 'GET', url: '/v1/stats' })).body).toString()) as { cache: { size: number } }).cache.size
      assert.equal(await size(), n, 'every key on disk is counted after the restart')
      assert.equal(second.stats().cache.size, n)
      assert.equal((await second.inject({ method: 'DELETE', url: '/v1/keys/k:700' })).status, 200)
      assert.equal(await size(), n - 1)
      assert.equal((await second.inject({ method: 'DELETE', url: '/v1/keys?prefix=p%3A', headers: { 'x-confirm': 'clear-all' } })).status, 200)
      assert.equal(await size(), n - 101)
      assert.equal((await second.inject({ method: 'PUT', url: '/v1/keys/new', body: 'x' })).status, 200)
      assert.equal(await size(), n - 100)
      // Tag versions live in the store beside the entries; they are not entries.
      assert.equal((await second.inject({ method: 'PUT', url: '/v1/keys/tagged?tags=t1', body: 'x' })).status, 200)
      assert.equal((await second.inject({ method: 'POST', url: '/v1/invalidate', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tags: ['t1', 't2'] }) })).status, 200)
      assert.equal(await size(), n - 99)
    } finally {
      await second.close()
    }
  })
})
