/**
 * The dashboard's one page (`GET /dashboard`), as a string: HTML with its style and script
 * inline, no framework, no build step, nothing fetched from elsewhere. It ships in dist/
 * like any module, so `npm start` serves it from a fresh clone.
 *
 * The script opens an `EventSource` on `v1/dashboard/events` (relative, so the page also
 * works behind a proxy that mounts the node under a path) and redraws from each `snapshot`
 * event (see `DashboardSnapshot` in dashboard.ts): the cluster state, each region with its
 * rank and RTT, each member with status, phi, RTT and incarnation, the node's rates and
 * figures with one-minute sparklines, and one card per extra stats section (replication,
 * hint queues, near-cache clients… when the node's stats carry them; hidden otherwise).
 *
 * Every value from the node is written with `textContent`, never parsed as HTML (member
 * ids and addresses come from the network). The Content-Security-Policy allows exactly
 * this script and this style (by hash), connections to the page's own origin, and nothing
 * else: no other script, frame, form target or plug-in.
 */
import { createHash } from 'node:crypto'

const STYLE = `
:root { color-scheme: light dark; --bg: #f6f7f9; --card: #fff; --fg: #1b1f24; --muted: #5b6573; --line: #dde1e6;
  --ok: #1a7f37; --warn: #b7791f; --bad: #cf222e; --off: #6e7781; --accent: #0969da; }
@media (prefers-color-scheme: dark) { :root { --bg: #0d1117; --card: #161b22; --fg: #e6edf3; --muted: #8d96a0; --line: #30363d;
  --ok: #3fb950; --warn: #d29922; --bad: #f85149; --off: #8b949e; --accent: #58a6ff; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--fg); }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 12px; padding: 12px 20px; border-bottom: 1px solid var(--line); background: var(--card); }
header h1 { font-size: 16px; margin: 0 8px 0 0; }
main { padding: 16px 20px; max-width: 1200px; }
.pill { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 12px; font-weight: 600; border: 1px solid var(--line); }
.pill.ok { color: var(--ok); border-color: var(--ok); } .pill.warn { color: var(--warn); border-color: var(--warn); }
.pill.bad { color: var(--bad); border-color: var(--bad); } .pill.off { color: var(--off); }
.muted { color: var(--muted); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 12px; margin-bottom: 20px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.card .label { font-size: 12px; color: var(--muted); }
.card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .sub { font-size: 12px; color: var(--muted); font-variant-numeric: tabular-nums; }
svg.spark { display: block; width: 100%; height: 28px; margin-top: 4px; }
svg.spark polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; }
h2 { font-size: 14px; margin: 20px 0 8px; }
.region { margin-bottom: 14px; }
.region h3 { font-size: 13px; margin: 0 0 6px; font-weight: 600; }
table { width: 100%; table-layout: fixed; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); font-variant-numeric: tabular-nums; }
th { font-size: 12px; color: var(--muted); font-weight: 600; }
tr:last-child td { border-bottom: 0; }
th:nth-child(1) { width: 30%; } th:nth-child(2) { width: 22%; } th:nth-child(3) { width: 12%; }
td { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
td.num, th.num { text-align: right; }
.dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin-right: 6px; background: var(--off); }
.dot.alive { background: var(--ok); } .dot.suspect { background: var(--warn); } .dot.dead { background: var(--bad); }
.self { font-size: 11px; color: var(--accent); margin-left: 6px; }
dl { display: grid; grid-template-columns: auto auto; gap: 2px 12px; margin: 6px 0 0; font-size: 13px; }
dt { color: var(--muted); } dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
footer { padding: 8px 20px 20px; font-size: 12px; color: var(--muted); }
[hidden] { display: none !important; }
`

const SCRIPT = `
(() => {
  'use strict'
  const HISTORY = 60
  const KNOWN = { node: 1, requests: 1, cache: 1, store: 1 }
  const LABELS = { replication: 'Replication', hints: 'Hint queues', hintQueues: 'Hint queues', nearCache: 'Near-cache clients',
    watch: 'Watch streams (near-cache clients)', antiEntropy: 'Anti-entropy', cluster: 'Cluster' }
  const $ = (id) => document.getElementById(id)
  const el = (tag, cls, text) => {
    const e = document.createElement(tag)
    if (cls) e.className = cls
    if (text !== undefined) e.textContent = text
    return e
  }
  const history = { rps: [], hit: [] }
  let last = 0
  let interval = 1000

  const num = (x) => typeof x === 'number' && isFinite(x)
  const fmtRate = (x) => !num(x) ? '—' : x < 10 ? x.toFixed(1) : Math.round(x).toLocaleString('en-US')
  const fmtInt = (x) => !num(x) ? '—' : Math.round(x).toLocaleString('en-US')
  const fmtPct = (x) => !num(x) ? '—' : (x * 100).toFixed(1) + ' %'
  const fmtMs = (x) => !num(x) ? '—' : x.toFixed(1) + ' ms'
  const fmtPhi = (x) => !num(x) ? '—' : x.toFixed(2)
  const fmtUptime = (s) => {
    if (!num(s)) return '—'
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60
    return d > 0 ? d + 'd ' + h + 'h' : h > 0 ? h + 'h ' + m + 'm' : m + 'm ' + (s % 60) + 's'
  }
  const section = (stats, name) => stats && typeof stats[name] === 'object' && stats[name] !== null ? stats[name] : {}

  function setText(id, text) {
    const e = $(id)
    if (e.textContent !== text) e.textContent = text
  }

  function spark(id, values, max) {
    const svg = $(id)
    const line = svg.firstElementChild
    const top = Math.max(max === undefined ? 0 : max, ...values.filter(num), 1e-9)
    // Right-aligned: the newest value at the right edge, the history growing leftwards.
    const from = HISTORY - values.length
    const pts = values.map((v, i) => ((from + i) * 100 / (HISTORY - 1)).toFixed(1) + ',' + (num(v) ? (27 - v / top * 26).toFixed(1) : 27))
    line.setAttribute('points', pts.join(' '))
  }

  function push(list, v) {
    list.push(v)
    if (list.length > HISTORY) list.shift()
  }

  function pill(id, text, kind) {
    const e = $(id)
    e.textContent = text
    e.className = 'pill ' + kind
  }

  function renderCluster(view, standalone) {
    const state = view.state && view.state.state
    pill('state', state || 'unknown', state === 'ACTIVE' ? 'ok' : state === 'PASSIVE' ? 'bad' : 'warn')
    $('standalone').hidden = !standalone
    const counts = { alive: 0, suspect: 0, dead: 0, left: 0 }
    const box = $('regions')
    const seen = new Set()
    for (const r of view.regions || []) {
      seen.add(r.region)
      let div = box.querySelector('[data-region="' + CSS.escape(r.region) + '"]')
      if (!div) {
        div = el('div', 'region')
        div.dataset.region = r.region
        div.appendChild(el('h3'))
        const table = el('table')
        const head = el('tr')
        for (const [t, c] of [['Member', ''], ['Address', ''], ['Status', ''], ['phi', 'num'], ['RTT', 'num'], ['Incarnation', 'num']]) head.appendChild(el('th', c, t))
        table.appendChild(el('thead')).appendChild(head)
        table.appendChild(el('tbody'))
        div.appendChild(table)
        box.appendChild(div)
      }
      box.appendChild(div) // keeps the node's order: own region first, then by rank
      div.querySelector('h3').textContent = r.region + (r.region === view.region ? ' (this node\\'s region)' : ' · rank ' + r.rank) + ' · RTT ' + fmtMs(r.rttMs) + ' · ' + r.members.length + (r.members.length === 1 ? ' member' : ' members')
      const body = div.querySelector('tbody')
      const rows = []
      for (const m of r.members) {
        counts[m.status] = (counts[m.status] || 0) + 1
        const tr = el('tr')
        tr.dataset.member = m.id
        tr.dataset.status = m.status
        const name = el('td')
        name.appendChild(el('span', 'dot ' + m.status))
        name.appendChild(document.createTextNode(m.id))
        if (m.self) name.appendChild(el('span', 'self', 'this node'))
        tr.appendChild(name)
        tr.appendChild(el('td', 'muted', m.address || '—'))
        tr.appendChild(el('td', 'status', m.status))
        tr.appendChild(el('td', 'num phi', m.self ? '—' : fmtPhi(m.phi)))
        tr.appendChild(el('td', 'num rtt', m.self ? '—' : fmtMs(m.rttMs)))
        tr.appendChild(el('td', 'num', fmtInt(m.incarnation)))
        rows.push(tr)
      }
      body.replaceChildren(...rows)
    }
    for (const div of [...box.children]) if (!seen.has(div.dataset.region)) div.remove()
    setText('members-summary', counts.alive + ' alive · ' + counts.suspect + ' suspect · ' + counts.dead + ' dead · ' + counts.left + ' left')
  }

  function flatten(prefix, value, out) {
    if (out.length >= 40) return
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const k of Object.keys(value)) flatten(prefix ? prefix + '.' + k : k, value[k], out)
    } else if (Array.isArray(value)) {
      out.push([prefix, value.length + ' items'])
    } else if (typeof value === 'number') {
      out.push([prefix, Number.isInteger(value) ? fmtInt(value) : String(Math.round(value * 100) / 100)])
    } else if (typeof value === 'string' || typeof value === 'boolean') {
      out.push([prefix, String(value)])
    }
  }

  function renderExtras(stats) {
    const box = $('extras')
    const cards = []
    for (const name of Object.keys(stats || {})) {
      if (KNOWN[name]) continue
      const rows = []
      flatten('', stats[name], rows)
      if (rows.length === 0) continue
      const card = el('div', 'card')
      card.dataset.section = name
      card.appendChild(el('div', 'label', LABELS[name] || name))
      const dl = el('dl')
      for (const [k, v] of rows) {
        dl.appendChild(el('dt', '', k || name))
        dl.appendChild(el('dd', '', v))
      }
      card.appendChild(dl)
      cards.push(card)
    }
    box.replaceChildren(...cards)
    $('extras-title').hidden = cards.length === 0
  }

  function render(s) {
    last = Date.now()
    const node = section(s.stats, 'node'), req = section(s.stats, 'requests'), cache = section(s.stats, 'cache')
    setText('node-id', s.node.id)
    setText('node-region', 'region ' + s.node.region)
    const rates = s.rates
    if (rates) {
      interval = Math.max(250, Math.min(10000, rates.windowMs))
      push(history.rps, rates.requestsPerSec)
      push(history.hit, rates.hitRatio)
    }
    setText('fig-rps', rates ? fmtRate(rates.requestsPerSec) : '—')
    setText('fig-reads', rates ? fmtRate(rates.readsPerSec) + ' reads/s' : '— reads/s')
    setText('fig-hit', rates && rates.hitRatio !== null ? fmtPct(rates.hitRatio) : '—')
    setText('fig-hit-total', 'since start ' + fmtPct(s.hitRatioTotal))
    setText('fig-entries', fmtInt(cache.size))
    setText('fig-hits', fmtInt(cache.hits) + ' hits · ' + fmtInt(cache.misses) + ' misses')
    setText('fig-requests', fmtInt(req.total))
    setText('fig-errors', fmtInt(req.clientErrors) + ' 4xx · ' + fmtInt(req.serverErrors) + ' 5xx · ' + fmtInt(req.busy) + ' busy')
    setText('fig-conns', fmtInt(node.connections))
    setText('fig-inflight', fmtInt(node.inFlight) + ' in flight')
    setText('fig-uptime', fmtUptime(node.uptimeSeconds))
    setText('fig-store', 'store ' + (typeof s.stats.store === 'string' ? s.stats.store : '—'))
    spark('spark-rps', history.rps)
    spark('spark-hit', history.hit, 1)
    renderCluster(s.cluster, s.standalone)
    renderExtras(s.stats)
    pill('conn', node.draining ? 'draining' : 'live', node.draining ? 'warn' : 'ok')
    setText('updated', 'Updated ' + new Date(s.at).toLocaleTimeString() + ' · pushed by the node every ' + (interval / 1000).toFixed(1) + ' s')
  }

  function connect() {
    const source = new EventSource('v1/dashboard/events')
    source.addEventListener('snapshot', (e) => {
      try {
        render(JSON.parse(e.data))
      } catch (err) {
        setText('updated', 'Could not show a snapshot: ' + (err && err.message))
      }
    })
    source.addEventListener('error', () => {
      pill('conn', source.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting', 'bad')
      if (source.readyState === EventSource.CLOSED) setTimeout(() => { source.close(); connect() }, 5000)
    })
  }

  setInterval(() => {
    if (last > 0 && Date.now() - last > interval * 3 + 1000 && $('conn').textContent === 'live') pill('conn', 'stale', 'warn')
  }, 1000)
  connect()
})()
`

const BODY = `<header>
  <h1>stratacache</h1>
  <span id="node-id" class="muted">connecting…</span>
  <span id="node-region" class="muted"></span>
  <span>cluster state <span id="state" class="pill off">—</span></span>
  <span id="standalone" class="muted" hidden>one-node cluster (no seeds or discovery)</span>
  <span id="conn" class="pill off">connecting</span>
</header>
<main>
  <div class="grid">
    <div class="card"><div class="label">Ops / s (requests)</div><div class="value" id="fig-rps">—</div><div class="sub" id="fig-reads">— reads/s</div>
      <svg class="spark" id="spark-rps" viewBox="0 0 100 28" preserveAspectRatio="none"><polyline points=""/></svg></div>
    <div class="card"><div class="label">Hit ratio (last interval)</div><div class="value" id="fig-hit">—</div><div class="sub" id="fig-hit-total">since start —</div>
      <svg class="spark" id="spark-hit" viewBox="0 0 100 28" preserveAspectRatio="none"><polyline points=""/></svg></div>
    <div class="card"><div class="label">Entries</div><div class="value" id="fig-entries">—</div><div class="sub" id="fig-hits">—</div></div>
    <div class="card"><div class="label">Requests</div><div class="value" id="fig-requests">—</div><div class="sub" id="fig-errors">—</div></div>
    <div class="card"><div class="label">Connections</div><div class="value" id="fig-conns">—</div><div class="sub" id="fig-inflight">—</div></div>
    <div class="card"><div class="label">Uptime</div><div class="value" id="fig-uptime">—</div><div class="sub" id="fig-store">—</div></div>
  </div>
  <h2>Topology <span id="members-summary" class="muted"></span></h2>
  <div id="regions"></div>
  <h2 id="extras-title" hidden>More</h2>
  <div id="extras" class="grid"></div>
</main>
<footer id="updated">Waiting for the node…</footer>`

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`

/** The dashboard page: HTML, with its style and script inline. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>stratacache dashboard</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
${BODY}
<script>${SCRIPT}</script>
</body>
</html>
`

/**
 * Headers of the page: no caching (it names the node's members), a CSP that allows only
 * the inline style and script above (by hash) and connections to the same origin, no
 * framing, no MIME sniffing, no referrer.
 */
export const DASHBOARD_PAGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy': `default-src 'none'; script-src ${hash(SCRIPT)}; style-src ${hash(STYLE)}; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
})

/** The page's script alone (tests parse it). */
export const DASHBOARD_SCRIPT = SCRIPT
