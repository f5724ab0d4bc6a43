// Leader/follower dedupe of concurrent computations (imports only src/core).
export { SingleFlight } from './single-flight.js'
export type { FlightFn, FlightOutcome, RunOptions, SingleFlightOptions, SingleFlightStats } from './single-flight.js'
