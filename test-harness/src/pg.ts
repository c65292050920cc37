import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { inject } from 'vitest'

export interface TestDatabase {
  /** Connection string of the fresh database. */
  url: string
  /** Database name. */
  name: string
  /** A pool on it (superuser). */
  pool: pg.Pool
  /** Drops replication slots of this database, then the database itself. */
  drop(): Promise<void>
}

/** Root URL of the run's PostgreSQL (wal_level=logical). */
export function rootUrl(): string {
  const fromEnv = process.env.SYNCHRO_TEST_DATABASE_URL
  if (fromEnv) return fromEnv
  return inject('pgUrl')
}

/** Same server, another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

/** Creates a fresh, empty database for one test file (DESIGN.md §5). */
export async function createTestDatabase(prefix = 'synchro_t'): Promise<TestDatabase> {
  const root = rootUrl()
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: root })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE "${name}" TEMPLATE template0`)
  } finally {
    await admin.end()
  }
  const url = withDatabase(root, name)
  const pool = new pg.Pool({ connectionString: url, max: 10 })
  pool.on('error', () => {})
  return {
    url,
    name,
    pool,
    async drop() {
      await pool.end().catch(() => {})
      const c = new pg.Client({ connectionString: root })
      await c.connect()
      try {
        await c.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
          [name],
        )
        // Slots hold WAL on the shared server: drop every slot of this database.
        for (let i = 0; i < 20; i++) {
          const { rows } = await c.query<{ slot_name: string; active: boolean }>(
            `SELECT slot_name, active FROM pg_replication_slots WHERE database = $1`,
            [name],
          )
          if (rows.length === 0) break
          for (const r of rows) {
            await c.query('SELECT pg_drop_replication_slot($1)', [r.slot_name]).catch(() => {})
          }
          await new Promise((r) => setTimeout(r, 100))
        }
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
      } finally {
        await c.end()
      }
    },
  }
}
