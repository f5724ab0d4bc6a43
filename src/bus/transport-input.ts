/**
 * Checks of what a caller hands a `BusTransport` directly (the Bus always passes valid
 * input; code using a transport from JavaScript may not): a typed refusal instead of a raw
 * broker error, a value sent as other bytes, or a subscription that fails on its first
 * message. And one guard for subscriber callbacks: a subscriber's throw is its own.
 */
import { InvalidOptionsError } from '../core/errors.js'

/** A channel is a non-empty string. */
export function checkChannel(channel: unknown): asserts channel is string {
  if (typeof channel !== 'string' || channel === '') throw new InvalidOptionsError('channel', `expected a non-empty string, got ${channel === '' ? "''" : channel === null ? 'null' : typeof channel}`)
}

/** A payload is bytes. */
export function checkPayload(payload: unknown): asserts payload is Uint8Array {
  if (!(payload instanceof Uint8Array)) throw new InvalidOptionsError('payload', `expected a Uint8Array, got ${payload === null ? 'null' : typeof payload}`)
}

/** subscribe(channel, onMessage, onState): a channel and two functions. */
export function checkSubscription(channel: unknown, onMessage: unknown, onState: unknown): void {
  checkChannel(channel)
  if (typeof onMessage !== 'function') throw new InvalidOptionsError('onMessage', 'expected a function')
  if (typeof onState !== 'function') throw new InvalidOptionsError('onState', 'expected a function')
}

/** Calls a subscriber's `onMessage`; its throw is its own (it must not break the connection or the other subscribers). */
export function deliverTo(onMessage: (payload: Uint8Array) => void, payload: Uint8Array): void {
  try {
    onMessage(payload)
  } catch {
    // A subscriber's failure is its own.
  }
}
