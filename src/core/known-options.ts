/**
 * Unknown option names: a misspelt option must not be silently ignored (`memroy` left the
 * default in-process tier, `defaults: { tll }` the default TTL, a misspelt `encryption`
 * would store plaintext). Checked where options are given once — the factories (cache,
 * engine, codec, stores, buses, feeds, node, client), `wrap` and `@cached` — never per call
 * (a hot path).
 */
import { InvalidOptionsError } from './errors.js'

/**
 * The names of an options type, written out once per type as `{ name: true, … }`: the
 * compiler then holds the list to the type (a name missing or extra does not compile).
 */
export function optionNames<T>(names: { readonly [K in keyof Required<T>]: true }): readonly string[] {
  return Object.keys(names)
}

/**
 * Throws ERR_INVALID_OPTIONS naming `<prefix>.<name>` (`<name>` when `prefix` is empty) for
 * the first own property of `options` not in `known`, with the known name it most likely
 * meant.
 */
export function rejectUnknown(options: object, known: readonly string[], prefix: string): void {
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue
    const meant = closest(name, known)
    const hint = meant === undefined ? '' : ` (did you mean ${meant}?)`
    throw new InvalidOptionsError(prefix === '' ? name : `${prefix}.${name}`, `unknown option${hint}; expected one of ${known.join(', ')}`)
  }
}

/** The known name within two edits of `name` (case ignored), the nearest first; undefined when none is. */
function closest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = 3
  const a = name.toLowerCase()
  for (const k of known) {
    const d = editDistance(a, k.toLowerCase(), bestDistance)
    if (d < bestDistance) {
      best = k
      bestDistance = d
    }
  }
  return best
}

/** Levenshtein distance with adjacent swaps counted as one edit; `bound` when it is at least that. */
function editDistance(a: string, b: string, bound: number): number {
  if (Math.abs(a.length - b.length) >= bound) return bound
  let before: number[] = []
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      let d = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, before[j - 2]! + 1)
      row.push(d)
    }
    before = previous
    previous = row
  }
  return Math.min(previous[b.length]!, bound)
}
