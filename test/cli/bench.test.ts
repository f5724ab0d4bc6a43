// bench in process with a fake terminal: the live progress line and the summary.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { benchCommand } from '../../src/cli/bench-command.js'
import type { CliIo } from '../../src/cli/cli-io.js'
import { systemClock } from '../../src/core/system-clock.js'
import { SeededRandom } from '../../src/core/random.js'
import { startTestNode, type TestNode } from '../support/node-fixture.js'

let node: TestNode
before(async () => {
  node = await startTestNode()
})
after(async () => {
  await node?.stop()
})

function fakeIo(tty: boolean): CliIo & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    out: { write: (c: string | Uint8Array) => (io.stdout += c.toString()), isTTY: tty },
    err: { write: (c: string) => (io.stderr += c), isTTY: tty },
    env: {},
    clock: systemClock,
    now: () => performance.now(),
    readStdin: async () => undefined,
  }
  return io
}

describe('bench in process', () => {
  test('on a terminal it redraws a progress line every second, then prints the summary', async () => {
    const io = fakeIo(true)
    const code = await benchCommand(['--duration', '2500ms', '--concurrency', '2', '--keys', '20', '--node', node.url], io, new SeededRandom(1))
    assert.equal(code, 0)
    const lines = io.stderr.split('\r').filter((l) => l.includes('req/s'))
    assert.ok(lines.length >= 2, `progress lines: ${JSON.stringify(io.stderr)}`)
    assert.match(lines[0], /\d+\.\ds {2}[\d,]+ req {2}[\d,]+ req\/s {2}p99 [\d.]+ ms \(last 1s\) {2}busy \d+ {2}errors 0/)
    assert.ok(io.stderr.endsWith('\n'))
    assert.match(io.stdout, /^stratacache bench: http:\/\/127\.0\.0\.1:\d+, 2 connections/)
    assert.match(io.stdout, /requests\s+[\d,]+ \(gets [\d,]+: [\d,]+ hits, 0 misses; sets [\d,]+\)/)
  })

  test('a bench against a node that refuses every request reports errors and exits 3', async () => {
    const secured = await startTestNode({ authToken: 'x' })
    try {
      const io = fakeIo(false)
      // /healthz needs no token, so the preflight passes; every request is then refused.
      const code = await benchCommand(['--requests', '20', '--no-prefill', '--node', secured.url, '--json'], io)
      assert.equal(code, 3)
      const s = JSON.parse(io.stdout) as { errors: number; errorCodes: Record<string, number> }
      assert.equal(s.errors, 20)
      assert.deepEqual(s.errorCodes, { ERR_UNAUTHORIZED: 20 })
    } finally {
      await secured.stop()
    }
  })
})
