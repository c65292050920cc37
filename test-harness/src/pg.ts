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
