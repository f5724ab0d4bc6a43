// The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) against a real node on a free loopback port: the page loads without a
// console error and shows the node, its figures move after requests without a reload, auth
// is enforced (401 without the token; a browser gets in with the token as the Basic
// password), closed streams leave nothing behind, and a node with a page open still shuts
// down promptly. A 3-node test (kill -9 reflected within the detection bound) waits for the
// P8 cluster wiring.
//
// The screenshot in docs/images/dashboard.png comes from this file: run it with
// STRATACACHE_UPDATE_SCREENSHOTS=1 to write it again (otherwise it goes to a temp dir).
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, request as httpRequest, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { detectionBoundMs } from '../../src/cluster/membership.js'
import type { DashboardSnapshot } from '../../src/server/dashboard.js'
import { DASHBOARD_HTML, DASHBOARD_PAGE_HEADERS } from '../../src/server/dashboard-page.js'
import { nodeTestbed, send } from '../support/node-fixtures.js'
import { freePort, waitUntil } from '../support/server-process.js'

const CHROMIUM = '/usr/bin/chromium'
const REPO = fileURLToPath(new URL('../../../', import.meta.url))
const SCREENSHOT = process.env.STRATACACHE_UPDATE_SCREENSHOTS === '1' ? join(REPO, 'docs/images/dashboard.png') : join(tmpdir(), `stratacache-dashboard-${process.pid}.png`)

const bed = nodeTestbed()
let browser: Browser
const contexts: BrowserContext[] = []

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: this test needs Debian's chromium package (apt-get install chromium); .ci/run installs it`)
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
})
after(async () => {
  for (const c of contexts) await c.close().catch(() => undefined)
  await browser?.close()
  await bed.close()
})

/** A page that records its console errors, uncaught exceptions and failed requests. */
async function openPage(options: Parameters<Browser['newContext']>[0] = {}): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 720 }, ...options })
  contexts.push(context)
  const page = await context.newPage()
  const problems: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`)
  })
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`))
  page.on('requestfailed', (r) => {
    // A stream cut by closing the page or the node is not a page defect.
    if (!r.url().endsWith('/v1/dashboard/events')) problems.push(`requestfailed: ${r.url()} ${r.failure()?.errorText ?? ''}`)
  })
  return { page, problems }
}

/** What the page functions below use of the DOM (this file compiles without the DOM lib). */
interface PageGlobals {
  document: { getElementById(id: string): { textContent: string | null } | null }
  __noReload?: boolean
}

/**
 * Navigates where the node refuses the browser's credentials (none, or wrong ones): the
 * navigation ends on the 401, or Chromium gives up on the challenge (Playwright answers it
 * with the context's credentials or cancels it; which one Chromium reports varies).
 */
async function assertRefused(page: Page, url: string): Promise<void> {
  try {
    const r = await page.goto(url)
    assert.equal(r?.status(), 401)
  } catch (err) {
    assert.match(String(err), /ERR_INVALID_AUTH_CREDENTIALS/)
  }
}

const textOf = async (page: Page, selector: string): Promise<string> => (await page.textContent(selector)) ?? ''
const numberIn = (text: string): number => Number(text.replace(/[^0-9.]/g, ''))

describe('dashboard in Chromium', () => {
  test('a lone node: loads without a console error, shows itself, and its figures move live after requests', async () => {
    const node = await bed.start({ region: 'eu-west', nodeId: 'node-a' })
    const { page, problems } = await openPage({ viewport: { width: 1200, height: 420 } })
    const response = await page.goto(`${node.url}/dashboard`)
    assert.equal(response?.status(), 200)
    await page.waitForSelector('tr[data-member="node-a"][data-status="alive"]', { timeout: 5000 })
    assert.equal(await textOf(page, '#node-id'), 'node-a')
    assert.equal(await textOf(page, '#state'), 'ACTIVE')
    assert.equal(await textOf(page, '#conn'), 'live')
    assert.equal(await page.isVisible('#standalone'), true, 'a node without cluster wiring says so')
    assert.match(await textOf(page, '#regions h3'), /^eu-west \(this node's region\)/)
    assert.match(await textOf(page, 'tr[data-member="node-a"]'), /this node/)

    // Mark the document: a reload would lose the mark.
    await page.evaluate(() => Object.assign(globalThis, { __noReload: true }))
    const before = numberIn(await textOf(page, '#fig-requests'))
    for (let i = 0; i < 20; i++) {
      assert.equal((await send(node.url, 'PUT', `/v1/keys/k${i}`, `value ${i}`)).status, 200)
      assert.equal((await send(node.url, 'GET', `/v1/keys/k${i}`)).status, 200)
      if (i % 4 === 0) assert.equal((await send(node.url, 'GET', `/v1/keys/missing-${i}`)).status, 404)
    }
    await page.waitForFunction((min) => {
      const doc = (globalThis as unknown as PageGlobals).document
      const n = (id: string): number => Number((doc.getElementById(id)?.textContent ?? '').replace(/[^0-9.]/g, ''))
      return n('fig-requests') >= min && n('fig-entries') === 20 && n('fig-rps') > 0 && (doc.getElementById('fig-hit')?.textContent ?? '—') !== '—'
    }, before + 45, { timeout: 5000 })
    assert.equal(await page.evaluate(() => (globalThis as unknown as PageGlobals).__noReload), true, 'updated without a reload')
    assert.match(await textOf(page, '#fig-hit-total'), /since start \d+\.\d %/)
    assert.equal(await page.isVisible('#extras-title'), false, 'no extra stats sections yet: the section is hidden')
    if (process.env.STRATACACHE_UPDATE_SCREENSHOTS === '1') {
      // For the docs' picture: some seconds of varied traffic, so the sparklines have a history.
      for (let s = 0; s < 12; s++) {
        const until = Date.now() + 1000
        for (let i = 0; Date.now() < until; i++) await send(node.url, 'GET', `/v1/keys/k${(i * 7 + s) % (20 + s * 3)}`)
      }
    }
    const png = await page.screenshot({ fullPage: true })
    assert.ok(png.byteLength > 10_000)
    mkdirSync(dirname(SCREENSHOT), { recursive: true })
    writeFileSync(SCREENSHOT, png)
    await page.close()
    assert.deepEqual(problems, [])
  })

  test('a cluster snapshot (the P8 ClusterView shape) and extra stats sections are drawn as they come', async () => {
    // The page as the node serves it, on a stub server whose stream pushes (and keeps open) a
    // sample snapshot of a 5-node, 3-region cluster whose stats carry sections that later
    // layers will add.
    let n = 0
    const member = (id: string, region: string, status: string, phi: number | null, rttMs: number | null, self = false): Record<string, unknown> => ({ id, region, address: `10.0.${region === 'eu' ? 1 : region === 'us' ? 2 : 3}.${++n}:7700`, status, incarnation: self ? 3 : 1, phi, rttMs, self })
    const snapshot = {
      v: 1, at: Date.now(), standalone: false,
      node: { id: 'eu-1', url: 'http://10.0.1.1:7700', region: 'eu' },
      cluster: {
        self: 'eu-1', region: 'eu', incarnation: 3, status: 'alive', state: { state: 'NO_MIGRATION', version: 4, origin: 'eu-2' },
        regions: [
          { region: 'eu', rank: 0, rttMs: 0.4, members: [member('eu-1', 'eu', 'alive', null, null, true), member('eu-2', 'eu', 'alive', 0.31, 0.4)] },
          { region: 'us', rank: 1, rttMs: 82.5, members: [member('us-1', 'us', 'alive', 0.52, 81.9), member('us-2', 'us', 'suspect', 9.7, 83.1)] },
          { region: 'ap', rank: 2, rttMs: null, members: [member('ap-1', 'ap', 'dead', 1000, null)] },
        ],
      },
      rates: { windowMs: 1000, requestsPerSec: 1840, readsPerSec: 1500, hitRatio: 0.93 },
      hitRatioTotal: 0.91,
      stats: {
        node: { connections: 12, inFlight: 3, uptimeSeconds: 7400, draining: false }, requests: { total: 1_204_551, clientErrors: 12, serverErrors: 0, busy: 0 },
        cache: { size: 48_210, hits: 1_000_000, misses: 98_000 }, store: 'lmdb',
        replication: { lagMs: { p50: 1.2, p99: 8.4 }, pending: 3 }, hints: { queued: 120, peers: 1 }, nearCache: { clients: 7 },
      },
    }
    const streams = new Set<ServerResponse>()
    const stub = createServer((req, res) => {
      if (req.url === '/dashboard') {
        res.writeHead(200, DASHBOARD_PAGE_HEADERS).end(DASHBOARD_HTML)
      } else if (req.url === '/v1/dashboard/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream' }).write(`retry: 2000\n\nevent: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`)
        streams.add(res)
      } else res.writeHead(404).end()
    })
    await new Promise<void>((resolve) => stub.listen(0, '127.0.0.1', resolve))
    after(() => {
      for (const r of streams) r.destroy()
      stub.close()
    })
    const { page, problems } = await openPage({ viewport: { width: 1200, height: 420 } })
    await page.goto(`http://127.0.0.1:${(stub.address() as AddressInfo).port}/dashboard`)
    await page.waitForSelector('tr[data-member="ap-1"]')
    assert.deepEqual(await page.$$eval('.region', (els) => els.map((e) => (e as unknown as { dataset: { region: string } }).dataset.region)), ['eu', 'us', 'ap'], 'own region first, then by rank')
    assert.deepEqual(await page.$$eval('tr[data-member]', (els) => els.map((e) => `${e.getAttribute('data-member')}:${e.getAttribute('data-status')}`)), ['eu-1:alive', 'eu-2:alive', 'us-1:alive', 'us-2:suspect', 'ap-1:dead'])
    assert.equal(await textOf(page, 'tr[data-member="us-2"] td.phi'), '9.70')
    assert.equal(await textOf(page, 'tr[data-member="us-1"] td.rtt'), '81.9 ms')
    assert.equal(await textOf(page, 'tr[data-member="eu-1"] td.phi'), '—', 'no phi for the node itself')
    assert.match(await textOf(page, '.region[data-region="us"] h3'), /^us · rank 1 · RTT 82\.5 ms · 2 members$/)
    assert.equal(await textOf(page, '#members-summary'), '3 alive · 1 suspect · 1 dead · 0 left')
    assert.equal(await textOf(page, '#state'), 'NO_MIGRATION')
    assert.equal(await page.isVisible('#standalone'), false)
    assert.equal(await page.isVisible('#extras-title'), true)
    assert.deepEqual(await page.$$eval('#extras .card .label', (els) => els.map((e) => e.textContent)), ['Replication', 'Hint queues', 'Near-cache clients'])
    assert.match(await textOf(page, '#extras .card[data-section="replication"]'), /lagMs\.p99\s*8\.4/)
    assert.equal(await textOf(page, '#fig-rps'), '1,840')
    assert.equal(await textOf(page, '#fig-hit'), '93.0 %')
    assert.equal(await textOf(page, '#conn'), 'live')
    if (process.env.STRATACACHE_UPDATE_SCREENSHOTS === '1') writeFileSync(join(REPO, 'docs/images/dashboard-cluster-sample.png'), await page.screenshot({ fullPage: true }))
    await page.close()
    assert.deepEqual(problems, [])
  })

  test('closing pages and dropping streams leaves no stream, timer or connection behind', async () => {
    const node = await bed.start({ nodeId: 'node-a' })
    const baseline = node.stats().node.connections
    const context = await browser.newContext()
    contexts.push(context)
    const opened = await Promise.all([0, 1, 2].map(async () => {
      const page = await context.newPage()
      await page.goto(`${node.url}/dashboard`)
      await page.waitForSelector('tr[data-member="node-a"]')
      return page
    }))
    await waitUntil(() => node.stats().node.dashboardStreams === 3, 5000, () => `streams: ${node.stats().node.dashboardStreams}`)
    for (const p of opened) await p.close()
    // Raw clients that read one event and vanish (abort, socket destroy).
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${node.url}/v1/dashboard/events`, { agent: false }, (res) => {
          assert.equal(res.headers['content-type'], 'text/event-stream')
          res.once('data', () => {
            if (i % 2 === 0) req.destroy()
            else res.socket.destroy()
            resolve()
          })
        })
        req.on('error', (err) => (req.destroyed ? undefined : reject(err)))
        req.end()
      })
    }
    await waitUntil(() => node.stats().node.dashboardStreams === 0 && node.stats().node.connections <= baseline, 5000, () => `left behind: ${JSON.stringify(node.stats().node)} (baseline ${baseline} connections)`)
  })

  test('with an auth token: 401 without it, a Basic challenge the browser can answer with the token', async () => {
    const guarded = await bed.start({ authToken: 'dash-token-123', nodeId: 'node-b' })
    for (const path of ['/dashboard', '/v1/dashboard/events', '/v1/dashboard/snapshot']) {
      const r = await send(guarded.url, 'GET', path)
      assert.equal(r.status, 401, path)
      assert.match(String(r.headers['www-authenticate']), /^Basic realm="stratacache"/)
    }
    // A browser with no credentials is challenged and gets nothing (Playwright cancels the
    // challenge for it); a wrong password is refused the same way.
    const unauthorized = guarded.stats().requests.unauthorized
    await assertRefused((await openPage()).page, `${guarded.url}/dashboard`)
    assert.ok(guarded.stats().requests.unauthorized > unauthorized, 'the node answered the browser 401')
    const wrong = await send(guarded.url, 'GET', '/dashboard', undefined, { authorization: `Basic ${Buffer.from('ops:not-the-token').toString('base64')}` })
    assert.equal(wrong.status, 401)

    const { page, problems } = await openPage({ httpCredentials: { username: 'ops', password: 'dash-token-123' } })
    assert.equal((await page.goto(`${guarded.url}/dashboard`))?.status(), 200)
    await page.waitForSelector('tr[data-member="node-b"][data-status="alive"]', { timeout: 5000 })
    await page.waitForFunction(() => (globalThis as unknown as PageGlobals).document.getElementById('conn')?.textContent === 'live')
    assert.deepEqual(problems, [])
    const snap = JSON.parse((await send(guarded.url, 'GET', '/v1/dashboard/snapshot', undefined, { authorization: 'Bearer dash-token-123' })).body.toString()) as DashboardSnapshot
    assert.equal(snap.node.id, 'node-b')
  })

  test('a node with a page open shuts down promptly, and the page says it lost the node', async () => {
    const doomed = await bed.start({ nodeId: 'node-c' })
    const { page } = await openPage()
    await page.goto(`${doomed.url}/dashboard`)
    await page.waitForSelector('tr[data-member="node-c"]')
    const began = Date.now()
    await doomed.close()
    assert.ok(Date.now() - began < 2500, `close took ${Date.now() - began} ms with a stream open`)
    await page.waitForFunction(() => ['reconnecting', 'disconnected', 'stale'].includes((globalThis as unknown as PageGlobals).document.getElementById('conn')?.textContent ?? ''), undefined, { timeout: 5000 })
  })
})

// ---- a 3-node cluster (enable once P8 wires membership into the node) ---------------------

/** CLI flags of one node of the test cluster (the P8 flags: --id, --region, --seeds, --cluster-secret). */
function clusterArgs(port: number, id: string, region: string, seeds: readonly number[], dataDir: string): string[] {
  return ['serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir, '--disk', '64mb', '--id', id, '--region', region, '--seeds', seeds.map((p) => `127.0.0.1:${p}`).join(','), '--cluster-secret', 'dashboard-test-cluster-secret', '--cluster-port', '0']
}

describe('dashboard of a 3-node cluster in Chromium', () => {
  test('shows the 3 members by region, and a kill -9ed node as dead within the detection bound', async () => {
    const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))
    const ports = [await freePort(), await freePort(), await freePort()]
    const members = [
      { id: 'n1', region: 'eu' },
      { id: 'n2', region: 'eu' },
      { id: 'n3', region: 'us' },
    ]
    const dirs: string[] = []
    const children: ChildProcess[] = []
    try {
      for (let i = 0; i < 3; i++) {
        const dir = mkdtempSync(join(tmpdir(), 'stratacache-dash-cluster-'))
        dirs.push(dir)
        const child = spawn(process.execPath, [cli, ...clusterArgs(ports[i], members[i].id, members[i].region, ports.filter((_, j) => j !== i), dir)], { stdio: 'ignore', env: { ...process.env, STRATACACHE_NO_TICKER: '1' } })
        children.push(child)
      }
      const url = `http://127.0.0.1:${ports[0]}`
      await waitUntil(async () => {
        const r = await send(url, 'GET', '/v1/dashboard/snapshot')
        if (r.status !== 200) return false
        const s = JSON.parse(r.body.toString()) as DashboardSnapshot
        return !s.standalone && s.cluster.regions.flatMap((g) => g.members).filter((m) => m.status === 'alive').length === 3
      }, 20_000, () => 'the 3 nodes did not see each other alive')

      const { page, problems } = await openPage()
      await page.goto(`${url}/dashboard`)
      for (const m of members) await page.waitForSelector(`.region[data-region="${m.region}"] tr[data-member="${m.id}"][data-status="alive"]`, { timeout: 5000 })
      assert.equal(await page.isVisible('#standalone'), false)
      assert.match(await textOf(page, '.region[data-region="us"] h3'), /rank 1/)
      // A peer's RTT and phi exist once this node has had an answer to a probe of it, which can
      // come a heartbeat after the peer shows alive (it may have been learned from gossip): the
      // page shows them within two heartbeats and one push of the dashboard (1 s each).
      const shown = (cell: string): Promise<unknown> =>
        page.waitForFunction((sel) => {
          const doc = (globalThis as unknown as { document: { querySelector(s: string): { textContent: string | null } | null } }).document
          return (doc.querySelector(sel)?.textContent ?? '—').trim() !== '—'
        }, `tr[data-member="n2"] td.${cell}`, { timeout: 3000 }).catch((e: unknown) => console.log(`# waited for the ${cell} cell: ${String(e).slice(0, 200)}`))
      await shown('rtt')
      await shown('phi')
      assert.notEqual(await textOf(page, 'tr[data-member="n2"] td.rtt'), '—', 'a peer shows its RTT')
      assert.notEqual(await textOf(page, 'tr[data-member="n2"] td.phi'), '—', 'a peer shows its phi')

      const killedAt = Date.now()
      children[2].kill('SIGKILL')
      const bound = detectionBoundMs() + 1000 // + one push interval of the dashboard
      await page.waitForSelector('tr[data-member="n3"][data-status="dead"]', { timeout: bound + 2000 })
      const took = Date.now() - killedAt
      assert.ok(took <= bound, `n3 shown dead ${took} ms after the kill; the bound is ${bound} ms`)
      assert.equal(await page.getAttribute('tr[data-member="n2"]', 'data-status'), 'alive')
      assert.deepEqual(problems, [])
    } finally {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
      for (const d of dirs) rmSync(d, { recursive: true, force: true })
    }
  })
})
