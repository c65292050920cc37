import pg from 'pg'
import type { TestDatabase } from './pg.js'

/**
 * A login role that is neither superuser nor BYPASSRLS (so the generated RLS policies bind it), with DML grants on
 * every table and sequence in the database's public schema (and `app` if present). Returns a pool connected as it.
 * Call after the tables exist (grants are not retroactive for new tables).
 */
export async function createAppRolePool(db: TestDatabase): Promise<pg.Pool> {
  const role = `app_${db.name}`.slice(0, 63)
  await db.pool.query(`DO $$ BEGIN
      CREATE ROLE "${role}" LOGIN PASSWORD 'app' NOSUPERUSER NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object THEN NULL; END $$`)
  await db.pool.query(`
    GRANT CONNECT ON DATABASE "${db.name}" TO "${role}";
    GRANT USAGE ON SCHEMA public TO "${role}";
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "${role}";
    GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO "${role}";`)
  const url = new URL(db.url)
  url.username = role
  url.password = 'app'
  const pool = new pg.Pool({ connectionString: url.toString(), max: 10 })
  pool.on('error', () => {})
  return pool
}
