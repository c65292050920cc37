import { fileURLToPath } from 'node:url'
import { Registry, runMigrations } from '@synchro/server'
import type pg from 'pg'
import { NORTHWIND_SQL } from './northwind.js'

/**
 * The WAL consumer process the crash test kills (`workers/wal-consumer.ts`); run it with
 * `node --import tsx --conditions=source`.
 */
export const WAL_CONSUMER_WORKER = fileURLToPath(new URL('./workers/wal-consumer.ts', import.meta.url))

/**
 * Test schema: Northwind of PROTOCOL.md §5.1, plus tables that exercise what Northwind does not:
 * a grandchild (`detail_notes`, Decision 15), schema-qualified parent/child (`app.items`, `app.item_notes`),
 * a bucket column that is TOASTed (`docs`), a SQL bucket function (`tagged`) and an unregistered table.
 */
export const NORTHWIND_DDL = `
${NORTHWIND_SQL}
CREATE TABLE detail_notes (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  detail_id uuid REFERENCES order_details(id) ON DELETE CASCADE,
  body text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE INDEX ON detail_notes (detail_id);

CREATE SCHEMA app;
CREATE TABLE app.items (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id uuid NOT NULL,
  title text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE TABLE app.item_notes (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  item_id uuid NOT NULL REFERENCES app.items(id),
  body text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);

CREATE TABLE docs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tag text,
  body text NOT NULL DEFAULT '',
  version integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
ALTER TABLE docs ALTER COLUMN tag SET STORAGE EXTERNAL;
ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;

CREATE TABLE tagged (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  team text,
  extra jsonb NOT NULL DEFAULT '{}',
  blob text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
ALTER TABLE tagged ALTER COLUMN blob SET STORAGE EXTERNAL;

-- Bucket function: team bucket, plus every entry of extra.buckets (empty strings and duplicates included, to be
-- dropped), plus the blob's length (proves TOASTed values reach it); 'boom' raises.
CREATE FUNCTION tagged_buckets(tbl text, op text, new_row jsonb, old_row jsonb) RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
  IF new_row->>'team' = 'boom' THEN
    RAISE EXCEPTION 'team boom is not allowed';
  END IF;
  RETURN NEXT 'team:' || (new_row->>'team');
  RETURN NEXT 'team:' || (new_row->>'team');
  RETURN NEXT '';
  RETURN QUERY SELECT jsonb_array_elements_text(COALESCE(new_row->'extra'->'buckets', '[]'::jsonb));
  IF length(new_row->>'blob') > 0 THEN
    RETURN NEXT 'len:' || length(new_row->>'blob');
  END IF;
END $$;

-- Not registered: its changes must be ignored.
CREATE TABLE audit_log (id bigserial PRIMARY KEY, note text);
`

/** The registry for {@link NORTHWIND_DDL} (§5.2 order first, then the extra tables). */
export function northwindRegistry(): Registry {
  return new Registry()
    .register({ tableName: 'orders', ownerColumn: 'user_id' })
    .register({
      tableName: 'order_details',
      parentTable: 'orders',
      parentFkColumn: 'order_id',
      dependencies: ['orders'],
    })
    .register({ tableName: 'products', pushPolicy: 'disabled' })
    .register({ tableName: 'categories', ownerColumn: 'user_id', allowGlobalRead: true })
    .register({ tableName: 'detail_notes', parentTable: 'order_details', parentFkColumn: 'detail_id' })
    .register({ tableName: 'app.items', ownerColumn: 'owner_id' })
    .register({ tableName: 'app.item_notes', parentTable: 'app.items', parentFkColumn: 'item_id' })
    .register({ tableName: 'docs', pushPolicy: 'disabled', bucketByColumn: 'tag', bucketPrefix: 'tag:' })
    .register({ tableName: 'tagged', pushPolicy: 'disabled', bucketFunction: 'tagged_buckets' })
}

/** Creates the infrastructure tables and the test schema in an empty database. */
export async function setupNorthwind(pool: pg.Pool): Promise<Registry> {
  await runMigrations(pool)
  await pool.query(NORTHWIND_DDL)
  const registry = northwindRegistry()
  registry.validate()
  return registry
}

/** One changelog row as tests compare them. */
export interface ChangelogEntry {
  seq: number
  bucket: string
  table: string
  id: string
  op: number
}

/** Changelog rows, optionally for one record, in seq order. */
export async function readChangelog(pool: pg.Pool, recordId?: string): Promise<ChangelogEntry[]> {
  const { rows } = await pool.query<ChangelogEntry>(
    `SELECT seq::int AS seq, bucket_id AS bucket, table_name AS "table", record_id AS id, operation AS op
       FROM sync_changelog WHERE $1::text IS NULL OR record_id = $1 ORDER BY seq`,
    [recordId ?? null],
  )
  return rows
}

/** Polls until `check` returns a value (not undefined) or the timeout passes. No fixed sleeps. */
export async function waitFor<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let delay = 10
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, delay))
    delay = Math.min(delay * 2, 100)
  }
}
