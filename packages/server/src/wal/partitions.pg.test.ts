import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { northwindRegistry, setupNorthwind, waitFor } from '@synchro/test-harness/wal-fixtures'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { startWalConsumer, WalConfigurationError, type WalConsumer } from './index.js'

// A registered partitioned table (snapshots support them: snapshot/rewrite.pg.test.ts). pgoutput publishes a
// partitioned table's changes as changes of its leaf partitions unless the publication has
// publish_via_partition_root; the consumer knew the registered table only and dropped every one of them, silently.
// It now refuses to start, naming the table.

let db: TestDatabase
let consumer: WalConsumer
const errors: Error[] = []
const q = (text: string, params: unknown[] = []) => db.pool.query(text, params)

beforeAll(async () => {
  db = await createTestDatabase()
  await setupNorthwind(db.pool)
  await q(`CREATE TABLE events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id uuid NOT NULL, note text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz) PARTITION BY HASH (id)`)
  await q('CREATE TABLE events_0 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 0)')
  await q('CREATE TABLE events_1 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 1)')
  const registry = northwindRegistry().register({ tableName: 'events', ownerColumn: 'user_id' })
  registry.validate()
  consumer = startWalConsumer({
    pool: db.pool,
    registry,
    replicationUrl: db.url,
    slotName: db.name,
    statusIntervalMs: 200,
    leaderRetryMs: 100,
    onError: (e) => errors.push(e),
  })
})

afterAll(async () => {
  await consumer?.stop()
  await db?.drop()
})

it('a registered partitioned table: the consumer refuses to start, naming it, and changes nothing', async () => {
  await waitFor(async () => (errors.length > 0 ? true : undefined), 20_000, 'consumer error')
  expect(errors[0]).toBeInstanceOf(WalConfigurationError)
  expect(errors[0]?.message).toMatch(/registered tables are partitioned: events\b/)
  expect(consumer.status().running).toBe(false)
  // Refused before the publication or any replica identity was touched.
  const { rows } = await q('SELECT count(*)::int AS n FROM pg_publication')
  expect(rows[0].n).toBe(0)
})
