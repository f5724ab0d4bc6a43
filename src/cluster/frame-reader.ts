/**
 * Splits a byte stream into length-prefixed frames: a u32 big-endian length, then that many
 * bytes. The length is checked against `limit` as soon as its 4 bytes arrive, before any of
 * the body is buffered, so a peer announcing a huge frame costs nothing but the refusal
 * (ValueTooLargeError, ERR_VALUE_TOO_LARGE). The limit may change between frames (the
 * cluster transport keeps it small until a connection is authenticated).
 */
import { ValueTooLargeError } from '../core/errors.js'

export class FrameReader {
  /** Largest frame body accepted, bytes. */
  limit: number
  #chunks: Buffer[] = []
  #buffered = 0
  /** Body length of the frame being read; -1 while its header is incomplete. */
  #need = -1

  constructor(limit: number) {
    this.limit = limit
  }

  /** Bytes held for an incomplete frame. */
  get buffered(): number {
    return this.#buffered
  }

  /**
   * Adds `chunk` and calls `onFrame` with each complete frame body, in order; stops early
   * when `onFrame` returns false. A body may share memory with `chunk`. Throws
   * ValueTooLargeError for a frame longer than `limit`.
   */
  push(chunk: Buffer, onFrame: (body: Buffer) => boolean): void {
    if (chunk.byteLength === 0) return
    this.#chunks.push(chunk)
    this.#buffered += chunk.byteLength
    for (;;) {
      if (this.#need < 0) {
        if (this.#buffered < 4) return
        const length = this.#take(4).readUInt32BE(0)
        if (length > this.limit) throw new ValueTooLargeError(length, this.limit, 'cluster frame')
        this.#need = length
      }
      if (this.#buffered < this.#need) return
      const body = this.#take(this.#need)
      this.#need = -1
      if (!onFrame(body)) return
    }
  }

  #take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0)
    this.#buffered -= n
    const first = this.#chunks[0]
    if (first.byteLength >= n) {
      // The common case: the frame lies in one chunk; no copy.
      if (first.byteLength === n) this.#chunks.shift()
      else this.#chunks[0] = first.subarray(n)
      return first.subarray(0, n)
    }
    const out = Buffer.allocUnsafe(n)
    let at = 0
    while (at < n) {
      const c = this.#chunks[0]
      const k = Math.min(c.byteLength, n - at)
      c.copy(out, at, 0, k)
      at += k
      if (k === c.byteLength) this.#chunks.shift()
      else this.#chunks[0] = c.subarray(k)
    }
    return out
  }
}
