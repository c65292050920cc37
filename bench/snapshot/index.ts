// Snapshot throughput and memory: N rows through engine.snapshot in pages of P (each page's response body rendered
// as the HTTP handler does) against a raw
// `COPY (SELECT … same rows …) TO STDOUT` received in this process (bytes discarded; no process start) in the same
// run; plus the peak RSS of a
// process that snapshots 100k vs 1M rows (each size in its own child process; memory must stay flat).
// Usage: npx tsx bench/snapshot/index.ts [rows,rows,...] [pageSize]
//        (env BENCH_SNAPSHOT_SIZES, default "100000,1000000"; BENCH_SNAPSHOT_PAGE, default 1000;
//         BENCH_SNAPSHOT_ROUNDS, default 3; BENCH_QUICK=1 → "10000,100000")
// Targets (docs/performance.md): ours ≥ 0.5 × raw COPY at 100k rows, ≥ 0.3 at 1M; peak RSS flat within 10 % between sizes.
import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { NORTHWIND_SQL, NORTHWIND_TABLES } from '@synchro/test-harness/northwind'
import type pg from 'pg'
import { createEngine, type Engine } from '../../packages/server/src/engine/engine.js'
import { renderJsonBytes } from '../../packages/server/src/pull/record.js'
import { Registry } from '../../packages/server/src/registry/registry.js'
import { snapshotRecordCount } from '../../packages/server/src/snapshot/records.js'
import { copyOut, createBenchDatabase, handlerOptions, updateSummary, writeResult } from '../lib.js'

interface ChildResult {
  rows: number
  pageSize: number
  ours: { rowsPerSecond: number; seconds: number; pages: number }
  raw: { rowsPerSecond: number; seconds: number; tool: string }
  /** Median over the rounds (ours vs raw alternating in one process). */
  ratio: number
  bestRatio: number
  roundRatios: number[]
  maxRssKiB: number
  rssBeforeKiB: number
}

/** Alternations of ours and raw per size (env BENCH_SNAPSHOT_ROUNDS, default 3). */
const ROUNDS = Math.max(1, Number.parseInt(process.env.BENCH_SNAPSHOT_ROUNDS ?? '3', 10))

/** N orders of one user with every column filled (server-side generate_series: loading costs no client memory). */
async function load(pool: pg.Pool, user: string, n: number): Promise<void> {
  for (let done = 0; done < n; done += 100_000) {
    const k = Math.min(100_000, n - done)
    await pool.query(
      `INSERT INTO orders (user_id, status, required_date, preferred_ship_time, ship_address, metadata, total_cents)
       SELECT $1::uuid, 'processing', date '2026-03-01' + (g % 300), time '10:30:00', 'Street ' || g || ', Town',
              jsonb_build_object('n', g, 'tags', jsonb_build_array('a', 'b')), g * 100
         FROM generate_series(1, $2::int) g`,
      [user, k],
    )
  }
  await pool.query('VACUUM ANALYZE orders')
}

async function ours(engine: Engine, user: string, clientId: string, pair: { v: number; h: string }, page: number) {
  let cursor: { checkpoint: number; table_idx: number; after_id: string } | undefined
  let rows = 0
  let pages = 0
  let bytes = 0
  const t0 = performance.now()
  for (;;) {
    const r = await engine.snapshot(
      user,
      {
        client_id: clientId,
        cursor,
        limit: page,
        schema_version: pair.v,
        schema_hash: pair.h,
      },
      handlerOptions(),
    )
    // What the handler sends for the page: the response body, UTF-8 (row data spliced, record.ts).
    bytes += renderJsonBytes(r).byteLength
    rows += snapshotRecordCount(r) // not r.records: the handler never builds them (snapshot/records.ts)
    pages++
    if (!r.has_more) break
    cursor = r.cursor
  }
  return { seconds: (performance.now() - t0) / 1000, rows, pages, bytes }
}

/** The same rows, raw: PostgreSQL's COPY text output of `SELECT *`, received in process and dropped. */
async function raw(pool: pg.Pool, user: string): Promise<{ seconds: number; rows: number }> {
  const db = await pool.connect()
  try {
    const sql = `COPY (SELECT * FROM orders WHERE deleted_at IS NULL AND user_id = ${db.escapeLiteral(user)} ORDER BY id) TO STDOUT`
    const t0 = performance.now()
    const r = await copyOut(db, sql)
    const seconds = (performance.now() - t0) / 1000
    return { seconds, rows: r.rows }
  } finally {
    db.release()
  }
}

async function child(rowsWanted: number, page: number): Promise<void> {
  const bench = await createBenchDatabase('snapshot')
  try {
    const { pool } = bench
    await pool.query(NORTHWIND_SQL)
    const registry = new Registry()
    for (const t of NORTHWIND_TABLES) registry.register(t)
    const engine = await createEngine({ pool, registry })
    const user = randomUUID()
    const clientId = 'bench-client'
    const reg = await engine.register(user, {
      client_id: clientId,
      platform: 'bench',
      app_version: '1.0.0',
      schema_version: 0,
      schema_hash: '',
    })
    await load(pool, user, rowsWanted)
    const pair = { v: reg.schema_version, h: reg.schema_hash }
    // One untimed COPY pulls the table into shared buffers: every timed run then reads warm pages. Then ROUNDS
    // alternations of ours and raw (this box is shared: alternating makes both sides see the same load); the
    // reported figures are those of the round with the median ratio, the best ratio is kept too.
    await raw(pool, user)
    const rssBeforeKiB = process.resourceUsage().maxRSS
    const rounds: {
      ours: { seconds: number; rows: number; pages: number }
      raw: { seconds: number }
      ratio: number
    }[] = []
    for (let i = 0; i < ROUNDS; i++) {
      const o = await ours(engine, user, clientId, pair, page)
      const r = await raw(pool, user)
      if (o.rows !== rowsWanted) throw new Error(`snapshot returned ${o.rows} rows, expected ${rowsWanted}`)
      if (r.rows !== rowsWanted) throw new Error(`raw COPY returned ${r.rows} rows, expected ${rowsWanted}`)
      rounds.push({ ours: o, raw: r, ratio: r.seconds / o.seconds })
    }
    const sorted = [...rounds].sort((a, b) => a.ratio - b.ratio)
    const median = sorted[Math.floor(sorted.length / 2)] as (typeof rounds)[number]
    const o = median.ours
    const r = median.raw
    const out: ChildResult = {
      rows: rowsWanted,
      pageSize: page,
      ours: { rowsPerSecond: Math.round(o.rows / o.seconds), seconds: o.seconds, pages: o.pages },
      raw: {
        rowsPerSecond: Math.round(rowsWanted / r.seconds),
        seconds: r.seconds,
        tool: 'COPY TO STDOUT, in process',
      },
      ratio: median.ratio,
      bestRatio: (sorted[sorted.length - 1] as (typeof rounds)[number]).ratio,
      roundRatios: rounds.map((x) => x.ratio),
      maxRssKiB: process.resourceUsage().maxRSS,
      rssBeforeKiB,
    }
    process.stdout.write(`RESULT ${JSON.stringify(out)}\n`)
    await engine.close()
  } finally {
    await bench.close()
  }
}

const args = process.argv.slice(2)
if (args[0] === '--child') {
  await child(Number(args[1]), Number(args[2]))
} else {
  const quick = process.env.BENCH_QUICK === '1'
  const sizes = (args[0] ?? process.env.BENCH_SNAPSHOT_SIZES ?? (quick ? '10000,100000' : '100000,1000000'))
    .split(',')
    .map((s) => Number.parseInt(s, 10))
  const page = Number.parseInt(args[1] ?? process.env.BENCH_SNAPSHOT_PAGE ?? '1000', 10)
  const results: ChildResult[] = []
  for (const n of sizes) {
    // A fresh process per size: maxRSS is a high-water mark, so sizes must not share one.
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--conditions=source', fileURLToPath(import.meta.url), '--child', String(n), String(page)],
      { stdio: ['ignore', 'pipe', 'inherit'], env: process.env, maxBuffer: 16 * 1024 * 1024 },
    )
    const line = r.stdout
      .toString()
      .split('\n')
      .find((l) => l.startsWith('RESULT '))
    if (r.status !== 0 || !line) throw new Error(`child for ${n} rows failed (status ${r.status})`)
    const res = JSON.parse(line.slice('RESULT '.length)) as ChildResult
    results.push(res)
    console.log(
      `${String(n).padStart(8)} rows: ours ${res.ours.rowsPerSecond} rows/s, raw COPY ${res.raw.rowsPerSecond} rows/s, ratio ${res.ratio.toFixed(2)} (median of ${res.roundRatios.map((x) => x.toFixed(2)).join(' ')}; best ${res.bestRatio.toFixed(2)}), peak RSS ${(res.maxRssKiB / 1024).toFixed(0)} MiB`,
    )
  }
  const first = results[0]
  const last = results[results.length - 1]
  const rssGrowth = first && last ? last.maxRssKiB / first.maxRssKiB - 1 : 0
  const ratio = first ? first.ratio : Number.NaN
  const file = writeResult('snapshot', {
    params: { sizes, pageSize: page, rounds: ROUNDS },
    results,
    ratio,
    targets: { ratio100k: 0.5, ratio1m: 0.3 },
    rss: { growth: rssGrowth, target: 0.1, flat: Math.abs(rssGrowth) <= 0.1 },
  })
  // Headline: the ratio at every size (ratio100k / ratio1m by name, the rest as ratio<rows>), and the targets.
  const bySize: { [key: string]: number } = {}
  for (const r of results) {
    const key = r.rows === 100_000 ? 'ratio100k' : r.rows === 1_000_000 ? 'ratio1m' : `ratio${r.rows}`
    bySize[key] = Number(r.ratio.toFixed(3))
  }
  updateSummary('snapshot', {
    ...bySize,
    secondsBySize: Object.fromEntries(results.map((r) => [r.rows, Number(r.ours.seconds.toFixed(3))])),
    peakRssMiBBySize: Object.fromEntries(results.map((r) => [r.rows, Math.round(r.maxRssKiB / 1024)])),
    targets: { ratio100k: 0.5, ratio1m: 0.3 },
  })
  if (first) {
    console.log(`ours  ${first.ours.rowsPerSecond} rows/s (engine.snapshot, ${first.rows} rows, pages of ${page})`)
    console.log(`raw   ${first.raw.rowsPerSecond} rows/s (COPY (SELECT …) TO STDOUT, in process)`)
    console.log(`ratios ${JSON.stringify(bySize)} (targets ≥ 0.5 at 100k, ≥ 0.3 at 1M)`)
  }
  console.log(
    `peak RSS ${results.map((r) => `${r.rows}: ${(r.maxRssKiB / 1024).toFixed(0)} MiB`).join(', ')} → growth ${(rssGrowth * 100).toFixed(1)} % (target ≤ 10 %)  → ${file}`,
  )
}
