/**
 * A listen failure that is the caller's host setting (a name that does not resolve, an
 * address not of this machine) as ERR_INVALID_OPTIONS naming that setting (`host` for the
 * HTTP port, `clusterHost` for the cluster port); anything else (the port in use,
 * EADDRINUSE; no permission, EACCES) as node:net reported it, with its code.
 */
import { InvalidOptionsError } from '../core/errors.js'

export function listenError(err: unknown, option: 'host' | 'clusterHost', host: string, port: number): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (code === 'ENOTFOUND' || code === 'EADDRNOTAVAIL') {
    const why = code === 'ENOTFOUND' ? 'does not resolve' : 'is not an address of this machine'
    const which = option === 'host' ? 'port' : 'cluster port'
    return new InvalidOptionsError(option, `cannot listen on ${JSON.stringify(host)} (${which} ${port}): the host ${why} (${code})`, { cause: err })
  }
  return err
}
