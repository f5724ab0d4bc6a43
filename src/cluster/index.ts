// The cluster kernel (imports only src/core): message transport, state-machine contract, runner.
export { DEFAULT_MAX_FRAME_BYTES, validateNodeId } from './transport.js'
export type { MessageTransport, NodeId } from './transport.js'
export { jsonCodec } from './kernel.js'
export type { KernelAction, KernelDisk, KernelEvent, MessageCodec, PersistAction, StateMachine } from './kernel.js'
export { KernelRunner } from './kernel-runner.js'
export type { KernelRunnerOptions, KernelRunnerStats } from './kernel-runner.js'
