/**
 * The layers of docs/ARCHITECTURE.md are enforced by lint (eslint.config.js): an import of
 * a folder outside the importer's list fails `npm run lint`, and the list is the table in
 * the docs, a DAG, covering every folder of src/. Within folders, files import no cycle.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join, posix, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ESLint } from 'eslint'

const ROOT = new URL('../../../', import.meta.url)

async function loadLayers(): Promise<Record<string, string[]>> {
  const config = (await import(new URL('eslint.config.js', ROOT).href)) as { layers: Record<string, string[]> }
  return config.layers
}

let eslint: ESLint | undefined
async function messages(filePath: string, code: string): Promise<string[]> {
  eslint ??= new ESLint({ cwd: fileURLToPath(ROOT) })
  const [result] = await eslint.lintText(code, { filePath })
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`)
}

test('an import across a forbidden layer edge is a lint error (static, type-only, re-export, dynamic)', async () => {
  const forbidden = [
    "import { Cache } from '../cache/cache.js'\nexport const c = Cache\n",
    "import type { Cache } from '../cache/cache.js'\nexport type C = Cache<string>\n",
    "export { Cache } from '../cache/cache.js'\n",
    "export const load = () => import('../cache/cache.js')\n",
    "import '../feeds/notice.js'\n",
    "export * from '../index.js'\n",
  ]
  for (const code of forbidden) {
    const found = await messages('src/tier/layer-probe.ts', code)
    assert.equal(found.length, 1, `one error for ${JSON.stringify(code)}: ${JSON.stringify(found)}`)
    assert.match(found[0]!, /^no-restricted-(imports|syntax): .*src\/tier\/ may import only core, codec, store, resilience, tags \(docs\/ARCHITECTURE\.md, Layers\)/)
  }
  // core imports nothing inside src; the package entry never re-exports testing/.
  assert.match((await messages('src/core/layer-probe.ts', "export { x } from '../tags/index.js'\n"))[0] ?? '', /src\/core\/ may import only nothing else inside src/)
  assert.equal((await messages('src/index.ts', "export * from './testing/index.js'\n")).length, 1)
})

test('imports along the table, and within a folder, are not reported', async () => {
  assert.deepEqual(await messages('src/tier/layer-probe.ts', "import { x } from '../tags/index.js'\nimport { y } from './envelope.js'\nexport const z = [x, y]\n"), [])
  assert.deepEqual(await messages('src/cache/layer-probe.ts', "import type { Envelope } from '../tier/envelope.js'\nexport type E = Envelope<string>\n"), [])
  assert.deepEqual(await messages('src/cli/layer-probe.ts', "export const load = () => import('./serve.js')\n"), [])
})

test('the layer table covers every src folder, is a DAG and matches docs/ARCHITECTURE.md', async () => {
  const layers = await loadLayers()
  const folders = readdirSync(new URL('src/', ROOT), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort()
  assert.deepEqual(Object.keys(layers).sort(), folders, 'every folder of src/ has a row (a new folder needs one)')

  // Acyclic: depth-first search with a gray set.
  const state = new Map<string, 'gray' | 'black'>()
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === 'black') return
    assert.notEqual(state.get(f), 'gray', `layer cycle: ${[...path, f].join(' -> ')}`)
    state.set(f, 'gray')
    for (const d of layers[f] ?? assert.fail(`unknown layer ${f}`)) visit(d, [...path, f])
    state.set(f, 'black')
  }
  for (const f of Object.keys(layers)) visit(f, [])

  // The docs' table: a row starts with `  name/`, its dependencies follow `->` (on any of its lines).
  const doc = readFileSync(new URL('docs/ARCHITECTURE.md', ROOT), 'utf8')
  const block = doc.slice(doc.indexOf('## Layers'), doc.indexOf('\ntest/', doc.indexOf('## Layers')))
  const documented: Record<string, string[]> = {}
  let current = ''
  for (const line of block.split('\n')) {
    const row = /^ {2}([a-z]+)\/\s/.exec(line)
    if (row) documented[(current = row[1]!)] = []
    // `-> a, b (why), c` at the end of a line (prose arrows like `L1 -> L2` are not lists of folders).
    const arrow = /->\s*([a-z]+(?: \([^)]*\))?(?:, [a-z]+(?: \([^)]*\))?)*)\s*$/.exec(line)
    if (arrow && current) {
      const names = arrow[1]!.replace(/\([^)]*\)/g, '').split(',').map((s) => s.trim()).filter((s) => s !== '')
      documented[current] = [...new Set([...documented[current]!, ...names])]
    }
  }
  const sorted = (m: Record<string, string[]>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, [...v].sort()]).sort())
  assert.deepEqual(sorted(documented), sorted(layers))
})

test('no import cycle between files of src/ (type-only imports included)', () => {
  const src = fileURLToPath(new URL('src/', ROOT))
  const files = (readdirSync(src, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => f.split(sep).join('/'))
  const graph = new Map<string, string[]>()
  for (const file of files) {
    const text = readFileSync(join(src, file), 'utf8')
    const targets = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => posix.normalize(posix.join(posix.dirname(file), m[1]!)).replace(/\.js$/, '.ts'))
    graph.set(file, targets.filter((t) => files.includes(t)))
  }
  const state = new Map<string, 'gray' | 'black'>()
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === 'black') return
    assert.notEqual(state.get(f), 'gray', `import cycle: ${[...path.slice(path.indexOf(f)), f].join(' -> ')}`)
    state.set(f, 'gray')
    for (const d of graph.get(f)!) visit(d, [...path, f])
    state.set(f, 'black')
  }
  for (const f of files) visit(f, [])
  assert.ok(graph.size > 100 && graph.get('cache/cache.ts')!.length > 10, 'the scan found the sources and their imports')
})
