/**
 * `stratacache cluster status | state | digest`: the cluster as one node sees it (`GET
 * /v1/cluster`) as a table of members by region (status, phi, incarnation, RTT, region
 * ranks) or JSON, the cluster state change (`POST /v1/cluster/state`), and the node's
 * replica digest (`GET /v1/cluster/digest`: equal on replicas that agree); each needs the
 * node's token when it has one.
 */
import type { Clock } from '../core/clock.js'
import type { ClusterStateRecord, ClusterView, MemberView } from '../server/index.js'
import { parseClusterState } from '../server/cluster-service.js'
import { EXIT, nodesFromEnv, parse, UsageError, type CliIo } from './cli-io.js'
import { normalizeNode } from '../client/client.js'
import { undiciTransport } from '../client/undici-transport.js'

/** The largest answer read (a cluster view of many members is far below it). */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024

export const CLUSTER_HELP = `Usage: stratacache cluster status [options]
       stratacache cluster state passive|no-migration|active [options]
       stratacache cluster digest [options]

status   Prints the cluster as the node sees it: members by region (own region first,
         then by rank = average RTT) with status, phi, incarnation and RTT.
state    Sets the cluster state (versioned, gossiped to every member, persisted):
           active        reads and writes
           no-migration  reads and writes; anti-entropy transfers and hint replay pause
           passive       writes refused with 503 ERR_CLUSTER_PASSIVE; reads served
digest   Prints the node's replica digest (Merkle root), record count and meta digest
         (prefix clears, tag invalidations): replicas that agree print the same.

Options:
  -n, --node <url>     The node to ask: http://host:port or host:port.
                       env STRATACACHE_NODES (the first) [default http://127.0.0.1:7700]
  --token <token>      Bearer token (nodes started with --auth-token).
                       env STRATACACHE_AUTH_TOKEN [default none]
  --timeout <ms>       Timeout of the request, ms [default 5000]
  --json               Machine-readable output (the node's JSON)
  -h, --help           This help

Exit codes: 0 ok, 2 usage error, 3 node unreachable / timeout / server error, 4 refused.`

const OPTIONS = {
  node: { type: 'string', short: 'n' },
  token: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

/** The node's base URL from `--node`: the same spellings as every command's (`normalizeNode`: a bare host is port 7700). */
function baseUrl(raw: string): string {
  try {
    return normalizeNode(raw, '--node')
  } catch (err) {
    throw new UsageError(`--node: ${err instanceof Error ? err.message : String(err)}`)
  }
}

interface Answer {
  readonly status: number
  readonly body: unknown
}

async function request(io: CliIo, method: 'GET' | 'POST', url: string, token: string | undefined, timeoutMs: number, body?: unknown): Promise<Answer | string> {
  const headers: Record<string, string> = { accept: 'application/json' }
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const controller = new AbortController()
  const clock: Clock = io.clock
  const timer = clock.setTimeout(() => controller.abort(), timeoutMs)
  // The client's transport, not fetch(): fetch refuses the WHATWG "bad ports" (6000, 6665,
  // 10080, …) without dialling, so a node every other command reaches was "unreachable".
  const transport = undiciTransport({ connections: 1, maxResponseBytes: MAX_ANSWER_BYTES, keepAliveMs: 1000 })
  const { origin, pathname } = new URL(url)
  try {
    const res = await transport.request(origin, { method, path: pathname, headers, body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)), signal: controller.signal })
    const text = res.body.toString('utf8')
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      parsed = text
    }
    return { status: res.status, body: parsed }
  } catch (err) {
    if (controller.signal.aborted) return `no answer within ${timeoutMs} ms`
    return `unreachable: ${err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err)}`
  } finally {
    clock.clearTimeout(timer)
    await transport.close()
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** A 200 answer in the shape `check` accepts, else (something that is not a node answered) the reason. */
function shaped<T>(answer: Answer, check: (body: Record<string, unknown>) => boolean): T | undefined {
  return isObject(answer.body) && check(answer.body) ? (answer.body as T) : undefined
}

function isView(b: Record<string, unknown>): boolean {
  const state = b.state
  return typeof b.self === 'string' && typeof b.region === 'string' && typeof b.incarnation === 'number' && isObject(state) && typeof state.state === 'string' && typeof state.version === 'number' && Array.isArray(b.regions) &&
    b.regions.every((r: unknown) => isObject(r) && typeof r.region === 'string' && typeof r.rank === 'number' && Array.isArray(r.members) &&
      r.members.every((m: unknown) => isObject(m) && typeof m.id === 'string' && typeof m.status === 'string' && typeof m.address === 'string' && typeof m.incarnation === 'number'))
}

const isStateRecord = (b: Record<string, unknown>): boolean => typeof b.state === 'string' && typeof b.version === 'number'
const isDigest = (b: Record<string, unknown>): boolean => typeof b.self === 'string' && typeof b.digest === 'string' && typeof b.count === 'number' && typeof b.meta === 'string'

/** A 200 that is not the route's answer: exit 3, as for a failing node. */
function badResponse(io: CliIo, node: string, what: string): number {
  io.err.write(`stratacache cluster: ${node}: ERR_BAD_RESPONSE the answer is not ${what} (is this a stratacache node?)\n`)
  return EXIT.UNAVAILABLE
}

/** Reports a failed request; returns the exit code. */
function failed(io: CliIo, node: string, answer: Answer | string): number {
  if (typeof answer === 'string') {
    io.err.write(`stratacache cluster: ${node}: ${answer}\n`)
    return EXIT.UNAVAILABLE
  }
  const b = answer.body as { code?: unknown; message?: unknown }
  const what = typeof b?.code === 'string' ? `${b.code} ${String(b.message)}` : `HTTP ${answer.status}`
  io.err.write(`stratacache cluster: ${node}: ${what}\n`)
  return answer.status >= 400 && answer.status < 500 ? EXIT.REFUSED : EXIT.UNAVAILABLE
}

const dash = (v: number | null | undefined, digits = 1): string => (v === null || v === undefined ? '-' : v.toFixed(digits))

/** The view as a table, one block per region (own region first, then by rank). */
export function formatClusterView(view: ClusterView): string {
  const all = view.regions.flatMap((r) => r.members)
  const count = (s: string): number => all.filter((m) => m.status === s).length
  const lines = [
    `node ${view.self} (region ${view.region}, incarnation ${view.incarnation}${view.status === 'left' ? ', LEFT' : ''})`,
    `cluster state ${view.state.state} (version ${view.state.version}${view.state.origin === '' ? '' : `, set by ${view.state.origin}`})`,
    `members ${all.length}: ${count('alive')} alive, ${count('suspect')} suspect, ${count('dead')} dead, ${count('left')} left`,
  ]
  const header = ['ID', 'STATUS', 'PHI', 'INCARNATION', 'RTT MS', 'ADDRESS', 'CLUSTER ADDRESS']
  for (const r of view.regions) {
    lines.push('', `${r.region}  rank ${r.rank}${r.rank === 0 ? ' (own region)' : ''}  avg RTT ${r.rttMs === null ? '-' : `${r.rttMs} ms`}`)
    const rows = r.members.map((m: MemberView) => [m.self ? `${m.id} *` : m.id, m.status, m.self ? '-' : dash(m.phi, 2), String(m.incarnation), dash(m.rttMs), m.address, m.clusterAddress ?? '-'])
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)))
    const fmt = (row: string[]): string => `  ${row.map((c, i) => c.padEnd(widths[i])).join('  ')}`.trimEnd()
    lines.push(fmt(header), ...rows.map(fmt))
  }
  return `${lines.join('\n')}\n`
}

export async function clusterCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv, OPTIONS)
  const [sub, ...rest] = positionals
  if (values.help === true || sub === 'help') {
    io.out.write(`${CLUSTER_HELP}\n`)
    return EXIT.OK
  }
  const node = baseUrl(values.node ?? nodesFromEnv(io.env)?.[0] ?? 'http://127.0.0.1:7700')
  const token = values.token ?? (io.env.STRATACACHE_AUTH_TOKEN === '' ? undefined : io.env.STRATACACHE_AUTH_TOKEN)
  // A bare decimal number of ms (not '0x10', '5s' or ' 5').
  const timeoutMs = values.timeout === undefined ? 5000 : /^\d+(\.\d+)?$/.test(values.timeout) ? Number(values.timeout) : NaN
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError(`--timeout expects milliseconds, got ${JSON.stringify(values.timeout)}`)
  if (sub === 'status') {
    if (rest.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(rest[0])} (see --help)`)
    const answer = await request(io, 'GET', `${node}/v1/cluster`, token, timeoutMs)
    if (typeof answer === 'string' || answer.status !== 200) return failed(io, node, answer)
    const view = shaped<ClusterView>(answer, isView)
    if (view === undefined) return badResponse(io, node, 'a cluster view')
    io.out.write(values.json === true ? `${JSON.stringify(view)}\n` : formatClusterView(view))
    return EXIT.OK
  }
  if (sub === 'state') {
    if (rest.length !== 1) throw new UsageError('cluster state takes one of passive, no-migration, active')
    const state = parseClusterState(rest[0])
    if (state === undefined) throw new UsageError(`unknown cluster state ${JSON.stringify(rest[0])}: expected passive, no-migration or active`)
    const answer = await request(io, 'POST', `${node}/v1/cluster/state`, token, timeoutMs, { state })
    if (typeof answer === 'string' || answer.status !== 200) return failed(io, node, answer)
    const record = shaped<ClusterStateRecord>(answer, isStateRecord)
    if (record === undefined) return badResponse(io, node, 'a cluster state')
    io.out.write(values.json === true ? `${JSON.stringify(record)}\n` : `cluster state ${record.state} (version ${record.version}); every member applies it as the gossip reaches it\n`)
    return EXIT.OK
  }
  if (sub === 'digest') {
    if (rest.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(rest[0])} (see --help)`)
    const answer = await request(io, 'GET', `${node}/v1/cluster/digest`, token, timeoutMs)
    if (typeof answer === 'string' || answer.status !== 200) return failed(io, node, answer)
    const d = shaped<{ self: string; digest: string; count: number; meta: string }>(answer, isDigest)
    if (d === undefined) return badResponse(io, node, 'a replica digest')
    io.out.write(values.json === true ? `${JSON.stringify(d)}\n` : `node ${d.self} digest ${d.digest} count ${d.count} meta ${d.meta}\n`)
    return EXIT.OK
  }
  throw new UsageError(sub === undefined ? 'missing subcommand: status, state or digest (see --help)' : `unknown subcommand ${JSON.stringify(sub)}: status, state or digest`)
}
