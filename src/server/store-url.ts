/**
 * A node's store given as a URL (`stratacache serve --store <url>`), so that the CLI, the
 * environment and config files can name one without code:
 *
 *   etcd://host:port[,host:port...]/namespace[?consistency=serializable]
 *
 * opens `etcdStore({ endpoints: ['http://host:port', ...], namespace: 'namespace/', timeout })`
 * (the namespace gets a trailing '/' when it has none; default 'stratacache/'). The node is
 * then stateless: its data, tombstones, tag versions and clock high-water mark live in etcd,
 * and any number of nodes can be started in front of the cluster. Anything else (a parameter
 * given twice included) is refused with ERR_INVALID_OPTIONS (`serve` exits 2).
 */
import type { Duration } from '../core/duration.js'
import { InvalidOptionsError } from '../core/errors.js'
import { etcdStore, type EtcdConsistency } from '../store/etcd-store.js'
import type { Store } from '../store/types.js'

const ETCD_URL = /^etcd:\/\/([^/?#]+)(?:\/([^?#]*))?(?:\?([^#]*))?$/
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/

/** Opens the store a `--store` URL names; `timeout` is each store call's deadline. */
export function storeFromUrl(url: string, timeout: Duration): Store {
  const m = ETCD_URL.exec(url)
  if (m === null) throw new InvalidOptionsError('store', `expected etcd://host:port[,host:port]/namespace, got ${JSON.stringify(url)}`)
  const endpoints = (m[1] as string).split(',').map((hp) => {
    const parts = HOST_PORT.exec(hp)
    if (parts === null || Number(parts[2]) < 1 || Number(parts[2]) > 65535) throw new InvalidOptionsError('store', `expected host:port in ${JSON.stringify(url)}, got ${JSON.stringify(hp)}`)
    return `http://${hp}`
  })
  let path: string
  try {
    path = decodeURIComponent(m[2] ?? '')
  } catch {
    throw new InvalidOptionsError('store', `malformed %-escape in the namespace of ${JSON.stringify(url)}`)
  }
  const namespace = path === '' ? 'stratacache/' : path.endsWith('/') ? path : `${path}/`
  let consistency: EtcdConsistency | undefined
  for (const [name, value] of new URLSearchParams(m[3] ?? '')) {
    if (name === 'consistency' && consistency !== undefined) throw new InvalidOptionsError('store', `parameter consistency given more than once in ${JSON.stringify(url)}`)
    if (name === 'consistency' && (value === 'linearizable' || value === 'serializable')) consistency = value
    else throw new InvalidOptionsError('store', `unknown parameter ${name}=${value} in ${JSON.stringify(url)} (known: consistency=linearizable|serializable)`)
  }
  return etcdStore({ endpoints, namespace, timeout, ...(consistency === undefined ? {} : { consistency }) })
}
