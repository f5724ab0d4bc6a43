/**
 * The invalidation bus, split in two:
 * - a `BusTransport` moves opaque byte payloads on one channel (Redis pub/sub, NATS, AMQP
 *   topic exchange, or in-process); it knows nothing of caches;
 * - the `Bus` (bus.ts) gives them meaning: encoding with a version marker, sender epoch and
 *   sequence numbers, heartbeats, gap and duplicate detection, a bounded publish queue while
 *   the broker is down, and the flush decisions that keep every L1 honest.
 *
 * Adapter shape (every broker follows it; see memory-transport.ts, redis-transport.ts):
 *
 *   export function xxxTransport(options: XxxTransportOptions): BusTransport
 *   export interface XxxBusOptions extends BusSettings, XxxTransportOptions {}
 *   export function xxxBus(options: XxxBusOptions): Bus {
 *     return createBus({ ...pickBusSettings(options), transport: xxxTransport(options) })
 *   }
 *
 * so a user writes `createCache({ bus: redisBus({ url }) })`, and `createBus({ transport })`
 * takes any transport (a custom one, or one wrapped by `chaosTransport` in tests). The Bus
 * owns the transport it is given and closes it on `close()`. Every transport passes the
 * exported conformance suite `busTransportConformance` (conformance.ts).
 *
 * Transport invariants (the transport conformance suite checks each):
 * - `publish` resolves once the broker accepted the payload, and rejects (never hangs past
 *   its own timeout) when it cannot; it never queues silently — queuing is the Bus's job;
 * - every subscriber receives payloads published after its `subscribe` resolved, byte for
 *   byte, including its own (the Bus filters those), in per-publisher order;
 * - `subscribe` rejects (within the transport's connect timeout) when the broker cannot be
 *   reached; the Bus retries it with backoff;
 * - `onState('down')` when the subscription may have missed messages (connection lost),
 *   `onState('up')` when it is receiving again (after a reconnect, with backoff from 100 ms
 *   doubling to 5 s); the Bus flushes what it can no longer trust on 'up' after 'down';
 * - `close` is idempotent, stops reconnecting, and makes later `publish` calls reject.
 */
export interface BusTransport {
  /** A short name for errors and stats (`'redis'`, `'nats'`, `'amqp'`, `'memory'`). */
  readonly name: string
  /** Sends one payload to every subscriber of `channel` (this process's included). */
  publish(channel: string, payload: Uint8Array): Promise<void>
  /**
   * Receives the payloads of `channel`. Resolves when the subscription is active. Returns
   * an unsubscribe function.
   */
  subscribe(channel: string, onMessage: (payload: Uint8Array) => void, onState: (state: 'up' | 'down') => void): Promise<() => Promise<void>>
  /**
   * Optional: drop and re-establish the subscription's connection. The Bus calls it when
   * its subscription went silent (its own heartbeats stopped coming back) although the
   * transport reported no loss, e.g. a half-open TCP connection. A transport that cannot
   * do it leaves it out; it must then report 'down'/'up' around any reconnect it makes.
   */
  resubscribe?(): void
  close(): Promise<void>
}
