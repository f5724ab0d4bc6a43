import { setMaxListeners } from 'node:events'

/**
 * A signal nobody can abort (its controller is dropped), for work that cannot be cancelled.
 * Creating an AbortSignal costs about 2 µs on Node 20, so one is shared; it is replaced
 * every SHARED_USES uses so that listeners a careless user function leaves on it are
 * collected with it instead of piling up for the life of the process.
 */
const SHARED_USES = 1024

let shared: AbortSignal | undefined
let uses = 0

export function neverAbortedSignal(): AbortSignal {
  if (shared === undefined || ++uses > SHARED_USES) {
    shared = new AbortController().signal
    // Many concurrent functions may listen on it; a warning at 11 listeners would be noise.
    setMaxListeners(0, shared)
    uses = 1
  }
  return shared
}
