// Many tenants: one user's snapshot and catch-up pull in a table shared by many users, against the same user in a
// small table. Two databases built the same way (rows inserted in random user order, one changelog entry per row in
// its owner's bucket, the engine's (owner, id) index): "among" has USERS users and ≥ ROWS rows of Zipf-skewed sizes,
// "alone" has ALONE_ROWS rows; in both the measured user owns MINE rows.
// tenants.ratio = time(alone) ÷ time(among) for snapshot + pull (1 = the other users cost nothing; target ≥ 0.5).
// Env: BENCH_TENANTS_USERS (10 000), BENCH_TENANTS_ROWS (1 000 000), BENCH_TENANTS_ALONE (10 000), BENCH_TENANTS_MINE
// (1 000), BENCH_TENANTS_ROUNDS (5), BENCH_TENANTS_REPEAT (10 syncs per side per round); BENCH_QUICK=1 → ÷10 rows.

import { NORTHWIND_SQL, NORTHWIND_TABLES } from '@synchro/test-harness/northwind'
import type pg from 'pg'
import { createEngine, type Engine } from '../../packages/server/src/engine/engine.js'
import { runMigrations } from '../../packages/server/src/migrations/migrations.js'
import { Registry } from '../../packages/server/src/registry/registry.js'
import { type BenchDatabase, createBenchDatabase, envInt, handlerOptions, updateSummary, writeResult } from '../lib.js'

const USERS = envInt('BENCH_TENANTS_USERS', 10_000, 1)
const ROWS = envInt('BENCH_TENANTS_ROWS', 1_000_000)
const ALONE_ROWS = envInt('BENCH_TENANTS_ALONE', 10_000, 1)
const MINE = envInt('BENCH_TENANTS_MINE', 1_000, 1)
const ROUNDS = envInt('BENCH_TENANTS_ROUNDS', 5, 1)
const REPEAT = envInt('BENCH_TENANTS_REPEAT', 10, 1)
const PAGE = 1000
const TARGET = '7a000000-0000-4000-8000-000000000001'

interface Side {
  name: string
  bench: BenchDatabase
  engine: Engine
  rows: number
  pair: { v: number; h: string }
}

/**
 * `others` rows owned by `users` other users with Zipf sizes (user i gets ∝ 1/i, at least 1 row), plus MINE rows of
 * TARGET, inserted in random order (a user's rows are spread over the heap as they would be after months of use),
 * each with its changelog entry (insert, seq in the same random order).
 */
async function load(pool: pg.Pool, users: number, others: number): Promise<number> {
  await pool.query(NORTHWIND_SQL)
  await runMigrations(pool)
  const db = await pool.connect() // the TEMP tables live in one session
  try {
    return await loadOn(db, users, others)
  } finally {
    db.release()
  }
}

async function loadOn(pool: pg.PoolClient, users: number, others: number): Promise<number> {
  await pool.query(
    `CREATE TEMP TABLE _sizes AS
    WITH w AS (SELECT i, 1.0 / i AS w FROM generate_series(1, $1::int) i)
    SELECT i, GREATEST(1, ceil($2::numeric * w / sum(w) OVER ()))::int AS n FROM w`,
    [users, others],
  )
  await pool.query(
    `CREATE TEMP TABLE _rows AS
    SELECT ('7b000000-0000-4000-8000-' || lpad(s.i::text, 12, '0'))::uuid AS owner, g
      FROM _sizes s, generate_series(1, s.n) g
    UNION ALL SELECT $1::uuid, g FROM generate_series(1, $2::int) g`,
    [TARGET, MINE],
  )
  await pool.query(
    `CREATE TEMP TABLE _shuffled AS SELECT owner, g, gen_random_uuid() AS id FROM _rows ORDER BY random()`,
  )
  const { rows } = await pool.query<{ n: string }>('SELECT count(*)::text AS n FROM _shuffled')
  await pool.query(`INSERT INTO orders (id, user_id, status, required_date, preferred_ship_time, ship_address, metadata, total_cents)
    SELECT id, owner, 'processing', date '2026-03-01' + (g % 300), time '10:30:00', 'Street ' || g || ', Town',
           jsonb_build_object('n', g, 'tags', jsonb_build_array('a', 'b')), g * 100
      FROM _shuffled`)
  await pool.query(`INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation)
    SELECT 'user:' || owner, 'orders', id::text, 1 FROM _shuffled`)
  return Number(rows[0]?.n)
}

async function side(name: string, users: number, others: number): Promise<Side> {
  const bench = await createBenchDatabase(`tenants_${name}`)
  const t0 = performance.now()
  const rows = await load(bench.pool, users, others)
  const registry = new Registry()
  for (const t of NORTHWIND_TABLES) registry.register(t)
  // Created after the load: the engine builds the (owner, id) index over the whole table, as on an existing database.
  const engine = await createEngine({ pool: bench.pool, registry })
  await bench.pool.query('VACUUM ANALYZE orders')
  await bench.pool.query('VACUUM ANALYZE sync_changelog')
  const reg = await engine.register(TARGET, {
    client_id: 'bench-client',
    platform: 'bench',
    app_version: '1.0.0',
    schema_version: 0,
    schema_hash: '',
  })
  // The client completed a snapshot at 0: pulls from 0 are served.
  await bench.pool.query(`UPDATE sync_clients SET last_pull_seq = 0 WHERE client_id = 'bench-client'`)
  console.log(`${name}: ${rows} rows of ${users + 1} users loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  return { name, bench, engine, rows, pair: { v: reg.schema_version, h: reg.schema_hash } }
}

const base = (s: Side) => ({ client_id: 'bench-client', schema_version: s.pair.v, schema_hash: s.pair.h })

/** TARGET's whole snapshot (pages of 1000); returns seconds, checks the row count. */
async function snapshotOnce(s: Side): Promise<number> {
  let cursor: { checkpoint: number; table_idx: number; after_id: string } | undefined
  let records = 0
  const t0 = performance.now()
  for (;;) {
    const r = await s.engine.snapshot(TARGET, { ...base(s), cursor, limit: PAGE }, handlerOptions())
    records += r.records.filter((x) => x.table_name === 'orders').length
    if (!r.has_more) break
    cursor = r.cursor
  }
  const seconds = (performance.now() - t0) / 1000
  if (records !== MINE) throw new Error(`${s.name} snapshot: ${records} orders, expected ${MINE}`)
  return seconds
}

/** TARGET's catch-up pull from 0 to the end (pages of 1000); returns seconds, checks the change count. */
async function pullOnce(s: Side): Promise<number> {
  let checkpoint = 0
  let changes = 0
  const t0 = performance.now()
  for (;;) {
    const r = await s.engine.pull(TARGET, { ...base(s), checkpoint, limit: PAGE }, handlerOptions())
    changes += r.changes.length
    checkpoint = r.checkpoint
    if (!r.has_more) break
  }
  const seconds = (performance.now() - t0) / 1000
  if (changes !== MINE) throw new Error(`${s.name} pull: ${changes} changes, expected ${MINE}`)
  return seconds
}

async function timed(fn: () => Promise<number>): Promise<number> {
  let total = 0
  for (let i = 0; i < REPEAT; i++) total += await fn()
  return total / REPEAT
}

const among = await side('among', USERS - 1, ROWS - MINE)
const alone = await side('alone', Math.max(1, Math.round((USERS * ALONE_ROWS) / ROWS) - 1), ALONE_ROWS - MINE)
try {
  for (const s of [among, alone]) {
    await snapshotOnce(s) // warm: caches, prepared plans, the contract
    await pullOnce(s)
  }
  // Alternating sides inside each round: both see the same machine load (the box is shared).
  const rounds: {
    snapshot: { among: number; alone: number }
    pull: { among: number; alone: number }
    ratio: number
  }[] = []
  for (let i = 0; i < ROUNDS; i++) {
    const snapshot = { among: await timed(() => snapshotOnce(among)), alone: await timed(() => snapshotOnce(alone)) }
    const pull = { among: await timed(() => pullOnce(among)), alone: await timed(() => pullOnce(alone)) }
    const ratio = (snapshot.alone + pull.alone) / (snapshot.among + pull.among)
    rounds.push({ snapshot, pull, ratio })
    const ms = (x: number) => (x * 1000).toFixed(1)
    console.log(
      `round ${i + 1}: snapshot ${ms(snapshot.alone)} ms alone / ${ms(snapshot.among)} ms among, pull ${ms(pull.alone)} / ${ms(pull.among)} ms → ratio ${ratio.toFixed(2)}`,
    )
  }
  const median = [...rounds].sort((a, b) => a.ratio - b.ratio)[Math.floor(rounds.length / 2)]
  if (!median) throw new Error('no rounds')
  const summary = {
    ratio: Number(median.ratio.toFixed(3)),
    snapshotRatio: Number((median.snapshot.alone / median.snapshot.among).toFixed(3)),
    pullRatio: Number((median.pull.alone / median.pull.among).toFixed(3)),
    users: USERS,
    rows: among.rows,
    aloneRows: alone.rows,
    userRows: MINE,
    snapshotMs: { among: median.snapshot.among * 1000, alone: median.snapshot.alone * 1000 },
    pullMs: { among: median.pull.among * 1000, alone: median.pull.alone * 1000 },
  }
  const file = writeResult('tenants', { params: { USERS, ROWS, ALONE_ROWS, MINE, ROUNDS, REPEAT }, rounds, ...summary })
  updateSummary('tenants', summary)
  console.log(
    `tenants.ratio ${summary.ratio} (snapshot ${summary.snapshotRatio}, pull ${summary.pullRatio}; target ≥ 0.5) → ${file}`,
  )
} finally {
  await among.engine.close()
  await alone.engine.close()
  await among.bench.close()
  await alone.bench.close()
}
