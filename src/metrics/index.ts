// `stratacache/metrics`: a cache's counters as Prometheus metrics (prom-client), and plain
// readings (such as the client's `nearCacheReadings()`) registered the same way.
export { registerMetrics, registerReadings } from './prometheus.js'
export type { MetricsOptions, Reading } from './prometheus.js'
