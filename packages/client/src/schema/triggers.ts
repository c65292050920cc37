/**
 * CDC triggers (PROTOCOL.md §4.2). One queue row per record; the merge rules are applied by SQL at write time so the
 * queue is always the net effect of the local writes since the last successful push:
 *
 * | queued \ new | create            | update            | delete                      |
 * |--------------|-------------------|-------------------|-----------------------------|
 * | (none)       | create            | update / create § | delete (base=OLD)           |
 * | create       | create            | create            | (removed) / delete (†)      |
 * | update       | update            | update / create § | delete                      |
 * | delete       | update / create ‡ | update (*) / ‡    | delete                      |
 *
 * `attempted` (local-only column) is 1 once the entry was part of a push request that was sent: the request may have
 * been applied even if its answer never arrived. It survives every merge and is 0 only for entries the server has
 * certainly never seen.
 *
 * (†) create + delete removes the entry only when `attempted = 0` (the record certainly never reached the server, as
 * §4.2 says). An attempted create may have landed, so the entry becomes a `delete`: the server deletes its copy, or
 * answers `record_not_found` (terminal, harmless) if the create never arrived. §4.2's literal rule would leave the row
 * live on the server and bring it back on the next pull.
 *
 * (*) stays `delete` while the row is still deleted locally (an edit of a tombstone does not resurrect it; the
 * literal §4.2 rule "otherwise the new op" would push an update and leave the row alive on the server).
 *
 * (‡) A re-created or undeleted row whose queued delete was attempted becomes a `create`: the delete (or the create
 * before it) may or may not have landed, and only a create works in every case (a resurrection if the server row is
 * deleted, `record_exists` → re-queued as an update by the push if it is live, a plain create if it never arrived).
 * An `update` would be `record_deleted`/`record_not_found` and lose the row. Not attempted: `update`, as §4.2 says.
 *
 * (§) An undelete (deleted_at set → NULL) with nothing queued, or only an `update` (an edit of the tombstone), is a
 * `create` (base=OLD): the tombstone is the server's (a delete it confirmed, or one pulled), or a create + delete that
 * never reached it. An `update` would be answered `record_deleted` (the restored row deleted again, the write a
 * conflict) or `record_not_found` (the row removed); a create resurrects the row (LWW with OLD's stamp as base), or
 * creates it. Updates take base=OLD too. Should another device have restored the row meanwhile, the create meets a
 * live row (`record_exists`): the push sends it again as an update from that base (see the push module).
 *
 * base_updated_at keeps the oldest non-null base; client_updated_at is refreshed on every write. All triggers are
 * inert while `_synchro_meta.sync_lock = '1'` (server data being applied).
 *
 * `written_columns` (local-only) names the columns the entry's writes set, the union over its merged writes: how a
 * push tells a write of a column the server has dropped or renamed since from that column's old value (see
 * written-columns.ts).
 *
 * A table keyed by a `uuid` also gets two guards that refuse an id not in lower case (see `uuidGuardSql`).
 */
import type { SqliteDriver, SqliteExecutor } from '../driver.js'
import { quoteIdent, quoteLiteral } from '../store/sql.js'
import { REJECTIONS_SQL } from '../sync/rejections-sql.js'
import { pkIsUuid, type SyncedTable } from './synced-table.js'
import { mergeWrittenSql, type TrackedColumn, writtenSql } from './written-columns.js'

export const PENDING_TABLE = '_synchro_pending_changes'
export const META_TABLE = '_synchro_meta'
/** Rows a running snapshot rebuild has not brought yet (see migrate.ts, `beginRebuild`). */
export const SNAPSHOT_STALE_TABLE = '_synchro_snapshot_stale'
/** Rows a table held when the server stopped syncing it: the server's, not the app's (see migrate.ts). */
export const UNSYNCED_ROWS_TABLE = '_synchro_unsynced_rows'

/**
 * Local bookkeeping tables as §4.1, seeded with sync_lock and checkpoint. `attempted` is ours (local-only, never
 * sent): see the merge table above. So is `attempted_data`: the row as the last push request that carried the entry
 * sent it (JSON, exact numbers; NULL for a delete), kept through merges, so that a conflict answered later can tell
 * that request's own write, applied with its answer lost, from another device's (see the push module).
 */
export const LOCAL_TABLES_SQL = `
CREATE TABLE IF NOT EXISTS _synchro_pending_changes (
  record_id TEXT NOT NULL,
  table_name TEXT NOT NULL,
  operation TEXT NOT NULL,
  base_updated_at TEXT,
  client_updated_at TEXT NOT NULL,
  attempted INTEGER NOT NULL DEFAULT 0,
  attempted_data TEXT,
  write_seq INTEGER NOT NULL DEFAULT 0,
  retry_count INTEGER NOT NULL DEFAULT 0,
  retry_at INTEGER,
  written_columns TEXT,
  PRIMARY KEY (table_name, record_id)
);
CREATE TABLE IF NOT EXISTS _synchro_meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
INSERT OR IGNORE INTO _synchro_meta (key, value) VALUES ('sync_lock', '0'), ('checkpoint', '0'), ('write_seq', '0');
CREATE TABLE IF NOT EXISTS _synchro_snapshot_stale (
  table_name TEXT NOT NULL,
  record_id TEXT NOT NULL,
  PRIMARY KEY (table_name, record_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _synchro_unsynced_rows (
  table_name TEXT NOT NULL,
  record_id TEXT NOT NULL,
  PRIMARY KEY (table_name, record_id)
) WITHOUT ROWID;
${REJECTIONS_SQL}
`

/**
 * Creates the local tables and brings older databases up to date: a queue without `attempted` gets the column, and
 * its existing entries are marked attempted (an earlier SDK may have sent them and lost the answer; treating them as
 * maybe-applied costs at most a harmless `record_not_found`).
 */
export async function ensureLocalTables(d: SqliteDriver): Promise<void> {
  await d.exec(LOCAL_TABLES_SQL)
  const cols = new Set(
    (await d.all<{ name: string }>(`SELECT name FROM pragma_table_info('_synchro_pending_changes')`)).map(
      (c) => c.name,
    ),
  )
  if (cols.has('attempted') && cols.has('write_seq') && cols.has('attempted_data') && cols.has('written_columns'))
    return
  await d.transaction(async (tx) => {
    if (!cols.has('attempted')) {
      await tx.exec(`ALTER TABLE _synchro_pending_changes ADD COLUMN attempted INTEGER NOT NULL DEFAULT 0`)
      await tx.run(`UPDATE _synchro_pending_changes SET attempted = 1`)
    }
    if (!cols.has('write_seq')) {
      // Per-record confirmation and retry bookkeeping (see the push module); old entries start at 0.
      await tx.exec(`ALTER TABLE _synchro_pending_changes ADD COLUMN write_seq INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE _synchro_pending_changes ADD COLUMN retry_count INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE _synchro_pending_changes ADD COLUMN retry_at INTEGER;`)
    }
    // Entries an earlier SDK pushed have no data of that push: a conflict answered for them stays a conflict.
    if (!cols.has('attempted_data')) {
      await tx.exec(`ALTER TABLE _synchro_pending_changes ADD COLUMN attempted_data TEXT`)
    }
    // Entries queued before: which columns they wrote is not known (NULL, see written-columns.ts).
    if (!cols.has('written_columns')) {
      await tx.exec(`ALTER TABLE _synchro_pending_changes ADD COLUMN written_columns TEXT`)
    }
  })
}

const UNLOCKED = `(SELECT value FROM _synchro_meta WHERE key = 'sync_lock') = '0'`
export const NOW = `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`
/** Every local write takes the next number of a durable counter: `confirmed()` and `flush()` wait on it. */
export const BUMP_SEQ = `UPDATE _synchro_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'write_seq';`
export const SEQ = `(SELECT CAST(value AS INTEGER) FROM _synchro_meta WHERE key = 'write_seq')`
/** A new write to a record waiting for a retry makes it pushable at once, with a fresh attempt budget. */
const RESET_RETRY = `write_seq = excluded.write_seq, retry_count = 0, retry_at = NULL`

/** Every trigger the SDK may install on a synced table (the uuid guards only when its primary key is a uuid). */
export function triggerNames(table: string): {
  insert: string
  update: string
  delete: string
  uuidInsert: string
  uuidUpdate: string
} {
  return {
    insert: `_synchro_cdc_insert_${table}`,
    update: `_synchro_cdc_update_${table}`,
    delete: `_synchro_cdc_delete_${table}`,
    uuidInsert: `_synchro_uuid_insert_${table}`,
    uuidUpdate: `_synchro_uuid_update_${table}`,
  }
}

export function dropTriggersSql(table: string): string {
  return Object.values(triggerNames(table))
    .map((x) => `DROP TRIGGER IF EXISTS ${quoteIdent(x)};`)
    .join('\n')
}

/**
 * The server stores a uuid in lower case (PostgreSQL's output form) and sends it back so, while a local TEXT key is
 * case-sensitive: a row written with an upper-case id (iOS `UUID().uuidString`) would never match the server's copy
 * of itself, a pull would add it as a second row, and the app's next write to its own row would overwrite other
 * devices' edits. So a local write with such an id fails, with a message that says what to do. Server data (sync
 * lock held) is not checked; rows already stored are left as they are, and naming an unchanged id in an UPDATE passes.
 */
function uuidGuardSql(t: SyncedTable): string {
  const n = triggerNames(t.name)
  const tbl = quoteIdent(t.name)
  const pk = quoteIdent(t.pk)
  const notLower = `NEW.${pk} <> lower(NEW.${pk})`
  const refuse = `SELECT RAISE(ABORT, ${quoteLiteral(
    `synchro: ${t.name}.${t.pk} is a uuid: write it in lower case (the server stores uuids in lower case, so an upper-case id would not match the rows it sends back)`,
  )});`
  return `
CREATE TRIGGER ${quoteIdent(n.uuidInsert)} BEFORE INSERT ON ${tbl}
WHEN ${notLower} AND ${UNLOCKED}
BEGIN
  ${refuse}
END;

CREATE TRIGGER ${quoteIdent(n.uuidUpdate)} BEFORE UPDATE OF ${pk} ON ${tbl}
WHEN NEW.${pk} IS NOT OLD.${pk} AND ${notLower} AND ${UNLOCKED}
BEGIN
  ${refuse}
END;
`
}

/**
 * The CDC triggers of `t`. `tracked` are the table's local columns (by default the schema's): those of them a write
 * sets are noted in `written_columns`, including columns the server no longer has.
 */
export function createTriggersSql(
  t: SyncedTable,
  tracked: readonly TrackedColumn[] = t.columns.map((c) => ({ name: c.name, dflt: c.sqlite_default_sql || null })),
): string {
  const n = triggerNames(t.name)
  const tbl = quoteIdent(t.name)
  const name = quoteLiteral(t.name)
  const id = (row: 'NEW' | 'OLD') => `CAST(${row}.${quoteIdent(t.pk)} AS TEXT)`
  const del = quoteIdent(t.deletedAt)
  const upd = quoteIdent(t.updatedAt)
  const isDelete = `(OLD.${del} IS NULL AND NEW.${del} IS NOT NULL)`
  const isUndelete = `(OLD.${del} IS NOT NULL AND NEW.${del} IS NULL)`
  return `
CREATE TRIGGER ${quoteIdent(n.insert)} AFTER INSERT ON ${tbl}
WHEN ${UNLOCKED}
BEGIN
  ${BUMP_SEQ}
  INSERT INTO _synchro_pending_changes
    (record_id, table_name, operation, base_updated_at, client_updated_at, write_seq, written_columns)
  VALUES (${id('NEW')}, ${name}, 'create', NULL, ${NOW}, ${SEQ}, ${writtenSql(t, tracked, 'insert')})
  ON CONFLICT (table_name, record_id) DO UPDATE SET
    operation = CASE
      WHEN operation = 'delete' AND attempted = 1 THEN 'create'
      WHEN operation = 'delete' THEN 'update'
      ELSE operation
    END,
    client_updated_at = excluded.client_updated_at,
    ${mergeWrittenSql(t, tracked, 'insert')},
    ${RESET_RETRY};
END;

CREATE TRIGGER ${quoteIdent(n.update)} AFTER UPDATE ON ${tbl}
WHEN ${UNLOCKED}
BEGIN
  ${BUMP_SEQ}
  INSERT INTO _synchro_pending_changes
    (record_id, table_name, operation, base_updated_at, client_updated_at, write_seq, written_columns)
  SELECT ${id('NEW')}, ${name},
    CASE WHEN ${isDelete} THEN 'delete' WHEN ${isUndelete} THEN 'create' ELSE 'update' END, OLD.${upd}, ${NOW}, ${SEQ},
    ${writtenSql(t, tracked, 'update')}
  WHERE NOT (${isDelete} AND EXISTS (
    SELECT 1 FROM _synchro_pending_changes
    WHERE table_name = ${name} AND record_id = ${id('NEW')} AND operation = 'create' AND attempted = 0))
  ON CONFLICT (table_name, record_id) DO UPDATE SET
    operation = CASE
      -- Reached only when the create was attempted (otherwise removed below): it may have landed, delete it.
      WHEN operation = 'create' AND excluded.operation = 'delete' THEN 'delete'
      WHEN operation = 'create' THEN 'create'
      -- Editing a row that is still deleted locally does not undo its queued delete.
      WHEN operation = 'delete' AND NEW.${del} IS NOT NULL THEN 'delete'
      -- Undelete after a delete (or create) that may have landed: only a create is right in every case.
      WHEN operation = 'delete' AND attempted = 1 THEN 'create'
      -- Undelete of a delete the server has never seen: its row is live there.
      WHEN operation = 'delete' THEN 'update'
      ELSE excluded.operation
    END,
    base_updated_at = COALESCE(base_updated_at, excluded.base_updated_at),
    client_updated_at = excluded.client_updated_at,
    ${mergeWrittenSql(t, tracked, 'update')},
    ${RESET_RETRY};
  -- create + delete before any push: the record never reached the server, so nothing stays queued at all.
  DELETE FROM _synchro_pending_changes
  WHERE ${isDelete} AND table_name = ${name} AND record_id = ${id('NEW')} AND operation = 'create' AND attempted = 0;
END;

CREATE TRIGGER ${quoteIdent(n.delete)} BEFORE DELETE ON ${tbl}
WHEN ${UNLOCKED}
BEGIN
  -- Hard deletes become soft deletes: the UPDATE trigger queues the 'delete', the row stays as a tombstone.
  UPDATE ${tbl} SET ${del} = ${NOW} WHERE ${quoteIdent(t.pk)} = OLD.${quoteIdent(t.pk)} AND ${del} IS NULL;
  SELECT RAISE(IGNORE);
END;
${pkIsUuid(t) ? uuidGuardSql(t) : ''}`
}

/**
 * Runs `fn` (bulk server data being applied, sync lock held) with the triggers of `tables` (CDC, uuid guards) dropped,
 * inside the caller's write transaction, and puts them back — the exact SQL they were stored with — before returning.
 *
 * Under the sync lock the triggers do nothing, but SQLite still enters each one and evaluates its WHEN subquery for
 * every applied row: a fifth of the cost of a large pull. Dropping them is exact: the transaction holds the
 * database's write lock, so no write by anyone can happen before they are back, and the drop is never visible to
 * anyone — it commits together with its re-creation or rolls back with everything else. The DDL costs ~0.2 ms per
 * table, so callers use this only for tables with many rows to apply.
 *
 * On a throw the caller's transaction rolls back, which restores the triggers; should it stay open anyway, they are
 * re-created here first (a failure to do so — they already exist after an automatic rollback — is ignored and the
 * original error rethrown).
 */
export async function withCdcTriggersSuspended<T>(
  tx: SqliteExecutor,
  tables: readonly string[],
  fn: () => Promise<T>,
): Promise<T> {
  if (tables.length === 0) return fn()
  const names = tables.flatMap((t) => Object.values(triggerNames(t)))
  const stored = await tx.all<{ name: string; sql: string }>(
    `SELECT name, sql FROM main.sqlite_master WHERE type = 'trigger' AND name IN (${names.map(quoteLiteral).join(', ')})`,
  )
  if (stored.length === 0) return fn()
  await tx.exec(stored.map((r) => `DROP TRIGGER main.${quoteIdent(r.name)};`).join('\n'))
  let out: T
  try {
    out = await fn()
  } catch (err) {
    for (const r of stored) await tx.exec(r.sql).catch(() => undefined)
    throw err
  }
  await tx.exec(stored.map((r) => `${r.sql};`).join('\n'))
  return out
}
