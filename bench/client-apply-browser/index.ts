// Client apply in the browser: N pulled rows applied through the SDK's apply path on the sqlite-wasm driver
// (opfs-sahpool VFS in the SDK's worker, statements crossing postMessage) versus raw sqlite-wasm inserts of the
// same rows in one transaction on the same VFS, in the same Chromium page. Prints ours, raw and the ratio
// (target ≥ 0.5) and records `clientApplyBrowser` in bench/results/summary.json.
//
//   npm run bench -- client-apply-browser     (env CLIENT_APPLY_BROWSER_ROWS, default 50000; BENCH_QUICK=1 → 5k)
import { readFileSync } from 'node:fs'
import http from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { launchChromium } from '@synchro/test-harness/chromium'
import * as esbuild from 'esbuild'
import { APPLY_GROUP_ROWS } from '../../packages/client/src/sync/engine.js'
import { envInt, updateSummary, writeResult } from '../lib.js'

const ROWS = envInt('CLIENT_APPLY_BROWSER_ROWS', 50_000)
const PAGE = envInt('CLIENT_APPLY_PAGE', 1000, 1)
const RUNS = envInt('CLIENT_APPLY_RUNS', 5, 5)

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
const files: Record<string, string | Buffer> = {
  '/': '<!doctype html><meta charset="utf-8"><script type="module" src="/page.js"></script>',
  '/sqlite3.wasm': readFileSync(path.join(path.dirname(require.resolve('@sqlite.org/sqlite-wasm')), 'sqlite3.wasm')),
}
for (const [name, entry] of [
  ['/page.js', path.join(here, 'page.ts')],
  ['/raw-worker.js', path.join(here, 'raw-worker.ts')],
  ['/worker.js', path.join(here, '../../packages/client/src/drivers/sqlite-wasm/worker.ts')],
] as const) {
  const r = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['source'],
    minify: true,
    write: false,
    logLevel: 'error',
  })
  files[name] = r.outputFiles[0]!.text
}
const server = http.createServer((req, res) => {
  const body = files[(req.url ?? '/').split('?')[0]!]
  if (body === undefined) return void res.writeHead(404).end()
  const type = req.url?.endsWith('.wasm') ? 'application/wasm' : req.url === '/' ? 'text/html' : 'text/javascript'
  res.writeHead(200, { 'content-type': type }).end(body)
})
await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
const browser = await launchChromium()
try {
  const page = await browser.context.newPage()
  await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)
  await page.waitForFunction(() => 'bench' in window)
  const { oursMs, rawMs } = await page.evaluate(
    ([rows, pageSize, runs]) =>
      (
        window as unknown as {
          bench: (a: number, b: number, c: number) => Promise<{ oursMs: number[]; rawMs: number[] }>
        }
      ).bench(rows, pageSize, runs),
    [ROWS, PAGE, RUNS] as const,
  )
  const chromium = browser.context.browser()?.version() ?? 'unknown'
  // Best run of each side, as in bench/client-apply: other processes on a shared machine only ever add time.
  const o = Math.min(...oursMs)
  const r = Math.min(...rawMs)
  const result = {
    rows: ROWS,
    pageSize: PAGE,
    rowsPerTransaction: APPLY_GROUP_ROWS,
    runs: RUNS,
    chromium,
    vfs: 'opfs-sahpool',
    ours: { ms: Math.round(o), rowsPerSec: Math.round((ROWS / o) * 1000), allMs: oursMs.map(Math.round) },
    raw: { ms: Math.round(r), rowsPerSec: Math.round((ROWS / r) * 1000), allMs: rawMs.map(Math.round) },
    ratio: Number((r / o).toFixed(3)),
    target: 0.5,
  }
  console.log(`client-apply-browser: ${ROWS} rows in Chromium ${chromium} on OPFS, best of ${RUNS}`)
  console.log(`  ours  ${result.ours.ms} ms  (${result.ours.rowsPerSec} rows/s)`)
  console.log(`  raw   ${result.raw.ms} ms  (${result.raw.rowsPerSec} rows/s)`)
  console.log(`  ratio ${result.ratio} (target ≥ 0.5)`)
  console.log(`  → ${writeResult('client-apply-browser', result)}`)
  updateSummary('clientApplyBrowser', { ratio: result.ratio, rows: ROWS, oursMs: result.ours.ms, rawMs: result.raw.ms })
} finally {
  await browser.close()
  server.close()
}
