// Push throughput: N records in batches of B through engine.push (creates, then updates that win LWW), against a
// raw baseline doing the same writes with one multi-row INSERT … VALUES / UPDATE … FROM (VALUES …) per batch in a
// transaction, interleaved batch by batch with ours; both tables are ANALYZEd after loading. Prints ours, raw and
// ratio (= raw time / our time; target ≥ 0.6), writes bench/results/push-*.json and the `push` keys of summary.json.
// Sizes: BENCH_PUSH_RECORDS (default 10 000), BENCH_PUSH_BATCH (default 100).
// Run: npx tsx bench/push/index.ts   (SYNCHRO_BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres)
import { randomUUID } from 'node:crypto'
import { NORTHWIND_SQL, NORTHWIND_TABLES } from '@synchro/test-harness/northwind'
import type pg from 'pg'
import { createEngine, Registry } from '../../packages/server/src/index.js'
import { createBenchDatabase, envInt, handlerOptions, updateSummary, writeResult } from '../lib.js'

const RECORDS = envInt('BENCH_PUSH_RECORDS', 10_000)
const BATCH = envInt('BENCH_PUSH_BATCH', 100, 1)
const STATUSES = ['pending', 'processing', 'shipped', 'delivered', 'cancelled'] as const

interface Row {
  id: string
  status: string
  ship_address: string
  metadata: { [k: string]: unknown }
  total_cents: number
  required_date: string
}

function makeRow(i: number, round: number): Omit<Row, 'id'> {
  return {
    status: STATUSES[(i + round) % STATUSES.length] as string,
    ship_address: `${i} Bench Street, round ${round}`,
    metadata: { round, tags: ['a', 'b'], n: i },
    total_cents: i * 100 + round,
    required_date: `2026-0${1 + (i % 9)}-1${i % 10}`,
  }
}

const db = await createBenchDatabase('bench_push')
try {
  await db.pool.query(NORTHWIND_SQL)
  await db.pool.query('CREATE TABLE orders_raw (LIKE orders INCLUDING ALL)')
  // LIKE does not copy the replica identity: give the raw table ours (FULL on the demo schema), so that an update
  // writes the same WAL on both sides (wal_level = logical logs the whole old row under FULL).
  await db.pool.query(`DO $$ BEGIN
    IF (SELECT relreplident FROM pg_class WHERE oid = 'orders'::regclass) = 'f' THEN
      ALTER TABLE orders_raw REPLICA IDENTITY FULL;
    END IF; END $$`)
  const registry = new Registry()
  for (const t of NORTHWIND_TABLES) registry.register(t)
  const engine = await createEngine({ pool: db.pool, registry })
  const user = randomUUID()
  const reg = await engine.register(user, {
    client_id: 'bench',
    platform: 'bench',
    app_version: '1.0.0',
    schema_version: 0,
    schema_hash: '',
  } as Parameters<typeof engine.register>[1])
  const pair = { client_id: 'bench', schema_version: reg.schema_version, schema_hash: reg.schema_hash }

  const ids = Array.from({ length: RECORDS }, () => randomUUID())
  const batches: string[][] = []
  for (let i = 0; i < ids.length; i += BATCH) batches.push(ids.slice(i, i + BATCH))

  /** One batch through engine.push; returns its time in ms. */
  async function oursBatch(op: 'create' | 'update', round: number, batch: string[], n: number): Promise<number> {
    const t0 = performance.now()
    const future = new Date(Date.now() + 60_000).toISOString()
    const res = await engine.push(
      user,
      {
        ...pair,
        changes: batch.map((id, j) => ({
          id,
          table_name: 'orders',
          operation: op,
          data: makeRow(n + j, round),
          client_updated_at: future,
          base_updated_at: undefined,
        })),
      },
      handlerOptions(),
    )
    const ms = performance.now() - t0
    if (res.accepted.length !== batch.length) {
      throw new Error(`push rejected ${res.rejected.length}: ${JSON.stringify(res.rejected[0])}`)
    }
    return ms
  }

  /** The same batch as one multi-row statement in a transaction; returns its time in ms. */
  async function rawBatch(op: 'create' | 'update', round: number, batch: string[], n: number): Promise<number> {
    const t0 = performance.now()
    const c: pg.PoolClient = await db.pool.connect()
    try {
      await c.query('BEGIN')
      const values: unknown[] = []
      const tuples = batch.map((id, j) => {
        const r = makeRow(n + j, round)
        const b = values.length
        values.push(id, user, r.status, r.ship_address, JSON.stringify(r.metadata), r.total_cents, r.required_date)
        return `($${b + 1}::uuid, $${b + 2}::uuid, $${b + 3}::order_status, $${b + 4}::text, $${b + 5}::jsonb, $${b + 6}::bigint, $${b + 7}::date)`
      })
      if (op === 'create') {
        await c.query(
          `INSERT INTO orders_raw (id, user_id, status, ship_address, metadata, total_cents, required_date)
           VALUES ${tuples.join(', ')}`,
          values,
        )
      } else {
        await c.query(
          `UPDATE orders_raw t SET status = v.status, ship_address = v.ship_address, metadata = v.metadata,
                  total_cents = v.total_cents, required_date = v.required_date, updated_at = clock_timestamp()
             FROM (VALUES ${tuples.join(', ')}) AS v(id, user_id, status, ship_address, metadata, total_cents, required_date)
            WHERE t.id = v.id`,
          values,
        )
      }
      await c.query('COMMIT')
    } finally {
      c.release()
    }
    return performance.now() - t0
  }

  /**
   * All batches of one phase, ours and raw interleaved batch by batch (alternating which goes first), so that
   * the load of a shared machine falls on both sides alike. Returns the summed times.
   */
  async function phase(op: 'create' | 'update', round: number, list: string[][]): Promise<[number, number]> {
    let oursMs = 0
    let rawMs = 0
    let n = 0
    for (const [i, batch] of list.entries()) {
      if (i % 2 === 0) {
        oursMs += await oursBatch(op, round, batch, n)
        rawMs += await rawBatch(op, round, batch, n)
      } else {
        rawMs += await rawBatch(op, round, batch, n)
        oursMs += await oursBatch(op, round, batch, n)
      }
      n += batch.length
    }
    return [oursMs, rawMs]
  }

  // Warm-up on separate ids (plans, prepared statements, caches), then the measured phases.
  const warm = [Array.from({ length: BATCH }, () => randomUUID())]
  await phase('create', 0, warm)
  await phase('update', 1, warm)
  // Planner statistics as a live server has them (autovacuum would analyse a table this size soon enough); both
  // sides alike. Without them the fresh tables are seq-scanned.
  const analyze = () => db.pool.query('ANALYZE orders; ANALYZE orders_raw')
  await analyze()

  const [oursCreate, rawCreate] = await phase('create', 0, batches)
  await analyze()
  const [oursUpdate, rawUpdate] = await phase('update', 1, batches)

  const rate = (ms: number) => Math.round((RECORDS / ms) * 1000)
  const result = {
    records: RECORDS,
    batch: BATCH,
    create: {
      oursMs: Math.round(oursCreate),
      rawMs: Math.round(rawCreate),
      oursPerSec: rate(oursCreate),
      rawPerSec: rate(rawCreate),
      ratio: Number((rawCreate / oursCreate).toFixed(3)),
    },
    update: {
      oursMs: Math.round(oursUpdate),
      rawMs: Math.round(rawUpdate),
      oursPerSec: rate(oursUpdate),
      rawPerSec: rate(rawUpdate),
      ratio: Number((rawUpdate / oursUpdate).toFixed(3)),
    },
    ratio: Number(((rawCreate + rawUpdate) / (oursCreate + oursUpdate)).toFixed(3)),
    target: 0.6,
  }
  console.log(
    `push  create: ours ${result.create.oursPerSec}/s  raw ${result.create.rawPerSec}/s  ratio ${result.create.ratio}`,
  )
  console.log(
    `push  update: ours ${result.update.oursPerSec}/s  raw ${result.update.rawPerSec}/s  ratio ${result.update.ratio}`,
  )
  console.log(`push  overall ratio ${result.ratio} (target ≥ ${result.target})`)
  console.log(`wrote ${writeResult('push', result)}`)
  updateSummary('push', {
    ratio: result.ratio,
    createRatio: result.create.ratio,
    updateRatio: result.update.ratio,
    records: RECORDS,
    batch: BATCH,
  })
  await engine.close()
} finally {
  await db.close()
}
