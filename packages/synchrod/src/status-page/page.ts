/**
 * The status page: one self-contained HTML document (no build step, no external assets) that polls /status.json
 * and draws the numbers, tables and two small SVG charts. Values are written with textContent, never as HTML:
 * rule-failure texts and client platforms come from outside.
 */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Synchro status</title>
<link rel="icon" href="data:,">
<style>
  :root { font: 14px/1.4 system-ui, sans-serif; color: #1d2433; background: #f4f6fa; }
  body { margin: 0; padding: 20px 28px; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: #5b6478; margin: 0 0 8px; }
  .sub { color: #5b6478; margin-bottom: 16px; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 14px; }
  .card { background: #fff; border: 1px solid #dde2ec; border-radius: 8px; padding: 12px 14px; }
  .wide { grid-column: 1 / -1; }
  .big { font-size: 26px; font-weight: 600; }
  .kv { display: grid; grid-template-columns: auto 1fr; gap: 2px 12px; }
  .kv dt { color: #5b6478; } .kv dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid #eef1f6; }
  th { color: #5b6478; font-weight: 500; }
  .ok { color: #17803d; } .bad { color: #b42318; }
  svg { width: 100%; height: 120px; display: block; }
  .charts { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
  #error { color: #b42318; }
</style>
</head>
<body>
<h1>Synchro status</h1>
<div class="sub"><span id="database"></span> · updated <span id="updated">never</span> <span id="error"></span></div>
<div class="grid">
  <div class="card"><h2>Capture</h2><dl class="kv">
    <dt>Leader</dt><dd id="leader"></dd>
    <dt>Slot</dt><dd id="slot"></dd>
    <dt>Lag</dt><dd><span id="lag-bytes"></span> · <span id="lag-seconds"></span></dd>
    <dt>Stored position</dt><dd id="stored"></dd>
  </dl></div>
  <div class="card"><h2>Changelog</h2><dl class="kv">
    <dt>Head (seq)</dt><dd id="head"></dd>
    <dt>Rows</dt><dd id="rows"></dd>
    <dt>Size</dt><dd id="size"></dd>
    <dt>Compacted through</dt><dd id="compacted"></dd>
  </dl></div>
  <div class="card"><h2>Clients</h2>
    <div class="big" id="clients-total" data-testid="clients-total"></div>
    <dl class="kv">
      <dt>Active</dt><dd id="clients-active"></dd>
      <dt>Stale</dt><dd id="clients-stale"></dd>
      <dt>Deactivated</dt><dd id="clients-inactive"></dd>
    </dl>
  </div>
  <div class="card"><h2>Live streams · rule failures</h2><dl class="kv">
    <dt>Open live streams</dt><dd id="live"></dd>
    <dt>Rule failures</dt><dd id="failures"></dd>
    <dt>In the last day</dt><dd id="failures-day"></dd>
  </dl></div>
  <div class="card wide charts">
    <div><h2>Requests per second (this instance)</h2><svg id="chart-rps" role="img" aria-label="requests per second"></svg></div>
    <div><h2>Replication slot lag (bytes)</h2><svg id="chart-lag" role="img" aria-label="slot lag"></svg></div>
  </div>
  <div class="card wide"><h2>Requests by route (last minute, this instance)</h2>
    <table><thead><tr><th>Route</th><th>req/s</th><th>p50 ms</th><th>p95 ms</th><th>5xx</th><th>total</th></tr></thead>
    <tbody id="routes"></tbody></table></div>
  <div class="card wide"><h2>Clients by platform and app version</h2>
    <table><thead><tr><th>Platform</th><th>App version</th><th>Clients</th><th>Active</th></tr></thead>
    <tbody id="groups"></tbody></table></div>
  <div class="card wide"><h2>Recent rule failures</h2>
    <table><thead><tr><th>When</th><th>Table</th><th>Record</th><th>Error</th></tr></thead>
    <tbody id="recent-failures"></tbody></table></div>
</div>
<script>
(() => {
  const token = new URLSearchParams(location.search).get('token')
  const $ = (id) => document.getElementById(id)
  const set = (id, v) => { $(id).textContent = v === null || v === undefined ? '–' : String(v) }
  const bytes = (n) => n === null ? 'n/a' : n < 1024 ? n + ' B' : n < 1048576 ? (n / 1024).toFixed(1) + ' KiB'
    : (n / 1048576).toFixed(1) + ' MiB'
  const rows = (id, items, cells) => {
    const body = $(id)
    body.replaceChildren(...items.map((item) => {
      const tr = document.createElement('tr')
      for (const c of cells(item)) {
        const td = document.createElement('td')
        td.textContent = c === null || c === undefined ? '–' : String(c)
        tr.append(td)
      }
      return tr
    }))
  }
  const NS = 'http://www.w3.org/2000/svg'
  function chart(id, points, color) {
    const svg = $(id)
    const w = svg.clientWidth || 400, h = 120, pad = 22
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h)
    const known = points.filter((p) => p.v !== null)
    const max = Math.max(1, ...known.map((p) => p.v))
    const t0 = points.length ? points[0].t : 0, t1 = points.length ? points[points.length - 1].t : 1
    const x = (t) => pad + ((t - t0) / Math.max(1, t1 - t0)) * (w - pad - 4)
    const y = (v) => h - pad + 4 - (v / max) * (h - pad - 8)
    const el = (name, attrs, text) => {
      const e = document.createElementNS(NS, name)
      for (const k in attrs) e.setAttribute(k, attrs[k])
      if (text !== undefined) e.textContent = text
      return e
    }
    const parts = [
      el('line', { x1: pad, y1: y(0), x2: w - 4, y2: y(0), stroke: '#ccd3e0' }),
      el('text', { x: 2, y: 12, 'font-size': 10, fill: '#5b6478' }, max >= 1024 ? bytes(max) : String(+max.toFixed(2))),
      el('text', { x: 2, y: y(0), 'font-size': 10, fill: '#5b6478' }, '0'),
    ]
    let d = ''
    for (const p of points) {
      if (p.v === null) { d += ' '; continue }
      d += (d === '' || d.endsWith(' ') ? 'M' : 'L') + x(p.t).toFixed(1) + ',' + y(p.v).toFixed(1)
    }
    if (d.trim()) parts.push(el('path', { d: d.replace(/ +/g, ' ').trim(), fill: 'none', stroke: color, 'stroke-width': 2 }))
    if (!known.length) parts.push(el('text', { x: w / 2, y: h / 2, 'text-anchor': 'middle', fill: '#8a93a6' }, 'no data yet'))
    svg.replaceChildren(...parts)
  }
  function render(s) {
    const r = s.report
    set('database', r.database)
    const c = r.consumer
    set('leader', c.leader ? 'pid ' + c.leader.pid + (c.leader.clientAddr ? ' from ' + c.leader.clientAddr : '') : 'none')
    $('leader').className = c.leader ? 'ok' : 'bad'
    set('slot', r.slot.name + (r.slot.exists ? (r.slot.active ? ' (active)' : ' (inactive)') : ' (missing)'))
    set('lag-bytes', bytes(r.slot.lagBytes))
    set('lag-seconds', r.slot.lagSeconds === null ? 'n/a' : r.slot.lagSeconds.toFixed(1) + ' s')
    set('stored', c.storedLsn ? c.storedLsn + (c.storedAt ? ' at ' + c.storedAt : '') : 'none')
    set('head', r.changelog.maxSeq)
    set('rows', r.changelog.rows)
    set('size', bytes(r.changelog.sizeBytes))
    set('compacted', r.changelog.maxCompactedSeq)
    set('clients-total', r.clients.total)
    set('clients-active', r.clients.active)
    set('clients-stale', r.clients.stale)
    set('clients-inactive', r.clients.inactive)
    set('live', s.process.liveStreams)
    set('failures', r.ruleFailures.total)
    $('failures').className = r.ruleFailures.total ? 'bad' : 'ok'
    set('failures-day', r.ruleFailures.lastDay)
    rows('routes', s.process.routes, (x) => [x.route, x.perSecond, x.p50Ms, x.p95Ms, x.errors, x.total])
    rows('groups', r.clients.groups, (g) => [g.platform || '?', g.appVersion || '?', g.total, g.active])
    rows('recent-failures', r.ruleFailures.recent, (f) => [f.at, f.table, f.recordId, f.error])
    chart('chart-rps', s.history.map((p) => ({ t: p.t, v: p.requestsPerSecond })), '#2f6fdf')
    chart('chart-lag', s.history.map((p) => ({ t: p.t, v: p.lagBytes })), '#c2410c')
    set('updated', new Date(s.generatedAt).toLocaleTimeString())
  }
  async function refresh() {
    try {
      const res = await fetch('/status.json', { headers: token ? { authorization: 'Bearer ' + token } : {}, cache: 'no-store' })
      if (!res.ok) throw new Error('HTTP ' + res.status)
      render(await res.json())
      set('error', '')
      document.body.dataset.loaded = 'true'
    } catch (err) {
      set('error', '· ' + err.message)
    }
  }
  refresh()
  setInterval(refresh, 2000)
})()
</script>
</body>
</html>
`
