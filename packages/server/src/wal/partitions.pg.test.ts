import { randomUUID } from 'node:crypto'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { northwindRegistry, readChangelog, setupNorthwind, waitFor } from '@synchro/test-harness/wal-fixtures'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { startWalConsumer, type WalConsumer } from './index.js'

// A registered partitioned table (snapshots support them: snapshot/rewrite.pg.test.ts). pgoutput publishes a
// partitioned table's changes as changes of its leaf partitions unless the publication has
// publish_via_partition_root; the consumer knows the registered table only, so it drops every one of them.

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
  await waitFor(async () => (consumer.status().running ? true : undefined), 20_000, 'consumer running')
})

afterAll(async () => {
  await consumer?.stop()
  await db?.drop()
})

// Known bug, not fixed on this branch: flip to `it` once capture maps partitions to their registered table.
it.fails('changes of a registered partitioned table are captured', async () => {
  const user = randomUUID()
  const { rows } = await q('INSERT INTO events (user_id) VALUES ($1) RETURNING id', [user])
  await q('UPDATE events SET deleted_at = now() WHERE id = $1', [rows[0].id])
  const marker = randomUUID()
  await q('INSERT INTO products (id, name) VALUES ($1, $2)', [marker, 'marker'])
  await waitFor(async () => ((await readChangelog(db.pool, marker)).length > 0 ? true : undefined), 20_000, 'marker')
  expect((await readChangelog(db.pool, rows[0].id)).map((e) => [e.bucket, e.op])).toEqual([
    [`user:${user}`, 1],
    [`user:${user}`, 3],
  ])
  expect(errors).toEqual([])
})
