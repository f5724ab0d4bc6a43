// Lint runs on the TypeScript sources; `tsc --noEmit` (in `npm run lint`) does the type check.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

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
  {
    // The one file allowed to touch real time, plus tests and benches that measure real time.
    files: ['src/core/system-clock.ts', 'test/**', 'bench/**'],
    rules: { 'no-restricted-globals': 'off', 'no-restricted-properties': 'off' },
  },
)
