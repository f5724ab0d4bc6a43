// Every relative link in README.md and docs/ resolves: the file (or folder) exists, and a
// #anchor names a heading of the target (GitHub's slugs). Also pins the README's size.
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { STATUS_OF_CODE } from '../../src/protocol/wire.js'

const root = fileURLToPath(new URL('../../../', import.meta.url))

/**
 * Guides other work streams write at the same time (P8-P10); linked from the README and the
 * guide index before they land. Once they exist they are checked like every other file;
 * drop an entry when its file is merged.
 */
const PENDING = new Set<string>([])

function markdownFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? markdownFiles(join(dir, e.name)) : e.name.endsWith('.md') ? [join(dir, e.name)] : []))
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-')
}

/** The anchors a markdown file defines (duplicates numbered as GitHub does). */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>()
  const out = new Set<string>()
  for (const line of withoutCode(text).split('\n')) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)
    if (m === null) continue
    const base = slug(m[1])
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    out.add(n === 0 ? base : `${base}-${n}`)
  }
  return out
}

/** The text without fenced code blocks (links and headings inside them are code). */
function withoutCode(text: string): string {
  return text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '')
}

function links(text: string): string[] {
  return [...withoutCode(text).matchAll(/\[[^\]\n]*\]\(([^)\s]+)\)/g)].map((m) => m[1])
}

const files = [join(root, 'README.md'), ...markdownFiles(join(root, 'docs'))]

test('every relative link in README.md and docs/ resolves, anchors included', () => {
  const problems: string[] = []
  let checked = 0
  for (const file of files) {
    const text = readFileSync(file, 'utf8')
    for (const link of links(text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue // http:, https:, mailto:
      checked++
      const [path, anchor] = link.split('#', 2)
      const target = path === '' ? file : resolve(dirname(file), decodeURIComponent(path))
      const where = `${relative(root, file)}: ${link}`
      if (!existsSync(target)) {
        if (!PENDING.has(relative(root, target))) problems.push(`${where} (no such file)`)
        continue
      }
      if (anchor === undefined || anchor === '') continue
      if (statSync(target).isDirectory() || !target.endsWith('.md')) {
        problems.push(`${where} (an anchor into a non-markdown target)`)
        continue
      }
      if (!anchors(readFileSync(target, 'utf8')).has(anchor)) problems.push(`${where} (no heading #${anchor} in ${relative(root, target)})`)
    }
  }
  assert.deepEqual(problems, [])
  assert.ok(checked > 50, `checked ${checked} links`)
})

test('the slug rule matches GitHub on the headings these docs use', () => {
  assert.equal(slug('The CLI (`stratacache`)'), 'the-cli-stratacache')
  assert.equal(slug('Units: durations, sizes, TTLs'), 'units-durations-sizes-ttls')
  assert.equal(slug('`redisBus` and `redisTransport`'), 'redisbus-and-redistransport')
  assert.equal(slug("Zerocache's decorator: `autoCache`"), 'zerocaches-decorator-autocache')
  assert.deepEqual([...anchors('# A\n## A\n```\n# not a heading\n```\n## B b\n')], ['a', 'a-1', 'b-b'])
})

test('README.md stays a front page (at most 15 KB) and ARCHITECTURE.md at most 20 KB', () => {
  assert.ok(statSync(join(root, 'README.md')).size <= 15 * 1024, 'README.md <= 15 KB')
  assert.ok(statSync(join(root, 'docs/ARCHITECTURE.md')).size <= 20 * 1024, 'docs/ARCHITECTURE.md <= 20 KB')
})

test("PROTOCOL.md's status table is STATUS_OF_CODE, as it says: every code the node answers, with its status", () => {
  const text = readFileSync(join(root, 'docs/PROTOCOL.md'), 'utf8')
  const documented = new Map<string, number[]>()
  for (const row of text.split('\n').filter((l) => /^\| \d{3} \|/.test(l))) {
    const status = Number(row.slice(2, 5))
    for (const m of row.split('|')[2]!.matchAll(/`(ERR_[A-Z_]+)`/g)) documented.set(m[1]!, [...(documented.get(m[1]!) ?? []), status])
  }
  const problems: string[] = []
  for (const [code, status] of Object.entries(STATUS_OF_CODE)) {
    if (!documented.get(code)?.includes(status)) problems.push(`${code} ${status}: not in the table with this status`)
  }
  assert.deepEqual(problems, [])
})
