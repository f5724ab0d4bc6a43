/**
 * Drives one `StateMachine` (kernel.ts): feeds it transport messages, timer firings and
 * unreachable reports with the clock's time, and performs the actions it returns — persist
 * first, then timers, then sends. The only place the kernel touches I/O, and the same code
 * in production (real transport, system clock, LMDB-backed disk) and in `SimNetwork`.
 *
 * A machine that throws, a frame that does not decode, or a send the transport refuses is
 * reported to `onError` and counted; the runner keeps going (the machine's state is its
 * own, a bad frame from one peer must not stop the node).
 */
import type { Clock, TimerHandle } from '../core/clock.js'
import { CacheError, InvalidOptionsError, type PeerUnreachableError } from '../core/errors.js'
import type { KernelAction, KernelDisk, KernelEvent, MessageCodec, PersistAction, StateMachine } from './kernel.js'
import type { MessageTransport, NodeId } from './transport.js'

export interface KernelRunnerOptions<M> {
  readonly machine: StateMachine<M>
  readonly transport: MessageTransport
  readonly clock: Clock
  readonly disk: KernelDisk
  readonly codec: MessageCodec<M>
  /** Failures the runner survived (a throwing machine, an undecodable frame, a refused send). */
  readonly onError?: (error: unknown) => void
  /**
   * When set, a step's sends wait for it (persist first, then timers, as always; the sends
   * later): it gets the step's messages in order and resolves with the messages to send
   * (possibly rewritten); a rejection sends none of them (reported to `onError`). Steps'
   * sends keep step order. For a machine whose store writes behind (replication over the
   * node's keyspace, server/keyspace-replica-store.ts): the persist-before-send rule,
   * generalised. @default none (sends go out within the step)
   */
  readonly beforeSend?: (messages: ReadonlyArray<OutgoingMessage<M>>) => Promise<ReadonlyArray<OutgoingMessage<M>>>
}

/** One message a step sends. */
export interface OutgoingMessage<M> {
  readonly to: NodeId
  readonly message: M
}

export interface KernelRunnerStats {
  readonly steps: number
  readonly sent: number
  readonly received: number
  readonly errors: number
}

export class KernelRunner<M> {
  readonly #machine: StateMachine<M>
  readonly #transport: MessageTransport
  readonly #clock: Clock
  readonly #disk: KernelDisk
  readonly #codec: MessageCodec<M>
  readonly #onError: (error: unknown) => void
  readonly #beforeSend: KernelRunnerOptions<M>['beforeSend']
  /** The sends of earlier steps still waiting for `beforeSend`. */
  #sending: Promise<void> = Promise.resolve()
  readonly #timers = new Map<string, TimerHandle>()
  readonly #removers: Array<() => void> = []
  #running = false
  #steps = 0
  #sent = 0
  #received = 0
  #errors = 0

  constructor(options: KernelRunnerOptions<M>) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'expected an object')
    if (typeof options.machine?.step !== 'function') throw new InvalidOptionsError('machine', 'expected a StateMachine')
    if (typeof options.transport?.send !== 'function') throw new InvalidOptionsError('transport', 'expected a MessageTransport')
    if (typeof options.clock?.now !== 'function') throw new InvalidOptionsError('clock', 'expected a Clock')
    if (typeof options.disk?.load !== 'function') throw new InvalidOptionsError('disk', 'expected a KernelDisk')
    if (typeof options.codec?.decode !== 'function') throw new InvalidOptionsError('codec', 'expected a MessageCodec')
    this.#machine = options.machine
    this.#transport = options.transport
    this.#clock = options.clock
    this.#disk = options.disk
    this.#codec = options.codec
    this.#onError = options.onError ?? (() => undefined)
    if (options.beforeSend !== undefined && typeof options.beforeSend !== 'function') throw new InvalidOptionsError('beforeSend', 'expected a function')
    this.#beforeSend = options.beforeSend
  }

  get id(): NodeId {
    return this.#transport.self
  }

  get stats(): KernelRunnerStats {
    return { steps: this.#steps, sent: this.#sent, received: this.#received, errors: this.#errors }
  }

  /** Starts listening and steps the machine with `start` and what the disk holds. */
  start(): void {
    if (this.#running) return
    this.#running = true
    this.#removers.push(
      this.#transport.onReceive((from, payload) => this.#receive(from, payload)),
      this.#transport.onUnreachable((error: PeerUnreachableError) => this.step({ type: 'unreachable', peer: error.peer })),
    )
    this.step({ type: 'start', persisted: this.#disk.load() })
  }

  /** Stops listening and cancels every timer (the transport stays open: the caller owns it). */
  stop(): void {
    this.#running = false
    for (const remove of this.#removers.splice(0)) remove()
    for (const handle of this.#timers.values()) this.#clock.clearTimeout(handle)
    this.#timers.clear()
  }

  /** Feeds one event to the machine and performs its actions. */
  step(event: KernelEvent<M>): void {
    if (!this.#running) return
    let actions: readonly KernelAction<M>[]
    try {
      actions = this.#machine.step(event, this.#clock.now())
      this.#steps++
    } catch (err) {
      this.#fail(err)
      return
    }
    const persists: PersistAction[] = []
    for (const a of actions) if (a.type === 'persist') persists.push(a)
    if (persists.length > 0) {
      try {
        this.#disk.write(persists)
      } catch (err) {
        // Not durable: nothing of this step may go out.
        this.#fail(err)
        return
      }
    }
    for (const a of actions) {
      if (a.type === 'timer') this.#setTimer(a.name, a.afterMs)
      else if (a.type === 'cancel') this.#cancelTimer(a.name)
    }
    const sends: OutgoingMessage<M>[] = []
    for (const a of actions) if (a.type === 'send') sends.push({ to: a.to, message: a.message })
    if (sends.length === 0) return
    const beforeSend = this.#beforeSend
    if (beforeSend === undefined) {
      this.#send(sends)
      return
    }
    this.#sending = this.#sending.then(async () => {
      let ready: ReadonlyArray<OutgoingMessage<M>>
      try {
        ready = await beforeSend(sends)
      } catch (err) {
        this.#fail(err)
        return
      }
      if (this.#running) this.#send(ready)
    })
  }

  /** Resolves once the sends of every step so far are done (or dropped): `beforeSend` settled. */
  idle(): Promise<void> {
    return this.#sending
  }

  #send(sends: ReadonlyArray<OutgoingMessage<M>>): void {
    for (const s of sends) {
      try {
        this.#transport.send(s.to, this.#codec.encode(s.message))
        this.#sent++
      } catch (err) {
        this.#fail(err)
      }
    }
  }

  #receive(from: NodeId, payload: Uint8Array): void {
    let message: M
    try {
      message = this.#codec.decode(payload)
    } catch (err) {
      this.#fail(err)
      return
    }
    this.#received++
    this.step({ type: 'message', from, message })
  }

  #setTimer(name: string, afterMs: number): void {
    this.#cancelTimer(name)
    const handle = this.#clock.setTimeout(
      () => {
        this.#timers.delete(name)
        this.step({ type: 'timer', name })
      },
      Math.max(0, afterMs),
      { unref: true },
    )
    this.#timers.set(name, handle)
  }

  #cancelTimer(name: string): void {
    const handle = this.#timers.get(name)
    if (handle === undefined) return
    this.#clock.clearTimeout(handle)
    this.#timers.delete(name)
  }

  #fail(err: unknown): void {
    this.#errors++
    try {
      this.#onError(err instanceof CacheError || err instanceof Error ? err : new Error(String(err)))
    } catch {
      // A throwing listener must not break the node.
    }
  }
}
