/**
 * The linearizability checker of test/support (Wing–Gong search with Lowe's memoization)
 * on histories whose answer is known: linearizable ones (sequential, overlapping ops that
 * must be reordered, unknown outcomes that did or did not happen, generated from a real
 * sequential execution) and non-linearizable ones (a stale read, a lost update through two
 * successful CAS from one value, a read of a value never written, a read that goes back,
 * a fenced write accepted below the mark).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { checkLinearizable, fencedRegisterModel, registerModel, type FencedInput, type FencedOutput, type Operation, type RegisterInput, type RegisterOutput } from '../support/linearizability.js'

type Op = Operation<RegisterInput, RegisterOutput>
const w = (client: number, value: string, call: number, ret: number, key = 'k'): Op => ({ client, key, input: { f: 'write', value }, output: undefined, call, ret })
const r = (client: number, output: string | undefined, call: number, ret: number, key = 'k'): Op => ({ client, key, input: { f: 'read' }, output, call, ret })
const cas = (client: number, expect: string | undefined, value: string, output: boolean, call: number, ret: number): Op => ({ client, key: 'k', input: { f: 'cas', expect, value }, output, call, ret })
const ok = (h: Op[]): boolean => checkLinearizable(registerModel, h).ok

describe('linearizability checker: register', () => {
  test('linearizable histories pass', () => {
    assert.equal(ok([]), true, 'empty')
    assert.equal(ok([w(0, 'a', 0, 1), r(1, 'a', 2, 3), w(0, 'b', 4, 5), r(1, 'b', 6, 7)]), true, 'sequential')
    assert.equal(ok([r(1, undefined, 0, 1), w(0, 'a', 2, 3)]), true, 'read of the initial (absent) value')
    // The read overlaps the write: it may see either value.
    assert.equal(ok([w(0, 'a', 0, 1), w(0, 'b', 2, 10), r(1, 'a', 3, 4), r(2, 'b', 5, 6)]), true, 'overlapping read sees old then new')
    // Recorded in an order that needs reordering: c's read returned before b's write was even called? No: they overlap.
    assert.equal(ok([w(0, 'x', 0, 10), w(1, 'y', 1, 9), r(2, 'x', 11, 12)]), true, 'concurrent writes: x linearized last')
    assert.equal(ok([cas(0, undefined, 'a', true, 0, 5), cas(1, undefined, 'b', false, 1, 6), r(2, 'a', 7, 8)]), true, 'one CAS wins, the other fails')
    // An unknown write may have happened...
    assert.equal(ok([w(0, 'a', 0, 1), w(1, 'b', 2, Infinity), r(2, 'b', 5, 6)]), true, 'unknown write that landed')
    // ...or not.
    assert.equal(ok([w(0, 'a', 0, 1), w(1, 'b', 2, Infinity), r(2, 'a', 5, 6)]), true, 'unknown write that did not land')
    assert.equal(ok([w(0, 'a', 0, 1), w(1, 'b', 2, Infinity), r(2, 'b', 5, 6), r(2, 'a', 7, 8)]), false, 'but not both: once seen it stays')
  })

  test('non-linearizable histories fail', () => {
    assert.equal(ok([w(0, 'a', 0, 1), w(0, 'b', 2, 3), r(1, 'a', 4, 5)]), false, 'stale read after a completed write')
    assert.equal(ok([w(0, 'a', 0, 1), r(1, 'z', 2, 3)]), false, 'read of a value never written')
    assert.equal(ok([w(0, 'a', 0, 1), w(0, 'b', 2, 10), r(1, 'b', 3, 4), r(2, 'a', 5, 6)]), false, 'a read goes back in time')
    assert.equal(ok([w(0, 'a', 0, 1), cas(1, 'a', 'b', true, 2, 5), cas(2, 'a', 'c', true, 3, 6)]), false, 'two CAS succeed from the same value: a lost update')
    assert.equal(ok([cas(0, undefined, 'a', false, 0, 1)]), false, 'a CAS that should have succeeded reports failure')
    assert.equal(ok([w(0, 'a', 0, 1, 'k1'), r(1, 'a', 2, 3, 'k2')]), false, 'keys are independent registers')
  })

  test('a history generated from a sequential execution with random overlap is linearizable; corrupting one read breaks it', () => {
    let seed = 42
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    const history: Op[] = []
    let value: string | undefined
    // Each op takes effect at time 10*i; its call and return straddle that instant.
    for (let i = 0; i < 300; i++) {
      const at = 10 * i
      const call = at - rand(25)
      const ret = at + 1 + rand(25)
      const client = rand(5)
      const kind = rand(3)
      if (kind === 0) {
        value = `v${i}`
        history.push(w(client, value, call, ret))
      } else if (kind === 1) history.push(r(client, value, call, ret))
      else {
        const expect = rand(2) === 0 ? value : 'nope'
        const swapped = expect === value
        history.push(cas(client, expect, `c${i}`, swapped, call, ret))
        if (swapped) value = `c${i}`
      }
    }
    const good = checkLinearizable(registerModel, history)
    assert.equal(good.ok, true)
    // A read far in the past: nothing overlapping could have produced it.
    const i = history.findIndex((op, j) => j > 200 && op.input.f === 'read')
    const bad = history.map((op, j) => (j === i ? { ...op, output: 'v0' } : op))
    assert.equal(checkLinearizable(registerModel, bad).ok, false)
  })
})

describe('linearizability checker: fenced register (get / set / setFenced)', () => {
  type F = Operation<FencedInput, FencedOutput>
  const fenced = (value: string, fence: number, output: boolean, call: number, ret: number): F => ({ client: 0, key: 'k', input: { f: 'fenced', value, fence }, output, call, ret })
  const read = (output: string | undefined, call: number, ret: number): F => ({ client: 1, key: 'k', input: { f: 'read' }, output, call, ret })
  const check = (h: F[]): boolean => checkLinearizable(fencedRegisterModel, h).ok

  test('a write below the mark is refused; equal or higher is accepted', () => {
    assert.equal(check([fenced('b', 5, true, 0, 1), fenced('a', 3, false, 2, 3), fenced('c', 5, true, 4, 5), read('c', 6, 7)]), true)
    assert.equal(check([fenced('b', 5, true, 0, 1), fenced('a', 3, true, 2, 3)]), false, 'a stale fence accepted after a higher one')
    assert.equal(check([fenced('b', 5, true, 0, 1), fenced('a', 3, false, 2, 3), read('a', 4, 5)]), false, 'a refused write is not visible')
    assert.equal(check([fenced('a', 3, true, 0, 10), fenced('b', 5, true, 1, 9), read('b', 11, 12)]), true, 'concurrent: 3 then 5')
    assert.equal(check([fenced('a', 3, true, 0, 10), fenced('b', 5, true, 1, 9), read('a', 11, 12)]), false, '5 then 3 would have refused 3')
  })
})
