#!/usr/bin/env node
// `npm start`'s prestart: builds dist/src only when a source is newer than the last build,
// so a start after no change costs a directory walk (milliseconds), not a compilation.
// The build itself is incremental (tsconfig.build.json), so a small change compiles little.
import { spawnSync } from 'node:child_process'
import process from 'node:process'
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

// Written after each successful build with the time the build started (tsc leaves its own
// .tsbuildinfo untouched when nothing changed, so it cannot serve as the stamp).
const stamp = 'dist/src/.build-stamp'

/** The newest modification time under `path` (a file or a directory tree). */
function newest(path) {
  const info = statSync(path)
  if (!info.isDirectory()) return info.mtimeMs
  let max = info.mtimeMs
  for (const entry of readdirSync(path)) max = Math.max(max, newest(join(path, entry)))
  return max
}

const inputs = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json']
const stale = !existsSync(stamp) || !existsSync('dist/src/cli/main.js') || inputs.some((p) => newest(p) > statSync(stamp).mtimeMs)
if (stale) {
  process.stderr.write('building dist/src (tsc -p tsconfig.build.json)…\n')
  const started = new Date()
  const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' })
  if (tsc.status !== 0) process.exit(tsc.status ?? 1)
  writeFileSync(stamp, '')
  utimesSync(stamp, started, started)
}
