/**
 * Tracing hooks: `node:diagnostics_channel` tracing channels around the operations worth a
 * span (`getOrSet`, factory runs, L2 store calls, bus messages, node requests), so that an
 * OpenTelemetry instrumentation (or any subscriber) can attach without stratacache
 * depending on it — as undici and lru-cache do.
 *
 * Each name below is a `TracingChannel` (Node ≥ 19.9): a subscriber gets `start`, `end`
 * (the synchronous part returned), `asyncStart` / `asyncEnd` (the operation settled) and
 * `error`, on the channels `tracing:<name>:start` and so on, each with the same context
 * object, filled in as the operation goes (the outcome and `error` land before asyncStart).
 * Contexts carry keys, names, sizes and outcomes; never a cached value (see the types).
 *
 * Cost: every hook is guarded by `isTraced(channel)`, a handful of property reads that are
 * false while nobody subscribes; nothing is allocated then. Node itself isolates
 * subscribers: one that throws is reported as an uncaught exception on a later tick and
 * never fails the operation it observed.
 *
 * Channel names are part of the public API (docs/guide/tracing.md): they change only with
 * a major version.
 */
import { tracingChannel, type TracingChannel } from 'node:diagnostics_channel'

/** The names of stratacache's tracing channels (`diagnostics_channel.tracingChannel(name)`). */
export const TRACING_CHANNELS = {
  /** `Cache#getOrSet`, from the call to its settled promise. Context: `GetOrSetTrace`. */
  getOrSet: 'stratacache:cache:getOrSet',
  /** One factory run (a miss or a refresh), from the call to its settled result. Context: `FactoryTrace`. */
  factory: 'stratacache:cache:factory',
  /** One call to the second-tier store (each attempt of a retried read). Context: `StoreTrace`. */
  store: 'stratacache:store',
  /** One bus message sent to the broker. Context: `BusTrace`. */
  busPublish: 'stratacache:bus:publish',
  /** One data message from another process applied to this process's caches. Context: `BusTrace`. */
  busReceive: 'stratacache:bus:receive',
  /** One HTTP request to a node (socket or `inject`), until its response ends. Context: `NodeRequestTrace`. */
  nodeRequest: 'stratacache:node:request',
} as const

/** Context of `stratacache:cache:getOrSet`. */
export interface GetOrSetTrace {
  readonly key: string
  /** The cache's namespace (`CacheOptions.namespace`, default `'cache'`). */
  readonly namespace: string
  /**
   * What L1 answered, set before `end`: `hit` (fresh), `stale` (a fail-safe fallback served
   * during the retry backoff), `miss` (computed: L2, a shared flight or the factory, each
   * traced on its own channel); undefined when the call was refused (`error`).
   */
  outcome: 'hit' | 'stale' | 'miss' | undefined
  /** Why the returned promise rejected. */
  error?: unknown
}

/** Context of `stratacache:cache:factory`. */
export interface FactoryTrace {
  readonly key: string
  readonly namespace: string
  /** True for a refresh-ahead run (a caller was served the current value), false for a miss. */
  readonly refresh: boolean
  /** Whether a stale value is at hand as the fail-safe fallback if the factory fails. */
  readonly fallback: boolean
  /** What the factory threw or rejected with. */
  error?: unknown
}

/** The operations of `stratacache:store` (`GuardedStore`'s). */
export type StoreTraceOperation = 'get' | 'getMany' | 'set' | 'delete' | 'touch' | 'clear' | 'lock' | 'replay' | 'scan'

/** Context of `stratacache:store`. */
export interface StoreTrace {
  readonly op: StoreTraceOperation
  /** The store key (namespace included); undefined for `getMany`, `clear` and `scan`. */
  readonly key: string | undefined
  /** The store's name (`Store.name`: 'memory', 'redis', 'lmdb', 'etcd', 'node'…). */
  readonly store: string
  /** Bytes written (`set`) or read (`get`, `getMany`: the sum). */
  bytes?: number
  /** `get`: whether the key was found; `getMany`: how many were. */
  found?: boolean | number
  /** The typed error the call failed with (timeout, open circuit, store failure, refusal). */
  error?: unknown
}

/** Context of `stratacache:bus:publish` and `stratacache:bus:receive`. */
export interface BusTrace {
  /** The namespace of the caches the message is for. */
  readonly namespace: string
  readonly kind: 'delete' | 'tags' | 'clear'
  /** Keys (delete) or tag versions (tags) in the message; 0 for a clear. */
  readonly count: number
  /** The encoded message's size. */
  readonly bytes: number
  /** The sender's sequence number of the message. */
  readonly seq: number
  /** The transport's name ('memory', 'redis', 'nats', 'amqp', 'etcd'…). */
  readonly transport: string
  /** Why the broker refused it (publish; the message stays queued and is retried). */
  error?: unknown
}

/** Context of `stratacache:node:request`. */
export interface NodeRequestTrace {
  readonly method: string
  /** The path, without the query string. */
  readonly path: string
  /** The route template: `/v1/keys/:key`, `/:region/:key`, a fixed path, or `(other)`. */
  readonly route: string
  /** The node's id. */
  readonly node: string
  /** The response status, set before asyncStart (0 when the connection closed first). */
  status?: number
  /** A failure of the handler itself (a bug: every expected failure is a typed status). */
  error?: unknown
}

/** A context with the field a failure is recorded in. */
interface Failable {
  error?: unknown
}

export const getOrSetChannel: TracingChannel<unknown, GetOrSetTrace> = tracingChannel(TRACING_CHANNELS.getOrSet)
export const factoryChannel: TracingChannel<unknown, FactoryTrace> = tracingChannel(TRACING_CHANNELS.factory)
export const storeChannel: TracingChannel<unknown, StoreTrace> = tracingChannel(TRACING_CHANNELS.store)
export const busPublishChannel: TracingChannel<unknown, BusTrace> = tracingChannel(TRACING_CHANNELS.busPublish)
export const busReceiveChannel: TracingChannel<unknown, BusTrace> = tracingChannel(TRACING_CHANNELS.busReceive)
export const nodeRequestChannel: TracingChannel<unknown, NodeRequestTrace> = tracingChannel(TRACING_CHANNELS.nodeRequest)

/**
 * Whether anyone listens on any of `channel`'s five channels. (`TracingChannel#hasSubscribers`
 * does the same but only from Node 20.13; the engines field says ≥ 20.)
 */
export function isTraced(channel: TracingChannel<unknown, object>): boolean {
  return channel.start.hasSubscribers || channel.end.hasSubscribers || channel.asyncStart.hasSubscribers || channel.asyncEnd.hasSubscribers || channel.error.hasSubscribers
}

/**
 * `TracingChannel#tracePromise` without `context.result`: the result may be a cached value,
 * so `settle` copies what may be said of it (sizes, outcomes) into the context instead.
 * `fn` runs inside `start.runStores` (bound async-local stores see the context); a
 * synchronous throw publishes `error` and `end` and is rethrown.
 */
export function traceAsync<C extends Failable, T>(channel: TracingChannel<unknown, C>, context: C, fn: () => PromiseLike<T>, settle?: (context: C, result: T) => void): Promise<T> {
  return channel.start.runStores(context, () => {
    try {
      return Promise.resolve(fn()).then(
        (result) => {
          settle?.(context, result)
          channel.asyncStart.publish(context)
          channel.asyncEnd.publish(context)
          return result
        },
        (err: unknown) => {
          context.error = err
          channel.error.publish(context)
          channel.asyncStart.publish(context)
          channel.asyncEnd.publish(context)
          throw err
        },
      )
    } catch (err) {
      context.error = err
      channel.error.publish(context)
      throw err
    } finally {
      channel.end.publish(context)
    }
  })
}

/** `TracingChannel#traceSync` without `context.result` (see traceAsync). */
export function traceSync<C extends Failable, T>(channel: TracingChannel<unknown, C>, context: C, fn: () => T): T {
  return channel.start.runStores(context, () => {
    try {
      return fn()
    } catch (err) {
      context.error = err
      channel.error.publish(context)
      throw err
    } finally {
      channel.end.publish(context)
    }
  })
}
