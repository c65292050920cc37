import { randomUUID } from 'node:crypto'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { readChangelog, setupNorthwind, waitFor } from '@synchro/test-harness/wal-fixtures'
import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Registry } from '../registry/registry.js'
import { lsnToBigint, startWalConsumer, type WalConsumer } from './index.js'

// Relation messages describe a table's columns from where they arrive on. A transaction kept in a spill file is
// decoded when the writer reads it, later than it arrived: it must be decoded with the relations it was sent with.

let db: TestDatabase
let registry: Registry
let consumer: WalConsumer
const errors: Error[] = []
const q = (text: string, params: unknown[] = []) => db.pool.query(text, params)

beforeAll(async () => {
  db = await createTestDatabase()
  registry = await setupNorthwind(db.pool)
  consumer = startWalConsumer({
    pool: db.pool,
    registry,
    replicationUrl: db.url,
    slotName: db.name,
    statusIntervalMs: 200,
    leaderRetryMs: 100,
    // A transaction of more changes than this is kept in a spill file (not streamed: far below 64MB).
    batchMaxEvents: 50,
    onError: (e) => errors.push(e),
  })
  await waitFor(async () => (consumer.status().running ? true : undefined), 20_000, 'consumer running')
})

afterAll(async () => {
  await consumer?.stop()
  await db?.drop()
})

async function marker(): Promise<void> {
  const id = randomUUID()
  await q('INSERT INTO products (id, name) VALUES ($1, $2)', [id, 'marker'])
  await waitFor(async () => ((await readChangelog(db.pool, id)).length > 0 ? true : undefined), 30_000, 'marker')
}

async function countInBucket(user: string): Promise<{ op: number; n: number }[]> {
  const { rows } = await q(
    `SELECT operation AS op, count(*)::int AS n FROM sync_changelog WHERE bucket_id = $1 GROUP BY 1 ORDER BY 1`,
    [`user:${user}`],
  )
  return rows as { op: number; n: number }[]
}

/** Holds the position row: every batch waits at its first statement until `release`. */
async function holdWriter(): Promise<{ release(): Promise<void> }> {
  const c: pg.PoolClient = await db.pool.connect()
  await c.query('BEGIN')
  await c.query('SELECT 1 FROM sync_wal_position WHERE slot_name = $1 FOR UPDATE', [db.name])
  return {
    async release() {
      await c.query('COMMIT')
      c.release()
    },
  }
}

/** The consumer has received everything written up to `lsn` (its server end is past it). */
async function received(lsn: bigint): Promise<void> {
  await waitFor(
    async () => {
      const s = consumer.status()
      if (s.lastLsn === null || s.lagBytes === null) return undefined
      return lsnToBigint(s.lastLsn) + BigInt(s.lagBytes) > lsn ? true : undefined
    },
    20_000,
    'received',
  )
}

it('a spilled transaction read after a DROP COLUMN and a later change of its table keeps its own columns', async () => {
  const [big, after] = [randomUUID(), randomUUID()]
  await q('INSERT INTO orders (user_id) SELECT $1::uuid FROM generate_series(1, 200)', [big])
  await marker()
  const writer = await holdWriter()
  try {
    // 200 updates: the first 50 stay in memory, the rest go to a spill file, decoded when the writer reads it.
    await q('UPDATE orders SET total_cents = 1 WHERE user_id = $1', [big])
    // A column before deleted_at goes; the next change of orders comes with the new relation message.
    await q('ALTER TABLE orders DROP COLUMN ship_address')
    const c = await db.pool.connect()
    let inside: bigint
    try {
      await c.query('BEGIN')
      await c.query('INSERT INTO orders (user_id) VALUES ($1)', [after])
      inside = BigInt((await c.query(`SELECT (pg_current_wal_insert_lsn() - '0/0')::text AS l`)).rows[0].l)
      await c.query('COMMIT')
    } finally {
      c.release()
    }
    // The consumer has decoded that relation message while the big transaction still waits for the writer.
    await received(inside)
  } finally {
    await writer.release()
  }
  await marker()
  // Decoded with the new relation, an older row's updated_at would land in deleted_at: op 3 (soft delete).
  expect(await countInBucket(big)).toEqual([
    { op: 1, n: 200 },
    { op: 2, n: 200 },
  ])
  expect(await countInBucket(after)).toEqual([{ op: 1, n: 1 }])
  expect(errors).toEqual([])
})

it('a spilled transaction that alters its table keeps the columns of its changes from before the ALTER', async () => {
  const [big, after] = [randomUUID(), randomUUID()]
  await q('INSERT INTO orders (user_id) SELECT $1::uuid FROM generate_series(1, 200)', [big])
  await marker()
  const c = await db.pool.connect()
  try {
    // A migration in one transaction: 200 updates (150 of them in the spill file), a column dropped, then a change
    // of the table, sent with the new relation message.
    await c.query('BEGIN')
    await c.query('UPDATE orders SET total_cents = 2 WHERE user_id = $1', [big])
    await c.query('ALTER TABLE orders DROP COLUMN required_date')
    await c.query('INSERT INTO orders (user_id) VALUES ($1)', [after])
    await c.query('COMMIT')
  } finally {
    c.release()
  }
  await marker()
  expect(await countInBucket(big)).toEqual([
    { op: 1, n: 200 },
    { op: 2, n: 200 },
  ])
  expect(await countInBucket(after)).toEqual([{ op: 1, n: 1 }])
  expect(errors).toEqual([])
})
