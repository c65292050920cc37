/**
 * Packaging: the Vite example (examples/browser-vite) is built the way an app would build it — against the
 * package's published entry points (dist/), with the SDK creating its worker and sqlite-wasm locating its .wasm —
 * then runs in Chromium against the real server. (esbuild's setup is what every other browser test uses: see
 * test/browser/server.ts.) Also prints the bundle sizes.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { launchChromium, type TestBrowser } from '@synchro/test-harness/chromium'
import { build } from 'vite'
import { afterAll, expect, it } from 'vitest'
import { type BrowserSyncServer, startBrowserSyncServer } from '../../../test/browser/sync-server.js'

const root = fileURLToPath(new URL('../../../../../', import.meta.url))
const example = path.join(root, 'examples/browser-vite')
const out = mkdtempSync(path.join(tmpdir(), 'synchro-vite-'))
let server: BrowserSyncServer | undefined
let browser: TestBrowser | undefined

afterAll(async () => {
  await browser?.close()
  await server?.close()
  rmSync(out, { recursive: true, force: true })
}, 60_000)

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f)
    return statSync(p).isDirectory() ? files(p) : [p]
  })
}

it('the Vite example builds from the published entry points and syncs in Chromium', async () => {
  // The package as published: dist/ (incremental, quick when `npm run typecheck` has run).
  execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-b', 'packages/client'], {
    cwd: root,
  })
  await build({ root: example, logLevel: 'warn', build: { outDir: out, emptyOutDir: true } })
  const built = files(out)
  const sizes = built.map((f) => {
    const b = readFileSync(f)
    return {
      file: path.relative(out, f),
      kB: +(b.length / 1024).toFixed(1),
      gzipKB: +(gzipSync(b).length / 1024).toFixed(1),
    }
  })
  console.log('vite build of examples/browser-vite:', sizes)
  expect(built.some((f) => f.endsWith('.wasm'))).toBe(true)
  expect(built.filter((f) => f.endsWith('.js')).length).toBeGreaterThanOrEqual(2) // app + database worker

  server = await startBrowserSyncServer('synchro_client_vite', out)
  browser = await launchChromium()
  const page = await browser.context.newPage()
  const user = crypto.randomUUID()
  await page.goto(`${server.web.url}/?user=${user}`)
  await page.waitForFunction(() => document.title.startsWith('synced '), undefined, { timeout: 60_000 })
  const [, id, pending] = /^synced (\S+) pending=(\d+)$/.exec(await page.title())!
  expect(pending).toBe('0')
  const { rows } = await server.db.pool.query('SELECT ship_address FROM orders WHERE id = $1 AND user_id = $2', [
    id,
    user,
  ])
  expect(rows).toEqual([{ ship_address: 'from vite' }])
}, 180_000)
