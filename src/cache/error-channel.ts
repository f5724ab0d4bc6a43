/**
 * The facade's 'error' channel: failures the cache handled without failing a call (L2 down
 * or slow, a record that did not decode, a lock lost) go to the 'error' listeners, or, with
 * none, become one process warning per kind of failure.
 */
import type { CacheError } from '../core/errors.js'
import type { CacheErrorEvent } from './types.js'

export class ErrorChannel {
  readonly #listeners = new Set<(event: CacheErrorEvent) => void>()
  /** Kinds of failure already warned about for want of an 'error' listener (see #warnUnheard). */
  #warned: Set<string> | undefined
  /** Set by the cache's close(): from then on ERR_CLOSED is what the close asked for, not trouble. */
  #closed = false

  /** Adds a listener; returns `off`. */
  listen(listener: (event: CacheErrorEvent) => void): () => void {
    this.#listeners.add(listener)
    return () => {
      this.#listeners.delete(listener)
    }
  }

  /**
   * The cache closed: a fill that was running finishes after it, and its L2 write or lock
   * release finds the store closed (ERR_CLOSED). That is not reported: nothing went wrong.
   */
  close(): void {
    this.#closed = true
  }

  emit(error: CacheError, key: string | undefined): void {
    if (this.#closed && error.code === 'ERR_CLOSED') return
    if (this.#listeners.size === 0) return this.#warnUnheard(error)
    for (const listener of this.#listeners) {
      try {
        listener({ type: 'error', error, key })
      } catch {
        // A throwing listener never breaks the cache or the other listeners.
      }
    }
  }

  /**
   * With no 'error' listener, a handled failure would go unseen (an L2 that refuses every
   * connection would look like a slow cache): the first one of each kind becomes a process
   * warning, which Node prints on stderr. A failing store counts as one kind (unavailable or
   * timing out), so an L2 that is down warns once.
   */
  #warnUnheard(error: CacheError): void {
    const kind = error.code === 'ERR_STORE_TIMEOUT' ? 'ERR_STORE_UNAVAILABLE' : error.code
    const warned = (this.#warned ??= new Set())
    if (warned.has(kind)) return
    warned.add(kind)
    process.emitWarning(`stratacache: ${error.code}: ${error.message}. The cache handled it without failing a call; it warns once per kind of failure: listen with cache.on('error', ...) to see each one`, { code: 'STRATACACHE_L2_ERROR' })
  }
}
