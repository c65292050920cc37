/**
 * Builds the demo web app into a folder synchrod serves with `--web`: the React app, the database worker of
 * `@synchro/client/sqlite-wasm` as its own entry point, `sqlite3.wasm` next to it, index.html and the styles.
 * `npm start` runs it first; the browser tests call `buildWebDemo()` on a temporary folder.
 */
import { copyFile, mkdir } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)

/** Where `npm start` serves the app from. */
export const DEFAULT_OUT_DIR = path.join(here, 'dist/web')

export async function buildWebDemo(outDir: string = DEFAULT_OUT_DIR): Promise<string> {
  await mkdir(outDir, { recursive: true })
  await esbuild.build({
    entryPoints: {
      app: path.join(here, 'src/main.tsx'),
      // The client's database worker (workspace source; an app would use `@synchro/client/sqlite-wasm/worker`).
      worker: path.join(here, '../client/src/drivers/sqlite-wasm/worker.ts'),
    },
    outdir: outDir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    jsx: 'automatic',
    // The workspace packages' TypeScript sources, as everywhere in this repository.
    conditions: ['source'],
    define: { 'process.env.NODE_ENV': '"production"' },
    minify: true,
    sourcemap: true,
    logLevel: 'error',
  })
  const wasm = path.join(path.dirname(require.resolve('@sqlite.org/sqlite-wasm')), 'sqlite3.wasm')
  await copyFile(wasm, path.join(outDir, 'sqlite3.wasm'))
  await copyFile(path.join(here, 'src/index.html'), path.join(outDir, 'index.html'))
  await copyFile(path.join(here, 'src/styles.css'), path.join(outDir, 'styles.css'))
  return outDir
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildWebDemo(process.argv[2] ? path.resolve(process.argv[2]) : DEFAULT_OUT_DIR)
  process.stdout.write(`web demo built into ${path.relative(process.cwd(), out) || '.'}\n`)
}
