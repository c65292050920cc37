/**
 * The browser tests' web server: the test page and its bundles (built with esbuild the way an app would build
 * them: the worker as its own entry point, `sqlite3.wasm` next to it) and, on the same origin, the real sync
 * handler — so the page needs no CORS. `setSyncReachable(false)` makes `/sync/*` drop connections, like a server
 * that cannot be reached.
 */
import { existsSync, readFileSync } from 'node:fs'
import http from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { toNodeListener } from '@synchro/server/node'
import * as esbuild from 'esbuild'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
const WASM = path.join(path.dirname(require.resolve('@sqlite.org/sqlite-wasm')), 'sqlite3.wasm')

export interface TestWebServer {
  url: string
  setSyncReachable(up: boolean): void
  close(): Promise<void>
}

let bundles: Promise<Record<string, string>> | null = null

/** Builds the page and worker bundles once per test file. */
export function buildBundles(): Promise<Record<string, string>> {
  bundles ??= (async () => {
    const out: Record<string, string> = {}
    for (const [name, entry] of [
      ['page.js', path.join(here, 'page.ts')],
      ['worker.js', path.join(here, '../../src/drivers/sqlite-wasm/worker.ts')],
    ] as const) {
      const r = await esbuild.build({
        entryPoints: [entry],
        bundle: true,
        format: 'esm',
        platform: 'browser',
        target: 'es2022',
        conditions: ['source'],
        write: false,
        logLevel: 'error',
      })
      out[name] = r.outputFiles[0]!.text
    }
    return out
  })()
  return bundles
}

const PAGE =
  '<!doctype html><meta charset="utf-8"><title>synchro test</title><script type="module" src="/page.js"></script>'

const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
}

/** Serves the test page, or the files of `staticDir` (a built app) when given. */
export async function startWebServer(
  syncHandler?: (req: Request) => Promise<Response>,
  staticDir?: string,
): Promise<TestWebServer> {
  const files = staticDir ? {} : await buildBundles()
  const wasm = readFileSync(WASM)
  let reachable = true
  const sync = syncHandler ? toNodeListener(syncHandler) : null
  const sockets = new Set<import('node:net').Socket>()
  const server = http.createServer((req, res) => {
    const p = (req.url ?? '/').split('?')[0]!
    if (p.startsWith('/sync/') || p === '/healthz') {
      if (!reachable || !sync) {
        req.socket.destroy()
        return
      }
      void sync(req, res)
      return
    }
    const send = (type: string, body: string | Buffer) => {
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' })
      res.end(body)
    }
    if (staticDir) {
      const file = path.join(staticDir, p === '/' ? 'index.html' : path.normalize(p))
      if (!file.startsWith(staticDir) || !existsSync(file)) return void res.writeHead(404).end()
      return send(TYPES[path.extname(file)] ?? 'application/octet-stream', readFileSync(file))
    }
    if (p === '/' || p === '/index.html') return send('text/html', PAGE)
    if (p === '/sqlite3.wasm') return send('application/wasm', wasm)
    const js = files[p.slice(1)]
    if (js !== undefined) return send('text/javascript', js)
    res.writeHead(404).end()
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    setSyncReachable(up) {
      reachable = up
      // Drop open connections too (the live event stream), as a network outage would.
      if (!up) for (const s of sockets) s.destroy()
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  }
}
