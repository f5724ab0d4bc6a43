/**
 * `pollUntil`: the deadline-bounded wait of the real-time conformance suites and tests.
 *
 * It polls `check` every `pollMs` (5 ms by default) until it holds or `ms` of *running*
 * time passed. A poll that wakes over 10 ms late means the process was not running (a
 * loaded machine descheduled it, or a GC pause); that lateness is added to the deadline.
 * The reason is the event loop's order: after a stall, the poll's timer fires before the
 * poll phase reads the sockets, so a delivery or a settlement already waiting there would
 * be reported missing. A transport that hangs still fails, on a process that runs; code
 * that keeps blocking the loop stretches the wait (each late poll adds its lateness), up
 * to the test's own timeout.
 */
import type { Clock } from './clock.js'

/** The default poll period, and the lateness of one poll that counts as a stall. */
const POLL_MS = 5
const STALL_MS = 10

export interface PollOutcome {
  /** Whether `check` held before the deadline. */
  readonly held: boolean
  /** Milliseconds the deadline was moved for stalls. */
  readonly stalledMs: number
}

/** `check` may be async: the time it takes counts as running time, only the sleeps are checked for stalls. */
export async function pollUntil(clock: Clock, ms: number, check: () => boolean | Promise<boolean>, pollMs = POLL_MS): Promise<PollOutcome> {
  let deadline = clock.now() + ms
  let stalledMs = 0
  for (;;) {
    const held = check()
    if (typeof held === 'boolean' ? held : await held) return { held: true, stalledMs }
    if (clock.now() > deadline) return { held: false, stalledMs }
    const before = clock.now()
    await new Promise<void>((resolve) => clock.setTimeout(resolve, pollMs))
    const late = clock.now() - before - pollMs
    if (late > STALL_MS) {
      stalledMs += late
      deadline += late
    }
  }
}

/** `' (+N ms this process was stalled)'` for a failure message, or `''`. */
export function stalledNote(outcome: PollOutcome): string {
  return outcome.stalledMs > 0 ? ` (+${Math.round(outcome.stalledMs)} ms this process was stalled)` : ''
}
