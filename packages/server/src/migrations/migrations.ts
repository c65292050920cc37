import type pg from 'pg'
import { type DdlWatchInstall, installDdlWatch } from '../schema/ddl-watch.js'

/** Advisory lock key serialising migrations across processes. */
export const MIGRATION_LOCK = 91110041

/**
 * Infrastructure DDL of PROTOCOL.md §2.1, idempotent (IF NOT EXISTS). Users with their own migration tool can
 * take this text (`synchrod migrate` prints it).
 */
export const INFRASTRUCTURE_SQL = `
CREATE TABLE IF NOT EXISTS sync_changelog (
  seq        bigserial PRIMARY KEY,
  bucket_id  text NOT NULL,
  table_name text NOT NULL,
  record_id  text NOT NULL,
  operation  smallint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_sync_changelog_bucket_seq ON sync_changelog (bucket_id, seq);
-- §2.1 also listed an index (table_name, record_id). No query reads the changelog by record, and it was the
-- costliest index of capture's writes (random text keys: a third of the writing backend's CPU, docs/performance.md,
-- WAL), so databases created before are rid of it.
DROP INDEX IF EXISTS idx_sync_changelog_record;

CREATE TABLE IF NOT EXISTS sync_clients (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id       text NOT NULL,
  client_id     text NOT NULL,
  client_name   text,
  platform      text NOT NULL DEFAULT '',
  app_version   text NOT NULL DEFAULT '',
  bucket_subs   text[] NOT NULL DEFAULT '{}',
  last_sync_at  timestamptz,
  last_pull_at  timestamptz,
  last_push_at  timestamptz,
  last_pull_seq bigint,
  is_active     boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, client_id)
);
CREATE INDEX IF NOT EXISTS idx_sync_clients_user ON sync_clients (user_id);
-- When the client's pull checkpoint last advanced (or it was caught up): compaction judges staleness by it.
ALTER TABLE sync_clients ADD COLUMN IF NOT EXISTS last_progress_at timestamptz;

CREATE TABLE IF NOT EXISTS sync_wal_position (
  slot_name     text PRIMARY KEY,
  confirmed_lsn bigint NOT NULL DEFAULT 0,
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS sync_bucket_edges (
  table_name text NOT NULL,
  record_id  text NOT NULL,
  bucket_id  text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (table_name, record_id, bucket_id)
);
-- §2.1 also listed an index (bucket_id, table_name, record_id). No query reads edges by bucket, and it was a third of
-- the capture's edge-write cost (docs/performance.md, WAL), so databases created before are rid of it.
DROP INDEX IF EXISTS idx_sync_bucket_edges_bucket;
-- Rows written while no capture recorded their buckets (before the slot existed, or before their table was
-- registered) get their edges from a backfill, in chunks of keys: per registered table, the last key done.
CREATE TABLE IF NOT EXISTS sync_edge_backfill (
  table_name text PRIMARY KEY,
  after_key  text,
  done       boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS sync_rule_failures (
  id         bigserial PRIMARY KEY,
  table_name text NOT NULL,
  record_id  text NOT NULL,
  operation  smallint NOT NULL,
  error_text text NOT NULL,
  payload    jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_sync_rule_failures_created ON sync_rule_failures (created_at);

CREATE TABLE IF NOT EXISTS sync_schema_manifest (
  schema_version bigint PRIMARY KEY,
  schema_hash    text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_sync_schema_manifest_hash ON sync_schema_manifest (schema_hash);

-- Highest seq ever removed by compaction (Decision 1: the retention boundary survives an empty changelog).
CREATE TABLE IF NOT EXISTS sync_compaction_state (
  id                    boolean PRIMARY KEY DEFAULT true CHECK (id),
  max_compacted_seq     bigint NOT NULL DEFAULT 0,
  updated_at            timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sync_compaction_state (id) VALUES (true) ON CONFLICT DO NOTHING;

-- Committed DDL, counted per backend by an event trigger (schema/ddl-watch.ts): requests read this instead of the
-- catalogs to notice schema changes. The trigger itself needs a superuser and is installed separately.
CREATE TABLE IF NOT EXISTS sync_ddl_epoch (
  pid  integer PRIMARY KEY,
  n    bigint NOT NULL
);
`

export interface MigrationProgress {
  /** Statements run so far, of `total`. */
  done: number
  total: number
  /** The statement about to run, e.g. `CREATE TABLE IF NOT EXISTS sync_changelog` ('' once done). */
  statement: string
}

/** INFRASTRUCTURE_SQL as single statements (it has no dollar-quoted bodies, so `;` at a line end splits it). */
export function infrastructureStatements(): string[] {
  return INFRASTRUCTURE_SQL.split(/;\s*\n/)
    .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
    .filter((s) => s !== '')
}

function summary(sql: string): string {
  return (sql.split('(')[0] ?? sql).replace(/\s+/g, ' ').trim()
}

export interface MigrationResult {
  /**
   * Whether the DDL watch (an event trigger; needs a superuser) is installed. Without it the engine works, reading
   * the catalogs on every request to notice schema changes; `sql` is what a superuser can run to install it.
   */
  ddlWatch: DdlWatchInstall
}

/** Attempts of the migration transaction when PostgreSQL aborts it as a deadlock victim. */
const MIGRATION_ATTEMPTS = 5

/**
 * Runs the infrastructure migrations idempotently, serialised across processes by an advisory lock. Even when
 * everything exists, `CREATE INDEX IF NOT EXISTS` and `ALTER TABLE … IF NOT EXISTS` lock their tables before they
 * find out, so an instance starting next to running ones (which write those tables) can be chosen as a deadlock's
 * victim (SQLSTATE 40P01, seen with three daemons starting at once): the whole transaction is then run again.
 */
export async function runMigrations(
  pool: pg.Pool,
  opts: { onProgress?: (p: MigrationProgress) => void } = {},
): Promise<MigrationResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrateOnce(pool, opts)
    } catch (err) {
      if ((err as { code?: string }).code !== '40P01' || attempt >= MIGRATION_ATTEMPTS) throw err
      await new Promise((r) => setTimeout(r, 50 * attempt + Math.random() * 100))
    }
  }
}

async function migrateOnce(
  pool: pg.Pool,
  opts: { onProgress?: (p: MigrationProgress) => void },
): Promise<MigrationResult> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
    if (!opts.onProgress) {
      await client.query(INFRASTRUCTURE_SQL)
    } else {
      // Statement by statement only to report each one; still one transaction.
      const statements = infrastructureStatements()
      for (const [i, sql] of statements.entries()) {
        opts.onProgress({ done: i, total: statements.length, statement: summary(sql) })
        await client.query(sql)
      }
      opts.onProgress({ done: statements.length, total: statements.length, statement: '' })
    }
    const ddlWatch = await installDdlWatch(client)
    await client.query('COMMIT')
    return { ddlWatch }
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}
