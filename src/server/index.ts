// The cache node: startNode and the seams the cluster builds on.
export { startNode } from './node.js'
export type { InjectRequest, NodeHandle } from './node.js'
export type { NodeOptions, ResolvedNodeOptions } from './node-options.js'
export type { ApiRequest, ApiResponse } from './http-api.js'
export type { NodeLogger } from './logger.js'
export { noReplication } from './replicator.js'
export type { Replicator, WriteEvent } from './replicator.js'
export type { MessageTransport, NodeId } from '../cluster/transport.js'
