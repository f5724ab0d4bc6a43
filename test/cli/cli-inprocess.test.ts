// runCli in process with a fake io: argument paths that need no node (fast, no spawn).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { runCli } from '../../src/cli/main.js'
import { createReadStream } from 'node:fs'
import { Readable } from 'node:stream'
import { EXIT, exitCodeOf, MAX_CLI_VALUE_BYTES, nodesFromEnv, readBounded, UsageError, type CliIo } from '../../src/cli/cli-io.js'
import { BadRequestError, InvalidKeyError, RequestTimeoutError } from '../../src/core/errors.js'
import { errorFromResponse } from '../../src/client/client.js'
import { ManualClock } from '../../src/core/manual-clock.js'

function io(stdin?: Buffer, env: NodeJS.ProcessEnv = {}): CliIo & { out_: string; err_: string } {
  const o = {
    out_: '',
    err_: '',
    out: { write: (c: string | Uint8Array) => (o.out_ += c.toString()) },
    err: { write: (c: string) => (o.err_ += c) },
    env,
    clock: new ManualClock(0),
    now: () => 0,
    readStdin: async () => stdin,
  }
  return o
}

describe('CLI argument handling in process', () => {
  test('set without a value and with stdin on a terminal is a usage error', async () => {
    const x = io(undefined)
    assert.equal(await runCli(['set', 'k'], x), EXIT.USAGE)
    assert.match(x.err_, /no value/)
  })

  test('a value is read up to a bound: an endless stream is refused at the bound (UsageError), a short one is returned whole', async () => {
    const zero = createReadStream('/dev/zero', { highWaterMark: 16 * 1024 })
    await assert.rejects(readBounded(zero, 100_000), (e: unknown) => e instanceof UsageError && /over 100000 bytes/.test(e.message))
    assert.equal(zero.destroyed, true, 'the source is no longer read')
    const joined = await readBounded(Readable.from([Buffer.from('ab'), 'cd', new Uint8Array([101])]), 5)
    assert.equal(joined.toString(), 'abcde', 'exactly at the bound: whole')
    await assert.rejects(readBounded(Readable.from([Buffer.from('abc'), Buffer.from('def')]), 5), UsageError)
  })

  test('set refuses a value over 1 GiB (more than any node accepts) from stdin or --file, without sending it', async () => {
    const x = io(Buffer.allocUnsafe(MAX_CLI_VALUE_BYTES + 1))
    assert.equal(await runCli(['set', 'k'], x), EXIT.USAGE)
    assert.match(x.err_, /over 1073741824 bytes, more than any node accepts/)
    // An endless file: read up to the bound, then refused (it used to be read until memory ran out).
    const y = io()
    assert.equal(await runCli(['set', 'k', '--file', '/dev/zero'], y), EXIT.USAGE)
    assert.match(y.err_, /over 1073741824 bytes/)
    const z = io()
    assert.equal(await runCli(['set', 'k', '--file', '/nonexistent/value'], z), EXIT.USAGE)
    assert.match(z.err_, /cannot read \/nonexistent\/value/)
  })

  test('STRATACACHE_NODES set to blanks and commas only is a usage error, not the default node; empty is unset; --node overrides it', async () => {
    for (const argv of [['get', 'k'], ['cluster', 'status']]) {
      const x = io(undefined, { STRATACACHE_NODES: ' , ' })
      assert.equal(await runCli(argv, x), EXIT.USAGE, argv.join(' '))
      assert.match(x.err_, /STRATACACHE_NODES names no node address/, argv.join(' '))
    }
    const y = io(undefined, { STRATACACHE_NODES: ' , ' })
    assert.equal(await runCli(['get', 'k', '--node', 'ftp://x:1'], y), EXIT.USAGE)
    assert.doesNotMatch(y.err_, /STRATACACHE_NODES/, 'the flag wins: the env is not read')
    assert.match(y.err_, /ERR_INVALID_OPTIONS/)
    assert.equal(nodesFromEnv({ STRATACACHE_NODES: '' }), undefined, 'empty: unset')
    assert.equal(nodesFromEnv({}), undefined)
    assert.deepEqual(nodesFromEnv({ STRATACACHE_NODES: ' http://a:1 ,, http://b:2 ' }), ['http://a:1', 'http://b:2'])
  })

  test('set with both a value and --file is a usage error', async () => {
    const x = io()
    assert.equal(await runCli(['set', 'k', 'v', '--file', '/dev/null'], x), EXIT.USAGE)
  })

  test('a node address the client refuses is a usage error', async () => {
    const x = io()
    assert.equal(await runCli(['get', 'k', '--node', 'ftp://x:1'], x), EXIT.USAGE)
    assert.match(x.err_, /ERR_INVALID_OPTIONS/)
  })

  test('set --ttl: a bare number is seconds, and its refusal says so in seconds (not the milliseconds it became)', async () => {
    // Written as the HTTP API takes them: no leading zero, no decimal point ('5.0', '1.').
    for (const ttl of ['100000000', '1.5', '0', '01', '5.0', '1.']) {
      const x = io()
      assert.equal(await runCli(['set', 'k', 'v', '--ttl', ttl, '--node', 'http://127.0.0.1:1'], x), EXIT.USAGE, ttl)
      assert.match(x.err_, new RegExp(`--ttl.*whole seconds from 1 to 99999999.*got "${ttl.replace('.', '\\.')}"`), ttl)
      assert.doesNotMatch(x.err_, /00000000000|duration like/, ttl)
    }
  })

  test('set --tags: an empty tag in the list (a,,b, a trailing comma) is refused before sending, as the node refuses it', async () => {
    for (const tags of ['a,,b', 'a,', ',a', ' , ']) {
      const x = io()
      assert.equal(await runCli(['set', 'k', 'v', '--tags', tags, '--node', 'http://127.0.0.1:1'], x), EXIT.USAGE, tags)
      assert.match(x.err_, /ERR_INVALID_TAG/, tags)
    }
  })

  test('--version prints the package version', async () => {
    const x = io()
    assert.equal(await runCli(['--version'], x), EXIT.OK)
    assert.match(x.out_, /^\d+\.\d+\.\d+\n$/)
  })

  test('exit codes: local input 2, node refusal 4, unavailable 3', () => {
    assert.equal(exitCodeOf(new InvalidKeyError('empty')), EXIT.USAGE)
    const refused = errorFromResponse({ status: 400, headers: {}, body: Buffer.from(JSON.stringify({ code: 'ERR_INVALID_KEY', message: 'm' })) }, 'http://n:1')
    assert.equal(exitCodeOf(refused), EXIT.REFUSED)
    assert.equal(exitCodeOf(new BadRequestError('m')), EXIT.REFUSED)
    assert.equal(exitCodeOf(new RequestTimeoutError(5)), EXIT.UNAVAILABLE)
    assert.equal(exitCodeOf(new Error('anything else')), EXIT.UNAVAILABLE)
  })
})
