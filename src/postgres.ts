/**
 * `stratacache/postgres`: the change feed over PostgreSQL LISTEN/NOTIFY (`pgFeed`). It
 * drives `pg`, an optional peer dependency (`npm install pg`): importing this entry without
 * it rejects with MissingDependencyError (ERR_MISSING_DEPENDENCY).
 */
import { requireDependency } from './core/optional-dependency.js'

requireDependency('pg', 'stratacache/postgres')
// Loaded only once the check passed: a static import would fail to resolve before it ran.
const feed = await import('./feeds/pg-feed.js')

/** See `pgFeed` in src/feeds/pg-feed.ts (docs/guide/feeds.md). */
export const pgFeed: typeof import('./feeds/pg-feed.js').pgFeed = feed.pgFeed
export type { PgConnectionSettings, PgFeedOptions } from './feeds/pg-feed.js'
