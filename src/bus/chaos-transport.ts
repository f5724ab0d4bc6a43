/**
 * `ChaosTransport`: wraps a `BusTransport` and injects the faults pub/sub suffers, so the
 * Bus's loss detection can be tested on a ManualClock (over the memory transport) and
 * under chaos over a real broker.
 *
 * Faults on the receiving side (what this transport's subscriptions see): drop a fraction
 * of payloads at random (`dropRate`) or the next n (`dropNext`), deliver some twice
 * (`duplicateRate`), hold one back and deliver it after the next (`reorderNext`), or go
 * silent without telling anyone (`silence`: the half-open TCP connection). On the
 * publishing side: reject publishes (`failPublishes`). `down()` / `up()` act like a lost
 * and restored connection: subscriptions hear 'down' / 'up', publishes reject meanwhile
 * and nothing is delivered. Randomness comes from the injected `Random`.
 */
import { BusUnavailableError, InvalidOptionsError } from '../core/errors.js'
import { mathRandom, type Random } from '../core/random.js'
import type { BusTransport } from './types.js'

export interface ChaosTransportOptions {
  /** Fraction of received payloads dropped at random, in [0, 1]. @default 0 */
  dropRate?: number
  /** Fraction of received payloads delivered twice, in [0, 1]. @default 0 */
  duplicateRate?: number
  /** @default mathRandom */
  random?: Random
}

interface Sub {
  readonly onMessage: (payload: Uint8Array) => void
  readonly onState: (state: 'up' | 'down') => void
}

export class ChaosTransport implements BusTransport {
  readonly name: string
  readonly inner: BusTransport
  dropRate: number
  duplicateRate: number
  #silence = false
  /** A state change of the inner transport that arrived while silent, delivered when not. */
  #pendingState: 'up' | 'down' | undefined
  /** Publishes reject with ERR_BUS_UNAVAILABLE (and are not sent). */
  failPublishes = false
  /** Counters of what was injected. */
  dropped = 0
  duplicated = 0
  reordered = 0
  resubscribes = 0
  readonly #random: Random
  readonly #subs = new Set<Sub>()
  #dropNext = 0
  #reorderNext = 0
  #held: Array<() => void> = []
  #down = false

  constructor(inner: BusTransport, options: ChaosTransportOptions = {}) {
    const rate = (v: number | undefined, name: string): number => {
      const r = v ?? 0
      if (typeof r !== 'number' || !(r >= 0 && r <= 1)) throw new InvalidOptionsError(name, 'expected a fraction in [0, 1]')
      return r
    }
    this.inner = inner
    this.name = `chaos(${inner.name})`
    this.dropRate = rate(options.dropRate, 'chaos.dropRate')
    this.duplicateRate = rate(options.duplicateRate, 'chaos.duplicateRate')
    this.#random = options.random ?? mathRandom
  }

  /**
   * Received payloads are dropped silently, with no state change (a half-dead connection
   * that a reconnect does not cure: the inner transport's 'up' is held back until the
   * silence ends, like a reconnect through a stalled network).
   */
  get silence(): boolean {
    return this.#silence
  }

  set silence(silent: boolean) {
    this.#silence = silent
    if (silent || this.#pendingState === undefined) return
    const state = this.#pendingState
    this.#pendingState = undefined
    if (!this.#down) for (const s of this.#subs) s.onState(state)
  }

  /** Drops the next `n` received payloads. */
  dropNext(n = 1): void {
    this.#dropNext += n
  }

  /** Holds the next received payload back and delivers it right after the one that follows it. */
  reorderNext(): void {
    this.#reorderNext++
  }

  /** Like a lost connection: 'down' to subscriptions, publishes reject, nothing delivered. */
  down(): void {
    if (this.#down) return
    this.#down = true
    for (const s of this.#subs) s.onState('down')
  }

  /** The connection is back: 'up' to subscriptions. */
  up(): void {
    if (!this.#down) return
    this.#down = false
    for (const s of this.#subs) s.onState('up')
  }

  async publish(channel: string, payload: Uint8Array): Promise<void> {
    if (this.#down || this.failPublishes) throw new BusUnavailableError(`${this.name}: publish refused (injected fault)`)
    await this.inner.publish(channel, payload)
  }

  async subscribe(channel: string, onMessage: (payload: Uint8Array) => void, onState: (state: 'up' | 'down') => void): Promise<() => Promise<void>> {
    if (this.#down) throw new BusUnavailableError(`${this.name}: subscribe refused (injected fault)`)
    const sub: Sub = { onMessage, onState }
    const unsubscribe = await this.inner.subscribe(
      channel,
      (payload) => this.#receive(sub, payload),
      (state) => {
        if (this.#down) return
        if (this.#silence && state === 'up') this.#pendingState = 'up'
        else {
          if (state === 'down') this.#pendingState = undefined
          onState(state)
        }
      },
    )
    this.#subs.add(sub)
    return async () => {
      this.#subs.delete(sub)
      await unsubscribe()
    }
  }

  resubscribe(): void {
    this.resubscribes++
    this.inner.resubscribe?.()
  }

  close(): Promise<void> {
    this.#subs.clear()
    return this.inner.close()
  }

  #receive(sub: Sub, payload: Uint8Array): void {
    if (this.#down || this.#silence) return
    if (this.#dropNext > 0) {
      this.#dropNext--
      this.dropped++
      return
    }
    if (this.dropRate > 0 && this.#random.next() < this.dropRate) {
      this.dropped++
      return
    }
    if (this.#reorderNext > 0) {
      this.#reorderNext--
      this.reordered++
      this.#held.push(() => sub.onMessage(payload))
      return
    }
    sub.onMessage(payload)
    if (this.duplicateRate > 0 && this.#random.next() < this.duplicateRate) {
      this.duplicated++
      sub.onMessage(payload.slice())
    }
    const held = this.#held
    this.#held = []
    for (const deliver of held) deliver()
  }
}

export function chaosTransport(inner: BusTransport, options?: ChaosTransportOptions): ChaosTransport {
  return new ChaosTransport(inner, options)
}
