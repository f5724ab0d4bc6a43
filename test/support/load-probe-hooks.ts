// Module-customization hooks (node:module `register`) for tests of what an import loads:
// every resolved URL is posted to the port given at registration, and the bare specifiers
// listed in `hide` fail to resolve, as if those packages were not installed.
import type { MessagePort } from 'node:worker_threads'

interface ProbeData {
  port: MessagePort
  hide?: string[]
}

type NextResolve = (specifier: string, context: unknown) => Promise<{ url: string }> | { url: string }

let port: MessagePort | undefined
let hidden: ReadonlySet<string> = new Set()

/** Receives the port and the packages to hide. */
export function initialize(data: ProbeData): void {
  port = data.port
  hidden = new Set(data.hide ?? [])
}

/** Reports each resolution; refuses hidden packages with ERR_MODULE_NOT_FOUND. */
export async function resolve(specifier: string, context: unknown, next: NextResolve): Promise<{ url: string }> {
  const bare = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0] ?? specifier
  if (hidden.has(bare)) throw Object.assign(new Error(`Cannot find package '${specifier}' (hidden by load-probe-hooks)`), { code: 'ERR_MODULE_NOT_FOUND' })
  const result = await next(specifier, context)
  port?.postMessage(result.url)
  return result
}
