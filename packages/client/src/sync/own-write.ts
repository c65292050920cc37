/**
 * What a push's conflict answer says about this client's own writes (push.ts applies the results): whether the
 * conflict was decided against our own earlier write (a lost answer), and how a write the app made meanwhile keeps
 * the server's winning values in the columns it did not touch.
 */
import { type PushResult, parseJsonLossless, type SyncRecord } from '@synchro/protocol'
import type { Row, SqliteExecutor, SqlValue } from '../driver.js'
import type { SyncedTable } from '../schema/synced-table.js'
import { quoteIdent } from '../store/sql.js'
import type { SentChange } from './push.js'
import { readColumnSql, sameWireValue, sqliteToWire, wireToSqlite } from './values.js'

/**
 * The server refused a change (conflict) while the app wrote the record again: that newer write stays queued and is
 * pushed next, as a whole row based on the server's stamp, so it is applied. The columns it did not touch still hold
 * the refused values, which would then overwrite the server's — the conflict the server won, reversed. So those
 * columns (the local value still the one pushed) take the server's values; the columns the app wrote meanwhile keep
 * the app's (a three-way merge against what was pushed). Runs under the sync lock: nothing is queued by it.
 */
export async function mergeServerVersion(
  tx: SqliteExecutor,
  t: SyncedTable,
  s: SentChange,
  sv: SyncRecord,
): Promise<void> {
  const pushed = s.clientData
  if (!pushed) return
  const pk = quoteIdent(t.pk)
  const rows = await tx.all<Row>(
    `SELECT ${t.columns.map(readColumnSql).join(', ')} FROM ${quoteIdent(t.name)} WHERE ${pk} = ?`,
    [s.entry.record_id],
  )
  const row = rows[0]
  if (!row) return
  const sets: string[] = []
  const params: SqlValue[] = []
  for (const c of t.columns) {
    if (c.name === t.pk || c.name === t.updatedAt || c.name === t.deletedAt) continue
    if (!Object.hasOwn(pushed, c.name) || !Object.hasOwn(sv.data, c.name)) continue
    const sent = pushed[c.name]
    if (sameWireValue(c, sv.data[c.name], sent) || !sameWireValue(c, sqliteToWire(c, row[c.name]), sent)) continue
    sets.push(`${quoteIdent(c.name)} = ?`)
    params.push(wireToSqlite(c.logical_type, sv.data[c.name]))
  }
  if (sets.length === 0) return
  await tx.run(`UPDATE ${quoteIdent(t.name)} SET ${sets.join(', ')} WHERE ${pk} = ?`, [...params, s.entry.record_id])
}

/** Columns the server keeps on every update whatever is pushed (PROTOCOL §2.5), besides the id and the stamps. */
const SERVER_KEPT = new Set(['created_at', 'updated_at', 'deleted_at'])

/**
 * Whether a conflict was decided against this client's own earlier write. An update whose answer was lost (the
 * connection dropped after the server committed, or the app was closed mid-push) is pushed again with its old base;
 * the server holds that very update by now, stamped later than the client's clock stamped it, so LWW answers
 * `server_won_conflict` against ourselves — a false rejection, and the local row, with any write made since, replaced
 * by the older copy. Recognised only when the server's row equals, column for column, what this request pushed
 * (`applied`: the write is there) or what the previous request carried (`attempted_data`; `requeue`: push the local
 * row again, based on the server's stamp). A row another device wrote differs, and stays a conflict.
 */
export function ownEarlierWrite(t: SyncedTable, s: SentChange, r: PushResult): 'applied' | 'requeue' | null {
  const e = s.entry
  const sv = r.server_version
  if (!e.attempted || e.operation !== 'update' || r.status !== 'conflict' || !sv || sv.deleted_at) return null
  if (s.clientData && sameRowData(t, sv.data, s.clientData)) return 'applied'
  if (e.attempted_data && sameRowData(t, sv.data, parseJsonLossless(e.attempted_data) as typeof sv.data)) {
    return 'requeue'
  }
  return null
}

/** The columns an update writes hold the same values in `server` and `pushed` (columns left out of a push skipped). */
function sameRowData(
  t: SyncedTable,
  server: { [column: string]: unknown },
  pushed: { [column: string]: unknown },
): boolean {
  for (const c of t.columns) {
    if (c.name === t.pk || c.name === t.updatedAt || c.name === t.deletedAt || SERVER_KEPT.has(c.name)) continue
    if (!Object.hasOwn(pushed, c.name)) continue
    if (!Object.hasOwn(server, c.name) || !sameWireValue(c, server[c.name], pushed[c.name])) return false
  }
  return true
}
