/**
 * The cluster settings of `stratacache serve` (docs/guide/cluster.md lists the same rows):
 * each has the three spellings of one `NodeOptions` field, like every serve setting
 * (`--cluster-port`, `STRATACACHE_CLUSTER_PORT`, `"clusterPort"`), with the same
 * precedence: flags > environment > config file > defaults.
 */
import type { Setting } from './serve-setting.js'

/** Extra flag spellings: `--id` is `--node-id`. */
export const SERVE_ALIASES: ReadonlyMap<string, string> = new Map([['--id', 'nodeId']])

export const CLUSTER_SETTINGS: readonly Setting[] = [
  { name: 'seeds', kind: 'list', def: 'none', help: "Other nodes' HTTP addresses (host:port,host:port) to join through; implies --discovery static." },
  { name: 'discovery', kind: 'list', def: 'static with --seeds, else none', help: 'Discovery strategies in fall-through order: static, env, file, dns, mdns.' },
  { name: 'discoveryEnv', kind: 'string', def: 'STRATACACHE_SEEDS', help: 'Variable the env strategy reads (host:port list).' },
  { name: 'discoveryFile', kind: 'string', def: 'none', help: 'File the file strategy reads (host:port per line, # comments; re-read on change).' },
  { name: 'discoveryDns', kind: 'string', def: 'none', help: 'DNS name the dns strategy resolves (A/AAAA; SRV when it starts with _).' },
  { name: 'discoveryDnsPort', kind: 'int', def: 'this node\'s --port', help: "Peers' HTTP port for A/AAAA answers." },
  { name: 'mdnsServiceType', kind: 'string', def: 'stratacache', help: 'DNS-SD service type mdns publishes and browses.' },
  { name: 'mdnsInterface', kind: 'string', def: 'all', help: 'Interface address mdns binds and sends on (e.g. 127.0.0.1).' },
  { name: 'discoveryInterval', kind: 'duration', def: '5s', help: 'How often discovery runs again for nodes not yet joined.' },
  { name: 'clusterPort', kind: 'int', def: 'port + 10000 (0 = free port when port is 0)', help: 'Port of the cluster transport between nodes.' },
  { name: 'clusterHost', kind: 'string', def: '--host', help: 'Interface the cluster transport listens on.' },
  { name: 'advertiseHost', kind: 'string', def: '--host', help: 'Host other nodes and clients reach this node at (needed with --host 0.0.0.0).' },
  { name: 'advertiseClusterPort', kind: 'int', def: 'the bound cluster port', help: 'Cluster port other nodes dial (a port forward or proxy in front of --cluster-port).' },
  { name: 'clusterSecret', kind: 'string', def: 'none', help: 'Shared secret (>= 16 bytes) every node proves; required to cluster.', secret: true },
  { name: 'heartbeatInterval', kind: 'duration', def: '1s', help: 'Membership probe interval.' },
  { name: 'phiThreshold', kind: 'number', def: '8', help: 'Phi past which a silent peer is probed indirectly, then suspected.' },
  { name: 'acceptablePause', kind: 'duration', def: '3s', help: 'Silence tolerated on top of the mean heartbeat interval.' },
  { name: 'minStdDeviation', kind: 'duration', def: '100ms', help: 'Floor of the heartbeat inter-arrival std-dev.' },
  { name: 'indirectTimeout', kind: 'duration', def: '500ms', help: 'Time indirect probes (through 3 peers) may take.' },
  { name: 'suspicionTimeout', kind: 'duration', def: '3s', help: 'Time a suspect has to refute before it is dead.' },
  { name: 'pruneAfter', kind: 'duration', def: '60s', help: 'Dead and left members leave views this long after the verdict.' },
  { name: 'leaveTimeout', kind: 'duration', def: '500ms', help: 'On shutdown, time the leave announcement may take to go out.' },
]
