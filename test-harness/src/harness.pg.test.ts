import { afterAll, beforeAll, expect, it } from 'vitest'
import { createTestDatabase, type TestDatabase } from './pg.js'

let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase()
})
afterAll(async () => {
  await db.drop()
})

it('the test PostgreSQL runs with wal_level=logical and a fresh database', async () => {
  const { rows } = await db.pool.query<{ wal_level: string; n: string }>(
    `SELECT current_setting('wal_level') AS wal_level, (SELECT count(*) FROM pg_tables WHERE schemaname='public')::text AS n`,
  )
  expect(rows[0]).toEqual({ wal_level: 'logical', n: '0' })
})
