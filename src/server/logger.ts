/**
 * The node's structured log: pino (JSON lines on stdout), imported in this file only. The
 * node writes one line per start, stop and unexpected error; per-request lines only when
 * `logRequests` is on.
 */
import { pino, destination } from 'pino'

/** The node's `logLevel` option: pino's levels, plus 'silent'. */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

/** What the node needs from a logger (pino's signature: an object of fields, then a message). */
export interface NodeLogger {
  info(fields: object, message: string): void
  warn(fields: object, message: string): void
  error(fields: object, message: string): void
}

/** A pino logger on stdout, written synchronously so the last lines before exit are not lost. */
export function createLogger(level: LogLevel, name: string): NodeLogger {
  return pino({ level, name }, destination({ dest: 1, sync: true }))
}
