/**
 * `stratacache/nats`: the invalidation bus over NATS core pub/sub — `natsBus` and
 * `natsTransport`. They drive `nats`, an optional peer dependency (`npm install nats`):
 * importing this entry without it rejects with MissingDependencyError
 * (ERR_MISSING_DEPENDENCY).
 */
import { requireDependency } from './core/optional-dependency.js'

requireDependency('nats', 'stratacache/nats')
// Loaded only once the check passed: a static import would fail to resolve before it ran.
const nats = await import('./bus/nats-transport.js')

/** See `natsBus` in src/bus/nats-transport.ts (docs/guide/bus.md). */
export const natsBus: typeof import('./bus/nats-transport.js').natsBus = nats.natsBus
/** See `natsTransport` in src/bus/nats-transport.ts (docs/guide/bus.md). */
export const natsTransport: typeof import('./bus/nats-transport.js').natsTransport = nats.natsTransport
export type { NatsBusOptions, NatsTransportOptions } from './bus/nats-transport.js'
