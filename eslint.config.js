// Lint runs on the TypeScript sources; `tsc --noEmit` (in `npm run lint`) does the type check.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

/**
 * The layers of docs/ARCHITECTURE.md: each src/ folder and the folders it may import
 * (besides itself). Must stay a DAG (test/unit/layers.test.ts checks, and that a
 * forbidden import fails lint). src/index.ts, the package entry, may import any folder
 * but testing/; nothing in src imports testing/ (it is its own entry point).
 */
export const layers = {
  core: [],
  policies: ['core'],
  expiry: ['core'],
  memory: ['core', 'policies', 'expiry'],
  tags: ['core'],
  singleflight: ['core'],
  codec: ['core'],
  store: ['core'],
  resilience: ['core', 'store'],
  tier: ['core', 'codec', 'store', 'resilience', 'tags'],
  bus: ['core'],
  feeds: ['core', 'bus', 'tags'],
  cache: ['core', 'memory', 'tags', 'singleflight', 'tier', 'resilience', 'bus', 'feeds', 'store'],
  metrics: ['core', 'cache'],
  protocol: ['core', 'tags'],
  cluster: ['core'],
  server: ['core', 'memory', 'tags', 'cache', 'store', 'metrics', 'protocol', 'cluster'],
  client: ['core', 'protocol', 'cache', 'codec', 'store'],
  cli: ['core', 'client', 'server'],
  testing: ['core', 'bus', 'store', 'cluster'],
}

/**
 * Sub-folders that are layers of their own inside a layer of `layers` (imports of `../../x`
 * are not seen by the folder's row): each may import only the folders listed, through
 * `../../<folder>`, and its parent layer's files through `../`.
 */
export const nestedLayers = {
  'cluster/replication': ['core'],
}

function nestedRules() {
  const folders = Object.keys(layers)
  return Object.entries(nestedLayers).map(([dir, allowed]) => {
    const forbidden = folders.filter((f) => !allowed.includes(f) && f !== dir.split('/')[0])
    const message = `src/${dir}/ may import only ${allowed.join(', ')} and src/${dir.split('/')[0]}/ (docs/ARCHITECTURE.md, Layers).`
    return {
      files: [`src/${dir}/**`],
      rules: {
        'no-restricted-imports': ['error', { patterns: [{ group: forbidden.flatMap((f) => [`../../${f}`, `../../${f}.js`, `../../${f}/**`]).concat(['../../index', '../../index.js']), message }] }],
      },
    }
  })
}

/**
 * Per folder: `no-restricted-imports` (static imports and re-exports, type-only ones too)
 * forbids every folder not in its list, and src/index.ts (the package entry, which imports
 * everything); `no-restricted-syntax` does the same for dynamic `import()`.
 */
function layerRules() {
  const folders = Object.keys(layers)
  const block = (files, prefix, allowed, who) => {
    const forbidden = [...folders.filter((f) => !allowed.includes(f)), ...(prefix === '../' ? ['index'] : [])]
    const listed = allowed.filter((f) => who !== `src/${f}/`)
    const message = `${who} may import only ${listed.length === 0 ? 'nothing else inside src' : listed.join(', ')} (docs/ARCHITECTURE.md, Layers).`
    const escaped = prefix.replace(/[./]/g, (c) => `\\${c}`)
    return {
      files,
      rules: {
        'no-restricted-imports': ['error', {
          patterns: [{ group: forbidden.flatMap((f) => [`${prefix}${f}`, `${prefix}${f}.js`, `${prefix}${f}/**`]), message }],
        }],
        'no-restricted-syntax': ['error', {
          selector: `ImportExpression[source.value=/^${escaped}(${forbidden.join('|')})(\\.js)?(\\/|$)/]`,
          message,
        }],
      },
    }
  }
  return [
    ...folders.map((f) => block([`src/${f}/**`], '../', [f, ...layers[f]], `src/${f}/`)),
    block(['src/index.ts'], './', folders.filter((f) => f !== 'testing'), 'src/index.ts'),
  ]
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-globals': ['error', { name: 'setTimeout', message: 'Use the injected Clock (src/core/clock.ts).' }, { name: 'clearTimeout', message: 'Use the injected Clock.' }],
      'no-restricted-properties': ['error', { object: 'Date', property: 'now', message: 'Use the injected Clock (src/core/clock.ts).' }],
    },
  },
  ...layerRules(),
  ...nestedRules(),
  {
    // The one file allowed to touch real time, plus tests and benches that measure real time.
    files: ['src/core/system-clock.ts', 'test/**', 'bench/**'],
    rules: { 'no-restricted-globals': 'off', 'no-restricted-properties': 'off' },
  },
)
