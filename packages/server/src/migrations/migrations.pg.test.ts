import { createTestDatabase, type TestDatabase } from '@synchro/test-harness'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runMigrations } from './migrations.js'

let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase()
})
afterAll(async () => {
  await db.drop()
})

it('migrations create the §2.1 tables and indexes, and re-running them (also concurrently) changes nothing', async () => {
  await Promise.all([runMigrations(db.pool), runMigrations(db.pool), runMigrations(db.pool)])
  await runMigrations(db.pool)
  const { rows } = await db.pool.query<{ tablename: string }>(
    `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`,
  )
  expect(rows.map((r) => r.tablename)).toEqual([
    'sync_bucket_edges',
    'sync_changelog',
    'sync_clients',
    'sync_compaction_state',
    'sync_ddl_epoch',
    'sync_edge_backfill',
    'sync_rule_failures',
    'sync_schema_manifest',
    'sync_wal_position',
  ])
  const idx = await db.pool.query<{ indexname: string }>(
    `SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname LIKE 'idx_%' ORDER BY 1`,
  )
  expect(idx.rows.map((r) => r.indexname)).toEqual([
    'idx_sync_changelog_bucket_seq',
    'idx_sync_clients_user',
    'idx_sync_rule_failures_created',
    'idx_sync_schema_manifest_hash',
  ])
  const cols = await db.pool.query(
    `SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns
      WHERE table_name = 'sync_clients' ORDER BY ordinal_position`,
  )
  expect(cols.rows.map((c) => c.column_name)).toEqual([
    'id',
    'user_id',
    'client_id',
    'client_name',
    'platform',
    'app_version',
    'bucket_subs',
    'last_sync_at',
    'last_pull_at',
    'last_push_at',
    'last_pull_seq',
    'is_active',
    'created_at',
    'updated_at',
    // Added after §2.1 (ALTER TABLE … ADD COLUMN IF NOT EXISTS): pull progress, which compaction judges staleness by.
    'last_progress_at',
  ])
})

it('a database created before keeps its rows and loses only the unused indexes by edge bucket and changelog record', async () => {
  await runMigrations(db.pool)
  await db.pool.query(
    'CREATE INDEX idx_sync_bucket_edges_bucket ON sync_bucket_edges (bucket_id, table_name, record_id)',
  )
  await db.pool.query('CREATE INDEX idx_sync_changelog_record ON sync_changelog (table_name, record_id)')
  await db.pool.query(`INSERT INTO sync_bucket_edges (table_name, record_id, bucket_id) VALUES ('t', '1', 'user:a')`)
  await db.pool.query(
    `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation) VALUES ('user:a', 't', '1', 1)`,
  )
  await runMigrations(db.pool)
  const idx = await db.pool.query(
    `SELECT indexname FROM pg_indexes WHERE indexname IN ('idx_sync_bucket_edges_bucket', 'idx_sync_changelog_record')`,
  )
  expect(idx.rows).toEqual([])
  const edges = await db.pool.query('SELECT table_name, record_id, bucket_id FROM sync_bucket_edges')
  expect(edges.rows).toEqual([{ table_name: 't', record_id: '1', bucket_id: 'user:a' }])
  const cl = await db.pool.query('SELECT bucket_id, table_name, record_id, operation FROM sync_changelog')
  expect(cl.rows).toEqual([{ bucket_id: 'user:a', table_name: 't', record_id: '1', operation: 1 }])
})

it('a migration chosen as a deadlock victim next to a running instance is run again', async () => {
  await runMigrations(db.pool)
  // A running instance's transaction: it holds sync_clients, then wants to write sync_changelog — which the
  // migration's `CREATE INDEX IF NOT EXISTS` holds while it waits for sync_clients. Its own deadlock_timeout is long,
  // so the migration, waiting first, is the one PostgreSQL aborts.
  const app = await db.pool.connect()
  try {
    await app.query(`SET deadlock_timeout = '10s'`)
    await app.query('BEGIN')
    await app.query('LOCK TABLE sync_clients IN ROW EXCLUSIVE MODE')
    const migrating = runMigrations(db.pool)
    for (let i = 0; i < 200; i++) {
      const { rows } = await db.pool.query(
        `SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND relation = 'sync_clients'::regclass`,
      )
      if (rows[0].n > 0) break
      await new Promise((r) => setTimeout(r, 10))
    }
    await app.query('LOCK TABLE sync_changelog IN ROW EXCLUSIVE MODE')
    await app.query('COMMIT')
    await expect(migrating).resolves.toEqual({ ddlWatch: { installed: true } })
  } finally {
    app.release()
  }
})
