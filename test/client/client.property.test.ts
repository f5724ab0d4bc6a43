// Property test of the attempt loop on a ManualClock: whatever sequence of answers and
// faults the node produces, a call (1) settles within retry.maxElapsed, (2) never repeats a
// plain write after an ambiguous failure, (3) spends at most `retries` retries on failures,
// (4) succeeds only with the node's success answer.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { createClient } from '../../src/client/client.js'
import { ManualClock } from '../../src/core/manual-clock.js'
import { SeededRandom } from '../../src/core/random.js'
import { drive } from '../support/drive.js'
import { NetworkFailure, respond, ScriptedTransport, wireError } from '../support/scripted-transport.js'

type Fault = 'ok' | 'refused' | 'reset' | 'hang' | 'e500' | 'store503' | 'busy0' | 'busy1' | 'busy3' | 'e429'
const faultArb = fc.constantFrom<Fault>('ok', 'refused', 'reset', 'hang', 'e500', 'store503', 'busy0', 'busy1', 'busy3', 'e429')
const AMBIGUOUS: ReadonlySet<Fault> = new Set(['reset', 'hang', 'e500', 'store503'])
const FAILURE: ReadonlySet<Fault> = new Set(['refused', 'reset', 'hang', 'e500', 'store503'])

test('the attempt loop keeps its bounds for any sequence of faults', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(faultArb, { minLength: 1, maxLength: 12 }), fc.constantFrom('get', 'set', 'setIf'), fc.integer({ min: 1, max: 2 ** 30 }), async (script, op, seed) => {
      const clock = new ManualClock(0)
      const seen: Fault[] = []
      const transport = new ScriptedTransport(clock, () => {
        const f = script[Math.min(seen.length, script.length - 1)]
        seen.push(f)
        switch (f) {
          case 'ok':
            return op === 'get' ? respond(200, 'v', { etag: '"1"', 'x-ttl': '5' }) : respond(200, { version: 2, ttl: 5 })
          case 'refused':
            return new NetworkFailure('ECONNREFUSED')
          case 'reset':
            return new NetworkFailure('ECONNRESET')
          case 'hang':
            return 'hang'
          case 'e500':
            return wireError(500, 'ERR_INTERNAL')
          case 'store503':
            return wireError(503, 'ERR_STORE_UNAVAILABLE')
          case 'busy0':
            return wireError(503, 'ERR_BUSY')
          case 'busy1':
            return wireError(503, 'ERR_BUSY', { 'retry-after': '1' })
          case 'busy3':
            return wireError(503, 'ERR_BUSY', { 'retry-after': '3' })
          case 'e429':
            return wireError(429, 'ERR_RATE_LIMITED', { 'retry-after': '1' })
        }
      })
      const maxElapsed = 6000
      const client = createClient({ nodes: ['http://a:1', 'http://b:2'], clock, random: new SeededRandom(seed), transport, timeout: 1000, retry: { maxElapsed }, eject: { after: 100 } })
      const call = op === 'get' ? client.get('k') : op === 'set' ? client.set('k', 'v') : client.set('k', 'v', { ifVersion: 1 })
      const r = await drive(clock, call as Promise<unknown>, { step: 10, limit: 20_000 })
      await client.close()
      // (1) bounded
      assert.ok(r.at <= maxElapsed + 10, `settled at ${r.at}`)
      // (2) a plain write is never sent again after an ambiguous failure
      if (op === 'set') {
        const firstAmbiguous = seen.findIndex((f) => AMBIGUOUS.has(f))
        if (firstAmbiguous !== -1) assert.equal(seen.length, firstAmbiguous + 1, `sent again after ${seen[firstAmbiguous]}: ${seen.join(',')}`)
      }
      // (3) at most 3 retries spent on failures
      assert.ok(seen.filter((f) => FAILURE.has(f)).length <= 4, seen.join(','))
      // (4) success only from a success answer, and it is the last request
      if (r.ok) assert.equal(seen[seen.length - 1], 'ok')
      else assert.notEqual(seen[seen.length - 1], 'ok')
    }),
    { numRuns: 150, seed: 20261201 },
  )
})
