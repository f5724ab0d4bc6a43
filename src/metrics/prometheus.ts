/**
 * Prometheus metrics for a cache, via prom-client (the standard Node client).
 *
 * Zero cost until scraped: nothing is counted twice. The cache keeps its own plain
 * counters (`stats()`); each metric here has a `collect()` that copies the current value
 * when the registry is read. prom-client is imported in this file only.
 */
import { Counter, Gauge, Registry } from 'prom-client'
import { InvalidOptionsError } from '../core/errors.js'
import type { CacheStats } from '../cache/types.js'

export interface MetricsOptions {
  /** Registry to register in. @default a new Registry */
  registry?: Registry
  /** Metric name prefix. @default 'stratacache_' */
  prefix?: string
  /** A `cache` label value, to tell several caches apart. @default 'default' */
  name?: string
}

interface StatsSource {
  stats(): CacheStats
}

type CounterField = Exclude<keyof CacheStats, 'size' | 'evictions'>

const COUNTERS: ReadonlyArray<[CounterField, string, string]> = [
  ['hits', 'hits_total', 'Reads answered with a fresh value.'],
  ['misses', 'misses_total', 'Reads that found no fresh value.'],
  ['staleHits', 'stale_hits_total', 'Stale values served by fail-safe (factory failure, soft timeout, retry backoff).'],
  ['factoryCalls', 'factory_calls_total', 'Factory runs.'],
  ['factoryErrors', 'factory_errors_total', 'Factory runs that threw or rejected.'],
  ['factoryTimeouts', 'factory_timeouts_total', 'Factory runs past their hard timeout.'],
  ['refreshes', 'refreshes_total', 'Background refreshes started by refresh-ahead.'],
  ['flightJoins', 'flight_joins_total', 'Calls that joined a computation already in flight.'],
  ['tagInvalidations', 'tag_invalidations_total', 'Tags invalidated.'],
]

/** Registers the cache's metrics and returns the registry (`await registry.metrics()` to scrape). */
export function registerMetrics(cache: StatsSource, options: MetricsOptions = {}): Registry {
  if (typeof cache?.stats !== 'function') throw new InvalidOptionsError('cache', 'expected a cache with stats()')
  const registry = options.registry ?? new Registry()
  const prefix = options.prefix ?? 'stratacache_'
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) throw new InvalidOptionsError('prefix', `not a valid Prometheus name prefix: ${JSON.stringify(prefix)}`)
  const name = options.name ?? 'default'
  for (const [field, suffix, help] of COUNTERS) {
    new Counter({
      name: prefix + suffix,
      help,
      labelNames: ['cache'],
      registers: [registry],
      collect() {
        this.reset()
        this.inc({ cache: name }, cache.stats()[field])
      },
    })
  }
  new Counter({
    name: `${prefix}removals_total`,
    help: 'Entries that left the in-process tier, by reason (expire, evict, erase, flush).',
    labelNames: ['cache', 'reason'],
    registers: [registry],
    collect() {
      this.reset()
      const e = cache.stats().evictions
      for (const reason of ['expire', 'evict', 'erase', 'flush'] as const) this.inc({ cache: name, reason }, e[reason])
    },
  })
  new Gauge({
    name: `${prefix}entries`,
    help: 'Entries held in the in-process tier.',
    labelNames: ['cache'],
    registers: [registry],
    collect() {
      this.set({ cache: name }, cache.stats().size)
    },
  })
  return registry
}
