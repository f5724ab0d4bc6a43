/**
 * The bounded wait of the real-time tests, written once: `until(what, ms, check)` polls
 * `check` (sync or async) every 5 ms and fails the test naming `what` after `ms` of time
 * this process ran. Built on core/poll-until.ts: a poll that wakes over 10 ms late (the
 * machine descheduled the test process) moves the deadline by its lateness, because after
 * such a stall the timer fires before the sockets are read, and an answer already waiting
 * there would be reported missing.
 */
import assert from 'node:assert/strict'
import { pollUntil, stalledNote } from '../../src/core/poll-until.js'
import { systemClock } from '../../src/core/system-clock.js'

/** Polls `check` until it holds; fails the test naming `what` (a string, or a function for a message built at failure) after `ms`. */
export async function until(what: string | (() => string), ms: number, check: () => boolean | Promise<boolean>, pollMs?: number): Promise<void> {
  const r = await pollUntil(systemClock, ms, check, pollMs)
  if (!r.held) assert.fail(`${typeof what === 'string' ? what : what()} within ${ms} ms${stalledNote(r)}`)
}
