/**
 * What the client knows of the cluster's shape, for the fallback ladder: its own region's
 * nodes and the other regions in rank order, from `GET /v1/cluster` of any node (the
 * ClusterView of src/cluster/membership.ts: `regions[]` own region first then by rank,
 * each with `members { address, status }`). Members the view marks `dead` or `left` are
 * left out. A node that answers 404 has no cluster, and a node whose view lists only itself
 * is alone (a one-node cluster: no seeds, no discovery): the client's `nodes` are then the
 * topology, all in the client's region (`nodes` may name several lone nodes).
 */

export interface Topology {
  /** Live nodes of the client's region. */
  readonly local: readonly string[]
  /** Live nodes of the other regions, nearest (rank 1) first. */
  readonly remote: readonly (readonly string[])[]
  /** Where it came from. */
  readonly source: 'cluster' | 'nodes'
}

/** The flat topology: every node in the client's region. */
export function flatTopology(nodes: readonly string[]): Topology {
  return { local: nodes, remote: [], source: 'nodes' }
}

/** True when a ClusterView (as JSON) lists at most one member: a lone node, not a cluster. */
export function isLoneView(view: unknown): boolean {
  if (view === null || typeof view !== 'object') return false
  const regions = (view as { regions?: unknown }).regions
  if (!Array.isArray(regions)) return false
  let members = 0
  for (const r of regions as unknown[]) {
    const list = r !== null && typeof r === 'object' ? (r as { members?: unknown }).members : undefined
    if (Array.isArray(list)) members += list.length
  }
  return members <= 1
}

/**
 * The topology in a ClusterView as JSON, seen from `region`; `undefined` if it is not one.
 * `normalize` turns a member's `host:port` into the client's spelling (throws if unusable).
 */
export function parseClusterView(view: unknown, region: string, normalize: (address: string) => string): Topology | undefined {
  if (view === null || typeof view !== 'object') return undefined
  const regions = (view as { regions?: unknown }).regions
  if (!Array.isArray(regions)) return undefined
  let local: string[] = []
  const remote: string[][] = []
  for (const r of regions as unknown[]) {
    if (r === null || typeof r !== 'object') return undefined
    const { region: name, members } = r as { region?: unknown; members?: unknown }
    if (typeof name !== 'string' || !Array.isArray(members)) return undefined
    const live: string[] = []
    for (const m of members as unknown[]) {
      if (m === null || typeof m !== 'object') continue
      const { address, status } = m as { address?: unknown; status?: unknown }
      if (typeof address !== 'string' || address === '' || status === 'dead' || status === 'left') continue
      try {
        live.push(normalize(address))
      } catch {
        // an address the client cannot use: skipped
      }
    }
    if (name === region) local = live
    else if (live.length > 0) remote.push(live)
  }
  return { local, remote, source: 'cluster' }
}
