/**
 * `stratacache/amqp`: RabbitMQ — the invalidation bus (`amqpBus`, `amqpTransport`) and the
 * change feed of document notices (`amqpFeed`). They drive `amqplib`, an optional peer
 * dependency (`npm install amqplib`): importing this entry without it rejects with
 * MissingDependencyError (ERR_MISSING_DEPENDENCY).
 */
import { requireDependency } from './core/optional-dependency.js'

requireDependency('amqplib', 'stratacache/amqp')
// Loaded only once the check passed: a static import would fail to resolve before it ran.
const bus = await import('./bus/amqp-transport.js')
const feed = await import('./feeds/amqp-feed.js')

/** See `amqpBus` in src/bus/amqp-transport.ts (docs/guide/bus.md). */
export const amqpBus: typeof import('./bus/amqp-transport.js').amqpBus = bus.amqpBus
/** See `amqpTransport` in src/bus/amqp-transport.ts (docs/guide/bus.md). */
export const amqpTransport: typeof import('./bus/amqp-transport.js').amqpTransport = bus.amqpTransport
/** See `amqpFeed` in src/feeds/amqp-feed.ts (docs/guide/feeds.md). */
export const amqpFeed: typeof import('./feeds/amqp-feed.js').amqpFeed = feed.amqpFeed
export type { AmqpBusOptions, AmqpTransportOptions } from './bus/amqp-transport.js'
export type { AmqpFeedOptions } from './feeds/amqp-feed.js'
