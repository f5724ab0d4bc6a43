/**
 * Who a process is, in a form another process can check for liveness later: what the
 * exclusive claim of an LMDB directory records (see `lmdbStore({ exclusive })`).
 *
 * A pid alone is not an identity: after its process dies the kernel hands the number to a
 * new process (sooner after a reboot, or in a container where the pid is often 1). So the
 * record also holds, where Linux offers them:
 * - the process's start time (`/proc/<pid>/stat` field 22, clock ticks since boot): a pid
 *   reused by another process has another start time;
 * - the boot id (`/proc/sys/kernel/random/boot_id`): after a reboot nothing recorded before
 *   it is alive;
 * - the pid namespace (`/proc/self/ns/pid`): a pid from another namespace (another
 *   container) names nothing checkable here.
 * A zombie (exited, not yet reaped by its parent) is dead. Elsewhere (macOS, Windows) only
 * `kill(pid, 0)` is available: a reused pid then reads as alive, which refuses a start (the
 * safe side) rather than letting two owners in.
 */
import { readFileSync, readlinkSync } from 'node:fs'
import { hostname } from 'node:os'

export interface ProcessIdentity {
  readonly pid: number
  /** Start time in clock ticks since boot (Linux), or null. */
  readonly start: string | null
  /** Boot id (Linux), or null. */
  readonly boot: string | null
  /** Pid namespace, e.g. `pid:[4026531836]` (Linux), or null. */
  readonly pidns: string | null
  readonly host: string
}

function readOrNull(read: () => string): string | null {
  try {
    return read().trim()
  } catch {
    return null
  }
}

/** `[state, starttime]` of a pid from /proc, or undefined when it has no entry (no such process, or no /proc). */
function procStat(pid: number): { state: string; start: string } | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // The command name (field 2) is in parentheses and may hold spaces and ')': split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  // fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
  const state = fields[0]
  const start = fields[19]
  if (state === undefined || start === undefined) return undefined
  return { state, start }
}

const BOOT = (): string | null => readOrNull(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8'))
const PIDNS = (): string | null => readOrNull(() => readlinkSync('/proc/self/ns/pid'))

/** This process. */
export function selfIdentity(): ProcessIdentity {
  return processIdentity(process.pid)
}

/** The identity of `pid` as seen now, assuming it runs in this pid namespace on this boot. */
export function processIdentity(pid: number): ProcessIdentity {
  return { pid, start: procStat(pid)?.start ?? null, boot: BOOT(), pidns: PIDNS(), host: hostname() }
}

/** Whether a kill(pid, 0) finds the pid (EPERM: it exists, owned by another user). */
function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Whether the process `id` describes may still run. False only when it surely does not:
 * another boot, another pid namespace (see the note: nothing here can check it, and a
 * restarted container must not stay locked out), no such pid, a zombie, or a pid now held by
 * a process that started at another time.
 */
export function isAlive(id: ProcessIdentity): boolean {
  if (!Number.isSafeInteger(id.pid) || id.pid <= 0) return false
  const self = selfIdentity()
  if (id.boot !== null && self.boot !== null) {
    if (id.boot !== self.boot) return false
  } else if (id.host !== self.host) {
    // No boot id to compare and another host's name: nothing here can tell; assume alive.
    return true
  }
  if (id.pidns !== null && self.pidns !== null && id.pidns !== self.pidns) return false
  const stat = procStat(id.pid)
  if (stat !== undefined) return stat.state !== 'Z' && stat.state !== 'X' && (id.start === null || stat.start === id.start)
  // No /proc entry: on Linux the pid is gone; elsewhere ask the kernel.
  if (self.start !== null) return false
  return pidExists(id.pid)
}
