// `serve`'s configuration in process: flag/env/config parsing, precedence, errors, and the
// The configuration table of docs/reference/options.md pinned to the settings the command accepts.
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { envOf, flagOf, parseServeArgs, SERVE_HELP, SERVE_SETTINGS, serveCommand } from '../../src/cli/serve.js'
import { tempDir } from '../support/node-fixtures.js'

const dir = tempDir('stratacache-serve-')
after(() => dir.remove())

describe('serve configuration', () => {
  test('names: flag, env and config key of one setting', () => {
    assert.equal(flagOf('maxConnectionsPerIp'), '--max-connections-per-ip')
    assert.equal(envOf('maxConnectionsPerIp'), 'STRATACACHE_MAX_CONNECTIONS_PER_IP')
    assert.equal(envOf('dataDir'), 'STRATACACHE_DATA_DIR')
  })

  test('flags (both spellings), env and config file, with precedence and sources', () => {
    const file = join(dir.path, 'c.json')
    writeFileSync(file, JSON.stringify({ port: 7801, memory: '64mb', logRequests: true, region: 'eu' }))
    const { options, sources } = parseServeArgs(['--port=7802', '--config', file, '--drain-timeout', '3s', '--log-requests'], { STRATACACHE_PORT: '7803', STRATACACHE_REGION: 'us', STRATACACHE_MAX_IN_FLIGHT: '12' })
    assert.equal(options.port, 7802)
    assert.equal(sources.get('port'), 'flag')
    assert.equal(options.region, 'us')
    assert.equal(sources.get('region'), 'env')
    assert.equal(options.memory, '64mb')
    assert.equal(sources.get('memory'), 'config')
    assert.equal(options.maxInFlight, 12)
    assert.equal(options.drainTimeout, '3s')
    assert.equal(options.logRequests, true)
    assert.equal(sources.get('host'), undefined)
  })

  test('usage errors: unknown flags, missing values, bad numbers, bad config files', () => {
    const bad: Array<[string[], NodeJS.ProcessEnv]> = [
      [['--nope'], {}],
      [['--port'], {}],
      [['--port', 'abc'], {}],
      [['stray'], {}],
      [['--log-requests=maybe'], {}],
      [['--config', join(dir.path, 'missing.json')], {}],
      [[], { STRATACACHE_MAX_BATCH: 'many' }],
    ]
    for (const [argv, env] of bad) assert.throws(() => parseServeArgs(argv, env), /./, argv.join(' '))
    const notJson = join(dir.path, 'bad.json')
    writeFileSync(notJson, '{ nope')
    assert.throws(() => parseServeArgs(['--config', notJson], {}), /not a JSON object/)
    const unknownKey = join(dir.path, 'unknown.json')
    writeFileSync(unknownKey, '{"prot": 1}')
    assert.throws(() => parseServeArgs(['--config', unknownKey], {}), /unknown setting "prot"/)
  })

  test('serveCommand: --help exits 0, usage errors 2, invalid option values 2, a busy port 1', async () => {
    let out = ''
    let err = ''
    const io = { out: (t: string) => void (out += t), err: (t: string) => void (err += t) }
    assert.equal(await serveCommand(['--help'], {}, io), 0)
    assert.equal(out, SERVE_HELP)
    assert.equal(await serveCommand(['--frobnicate'], {}, io), 2)
    assert.match(err, /Unknown option --frobnicate/)
    assert.equal(await serveCommand(['--max-in-flight', '0', '--data-dir', join(dir.path, 'd0')], {}, io), 2)
    assert.match(err, /maxInFlight/)
    // Runs until its signal aborts; a second node on the same port cannot start (exit 1).
    const stop = new AbortController()
    out = ''
    const running = serveCommand(['--port', '0', '--data-dir', join(dir.path, 'd1'), '--log-level', 'silent'], {}, { ...io, signal: stop.signal })
    for (let i = 0; i < 100 && !/listening on/.test(out); i++) await new Promise((r) => setTimeout(r, 20))
    const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)?.[1])
    assert.ok(port > 0, out)
    assert.match(out, /stratacache node configuration:/)
    assert.equal(await serveCommand(['--port', String(port), '--data-dir', join(dir.path, 'd2'), '--log-level', 'silent'], {}, io), 1)
    assert.match(err, /cannot start/)
    stop.abort()
    assert.equal(await running, 0)
  })

  test('serveCommand: a stop requested while the node starts lets the start finish, then drains and exits 0', async () => {
    let out = ''
    const stop = new AbortController()
    const running = serveCommand(['--port', '0', '--data-dir', join(dir.path, 'd3'), '--log-level', 'silent'], {}, { out: (t) => void (out += t), err: () => undefined, signal: stop.signal })
    // The handlers are in place before the start: this abort lands while the store opens.
    stop.abort()
    assert.equal(await running, 0)
    assert.match(out, /stop requested while starting; draining/)
    assert.doesNotMatch(out, /listening on/)
    // A stop requested before the call starts nothing new either.
    out = ''
    assert.equal(await serveCommand(['--port', '0', '--data-dir', join(dir.path, 'd3'), '--log-level', 'silent'], {}, { out: (t) => void (out += t), err: () => undefined, signal: stop.signal }), 0)
    assert.match(out, /stop requested while starting/)
  })

  test('the configuration table (docs/reference/options.md) lists every setting with its flag, variable, key and default', () => {
    const doc = readFileSync(new URL('../../../docs/reference/options.md', import.meta.url), 'utf8')
    const start = doc.indexOf('\n## Node configuration')
    assert.notEqual(start, -1, 'docs/reference/options.md has a "Node configuration" section')
    const next = doc.indexOf('\n## ', start + 1)
    const section = doc.slice(start, next === -1 ? undefined : next)
    for (const s of SERVE_SETTINGS) {
      const row = section.split('\n').find((l) => l.startsWith(`| \`${flagOf(s.name)}\` |`))
      assert.ok(row !== undefined, `docs/reference/options.md has a row for ${flagOf(s.name)}`)
      assert.ok(row.includes(`\`${envOf(s.name)}\``), `${s.name}: env variable`)
      assert.ok(row.includes(`\`${s.name}\``), `${s.name}: config key`)
      assert.ok(row.includes(s.def), `${s.name}: default ${s.def}`)
    }
    const rows = section.split('\n').filter((l) => l.startsWith('| `--'))
    assert.equal(rows.length, SERVE_SETTINGS.length + 1, 'one row per setting, plus --config')
  })
})
