/**
 * The node's requests on the `stratacache:node:request` tracing channel (core/tracing.ts):
 * one span per request, from its arrival to the end of its response (the socket's `close`,
 * so a watch or dashboard stream lasts as long as it is open). node.ts calls these only
 * while someone subscribes, so the synchronous GET-hit path stays as it is otherwise; with
 * a subscriber that path still answers synchronously, inside the span.
 *
 * The context names the route by template (`/v1/keys/:key`), never a value; the path is
 * given as is (keys are not values).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { nodeRequestChannel, type NodeRequestTrace, traceAsync } from '../core/tracing.js'
import { API_PREFIX } from '../protocol/wire.js'
import { splitUrl, type ApiResponse } from './http-api.js'

const KEY_PREFIX = `${API_PREFIX}/keys/`
const CLUSTER_PREFIX = `${API_PREFIX}/cluster/`

/** Routes named by their own path (the fixed ones of http-api.ts, the dashboard's, the watch, the cluster's). */
const FIXED_ROUTES: ReadonlySet<string> = new Set(
  ['/keys', '/mget', '/mset', '/invalidate', '/stats', '/watch', '/cluster', '/dashboard/events', '/dashboard/snapshot'].map((p) => API_PREFIX + p).concat(['/healthz', '/readyz', '/metrics', '/ping', '/dashboard']),
)

/** The route template of `path`: bounded, so a span attribute never holds a key or an attacker's string. */
export function routeOf(path: string): string {
  if (FIXED_ROUTES.has(path)) return path
  if (path.startsWith(KEY_PREFIX)) return `${KEY_PREFIX}:key`
  if (path.startsWith(CLUSTER_PREFIX)) return `${CLUSTER_PREFIX}*`
  if (!path.startsWith(`${API_PREFIX}/`)) {
    const parts = path.split('/')
    if (parts.length === 3 && parts[1] !== '' && parts[2] !== '') return '/:region/:key'
  }
  return '(other)'
}

function contextOf(method: string, url: string, node: string): NodeRequestTrace {
  const { path } = splitUrl(url)
  return { method, path, route: routeOf(path), node }
}

/**
 * Runs `handle` (the node's request handler) inside a request span: start and end around
 * its synchronous part, asyncStart and asyncEnd once the response is over, with `status`.
 */
export function traceRequest(req: IncomingMessage, res: ServerResponse, node: string, handle: () => Promise<void>): Promise<void> {
  const context = contextOf(req.method ?? 'GET', req.url ?? '/', node)
  const channel = nodeRequestChannel
  res.once('close', () => {
    context.status = res.headersSent ? res.statusCode : 0
    channel.asyncStart.publish(context)
    channel.asyncEnd.publish(context)
  })
  return channel.start.runStores(context, () => {
    try {
      return handle().catch((err: unknown) => {
        context.error = err
        channel.error.publish(context)
        throw err
      })
    } finally {
      channel.end.publish(context)
    }
  })
}

/** `NodeHandle.inject` inside a request span (`status` from the response). */
export function traceInject(method: string, url: string, node: string, handle: () => Promise<ApiResponse>): Promise<ApiResponse> {
  return traceAsync(nodeRequestChannel, contextOf(method, url, node), handle, (context, response) => {
    context.status = response.status
  })
}
