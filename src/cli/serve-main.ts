#!/usr/bin/env node
// `npm start`: runs `stratacache serve` with this process's arguments and environment.
import { systemClock } from '../core/system-clock.js'
import { serveCommand } from './serve.js'

const code = await serveCommand(process.argv.slice(2), process.env)
process.exitCode = code
// Everything is closed by now, so the process ends on its own; a forced stop (130) or a
// handle someone else left open must not keep it alive.
systemClock.setTimeout(() => process.exit(code), code === 0 ? 2000 : 0, { unref: code === 0 })
