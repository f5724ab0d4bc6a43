// Seeds from a file (one address per line, or comma-separated; `#` comments), re-read when it
// changes. fs.watch is fast but unreliable (network file systems, editors that rename over the
// file, containers with bind mounts), so a periodic stat on the injected clock backs it up.
import { watch, type FSWatcher } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'
import type { Clock, TimerHandle } from '../../core/clock.js'
import { InvalidOptionsError } from '../../core/errors.js'
import { systemClock } from '../../core/system-clock.js'
import { ChangeListeners, parseAddressList, positiveMs, type Discovery, type DiscoveryCandidate } from './discovery.js'

export interface FileDiscoveryOptions {
  readonly path: string
  /** How often to stat the file when fs.watch says nothing. @default 2000 */
  readonly pollIntervalMs?: number
  /** Use fs.watch as well as polling. @default true */
  readonly watch?: boolean
  readonly clock?: Clock
}

export class FileDiscovery implements Discovery {
  readonly kind = 'file'
  readonly #path: string
  readonly #clock: Clock
  readonly #pollMs: number
  readonly #useWatch: boolean
  readonly #listeners = new ChangeListeners()
  #candidates: readonly DiscoveryCandidate[] = []
  #stamp = ''
  #lastError: Error | undefined
  #watcher: FSWatcher | undefined
  #timer: TimerHandle | undefined
  #closed = false

  constructor(options: FileDiscoveryOptions) {
    if (typeof options?.path !== 'string' || options.path === '') throw new InvalidOptionsError('path', 'expected a file path')
    this.#path = resolve(options.path)
    this.#clock = options.clock ?? systemClock
    this.#pollMs = positiveMs(options.pollIntervalMs, 'pollIntervalMs', 2000)
    this.#useWatch = options.watch ?? true
  }

  get lastError(): Error | undefined { return this.#lastError }

  /** Re-reads the file if its size or mtime changed. A bad, empty (zero-byte) or missing file keeps the last good list. */
  async discover(): Promise<readonly DiscoveryCandidate[]> {
    await this.#refresh()
    return this.#candidates
  }

  onChange(listener: () => void): () => void {
    const off = this.#listeners.add(listener)
    this.#startWatching()
    return off
  }

  close(): Promise<void> {
    this.#closed = true
    this.#watcher?.close()
    this.#watcher = undefined
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
    return Promise.resolve()
  }

  /** Returns true when the list changed. */
  async #refresh(): Promise<boolean> {
    let stamp: string
    try {
      const s = await stat(this.#path)
      stamp = `${s.mtimeMs}:${s.size}:${s.ino}`
    } catch (e) {
      this.#lastError = e as Error
      return false
    }
    if (stamp === this.#stamp) return false
    try {
      const text = await readFile(this.#path, 'utf8')
      // Zero bytes is a file being rewritten in place (truncated, not yet written: what
      // `echo ... > seeds` and most writers do), not a list of no seeds; a list of none is
      // written as a comment line.
      if (text === '') throw new InvalidOptionsError('path', `${this.#path} is empty (being written?); a file of no seeds holds a comment line`)
      const next = parseAddressList(text, this.#path)
      this.#stamp = stamp
      this.#lastError = undefined
      const changed = next.map((c) => c.address).join(',') !== this.#candidates.map((c) => c.address).join(',')
      this.#candidates = Object.freeze(next)
      return changed
    } catch (e) {
      // A half-written or mistyped file: keep the last good list, remember why, retry next time.
      this.#lastError = e as Error
      return false
    }
  }

  #startWatching(): void {
    if (this.#closed || this.#timer !== undefined) return
    if (this.#useWatch && this.#watcher === undefined) {
      try {
        // Watch the directory: editors replace files by rename, which ends a watch on the file itself.
        const name = basename(this.#path)
        this.#watcher = watch(dirname(this.#path), { persistent: false }, (_event, file) => {
          if (file === null || file === name) this.#check()
        })
        this.#watcher.on('error', () => { this.#watcher?.close(); this.#watcher = undefined })
      } catch { this.#watcher = undefined }
    }
    this.#schedule()
  }

  #schedule(): void {
    if (this.#closed) return
    this.#timer = this.#clock.setTimeout(() => { this.#check(); this.#schedule() }, this.#pollMs, { unref: true })
  }

  #check(): void {
    this.#refresh().then((changed) => { if (changed && !this.#closed) this.#listeners.emit() }, () => { /* #refresh never rejects */ })
  }
}
