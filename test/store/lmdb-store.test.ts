import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after } from 'node:test'
import { ManualClock } from '../../src/core/manual-clock.js'
import { storeConformance } from '../../src/store/conformance.js'
import { lmdbStore } from '../../src/store/lmdb-store.js'

const root = mkdtempSync(join(tmpdir(), 'stratacache-lmdb-'))
after(() => rmSync(root, { recursive: true, force: true }))
let n = 0
const dir = (): string => join(root, `s${++n}`)

const clock = new ManualClock()
storeConformance({
  name: 'lmdb',
  open: async () => lmdbStore({ path: dir(), clock }),
  advance: async (ms) => clock.advance(ms),
  minTtlMs: 1,
})
