/**
 * Creating and migrating synced tables from the server schema. Migration is additive only: missing tables and
 * columns are added and the CDC triggers re-created; nothing is dropped, so no local data — and no queued change —
 * is ever lost. A column the server retyped to another SQLite affinity is rebuilt in place (`retypeColumn`). Tables the SDK did not create from the server schema (local-only tables, SQLite's own tables) are
 * never touched (Decision 22): the set of synced tables is recorded in `_synchro_meta.synced_tables`.
 */
import { runMany, type SqliteExecutor } from '../driver.js'
import { getMeta, setMeta } from '../store/database.js'
import { quoteIdent } from '../store/sql.js'
import { addColumnSql, type ClientSchema, createTableSql, type SyncedTable, sqliteColumnType } from './synced-table.js'
import {
  BUMP_SEQ,
  createTriggersSql,
  dropTriggersSql,
  NOW,
  SEQ,
  SNAPSHOT_STALE_TABLE as STALE,
  UNSYNCED_ROWS_TABLE as UNSYNCED_ROWS,
} from './triggers.js'

export interface MigrationResult {
  createdTables: string[]
  /** Tables that existed locally but were not synced before (a table the server syncs again, or a local one adopted). */
  adoptedTables: string[]
  addedColumns: { table: string; column: string }[]
  /** Columns whose local type no longer stores the server's values faithfully, rebuilt with the new type. */
  retypedColumns: { table: string; column: string }[]
  /** Tables the server no longer syncs: their triggers are gone, their rows stay as local data. */
  unsyncedTables: string[]
}

export async function readSyncedTableNames(ex: SqliteExecutor): Promise<string[]> {
  return readNames(ex, 'synced_tables')
}

/** Tables adopted by a migration whose snapshot rebuild has not completed yet (see `finishRebuild`). */
function readAdoptedTables(ex: SqliteExecutor): Promise<string[]> {
  return readNames(ex, 'adopted_tables')
}

async function readNames(ex: SqliteExecutor, key: string): Promise<string[]> {
  const raw = await getMeta(ex, key)
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
  const result: MigrationResult = {
    createdTables: [],
    adoptedTables: [],
    addedColumns: [],
    retypedColumns: [],
    unsyncedTables: [],
  }
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
      const local = await tx.all<LocalColumn>(
        'SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)',
        [t.name],
      )
      const cols = new Map(local.map((r) => [r.name, r.type]))
      for (const c of t.columns) {
        const declared = cols.get(c.name)
        if (declared !== undefined) {
          if (c.name !== t.pk && affinity(declared) !== affinity(sqliteColumnType(c))) {
            if (await retypeColumn(tx, t, c.name)) result.retypedColumns.push({ table: t.name, column: c.name })
          }
          continue
        }
        ddl.push(`${addColumnSql(t.name, c)};`)
        result.addedColumns.push({ table: t.name, column: c.name })
      }
      for (const c of local) {
        // A column the server dropped or renamed stays, with its values; NOT NULL without a default it would refuse
        // every insert by code that no longer knows it (a renamed column's new name is added beside it).
        if (!t.columnNames.has(c.name) && c.notnull && c.dflt_value === null && !c.pk) {
          await rebuildColumn(
            tx,
            t.name,
            c.name,
            (tmp) => `ALTER TABLE ${quoteIdent(t.name)} ADD COLUMN ${quoteIdent(tmp)} ${c.type}`,
          )
        }
      }
    }
  }
  for (const name of previous) {
    if (schema.tables.has(name)) continue
    result.unsyncedTables.push(name)
    ddl.push(dropTriggersSql(name))
    await noteServerRows(tx, name)
  }
  if (ddl.length > 0) await tx.exec(ddl.join('\n'))
  const triggers = await triggersSql(tx, schema)
  if (triggers) await tx.exec(triggers)
  if (result.adoptedTables.length > 0) {
    // Until the rebuild that follows completes (a restart redoes it): their rows are the app's (`finishRebuild`).
    const adopted = new Set([...(await readAdoptedTables(tx)), ...result.adoptedTables])
    await setMeta(tx, 'adopted_tables', JSON.stringify([...adopted]))
  }
  await setMeta(tx, 'synced_tables', JSON.stringify([...schema.tables.keys()]))
  await setMeta(tx, 'schema_version', String(schema.version))
  await setMeta(tx, 'schema_hash', schema.hash)
  return result
}

/**
 * The CDC triggers of every synced table, made once its columns are in place: they note writes of every local column
 * (`written_columns`), also of those the server no longer has, with the column's local default.
 */
async function triggersSql(tx: SqliteExecutor, schema: ClientSchema): Promise<string> {
  const out: string[] = []
  for (const t of schema.tables.values()) {
    if (t.name.startsWith('_synchro_') || t.name.startsWith('sqlite_')) continue
    const local = await tx.all<{ name: string; dflt_value: string | null }>(
      'SELECT name, dflt_value FROM pragma_table_info(?)',
      [t.name],
    )
    out.push(
      dropTriggersSql(t.name),
      createTriggersSql(
        t,
        local.map((c) => ({ name: c.name, dflt: c.dflt_value })),
      ),
    )
  }
  return out.join('\n')
}

/**
 * Notes the rows of a table the server stops syncing: they are the server's, as last synced. Should it sync the table
 * again, those the snapshot does not bring were deleted on the server meanwhile (or left the user's buckets), and are
 * deleted, not pushed back as the app's own rows (`finishRebuild`).
 */
async function noteServerRows(tx: SqliteExecutor, table: string): Promise<void> {
  const [pk] = await tx.all<{ name: string }>('SELECT name FROM pragma_table_info(?) WHERE pk = 1', [table])
  if (!pk) return
  await tx.run(
    `INSERT OR IGNORE INTO ${UNSYNCED_ROWS} (table_name, record_id)
     SELECT ?, CAST(${quoteIdent(pk.name)} AS TEXT) FROM ${quoteIdent(table)}`,
    [table],
  )
}

interface LocalColumn {
  name: string
  type: string
  notnull: number
  dflt_value: string | null
  pk: number
}

/** SQLite's affinity of a declared column type (https://sqlite.org/datatype3.html §3.1). */
function affinity(declared: string): 'INTEGER' | 'TEXT' | 'BLOB' | 'REAL' | 'NUMERIC' {
  const d = declared.toUpperCase()
  if (d.includes('INT')) return 'INTEGER'
  if (/CHAR|CLOB|TEXT/.test(d)) return 'TEXT'
  if (d === '' || d.includes('BLOB')) return 'BLOB'
  if (/REAL|FLOA|DOUB/.test(d)) return 'REAL'
  return 'NUMERIC'
}

/**
 * Rebuilds column `name` of `t` with the type the server schema now gives it. SQLite cannot change a column's type,
 * and the old affinity converts every value stored into it: a text column that was an integer turns `'007'` into 7, a
 * numeric that was a bigint rounds a long decimal to a double — and the next push of the row, which sends every
 * column, writes that value back over the server's. Returns whether it was rebuilt (see `rebuildColumn`).
 */
function retypeColumn(tx: SqliteExecutor, t: SyncedTable, name: string): Promise<boolean> {
  const c = t.columns.find((x) => x.name === name)!
  return rebuildColumn(tx, t.name, name, (tmp) => addColumnSql(t.name, { ...c, name: tmp }))
}

/**
 * Rebuilds column `name` of `table` as `add` (the ALTER TABLE … ADD COLUMN of a column of the name given) defines it:
 * the values move to the new column, which takes the old one's name and place in the app's indexes (the CDC triggers
 * are dropped first: the copy is no local write; `migrateToSchema` makes them again). Where SQLite refuses (a view or
 * trigger of the app names the column, a SQLite without DROP COLUMN) the column stays as it was. Returns whether it
 * was rebuilt.
 */
async function rebuildColumn(
  tx: SqliteExecutor,
  table: string,
  name: string,
  add: (tmp: string) => string,
): Promise<boolean> {
  const tbl = quoteIdent(table)
  const tmp = `_synchro_retype_${name}`
  const indexes = await tx.all<{ name: string; sql: string }>(
    `SELECT m.name, m.sql FROM sqlite_master m
      WHERE m.type = 'index' AND m.tbl_name = ? AND m.sql IS NOT NULL
        AND EXISTS (SELECT 1 FROM pragma_index_info(m.name) WHERE name = ?)`,
    [table, name],
  )
  await tx.exec('SAVEPOINT _synchro_retype')
  try {
    await tx.exec(
      [
        dropTriggersSql(table),
        ...indexes.map((i) => `DROP INDEX ${quoteIdent(i.name)};`),
        `${add(tmp)};`,
        `UPDATE ${tbl} SET ${quoteIdent(tmp)} = ${quoteIdent(name)};`,
        `ALTER TABLE ${tbl} DROP COLUMN ${quoteIdent(name)};`,
        `ALTER TABLE ${tbl} RENAME COLUMN ${quoteIdent(tmp)} TO ${quoteIdent(name)};`,
        ...indexes.map((i) => `${i.sql};`),
      ].join('\n'),
    )
    await tx.exec('RELEASE _synchro_retype')
    return true
  } catch {
    await tx.exec('ROLLBACK TO _synchro_retype; RELEASE _synchro_retype')
    return false
  }
}

/**
 * Starts a snapshot rebuild: resets checkpoint, known buckets and the snapshot flag, and notes every synced row
 * without a queued change as stale (`_synchro_snapshot_stale`). The rows themselves stay until the final page
 * (`finishRebuild`): deleted now, they would be gone while the snapshot downloads — an app's UPDATE of a row it
 * shows would change nothing (rowsAffected 0) and its write would be lost, and lists would show empty meanwhile.
 * Runs under the sync lock.
 */
export async function beginRebuild(tx: SqliteExecutor, schema: ClientSchema): Promise<void> {
  await tx.run(`DELETE FROM ${STALE}`)
  for (const t of schema.tables.values()) {
    const id = `CAST(${quoteIdent(t.pk)} AS TEXT)`
    await tx.run(
      `INSERT OR IGNORE INTO ${STALE} (table_name, record_id)
       SELECT ?, ${id} FROM ${quoteIdent(t.name)}
        WHERE ${id} NOT IN (SELECT record_id FROM _synchro_pending_changes WHERE table_name = ?)`,
      [t.name, t.name],
    )
  }
  await setMeta(tx, 'checkpoint', '0')
  await setMeta(tx, 'known_buckets', '[]')
  await setMeta(tx, 'snapshot_complete', '0')
}

/** Rows a snapshot page brought (applied, or kept for their queued change) are not stale. */
export async function unmarkStale(tx: SqliteExecutor, records: readonly { table_name: string; id: string }[]) {
  if (records.length === 0) return
  const [row] = await tx.all(`SELECT 1 FROM ${STALE} LIMIT 1`)
  if (!row) return
  await runMany(
    tx,
    `DELETE FROM ${STALE} WHERE table_name = ? AND record_id = ?`,
    records.map((r) => [r.table_name, r.id]),
  )
}

/**
 * With the final snapshot page: deletes the rows the snapshot did not bring (the server no longer has them for this
 * user), except rows with a queued change — also those written while the snapshot downloaded (Decision 21).
 *
 * In a table this rebuild adopted (a local table the server now syncs, or one it syncs again after it stopped), such
 * rows are the app's own, written while no trigger recorded them: the live ones are queued as creates instead, stamped
 * with their `updated_at` when it is a timestamp (a row the server deleted since then loses to that deletion as a
 * conflict the app is told of, rather than coming back), and pushed. Deleting them would lose them without a trace.
 * Rows the table held when the server stopped syncing it are the server's (`noteServerRows`): not brought, they were
 * deleted there meanwhile (a hard delete leaves nothing a create would lose to) and are deleted here too.
 */
export async function finishRebuild(tx: SqliteExecutor, schema: ClientSchema): Promise<void> {
  const adopted = new Set(await readAdoptedTables(tx))
  for (const t of schema.tables.values()) {
    const id = `CAST(${quoteIdent(t.pk)} AS TEXT)`
    const stale = `${id} IN (SELECT record_id FROM ${STALE} WHERE table_name = ?)
          AND ${id} NOT IN (SELECT record_id FROM _synchro_pending_changes WHERE table_name = ?)`
    if (adopted.has(t.name)) await queueAsCreates(tx, t, stale)
    await tx.run(`DELETE FROM ${quoteIdent(t.name)} WHERE ${stale}`, [t.name, t.name])
  }
  await tx.run(`DELETE FROM ${STALE}`)
  if (adopted.size > 0) {
    await setMeta(tx, 'adopted_tables', '[]')
    for (const name of adopted) await tx.run(`DELETE FROM ${UNSYNCED_ROWS} WHERE table_name = ?`, [name])
  }
}

/** Queues the live rows of `t` matching `where` (two parameters: the table name twice) as creates. */
async function queueAsCreates(tx: SqliteExecutor, t: SyncedTable, where: string): Promise<void> {
  const upd = quoteIdent(t.updatedAt)
  const stamp = `CASE WHEN typeof(${upd}) = 'text' AND ${upd} GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]T*'
    THEN ${upd} ELSE ${NOW} END`
  await tx.exec(BUMP_SEQ)
  await tx.run(
    `INSERT INTO _synchro_pending_changes (record_id, table_name, operation, base_updated_at, client_updated_at, write_seq)
     SELECT CAST(${quoteIdent(t.pk)} AS TEXT), ?, 'create', NULL, ${stamp}, ${SEQ}
       FROM ${quoteIdent(t.name)} WHERE ${quoteIdent(t.deletedAt)} IS NULL AND ${where}
        AND CAST(${quoteIdent(t.pk)} AS TEXT) NOT IN (SELECT record_id FROM ${UNSYNCED_ROWS} WHERE table_name = ?)`,
    [t.name, t.name, t.name, t.name],
  )
}
