import { randomUUID } from 'node:crypto'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { readChangelog, setupNorthwind, waitFor } from '@synchro/test-harness/wal-fixtures'
import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Registry } from '../registry/registry.js'
import { startWalConsumer, type WalConsumer } from './index.js'

// What a session acknowledges: only what is in the changelog, or WAL it has received and found nothing in. A
// session that ends (an error, a reconnect) leaves transactions it received but did not write; the next session
// must receive them again, whatever the previous one saw.

let db: TestDatabase
let registry: Registry
const errors: Error[] = []
const q = (text: string, params: unknown[] = []) => db.pool.query(text, params)

beforeAll(async () => {
  db = await createTestDatabase()
  registry = await setupNorthwind(db.pool)
})

afterAll(async () => {
  await db?.drop()
})

function consumer(): WalConsumer {
  return startWalConsumer({
    pool: db.pool,
    registry,
    replicationUrl: db.url,
    slotName: db.name,
    statusIntervalMs: 20,
    leaderRetryMs: 50,
    onError: (e) => errors.push(e),
  })
}

async function marker(): Promise<void> {
  const id = randomUUID()
  await q('INSERT INTO products (id, name) VALUES ($1, $2)', [id, 'marker'])
  await waitFor(async () => ((await readChangelog(db.pool, id)).length > 0 ? true : undefined), 60_000, 'marker')
}

/** The backend of a batch waiting for the position row (held by the test), once there is one. */
async function blockedWriter(): Promise<number> {
  return waitFor(
    async () => {
      const { rows } = await q(
        `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
            AND query LIKE '%sync_wal_position%'`,
      )
      return rows[0]?.pid as number | undefined
    },
    60_000,
    'a batch waiting for the position row',
  )
}

it('a session after a failed batch does not acknowledge what the previous session received but never wrote', async () => {
  let c = consumer()
  await waitFor(async () => (c.status().running ? true : undefined), 20_000, 'consumer running')
  await marker()
  // An open transaction keeps the slot's restart point here, and a lot of WAL of an unregistered table follows:
  // a new session takes a while to decode its way back to the transaction below.
  const pin = await db.pool.connect()
  const hold: pg.PoolClient = await db.pool.connect()
  try {
    await pin.query('BEGIN')
    await pin.query(`INSERT INTO audit_log (note) VALUES ('pin')`)
    await q(`INSERT INTO audit_log (note) SELECT repeat('x', 100) FROM generate_series(1, 300000)`)
    await marker()
    // The next batch waits for the position row.
    await hold.query('BEGIN')
    await hold.query('SELECT 1 FROM sync_wal_position WHERE slot_name = $1 FOR UPDATE', [db.name])
    const user = randomUUID()
    await q('INSERT INTO orders (user_id) VALUES ($1)', [user])
    // The session received it; its batch fails (connection killed): the session ends, a new one starts.
    await q('SELECT pg_terminate_backend($1)', [await blockedWriter()])
    // The new session decodes from the restart point, receives the order again and waits for the row again.
    await waitFor(async () => (errors.length > 0 ? true : undefined), 10_000, 'the failed batch reported')
    const again = await blockedWriter()
    // The consumer stops (the batch fails once more): it acknowledges its durable position.
    const stopped = c.stop()
    await q('SELECT pg_terminate_backend($1)', [again])
    await stopped
    await hold.query('COMMIT')
    // A new consumer starts at that position: the order must come.
    c = consumer()
    await marker()
    expect((await readChangelog(db.pool)).filter((e) => e.bucket === `user:${user}`).map((e) => e.op)).toEqual([1])
  } finally {
    await hold.query('ROLLBACK').catch(() => {})
    hold.release()
    await pin.query('ROLLBACK').catch(() => {})
    pin.release()
    await c.stop()
  }
}, 120_000)
