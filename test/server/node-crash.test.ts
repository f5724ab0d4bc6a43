// kill -9 during a burst of durable PUTs (distinct keys and one hot key, so group commits
// are under way): after a restart on the same data directory every acknowledged write is
// there — the key holds that version or a newer one (decision 0241).
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
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

function serve(dataDir: string): Promise<{ child: ChildProcess; url: string; exit: Promise<unknown> }> {
  const child = spawn(process.execPath, [ENTRY, '--port', '0', '--data-dir', dataDir, '--disk', '64mb'], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let out = ''
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()))
  child.stderr?.resume()
  const exit = new Promise((resolve) => child.once('exit', resolve))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start in 15 s; stdout: ${out}`)), 15_000)
    child.stdout?.on('data', () => {
      const m = /listening on (http:\/\/\S+)/.exec(out)
      if (m !== null) {
        clearTimeout(timer)
        resolve({ child, url: m[1], exit })
      }
    })
  })
}

describe('node killed with SIGKILL', () => {
  test('during a write burst on distinct keys and one hot key: every acknowledged write is there after the restart', async (t) => {
    const d = tempDir()
    dirs.push(d)
    const node = await serve(d.path)
    /** Highest acknowledged version per key. */
    const acked = new Map<string, number>()
    let stop = false
    let cut = 0
    const writer = async (key: (i: number) => string): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const k = key(i)
        try {
          const r = await send(node.url, 'PUT', `/v1/keys/${k}`, `value ${i}`, {}, 5000)
          if (r.status !== 200) throw new Error(`unexpected status ${r.status}: ${r.body.toString()}`)
          const version = (JSON.parse(r.body.toString()) as { version: number }).version
          acked.set(k, Math.max(acked.get(k) ?? 0, version))
        } catch (err) {
          if (err instanceof Error && err.message.startsWith('unexpected')) throw err
          cut++ // the process is gone: not acknowledged
          if (stop) return
          await new Promise((r) => setTimeout(r, 5))
        }
      }
    }
    const writers = [...Array.from({ length: 8 }, (_, w) => writer((i) => `d${w}-${i % 50}`)), ...Array.from({ length: 8 }, () => writer(() => 'hot'))]
    await new Promise((r) => setTimeout(r, 800))
    const before = acked.size
    node.child.kill('SIGKILL')
    await node.exit
    stop = true
    await Promise.all(writers)
    assert.ok(before > 0 && acked.has('hot'), 'writes were acknowledged before the kill')
    t.diagnostic(`${acked.size} keys acknowledged, ${cut} requests cut by the kill`)
    const again = await startNode({ port: 0, dataDir: d.path, disk: '64mb', logger: silent })
    try {
      for (const [key, version] of acked) {
        const r = await again.inject({ method: 'GET', url: `/v1/keys/${key}` })
        assert.equal(r.status, 200, `acknowledged ${key} is readable`)
        const etag = Number(String(r.headers.etag).replaceAll('"', ''))
        assert.ok(etag >= version, `${key}: version ${etag} on disk, ${version} acknowledged`)
      }
    } finally {
      await again.close()
    }
  })
})
