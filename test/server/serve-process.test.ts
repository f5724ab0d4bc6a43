// `npm start`'s entry as a real child process: configuration, SIGTERM during load loses no
// acknowledged write, SIGTERM while starting drains and exits 0, exit codes.
import assert from 'node:assert/strict'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { closeSync, constants, openSync, readFileSync, writeFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { startNode, type NodeOptions } from '../../src/server/index.js'
import { send, tempDir } from '../support/node-fixtures.js'

const ENTRY = fileURLToPath(new URL('../../src/cli/serve-main.js', import.meta.url))
const silent: NonNullable<NodeOptions['logger']> = { info: () => undefined, warn: () => undefined, error: () => undefined }
const dirs: Array<{ remove: () => void }> = []
const children: ChildProcess[] = []
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
  for (const d of dirs) d.remove()
})

interface Running {
  child: ChildProcess
  url: string
  stdout: () => string
  stderr: () => string
  exit: Promise<number | null>
}

function serve(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Running> {
  const child = spawn(process.execPath, [ENTRY, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let out = ''
  let err = ''
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()))
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()))
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start in 15 s; stdout: ${out}; stderr: ${err}`)), 15_000)
    const check = (): void => {
      const m = /listening on (http:\/\/\S+)/.exec(out)
      if (m !== null) {
        clearTimeout(timer)
        child.stdout?.off('data', check)
        resolve({ child, url: m[1], stdout: () => out, stderr: () => err, exit })
      }
    }
    child.stdout?.on('data', check)
    void exit.then((code) => {
      clearTimeout(timer)
      reject(new Error(`node exited with ${code} before listening; stdout: ${out}; stderr: ${err}`))
    })
  })
}

describe('serve as a process', () => {
  test('SIGTERM during load: exit 0, and every acknowledged write is on disk', async (t) => {
    const d = tempDir()
    dirs.push(d)
    const node = await serve(['--port', '0', '--data-dir', d.path, '--disk', '64mb'])
    const acked = new Map<string, { value: string; version: number }>()
    let stop = false
    let refused = 0
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const key = `w${w}-${i % 40}`
        const value = `${w}:${i}:${'p'.repeat(i % 50)}`
        try {
          const r = await send(node.url, 'PUT', `/v1/keys/${key}`, value, {}, 5000)
          if (r.status === 200) acked.set(key, { value, version: (JSON.parse(r.body.toString()) as { version: number }).version })
          else if (r.status === 503) refused++
          else throw new Error(`unexpected status ${r.status}: ${r.body.toString()}`)
        } catch (err) {
          if (err instanceof Error && err.message.startsWith('unexpected')) throw err
          // Connection refused or reset once the node has stopped accepting: not acknowledged.
          refused++
          await new Promise((r) => setTimeout(r, 5))
        }
      }
    }
    const writers = Array.from({ length: 12 }, (_, w) => writer(w))
    await new Promise((r) => setTimeout(r, 700))
    const before = acked.size
    node.child.kill('SIGTERM')
    const code = await node.exit
    stop = true
    await Promise.all(writers)
    assert.equal(code, 0, `exit code; stdout: ${node.stdout()} stderr: ${node.stderr()}`)
    assert.ok(before > 0, 'writes were acknowledged before the signal')
    t.diagnostic(`${acked.size} keys acknowledged (${before} before SIGTERM), ${refused} writes refused or cut while stopping`)
    assert.match(node.stdout(), /"msg":"draining"/)
    assert.match(node.stdout(), /"msg":"stopped"/)
    // Read every acknowledged write back from the same data directory.
    const again = await startNode({ port: 0, dataDir: d.path, disk: '64mb', logger: silent })
    try {
      for (const [key, { value, version }] of acked) {
        const r = await again.inject({ method: 'GET', url: `/v1/keys/${key}` })
        assert.equal(r.status, 200, `acknowledged ${key} is readable`)
        assert.equal(Buffer.from(r.body).toString(), value, key)
        assert.equal(r.headers.etag, `"${version}"`, key)
      }
    } finally {
      await again.close()
    }
  })

  test('SIGTERM while the node is starting: not the default death; the start finishes, then it drains and exits 0', async () => {
    const d = tempDir()
    dirs.push(d)
    // The certificate path is a FIFO: the node's start blocks reading it until this test
    // writes the certificate, so the signal is sent while the node is surely starting.
    const cert = join(d.path, 'cert.pem')
    const key = join(d.path, 'key.pem')
    const pem = join(d.path, 'real-cert.pem')
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', pem, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' })
    execFileSync('mkfifo', [cert])
    const child = spawn(process.execPath, [ENTRY, '--port', '0', '--data-dir', join(d.path, 'data'), '--tls-cert', cert, '--tls-key', key], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    let out = ''
    let err = ''
    child.stderr.on('data', (c: Buffer) => (err += c.toString()))
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
    let signalled = false
    let written: Promise<boolean> | undefined
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
      if (!signalled && out.includes('stratacache node configuration:')) {
        signalled = true
        child.kill('SIGTERM')
        // Only now can the start go on.
        written = writeFile(cert, readFileSync(pem)).then(
          () => true,
          () => false,
        )
      }
    })
    const guard = setTimeout(() => child.kill('SIGKILL'), 20_000)
    const { code, signal } = await exit
    clearTimeout(guard)
    // If the child died before reading the FIFO, a reader that comes and goes unblocks our writer.
    if (written !== undefined && !(await Promise.race([written, new Promise<boolean>((r) => setTimeout(() => r(false), 100))]))) closeSync(openSync(cert, constants.O_RDONLY | constants.O_NONBLOCK))
    await written
    assert.equal(signal, null, `ended by ${String(signal)} instead of the graceful path; stdout: ${out} stderr: ${err}`)
    assert.equal(code, 0, `stdout: ${out} stderr: ${err}`)
    // Where the handler runs depends on when the event loop next polls (the rest of the
    // start may finish in one turn); either way the signal took the graceful path.
    if (/stop requested while starting/.test(out)) assert.doesNotMatch(out, /listening on/, 'a node told to stop while starting does not announce itself')
    assert.match(out, /"msg":"started"/)
    assert.match(out, /"msg":"draining"/)
    assert.match(out, /"msg":"stopped"/)
    // The store was closed cleanly: it opens again.
    const again = await startNode({ port: 0, dataDir: join(d.path, 'data'), logger: silent })
    await again.close()
  })

  test('npm start: SIGTERM to the npm process reaches the node, which drains and exits 0 (npm too)', async () => {
    // `start` is one `exec node …` command (the build is `prestart`), so npm's run-script
    // signals the node itself; with `tsc && node …` the shell died and orphaned the node.
    // --ignore-scripts skips only prestart (the build): the test runs on the build it has.
    const d = tempDir()
    dirs.push(d)
    const root = fileURLToPath(new URL('../../../', import.meta.url))
    const npm = spawn('npm', ['start', '--ignore-scripts', '--', '--port', '0', '--data-dir', d.path], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(npm)
    let out = ''
    npm.stdout.on('data', (c: Buffer) => (out += c.toString()))
    npm.stderr.on('data', (c: Buffer) => (out += c.toString()))
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => npm.once('exit', (code, signal) => resolve({ code, signal })))
    const guard = setTimeout(() => npm.kill('SIGKILL'), 30_000)
    for (let i = 0; i < 600 && !/listening on/.test(out) && npm.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50))
    const url = /listening on (http:\/\/\S+)/.exec(out)?.[1]
    assert.ok(url !== undefined, `npm start did not start the node: ${out}`)
    const nodePid = Number(/"pid":(\d+)[^\n]*"msg":"started"/.exec(out)?.[1])
    assert.ok(nodePid > 0 && nodePid !== npm.pid, 'the node runs in its own process under npm')
    assert.equal((await send(url, 'PUT', '/v1/keys/via-npm', 'kept')).status, 200)
    npm.kill('SIGTERM')
    const { code, signal } = await exit
    clearTimeout(guard)
    let orphaned = true
    try {
      process.kill(nodePid, 0)
      process.kill(nodePid, 'SIGKILL')
    } catch {
      orphaned = false
    }
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, out)
    assert.equal(orphaned, false, 'no orphaned node left running')
    assert.match(out, /"msg":"draining"/)
    assert.match(out, /"msg":"stopped"/)
    const again = await startNode({ port: 0, dataDir: d.path, logger: silent })
    try {
      const r = await again.inject({ method: 'GET', url: '/v1/keys/via-npm' })
      assert.equal(Buffer.from(r.body).toString(), 'kept')
    } finally {
      await again.close()
    }
  })

  test('configuration: flags over env over config file; printed at start; bad input exits 2', async () => {
    const d = tempDir()
    dirs.push(d)
    const config = join(d.path, 'node.json')
    writeFileSync(config, JSON.stringify({ maxInFlight: 11, region: 'from-file', rateLimit: 5 }))
    const node = await serve(['--config', config, '--port', '0', '--data-dir', join(d.path, 'data'), '--rate-limit', '7'], { STRATACACHE_REGION: 'from-env', STRATACACHE_AUTH_TOKEN: 'hidden-secret' })
    const out = node.stdout()
    assert.match(out, /maxInFlight\s+11\s+\(config\)/)
    assert.match(out, /region\s+from-env\s+\(env\)/)
    assert.match(out, /rateLimit\s+7\s+\(flag\)/)
    assert.match(out, /authToken\s+\*\*\*\s+\(env\)/)
    assert.doesNotMatch(out, /hidden-secret/)
    assert.equal((await send(node.url, 'GET', '/v1/stats')).status, 401, 'the token from the environment is in force')
    node.child.kill('SIGINT')
    assert.equal(await node.exit, 0)

    const usage = async (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; err: string }> => {
      const child = spawn(process.execPath, [ENTRY, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
      children.push(child)
      let err = ''
      child.stderr?.on('data', (c: Buffer) => (err += c.toString()))
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
      return { code, err }
    }
    const unknown = await usage(['--no-such-flag'])
    assert.equal(unknown.code, 2)
    assert.match(unknown.err, /Unknown option --no-such-flag/)
    const badValue = await usage(['--port', 'eighty'])
    assert.equal(badValue.code, 2)
    const badEnv = await usage(['--data-dir', join(d.path, 'x')], { STRATACACHE_MAX_IN_FLIGHT: '0' })
    assert.equal(badEnv.code, 2)
    assert.match(badEnv.err, /maxInFlight/)
    const help = spawn(process.execPath, [ENTRY, '--help'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let helpOut = ''
    help.stdout.on('data', (c: Buffer) => (helpOut += c.toString()))
    assert.equal(await new Promise((resolve) => help.once('exit', resolve)), 0)
    assert.match(helpOut, /--max-in-flight/)
    assert.match(helpOut, /STRATACACHE_MAX_IN_FLIGHT/)
  })
})
