import { mkdirSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'

/**
 * `mkdir -p` that always ends: creates `path` and its missing parents, each level once from
 * the top down, and throws the file system's error (ENOENT, ENOTDIR, EACCES…) where a level
 * cannot be made. node's `mkdirSync(path, { recursive: true })` instead retries the parent
 * on every ENOENT, and under /proc (whose directories answer ENOENT to a mkdir, EEXIST for
 * themselves) it loops forever at full CPU, in synchronous code no signal handler can
 * interrupt. An existing `path` is left as it is (whatever it is: the caller's open says).
 */
export function makeDirectory(path: string): void {
  const missing: string[] = []
  for (let p = resolve(path); ; p = dirname(p)) {
    try {
      statSync(p)
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    missing.push(p)
    if (dirname(p) === p) break
  }
  for (let i = missing.length - 1; i >= 0; i--) {
    const dir = missing[i]!
    try {
      mkdirSync(dir)
    } catch (err) {
      // Made meanwhile by someone else: fine when it is a directory.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !statSync(dir).isDirectory()) throw err
    }
  }
}
