// Push throughput: N records in batches of B through engine.push (creates, then updates that win LWW), against a
// raw baseline doing the same writes with one multi-row INSERT … VALUES / UPDATE … FROM (VALUES …) per batch in a
// transaction. Prints ours, raw and ratio (= raw time / our time; target ≥ 0.3) and writes bench/results/push-*.json.
// Sizes: BENCH_PUSH_RECORDS (default 10 000), BENCH_PUSH_BATCH (default 100).
// Run: npx tsx bench/push/index.ts   (SYNCHRO_BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres)
import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import { createEngine, Registry } from '../../packages/server/src/index.js'
import { NORTHWIND_SQL, NORTHWIND_TABLES } from '../../test-harness/src/northwind.js'
import { createBenchDatabase, envInt, writeResult } from '../lib.js'

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
  const registry = new Registry()
  for (const t of NORTHWIND_TABLES) registry.register(t)
  const engine = await createEngine({ pool: db.pool, registry })
  const user = randomUUID()
  const reg = await engine.register(user, {
    client_id: 'bench',
    client_name: null,
    platform: 'bench',
    app_version: '1.0.0',
    schema_version: 0,
    schema_hash: '',
  } as Parameters<typeof engine.register>[1])
  const pair = { client_id: 'bench', schema_version: reg.schema_version, schema_hash: reg.schema_hash }

  const ids = Array.from({ length: RECORDS }, () => randomUUID())
  const batches: string[][] = []
  for (let i = 0; i < ids.length; i += BATCH) batches.push(ids.slice(i, i + BATCH))

  async function ours(op: 'create' | 'update', round: number, list: string[][]): Promise<number> {
    const t0 = performance.now()
    let n = 0
    for (const batch of list) {
      const future = new Date(Date.now() + 60_000).toISOString()
      const res = await engine.push(user, {
        ...pair,
        changes: batch.map((id, j) => ({
          id,
          table_name: 'orders',
          operation: op,
          data: makeRow(n + j, round),
          client_updated_at: future,
          base_updated_at: undefined,
        })),
      })
      if (res.accepted.length !== batch.length) {
        throw new Error(`push rejected ${res.rejected.length}: ${JSON.stringify(res.rejected[0])}`)
      }
      n += batch.length
    }
    return performance.now() - t0
  }

  async function raw(op: 'create' | 'update', round: number, list: string[][]): Promise<number> {
    const t0 = performance.now()
    let n = 0
    for (const batch of list) {
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
      n += batch.length
    }
    return performance.now() - t0
  }

  // Warm-up on separate ids (plans, prepared statements, caches), then the measured runs, ours and raw alternating.
  const warm = [Array.from({ length: BATCH }, () => randomUUID())]
  await ours('create', 0, warm)
  await ours('update', 1, warm)
  await raw('create', 0, warm)
  await raw('update', 1, warm)

  const oursCreate = await ours('create', 0, batches)
  const rawCreate = await raw('create', 0, batches)
  const oursUpdate = await ours('update', 1, batches)
  const rawUpdate = await raw('update', 1, batches)

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
    target: 0.3,
  }
  console.log(
    `push  create: ours ${result.create.oursPerSec}/s  raw ${result.create.rawPerSec}/s  ratio ${result.create.ratio}`,
  )
  console.log(
    `push  update: ours ${result.update.oursPerSec}/s  raw ${result.update.rawPerSec}/s  ratio ${result.update.ratio}`,
  )
  console.log(`push  overall ratio ${result.ratio} (target ≥ ${result.target})`)
  console.log(`wrote ${writeResult('push', result)}`)
  await engine.close()
} finally {
  await db.close()
}
