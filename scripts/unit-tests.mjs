#!/usr/bin/env node
// `npm run test:unit`: the compiled tests that need no external server — every
// dist/test/**/*.test.js that does not (directly or through a test/support module) start
// redis-server, nats-server, RabbitMQ, PostgreSQL, etcd or a browser. Runs them with the
// same runner and options as `npm test`.
import { spawnSync } from 'node:child_process'
import process from 'node:process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const SERVERS = ['redis-server', 'nats-server', 'rabbitmq-server', 'postgres-server', 'etcd-server', 'playwright']

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]))
}

const all = files('dist/test').filter((f) => f.endsWith('.js'))
const imports = (file) => [...readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => m[1])
// A support module needs a server when it names one, or imports a module that does.
const needs = new Set()
let grew = true
while (grew) {
  grew = false
  for (const file of all) {
    if (needs.has(file)) continue
    const specs = imports(file)
    if (specs.some((s) => SERVERS.some((name) => s.includes(name)) || [...needs].some((n) => s.endsWith(`/${n.split('/').pop()}`)))) {
      needs.add(file)
      grew = true
    }
  }
}
const tests = all.filter((f) => f.endsWith('.test.js') && !needs.has(f)).sort()
process.stderr.write(`${tests.length} test files need no server (${all.filter((f) => f.endsWith('.test.js')).length - tests.length} left out)\n`)
const run = spawnSync(process.execPath, ['--test', '--test-timeout=120000', '--test-reporter=spec', ...tests], { stdio: 'inherit' })
process.exit(run.status ?? 1)
