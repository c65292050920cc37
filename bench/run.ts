// `npm run bench`: runs every benchmark in bench/ one after another, each in its own process, and prints a summary
// of the ratios they report. Sizes come from each benchmark's environment variables (see bench/README.md);
// BENCH_QUICK=1 shrinks them for a smoke run.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'

const here = path.dirname(fileURLToPath(import.meta.url))
const ORDER = [
  'wal',
  'push',
  'pull',
  'snapshot',
  'tenants',
  'client-apply',
  'client-apply-browser',
  'e2e',
  'fanout',
  'scale',
]
const only = process.argv.slice(2)
const names = ORDER.filter((n) => existsSync(path.join(here, n, 'index.ts'))).filter(
  (n) => only.length === 0 || only.includes(n),
)

/**
 * Before each benchmark: PostgreSQL's dirty pages written out (CHECKPOINT) and then the kernel's (sync), so that the
 * writes a benchmark leaves behind (the scale and tenants benchmarks load a million rows) are not flushed during the
 * next one's measurement — a checkpoint or writeback landing there slowed whichever side it met, e.g. SQLite's commits
 * in client-apply. Best effort: a database that cannot be reached (the benchmarks then start an embedded one) or a role
 * without the right to CHECKPOINT only skips that part.
 */
async function settle(): Promise<void> {
  const c = new pg.Client({
    connectionString: process.env.SYNCHRO_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    connectionTimeoutMillis: 2000,
  })
  try {
    await c.connect()
    await c.query('CHECKPOINT')
  } catch {
    // not reachable, or not allowed: nothing to flush from here
  } finally {
    await c.end().catch(() => {})
  }
  spawnSync('sync')
  await new Promise((resolve) => setTimeout(resolve, 1000))
}

const started = Date.now()
const summary: { name: string; ok: boolean; seconds: number; result?: unknown }[] = []
for (const name of names) {
  await settle()
  const t0 = Date.now()
  console.log(`\n=== bench/${name}`)
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--conditions=source', path.join(here, name, 'index.ts')], {
    stdio: 'inherit',
    env: process.env,
  })
  summary.push({ name, ok: r.status === 0, seconds: (Date.now() - t0) / 1000, result: latestResult(name, t0) })
}

console.log('\n=== summary')
for (const s of summary) {
  const ratio = findRatio(s.result)
  console.log(
    `${s.ok ? 'ok  ' : 'FAIL'} ${s.name.padEnd(14)} ${s.seconds.toFixed(1).padStart(6)} s${ratio === undefined ? '' : `  ratio ${ratio}`}`,
  )
}
console.log(`total ${((Date.now() - started) / 1000).toFixed(1)} s`)
// summary.json now holds these runs' headline numbers: the page's generated table follows it.
const report = spawnSync(process.execPath, ['--import', 'tsx', '--conditions=source', path.join(here, 'report.ts')], {
  stdio: 'inherit',
})
if (report.status !== 0) console.log('bench/report.ts failed: docs/performance.md not updated')
process.exit(summary.every((s) => s.ok) ? 0 : 1)

/** The newest bench/results/<name>-*.json written since `since`. */
function latestResult(name: string, since: number): unknown {
  const dir = path.join(here, 'results')
  if (!existsSync(dir)) return undefined
  const files = readdirSync(dir)
    .filter((f) => f.startsWith(`${name}-`) && f.endsWith('.json'))
    .map((f) => path.join(dir, f))
    .filter((f) => statSync(f).mtimeMs >= since)
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)
  return files[0] ? JSON.parse(readFileSync(files[0], 'utf8')) : undefined
}

/** Finds a `ratio` field anywhere in a result. */
function findRatio(x: unknown): string | undefined {
  if (!x || typeof x !== 'object') return undefined
  const o = x as Record<string, unknown>
  if (typeof o.ratio === 'number') return o.ratio.toFixed(2)
  for (const v of Object.values(o)) {
    const r = findRatio(v)
    if (r) return r
  }
  return undefined
}
