// The `stratacache` CLI as real child processes against a real node: output, exit codes.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { CLI, freePort, startTestNode, type TestNode } from '../support/node-fixture.js'

interface Run {
  code: number | null
  stdout: Buffer
  stderr: string
}

function cli(args: string[], { stdin, env = {} }: { stdin?: Buffer | string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const base: NodeJS.ProcessEnv = { ...process.env, STRATACACHE_NO_TICKER: '1' }
    // The machine's own settings must not leak into the commands under test.
    for (const name of Object.keys(base)) if (name.startsWith('STRATACACHE_') && name !== 'STRATACACHE_NO_TICKER') delete base[name]
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...base, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const out: Buffer[] = []
    let err = ''
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout: Buffer.concat(out), stderr: err })
    })
    if (stdin !== undefined) child.stdin.end(stdin)
    else child.stdin.end()
  })
}

/** Runs the CLI and closes its stdout after the first chunk, as `| head -c 1` does. */
function cliClosingStdout(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, STRATACACHE_NO_TICKER: '1' }
    for (const name of Object.keys(env)) if (name.startsWith('STRATACACHE_') && name !== 'STRATACACHE_NO_TICKER') delete env[name]
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    child.stdout.once('data', () => child.stdout.destroy())
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stderr: err })
    })
  })
}

let node: TestNode
let n: string[]
before(async () => {
  node = await startTestNode()
  n = ['--node', node.url]
})
after(async () => {
  await node?.stop()
})

describe('stratacache CLI', () => {
  test('--help on every command exits 0 with its usage; no command or an unknown one is a usage error', async () => {
    for (const command of ['serve', 'get', 'set', 'del', 'invalidate', 'stats', 'bench']) {
      const r = await cli([command, '--help'])
      assert.equal(r.code, 0, command)
      assert.match(r.stdout.toString(), new RegExp(`Usage: stratacache ${command}`), command)
    }
    const top = await cli(['--help'])
    assert.equal(top.code, 0)
    assert.match(top.stdout.toString(), /Exit codes: 0 ok, 1 not found/)
    assert.equal((await cli([])).code, 2)
    const unknown = await cli(['frobnicate'])
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /unknown command "frobnicate"/)
    const badFlag = await cli(['get', 'k', '--bogus', ...n])
    assert.equal(badFlag.code, 2)
    assert.equal((await cli(['get', ...n])).code, 2, 'missing key')
    assert.equal((await cli(['get', 'a', 'b', ...n])).code, 2, 'extra argument')
    assert.equal((await cli(['set', 'k', 'v', '--ttl', '0', ...n])).code, 2, 'ttl 0 refused before sending')
    assert.equal((await cli(['set', 'k', 'v', '--tags', 'a::b', ...n])).code, 2, 'bad tag refused before sending')
    assert.equal((await cli(['set', 'k', 'v', '--if-version', 'x', ...n])).code, 2)
    assert.equal((await cli(['get', '', ...n])).code, 2, 'empty key')
  })

  test('set prints the version; get prints the value; --json shows version, ttl, tags', async () => {
    const set = await cli(['set', 'greeting', 'hello world', '--ttl', '90', '--tags', 'org:1,org:2', ...n])
    assert.equal(set.code, 0, set.stderr)
    const version = Number(set.stdout.toString().trim())
    assert.ok(Number.isSafeInteger(version) && version > 0)
    const get = await cli(['get', 'greeting', ...n])
    assert.equal(get.code, 0)
    assert.equal(get.stdout.toString(), 'hello world')
    const json = await cli(['get', 'greeting', '--json', ...n])
    const parsed = JSON.parse(json.stdout.toString()) as { value: string; encoding: string; version: number; ttl: number; tags: string[] }
    assert.equal(parsed.value, 'hello world')
    assert.equal(parsed.encoding, 'utf8')
    assert.equal(parsed.version, version)
    assert.ok(parsed.ttl > 80 && parsed.ttl <= 90)
    assert.deepEqual(parsed.tags, ['org:1', 'org:2'])
    const forever = await cli(['set', 'forever', 'x', '--ttl', 'none', '--json', ...n])
    assert.deepEqual(JSON.parse(forever.stdout.toString()), { version: JSON.parse(forever.stdout.toString()).version, ttl: null })
  })

  test('--tags repeated adds up, as --node does: no tag is dropped', async () => {
    // The last --tags silently won: the entry lost its other tags, and an invalidation of
    // them left it served.
    assert.equal((await cli(['set', 'multi', 'x', '--tags', 'rep:1', '--tags', 'rep:2,rep:3', ...n])).code, 0)
    const got = JSON.parse((await cli(['get', 'multi', '--json', ...n])).stdout.toString()) as { tags: string[] }
    assert.deepEqual(got.tags, ['rep:1', 'rep:2', 'rep:3'])
    assert.equal((await cli(['set', 'multi', 'x', '--tags', 'rep:1', '--tags', '', ...n])).code, 0, "an empty --tags adds none")
    assert.deepEqual((JSON.parse((await cli(['get', 'multi', '--json', ...n])).stdout.toString()) as { tags: string[] }).tags, ['rep:1'])
    assert.equal((await cli(['invalidate', 'rep:1', ...n])).code, 0)
    assert.equal((await cli(['get', 'multi', ...n])).code, 1, 'invalidating the first tag reaches the entry')
  })

  test('binary values through stdin and --file come back byte for byte', async () => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
    assert.equal((await cli(['set', 'bin', ...n], { stdin: bytes })).code, 0)
    const got = await cli(['get', 'bin', ...n])
    assert.ok(got.stdout.equals(bytes), 'stdin round trip')
    const asJson = JSON.parse((await cli(['get', 'bin', '--json', ...n])).stdout.toString()) as { value: string; encoding: string }
    assert.equal(asJson.encoding, 'base64')
    assert.ok(Buffer.from(asJson.value, 'base64').equals(bytes))
    const dir = mkdtempSync(join(tmpdir(), 'stratacache-cli-'))
    try {
      writeFileSync(join(dir, 'v.bin'), bytes.subarray(100))
      assert.equal((await cli(['set', 'file', '--file', join(dir, 'v.bin'), ...n])).code, 0)
      assert.ok((await cli(['get', 'file', ...n])).stdout.equals(bytes.subarray(100)))
      assert.equal((await cli(['set', 'file', '--file', join(dir, 'missing'), ...n])).code, 2)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('not found is exit 1 for get and del; del of an existing key is 0', async () => {
    const miss = await cli(['get', 'never-set', ...n])
    assert.equal(miss.code, 1)
    assert.equal(miss.stdout.length, 0)
    assert.match(miss.stderr, /not found/)
    await cli(['set', 'doomed', 'x', ...n])
    assert.equal((await cli(['del', 'doomed', ...n])).code, 0)
    assert.equal((await cli(['del', 'doomed', ...n])).code, 1)
  })

  test('--if-version mismatch is exit 4 (refused); a match writes', async () => {
    const v = Number((await cli(['set', 'cas', 'a', ...n])).stdout.toString())
    const wrong = await cli(['set', 'cas', 'b', '--if-version', String(v + 1000), ...n])
    assert.equal(wrong.code, 4)
    assert.match(wrong.stderr, /ERR_PRECONDITION_FAILED/)
    assert.equal((await cli(['set', 'cas', 'c', '--if-version', String(v), ...n])).code, 0)
    assert.equal((await cli(['get', 'cas', ...n])).stdout.toString(), 'c')
  })

  test('invalidate drops tagged entries and prints the count', async () => {
    await cli(['set', 'tagged', 'x', '--tags', 'team:7:doc:1', ...n])
    const r = await cli(['invalidate', 'team:7', ...n])
    assert.equal(r.code, 0)
    assert.equal(r.stdout.toString().trim(), '1')
    assert.equal((await cli(['get', 'tagged', ...n])).code, 1)
    assert.equal((await cli(['invalidate', 'bad tag', ...n])).code, 2)
  })

  test('stats prints the node statistics as JSON', async () => {
    const r = await cli(['stats', ...n])
    assert.equal(r.code, 0)
    const stats = JSON.parse(r.stdout.toString()) as { node: { address: string }; requests: { total: number } }
    assert.equal(typeof stats.requests.total, 'number')
    const both = JSON.parse((await cli(['stats', '--json', '-n', node.url, '-n', node.url.replace('127.0.0.1', 'localhost')])).stdout.toString()) as Record<string, unknown>
    assert.equal(Object.keys(both).length, 2)
  })

  test('an unreachable node is exit 3; STRATACACHE_NODES picks the node', async () => {
    const port = await freePort()
    const r = await cli(['get', 'k', '--node', `127.0.0.1:${port}`, '--timeout', '1s'])
    assert.equal(r.code, 3)
    assert.match(r.stderr, /ERR_NODE_UNREACHABLE/)
    const viaEnv = await cli(['get', 'greeting'], { env: { STRATACACHE_NODES: node.url } })
    assert.equal(viaEnv.code, 0)
    assert.equal(viaEnv.stdout.toString(), 'hello world')
  })

  test('auth: without the token exit 4, with --token or STRATACACHE_AUTH_TOKEN exit 0', async () => {
    const secured = await startTestNode({ authToken: 'cli-secret' })
    try {
      const denied = await cli(['set', 'k', 'v', '--node', secured.url])
      assert.equal(denied.code, 4)
      assert.match(denied.stderr, /ERR_UNAUTHORIZED/)
      assert.equal((await cli(['set', 'k', 'v', '--node', secured.url, '--token', 'cli-secret'])).code, 0)
      assert.equal((await cli(['get', 'k', '--node', secured.url], { env: { STRATACACHE_AUTH_TOKEN: 'cli-secret' } })).stdout.toString(), 'v')
    } finally {
      await secured.stop()
    }
  })

  test('a reader that closes stdout early (| head) ends the command quietly: exit 0, no stack trace', async () => {
    // EPIPE on stdout crashed the process with an unhandled 'error' event: a raw stack on
    // stderr and exit 1, which the docs give to "not found".
    const big = Buffer.alloc(4 << 20, 0x61)
    assert.equal((await cli(['set', 'epipe:big', ...n], { stdin: big })).code, 0)
    for (let i = 0; i < 30; i++) assert.equal((await cli(['set', `epipe:k${i}`, 'v', ...n])).code, 0)
    for (const args of [['get', 'epipe:big'], ['keys', '--all', '--limit', '1', '--prefix', 'epipe:k']]) {
      const r = await cliClosingStdout([...args, ...n])
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
      assert.doesNotMatch(r.stderr, /EPIPE|\n\s+at /, args.join(' '))
    }
  })

  test('bench runs a bounded load and prints a summary with throughput and percentiles', async () => {
    const r = await cli(['bench', '--requests', '300', '--concurrency', '4', '--keys', '50', '--value-size', '64', '--json', ...n])
    assert.equal(r.code, 0, r.stderr)
    const s = JSON.parse(r.stdout.toString()) as { requests: number; gets: number; sets: number; hits: number; misses: number; errors: number; throughput: number; latencyMs: Record<string, number> }
    assert.equal(s.requests, 300)
    assert.equal(s.gets + s.sets, 300)
    assert.equal(s.hits, s.gets, 'the key space was prefilled: every get hits')
    assert.equal(s.errors, 0)
    assert.ok(s.throughput > 0)
    assert.ok(s.latencyMs.p50 > 0 && s.latencyMs.p50 <= s.latencyMs.p90 && s.latencyMs.p90 <= s.latencyMs.p99 && s.latencyMs.p99 <= s.latencyMs.max)
    assert.equal(r.stderr, '', 'no progress line when stderr is not a terminal')
    const text = await cli(['bench', '--duration', '500ms', '--concurrency', '2', '--keys', '10', ...n])
    assert.equal(text.code, 0)
    assert.match(text.stdout.toString(), /throughput\s+[\d,]+ req\/s/)
    assert.match(text.stdout.toString(), /p50 [\d.]+ ms {2}p90 [\d.]+ ms {2}p99 [\d.]+ ms {2}max [\d.]+ ms/)
    const dead = await cli(['bench', '--requests', '10', '--node', `127.0.0.1:${await freePort()}`, '--timeout', '1s'])
    assert.equal(dead.code, 3)
    assert.equal((await cli(['bench', '--concurrency', '0', ...n])).code, 2)
    assert.equal((await cli(['bench', '--reads', '2', ...n])).code, 2)
  })
})
