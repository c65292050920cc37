import type pg from 'pg'
import { inject } from 'vitest'
import { createDatabaseOn, type TestDatabase } from './databases.js'

export { createDatabaseOn, type TestDatabase, withDatabase } from './databases.js'

/** Root URL of the run's PostgreSQL (wal_level=logical). */
export function rootUrl(): string {
  if (process.env.SYNCHRO_UNIT_PROJECT) {
    throw new Error('this test needs PostgreSQL: name its file *.pg.test.ts (the unit project runs without a database)')
  }
  const fromEnv = process.env.SYNCHRO_TEST_DATABASE_URL
  if (fromEnv) return fromEnv
  return inject('pgUrl')
}

/** Creates a fresh, empty database for one test file (each test file owns its database). */
export function createTestDatabase(prefix = 'synchro_t'): Promise<TestDatabase> {
  return createDatabaseOn(rootUrl(), prefix)
}

/**
 * Waits until no statement but the caller's runs in `pool`'s database: background work the engine started (read-ahead
 * reads) has finished. Throws after about two seconds.
 */
export async function databaseIdle(pool: pg.Pool): Promise<void> {
  await new Promise((r) => setTimeout(r, 50))
  for (let i = 0; i < 100; i++) {
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND state <> 'idle' AND pid <> pg_backend_pid()`,
    )
    if (rows[0]?.n === 0) return
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error('the database did not become idle')
}
