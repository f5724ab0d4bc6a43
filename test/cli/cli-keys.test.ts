// `stratacache keys` and the client commands' several nodes and --region, run in process
// (runCli) against real nodes started in this process on loopback.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { runCli } from '../../src/cli/main.js'
import { EXIT, type CliIo } from '../../src/cli/cli-io.js'
import { systemClock } from '../../src/core/system-clock.js'
import { freePort, startTestNode, type TestNode } from '../support/node-fixture.js'

function io(env: Record<string, string> = {}): CliIo & { out_: string; err_: string } {
  const o = {
    out_: '',
    err_: '',
    out: { write: (c: string | Uint8Array) => (o.out_ += Buffer.from(c).toString()) },
    err: { write: (c: string) => (o.err_ += c) },
    env,
    clock: systemClock,
    now: () => performance.now(),
    readStdin: async () => undefined,
  }
  return o
}

async function run(args: string[], env?: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  const x = io(env)
  const code = await runCli(args, x)
  return { code, out: x.out_, err: x.err_ }
}

let a: TestNode
let b: TestNode
let dead: string
const names = Array.from({ length: 25 }, (_, i) => `k:${String(i).padStart(2, '0')}`)

before(async () => {
  a = await startTestNode()
  b = await startTestNode()
  dead = `http://127.0.0.1:${await freePort()}`
  for (const k of [...names, 'other']) assert.equal((await run(['set', k, 'v', '--node', a.url])).code, EXIT.OK)
})
after(async () => {
  await a?.stop()
  await b?.stop()
})

describe('stratacache keys', () => {
  test('--help prints its usage', async () => {
    const r = await run(['keys', '--help'])
    assert.equal(r.code, EXIT.OK)
    assert.match(r.out, /^Usage: stratacache keys/)
    assert.match(r.out, /--prefix/)
    assert.match(r.out, /--all/)
    assert.match(r.out, /--region/)
  })

  test('one bounded page, then the printed cursor continues it', async () => {
    const first = await run(['keys', '--prefix', 'k:', '--limit', '10', '--node', a.url])
    assert.equal(first.code, EXIT.OK, first.err)
    assert.deepEqual(first.out.trimEnd().split('\n'), names.slice(0, 10))
    const m = /more keys: --cursor (\S+)/.exec(first.err)
    assert.ok(m !== null, `the cursor is on stderr: ${first.err}`)
    const second = await run(['keys', '--prefix', 'k:', '--limit', '10', '--cursor', m[1], '--node', a.url, '--json'])
    assert.equal(second.code, EXIT.OK, second.err)
    const page = JSON.parse(second.out) as { keys: string[]; cursor: string | null }
    assert.deepEqual(page.keys, names.slice(10, 20))
    assert.equal(typeof page.cursor, 'string')
    const rest = await run(['keys', '--prefix', 'k:', '--cursor', page.cursor!, '--node', a.url])
    assert.deepEqual(rest.out.trimEnd().split('\n'), names.slice(20))
    assert.equal(rest.err, '', 'no cursor left')
    // The cursor goes back with the same --prefix (cli.md): without it the node refuses it, exit 4.
    const alone = await run(['keys', '--cursor', m[1], '--node', a.url])
    assert.equal(alone.code, EXIT.REFUSED)
    assert.equal(alone.out, '')
    assert.match(alone.err, /ERR_BAD_REQUEST.*prefix/)
  })

  test('--all follows the cursor to the end; default prefix lists every key', async () => {
    const all = await run(['keys', '--all', '--limit', '7', '--prefix', 'k:', '--node', a.url])
    assert.equal(all.code, EXIT.OK, all.err)
    assert.deepEqual(all.out.trimEnd().split('\n'), names)
    assert.equal(all.err, '')
    const json = await run(['keys', '--all', '--json', '--limit', '3', '--node', a.url])
    assert.deepEqual(JSON.parse(json.out), { keys: [...names, 'other'], cursor: null })
    const none = await run(['keys', '--prefix', 'nothing:', '--node', a.url, '--json'])
    assert.deepEqual(JSON.parse(none.out), { keys: [], cursor: null })
  })

  test('deleted keys are not listed', async () => {
    assert.equal((await run(['set', 'gone:1', 'v', '--node', a.url])).code, EXIT.OK)
    assert.equal((await run(['keys', '--prefix', 'gone:', '--node', a.url])).out, 'gone:1\n')
    assert.equal((await run(['del', 'gone:1', '--node', a.url])).code, EXIT.OK)
    assert.equal((await run(['keys', '--prefix', 'gone:', '--node', a.url])).out, '')
  })

  test('bad --limit, --cursor or arguments are usage errors (exit 2)', async () => {
    for (const args of [['--limit', '0'], ['--limit', '1001'], ['--limit', 'x'], ['--cursor', ''], ['--cursor', 'garbage'], ['k:']]) {
      const r = await run(['keys', ...args, '--node', a.url])
      assert.equal(r.code, EXIT.USAGE, `${args.join(' ')}: ${r.err}`)
      assert.match(r.err, /^stratacache keys: /)
    }
    // A cursor naming a node the client was not given is refused before any request.
    const forged = Buffer.from(JSON.stringify(['http://198.51.100.1:7700', 'x'])).toString('base64url')
    const r = await run(['keys', '--cursor', forged, '--node', a.url])
    assert.equal(r.code, EXIT.USAGE)
    assert.match(r.err, /not a node of this client/)
  })
})

describe('client commands: several nodes and a region', () => {
  test('--node comma-separated and repeated: a dead node among them is skipped', async () => {
    for (const nodes of [['--node', `${dead},${a.url}`], ['--node', dead, '-n', a.url]]) {
      for (let i = 0; i < 3; i++) {
        const r = await run(['get', 'k:00', ...nodes])
        assert.equal(r.code, EXIT.OK, r.err)
        assert.equal(r.out, 'v')
      }
      const k = await run(['keys', '--prefix', 'k:0', ...nodes])
      assert.equal(k.code, EXIT.OK, k.err)
      assert.equal(k.out.trimEnd().split('\n').length, 10)
    }
  })

  test('STRATACACHE_NODES (comma-separated) and stats of several nodes', async () => {
    const r = await run(['stats', '--json'], { STRATACACHE_NODES: `${a.url}, ${b.url}` })
    assert.equal(r.code, EXIT.OK, r.err)
    assert.deepEqual(Object.keys(JSON.parse(r.out) as object).sort(), [a.url, b.url].sort())
    const flag = await run(['stats', '--json', '--node', `${a.url},${b.url}`])
    assert.deepEqual(Object.keys(JSON.parse(flag.out) as object).sort(), [a.url, b.url].sort())
    const empty = await run(['stats', '--node', ','])
    assert.equal(empty.code, EXIT.USAGE)
  })

  test('stats of several nodes with one down: the others are printed, the dead one carries its error, exit 3', async () => {
    const r = await run(['stats', '--json', '--node', `${a.url},${dead}`])
    assert.equal(r.code, EXIT.UNAVAILABLE)
    const body = JSON.parse(r.out) as Record<string, { node?: unknown; error?: { code: string; message: string } }>
    const deadUrl = Object.keys(body).find((k) => k !== a.url)!
    assert.ok(body[a.url]?.node !== undefined, 'the live node is printed')
    assert.equal(body[deadUrl]?.error?.code, 'ERR_NODE_UNREACHABLE')
    assert.match(r.err, new RegExp(`${deadUrl.replace(/[.:/]/g, '\\$&')}.*ERR_NODE_UNREACHABLE`))
  })

  test('--region (and STRATACACHE_REGION) reads over the ladder: every command works, a dead node costs a rung', async () => {
    const nodes = ['--node', `${dead},${a.url}`, '--region', 'eu']
    assert.equal((await run(['set', 'r:1', 'one', '--node', a.url, '--region', 'eu'])).code, EXIT.OK)
    for (let i = 0; i < 3; i++) {
      const g = await run(['get', 'r:1', ...nodes])
      assert.equal(g.code, EXIT.OK, g.err)
      assert.equal(g.out, 'one')
    }
    const k = await run(['keys', '--prefix', 'r:', '--all', ...nodes])
    assert.equal(k.out, 'r:1\n', k.err)
    const env = await run(['get', 'r:1', '--node', a.url], { STRATACACHE_REGION: 'eu' })
    assert.equal(env.out, 'one', env.err)
    assert.equal((await run(['invalidate', 'none', '--node', a.url, '--region', 'eu'])).code, EXIT.OK)
    assert.equal((await run(['del', 'r:1', '--node', a.url, '--region', 'eu'])).code, EXIT.OK)
    assert.equal((await run(['stats', '--node', a.url, '--region', 'eu'])).code, EXIT.OK)
    assert.equal((await run(['get', 'r:1', '--node', a.url, '--region', 'eu'])).code, EXIT.NOT_FOUND)
    const bad = await run(['get', 'r:1', '--node', a.url, '--region', ' '])
    assert.equal(bad.code, EXIT.USAGE)
  })
})
