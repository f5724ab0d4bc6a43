// Durability of acknowledged writes: an lmdbStore write, and the node's PUT, resolve only
// after their commit reached the disk (fdatasync returned), not merely after it became
// visible. lmdb-js commits with `overlappingSync` on Linux: the commit is visible before its
// sync and other writers proceed while it syncs, but the write itself resolves after it
// (decision 0390). The test delays the return of every fsync-family system call with
// strace's fault injection (real syscalls, real disk) and checks that no write, nor PUT,
// resolves sooner than that delay: one that did would have been acknowledged before it was
// durable. strace is one of the packages .ci/run installs.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, describe, test } from 'node:test'
import { freePort } from '../support/node-fixture.js'

const DELAY_MS = 400
const SYNCS = 'fdatasync,fsync,msync,sync_file_range'
const STRACE = ['-f', '-qq', '-o', '/dev/null', '-e', `trace=${SYNCS}`, '-e', `inject=${SYNCS}:delay_exit=${DELAY_MS * 1000}`]
const CHILD = fileURLToPath(new URL('../support/durability-child.js', import.meta.url))
const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))

const root = mkdtempSync(join(tmpdir(), 'stratacache-durability-'))
after(() => rmSync(root, { recursive: true, force: true }))

function requireStrace(): void {
  const probe = spawnSync('strace', ['-V'], { encoding: 'utf8' })
  assert.equal(probe.status, 0, `strace is needed for this test (apt-get install strace; .ci/run installs it): ${probe.error?.message ?? probe.stderr}`)
}

describe('acknowledged writes are durable (fsync before the answer)', () => {
  test('lmdbStore: set, setMany, delete and clear resolve only after their commit is synced', async () => {
    requireStrace()
    const dir = join(root, 'store')
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('strace', [...STRACE, process.execPath, CHILD, dir], { stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
      child.once('error', reject)
      child.once('exit', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`child exited with ${code}: ${stderr.slice(-2000)}`))))
    })
    const took = JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, number>
    assert.deepEqual(Object.keys(took).sort(), ['clear', 'delete', 'set', 'setMany'])
    for (const [write, ms] of Object.entries(took)) {
      assert.ok(ms >= DELAY_MS, `${write} resolved after ${ms} ms, before its commit's delayed sync (${DELAY_MS} ms) returned`)
    }
  })

  test('the node: a PUT is answered only after its commit is synced', async () => {
    requireStrace()
    const dataDir = join(root, 'node')
    const port = await freePort()
    const child = spawn('strace', [...STRACE, process.execPath, CLI, 'serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir], {
      env: { ...process.env, STRATACACHE_NO_TICKER: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    try {
      const url = `http://127.0.0.1:${port}`
      const deadline = Date.now() + 30_000
      for (;;) {
        assert.equal(child.exitCode, null, `node exited before answering: ${stderr.slice(-2000)}`)
        const up = await fetch(`${url}/healthz`).then((r) => r.status === 200, () => false)
        if (up) break
        assert.ok(Date.now() < deadline, `node did not answer /healthz within 30 s: ${stderr.slice(-2000)}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      for (const key of ['fresh', 'fresh', 'other']) {
        const t = performance.now()
        const res = await fetch(`${url}/v1/keys/${key}`, { method: 'PUT', body: 'v'.repeat(100) })
        const ms = performance.now() - t
        assert.equal(res.status, 200, await res.text())
        await res.arrayBuffer().catch(() => undefined)
        assert.ok(ms >= DELAY_MS, `PUT ${key} answered after ${Math.round(ms)} ms, before its commit's delayed sync (${DELAY_MS} ms) returned`)
        const read = await fetch(`${url}/v1/keys/${key}`)
        assert.equal(read.status, 200)
        assert.equal(await read.text(), 'v'.repeat(100))
      }
    } finally {
      // strace detaches its tracee when it is killed: stop the node itself, strace then exits.
      const node = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ')[0])
      if (node > 0) process.kill(node, 'SIGTERM')
      const timer = setTimeout(() => (node > 0 ? process.kill(node, 'SIGKILL') : child.kill('SIGKILL')), 15_000)
      await exited
      clearTimeout(timer)
    }
  })
})
