// Packaging: what each entry point loads. The root export ('stratacache') must load no
// native addon and no broker client; adapters live behind subpath exports, and a missing
// optional peer dependency is a typed error naming the package (docs/decisions/0250).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { dependencyInstalled, requireDependency } from '../../src/core/optional-dependency.js'
import { isCacheError, MissingDependencyError } from '../../src/index.js'

const root = new URL('../../../', import.meta.url)
const hooks = new URL('../support/load-probe-hooks.js', import.meta.url).href
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
  exports: Record<string, unknown>
  dependencies: Record<string, string>
  peerDependencies: Record<string, string>
  peerDependenciesMeta: Record<string, { optional?: boolean }>
  devDependencies: Record<string, string>
}

/** Packages the root export must never load: the native addon, broker and HTTP clients. */
const HEAVY = ['lmdb', 'ioredis', 'nats', 'amqplib', 'pg', 'undici', 'etcd3', '@grpc/grpc-js', 'prom-client', 'pino', 'bonjour-service']
const PEERS = ['amqplib', 'bonjour-service', 'etcd3', 'ioredis', 'nats', 'pg']

interface Probe {
  ok: boolean
  code?: string
  message?: string
  exports?: string[]
  packages: string[]
}

/**
 * Imports `specifier` in a fresh node process (cwd: the repository, so `stratacache/...`
 * resolves by self-reference to dist/) and reports the npm packages it loaded: resolved
 * URLs (the resolve hook) plus CommonJS modules in require.cache.
 */
function probe(specifier: string, hide: string[] = []): Promise<Probe> {
  const script = `
    import { register, createRequire } from 'node:module'
    import { MessageChannel } from 'node:worker_threads'
    const { port1, port2 } = new MessageChannel()
    const urls = []
    port1.on('message', (u) => urls.push(u))
    port1.unref()
    register(${JSON.stringify(hooks)}, { data: { port: port2, hide: ${JSON.stringify(hide)} }, transferList: [port2] })
    const result = { ok: true }
    try {
      const mod = await import(${JSON.stringify(specifier)})
      result.exports = Object.keys(mod).sort()
    } catch (err) {
      Object.assign(result, { ok: false, code: err.code, message: err.message })
    }
    await new Promise((r) => setImmediate(r))
    const cjs = Object.keys(createRequire(import.meta.url).cache)
    const packages = new Set()
    for (const u of [...urls, ...cjs]) {
      const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(decodeURIComponent(u))
      if (m) packages.add(m[1])
    }
    result.packages = [...packages].sort()
    console.log(JSON.stringify(result))
    process.exit(0)`
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: root, timeout: 60_000, env: { ...process.env, STRATACACHE_NO_TICKER: '1' } }, (err, stdout, stderr) => {
      if (err !== null) return reject(new Error(`${err.message}\n${stderr}`))
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop() as string) as Probe)
      } catch (parseErr) {
        reject(new Error(`unreadable probe output: ${stdout}\n${stderr}`, { cause: parseErr }))
      }
    })
  })
}

describe('the root export', () => {
  test('loads none of the native addon, broker clients, HTTP client, logger or metrics library', async () => {
    const result = await probe('stratacache')
    assert.equal(result.ok, true, result.message)
    const loaded = result.packages.filter((p) => HEAVY.includes(p))
    assert.deepEqual(loaded, [], `the root import loaded ${loaded.join(', ')}`)
    // It loads something (the probe works): msgpackr, the codec's serializer.
    assert.ok(result.packages.includes('msgpackr'), `packages seen: ${result.packages.join(', ')}`)
    for (const name of ['createCache', 'MemoryCache', 'memoryStore', 'memoryBus', 'createCodec', 'ManualClock', 'MissingDependencyError', 'TRACING_CHANNELS']) {
      assert.ok(result.exports?.includes(name), `root exports ${name}`)
    }
    for (const moved of ['redisStore', 'lmdbStore', 'natsBus', 'amqpFeed', 'pgFeed', 'etcdStore', 'createClient', 'registerMetrics']) {
      assert.ok(!result.exports?.includes(moved), `${moved} moved to a subpath`)
    }
  })

  test('works with every optional peer dependency missing', async () => {
    const result = await probe('stratacache', PEERS)
    assert.equal(result.ok, true, result.message)
  })
})

describe('subpath exports', () => {
  const cases: Array<[string, string[], string[]]> = [
    ['stratacache/redis', ['redisStore', 'redisBus', 'redisTransport'], ['ioredis']],
    ['stratacache/nats', ['natsBus', 'natsTransport'], ['nats']],
    ['stratacache/amqp', ['amqpBus', 'amqpTransport', 'amqpFeed'], ['amqplib']],
    ['stratacache/postgres', ['pgFeed'], ['pg']],
    ['stratacache/etcd', ['etcdStore'], []], // etcd3 loads on the store's first operation
    ['stratacache/lmdb', ['lmdbStore'], ['lmdb']],
    ['stratacache/metrics', ['registerMetrics', 'registerReadings'], ['prom-client']],
    ['stratacache/client', ['createClient', 'clientStore', 'autoCache', 'autoCached'], ['undici']],
    ['stratacache/server', ['startNode', 'noReplication'], ['lmdb', 'pino']],
  ]
  for (const [specifier, names, loads] of cases) {
    test(`${specifier} exports ${names.join(', ')}`, async () => {
      const result = await probe(specifier)
      assert.equal(result.ok, true, result.message)
      for (const name of names) assert.ok(result.exports?.includes(name), `${specifier} exports ${name}`)
      for (const p of loads) assert.ok(result.packages.includes(p), `${specifier} loads ${p}`)
    })
  }

  test('stratacache/server (what `serve` runs) loads with every optional peer missing, and loads no mDNS library until mDNS discovery is used', async () => {
    const result = await probe('stratacache/server', PEERS)
    assert.equal(result.ok, true, result.message)
    assert.ok(result.exports?.includes('startNode'))
    assert.ok(!result.packages.includes('bonjour-service'), `packages seen: ${result.packages.join(', ')}`)
  })

  const peerOf: Array<[string, string]> = [
    ['stratacache/redis', 'ioredis'],
    ['stratacache/nats', 'nats'],
    ['stratacache/amqp', 'amqplib'],
    ['stratacache/postgres', 'pg'],
    ['stratacache/etcd', 'etcd3'],
  ]
  for (const [specifier, peer] of peerOf) {
    test(`${specifier} without ${peer} installed: ERR_MISSING_DEPENDENCY naming ${peer}`, async () => {
      const result = await probe(specifier, [peer])
      assert.equal(result.ok, false)
      assert.equal(result.code, 'ERR_MISSING_DEPENDENCY', result.message)
      assert.match(result.message ?? '', new RegExp(`${specifier} needs the ${peer} package.*npm install ${peer}`))
      assert.ok(!result.packages.includes(peer))
    })
  }

  test('every subpath in package.json "exports" is covered here, and every peer is optional and a devDependency', () => {
    const covered = new Set(['.', './package.json', './testing', ...cases.map(([s]) => s.replace('stratacache', '.'))])
    assert.deepEqual(Object.keys(pkg.exports).filter((k) => !covered.has(k)), [])
    assert.deepEqual(Object.keys(pkg.peerDependencies).sort(), PEERS)
    for (const peer of PEERS) {
      assert.equal(pkg.peerDependenciesMeta[peer]?.optional, true, `${peer} is optional`)
      assert.equal(pkg.devDependencies[peer], pkg.peerDependencies[peer], `${peer} installed for the tests`)
      assert.equal(pkg.dependencies[peer], undefined, `${peer} is not a hard dependency`)
    }
  })
})

describe('requireDependency', () => {
  test('passes for an installed package and throws MissingDependencyError otherwise', () => {
    assert.equal(dependencyInstalled('msgpackr'), true)
    assert.equal(dependencyInstalled('no-such-package-stratacache-test'), false)
    requireDependency('msgpackr', 'the codec')
    const missing = (): never => {
      throw Object.assign(new Error('not found'), { code: 'ERR_MODULE_NOT_FOUND' })
    }
    assert.throws(() => requireDependency('ioredis', 'stratacache/redis', missing), (err: unknown) => {
      assert.ok(err instanceof MissingDependencyError)
      assert.ok(isCacheError(err, 'ERR_MISSING_DEPENDENCY'))
      assert.equal(err.packageName, 'ioredis')
      assert.equal(err.neededBy, 'stratacache/redis')
      assert.equal(err.message, 'stratacache/redis needs the ioredis package, which is not installed: npm install ioredis')
      return true
    })
  })
})
