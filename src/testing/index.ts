// `stratacache/testing`: helpers for users' own tests. Nothing in src/ imports this folder.
export { ManualClock } from '../core/manual-clock.js'
export { SeededRandom } from '../core/random.js'
export { ChaosTransport, chaosTransport } from '../bus/chaos-transport.js'
export type { ChaosTransportOptions } from '../bus/chaos-transport.js'

/** A promise with its resolve and reject exposed, for tests that settle work by hand. */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (reason: unknown) => void } {
  let resolve!: (value: T) => void
  let reject!: (reason: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/**
 * The Store conformance suite (node:test blocks) every adapter passes; run it on your own
 * `Store` to check it keeps the contract. Imports `node:test`: use it from tests only.
 * `track(promise)` records how a promise settles, so a test can look without awaiting.
 */
export { storeConformance, track } from '../store/conformance.js'
export type { ConformanceTarget, Tracked } from '../store/conformance.js'

/**
 * The bus transport conformance suite (node:test blocks) every `BusTransport` passes,
 * broker kill and restart included; run it on your own transport. Tests only.
 */
export { busTransportConformance } from '../bus/conformance.js'
export type { BusTransportTarget } from '../bus/conformance.js'

/**
 * The deterministic cluster simulation: state machines (cluster kernel) on simulated
 * links (latency, loss, duplication, reordering, partitions) and nodes (pause, crash,
 * restart with or without disk), one ManualClock, one SeededRandom; `runSeeds` runs many
 * seeded scenarios and names the failing seed.
 */
export { runSeeds, SeedFailure, SimNetwork } from './sim-network.js'
export type { LatencyModel, LinkOptions, SimNetworkOptions, SimNetworkStats } from './sim-network.js'
