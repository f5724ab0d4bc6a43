/**
 * NodeRotation's probe bookkeeping (decision 0314), on a ManualClock: a probe started in an
 * earlier ejection answers nothing about a later one, and a node has at most one probe timer.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { NodeRotation } from '../../src/client/node-rotation.js'
import { BackoffPolicy } from '../../src/core/backoff.js'
import { ManualClock } from '../../src/core/manual-clock.js'
import { SeededRandom } from '../../src/core/random.js'

test('a probe of an earlier ejection neither reinstates the node nor leaves a second timer', async () => {
  const clock = new ManualClock()
  const answers: Array<(ok: boolean) => void> = []
  const probes = new BackoffPolicy({ initial: 1000, max: 30_000, jitter: 0 }, new SeededRandom(1), 'eject')
  const rotation = new NodeRotation(['a', 'b'], { ejectAfter: 3, probes }, clock, () => new Promise<boolean>((resolve) => answers.push(resolve)))
  rotation.quarantine('a')
  assert.equal(rotation.inRotation('a'), false)
  clock.advance(1000)
  assert.equal(answers.length, 1, 'the first probe runs after probeInterval')
  // A request succeeds while that probe is still out: back in rotation, then a timeout quarantines it again.
  rotation.success('a')
  assert.equal(rotation.inRotation('a'), true)
  rotation.quarantine('a')
  assert.equal(clock.pendingTimers, 1, 'one probe timer for the new ejection')
  answers[0]!(true)
  await Promise.resolve()
  await Promise.resolve()
  assert.equal(rotation.inRotation('a'), false, 'the old probe says nothing about the new ejection')
  assert.equal(clock.pendingTimers, 1, 'and schedules no second timer')
  clock.advance(30_000)
  assert.equal(answers.length, 2, 'the new ejection is probed')
  answers[1]!(true)
  await Promise.resolve()
  await Promise.resolve()
  assert.equal(rotation.inRotation('a'), true, 'its own probe brings the node back')
  rotation.close()
  assert.equal(clock.pendingTimers, 0)
})
