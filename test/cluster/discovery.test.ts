// Discovery strategies: strict parsing (static, env), DNS caching through transient failures,
// file re-read on change (a real temp file), composite fall-through, the health checker on real
// loopback sockets, and mDNS between two publishers on this host bound to the loopback
// interface (skipped, with the reason, where loopback carries no multicast). Tests send nothing
// off loopback: no probe or multicast goes out on a real interface.
import assert from 'node:assert/strict'
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { ManualClock } from '../../src/core/manual-clock.js'
import { isCacheError } from '../../src/core/errors.js'
import { systemClock } from '../../src/core/system-clock.js'
import {
  CompositeDiscovery, DiscoveryHealthChecker, DnsDiscovery, EnvDiscovery, FileDiscovery, MdnsDiscovery, StaticDiscovery,
  parseAddress, tcpProbe, type Discovery, type DiscoveryCandidate, type DnsResolverLike,
} from '../../src/cluster/index.js'
import { until as untilWithin } from '../support/until.js'

const addrs = (cs: readonly DiscoveryCandidate[]): string[] => cs.map((c) => c.address)
const invalid = (option: RegExp) => (e: unknown): boolean => isCacheError(e) && e.code === 'ERR_INVALID_OPTIONS' && option.test(e.message)

/** Waits (real time, bounded) until `cond` holds; the real-file and real-socket tests only. */
const until = (cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> => untilWithin(what, ms, cond, 20)

describe('address parsing and static / env strategies', () => {
  test('host:port, [v6]:port and id@host:port parse; duplicates collapse', async () => {
    assert.deepEqual(parseAddress('a1@10.0.0.1:7701', 'x'), { address: '10.0.0.1:7701', host: '10.0.0.1', port: 7701, nodeId: 'a1' })
    assert.equal(parseAddress('[::1]:7702', 'x').address, '[::1]:7702')
    assert.equal(parseAddress(' cache-1.example.com:80 ', 'x').host, 'cache-1.example.com')
    // Container names with underscores (Docker Compose's project_service_1) resolve, and a node may advertise one.
    assert.equal(parseAddress('cache_node_1:7701', 'x').address, 'cache_node_1:7701')
    assert.equal(parseAddress('_cache.svc.local:7701', 'x').host, '_cache.svc.local')
    const s = new StaticDiscovery(['127.0.0.1:1', '127.0.0.1:1', { host: '::1', port: 2, region: 'paris' }])
    const got = await s.discover()
    assert.deepEqual(addrs(got), ['127.0.0.1:1', '[::1]:2'])
    assert.equal(got[1]?.region, 'paris')
  })

  test('bad entries are ERR_INVALID_OPTIONS naming the entry', () => {
    for (const bad of ['127.0.0.1', '127.0.0.1:0', 'h:65536', 'h:-1', 'h:7x', '::1:80', 'bad host:80', '[::1]80', 'a b@h:1', '', '-h:1', 'h..i:1', 'h/i:1']) {
      assert.throws(() => new StaticDiscovery(['ok:1', bad]), invalid(/seeds\[1\]/), bad)
    }
    assert.throws(() => new StaticDiscovery('h:1' as unknown as string[]), invalid(/seeds/))
  })

  test('env: STRATACACHE_SEEDS by default, commas/spaces, unset is empty, a typo names the variable and index', async () => {
    const env = { STRATACACHE_SEEDS: 'a1@127.0.0.1:7701, 127.0.0.1:7702\n127.0.0.1:7703', OTHER: '' }
    assert.deepEqual(addrs(await new EnvDiscovery({ env }).discover()), ['127.0.0.1:7701', '127.0.0.1:7702', '127.0.0.1:7703'])
    assert.deepEqual(await new EnvDiscovery({ env: {} }).discover(), [])
    assert.deepEqual(await new EnvDiscovery({ env, variable: 'OTHER' }).discover(), [])
    assert.throws(() => new EnvDiscovery({ env: { STRATACACHE_SEEDS: '127.0.0.1:7701,127.0.0.1' } }), invalid(/STRATACACHE_SEEDS\[1\].*no port/))
    assert.throws(() => new EnvDiscovery({ env: { S: 'h:99999' }, variable: 'S' }), invalid(/S\[0\].*1\.\.65535/))
    assert.throws(() => new EnvDiscovery({ env, variable: 'no-such var' }), invalid(/variable/))
  })
})

/** A scripted resolver: each call takes the next step (answer, error, or hang until cancelled). */
class FakeResolver implements DnsResolverLike {
  readonly calls: string[] = []
  steps: (string[] | Error | 'hang')[] = []
  srv: { name: string, port: number, priority: number, weight: number }[] = []
  cancelled = 0
  #next(kind: string): Promise<string[]> {
    this.calls.push(kind)
    const step = this.steps.shift() ?? new Error('ESERVFAIL')
    if (step === 'hang') return new Promise(() => { /* never answers */ })
    return step instanceof Error ? Promise.reject(step) : Promise.resolve(step)
  }
  resolve4(): Promise<string[]> { return this.#next('A') }
  resolve6(): Promise<string[]> { return this.#next('AAAA') }
  resolveSrv(): Promise<{ name: string, port: number, priority: number, weight: number }[]> { this.calls.push('SRV'); return Promise.resolve(this.srv) }
  cancel(): void { this.cancelled++ }
}

describe('DnsDiscovery', () => {
  test('A records with the configured port; cached for the TTL; a transient failure serves the cache and backs off', async () => {
    const clock = new ManualClock()
    const resolver = new FakeResolver()
    const dns = new DnsDiscovery({ name: 'cache.svc.local', type: 'A', port: 7701, ttlMs: 10_000, backoffMs: 1000, maxBackoffMs: 4000, resolver, clock })
    resolver.steps = [['10.0.0.1', '10.0.0.2']]
    assert.deepEqual(addrs(await dns.discover()), ['10.0.0.1:7701', '10.0.0.2:7701'])
    clock.advance(5_000)
    await dns.discover()
    assert.equal(resolver.calls.length, 1, 'fresh answers come from the cache')
    clock.advance(6_000)
    resolver.steps = [new Error('ESERVFAIL'), new Error('ETIMEOUT')]
    assert.deepEqual(addrs(await dns.discover()), ['10.0.0.1:7701', '10.0.0.2:7701'], 'the cached answer survives the failure')
    assert.match(dns.lastError?.message ?? '', /ESERVFAIL/)
    await dns.discover()
    assert.equal(resolver.calls.length, 2, 'no new lookup inside the backoff')
    clock.advance(1000)
    await dns.discover()
    assert.equal(resolver.calls.length, 3, 'retried after the backoff')
    clock.advance(1000)
    await dns.discover()
    assert.equal(resolver.calls.length, 3, 'the second backoff doubled to 2 s')
    clock.advance(1000)
    resolver.steps = [['10.0.0.3']]
    assert.deepEqual(addrs(await dns.discover()), ['10.0.0.3:7701'], 'a good answer replaces the cache')
    assert.equal(dns.lastError, undefined)
  })

  test('a lookup that hangs is bounded by the timeout on the clock and cancelled; cache served', async () => {
    const clock = new ManualClock()
    const resolver = new FakeResolver()
    const dns = new DnsDiscovery({ name: 'cache.svc.local', type: 'A', port: 1, ttlMs: 1000, timeoutMs: 500, resolver, clock })
    resolver.steps = [['10.0.0.9']]
    await dns.discover()
    clock.advance(1000)
    resolver.steps = ['hang']
    const pending = dns.discover()
    clock.advance(500)
    assert.deepEqual(addrs(await pending), ['10.0.0.9:1'])
    assert.equal(resolver.cancelled, 1)
    assert.match(dns.lastError?.message ?? '', /longer than 500 ms/)
  })

  test('A+AAAA: one family answering is enough; SRV carries ports, sorted by priority; no cache yet and failing is empty', async () => {
    const clock = new ManualClock()
    const r1 = new FakeResolver()
    r1.steps = [['10.0.0.1'], Object.assign(new Error('ENODATA'), { code: 'ENODATA' })]
    assert.deepEqual(addrs(await new DnsDiscovery({ name: 'h.local', port: 9, resolver: r1, clock }).discover()), ['10.0.0.1:9'])
    const r2 = new FakeResolver()
    r2.srv = [{ name: 'b.local.', port: 7702, priority: 20, weight: 1 }, { name: 'a.local', port: 7701, priority: 10, weight: 1 }]
    assert.deepEqual(addrs(await new DnsDiscovery({ name: '_cache._tcp.example.com', resolver: r2, clock }).discover()), ['a.local:7701', 'b.local:7702'])
    const r3 = new FakeResolver()
    assert.deepEqual(await new DnsDiscovery({ name: 'h.local', type: 'A', port: 9, resolver: r3, clock }).discover(), [])
  })

  test('bad options are typed errors', () => {
    assert.throws(() => new DnsDiscovery({ name: 'h.local' }), invalid(/"port"/))
    assert.throws(() => new DnsDiscovery({ name: 'bad name', port: 1 }), invalid(/"name"/))
    assert.throws(() => new DnsDiscovery({ name: 'h', port: 1, type: 'MX' as 'A' }), invalid(/"type"/))
    assert.throws(() => new DnsDiscovery({ name: 'h', port: 1, ttlMs: -1 }), invalid(/ttlMs/))
  })
})

describe('FileDiscovery (real temp file)', () => {
  test('re-read on change through fs.watch; a broken edit keeps the last good list; rename-over works', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sc-disc-'))
    try {
      const path = join(dir, 'seeds.txt')
      await writeFile(path, '# seeds\n127.0.0.1:7701\n')
      const fd = new FileDiscovery({ path, pollIntervalMs: 60_000 })
      assert.deepEqual(addrs(await fd.discover()), ['127.0.0.1:7701'])
      let changes = 0
      fd.onChange(() => { changes++ })
      await writeFile(path, '127.0.0.1:7701, 127.0.0.1:7702\n')
      await until(() => changes >= 1, 10_000, 'fs.watch to report the edit')
      assert.deepEqual(addrs(await fd.discover()), ['127.0.0.1:7701', '127.0.0.1:7702'])
      await writeFile(path, '127.0.0.1:7701, 127.0.0.1\n')
      assert.deepEqual(addrs(await fd.discover()), ['127.0.0.1:7701', '127.0.0.1:7702'], 'a bad edit keeps the last good list')
      assert.ok(isCacheError(fd.lastError) && fd.lastError.code === 'ERR_INVALID_OPTIONS', 'and says why')
      // Rewritten in place: between the truncation and the write the file has zero bytes;
      // a re-read then (fs.watch reports the truncation) took it for a list of no seeds.
      await writeFile(path, '')
      assert.deepEqual(addrs(await fd.discover()), ['127.0.0.1:7701', '127.0.0.1:7702'], 'a zero-byte file keeps the last good list')
      assert.ok(isCacheError(fd.lastError) && /empty/.test(fd.lastError.message), 'and says why')
      await writeFile(path, '# no seeds\n')
      assert.deepEqual(await fd.discover(), [], 'a file of comments only is a list of no seeds')
      await writeFile(join(dir, 'seeds.tmp'), '127.0.0.1:7703\n')
      await rename(join(dir, 'seeds.tmp'), path)
      await until(async () => addrs(await fd.discover()).join() === '127.0.0.1:7703', 10_000, 'the renamed-over file')
      await fd.close()
    } finally { await rm(dir, { recursive: true, force: true }) }
  })

  test('without fs.watch, the periodic stat on the injected clock notices the change', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sc-disc-'))
    try {
      const path = join(dir, 'seeds.txt')
      await writeFile(path, '127.0.0.1:7701\n')
      const clock = new ManualClock()
      const fd = new FileDiscovery({ path, pollIntervalMs: 1000, watch: false, clock })
      let changes = 0
      fd.onChange(() => { changes++ })
      await until(async () => addrs(await fd.discover()).length === 1, 5_000, 'first read')
      await writeFile(path, '127.0.0.1:7701\n127.0.0.1:7702\n')
      await until(() => { clock.advance(1000); return changes >= 1 }, 10_000, 'the poll to notice')
      assert.deepEqual(addrs(await fd.discover()), ['127.0.0.1:7701', '127.0.0.1:7702'])
      await fd.close()
      const missing = new FileDiscovery({ path: join(dir, 'nope.txt'), watch: false, clock })
      assert.deepEqual(await missing.discover(), [], 'a missing file yields nothing')
      assert.match(missing.lastError?.message ?? '', /ENOENT/)
    } finally { await rm(dir, { recursive: true, force: true }) }
  })
})

class ThrowingDiscovery implements Discovery {
  readonly kind = 'broken'
  discover(): Promise<readonly DiscoveryCandidate[]> { return Promise.reject(new Error('bug')) }
}

describe('CompositeDiscovery', () => {
  test('falls through in order: the first strategy with a live candidate wins; union merges', async () => {
    const clock = new ManualClock()
    const alive = new Set(['127.0.0.1:2', '127.0.0.1:3'])
    const checker = new DiscoveryHealthChecker({ clock, prober: (h, p) => Promise.resolve(alive.has(`${h}:${p}`)) })
    const empty = new EnvDiscovery({ env: {} })
    const dead = new StaticDiscovery(['127.0.0.1:1'])
    const env = new EnvDiscovery({ env: { STRATACACHE_SEEDS: 'b1@127.0.0.1:2' } })
    const later = new StaticDiscovery([{ host: '127.0.0.1', port: 2, region: 'paris' }, '127.0.0.1:3'])
    const c = new CompositeDiscovery([new ThrowingDiscovery(), empty, dead, env, later], { healthChecker: checker })
    assert.deepEqual(addrs(await c.discover()), ['127.0.0.1:2'])
    assert.equal(c.lastSource, 'env', 'a throwing, an empty and an all-dead strategy fell through')
    assert.match(c.lastError?.message ?? '', /bug/)
    const u = new CompositeDiscovery([dead, env, later], { mode: 'union', healthChecker: checker })
    const got = await u.discover()
    assert.deepEqual(addrs(got), ['127.0.0.1:2', '127.0.0.1:3'])
    assert.deepEqual({ ...got[0] }, { address: '127.0.0.1:2', host: '127.0.0.1', port: 2, nodeId: 'b1', region: 'paris' }, 'earlier wins, later fills gaps')
    assert.deepEqual(addrs(await new CompositeDiscovery([dead]).discover()), ['127.0.0.1:1'], 'without a checker nothing is probed')
    assert.throws(() => new CompositeDiscovery([{}] as unknown as Discovery[]), invalid(/strategies/))
    assert.throws(() => new CompositeDiscovery([], { mode: 'all' as 'first' }), invalid(/mode/))
  })
})

class PushDiscovery implements Discovery {
  readonly kind = 'push'
  readonly listeners = new Set<() => void>()
  closed = false
  discover(): Promise<readonly DiscoveryCandidate[]> { return Promise.resolve([]) }
  onChange(l: () => void): () => void { this.listeners.add(l); return () => { this.listeners.delete(l) } }
  close(): Promise<void> { this.closed = true; return Promise.resolve() }
}

describe('CompositeDiscovery push and close', () => {
  test('forwards a strategy\'s change events, and close() unsubscribes and closes every strategy', async () => {
    const push = new PushDiscovery()
    const c = new CompositeDiscovery([new StaticDiscovery([]), push])
    let changes = 0
    c.onChange(() => { throw new Error('a listener bug') })
    c.onChange(() => { changes++ })
    for (const l of push.listeners) l()
    assert.equal(changes, 1, 'one event reaches the composite\'s listeners; a throwing listener does not stop them')
    await c.close()
    assert.equal(push.listeners.size, 0)
    assert.ok(push.closed)
  })
})

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => { resolve((server.address() as AddressInfo).port) })
  })
}
const closeServer = (s: Server): Promise<void> => new Promise((resolve) => { s.close(() => resolve()) })

describe('DiscoveryHealthChecker (real loopback sockets)', () => {
  test('drops a closed port, keeps it out while the verdict holds, re-adds it once it listens again', async () => {
    const clock = new ManualClock()
    const checker = new DiscoveryHealthChecker({ clock, intervalMs: 5000, timeoutMs: 2000 })
    const up = createServer((s) => s.destroy())
    const upPort = await listen(up, 0)
    const down = createServer((s) => s.destroy())
    const downPort = await listen(down, 0)
    await closeServer(down)
    const seeds = await new StaticDiscovery([`127.0.0.1:${upPort}`, `127.0.0.1:${downPort}`]).discover()
    try {
      assert.deepEqual(addrs(await checker.filter(seeds)), [`127.0.0.1:${upPort}`])
      assert.equal(checker.health().get(`127.0.0.1:${downPort}`)?.failures, 1)
      const again = createServer((s) => s.destroy())
      await listen(again, downPort)
      try {
        assert.deepEqual(addrs(await checker.filter(seeds)), [`127.0.0.1:${upPort}`], 'the dead verdict holds for intervalMs')
        clock.advance(5000)
        assert.deepEqual(addrs(await checker.filter(seeds)), [`127.0.0.1:${upPort}`, `127.0.0.1:${downPort}`], 'back once it answers')
      } finally { await closeServer(again) }
    } finally { await closeServer(up) }
  })

  test('a probe that never connects is bounded by the timeout on the clock; a throwing prober means dead', async () => {
    const clock = new ManualClock()
    // A refused connect on loopback (nothing listens on port 9 here) is dead at once.
    assert.equal(await tcpProbe('127.0.0.1', 9, 300, clock), false)
    const neverAnswers = new DiscoveryHealthChecker({ clock, timeoutMs: 300, prober: (_h, _p, ms, c) => new Promise((resolve) => { c.setTimeout(() => resolve(false), ms) }) })
    const filtered = neverAnswers.filter([parseAddress('192.0.2.1:9', 'x')])
    clock.advance(300)
    assert.deepEqual(await filtered, [])
    const throwing = new DiscoveryHealthChecker({ clock, prober: () => Promise.reject(new Error('boom')) })
    assert.deepEqual(await throwing.filter([parseAddress('127.0.0.1:9', 'x')]), [])
  })
})

describe('MdnsDiscovery', () => {
  test('two nodes on this host find each other with id and region from the TXT record', async (t) => {
    const a = new MdnsDiscovery({ nodeId: 'disc-a1', region: 'london', port: 7701, serviceType: 'sc-test', interface: '127.0.0.1' })
    const b = new MdnsDiscovery({ nodeId: 'disc-b1', region: 'paris', port: 7702, serviceType: 'sc-test', interface: '127.0.0.1' })
    try {
      let seenByA: readonly DiscoveryCandidate[] = []
      let seenByB: readonly DiscoveryCandidate[] = []
      const deadline = systemClock.now() + 8000
      while (systemClock.now() < deadline && (seenByA.length === 0 || seenByB.length === 0)) {
        await new Promise<void>((resolve) => { systemClock.setTimeout(resolve, 200) })
        seenByA = await a.discover()
        seenByB = await b.discover()
      }
      if (seenByA.length === 0 && seenByB.length === 0) {
        t.skip(`multicast DNS on the loopback interface found nothing within 8 s (loopback carries no multicast here; tests never multicast on a real interface) (errors: ${a.lastError?.message ?? 'none'})`)
        return
      }
      assert.deepEqual(seenByA.map((c) => [c.nodeId, c.region, c.port]), [['disc-b1', 'paris', 7702]])
      assert.deepEqual(seenByB.map((c) => [c.nodeId, c.region, c.port]), [['disc-a1', 'london', 7701]])
    } finally {
      await a.close()
      await b.close()
    }
  })

  test('bad mDNS options are ERR_INVALID_OPTIONS; browse-only and discover after close are harmless', async () => {
    assert.throws(() => new MdnsDiscovery({ serviceType: 'Not Valid' }), invalid(/serviceType/))
    assert.throws(() => new MdnsDiscovery({ nodeId: 'x1' }), invalid(/"port".*publishing/))
    assert.throws(() => new MdnsDiscovery({ nodeId: 'x1', port: 70000 }), invalid(/"port"/))
    const browseOnly = new MdnsDiscovery({ serviceType: 'sc-browse', interface: '127.0.0.1' })
    assert.ok(Array.isArray(await browseOnly.discover()))
    await browseOnly.close()
    assert.deepEqual(await browseOnly.discover(), [], 'closed: nothing, and no throw')
  })
})
