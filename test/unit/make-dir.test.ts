import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { makeDirectory } from '../../src/core/make-dir.js'

const root = mkdtempSync(join(tmpdir(), 'stratacache-mkdir-'))
after(() => rmSync(root, { recursive: true, force: true }))

const errno = (code: string) => (err: unknown): boolean => (err as NodeJS.ErrnoException).code === code

describe('makeDirectory', () => {
  test('makes the missing levels, and leaves an existing directory as it is', () => {
    const deep = join(root, 'a', 'b', 'c')
    makeDirectory(deep)
    assert.ok(statSync(deep).isDirectory())
    makeDirectory(deep)
    makeDirectory(join(root, 'a'))
    assert.ok(statSync(deep).isDirectory())
  })

  test("throws the file system's error where a level cannot be made", () => {
    const file = join(root, 'plain-file')
    writeFileSync(file, 'x')
    assert.throws(() => makeDirectory(join(file, 'below')), errno('ENOTDIR'))
    const dangling = join(root, 'dangling')
    symlinkSync(join(root, 'nowhere'), dangling)
    assert.throws(() => makeDirectory(join(dangling, 'data')), errno('ENOENT'))
  })

  test('ends under /proc, where a recursive mkdirSync loops forever', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
    // In a child, killed outright after 20 s: a regression would spin in synchronous code,
    // which neither a test timeout nor SIGTERM can interrupt.
    const module = new URL('../../src/core/make-dir.js', import.meta.url).href
    const script = `import(${JSON.stringify(module)}).then(({ makeDirectory }) => { try { makeDirectory('/proc/stratacache-no-such-dir/below'); console.log('made') } catch (err) { console.log(err.code) } })`
    const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' })
    assert.equal(res.signal, null, 'makeDirectory under /proc did not end within 20 s (killed)')
    assert.equal(res.stdout.trim(), 'ENOENT', res.stderr)
  })
})
