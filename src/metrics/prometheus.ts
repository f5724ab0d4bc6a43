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

type CounterField = Exclude<keyof CacheStats, 'size' | 'evictions' | 'l2' | 'bus' | 'origins'>

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

type L2Stats = NonNullable<CacheStats['l2']>

/** L2 figures: counters, then gauges. Registered only for a cache with a store. */
const L2_COUNTERS: ReadonlyArray<[string, string, (s: L2Stats) => number]> = [
  ['l2_hits_total', 'Reads answered from L2.', (s) => s.hits],
  ['l2_misses_total', 'L2 reads that found nothing usable (absent, expired, invalid, undecodable or failed).', (s) => s.misses],
  ['l2_decode_errors_total', 'L2 records that failed to decode or decrypt.', (s) => s.decodeErrors],
  ['l2_writes_total', 'Records written to L2.', (s) => s.writes],
  ['l2_timeouts_total', 'L2 operations past their timeout.', (s) => s.timeouts],
  ['l2_failures_total', 'L2 operations that failed (other than timeouts).', (s) => s.failures],
  ['l2_replayed_total', 'Queued writes replayed once L2 came back.', (s) => s.replayed],
  ['l2_queue_dropped_total', 'Queued writes dropped because the write queue was full.', (s) => s.queueDropped],
  ['l2_refused_total', 'L2 requests the store refused (full, invalid key or value); not failures.', (s) => s.refused],
  ['l2_touches_dropped_total', 'Time-to-idle touches dropped because the touch queue was full.', (s) => s.touches.dropped],
  ['l2_breaker_opened_total', 'Times the L2 circuit breaker opened.', (s) => s.breaker.opened],
  ['lock_waits_total', 'Times a process waited for another process holding the distributed lock.', (s) => s.lock.waits],
  ['lock_degraded_total', 'Computations run without the distributed lock after the wait ran out (the degrade path).', (s) => s.lock.degraded],
]
const BREAKER_STATES = ['closed', 'open', 'half-open'] as const

type BusStats = NonNullable<CacheStats['bus']>

/** Invalidation-bus figures (counters). Registered only for a cache with a bus. */
const BUS_COUNTERS: ReadonlyArray<[string, string, (s: BusStats) => number]> = [
  ['bus_published_total', 'Invalidation messages sent to the broker.', (s) => s.published],
  ['bus_received_total', 'Bus messages received from other processes (heartbeats included).', (s) => s.received],
  ['bus_gaps_total', 'Lost bus messages noticed (sequence gaps, heartbeats ahead of what arrived).', (s) => s.gaps],
  ['bus_flushes_total', 'L1 flushes decided by the bus (gaps, lost or silent subscription, reconnects, silent senders).', (s) => s.flushes],
  ['bus_duplicates_total', 'Duplicate bus messages discarded.', (s) => s.duplicates],
  ['bus_late_total', 'Late or out-of-order bus messages discarded.', (s) => s.late],
  ['bus_malformed_total', 'Payloads on the bus channel that were not bus messages.', (s) => s.malformed],
  ['bus_overflows_total', 'Times the publish queue overflowed and became clears.', (s) => s.overflows],
  ['bus_publish_failures_total', 'Publish attempts the broker refused or did not answer (kept and retried).', (s) => s.publishFailures],
  ['bus_silences_total', 'Times the subscription was found silently dead.', (s) => s.silences],
  ['bus_l1_flushes_total', "Times this cache's L1 was emptied by the bus.", (s) => s.l1Flushes],
  ['bus_fills_skipped_total', 'L1 writes skipped because an invalidation arrived while the value was read.', (s) => s.fillsSkipped],
]

/** Registers the cache's metrics and returns the registry (`await registry.metrics()` to scrape). */
export function registerMetrics(cache: StatsSource, options: MetricsOptions = {}): Registry {
  if (typeof cache?.stats !== 'function') throw new InvalidOptionsError('cache', 'expected a cache with stats()')
  const registry = options.registry ?? new Registry()
  const prefix = options.prefix ?? 'stratacache_'
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) throw new InvalidOptionsError('prefix', `not a valid Prometheus name prefix: ${JSON.stringify(prefix)}`)
  const name = options.name ?? 'default'
  // Every metric carries the `cache` label and copies its value from stats() when scraped.
  const counter = (suffix: string, help: string, read: () => number): void => {
    new Counter({
      name: prefix + suffix,
      help,
      labelNames: ['cache'],
      registers: [registry],
      collect() {
        this.reset()
        this.inc({ cache: name }, read())
      },
    })
  }
  const gauge = (suffix: string, help: string, read: () => number): void => {
    new Gauge({
      name: prefix + suffix,
      help,
      labelNames: ['cache'],
      registers: [registry],
      collect() {
        this.set({ cache: name }, read())
      },
    })
  }
  for (const [field, suffix, help] of COUNTERS) counter(suffix, help, () => cache.stats()[field])
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
  if (cache.stats().l2 !== undefined) {
    const l2 = (): L2Stats => cache.stats().l2 as L2Stats
    for (const [suffix, help, read] of L2_COUNTERS) counter(suffix, help, () => read(l2()))
    gauge('l2_write_queue', 'Failed L2 writes waiting for replay.', () => l2().queued)
    new Gauge({
      name: `${prefix}l2_breaker_state`,
      help: 'L2 circuit breaker: 1 for the current state, 0 for the others.',
      labelNames: ['cache', 'state'],
      registers: [registry],
      collect() {
        const state = l2().breaker.state
        for (const s of BREAKER_STATES) this.set({ cache: name, state: s }, s === state ? 1 : 0)
      },
    })
  }
  if (cache.stats().bus !== undefined) {
    const bus = (): BusStats => cache.stats().bus as BusStats
    for (const [suffix, help, read] of BUS_COUNTERS) counter(suffix, help, () => read(bus()))
    gauge('bus_queued', 'Keys and tags waiting in the bus publish queue.', () => bus().queued)
    gauge('bus_healthy', '1 while the bus subscription is trusted, 0 while L1 is bypassed.', () => (bus().healthy ? 1 : 0))
  }
  gauge('entries', 'Entries held in the in-process tier.', () => cache.stats().size)
  return registry
}

/** A number read when the registry is scraped (server counters and gauges). */
export interface Reading {
  /** Full metric name, e.g. `stratacache_node_requests_total`. */
  readonly name: string
  readonly help: string
  readonly type: 'counter' | 'gauge'
  readonly read: () => number
}

/** Registers plain readings (no labels) in `registry`; each is read only when scraped. */
export function registerReadings(registry: Registry, readings: readonly Reading[]): void {
  for (const r of readings) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(r.name)) throw new InvalidOptionsError('name', `not a valid Prometheus metric name: ${JSON.stringify(r.name)}`)
    if (r.type === 'counter') {
      new Counter({
        name: r.name,
        help: r.help,
        registers: [registry],
        collect() {
          this.reset()
          this.inc(r.read())
        },
      })
    } else {
      new Gauge({
        name: r.name,
        help: r.help,
        registers: [registry],
        collect() {
          this.set(r.read())
        },
      })
    }
  }
}

/** A metric with labels, read when the registry is scraped: one value per label set. */
export interface LabeledReading {
  /** Full metric name, e.g. `stratacache_cluster_members`. */
  readonly name: string
  readonly help: string
  readonly type: 'counter' | 'gauge'
  readonly labelNames: readonly string[]
  /** The current series: label values (by name) and the value of each. */
  readonly read: () => Iterable<readonly [Readonly<Record<string, string>>, number]>
}

/** Registers labeled readings in `registry` (series that disappear from `read()` disappear from the scrape). */
export function registerLabeledReadings(registry: Registry, readings: readonly LabeledReading[]): void {
  for (const r of readings) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(r.name)) throw new InvalidOptionsError('name', `not a valid Prometheus metric name: ${JSON.stringify(r.name)}`)
    const Metric = r.type === 'counter' ? Counter : Gauge
    new Metric({
      name: r.name,
      help: r.help,
      labelNames: [...r.labelNames],
      registers: [registry],
      collect(this: Counter | Gauge) {
        this.reset()
        for (const [labels, value] of r.read()) {
          if (this instanceof Counter) this.inc(labels, value)
          else this.set(labels, value)
        }
      },
    })
  }
}
