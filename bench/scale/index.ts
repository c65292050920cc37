// Scale curves: pull catch-up and snapshot cost at 10k / 100k / 1M rows — seconds, rows/s and the peak RSS of the
// process doing it (each size in its own child process, measured by /usr/bin/time, so high-water marks don't mix) —
// and many tenants: a 1 000-row user's snapshot + pull in a table of that many rows shared by rows/100 users.
// The children's own headline numbers stay out of bench/results/summary.json (BENCH_SUMMARY=off).
// Env BENCH_SCALE_SIZES (default "10000,100000,1000000"; BENCH_QUICK=1 → "10000,100000").
// Then one big transaction (big-transaction.ts): a single UPDATE of BENCH_BIGTXN_ROWS rows (default 1 000 000)
// through the WAL consumer — seconds and the consumer's peak RSS (summary key `bigTransaction`).
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { envInt, updateSummary, writeResult } from '../lib.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const sizes = (
  process.env.BENCH_SCALE_SIZES ?? (process.env.BENCH_QUICK === '1' ? '10000,100000' : '10000,100000,1000000')
)
  .split(',')
  .map((s) => Number.parseInt(s, 10))

interface Point {
  rows: number
  seconds: number
  rowsPerSecond: number
  peakRssMiB: number
  ratio: number | undefined
}

/** Runs one benchmark child under /usr/bin/time; returns its newest result file and its peak RSS. */
function run(
  bench: string,
  args: string[],
  env: Record<string, string>,
): { result: Record<string, unknown>; peakRssMiB: number } {
  const since = Date.now()
  const r = spawnSync(
    '/usr/bin/time',
    [
      '-f',
      'MAXRSS_KIB=%M',
      process.execPath,
      '--import',
      'tsx',
      '--conditions=source',
      path.join(here, '..', bench, 'index.ts'),
      ...args,
    ],
    { env: { ...process.env, BENCH_SUMMARY: 'off', ...env }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  )
  process.stdout.write(r.stdout)
  if (r.status !== 0) throw new Error(`${bench} failed: ${r.stderr}`)
  const rss = /MAXRSS_KIB=(\d+)/.exec(r.stderr)
  const dir = path.join(here, '..', 'results')
  const file = readdirSync(dir)
    .filter((f) => f.startsWith(`${bench}-`) && statSync(path.join(dir, f)).mtimeMs >= since)
    .sort()
    .pop()
  if (!file || !existsSync(path.join(dir, file))) throw new Error(`${bench} wrote no result`)
  return {
    result: JSON.parse(readFileSync(path.join(dir, file), 'utf8')),
    peakRssMiB: Math.round(Number(rss?.[1] ?? 0) / 1024),
  }
}

const pull: Point[] = []
const snapshot: Point[] = []
const tenants: (Point & { users: number })[] = []
for (const n of sizes) {
  const p = run('pull', [String(n), '1000'], { BENCH_PULL_ROUNDS: '1' })
  const ours = p.result.ours as { recordsPerSecond: number; seconds: number }
  pull.push({
    rows: n,
    seconds: ours.seconds,
    rowsPerSecond: ours.recordsPerSecond,
    peakRssMiB: p.peakRssMiB,
    ratio: p.result.ratio as number,
  })
  const s = run('snapshot', [String(n), '1000'], {})
  const sizesOut = (s.result.sizes ?? s.result.results ?? []) as {
    rows: number
    ours: { rowsPerSecond: number; seconds: number }
    ratio: number
    maxRssKiB: number
  }[]
  const point = Array.isArray(sizesOut) ? sizesOut.find((x) => x.rows === n) : undefined
  snapshot.push({
    rows: n,
    seconds: point?.ours.seconds ?? Number.NaN,
    rowsPerSecond: point?.ours.rowsPerSecond ?? Number.NaN,
    peakRssMiB: point ? Math.round(point.maxRssKiB / 1024) : s.peakRssMiB,
    ratio: point?.ratio,
  })
}

// Tenants: seconds = one snapshot + one catch-up pull of the 1 000-row user among the others; ratio = alone ÷ among.
for (const n of sizes) {
  const users = Math.max(100, Math.round(n / 100))
  const t = run('tenants', [], {
    BENCH_TENANTS_ROWS: String(n),
    BENCH_TENANTS_USERS: String(users),
    BENCH_TENANTS_ROUNDS: '1',
    BENCH_TENANTS_REPEAT: '3',
  })
  const ms = t.result as { snapshotMs: { among: number }; pullMs: { among: number }; rows: number; ratio: number }
  const seconds = (ms.snapshotMs.among + ms.pullMs.among) / 1000
  tenants.push({
    rows: ms.rows,
    users,
    seconds,
    rowsPerSecond: 2000 / seconds,
    peakRssMiB: t.peakRssMiB,
    ratio: ms.ratio,
  })
}

const table = (name: string, pts: Point[]) => {
  console.log(`\n${name}`)
  console.log('rows        seconds   rows/s     peak RSS   ratio')
  for (const p of pts) {
    console.log(
      `${String(p.rows).padEnd(11)} ${p.seconds.toFixed(2).padStart(7)}  ${String(Math.round(p.rowsPerSecond)).padStart(8)}  ${String(p.peakRssMiB).padStart(6)} MiB   ${p.ratio?.toFixed(2) ?? '-'}`,
    )
  }
}
table('pull catch-up (pages of 1000)', pull)
table('snapshot (pages of 1000)', snapshot)
table(
  'tenants: a 1 000-row user among rows/100 users (snapshot + pull; rows/s of that user; ratio alone ÷ among)',
  tenants,
)
const bigTransaction = runBigTransaction(envInt('BENCH_BIGTXN_ROWS', 1_000_000))
console.log(
  `\nbig transaction: ${bigTransaction.rows} rows in one UPDATE, captured ${bigTransaction.secondsAfterCommit} s after COMMIT, consumer peak RSS ${bigTransaction.consumerPeakRssMiB} MiB (target < 300)`,
)
updateSummary('bigTransaction', bigTransaction)
const file = writeResult('scale', { sizes, pull, snapshot, tenants, bigTransaction })
console.log(`\nwrote ${file}`)

/** Runs big-transaction.ts in its own process (its peak RSS is the consumer's alone) and parses its result line. */
function runBigTransaction(rows: number): {
  rows: number
  consumerPeakRssMiB: number
  secondsAfterCommit: number
  pgVersion: string
} {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--conditions=source', path.join(here, 'big-transaction.ts'), String(rows)],
    { env: process.env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  )
  const line = /^BIGTXN (.*)$/m.exec(r.stdout)
  if (r.status !== 0 || !line) throw new Error(`big-transaction failed: ${r.stderr}`)
  return JSON.parse(line[1] as string)
}
