// Wire types and validation shared by the node (src/server) and its client (src/client).
export * from './wire.js'
export * from './validate.js'
export * from './watch.js'
