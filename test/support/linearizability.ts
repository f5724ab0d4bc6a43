/**
 * A linearizability checker for recorded histories: Wing & Gong's search with Lowe's
 * memoization (the algorithm of Knossos' "linear" and Porcupine), one key at a time
 * (linearizability is compositional, so keys are checked apart).
 *
 * A history is a list of operations, each with the time it was called and the time it
 * returned (`ret: Infinity` for an operation whose outcome is unknown: a timeout, a lost
 * connection). An unknown operation may take effect at any point after its call, or never:
 * its return is placed after every other event, where linearizing it changes nothing that
 * was observed.
 *
 * Search: walk the events in time order; at a call, try to linearize that operation now
 * (the model accepts its result in the current state), remember (set of linearized ops,
 * state) so that no configuration is explored twice, and restart from the first pending
 * event; at a return whose operation was not linearized yet, backtrack. The history is
 * linearizable when every operation has been linearized.
 */

export interface Operation<I, O> {
  /** The client that ran it (for reports). */
  readonly client: number
  readonly key: string
  readonly input: I
  /** What it returned; ignored when `ret` is Infinity. */
  readonly output: O
  readonly call: number
  /** Infinity: unknown outcome (may or may not have taken effect). */
  readonly ret: number
}

export interface Model<S, I, O> {
  readonly init: S
  /** The state after `input` answered `output` in `state`, or undefined when that answer is impossible there. `known` false: any answer goes. */
  step(state: S, input: I, output: O, known: boolean): S | undefined
  /** A string that is equal for equal states (memoization). */
  key(state: S): string
}

interface Entry {
  readonly id: number
  readonly isCall: boolean
  readonly time: number
  prev: Entry | undefined
  next: Entry | undefined
  match: Entry | undefined
}

export interface CheckResult {
  readonly ok: boolean
  /** The first key whose history is not linearizable. */
  readonly key?: string
  /** Configurations explored (for reports). */
  readonly explored: number
}

/** Checks one key's operations. */
function checkKey<S, I, O>(model: Model<S, I, O>, ops: readonly Operation<I, O>[]): { ok: boolean; explored: number } {
  const events: { id: number; isCall: boolean; time: number }[] = []
  ops.forEach((op, id) => {
    events.push({ id, isCall: true, time: op.call })
    events.push({ id, isCall: false, time: op.ret })
  })
  // Time order; at equal times calls first (the two operations overlap: the permissive reading).
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1))
  const head: Entry = { id: -1, isCall: false, time: -Infinity, prev: undefined, next: undefined, match: undefined }
  let tail = head
  const calls = new Map<number, Entry>()
  for (const e of events) {
    const entry: Entry = { ...e, prev: tail, next: undefined, match: undefined }
    tail.next = entry
    tail = entry
    if (e.isCall) calls.set(e.id, entry)
    else {
      const call = calls.get(e.id) as Entry
      call.match = entry
    }
  }
  const lift = (call: Entry): void => {
    ;(call.prev as Entry).next = call.next
    if (call.next !== undefined) call.next.prev = call.prev
    const ret = call.match as Entry
    ;(ret.prev as Entry).next = ret.next
    if (ret.next !== undefined) ret.next.prev = ret.prev
  }
  const unlift = (call: Entry): void => {
    const ret = call.match as Entry
    ;(ret.prev as Entry).next = ret
    if (ret.next !== undefined) ret.next.prev = ret
    ;(call.prev as Entry).next = call
    if (call.next !== undefined) call.next.prev = call
  }
  const linearized = new Uint8Array(ops.length)
  const seen = new Set<string>()
  const stack: { call: Entry; state: S }[] = []
  let state = model.init
  let entry = head.next
  let explored = 0
  while (head.next !== undefined) {
    if (entry === undefined) return { ok: false, explored }
    if (entry.isCall) {
      const op = ops[entry.id] as Operation<I, O>
      const next = model.step(state, op.input, op.output, Number.isFinite(op.ret))
      let moved = false
      if (next !== undefined) {
        linearized[entry.id] = 1
        const config = `${Buffer.from(linearized).toString('base64')}|${model.key(next)}`
        if (!seen.has(config)) {
          seen.add(config)
          explored++
          stack.push({ call: entry, state })
          state = next
          lift(entry)
          entry = head.next
          moved = true
        } else linearized[entry.id] = 0
      }
      if (!moved) entry = entry.next
    } else {
      // A return whose operation is still pending: nothing before it fits; undo the last choice.
      const top = stack.pop()
      if (top === undefined) return { ok: false, explored }
      state = top.state
      linearized[top.call.id] = 0
      unlift(top.call)
      entry = top.call.next
    }
  }
  return { ok: true, explored }
}

/** Checks a whole history, key by key. */
export function checkLinearizable<S, I, O>(model: Model<S, I, O>, history: readonly Operation<I, O>[]): CheckResult {
  const byKey = new Map<string, Operation<I, O>[]>()
  for (const op of history) {
    let list = byKey.get(op.key)
    if (list === undefined) byKey.set(op.key, (list = []))
    list.push(op)
  }
  let explored = 0
  for (const [key, ops] of byKey) {
    const r = checkKey(model, ops)
    explored += r.explored
    if (!r.ok) return { ok: false, key, explored }
  }
  return { ok: true, explored }
}

// ---- a register with compare-and-set ------------------------------------------------

export type RegisterInput = { readonly f: 'read' } | { readonly f: 'write'; readonly value: string } | { readonly f: 'cas'; readonly expect: string | undefined; readonly value: string }
/** read: the value seen; write: undefined; cas: whether it swapped. */
export type RegisterOutput = string | boolean | undefined

/** The state is `null` for "absent" (a step answers undefined for "impossible"). */
export const registerModel: Model<string | null, RegisterInput, RegisterOutput> = {
  init: null,
  step(state, input, output, known) {
    const value = state ?? undefined
    switch (input.f) {
      case 'read':
        return !known || output === value ? state : undefined
      case 'write':
        return input.value
      case 'cas':
        if (!known) return value === input.expect ? input.value : state
        if (output === true) return value === input.expect ? input.value : undefined
        return value !== input.expect ? state : undefined
    }
  },
  key: (state) => (state === null ? '\u0000' : `=${state}`),
}

// ---- the fenced register: etcdStore's get / set / setFenced on one key ---------------

export type FencedInput = { readonly f: 'read' } | { readonly f: 'write'; readonly value: string } | { readonly f: 'fenced'; readonly value: string; readonly fence: number }
/** read: the value seen; write: undefined; fenced: whether it was accepted. */
export type FencedOutput = string | boolean | undefined

export interface FencedState {
  readonly value: string | undefined
  /** The highest fence written (0: none). */
  readonly mark: number
}

/** `setFenced` accepts a fence >= the mark and raises the mark to it; a plain `set` leaves the mark. */
export const fencedRegisterModel: Model<FencedState, FencedInput, FencedOutput> = {
  init: { value: undefined, mark: 0 },
  step(state, input, output, known) {
    switch (input.f) {
      case 'read':
        return !known || output === state.value ? state : undefined
      case 'write':
        return { value: input.value, mark: state.mark }
      case 'fenced': {
        const accepts = input.fence >= state.mark
        if (!known) return accepts ? { value: input.value, mark: input.fence } : state
        if (output === true) return accepts ? { value: input.value, mark: input.fence } : undefined
        return accepts ? undefined : state
      }
    }
  },
  key: (state) => `${state.mark}|${state.value === undefined ? '\u0000' : `=${state.value}`}`,
}
