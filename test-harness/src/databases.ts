import { randomBytes } from 'node:crypto'
import pg from 'pg'

export interface TestDatabase {
  /** Connection string of the fresh database. */
  url: string
  /** Database name (also a valid, unique replication slot name). */
  name: string
  /** A pool on it (as the root URL's user). */
  pool: pg.Pool
  /** Drops replication slots of this database, then the database itself. */
  drop(): Promise<void>
}

/** Same server, another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

/**
 * Creates a fresh, empty database on the server at `root` (no vitest needed: benchmarks and the reliability runner
 * use it too). `drop()` terminates its sessions, drops its replication slots (slots are server-wide and hold WAL)
 * and the database.
 */
export async function createDatabaseOn(root: string, prefix = 'synchro_t', poolMax = 10): Promise<TestDatabase> {
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: root })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE "${name}" TEMPLATE template0`)
  } finally {
    await admin.end()
  }
  const url = withDatabase(root, name)
  const pool = new pg.Pool({ connectionString: url, max: poolMax })
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
        for (let i = 0; i < 50; i++) {
          await c.query(
            'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
            [name],
          )
          const { rows } = await c.query<{ slot_name: string }>(
            'SELECT slot_name FROM pg_replication_slots WHERE database = $1',
            [name],
          )
          if (rows.length === 0) break
          for (const r of rows) await c.query('SELECT pg_drop_replication_slot($1)', [r.slot_name]).catch(() => {})
          await new Promise((r) => setTimeout(r, 100))
        }
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
      } finally {
        await c.end()
      }
    },
  }
}
