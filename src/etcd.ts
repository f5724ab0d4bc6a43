/**
 * `stratacache/etcd`: the L2 store on etcd v3 (`etcdStore`) and the bus that keeps L1s coherent from its watch (`etcdBus`). It drives `etcd3`, an optional
 * peer dependency (`npm install etcd3`), loaded on the store's first operation (it pulls in
 * grpc-js, ~0.6 s); importing this entry without it installed rejects with
 * MissingDependencyError (ERR_MISSING_DEPENDENCY).
 */
import { requireDependency } from './core/optional-dependency.js'

requireDependency('etcd3', 'stratacache/etcd')

export { etcdStore } from './store/etcd-store.js'
export type { EtcdStoreOptions, EtcdConsistency, EtcdReadOptions, EtcdStore, EtcdChange, EtcdWatch } from './store/etcd-store.js'
export { etcdBus, EtcdBus } from './cache/etcd-bus.js'
export type { EtcdBusOptions } from './cache/etcd-bus.js'
