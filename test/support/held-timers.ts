/**
 * Which timers a piece of code leaves behind: `watchTimers()` records every timer created
 * until `stop()`, and `pending()` lists those not yet fired or cleared, with the stack that
 * made each. A ref'd one keeps the process alive after a `close()` that should let it exit.
 */
import { createHook } from 'node:async_hooks'

export interface PendingTimer {
  readonly timer: NodeJS.Timeout
  /** Where it was created. */
  readonly stack: string
  /** Its delay in ms. */
  readonly ms: number
}

/** The stacks of the ref'd timers `close` leaves pending once it resolved (and one turn later). */
export async function refTimersAfter(close: () => Promise<unknown>): Promise<string[]> {
  const timers = watchTimers()
  try {
    await close()
    await new Promise((resolve) => setImmediate(resolve))
  } finally {
    timers.stop()
  }
  return timers.pending().filter((p) => p.timer.hasRef()).map((p) => p.stack)
}

export function watchTimers(): { stop(): void; pending(): PendingTimer[] } {
  const pending = new Map<number, { timer: NodeJS.Timeout; stack: string }>()
  const hook = createHook({
    init(id, type, _trigger, resource) {
      if (type === 'Timeout') pending.set(id, { timer: resource as NodeJS.Timeout, stack: new Error().stack ?? '' })
    },
    destroy(id) {
      pending.delete(id)
    },
  }).enable()
  return {
    stop: () => hook.disable(),
    pending: () => [...pending.values()].map((p) => ({ ...p, ms: (p.timer as unknown as { _idleTimeout: number })._idleTimeout })),
  }
}
