/**
 * Static files for `--web DIR` (the demo web app): read once at startup, served from memory. Only files that were
 * in the folder then can be served (no path from a request ever reaches the file system), so there is no traversal.
 */
import { readdir, readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { ConfigError } from '../options/index.js'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
}

/** Above this the folder is surely not a built web app (someone pointed --web at the wrong place). */
const MAX_BYTES = 64 * 1024 * 1024

async function walk(
  root: string,
  dir: string,
  out: Map<string, { body: Uint8Array<ArrayBuffer>; type: string }>,
  budget: { left: number },
): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) await walk(root, full, out, budget)
    else if (entry.isFile()) {
      const type = TYPES[path.extname(entry.name).toLowerCase()]
      if (!type) continue
      budget.left -= (await stat(full)).size
      if (budget.left < 0)
        throw new ConfigError(`--web ${root}: more than ${MAX_BYTES >> 20} MiB of files; is this a built web app?`)
      out.set(`/${path.relative(root, full).split(path.sep).join('/')}`, {
        body: new Uint8Array(await readFile(full)),
        type,
      })
    }
  }
}

/** Loads `dir` (it must hold an index.html) and returns a route for its files; fails loudly at startup otherwise. */
export async function staticFiles(
  dir: string,
  extra: Record<string, unknown> = {},
): Promise<(request: Request, path: string) => Promise<Response | undefined>> {
  const root = path.resolve(dir)
  const files = new Map<string, { body: Uint8Array<ArrayBuffer>; type: string }>()
  try {
    await walk(root, root, files, { left: MAX_BYTES })
  } catch (err) {
    if (err instanceof ConfigError) throw err
    throw new ConfigError(`--web ${dir}: cannot read the folder (${(err as Error).message})`)
  }
  if (!files.has('/index.html')) {
    throw new ConfigError(`--web ${dir}: no index.html in ${root} (build the web app first, e.g. npm run build:web)`)
  }
  // Settings the app reads at startup (e.g. how to sign in), from the daemon that serves it.
  const config = JSON.stringify(extra)
  return async (request, p) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return undefined
    if (p === '/web-config.json') {
      return new Response(config, { headers: { 'content-type': 'application/json', 'cache-control': 'no-store' } })
    }
    const file = files.get(p === '/' ? '/index.html' : p)
    if (!file) return undefined
    return new Response(request.method === 'HEAD' ? null : file.body, {
      headers: {
        'content-type': file.type,
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
      },
    })
  }
}
