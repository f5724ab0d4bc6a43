/**
 * The origin index: which cached keys came from which origins (kz_cache's "pointer
 * table" of bindings), so that a change notice finds its entries without a scan.
 *
 * Layout. A descriptor has a shape — which of db/type/id it names, a 3-bit mask — and a
 * canonical string (`shape \0 db \0 type \0 id`). Per shape, a Map from that string to the
 * set of keys; per key, the descriptor strings it holds (to remove it in O(its origins)).
 *
 * Matching (see types.ts). For a notice naming fields N and a shape S:
 * - S ⊆ N (the descriptor names nothing the notice lacks): exactly one descriptor of shape
 *   S can match — the notice's own values — one Map lookup. A full notice (db, type, id)
 *   is therefore 7 lookups, whatever the index holds.
 * - otherwise the fields of S outside N are wildcards: every descriptor of shape S that
 *   agrees on S ∩ N matches, found by walking that shape's Map. Only broad notices
 *   (a whole db, or a reconnect flush) pay this walk.
 *
 * Invariant: the index holds a key exactly while L1 holds it with origins. The cache
 * removes a key on every way an entry leaves L1 (expire, evict, erase, flush) and
 * re-assigns on every overwrite, so the index never outgrows L1 (no leak under churn).
 */
import { InvalidOptionsError } from '../core/errors.js'
import type { ChangeNotice, OriginDescriptor } from './types.js'

const DB = 1
const TYPE = 2
const ID = 4
const FIELDS = ['db', 'type', 'id'] as const
const MAX_FIELD_LENGTH = 1024

interface Group {
  readonly db: string
  readonly type: string
  readonly id: string
  readonly keys: Set<string>
}

function shapeOf(d: ChangeNotice): number {
  return (d.db !== undefined ? DB : 0) | (d.type !== undefined ? TYPE : 0) | (d.id !== undefined ? ID : 0)
}

function canonical(shape: number, d: ChangeNotice): string {
  return `${shape}\0${shape & DB ? d.db : ''}\0${shape & TYPE ? d.type : ''}\0${shape & ID ? d.id : ''}`
}

/** Throws ERR_INVALID_OPTIONS (naming `option`) unless `d` is a valid descriptor. */
export function validateDescriptor(d: unknown, option: string): asserts d is OriginDescriptor {
  if (d === null || typeof d !== 'object' || Array.isArray(d)) throw new InvalidOptionsError(option, 'expected { db?, type?, id? } with at least one field')
  let named = 0
  for (const k of Object.keys(d)) {
    if (!(FIELDS as readonly string[]).includes(k)) throw new InvalidOptionsError(option, `unknown field ${JSON.stringify(k)} (expected db, type, id)`)
    const v = (d as Record<string, unknown>)[k]
    if (v === undefined) continue
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_FIELD_LENGTH) throw new InvalidOptionsError(option, `${k} must be a non-empty string of at most ${MAX_FIELD_LENGTH} characters`)
    named++
  }
  if (named === 0) throw new InvalidOptionsError(option, 'an origin names at least one of db, type, id')
}

/** The descriptors of an `origins` value, validated. */
export function descriptorList(value: unknown, option: string): readonly OriginDescriptor[] {
  const list = Array.isArray(value) ? (value as unknown[]) : [value]
  for (const d of list) validateDescriptor(d, option)
  return list as OriginDescriptor[]
}

export class OriginIndex {
  /** Per shape (1..7): canonical descriptor -> group. */
  readonly #shapes: Array<Map<string, Group>> = Array.from({ length: 8 }, () => new Map<string, Group>())
  /** Key -> the canonical strings of its descriptors. */
  readonly #byKey = new Map<string, string[]>()

  /** Keys indexed. */
  get keys(): number {
    return this.#byKey.size
  }

  /** Distinct descriptors indexed. */
  get descriptors(): number {
    let n = 0
    for (const m of this.#shapes) n += m.size
    return n
  }

  /** Replaces the origins of `key` (none: the key leaves the index). */
  assign(key: string, descriptors: readonly OriginDescriptor[] | undefined): void {
    this.remove(key)
    if (descriptors === undefined || descriptors.length === 0) return
    const names: string[] = []
    for (const d of descriptors) {
      const shape = shapeOf(d)
      const name = canonical(shape, d)
      if (names.includes(name)) continue
      names.push(name)
      const map = this.#shapes[shape] as Map<string, Group>
      let group = map.get(name)
      if (group === undefined) {
        group = { db: d.db ?? '', type: d.type ?? '', id: d.id ?? '', keys: new Set() }
        map.set(name, group)
      }
      group.keys.add(key)
    }
    this.#byKey.set(key, names)
  }

  remove(key: string): void {
    const names = this.#byKey.get(key)
    if (names === undefined) return
    this.#byKey.delete(key)
    for (const name of names) {
      const map = this.#shapes[Number(name[0])] as Map<string, Group>
      const group = map.get(name)
      if (group === undefined) continue
      group.keys.delete(key)
      if (group.keys.size === 0) map.delete(name)
    }
  }

  clear(): void {
    for (const m of this.#shapes) m.clear()
    this.#byKey.clear()
  }

  /** The keys whose origins match `notice` (each once). `{}` matches every indexed key. */
  match(notice: ChangeNotice): string[] {
    const n = shapeOf(notice)
    const out = new Set<string>()
    for (let shape = 1; shape < 8; shape++) {
      const map = this.#shapes[shape] as Map<string, Group>
      if (map.size === 0) continue
      if ((shape & ~n) === 0) {
        const group = map.get(canonical(shape, notice))
        if (group !== undefined) for (const k of group.keys) out.add(k)
        continue
      }
      const common = shape & n
      for (const group of map.values()) {
        if (common & DB && group.db !== notice.db) continue
        if (common & TYPE && group.type !== notice.type) continue
        if (common & ID && group.id !== notice.id) continue
        for (const k of group.keys) out.add(k)
      }
    }
    return [...out]
  }
}
