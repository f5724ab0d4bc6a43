// CLI niceties for people at a terminal: "did you mean" for unknown commands and options,
// --help on every command, aligned help columns, and `get` ending its line on a terminal.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { join } from 'node:path'
import { runCli, MAIN_HELP } from '../../src/cli/main.js'
import { serveCommand } from '../../src/cli/serve.js'
import { EXIT, type CliIo } from '../../src/cli/cli-io.js'
import { didYouMean } from '../../src/cli/did-you-mean.js'
import { ManualClock } from '../../src/core/manual-clock.js'
import { systemClock } from '../../src/core/system-clock.js'
import { startNode, type NodeHandle } from '../../src/server/index.js'
import { tempDir } from '../support/node-fixtures.js'

function io(options: { tty?: boolean; realClock?: boolean } = {}): CliIo & { out_: string; err_: string } {
  const o = {
    out_: '',
    err_: '',
    out: { isTTY: options.tty, write: (c: string | Uint8Array) => (o.out_ += Buffer.from(c).toString()) },
    err: { write: (c: string) => (o.err_ += c) },
    env: {},
    clock: options.realClock === true ? systemClock : new ManualClock(0),
    now: () => 0,
    readStdin: async () => undefined,
  }
  return o
}

describe('did you mean', () => {
  test('picks the closest candidate within two edits, else nothing', () => {
    assert.equal(didYouMean('--tll', ['--ttl', '--tags', '--timeout']), '--ttl')
    assert.equal(didYouMean('gte', ['get', 'set', 'del']), 'get')
    assert.equal(didYouMean('invalidat', ['invalidate', 'stats']), 'invalidate')
    assert.equal(didYouMean('xyzzy', ['get', 'set']), undefined)
    assert.equal(didYouMean('a', ['b']), undefined, 'a one-letter word is never "close"')
  })

  test('an unknown command suggests the known one', async () => {
    const x = io()
    assert.equal(await runCli(['gte', 'k'], x), EXIT.USAGE)
    assert.match(x.err_, /unknown command "gte" \(did you mean get\?\)/)
  })

  test('an unknown option of a client command suggests the known one', async () => {
    const x = io()
    assert.equal(await runCli(['set', 'k', 'v', '--tll', '5'], x), EXIT.USAGE)
    assert.match(x.err_, /Unknown option '--tll'\. Did you mean --ttl\?/)
    const y = io()
    assert.equal(await runCli(['get', 'k', '--jsno'], y), EXIT.USAGE)
    assert.match(y.err_, /Did you mean --json\?/)
  })

  test('an unknown option with no near name says so in one line, with --help and the -- way for a value starting with a dash', async () => {
    // Node's own text ran on and ended with an unbalanced quote: as in '-- "--bogus"
    const x = io()
    assert.equal(await runCli(['get', 'k', '--bogus'], x), EXIT.USAGE)
    assert.equal(x.err_, 'stratacache get: Unknown option \'--bogus\' (see --help; a value that starts with - goes after --: -- "--bogus")\n')
  })

  test('an unknown option of serve suggests the known one', async () => {
    let err = ''
    assert.equal(await serveCommand(['--prot', '0'], {}, { out: () => undefined, err: (t) => void (err += t) }), EXIT.USAGE)
    assert.match(err, /Unknown option --prot \(did you mean --port\?\)/)
  })

  test('a short option serve does not take is an unknown option, not an "unexpected argument"', async () => {
    let err = ''
    assert.equal(await serveCommand(['-p', '7700'], {}, { out: () => undefined, err: (t) => void (err += t) }), EXIT.USAGE)
    assert.match(err, /Unknown option -p \(serve takes long options such as --port; see --help\)/)
  })
})

describe('help', () => {
  for (const command of ['get', 'set', 'del', 'invalidate', 'stats', 'keys', 'bench', 'cluster']) {
    test(`${command} --help prints its usage and exits 0`, async () => {
      const x = io()
      assert.equal(await runCli([command, '--help'], x), EXIT.OK)
      assert.match(x.out_, new RegExp(`^Usage: stratacache ${command}`))
    })
  }

  test('serve --help prints its usage and exits 0', async () => {
    let out = ''
    assert.equal(await serveCommand(['--help'], {}, { out: (t) => void (out += t), err: () => undefined }), EXIT.OK)
    assert.match(out, /^Usage: stratacache serve/)
  })

  test('the command list is aligned in one column', () => {
    const lines = MAIN_HELP.split('\n')
    const start = lines.indexOf('Commands:') + 1
    const rows = lines.slice(start, lines.indexOf('', start))
    assert.equal(rows.length, 11)
    // Where each row's description starts: after the first run of two or more spaces.
    const columns = new Set(rows.map((r) => {
      const m = /^ {2}\S.*? {2,}(?=\S)/.exec(r)
      return m === null ? -1 : m[0].length
    }))
    assert.equal(columns.size, 1, `description columns: ${[...columns].join(', ')}\n${rows.join('\n')}`)
  })
})

describe('get at a terminal', () => {
  let node: NodeHandle
  let dir: { path: string; remove: () => void }
  before(async () => {
    dir = tempDir()
    node = await startNode({ port: 0, dataDir: join(dir.path, 'data'), logLevel: 'silent' })
    assert.equal(await runCli(['set', 'greeting', 'hello', '--node', node.url], io({ realClock: true })), EXIT.OK)
    assert.equal(await runCli(['set', 'line', 'hello\n', '--node', node.url], io({ realClock: true })), EXIT.OK)
  })
  after(async () => {
    await node.close()
    dir.remove()
  })

  test('ends the line on a terminal, prints the bytes exactly to a pipe', async () => {
    const tty = io({ tty: true, realClock: true })
    assert.equal(await runCli(['get', 'greeting', '--node', node.url], tty), EXIT.OK)
    assert.equal(tty.out_, 'hello\n')
    const pipe = io({ tty: false, realClock: true })
    assert.equal(await runCli(['get', 'greeting', '--node', node.url], pipe), EXIT.OK)
    assert.equal(pipe.out_, 'hello')
    const ended = io({ tty: true, realClock: true })
    assert.equal(await runCli(['get', 'line', '--node', node.url], ended), EXIT.OK)
    assert.equal(ended.out_, 'hello\n', 'no second newline after a value that ends its line')
  })
})
