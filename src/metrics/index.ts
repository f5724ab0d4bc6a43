// `stratacache/metrics`: a cache's counters as Prometheus metrics (prom-client).
export { registerMetrics } from './prometheus.js'
export type { MetricsOptions } from './prometheus.js'
