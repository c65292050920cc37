/**
 * Columns the server added to tables this client already held rows of. `ADD COLUMN` writes every row but logs no
 * change, so until a snapshot rebuild has brought the values (connect.ts starts one), a local NULL in such a column
 * means "not received", not "set to NULL": a push leaves it out (the server keeps its value), and the rebuild fills
 * it into rows it otherwise skips because they have queued changes. Kept in `_synchro_meta` until the rebuild
 * completes.
 */
import type { SqliteExecutor, SqlValue } from '../driver.js'
import type { SyncedTable } from '../schema/synced-table.js'
import { getMeta, setMeta } from '../store/database.js'
import { quoteIdent } from '../store/sql.js'

const KEY = 'unreceived_columns'

export type Unreceived = ReadonlyMap<string, ReadonlySet<string>>

/** The stored lists, by table. */
async function stored(ex: SqliteExecutor): Promise<{ [table: string]: string[] }> {
  const raw = await getMeta(ex, KEY)
  return raw ? (JSON.parse(raw) as { [table: string]: string[] }) : {}
}

export async function readUnreceived(ex: SqliteExecutor): Promise<Unreceived> {
  return new Map(Object.entries(await stored(ex)).map(([t, cols]) => [t, new Set(cols)]))
}

/** Adds `added` (a migration's new columns of existing tables) to the columns not received yet. */
export async function addUnreceived(ex: SqliteExecutor, added: readonly { table: string; column: string }[]) {
  if (added.length === 0) return
  const all = await stored(ex)
  for (const { table, column } of added) {
    const cols = all[table] ?? []
    if (!cols.includes(column)) all[table] = [...cols, column]
  }
  await setMeta(ex, KEY, JSON.stringify(all))
}

/** The rebuild brought every value: a NULL means NULL again. */
export async function clearUnreceived(ex: SqliteExecutor): Promise<void> {
  await setMeta(ex, KEY, '{}')
}

/** Fills, in the row `id` of `t` (one with queued changes), the not-received columns still NULL, from `values`. */
export async function fillUnreceived(
  tx: SqliteExecutor,
  t: SyncedTable,
  columns: ReadonlySet<string>,
  id: string,
  values: readonly SqlValue[],
): Promise<void> {
  const sets: string[] = []
  const params: SqlValue[] = []
  for (const [i, c] of t.columns.entries()) {
    if (!columns.has(c.name)) continue
    sets.push(`${quoteIdent(c.name)} = coalesce(${quoteIdent(c.name)}, ?)`)
    params.push(values[i] ?? null)
  }
  if (sets.length === 0) return
  await tx.run(`UPDATE ${quoteIdent(t.name)} SET ${sets.join(', ')} WHERE ${quoteIdent(t.pk)} = ?`, [...params, id])
}
