/**
 * How redisStore and redisTransport end a connection they own, written once (the store and
 * bus layers share nothing else): QUIT, so in-flight replies still arrive, bounded so a
 * frozen server cannot hold `close()` up, and never a `disconnect()` that leaves a timer.
 *
 * ioredis' `disconnect()` of a connection whose socket is already closed arms a ref'd timer
 * (`disconnectTimeout`, 2 s by default) that nothing clears: the process then lived 2 s past
 * `close()`. That happened three ways, each handled here: after QUIT (its reply comes before
 * the socket closes, so we wait for 'end'); during set-up (ioredis turns a QUIT with nothing
 * queued into a disconnect, which fails the ready check, and ioredis disconnects again: we
 * wait until the connection is up or its attempt failed); and with the server down (nothing
 * to QUIT and no 'end' to come: one disconnect, whose timer the callers shorten by giving
 * their connections `disconnectTimeout: DISCONNECT_TIMEOUT_MS`).
 */
import type { Cluster, Redis } from 'ioredis'
import type { Clock, TimerHandle } from './clock.js'

/** ioredis' `disconnectTimeout` for the connections the store and transport create (2 s by default): see above. */
export const DISCONNECT_TIMEOUT_MS = 100

/** How long QUIT may take before the connection is dropped: a frozen server must not hold close() up. */
const QUIT_BOUND_MS = 1_000

/** Ends `client` (see above) within about `boundMs`. */
export async function quitRedis(client: Redis | Cluster, clock: Clock, boundMs = QUIT_BOUND_MS): Promise<void> {
  if (client.status === 'end') return
  let timer: TimerHandle | undefined
  const bound = new Promise<void>((resolve) => {
    timer = clock.setTimeout(resolve, boundMs, { unref: true })
  })
  const ended = new Promise<void>((resolve) => client.once('end', () => resolve()))
  try {
    if (client.status === 'connecting' || client.status === 'connect') {
      let settle = (): void => {}
      const settled = new Promise<void>((resolve) => {
        settle = resolve
        client.once('ready', settle)
        client.once('close', settle)
      })
      await Promise.race([settled, bound])
      client.off('ready', settle)
      client.off('close', settle)
    }
    // Down (reconnecting): the bound is unref'd, and with nothing else running a wait for an
    // 'end' that never comes left close() unresolved.
    if (client.status !== 'ready') return
    await Promise.race([Promise.all([client.quit(), ended]), bound])
  } catch {
    // Already closed or unreachable: the disconnect below is all there is to do.
  } finally {
    if (timer !== undefined) clock.clearTimeout(timer)
    if ((client.status as string) !== 'end') client.disconnect()
  }
}
