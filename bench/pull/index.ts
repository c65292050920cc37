// Pull catch-up throughput: a client catching up on N changes through engine.pull, each page's response body rendered
// as the HTTP handler does (pages of P entries: changelog page
// query, dedup, one hydration query per table rendering JSON in PostgreSQL, checkpoint advance) against a raw keyset
// SELECT of the same rows with the same page size (`SELECT * FROM orders WHERE id > $1 ORDER BY id LIMIT P`).
// The engine reads each next page ahead (pull/ahead.ts) while the caller handles the current one. So that this
// background read never runs next to the raw side's timed statements, a round times one whole catch-up of each side
// (which goes first alternates between rounds); the ratio is the median of the rounds'.
// Usage: npx tsx bench/pull/index.ts [changes] [pageSize]
//        (env BENCH_PULL_CHANGES, default 100 000; BENCH_PULL_PAGE, default 1000; BENCH_QUICK=1 → 10 000 changes)
// Target (docs/performance.md): ours ≥ 0.5 × raw.
import { randomUUID } from 'node:crypto'
import { NORTHWIND_SQL, NORTHWIND_TABLES } from '@synchro/test-harness/northwind'
import type pg from 'pg'
import { createEngine, type Engine } from '../../packages/server/src/engine/engine.js'
import { renderJsonBytes } from '../../packages/server/src/pull/record.js'
import { Registry } from '../../packages/server/src/registry/registry.js'
import { createBenchDatabase, envInt, handlerOptions, updateSummary, writeResult } from '../lib.js'

const changes = process.argv[2] ? Number.parseInt(process.argv[2], 10) : envInt('BENCH_PULL_CHANGES', 100_000)
const page = process.argv[3] ? Number.parseInt(process.argv[3], 10) : envInt('BENCH_PULL_PAGE', 1000, 1)
const ROUNDS = envInt('BENCH_PULL_ROUNDS', 5, 1)

/** N orders of one user with every column filled, and one changelog entry (op 1) per order in the user's bucket. */
async function load(pool: pg.Pool, user: string, n: number): Promise<void> {
  for (let done = 0; done < n; done += 50_000) {
    const k = Math.min(50_000, n - done)
    await pool.query(
      `WITH o AS (
         INSERT INTO orders (user_id, status, required_date, preferred_ship_time, ship_address, metadata, total_cents)
         SELECT $1::uuid, 'processing', date '2026-03-01' + (g % 300), time '10:30:00', 'Street ' || g || ', Town',
                jsonb_build_object('n', g, 'tags', jsonb_build_array('a', 'b')), g * 100
           FROM generate_series(1, $2::int) g
         RETURNING id)
       INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation)
       SELECT 'user:' || $1, 'orders', id::text, 1 FROM o`,
      [user, k],
    )
  }
  await pool.query('VACUUM ANALYZE orders')
  await pool.query('VACUUM ANALYZE sync_changelog')
}

interface Totals {
  seconds: number
  records: number
  pages: number
}

/** One whole catch-up through engine.pull (no other work runs while it is timed). */
async function oursCatchUp(
  engine: Engine,
  user: string,
  clientId: string,
  pair: { v: number; h: string },
): Promise<Totals> {
  const ours: Totals = { seconds: 0, records: 0, pages: 0 }
  let checkpoint = 0
  const t0 = performance.now()
  for (;;) {
    const r = await engine.pull(
      user,
      { client_id: clientId, checkpoint, limit: page, schema_version: pair.v, schema_hash: pair.h },
      handlerOptions(),
    )
    // What the handler sends for the page: the response body, UTF-8 (row data spliced, record.ts).
    renderJsonBytes(r)
    ours.records += r.changes.length
    ours.pages++
    checkpoint = r.checkpoint
    if (!r.has_more) break
  }
  ours.seconds = (performance.now() - t0) / 1000
  return ours
}

/** The same rows, raw: keyset pages of `SELECT *`. */
async function rawCatchUp(pool: pg.Pool): Promise<Totals> {
  const raw: Totals = { seconds: 0, records: 0, pages: 0 }
  const db = await pool.connect()
  try {
    let after = '00000000-0000-0000-0000-000000000000'
    const t0 = performance.now()
    for (;;) {
      const { rows } = await db.query<{ id: string }>('SELECT * FROM orders WHERE id > $1 ORDER BY id LIMIT $2', [
        after,
        page,
      ])
      raw.records += rows.length
      raw.pages++
      const last = rows[rows.length - 1]
      if (!last || rows.length < page) break
      after = last.id
    }
    raw.seconds = (performance.now() - t0) / 1000
  } finally {
    db.release()
  }
  return raw
}

/** One round: a whole catch-up of each side, `oursFirst` deciding the order. */
async function round(
  engine: Engine,
  pool: pg.Pool,
  user: string,
  clientId: string,
  pair: { v: number; h: string },
  oursFirst: boolean,
): Promise<{ ours: Totals; raw: Totals }> {
  if (oursFirst) {
    const ours = await oursCatchUp(engine, user, clientId, pair)
    return { ours, raw: await rawCatchUp(pool) }
  }
  const raw = await rawCatchUp(pool)
  return { ours: await oursCatchUp(engine, user, clientId, pair), raw }
}

const bench = await createBenchDatabase('pull')
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
  const pair = { v: reg.schema_version, h: reg.schema_hash }
  // The client completed its (empty) snapshot: pulls from 0 are served.
  await pool.query('UPDATE sync_clients SET last_pull_seq = 0 WHERE client_id = $1', [clientId])
  const tLoad = performance.now()
  await load(pool, user, changes)
  console.log(`loaded ${changes} orders + changelog entries in ${((performance.now() - tLoad) / 1000).toFixed(1)} s`)

  // Several rounds; the reported ratio is the median of the per-round ratios (robust to a noisy neighbour).
  const rounds: { ours: Totals; raw: Totals; ratio: number }[] = []
  for (let i = 0; i < ROUNDS; i++) {
    const r = await round(engine, pool, user, clientId, pair, i % 2 === 0)
    if (r.ours.records !== changes || r.raw.records !== changes) {
      throw new Error(`record count mismatch: ours ${r.ours.records}, raw ${r.raw.records}, expected ${changes}`)
    }
    const ratio = r.ours.records / r.ours.seconds / (r.raw.records / r.raw.seconds)
    rounds.push({ ...r, ratio })
    console.log(
      `round ${i + 1}: ours ${(r.ours.records / r.ours.seconds).toFixed(0)} rec/s, raw ${(r.raw.records / r.raw.seconds).toFixed(0)} rec/s, ratio ${ratio.toFixed(2)}`,
    )
  }
  const median = [...rounds].sort((a, b) => a.ratio - b.ratio)[Math.floor(rounds.length / 2)]
  if (!median) throw new Error('no rounds')
  const oursRate = median.ours.records / median.ours.seconds
  const rawRate = median.raw.records / median.raw.seconds
  const ratio = median.ratio
  const file = writeResult('pull', {
    params: { changes, pageSize: page, rounds: ROUNDS },
    ours: { recordsPerSecond: Math.round(oursRate), seconds: median.ours.seconds, pages: median.ours.pages },
    raw: { recordsPerSecond: Math.round(rawRate), seconds: median.raw.seconds, pages: median.raw.pages },
    rounds: rounds.map((r) => ({ ours: r.ours, raw: r.raw, ratio: r.ratio })),
    ratio,
    target: 0.5,
  })
  updateSummary('pull', {
    ratio: Number(ratio.toFixed(3)),
    changes,
    recordsPerSecond: Math.round(oursRate),
    target: 0.5,
  })
  console.log(`ours  ${oursRate.toFixed(0)} records/s (engine.pull, pages of ${page})`)
  console.log(`raw   ${rawRate.toFixed(0)} records/s (keyset SELECT *, pages of ${page})`)
  console.log(`ratio ${ratio.toFixed(2)} (target ≥ 0.5)  → ${file}`)
  await engine.close()
} finally {
  await bench.close()
}
