/**
 * Optional peer dependencies. The broker clients (ioredis, nats, amqplib, pg, etcd3) are
 * not installed with stratacache: an application installs the ones it uses. Each adapter
 * entry point (`stratacache/redis`, …) calls `requireDependency` before it loads its
 * adapter, so a missing package is a `MissingDependencyError` (ERR_MISSING_DEPENDENCY)
 * naming the package and the install command, not a raw module-resolution failure from
 * deep inside the package.
 */
import { MissingDependencyError } from './errors.js'

/**
 * Whether `packageName` can be imported from stratacache's own location (without loading
 * it). `resolve` is the resolver to use (tests pass their own); by default
 * `import.meta.resolve` of this module, which finds the package exactly as an `import`
 * from stratacache would.
 */
export function dependencyInstalled(packageName: string, resolve: (specifier: string) => string = (s) => import.meta.resolve(s)): boolean {
  try {
    resolve(packageName)
    return true
  } catch {
    return false
  }
}

/**
 * Throws `MissingDependencyError` (ERR_MISSING_DEPENDENCY) unless `packageName` is
 * installed where stratacache can import it. `neededBy` names what needs it in the error
 * (an entry point such as `stratacache/redis`, or a factory such as `etcdStore`).
 */
export function requireDependency(packageName: string, neededBy: string, resolve?: (specifier: string) => string): void {
  if (!dependencyInstalled(packageName, resolve)) throw new MissingDependencyError(packageName, neededBy)
}
