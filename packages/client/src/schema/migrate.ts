/**
 * Creating and migrating synced tables from the server schema. Migration is additive only: missing tables and
 * columns are added and the CDC triggers re-created; nothing is dropped, so no local data — and no queued change —
 * is ever lost. Tables the SDK did not create from the server schema (local-only tables, SQLite's own tables) are
 * never touched (Decision 22): the set of synced tables is recorded in `_synchro_meta.synced_tables`.
 */
import type { SqliteExecutor } from '../driver.js'
import { getMeta, setMeta } from '../store/database.js'
import { quoteIdent } from '../store/sql.js'
import { addColumnSql, type ClientSchema, createTableSql } from './synced-table.js'
import { createTriggersSql, dropTriggersSql } from './triggers.js'

export interface MigrationResult {
  createdTables: string[]
  /** Tables that existed locally but were not synced before (a table the server syncs again, or a local one adopted). */
  adoptedTables: string[]
  addedColumns: { table: string; column: string }[]
  /** Tables the server no longer syncs: their triggers are gone, their rows stay as local data. */
  unsyncedTables: string[]
}

export async function readSyncedTableNames(ex: SqliteExecutor): Promise<string[]> {
  const raw = await getMeta(ex, 'synced_tables')
  if (!raw) return []
  try {
    const v: unknown = JSON.parse(raw)
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []
  } catch {
    return []
  }
}

/** Brings the local database to `schema` (inside the caller's transaction) and stores the schema pair. */
export async function migrateToSchema(tx: SqliteExecutor, schema: ClientSchema): Promise<MigrationResult> {
  const result: MigrationResult = { createdTables: [], adoptedTables: [], addedColumns: [], unsyncedTables: [] }
  const previous = await readSyncedTableNames(tx)
  const existing = new Set(
    (await tx.all<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table'`)).map((r) => r.name),
  )
  const ddl: string[] = []
  for (const t of schema.tables.values()) {
    if (t.name.startsWith('_synchro_') || t.name.startsWith('sqlite_')) continue
    if (!existing.has(t.name)) {
      ddl.push(`${createTableSql(t)};`)
      result.createdTables.push(t.name)
    } else {
      if (!previous.includes(t.name)) result.adoptedTables.push(t.name)
      const cols = new Set(
        (await tx.all<{ name: string }>('SELECT name FROM pragma_table_info(?)', [t.name])).map((r) => r.name),
      )
      for (const c of t.columns) {
        if (cols.has(c.name)) continue
        ddl.push(`${addColumnSql(t.name, c)};`)
        result.addedColumns.push({ table: t.name, column: c.name })
      }
    }
    ddl.push(dropTriggersSql(t.name), createTriggersSql(t))
  }
  for (const name of previous) {
    if (schema.tables.has(name)) continue
    result.unsyncedTables.push(name)
    ddl.push(dropTriggersSql(name))
  }
  if (ddl.length > 0) await tx.exec(ddl.join('\n'))
  await setMeta(tx, 'synced_tables', JSON.stringify([...schema.tables.keys()]))
  await setMeta(tx, 'schema_version', String(schema.version))
  await setMeta(tx, 'schema_hash', schema.hash)
  return result
}

/**
 * Clears synced data for a snapshot rebuild, keeping every row that has a queued change (Decision 21), and resets
 * checkpoint, known buckets and the snapshot flag. Runs under the sync lock, so the hard deletes are not queued.
 */
export async function clearForRebuild(tx: SqliteExecutor, schema: ClientSchema): Promise<void> {
  for (const t of schema.tables.values()) {
    await tx.run(
      `DELETE FROM ${quoteIdent(t.name)} WHERE CAST(${quoteIdent(t.pk)} AS TEXT) NOT IN (
         SELECT record_id FROM _synchro_pending_changes WHERE table_name = ?)`,
      [t.name],
    )
  }
  await setMeta(tx, 'checkpoint', '0')
  await setMeta(tx, 'known_buckets', '[]')
  await setMeta(tx, 'snapshot_complete', '0')
}
