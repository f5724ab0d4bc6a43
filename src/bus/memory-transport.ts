/**
 * `memoryTransport`: a `BusTransport` inside one process, for several caches in one
 * process (each with its own Bus) and for tests.
 *
 * Transports meet on a `MemoryBusHub` (the process-wide `defaultMemoryHub` unless given).
 * Delivery is asynchronous (one microtask per payload and subscriber, FIFO, so
 * per-publisher order holds) and copies the bytes, as a network would. The hub can be
 * "killed" and "restarted" like a broker: every subscription reports 'down', publish and
 * subscribe reject with `ERR_BUS_UNAVAILABLE`, and on restart every subscription reports
 * 'up' again — which lets the Bus and the transport conformance suite exercise the
 * reconnect paths without a server.
 */
import { BusUnavailableError, ClosedError, InvalidOptionsError } from '../core/errors.js'
import { optionNames, rejectUnknown } from '../core/known-options.js'
import { BUS_SETTING_NAMES, createBus, pickBusSettings, type Bus, type BusSettings } from './bus.js'
import { checkChannel, checkPayload, checkSubscription, deliverTo } from './transport-input.js'
import type { BusTransport } from './types.js'

interface Subscription {
  readonly channel: string
  readonly onMessage: (payload: Uint8Array) => void
  readonly onState: (state: 'up' | 'down') => void
  active: boolean
}

/** The in-process "broker" memory transports meet on. */
export class MemoryBusHub {
  readonly #subs = new Map<string, Set<Subscription>>()
  #down = false

  /** True between `kill()` and `restart()`. */
  get down(): boolean {
    return this.#down
  }

  /** Like a broker crash: subscriptions report 'down', publishes reject, nothing is delivered. */
  kill(): void {
    if (this.#down) return
    this.#down = true
    for (const set of this.#subs.values()) for (const s of set) notify(s, 'down')
  }

  /** The broker is back: every subscription reports 'up' and receives again. */
  restart(): void {
    if (!this.#down) return
    this.#down = false
    for (const set of this.#subs.values()) for (const s of set) notify(s, 'up')
  }

  /** @internal */
  publish(channel: string, payload: Uint8Array): void {
    if (this.#down) throw new BusUnavailableError('The in-process bus hub is down')
    const set = this.#subs.get(channel)
    if (set === undefined) return
    for (const s of set) {
      const copy = payload.slice()
      queueMicrotask(() => {
        // A throw from a microtask would be an uncaught exception.
        if (s.active && !this.#down) deliverTo(s.onMessage, copy)
      })
    }
  }

  /** @internal */
  add(s: Subscription): void {
    if (this.#down) throw new BusUnavailableError('The in-process bus hub is down')
    let set = this.#subs.get(s.channel)
    if (set === undefined) this.#subs.set(s.channel, (set = new Set()))
    set.add(s)
  }

  /** @internal */
  remove(s: Subscription): void {
    s.active = false
    const set = this.#subs.get(s.channel)
    if (set === undefined) return
    set.delete(s)
    if (set.size === 0) this.#subs.delete(s.channel)
  }
}

function notify(s: Subscription, state: 'up' | 'down'): void {
  if (!s.active) return
  try {
    s.onState(state)
  } catch {
    // A subscriber's failure is its own; the hub goes on.
  }
}

/** The hub `memoryBus()` and `memoryTransport()` use when none is given. */
export const defaultMemoryHub = new MemoryBusHub()

export interface MemoryTransportOptions {
  /** Where transports meet; give one hub per isolated group (e.g. per test). @default defaultMemoryHub */
  hub?: MemoryBusHub
}

class MemoryTransport implements BusTransport {
  readonly name = 'memory'
  readonly #hub: MemoryBusHub
  readonly #subs = new Set<Subscription>()
  #closed = false

  constructor(hub: MemoryBusHub) {
    this.#hub = hub
  }

  async publish(channel: string, payload: Uint8Array): Promise<void> {
    if (this.#closed) throw new ClosedError('The bus transport is closed')
    checkChannel(channel)
    checkPayload(payload)
    this.#hub.publish(channel, payload)
  }

  async subscribe(channel: string, onMessage: (payload: Uint8Array) => void, onState: (state: 'up' | 'down') => void): Promise<() => Promise<void>> {
    if (this.#closed) throw new ClosedError('The bus transport is closed')
    checkSubscription(channel, onMessage, onState)
    const s: Subscription = { channel, onMessage, onState, active: true }
    this.#hub.add(s)
    this.#subs.add(s)
    return async () => {
      this.#subs.delete(s)
      this.#hub.remove(s)
    }
  }

  /** Like a dropped and re-established connection: 'down', then 'up' in a microtask. */
  resubscribe(): void {
    if (this.#closed) return
    const subs = [...this.#subs]
    for (const s of subs) notify(s, 'down')
    queueMicrotask(() => {
      if (this.#closed || this.#hub.down) return
      for (const s of subs) notify(s, 'up')
    })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const s of this.#subs) this.#hub.remove(s)
    this.#subs.clear()
  }
}

/** memoryBus's option names (its transport's and the bus settings): another is refused, not ignored (core/known-options.ts). */
const MEMORY_BUS_OPTIONS = [...BUS_SETTING_NAMES, ...optionNames<MemoryTransportOptions>({ hub: true })]

export function memoryTransport(options: MemoryTransportOptions = {}): BusTransport {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('bus', 'expected an options object')
  rejectUnknown(options, MEMORY_BUS_OPTIONS, 'bus')
  if (options.hub !== undefined && !(options.hub instanceof MemoryBusHub)) throw new InvalidOptionsError('bus.hub', 'expected a MemoryBusHub')
  return new MemoryTransport(options.hub ?? defaultMemoryHub)
}

export interface MemoryBusOptions extends BusSettings, MemoryTransportOptions {}

/** `createCache({ bus: memoryBus() })`: several caches of one process keep each other coherent. */
export function memoryBus(options: MemoryBusOptions = {}): Bus {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('bus', 'expected an options object')
  const transport = memoryTransport(options)
  try {
    return createBus({ ...pickBusSettings(options), transport })
  } catch (err) {
    // Invalid bus settings: do not leave the transport's connections behind.
    void transport.close().catch(() => {})
    throw err
  }
}
